"""Bundled IMU input (issue 16): one ``ImuBundle`` per sampling instant from ``imu_driver``
(``imu_output`` both: the bundle and the per-IMU topics from the same samples) gives the same
synchronized frames and the same estimates as the per-IMU ``sensor_msgs/Imu`` topics, over real
DDS, with every node on the EventsExecutor (``executor`` events). Side by side: the per-IMU
consumer in the root namespace, the bundle consumer in ``/b`` reading the absolute
``/imu/bundle``."""

from __future__ import annotations

import subprocess
import time

import numpy as np
import pytest
from _node_harness import BIN, Listener, Procs, change_state, param_args

from gait_estimator.nodes.conversion import msg_to_frame, stamp_to_ns
from gait_estimator.nodes.topics import TOPIC_ESTIMATE, TOPIC_FRAME

pytestmark = pytest.mark.ros

RATE = 100.0
EVENTS = {"executor": "events"}


def _start_in_ns(procs: Procs, executable: str, ns: str, params: dict) -> None:
    """Like ``Procs.start`` with a namespace (relative topics land under it)."""
    name = f"{executable}_{ns}"
    args = [str(BIN / executable), "--ros-args", "-r", f"__ns:=/{ns}", "-r", f"__node:={executable}"]
    log = open(procs.log_dir / f"{name}.log", "w")
    p = subprocess.Popen(
        args + param_args(params), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    p._log = log  # type: ignore[attr-defined]
    procs.procs[name] = p


@pytest.fixture
def procs(tmp_path):
    p = Procs(tmp_path / "logs")
    yield p
    p.stop()


@pytest.fixture
def listener():
    lst = Listener("bundle_listener")
    yield lst
    lst.close()


def _driver(procs: Procs) -> None:
    procs.start(
        "imu_driver",
        params={"imu_output": "both", "rate_hz": RATE, "publish_reference": False, **EVENTS},
    )


def _by_stamp(msgs, convert) -> dict:
    return {stamp_to_ns(m.header.stamp): convert(m) for _, m in msgs}


def test_bundle_gives_the_same_frames_as_per_imu_topics(procs, listener):
    from gait_estimator_msgs.msg import ImuFrame
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.BEST_EFFORT)
    listener.subscribe(ImuFrame, "/" + TOPIC_FRAME, qos)
    listener.subscribe(ImuFrame, "/b/" + TOPIC_FRAME, qos)
    sync = {"rate_hz": RATE, "estimate_clock_offset": False, **EVENTS}
    procs.start("imu_synchronizer", params=sync)
    _start_in_ns(
        procs, "imu_synchronizer", "b", {**sync, "imu_input": "bundle", "bundle_topic": "/imu/bundle"}
    )
    time.sleep(1.0)
    _driver(procs)

    def common_valid() -> set:
        a = _by_stamp(listener.take("/" + TOPIC_FRAME), lambda m: all(m.valid))
        b = _by_stamp(listener.take("/b/" + TOPIC_FRAME), lambda m: all(m.valid))
        return {s for s in set(a) & set(b) if a[s] and b[s]}

    listener.wait_for(lambda: len(common_valid()) >= 150, 60, "150 valid frames on both paths")
    a = _by_stamp(listener.take("/" + TOPIC_FRAME), msg_to_frame)
    b = _by_stamp(listener.take("/b/" + TOPIC_FRAME), msg_to_frame)
    stamps = sorted(s for s in set(a) & set(b) if a[s].valid.all() and b[s].valid.all())
    assert len(stamps) >= 150
    for s in stamps:
        fa, fb = a[s], b[s]
        assert fa.locations == fb.locations
        np.testing.assert_array_equal(fa.acc, fb.acc, err_msg=f"acc at {s}")
        np.testing.assert_array_equal(fa.gyro, fb.gyro, err_msg=f"gyro at {s}")
        np.testing.assert_array_equal(fa.quat_xyzw, fb.quat_xyzw, err_msg=f"quat at {s}")
    # the bundle path is not a copy of a constant: the frames move
    assert np.ptp([a[s].acc[1, 0] for s in stamps]) > 0.1


