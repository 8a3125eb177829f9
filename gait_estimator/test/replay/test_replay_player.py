"""bag_player and ``gait-estimator record`` over real DDS (subprocesses, isolated domain).

The player is started as the console script would run it; this process subscribes. Checks:
every message arrives in order with its original stamps, /clock follows the bag time, the rate
scales the duration, a start offset skips the beginning, a loop restart keeps time increasing
(``--loop-stamps shift``) or replays it unchanged (``keep``), a bad bag is one error line and
exit status 2, and ``record`` stores what the player publishes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _node_harness import Listener

pytestmark = pytest.mark.ros

PLAYER = [sys.executable, "-m", "gait_estimator.nodes.bag_player"]
N = 200  # samples per location (2 s at 100 Hz)
LOCS = ("pelvis", "foot_r")
T0 = 1_000_000_000


def _stamp(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


@pytest.fixture(scope="module")
def small_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gait_estimator.replay import convert
    from gait_estimator.replay.bag import BagWriter

    path = tmp_path_factory.mktemp("player") / "small"
    with BagWriter(path, "sqlite3") as w:
        for i in range(N):
            t = T0 + i * 10_000_000
            for loc in LOCS:
                w.write(f"imu/{loc}", t, convert.imu_message(t, loc, [i, 0, 9.8], [0, 0, 1], [0, 0, 0, 1]))
            w.write("gait/torque_reference", t, convert.joint_torque_message(t, ["a", "b"], [i, -i], 2))
    return path


@pytest.fixture()
def listener():
    from gait_estimator_msgs.msg import JointTorque
    from rclpy.qos import QoSProfile
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Imu

    from gait_estimator.nodes import topics

    lst = Listener("player_test_listener")
    for loc in LOCS:
        lst.subscribe(Imu, f"/imu/{loc}", topics.sensor_qos(topics.SENSOR_SUB_DEPTH))  # rides out stalls
    lst.subscribe(JointTorque, "/gait/torque_reference", QoSProfile(depth=1000))
    lst.subscribe(Clock, "/clock", QoSProfile(depth=1000))
    yield lst
    lst.close()


def _play(bag: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*PLAYER, str(bag), "--wait-for-subscribers", "10", "--delay", "0.3", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _settle(lst: Listener, topic: str, expected: int, timeout: float = 5.0) -> list:
    lst.wait_for(lambda: len(lst.take(topic)) >= expected, timeout, f"{expected} messages on {topic}")
    return [m for _, m in lst.take(topic)]


def test_plays_every_message_in_order_with_clock(small_bag: Path, listener: Listener) -> None:
    t = time.monotonic()
    proc = _play(small_bag, "--rate", "2.0")
    wall = time.monotonic() - t
    assert proc.returncode == 0, proc.stderr
    ref = _settle(listener, "/gait/torque_reference", N)
    stamps = [_stamp(m) for m in ref]
    assert stamps == [T0 + i * 10_000_000 for i in range(N)]  # reliable: all, in order
    imu = [_stamp(m) for m in listener.take("/imu/pelvis") for m in [m[1]]]
    assert len(imu) >= 0.98 * N and imu == sorted(imu)  # best effort: order kept
    clock = [m.clock.sec * 1_000_000_000 + m.clock.nanosec for _, m in listener.take("/clock")]
    assert clock == sorted(clock) and clock[0] >= T0 and clock[-1] == T0 + (N - 1) * 10_000_000
    # 2 s of bag at rate 2 = 1 s of playback (+ discovery wait, delay, linger)
    assert 1.0 <= wall < 12.0
    assert "played" in proc.stderr + proc.stdout


def test_rate_scales_playback_time(small_bag: Path, listener: Listener) -> None:
    proc = _play(small_bag, "--rate", "4.0", "--topics", "gait/torque_reference")
    assert proc.returncode == 0, proc.stderr
    recv = [r for r, _ in listener.take("/gait/torque_reference")]
    assert len(recv) == N
    span = (recv[-1] - recv[0]) / 1e9
    assert 0.35 < span < 0.8  # 1.99 s / 4 = 0.5 s


def test_start_offset_skips_the_beginning(small_bag: Path, listener: Listener) -> None:
    proc = _play(small_bag, "--start-offset", "1.5", "--rate", "5", "--topics", "gait/torque_reference")
    assert proc.returncode == 0, proc.stderr
    stamps = [_stamp(m) for m in _settle(listener, "/gait/torque_reference", 50)]
    assert stamps[0] == T0 + 1_500_000_000 and len(stamps) == 50


@pytest.mark.parametrize("mode", ["shift", "keep"])
def test_loop_restart(small_bag: Path, listener: Listener, mode: str) -> None:
    proc = _play(small_bag, "--loop", "--loops", "2", "--loop-stamps", mode, "--rate", "4")
    assert proc.returncode == 0, proc.stderr
    stamps = np.array([_stamp(m) for m in _settle(listener, "/gait/torque_reference", 2 * N)])
    clock = np.array([m.clock.sec * 1_000_000_000 + m.clock.nanosec for _, m in listener.take("/clock")])
    if mode == "shift":  # time keeps increasing across the restart: no jump downstream
        assert np.all(np.diff(stamps) > 0) and np.all(np.diff(clock) > 0)
        np.testing.assert_array_equal(stamps[N:] - stamps[:N], (N - 1) * 10_000_000 + 10_000_000)
    else:  # the recording as it is: one jump back at the restart
        assert np.sum(np.diff(stamps) < 0) == 1 and np.sum(np.diff(clock) < 0) == 1
        np.testing.assert_array_equal(stamps[N:], stamps[:N])


def test_bad_bag_is_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 9}\n")
    for bag in (tmp_path / "missing", tmp_path / "broken"):
        proc = subprocess.run([*PLAYER, str(bag)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr and f"bag_player: error: bag {bag}" in proc.stderr


def _same_cdr(a: bytes, b: bytes) -> bool:
    """Equal CDR payloads, but for the zero end padding (< 4 bytes) Fast DDS adds to a message
    whose length is not a multiple of 4 (rosbags writes none)."""
    short, long_ = sorted((a, b), key=len)
    return long_[: len(short)] == short and len(long_) - len(short) < 4 and not any(long_[len(short) :])


def test_record_stores_what_is_published(small_bag: Path, tmp_path: Path) -> None:
    from gait_estimator.replay.bag import BagReader

    out = tmp_path / "recorded"
    rec = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gait_estimator.cli.main",
            "record",
            "-o",
            str(out),
            "--storage",
            "mcap",
            "--topics",
            "/gait/torque_reference",
            "/imu/pelvis",
            "--duration",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(1.0)
        proc = _play(small_bag, "--rate", "2", "--topics", "/gait/torque_reference", "/imu/pelvis")
        assert proc.returncode == 0, proc.stderr
        time.sleep(1.0)
        rec.send_signal(signal.SIGINT)  # the bag is closed cleanly on SIGINT
        text = rec.communicate(timeout=30)[0]
    finally:
        if rec.poll() is None:
            rec.kill()
    assert rec.returncode == 0, text
    assert "recorded" in text
    with BagReader(out) as r, BagReader(small_bag) as src:
        got = [(t, bytes(d)) for t, _, _, d in r.raw_messages(["/gait/torque_reference"])]
        want = [(t, bytes(d)) for t, _, _, d in src.raw_messages(["/gait/torque_reference"])]
        n_imu = len(list(r.raw_messages(["/imu/pelvis"])))
    # reliable topic: every message, byte for byte (but for the CDR end padding)
    assert [t for t, _ in got] == [t for t, _ in want]
    assert all(_same_cdr(a, b) for (_, a), (_, b) in zip(got, want, strict=True))
    assert n_imu >= 0.98 * N


# -- replay into the live pipeline (replay.launch.py's flags) -------------------------------------


def test_restamp_maps_stamps_onto_host_time_at_the_playback_rate(small_bag: Path, listener: Listener) -> None:
    """At rate 2 the 10 ms spacing becomes 5 ms and every stamp is the host time it was published
    at: the pipeline (receipt and watchdog on host time) accepts a replay at any rate."""
    proc = _play(small_bag, "--restamp", "--rate", "2.0", "--topics", "gait/torque_reference")
    assert proc.returncode == 0, proc.stderr
    got = listener.take("/gait/torque_reference")
    assert len(got) == N
    stamps = np.array([_stamp(m) for _, m in got])
    np.testing.assert_allclose(np.diff(stamps), 5_000_000, atol=1)
    lag_ms = (np.array([r for r, _ in got]) - stamps) / 1e6
    assert np.all(np.abs(lag_ms) < 500), lag_ms  # published when stamped (loose: a loaded machine)


def test_topics_relative_follow_the_player_namespace(small_bag: Path, listener: Listener) -> None:
    from gait_estimator_msgs.msg import JointTorque
    from rclpy.qos import QoSProfile

    listener.subscribe(JointTorque, "/exo9/gait/torque_reference", QoSProfile(depth=1000))
    ns = ["--ros-args", "-r", "__ns:=/exo9"]
    proc = _play(small_bag, "--topics-relative", "--rate", "4", "--topics", "gait/torque_reference", *ns)
    assert proc.returncode == 0, proc.stderr
    assert len(_settle(listener, "/exo9/gait/torque_reference", N)) == N
    assert listener.take("/gait/torque_reference") == []


def test_wait_for_manager(small_bag: Path, listener: Listener) -> None:
    """Plays once lifecycle_manager/state (latched) reads 'active'; an error (exit 2, one line)
    when it reads 'failed: ...' or nothing within the time given."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    args = ("--wait-for-manager", "3", "--rate", "4", "--topics", "gait/torque_reference")
    none = _play(small_bag, *args)
    assert none.returncode == 2 and "Traceback" not in none.stderr
    assert "lifecycle_manager/state read 'nothing', not 'active'" in none.stderr
    assert listener.take("/gait/torque_reference") == []
    latched = QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
    )
    state = listener.publisher(String, "/lifecycle_manager/state", latched)
    state.publish(String(data="failed: could not configure 'x'"))
    failed = _play(small_bag, *args)
    assert failed.returncode == 2 and "reports 'failed: could not configure 'x''" in failed.stderr
    state.publish(String(data="active"))
    ok = _play(small_bag, *args)
    assert ok.returncode == 0, ok.stderr
    assert len(_settle(listener, "/gait/torque_reference", N)) == N


def test_double_sigint_exits_0(small_bag: Path, listener: Listener) -> None:
    """Ctrl-C under ros2 launch: SIGINT to the group, launch's own ~80 ms later."""
    p = subprocess.Popen(
        [*PLAYER, str(small_bag), "--loop", "--topics", "gait/torque_reference"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        listener.wait_for(lambda: len(listener.take("/gait/torque_reference")) > 10, 30, "playback")
        os.killpg(p.pid, signal.SIGINT)
        time.sleep(0.08)
        os.killpg(p.pid, signal.SIGINT)
        out, _ = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0 and "Traceback" not in out, out
