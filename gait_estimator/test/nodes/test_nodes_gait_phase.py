"""Gait phase and events over real DDS, in both modes, from the simulated walker.

The fused node (``gait_pipeline``, in-process sim source) and the distributed chain (driver,
synchronizer, windowing, estimator, command, manager) publish ``gait/state`` (both legs' phase,
state, stride time, cadence) and ``gait/events`` (heel strikes and toe offs); the estimates and
commands carry the right leg's phase in ``JointTorque.gait_phase``, equal to the state of their
frame; the phase wraps at the heel strike's frame.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from _node_harness import Listener, Procs, change_state

pytestmark = pytest.mark.ros

RATE = 100.0
CONFIGURE, ACTIVATE = 1, 3
COMMAND = {"ramp_s": 0.0, "control_rate_hz": RATE}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from gait_estimator.runtime.reference_models import make_tiny_lstm_model

    return make_tiny_lstm_model(tmp_path_factory.mktemp("model") / "tiny.pt", window=50, rate=RATE, seed=3)


def _start(mode: str, procs: Procs, listener: Listener, model) -> None:
    if mode == "fused":
        procs.start("gait_pipeline", params={"imu_source": "sim", "driver_rate_hz": RATE,
                                             "model_path": str(model), **COMMAND})
        assert change_state(listener, "gait_pipeline", CONFIGURE), procs.log("gait_pipeline")
        assert change_state(listener, "gait_pipeline", ACTIVATE)
        return
    procs.start("imu_driver", params={"source": "sim", "rate_hz": RATE})
    procs.start("imu_synchronizer", params={"rate_hz": RATE})
    procs.start("windowing", params={"model_path": str(model)})
    procs.start("torque_estimator", params={"model_path": str(model)})
    procs.start("torque_command", params=COMMAND)
    procs.start("lifecycle_manager", params={"check_period_s": 0.2})


@pytest.mark.parametrize("mode", ["fused", "distributed"])
def test_gait_state_events_and_the_phase_on_estimates_and_commands(mode, tiny_model, tmp_path):
    from gait_estimator_msgs.msg import GaitEvent, GaitState, JointTorque
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from gait_estimator.nodes import conversion, topics

    procs = Procs(tmp_path / "logs")
    listener = Listener(f"gait_phase_test_{mode}")
    try:
        deep = QoSProfile(depth=2000, reliability=ReliabilityPolicy.BEST_EFFORT)
        listener.subscribe(GaitState, topics.TOPIC_GAIT_STATE, deep)
        listener.subscribe(GaitEvent, topics.TOPIC_GAIT_EVENTS, topics.events_qos())
        listener.subscribe(JointTorque, topics.TOPIC_ESTIMATE, deep)
        listener.subscribe(JointTorque, topics.TOPIC_COMMAND,
                           QoSProfile(depth=2000, reliability=ReliabilityPolicy.RELIABLE))
        _start(mode, procs, listener, tiny_model)

        def right_heel_strikes():
            return [m for _, m in listener.take(topics.TOPIC_GAIT_EVENTS)
                    if m.leg == GaitEvent.LEG_RIGHT and m.event == GaitEvent.HEEL_STRIKE]

        listener.wait_for(lambda: len(right_heel_strikes()) >= 6, 60, "six right heel strikes",
                          details=lambda: {n: procs.log(n)[-600:] for n in procs.procs})
        states = [m for _, m in listener.take(topics.TOPIC_GAIT_STATE)]
        events = [m for _, m in listener.take(topics.TOPIC_GAIT_EVENTS)]
        by_stamp = {conversion.stamp_to_ns(m.header.stamp): m for m in states}

        # -- the state: both legs valid while walking, phase in [0, 1), stance/swing, cadence ----
        walking = [m for m in states if all(m.phase_valid)]
        assert len(walking) > 200, f"{len(walking)} of {len(states)} states with both legs valid"
        for m in walking:
            assert all(0.0 <= p < 1.0 for p in m.phase)
            assert set(m.state) <= {GaitState.STATE_STANCE, GaitState.STATE_SWING}
            if all(math.isfinite(x) for x in m.stride_time_s):  # steps per minute of both legs
                assert m.cadence_steps_per_min == pytest.approx(240.0 / sum(m.stride_time_s))
            assert all(0.5 < s < 2.5 for s in m.stride_time_s if math.isfinite(s)), list(m.stride_time_s)
        assert sum(all(math.isfinite(s) for s in m.stride_time_s) for m in walking) > 0.8 * len(walking)
        assert not any(math.isfinite(m.phase[i]) for m in states for i in (0, 1) if not m.phase_valid[i])

        # -- events: heel strikes and toe offs of both legs, stride times ---------------------
        kinds = {(e.leg, e.event) for e in events}
        assert kinds == {(leg, ev) for leg in (0, 1) for ev in (0, 1)}, kinds
        hs = right_heel_strikes()
        t_hs = np.array([conversion.stamp_to_ns(e.header.stamp) for e in hs]) / 1e9
        strides = np.diff(t_hs)
        reported = np.array([e.stride_time_s for e in hs[1:]])
        ok = np.isfinite(reported)
        assert ok.sum() >= 3 and np.allclose(strides[ok], reported[ok], atol=1e-6)
        assert all(0 <= e.detected_ns - conversion.stamp_to_ns(e.header.stamp) < 0.3e9 for e in events)

        # -- the phase wraps at the heel strike's frame ------------------------------------------
        wrapped = [by_stamp[e.detected_ns].phase[0] for e in hs if e.detected_ns in by_stamp
                   and by_stamp[e.detected_ns].phase_valid[0]]
        assert len(wrapped) >= 3 and max(wrapped) < 0.03, wrapped

        # -- estimates and commands carry the right leg's phase of their frame ---------------------
        ests = [m for _, m in listener.take(topics.TOPIC_ESTIMATE)]
        matched = [(m.gait_phase, by_stamp[conversion.stamp_to_ns(m.header.stamp)])
                   for m in ests if conversion.stamp_to_ns(m.header.stamp) in by_stamp]
        assert len(matched) > 200
        for phase, st in matched:
            if st.phase_valid[0]:
                assert phase == pytest.approx(st.phase[0], abs=1e-12)
            else:
                assert math.isnan(phase)
        cmds = [m for _, m in listener.take(topics.TOPIC_COMMAND) if m.valid]
        with_phase = [m for m in cmds if math.isfinite(m.gait_phase)]
        assert len(with_phase) > 0.5 * len(cmds) > 50, (len(with_phase), len(cmds))
    finally:
        listener.close()
        procs.stop()
