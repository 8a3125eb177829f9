"""Command sentinel over real processes and DDS: ``kill -9`` of the command process, then zeros.

The command process and the lifecycle manager (whose sentinel watches ``exo/torque_command``)
run as separate processes; this process listens. After valid non-zero commands flow, the command
process is SIGKILLed: no last zero can come from it. The sentinel must publish zero
``valid = false`` commands (the dead node's joints) within ``SENTINEL_BOUND_S`` of the kill and
nothing non-zero may follow. Two command processes:

- ``torque_command`` fed with estimates by this process (no model: steady even on a starved
  machine); before it starts the sentinel reports STALE; after the kill a publisher of this
  process speaks (the sentinel stops), goes silent while alive (the sentinel must not fight it)
  and is destroyed (the sentinel resumes);
- the fused ``gait_pipeline`` (in-process sim driver, a tiny model), the case of issue 13 item 6,
  with its ros2_control effort output and estimate diagnostics checked on the way.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from _node_harness import Listener, Procs, feed_estimates

pytestmark = pytest.mark.ros

RATE = 100.0
WATCHDOG_S = 0.1  # the command nodes' default watchdog_s
# Guaranteed kill -> first sentinel zero: liveliness lease (50 ms) or heartbeat timeout (50 ms),
# + one sentinel period (10 ms), + delivery; received 41-93 ms after the kill on the 2-core machine
# at load average 4-7 (see README). Asserted with 100 ms scheduling slack on top of the watchdog.
SENTINEL_BOUND_S = WATCHDOG_S + 0.1  # on the sentinel's stamp: kill -> its zero on the wire
LISTENER_SLACK_S = 0.1  # + this process's own scheduling to receive it (172 ms seen at load 12)
EFFORT_TOPIC = "effort_controller/commands"
RIGHT_LEG = {"joints": ["hip_flexion_r", "knee_angle_r", "ankle_angle_r"], "gains": [0.2], "limit_nm": [30.0]}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from gait_estimator.runtime.reference_models import make_tiny_lstm_model

    return make_tiny_lstm_model(tmp_path_factory.mktemp("model") / "tiny.pt", window=50, rate=RATE, seed=3)


@pytest.fixture
def graph(tmp_path):
    """Processes, a listener on the command and /diagnostics, and a stop flag for feeders."""
    from diagnostic_msgs.msg import DiagnosticArray
    from gait_estimator_msgs.msg import JointTorque

    from gait_estimator.nodes import topics

    procs = Procs(tmp_path / "logs")
    listener = Listener("sentinel_test")
    stop = threading.Event()
    listener.subscribe(JointTorque, topics.TOPIC_COMMAND, topics.command_qos())
    listener.subscribe(DiagnosticArray, "/diagnostics", 50)
    yield procs, listener, stop
    stop.set()
    listener.close()
    procs.stop()


def _is_sentinel(msg) -> bool:
    from gait_estimator.nodes.command_sentinel import SENTINEL_FRAME_ID

    return msg.header.frame_id == SENTINEL_FRAME_ID


def _status(listener, name: str):
    for _, arr in reversed(listener.take("/diagnostics")):
        for st in arr.status:
            if st.name == name:
                return st
    return None


SENTINEL_STATUS = "lifecycle_manager: command sentinel"


def _start_manager(procs, node: str) -> None:
    procs.start("lifecycle_manager", params={"node_names": [node], "command_node": node})


def _wait_for_live_commands(procs, listener, node: str, reset_pub=None) -> None:
    """Until > 30 valid non-zero commands; ``reset_pub``: send ``exo/reset`` every second meanwhile
    (a starved start-up can latch a fault from invalid frames; the sentinel is not about that)."""
    from std_msgs.msg import Empty

    from gait_estimator.nodes import topics

    polls = [0]

    def live_nonzero() -> int:
        polls[0] += 1
        if reset_pub is not None and polls[0] % 20 == 0:
            reset_pub.publish(Empty())
        cmds = listener.take(topics.TOPIC_COMMAND)
        return sum(m.valid and np.any(np.array(m.torque) != 0) for _, m in cmds)

    listener.wait_for(
        lambda: live_nonzero() > 30, 60, "valid non-zero commands", lambda: procs.log(node)[-1500:]
    )
    listener.wait_for(
        lambda: (st := _status(listener, SENTINEL_STATUS)) is not None and st.level == b"\x00",
        5,
        "sentinel OK",
    )
    assert _status(listener, SENTINEL_STATUS).hardware_id
    # Not asserted: on a CPU-starved machine a live process (DDS threads included) can be silent
    # beyond the lease and the heartbeat timeout; the sentinel then fills in zeros until it speaks
    # again (README). "Never fights a live publisher" is asserted with a deterministic silence.
    early = sum(_is_sentinel(m) for _, m in listener.take(topics.TOPIC_COMMAND))
    print(f"sentinel zeros while {node} lived (starvation): {early}")


def _kill_and_expect_zeros(procs, listener, node: str, joints) -> None:
    """kill -9 ``node``; assert the sentinel's zeros, their bound and that nothing else follows."""
    from gait_estimator_msgs.msg import JointTorque

    from gait_estimator.nodes import conversion, topics

    cmd = topics.TOPIC_COMMAND
    t_kill = time.time_ns()
    procs.kill(node)
    listener.wait_for(
        lambda: any(_is_sentinel(m) and t > t_kill for t, m in listener.take(cmd)), 5, "a sentinel zero"
    )
    time.sleep(0.5)
    msgs = listener.take(cmd)
    first = next(i for i, (t, m) in enumerate(msgs) if _is_sentinel(m) and t > t_kill)
    latency_s = (msgs[first][0] - t_kill) / 1e9
    published_s = (conversion.stamp_to_ns(msgs[first][1].header.stamp) - t_kill) / 1e9
    last_live_s = max((t - t_kill) / 1e9 for t, m in msgs[:first] if not _is_sentinel(m))
    print(
        f"kill -9 {node} -> first sentinel zero published {published_s * 1e3:.1f} ms, received "
        f"{latency_s * 1e3:.1f} ms (bound {SENTINEL_BOUND_S * 1e3:.0f} ms); its last command received at "
        f"{last_live_s * 1e3:+.1f} ms"
    )
    assert published_s <= SENTINEL_BOUND_S, published_s
    assert latency_s <= SENTINEL_BOUND_S + LISTENER_SLACK_S, latency_s
    after = [m for _, m in msgs[first:]]
    assert all(_is_sentinel(m) for m in after), "a command of the dead node after the sentinel's zero"
    for m in after:
        _, torque, status, valid = conversion.joint_torque_arrays(m)
        assert not valid and np.all(torque == 0.0), (valid, torque)
        assert np.all(status == JointTorque.STATUS_INVALID) and m.source == JointTorque.SOURCE_COMMAND
        assert list(m.joint_names) == list(joints)
    # it keeps sending (period 10 ms; >= 20 Hz asserted: the manager process may be starved too)
    assert len(after) >= 10, f"only {len(after)} sentinel zeros in 0.5 s"
    listener.wait_for(
        lambda: (s := _status(listener, SENTINEL_STATUS)) is not None and s.level == b"\x02",
        5,
        "sentinel ERROR",
    )
    values = {kv.key: kv.value for kv in _status(listener, SENTINEL_STATUS).values}
    assert int(values["deaths detected"]) >= 1 and int(values["zero commands sent"]) > 0, values


