"""End to end over real DDS: driver, synchronizer, windowing, estimator, command and manager as
separate processes (one set shared by the tests of this module, in order).

- commands arrive at the configured rate once the manager has activated the chain;
- online == offline: the recorded ``gait/imu_frame`` stream fed to ``core.pipeline`` and
  ``core.command`` offline gives the same estimates and commands (tolerance 1e-6 N.m: the same
  float32 model on the same float32 windows);
- e-stop: zero within one control period, latched until ``exo/reset``;
- killing the driver: the command is zero within the watchdog time of the last IMU sample;
- NaN IMU data (a driver with fault injection) never reaches a command or an estimate.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from _node_harness import Listener, Procs

pytestmark = pytest.mark.ros

RATE = 100.0  # IMU, model and control rate
WATCHDOG_S = 0.1
GAIN = 0.5
COMMAND = {
    "gains": [GAIN],
    "lowpass_hz": 0.0,
    "ramp_s": 0.0,
    "phase_shift_s": 0.0,
    "rate_limit_nm_s": 1e6,
    "limit_nm": [200.0],
    "watchdog_s": WATCHDOG_S,
    "control_rate_hz": RATE,
    "subject_mass_kg": 70.0,
}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from gait_estimator.runtime.reference_models import make_tiny_lstm_model

    return make_tiny_lstm_model(
        tmp_path_factory.mktemp("model") / "tiny.pt", window=50, rate=RATE, stride=1, seed=3
    )


@pytest.fixture(scope="module")
def chain(tiny_model, tmp_path_factory, request):
    from gait_estimator_msgs.msg import ImuFrame, JointTorque
    from std_msgs.msg import String

    from gait_estimator.nodes import topics

    procs = Procs(tmp_path_factory.mktemp("logs"))
    listener = None

    def fin():
        if listener is not None:
            listener.close()
        procs.stop()

    request.addfinalizer(fin)
    procs.start("imu_driver", params={"source": "sim", "rate_hz": RATE, "sim_loop_s": 30.0})
    procs.start("imu_synchronizer", params={"rate_hz": RATE})
    procs.start("windowing", params={"model_path": str(tiny_model)})
    procs.start("torque_estimator", params={"model_path": str(tiny_model), "subject_mass_kg": 70.0})
    procs.start("torque_command", params=COMMAND)
    procs.start("lifecycle_manager", params={"check_period_s": 0.2})
    listener = Listener("pipeline_test")
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    deep_sensor = QoSProfile(depth=1000, reliability=ReliabilityPolicy.BEST_EFFORT)
    listener.subscribe(
        JointTorque, topics.TOPIC_COMMAND, QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
    )
    listener.subscribe(JointTorque, topics.TOPIC_ESTIMATE, deep_sensor)
    listener.subscribe(ImuFrame, topics.TOPIC_FRAME, deep_sensor)
    listener.subscribe(
        String,
        "lifecycle_manager/state",
        QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        ),
    )
    try:
        listener.wait_for(
            lambda: any(m.data == "active" for _, m in listener.take("lifecycle_manager/state")),
            60,
            "the lifecycle manager to activate the chain",
        )
        listener.wait_for(
            lambda: sum(m.valid for _, m in listener.take(topics.TOPIC_COMMAND)) > 50, 30, "valid commands"
        )
    except AssertionError:
        for n in procs.procs:
            print(f"== {n}\n{procs.log(n)[-2000:]}")
        raise
    return procs, listener


def _valid_commands(listener):
    from gait_estimator.nodes import topics

    return [(t, m) for t, m in listener.take(topics.TOPIC_COMMAND) if m.valid]


def test_commands_arrive_at_the_control_rate(chain):
    from gait_estimator.nodes import topics

    procs, listener = chain
    listener.clear(topics.TOPIC_COMMAND)
    time.sleep(3.0)
    cmds = listener.take(topics.TOPIC_COMMAND)
    t = np.array([r for r, _ in cmds]) / 1e9
    rate = (len(t) - 1) / (t[-1] - t[0])
    # at least the control rate; an estimate that comes late by jitter adds one command
    assert 0.9 * RATE <= rate <= 1.35 * RATE, rate
    # The sentinel's zeros (another writer, frame_id "command_sentinel") mean the command node was
    # starved of CPU for > 50 ms by something else on the machine: not the node's own output.
    own = [m for _, m in cmds if m.header.frame_id != "command_sentinel"]
    print(f"sentinel zeros during the window: {len(cmds) - len(own)}")
    # Steady state: valid; a starved estimator (the whole chain shares 2 cores with this test) may
    # let the watchdog blank a few commands, which is the safe outcome, not a fault of the chain.
    invalid = sum(not m.valid for m in own)
    print(f"invalid commands in steady state: {invalid} of {len(own)}")
    assert invalid <= 0.02 * len(own), "commands must be valid in steady state"
    # Receive-time gaps are printed, not asserted: they measure this test process's scheduling
    # as much as the nodes'. A real gap longer than the watchdog would show as invalid commands.
    print(f"command rate {rate:.1f} Hz, largest gap {np.max(np.diff(t)) * 1e3:.1f} ms")
    for _, m in cmds:
        assert all(math.isfinite(x) for x in m.torque)


def test_online_equals_offline(chain, tiny_model):
    from gait_estimator.core.command_stage import make_shaper
    from gait_estimator.core.params import validate_node_params
    from gait_estimator.core.pipeline import EstimatorPipeline
    from gait_estimator.nodes import conversion, topics
    from gait_estimator.runtime.model_file import load_model

    procs, listener = chain
    for topic in (topics.TOPIC_FRAME, topics.TOPIC_ESTIMATE, topics.TOPIC_COMMAND):
        listener.clear(topic)
    time.sleep(4.0)
    frames = [conversion.msg_to_frame(m) for _, m in listener.take(topics.TOPIC_FRAME)]
    online_est = {
        conversion.stamp_to_ns(m.header.stamp): np.array(m.torque)
        for _, m in listener.take(topics.TOPIC_ESTIMATE)
        if m.valid
    }
    online_cmd = [
        (conversion.stamp_to_ns(m.header.stamp), np.array(m.torque))
        for _, m in listener.take(topics.TOPIC_COMMAND)
        if m.valid
    ]
    stamps = np.array([f.stamp_ns for f in frames])
    assert len(frames) > 300 and np.all(np.diff(stamps) == np.diff(stamps)[0]), "a gap-free frame record"

    pipe = EstimatorPipeline(load_model(tiny_model), None, 70.0, "window")
    offline = {}
    for f in frames:
        for est in pipe.push_frame(f):
            if est.valid:
                offline[est.stamp_ns] = est.torque_nm
    common_stamps = sorted(set(offline) & set(online_est))
    assert len(common_stamps) > 200, (len(offline), len(online_est))
    err = max(np.max(np.abs(offline[s] - online_est[s])) for s in common_stamps)
    assert err < 1e-6, f"estimates differ from the offline core by {err} N.m"

    # Commands: the shaping of this configuration (no filter, ramp or shift) is stateless, so
    # the offline CommandShaper on the same estimates gives the same torques.
    shaper = make_shaper(validate_node_params("torque_command", COMMAND))
    shaper.enable()
    shaper.update(common_stamps[0] - 10_000_000)
    first_per_stamp = {}
    for s, torque in online_cmd:
        first_per_stamp.setdefault(s, torque)
    checked = 0
    for s in common_stamps:
        shaper.submit(offline[s], s, True, "N.m")
        out = shaper.update(s + 1_000_000)
        if s in first_per_stamp:
            assert np.allclose(first_per_stamp[s], out.torque, atol=1e-6), (s, first_per_stamp[s], out.torque)
            checked += 1
    assert checked > 200
    assert np.allclose(out.torque, np.clip(GAIN * offline[common_stamps[-1]], -200, 200))


# E-stop timing. The command node publishes the zero in the e-stop callback itself (not at its
# next tick or estimate), so the node's share is far below one control period. The two DDS hops
# (this process -> node, node -> this process) each add the wake-up of a Python executor, which
# on a loaded 2-core CI machine is typically 1-15 ms and, with CPU-bound jobs beside it, up to
# ~100 ms (measured: 82 ms once): DDS_HOP_ALLOWANCE_MS per hop, stated here. The node's own
# share (callback -> zero published) is checked against one control period without allowance.
DDS_HOP_ALLOWANCE_MS = 100.0


def _estop_timing(log: str) -> tuple[int, int]:
    import re

    m = re.findall(r"callback_ns=(\d+) published_ns=(\d+)", log)
    assert m, "the command node logs its e-stop timing"
    return int(m[-1][0]), int(m[-1][1])


def test_emergency_stop_zero_within_one_control_period_then_reset(chain):
    from std_msgs.msg import Bool, Empty

    from gait_estimator.nodes import conversion, topics

    procs, listener = chain
    period_ms = 1000.0 / RATE
    estop = listener.publisher(Bool, topics.TOPIC_ESTOP, topics.command_qos())
    reset = listener.publisher(Empty, topics.TOPIC_RESET, topics.command_qos())
    listener.wait_for(
        lambda: estop.get_subscription_count() > 0 and reset.get_subscription_count() > 0,
        10,
        "the command node to subscribe e-stop/reset",
    )
    listener.wait_for(
        lambda: sum(m.valid and any(m.torque) for _, m in listener.take(topics.TOPIC_COMMAND)[-10:]) >= 8,
        10,
        "non-zero commands before the e-stop",
    )
    try:
        t0 = time.time_ns()
        estop.publish(Bool(data=True))
        listener.wait_for(
            lambda: any(t > t0 and not any(m.torque) for t, m in listener.take(topics.TOPIC_COMMAND)),
            2,
            "a zero command",
        )
        listener.wait_for(lambda: "published_ns=" in procs.log("torque_command"), 5, "the e-stop log line")
        t_cb, t_pub = _estop_timing(procs.log("torque_command"))
        time.sleep(0.5)
        after_t0 = [(t, m) for t, m in listener.take(topics.TOPIC_COMMAND) if t > t0]
        k = next(i for i, (_, m) in enumerate(after_t0) if not any(m.torque))
        t_zero, zero = after_t0[k]
        in_flight = after_t0[:k]
        print(
            f"e-stop: published -> node callback {(t_cb - t0) / 1e6:.2f} ms, callback -> zero published "
            f"{(t_pub - t_cb) / 1e6:.3f} ms, published -> received {(t_zero - t_pub) / 1e6:.2f} ms; "
            f"e-stop -> first zero received {(t_zero - t0) / 1e6:.2f} ms; "
            f"{len(in_flight)} command(s) in flight"
        )
        # t_pub is taken when publish() returns, so the zero may already have reached this process
        # (same host clock): only the callback start is ordered before the reception.
        assert t0 < t_cb <= t_pub and t_cb <= t_zero
        # the node's own reaction: the zero goes out in the e-stop callback
        assert (t_pub - t_cb) / 1e6 <= period_ms
        # e-stop publication -> zero on the wire: one control period + one DDS hop
        assert (t_pub - t0) / 1e6 <= period_ms + DDS_HOP_ALLOWANCE_MS
        # e-stop publication -> zero at a consumer: one control period + two DDS hops
        assert (t_zero - t0) / 1e6 <= period_ms + 2 * DDS_HOP_ALLOWANCE_MS
        status = conversion.joint_torque_arrays(zero)[2]
        assert not zero.valid and set(status.tolist()) == {3}  # STATUS_INVALID
        # commands before the zero were published before the callback (reliable QoS keeps the
        # order; the zero is the first publish of the callback): none carries a fault status
        assert all(m.valid for _, m in in_flight)
        after = after_t0[k:]
        assert len(after) >= 0.5 * RATE * 0.4, "zero commands keep coming at the control rate"
        assert all(not m.valid and not any(m.torque) for _, m in after), "a non-zero command after the e-stop"
    finally:  # later tests need the e-stop cleared
        reset.publish(Empty())
    listener.wait_for(
        lambda: sum(m.valid for _, m in listener.take(topics.TOPIC_COMMAND)[-20:]) >= 10,
        5,
        "valid commands after exo/reset",
    )


def test_killing_the_driver_ramps_the_command_to_zero_within_the_watchdog(chain):
    from gait_estimator.nodes import conversion, topics

    procs, listener = chain
    listener.clear(topics.TOPIC_COMMAND)
    listener.clear(topics.TOPIC_FRAME)
    time.sleep(0.5)
    assert any(m.valid and any(m.torque) for _, m in listener.take(topics.TOPIC_COMMAND))
    procs.kill("imu_driver")
    t_kill = time.time_ns()
    time.sleep(1.0)
    cmds = listener.take(topics.TOPIC_COMMAND)
    last_valid_stamp = max(conversion.stamp_to_ns(m.header.stamp) for _, m in cmds if m.valid)
    assert last_valid_stamp <= t_kill + 10_000_000  # frames come from real samples only
    deadline = last_valid_stamp + int(WATCHDOG_S * 1e9)
    late = [(t, m) for t, m in cmds if t >= deadline + 5_000_000]  # +5 ms: DDS delivery
    assert late, "commands keep coming (zeros) after the driver died"
    assert all(not any(m.torque) and not m.valid for _, m in late), "non-zero command after the watchdog"
    first_zero = min(t for t, m in cmds if not m.valid)
    print(
        f"last valid IMU stamp -> kill {(t_kill - last_valid_stamp) / 1e6:.1f} ms; "
        f"first zero command {(first_zero - last_valid_stamp) / 1e6:.1f} ms after it"
    )


def test_nan_imu_data_never_reaches_the_command(chain):
    from std_msgs.msg import Empty

    from gait_estimator.nodes import topics

    procs, listener = chain
    listener.clear(topics.TOPIC_ESTIMATE)
    listener.clear(topics.TOPIC_COMMAND)
    procs.start(
        "imu_driver",
        name="imu_driver_nan",
        params={
            "source": "sim",
            "rate_hz": RATE,
            "sim_loop_s": 30.0,
            "fault_nan_location": "thigh_r",
            "fault_nan_start_s": 6.0,
            "fault_nan_duration_s": 2.0,
        },
    )
    reset = listener.publisher(Empty, topics.TOPIC_RESET, topics.command_qos())
    listener.wait_for(lambda: reset.get_subscription_count() > 0, 10, "reset subscriber")
    listener.wait_for(
        lambda: sum(m.valid for _, m in listener.take(topics.TOPIC_ESTIMATE)[-10:]) >= 10,
        20,
        "valid estimates from the new driver",
    )
    reset.publish(Empty())  # the driver's death latched a fault
    listener.wait_for(
        lambda: sum(m.valid for _, m in listener.take(topics.TOPIC_COMMAND)[-10:]) >= 8,
        10,
        "valid commands from the new driver",
    )
    listener.clear(topics.TOPIC_COMMAND)
    listener.clear(topics.TOPIC_ESTIMATE)
    time.sleep(7.0)  # covers the NaN period (6 s .. 8 s after the driver's start)
    cmds = listener.take(topics.TOPIC_COMMAND)
    ests = listener.take(topics.TOPIC_ESTIMATE)
    assert any(not m.valid for _, m in cmds), "the NaN period made the command invalid (zero)"
    for _, m in cmds + ests:
        assert all(math.isfinite(x) for x in m.torque)
        if not m.valid:
            assert not any(m.torque), "an invalid estimate or command carries zero torque"


def test_sigint_shuts_the_command_node_down_with_a_last_zero(chain):
    """Ctrl-C / SIGINT (what ``gait-estimator run`` and ``ros2 launch`` send) takes the command node
    through its lifecycle shutdown while it can still publish: the last command is a zero."""
    from std_msgs.msg import Empty

    from gait_estimator.nodes import topics

    procs, listener = chain
    reset = listener.publisher(Empty, topics.TOPIC_RESET, topics.command_qos())
    listener.wait_for(lambda: reset.get_subscription_count() > 0, 10, "reset subscriber")
    listener.clear(topics.TOPIC_ESTIMATE)
    listener.wait_for(
        lambda: sum(m.valid for _, m in listener.take(topics.TOPIC_ESTIMATE)[-10:]) >= 10,
        20,
        "valid estimates (the NaN period of the previous test over)",
    )
    reset.publish(Empty())  # the fault the NaN period latched
    listener.wait_for(
        lambda: sum(m.valid and any(m.torque) for _, m in listener.take(topics.TOPIC_COMMAND)[-10:]) >= 8,
        10,
        "non-zero commands before SIGINT",
    )
    procs.kill("lifecycle_manager", sig=2)  # as the launcher does: the manager first
    procs.kill("torque_command", sig=2)
    assert procs.procs["torque_command"].returncode == 0, procs.log("torque_command")
    assert "Traceback" not in procs.log("torque_command"), procs.log("torque_command")

    def last_is_zero() -> bool:
        last = listener.take(topics.TOPIC_COMMAND)[-1][1]
        return not last.valid and not any(last.torque)

    listener.wait_for(last_is_zero, 5, "the command node's last message to be a zero")
    time.sleep(0.3)
    assert last_is_zero(), "a command after the last zero"