def test_fused_bundle_input_gives_the_same_estimates(procs, listener, tmp_path):
    from gait_estimator_msgs.msg import JointTorque
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from gait_estimator.runtime.reference_models import make_tiny_lstm_model

    model = make_tiny_lstm_model(tmp_path / "tiny.pt", window=50, rate=RATE, stride=1, seed=3)
    qos = QoSProfile(depth=2000, reliability=ReliabilityPolicy.BEST_EFFORT)
    listener.subscribe(JointTorque, "/" + TOPIC_ESTIMATE, qos)
    listener.subscribe(JointTorque, "/b/" + TOPIC_ESTIMATE, qos)
    # window mode: an estimate depends on its window alone, not on when each node started
    fused = {"model_path": str(model), "inference_mode": "window", "estimate_clock_offset": False, **EVENTS}
    procs.start("gait_pipeline", params={**fused, "imu_source": "topics"})
    _start_in_ns(
        procs, "gait_pipeline", "b", {**fused, "imu_source": "bundle", "bundle_topic": "/imu/bundle"}
    )
    for node in ("gait_pipeline", "b/gait_pipeline"):
        for transition in (1, 3):  # configure, activate
            assert change_state(listener, node, transition, timeout=60.0), (node, transition)
    _driver(procs)

    def valid(topic) -> dict:
        return _by_stamp(
            [(t, m) for t, m in listener.take(topic) if m.valid], lambda m: np.array(m.torque, dtype=float)
        )

    listener.wait_for(
        lambda: len(set(valid("/" + TOPIC_ESTIMATE)) & set(valid("/b/" + TOPIC_ESTIMATE))) >= 150,
        90,
        "150 valid estimates of the same stamps on both inputs",
    )
    a, b = valid("/" + TOPIC_ESTIMATE), valid("/b/" + TOPIC_ESTIMATE)
    stamps = sorted(set(a) & set(b))
    for s in stamps:
        np.testing.assert_allclose(a[s], b[s], rtol=0, atol=1e-9, err_msg=f"estimate at {s}")
    assert np.ptp([a[s][0] for s in stamps]) > 1e-3  # real, moving estimates


def test_frame_message_is_refilled_in_place():
    from gait_estimator.core.samples import SyncFrame
    from gait_estimator.nodes.conversion import frame_to_msg

    locs = ("pelvis", "thigh_l")
    rng = np.random.default_rng(0)

    def frame(stamp):
        q = rng.normal(size=(2, 4))
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        return SyncFrame(
            stamp, locs, rng.normal(size=(2, 3)), rng.normal(size=(2, 3)), q, np.array([True, False])
        )

    msg = frame_to_msg(frame(1_000), 100.0)
    imus = list(msg.imus)
    second = frame(2_000)
    assert frame_to_msg(second, 100.0, msg) is msg
    assert all(a is b for a, b in zip(imus, msg.imus, strict=True))  # no Imu built for the second frame
    back = msg_to_frame(msg)
    assert back.stamp_ns == 2_000 and back.locations == locs and list(back.valid) == [True, False]
    np.testing.assert_array_equal(back.acc, second.acc)
    np.testing.assert_array_equal(back.quat_xyzw, second.quat_xyzw)
    assert [m.header.frame_id for m in msg.imus] == list(locs)


class _Capture:  # a publisher stand-in that keeps what the Bundler publishes (serialised, as DDS would)
    def __init__(self) -> None:
        self.sent = []

    def publish(self, msg) -> None:
        from gait_estimator_msgs.msg import ImuBundle
        from rclpy.serialization import deserialize_message, serialize_message

        self.sent.append(deserialize_message(serialize_message(msg), ImuBundle))


def test_bundler_and_bundle_values_round_trip_every_sample():
    """Driver side (``Bundler``) -> wire -> consumer side (``bundle_values``): every sample comes back
    with its own stamp and values; a sensor that repeats before the instant is complete sends the
    partial bundle first; a malformed bundle and foreign locations yield nothing."""
    from gait_estimator.nodes.conversion import bundle_values
    from gait_estimator.nodes.imu_driver import Bundler

    locs = ("pelvis", "thigh_l", "thigh_r")
    pub = _Capture()
    b = Bundler(pub, locs, "imu_")
    b.msg.rate_hz = 500.0
    rng = np.random.default_rng(1)
    sent = []
    for k, order in enumerate([(0, 1, 2), (2, 0, 1), (0, 1, 0, 2)]):  # the last: thigh_l drops a sample
        for i in order:
            acc, gyro = rng.normal(size=3), rng.normal(size=3)
            q = rng.normal(size=4)
            q /= np.linalg.norm(q)
            stamp = 10**9 + 2_000_000 * k + 1000 * i + (7 if len(sent) > 7 else 0)
            b.add(locs[i], stamp, acc, gyro, q)
            sent.append((locs[i], stamp, [*acc, *gyro, *q]))
    # the repeat sends the partial bundle; the instant after it waits for thigh_l (not sent yet)
    assert [len(m.locations) for m in pub.sent] == [3, 3, 2]
    assert pub.sent[0].header.frame_id == "imu_hub" and pub.sent[0].rate_hz == 500.0
    got = [v for m in pub.sent for v in bundle_values(m, frozenset(locs))]
    key = lambda v: (v[1], v[0])  # noqa: E731
    assert sorted(got, key=key) == sorted(sent[:-2], key=key)  # exact: float64 on the wire
    assert [v[0] for v in bundle_values(pub.sent[0], frozenset({"thigh_r"}))] == ["thigh_r"]
    bad = pub.sent[0]
    bad.orientation = list(bad.orientation)[:-1]
    assert bundle_values(bad, frozenset(locs)) == []