def test_sentinel_zeroes_after_kill_9_of_the_command_node_and_never_fights_a_live_publisher(graph):
    from gait_estimator_msgs.msg import JointTorque

    from gait_estimator.nodes import conversion, topics

    procs, listener, stop = graph
    cmd = topics.TOPIC_COMMAND
    _start_manager(procs, "torque_command")  # first: no command publisher yet
    listener.wait_for(lambda: _status(listener, SENTINEL_STATUS) is not None, 30, "manager diagnostics")
    st = _status(listener, SENTINEL_STATUS)
    assert st.level == b"\x03" and st.message == "no command publisher seen yet", (st.level, st.message)
    procs.start("torque_command", params={"ramp_s": 0.0, **RIGHT_LEG})
    threading.Thread(target=feed_estimates, args=(listener, stop), daemon=True).start()
    _wait_for_live_commands(procs, listener, "torque_command")
    # the sentinel zeroes the dead node's joints, not its own `joints` parameter (all six)
    _kill_and_expect_zeros(procs, listener, "torque_command", RIGHT_LEG["joints"])

    # -- a publisher comes back: the sentinel stops; silent but alive: it stays quiet ----------
    pub = listener.publisher(JointTorque, cmd, topics.command_publisher_qos())
    back = conversion.joint_torque_msg(
        time.time_ns(), JointTorque.SOURCE_COMMAND, RIGHT_LEG["joints"], [0.0] * 3, valid=False
    )
    t_back = time.time_ns()
    for _ in range(30):
        pub.publish(back)
        time.sleep(0.01)
    t_quiet = time.time_ns()
    time.sleep(0.6)  # silent for 12 x the heartbeat timeout, liveliness held by this process
    msgs = listener.take(cmd)
    assert any(not _is_sentinel(m) and t > t_back for t, m in msgs)
    # Judged on the sentinel's own stamps (its host time at publication), not on when this
    # process received them: it stopped while the publisher spoke and stayed quiet while it was
    # silent but alive (0.2 s allowed for the back-messages to reach a starved manager).
    fought = [
        conversion.stamp_to_ns(m.header.stamp)
        for _, m in msgs
        if _is_sentinel(m) and conversion.stamp_to_ns(m.header.stamp) > t_quiet + 200_000_000
    ]
    assert not fought, f"sentinel published {len(fought)} zeros over a live, silent publisher"

    # -- that publisher goes away: zeros again within the bound -------------------------------
    t_gone = time.time_ns()
    listener.node.destroy_publisher(pub)
    listener.wait_for(
        lambda: any(_is_sentinel(m) and t > t_gone for t, m in listener.take(cmd)), 5, "zeros again"
    )
    resumed = min(t for t, m in listener.take(cmd) if _is_sentinel(m) and t > t_gone)
    print(
        f"publisher destroyed -> sentinel zero {(resumed - t_gone) / 1e6:.1f} ms "
        f"(silent since {(t_gone - t_quiet) / 1e6:.0f} ms)"
    )
    assert (resumed - t_gone) / 1e9 <= SENTINEL_BOUND_S + LISTENER_SLACK_S


