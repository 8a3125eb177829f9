"""Fault injection over real processes, distributed mode (issue 13): the ``torque_command`` node
fed over DDS by an estimate publisher in this test, with injected faults (hostile parameter
sets, estimates stamped ahead of the host clock then silence, low confidence). Every command is
checked against the wire contract (``test_safety_faults.check_wire``). A module of its own so
that the fused node of ``test_safety_faults.py`` (a module fixture) is gone: both publish
``exo/torque_command`` in the session's ROS domain.
"""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest
from _node_harness import Listener, Procs, change_state, get_state
from test_safety_faults import (
    ACTIVATE,
    CONFIGURE,
    LIMIT,
    RATE,
    SLACK_S,
    WATCHDOG,
    ZERO_SLACK_S,
    _cmds,
    _first_zero_after,
    _recent_valid,
    _set,
    check_wire,
)

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NODE = "torque_command"


class EstimateFeeder:
    """Publishes gait/torque_estimate at RATE (torques up to 60 N.m, so the limit binds);
    ``stamp_shift_ns``, ``confidence`` and ``stopped`` are the injected faults."""

    def __init__(self, listener: Listener) -> None:
        from gait_estimator_msgs.msg import JointTorque

        from gait_estimator.conventions import JOINTS
        from gait_estimator.nodes import topics

        self.pub = listener.publisher(JointTorque, topics.TOPIC_ESTIMATE, topics.sensor_qos())
        self.joints, self.stamp_shift_ns, self.confidence, self.stopped = JOINTS, 0, 1.0, False
        self.fault = 0  # non-zero: publish invalid estimates with this JointTorque.fault
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from gait_estimator_msgs.msg import JointTorque

        from gait_estimator.nodes import conversion

        k = 0
        while not self._stop.is_set():
            if not self.stopped:
                torque = [60.0 * np.sin(0.05 * k + j) for j in range(len(self.joints))]
                self.pub.publish(
                    conversion.joint_torque_msg(
                        time.time_ns() + self.stamp_shift_ns,
                        JointTorque.SOURCE_ESTIMATE,
                        self.joints,
                        torque,
                        valid=not self.fault,
                        confidence=self.confidence,
                        fault=self.fault,
                    )
                )
            k += 1
            time.sleep(1.0 / RATE)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def distributed(tmp_path_factory, request):
    from gait_estimator_msgs.msg import JointTorque

    from gait_estimator.nodes import topics

    procs = Procs(tmp_path_factory.mktemp("logs_cmd"))
    listener = Listener("safety_test_cmd")
    feeder = EstimateFeeder(listener)
    request.addfinalizer(lambda: (feeder.stop(), listener.close(), procs.stop()))
    procs.start("torque_command", params={"control_rate_hz": RATE, "ramp_s": 0.1, "gains": [1.0]})
    listener.subscribe(JointTorque, topics.TOPIC_COMMAND, topics.command_qos())
    for transition, state in ((CONFIGURE, "inactive"), (ACTIVATE, "active")):
        change_state(listener, "torque_command", transition)
        listener.wait_for(lambda s=state: get_state(listener, "torque_command") == s, 30, state)
    listener.wait_for(lambda: _recent_valid(listener, 20), 30, "valid commands")
    return procs, listener, feeder


def _set_cmd(listener, name, value):
    return _set(listener, name, value, node=NODE)


def test_distributed_runtime_parameters_share_the_one_validation_path(distributed):
    procs, listener, feeder = distributed
    for name, value in (("limit_nm", [-5.0]), ("gains", [math.nan]), ("joints", ["knee_angle_r"] * 2)):
        res = _set_cmd(listener, name, value)
        assert not res.successful and name in res.reason, (name, res.reason)
    assert _set_cmd(listener, "limit_nm", [5.0]).successful
    t_set = time.time_ns()
    time.sleep(1.0)
    cmds = _cmds(listener)
    check_wire(cmds)
    late = [m for t, m in cmds if t > t_set + int(0.025e9 + SLACK_S * 1e9)]
    assert late and max(max(abs(x) for x in m.torque) for m in late) <= 5.0 + 1e-9
    assert _set_cmd(listener, "limit_nm", [LIMIT]).successful


