"""ros2_control interop outputs and diagnostic_updater-style diagnostics, over real DDS.

``torque_command`` runs as its own process with ``effort_topic`` (``Float64MultiArray`` in a
reordered subset of the joints, the ``forward_command_controller`` contract) and
``joint_state_topic`` (``JointState``). This process feeds it estimates at 100 Hz (values that
differ per joint and per message, so a wrong order or a stale copy cannot match by chance),
activates it, then deactivates it. Every effort array must equal the command's torques in
``effort_joints`` order (zeros when invalid), every JointState equal its command (names, stamp,
effort). ``/diagnostics`` must carry the node's status and the topic status of
``exo/torque_command`` with diagnostic_updater's keys, levels and a hardware_id.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from _node_harness import Listener, Procs, change_state, feed_estimates

pytestmark = pytest.mark.ros

CONFIGURE, ACTIVATE, DEACTIVATE = 1, 3, 4
EFFORT_TOPIC = "effort_controller/commands"
STATE_TOPIC = "exo/joint_states"
EFFORT_JOINTS = ["ankle_angle_l", "hip_flexion_r", "knee_angle_l", "ankle_angle_r"]


def test_effort_and_joint_state_outputs_equal_the_command_and_diagnostics_follow_conventions(tmp_path):
    from diagnostic_msgs.msg import DiagnosticArray
    from gait_estimator_msgs.msg import JointTorque
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray

    from gait_estimator.conventions import JOINTS
    from gait_estimator.nodes import conversion, topics

    procs = Procs(tmp_path / "logs")
    listener = Listener("interop_test")
    stop = threading.Event()
    feeder = threading.Thread(target=feed_estimates, args=(listener, stop), daemon=True)
    try:
        qos = topics.command_qos()
        listener.subscribe(JointTorque, topics.TOPIC_COMMAND, qos)
        listener.subscribe(Float64MultiArray, EFFORT_TOPIC, qos)
        listener.subscribe(JointState, STATE_TOPIC, qos)
        listener.subscribe(DiagnosticArray, "/diagnostics", 50)
        procs.start(
            "torque_command",
            params={
                "ramp_s": 0.0,
                "gains": [0.5],
                "lowpass_hz": 0.0,
                "diagnostics_period_s": 0.5,
                "effort_topic": EFFORT_TOPIC,
                "effort_joints": EFFORT_JOINTS,
                "joint_state_topic": STATE_TOPIC,
            },
        )
        assert change_state(listener, "torque_command", CONFIGURE)
        feeder.start()
        time.sleep(0.5)  # inactive: zeros with valid = false
        assert change_state(listener, "torque_command", ACTIVATE)
        listener.wait_for(
            lambda: sum(m.valid for _, m in listener.take(topics.TOPIC_COMMAND)) > 100,
            30,
            "valid commands",
            lambda: procs.log("torque_command")[-1500:],
        )
        assert change_state(listener, "torque_command", DEACTIVATE)
        time.sleep(0.5)

        cmds = [m for _, m in listener.take(topics.TOPIC_COMMAND)]
        efforts = [np.array(m.data) for _, m in listener.take(EFFORT_TOPIC)]
        states = [m for _, m in listener.take(STATE_TOPIC)]
        idx = [JOINTS.index(j) for j in EFFORT_JOINTS]
        expected = {}  # effort vector -> the command valid flags it came from
        by_stamp = {}
        for m in cmds:
            stamp, torque, _, valid = conversion.joint_torque_arrays(m)
            assert list(m.joint_names) == list(JOINTS)
            applied = torque if valid else np.zeros(len(torque))  # the contract: invalid means 0.0
            expected.setdefault(tuple(applied[idx]), set()).add(valid)
            by_stamp.setdefault(stamp, []).append(applied)
        n_valid = sum(m.valid for m in cmds)
        n_invalid = len(cmds) - n_valid
        assert n_valid > 100 and n_invalid > 20, (n_valid, n_invalid)
        assert len(efforts) >= 0.9 * len(cmds) and len(states) >= 0.9 * len(cmds), (
            len(cmds),
            len(efforts),
            len(states),
        )
        # Matched against the commands this process received: a reliable writer keeps 10 messages,
        # so a starved listener may miss a command whose effort array it got (>= 95 % required;
        # a wrong order or stale values match none).
        assert all(e.shape == (len(EFFORT_JOINTS),) for e in efforts)
        missing = [e for e in efforts if tuple(e) not in expected]
        assert len(missing) <= 0.05 * len(efforts), f"{len(missing)} efforts match no command: {missing[:3]}"
        nonzero = [e for e in efforts if np.any(e != 0)]
        zero = [e for e in efforts if not np.any(e != 0)]
        assert len(nonzero) > 100 and len(zero) > 20, (len(nonzero), len(zero))
        # the order matters: the same vector in the command's own joint order would not match
        own_order = [tuple(np.array(m.torque)[: len(idx)]) for m in cmds if m.valid]
        own_order = [v for v in own_order if np.all(np.array(v) != 0)]
        assert len(own_order) > 100 and not any(v in expected for v in own_order)
        assert all(list(s.name) == list(JOINTS) and not s.position and not s.velocity for s in states)

        def matches(s) -> bool:  # same stamp and the same efforts as a command
            t = by_stamp.get(conversion.stamp_to_ns(s.header.stamp), [])
            return any(np.array_equal(np.array(s.effort), x) for x in t)

        unmatched = [s for s in states if not matches(s)]
        assert len(unmatched) <= 0.05 * len(states), f"{len(unmatched)} JointStates match no command"

        # -- diagnostics -----------------------------------------------------------------------
        statuses = {st.name: st for _, arr in listener.take("/diagnostics") for st in arr.status}
        main = statuses["torque_command: torque command"]
        topic = statuses[f"torque_command: /{topics.TOPIC_COMMAND} topic status"]
        for st in (main, topic):
            assert st.hardware_id == "/torque_command", st.hardware_id
            assert st.level in (b"\x00", b"\x01", b"\x02", b"\x03")
        values = {kv.key: kv.value for kv in topic.values}
        for key in (
            "Events in window",
            "Events since startup",
            "Duration of window (s)",
            "Actual frequency (Hz)",
            "Minimum acceptable frequency (Hz)",
            "Earliest timestamp delay:",
            "Latest timestamp delay:",
            "Earliest acceptable timestamp delay:",
            "Latest acceptable timestamp delay:",
        ):
            assert key in values, (key, values)
        assert float(values["Minimum acceptable frequency (Hz)"]) == pytest.approx(90.0)
        assert int(values["Events since startup"]) >= len(cmds) * 0.9
        # commands go out at >= control_rate_hz (100): OK, or WARN on a starved machine, never ERROR
        freq = float(values["Actual frequency (Hz)"])
        assert 50.0 < freq < 400.0, freq
        assert topic.level == (b"\x00" if freq >= 90.0 else b"\x01"), (topic.level, topic.message, freq)
        assert 0.0 <= float(values["Latest timestamp delay:"]) < 5.0
    finally:
        stop.set()
        if feeder.is_alive():
            feeder.join(timeout=2)
        listener.close()
        procs.stop()