def test_sentinel_zeroes_after_kill_9_of_the_fused_node(graph, tiny_model):
    from std_msgs.msg import Empty, Float64MultiArray

    from gait_estimator.nodes import topics

    procs, listener, _ = graph
    cmd = topics.TOPIC_COMMAND
    listener.subscribe(Float64MultiArray, EFFORT_TOPIC, topics.command_qos())
    params = {"imu_source": "sim", "model_path": str(tiny_model), "ramp_s": 0.0, "sim_loop_s": 20.0}
    procs.start("gait_pipeline", params={**params, **RIGHT_LEG, "effort_topic": EFFORT_TOPIC})
    _start_manager(procs, "gait_pipeline")
    reset = listener.publisher(Empty, topics.TOPIC_RESET, topics.command_qos())
    _wait_for_live_commands(procs, listener, "gait_pipeline", reset)

    # the fused node's ros2_control output (its publish hook) equals its commands
    applied = {tuple(np.array(m.torque) if m.valid else np.zeros(3)) for _, m in listener.take(cmd)}
    efforts = [tuple(m.data) for _, m in listener.take(EFFORT_TOPIC)]
    missing = [e for e in efforts if e not in applied]  # (a starved listener may miss a command)
    assert len(efforts) > 30 and len(missing) <= 0.05 * len(efforts), (
        f"fused effort != command: {missing[:3]}"
    )
    # its estimate output: diagnostic_updater's frequency keys at the model rate
    name = f"gait_pipeline: /{topics.TOPIC_ESTIMATE} topic status"
    # (STALE before activation, ERROR "No events recorded." while the window fills)
    listener.wait_for(
        lambda: (e := _status(listener, name)) is not None and e.level in (b"\x00", b"\x01"), 5, name
    )
    est = _status(listener, name)
    values = {kv.key: kv.value for kv in est.values}
    assert est.hardware_id == "/gait_pipeline", est.hardware_id
    assert float(values["Target frequency (Hz)"]) == RATE and int(values["Events since startup"]) > 0

    _kill_and_expect_zeros(procs, listener, "gait_pipeline", RIGHT_LEG["joints"])



def test_a_stalled_live_publisher_is_not_fought_and_a_killed_one_is(graph):
    """Issue 23: at load 8 sentinel zeros landed between a live publisher's commands (0 -> 14.8 N·m
    in 3.8 ms): a starved process sends nothing, DDS threads included, so its lease lapses and the
    heartbeat goes silent exactly as after a death. The publisher here (another process, the
    command nodes' QoS and lease) is frozen for 3 x the timeout (SIGSTOP), then thawed, 8 times: no
    sentinel zero may reach the wire. Then it is killed (-9): zeros within the bound."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from gait_estimator.nodes import topics

    procs, listener, _ = graph
    cmd = topics.TOPIC_COMMAND
    _start_manager(procs, "torque_command")
    listener.wait_for(lambda: _status(listener, SENTINEL_STATUS) is not None, 30, "manager diagnostics")
    script = Path(__file__).parents[1] / "support" / "publish_commands.py"
    live = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout.readline().strip() == "ready"
        listener.wait_for(
            lambda: (s := _status(listener, SENTINEL_STATUS)) is not None and s.level == b"\x00",
            20,
            "sentinel OK",
        )
        listener.take(cmd)
        for _ in range(8):
            live.send_signal(signal.SIGSTOP)
            time.sleep(0.15)
            live.send_signal(signal.SIGCONT)
            time.sleep(0.15)
        time.sleep(0.3)
        msgs = listener.take(cmd)
        zeros = sum(_is_sentinel(m) for _, m in msgs)
        print(f"stalled live publisher: {zeros} sentinel zeros among {len(msgs) - zeros} live commands")
        assert len(msgs) - zeros > 30  # it spoke between the stalls (a starved listener sees fewer)
        assert zeros == 0, f"{zeros} sentinel zeros between a live publisher's commands"
        t_kill = time.time_ns()
        live.kill()
        live.wait(timeout=10)
        listener.wait_for(
            lambda: any(_is_sentinel(m) and t > t_kill for t, m in listener.take(cmd)), 5, "a sentinel zero"
        )
    finally:
        if live.poll() is None:
            live.send_signal(signal.SIGCONT)
            live.kill()
            live.wait(timeout=10)
        live.stdout.close()