def test_distributed_estimates_stamped_ahead_cannot_outlive_the_watchdog(distributed):
    """Issue 13 item 4: estimates stamped 3 s ahead, then silence: zero within watchdog_s of the
    last *receive* (it took 3.1 s when only the stamp counted)."""
    procs, listener, feeder = distributed
    feeder.stamp_shift_ns = 3_000_000_000
    time.sleep(0.5)
    assert _recent_valid(listener, 10)
    t_stop = time.time_ns()
    feeder.stopped = True
    time.sleep(0.6)
    cmds = _cmds(listener)
    check_wire(cmds)
    t_zero = _first_zero_after(cmds, t_stop)
    print(f"estimates +3 s then silence: zero {t_zero * 1e3:.0f} ms after the last estimate")
    assert t_zero <= WATCHDOG + ZERO_SLACK_S
    feeder.stamp_shift_ns, feeder.stopped = 0, False
    listener.wait_for(lambda: _recent_valid(listener, 10), 30, "valid commands again")


def test_distributed_low_confidence_ramps_to_zero_and_says_why(distributed):
    from diagnostic_msgs.msg import DiagnosticArray
    from gait_estimator_msgs.msg import JointTorque

    procs, listener, feeder = distributed
    listener.subscribe(DiagnosticArray, "/diagnostics", 10)
    listener.wait_for(lambda: _recent_valid(listener, 10), 30, "valid commands")
    listener.clear()
    feeder.confidence = 0.1
    time.sleep(1.5)
    cmds = _cmds(listener)
    check_wire(cmds)
    tail = [m for _, m in cmds[-20:]]
    assert all(m.valid and not any(m.torque) for m in tail), "low confidence must hold the command at zero"
    assert all(set(bytes(m.joint_status)) == {JointTorque.STATUS_RAMPING} for m in tail)
    listener.wait_for(
        lambda: any(
            st.name.startswith("torque_command: torque command") and "low confidence" in st.message
            and st.level == b"\x01"
            for _, a in listener.take("/diagnostics") for st in a.status
        ),
        10,
        "a WARN naming low confidence on /diagnostics",
    )
    feeder.confidence = 1.0
    listener.wait_for(lambda: _recent_valid(listener, 10), 30, "assistance back")


def test_distributed_transient_input_recovers_and_a_true_fault_latches(distributed):
    """The estimate's ``fault`` decides the command node's policy (core.faults): 300 ms of
    FAULT_INPUT_STALE estimates ramp the command to zero and it comes back on its own (no reset);
    a burst of FAULT_INPUT_IMPLAUSIBLE latches it at zero until exo/reset, whatever follows."""
    from gait_estimator_msgs.msg import JointTorque
    from std_msgs.msg import Empty

    from gait_estimator.nodes import topics

    procs, listener, feeder = distributed
    listener.wait_for(lambda: _recent_valid(listener, 20), 30, "valid commands")
    t0 = time.time_ns()
    feeder.fault = JointTorque.FAULT_INPUT_STALE
    time.sleep(0.3)
    feeder.fault = 0
    listener.wait_for(lambda: any(t > t0 and not m.valid for t, m in _cmds(listener)), 5, "a zero command")
    listener.wait_for(lambda: _recent_valid(listener, 20), 10, "the command back without exo/reset")
    check_wire(_cmds(listener))
    log = procs.log(NODE)
    assert "transient: a sensor stream late or missing" in log and "recovered from" in log, log[-1500:]

    t1 = time.time_ns()
    feeder.fault = JointTorque.FAULT_INPUT_IMPLAUSIBLE
    time.sleep(0.05)
    feeder.fault = 0
    time.sleep(1.0)  # valid estimates again for 1 s: the command must stay latched at zero
    cmds = _cmds(listener)
    check_wire(cmds)
    t_zero = _first_zero_after(cmds, t1)
    assert t_zero <= WATCHDOG + ZERO_SLACK_S, t_zero  # zero from then on, through the valid estimates
    assert "latched: implausible sensor values" in procs.log(NODE)
    listener.publisher(Empty, topics.TOPIC_RESET, topics.command_qos()).publish(Empty())
    listener.wait_for(lambda: _recent_valid(listener, 20), 10, "valid commands after exo/reset")
