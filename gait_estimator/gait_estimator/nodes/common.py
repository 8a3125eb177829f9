"""Shared pieces of the rclpy adapters: QoS, topic names, message <-> numpy conversion,
the guarded lifecycle node base, diagnostics and the ``main`` runner.

Conversion helpers are pure functions (message in, numpy out or the reverse); tests call
them without spinning a node.

QoS (DESIGN.md): sensor streams (``imu/<location>``, ``gait/imu_frame``, ``gait/features``,
``gait/torque_estimate``, ``gait/torque_reference``) use SensorDataQoS (best effort, depth 5:
a late sample is worthless; the pipeline's own subscriptions keep ``SENSOR_SUB_DEPTH`` so a
stalled process catches up instead of dropping); ``exo/torque_command`` uses reliable QoS, volatile, depth 10;
``exo/emergency_stop`` and ``exo/reset`` use reliable QoS, depth 10.
"""

from __future__ import annotations

import array
import json
import os
import sys
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gait_estimator.errors import ConfigError, GaitEstimatorError
from gait_estimator.runtime.metadata import ModelMetadata

# Topic names (relative: a namespace pushes them all).
TOPIC_IMU = "imu/{location}"
TOPIC_FRAME = "gait/imu_frame"
TOPIC_FEATURES = "gait/features"
TOPIC_ESTIMATE = "gait/torque_estimate"
TOPIC_REFERENCE = "gait/torque_reference"
TOPIC_COMMAND = "exo/torque_command"
TOPIC_ESTOP = "exo/emergency_stop"  # std_msgs/Bool: true latches the e-stop
TOPIC_RESET = "exo/reset"  # std_msgs/Empty: clears a latched fault / e-stop
TOPIC_DIAGNOSTICS = "/diagnostics"


def sensor_qos(depth: int | None = None):
    """SensorDataQoS; ``depth`` for a subscription that must ride out a scheduling stall of this
    process without losing samples (best effort, keep last ``depth``: compatible with every
    SensorDataQoS publisher). Subscriptions of the pipeline use ``SENSOR_SUB_DEPTH``."""
    from rclpy.qos import qos_profile_sensor_data

    if depth is None:
        return qos_profile_sensor_data
    from rclpy.qos import QoSProfile

    return QoSProfile(
        history=qos_profile_sensor_data.history,
        depth=int(depth),
        reliability=qos_profile_sensor_data.reliability,
        durability=qos_profile_sensor_data.durability,
    )


# Subscriber queue of the sensor streams inside the pipeline: 1 s of samples at 100 Hz (0.2 s at
# 500 Hz); a stalled callback then catches up instead of losing samples (which would make gaps,
# hence invalid frames and a latched fault, out of a scheduling hiccup).
SENSOR_SUB_DEPTH = 100


def command_qos():
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=10,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


# Liveliness lease the command publisher offers (AUTOMATIC: asserted by the DDS threads, so a
# stalled executor stays alive and only a dead process loses it). The command sentinel requests
# a lease >= this and learns of a kill -9 about one lease later (measured 38-45 ms at 50 ms).
COMMAND_LIVELINESS_LEASE_S = 0.05


def command_publisher_qos():
    """``command_qos`` plus the liveliness lease: for the ``exo/torque_command`` publisher only.
    A subscription with the default (infinite) lease still matches it; a subscription that
    requested this lease would not match a publisher without one (e.g. a plain e-stop), so the
    subscriptions keep ``command_qos``."""
    from rclpy.duration import Duration
    from rclpy.qos import LivelinessPolicy

    q = command_qos()
    q.liveliness = LivelinessPolicy.AUTOMATIC
    q.liveliness_lease_duration = Duration(nanoseconds=int(COMMAND_LIVELINESS_LEASE_S * 1e9))
    return q


# --------------------------------------------------------------------------- time


def stamp_to_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def set_stamp(stamp, ns: int) -> None:
    ns = int(ns)
    stamp.sec, stamp.nanosec = divmod(ns, 1_000_000_000)


# --------------------------------------------------------------------------- models


def default_model_path() -> Path:
    """The default model: the source tree's ``models/default.pt`` or the installed share copy."""
    here = Path(__file__).resolve()
    candidates = [here.parents[2] / "models" / "default.pt"]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("gait_estimator")) / "models" / "default.pt")
    except Exception:
        pass
    for c in candidates:
        if c.is_file():
            return c
    return candidates[0]


def read_model_metadata(path: str | os.PathLike) -> ModelMetadata:
    """Read only the metadata of a model file of any type (TorchScript, .pt2, ONNX), without
    importing torch or ONNX Runtime."""
    from gait_estimator.runtime.metadata import read_file_metadata

    return read_file_metadata(path)


# --------------------------------------------------------------------------- conversion


def fill_imu(msg, stamp_ns: int, frame_id: str, acc, gyro, quat_xyzw, cov: Sequence[float] | None = None):
    """Fill a ``sensor_msgs/Imu`` in place. ``cov`` = (orientation_var, gyro_var, acc_var)."""
    set_stamp(msg.header.stamp, stamp_ns)
    msg.header.frame_id = frame_id
    a, g, q = msg.linear_acceleration, msg.angular_velocity, msg.orientation
    a.x, a.y, a.z = float(acc[0]), float(acc[1]), float(acc[2])
    g.x, g.y, g.z = float(gyro[0]), float(gyro[1]), float(gyro[2])
    q.x, q.y, q.z, q.w = float(quat_xyzw[0]), float(quat_xyzw[1]), float(quat_xyzw[2]), float(quat_xyzw[3])
    if cov is not None:
        ov, gv, av = cov
        msg.orientation_covariance = _diag3(ov)
        msg.angular_velocity_covariance = _diag3(gv)
        msg.linear_acceleration_covariance = _diag3(av)
    return msg


def _diag3(v: float) -> array.array:
    v = float(v)
    return array.array("d", [v, 0.0, 0.0, 0.0, v, 0.0, 0.0, 0.0, v])


def imu_arrays(msg) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """``sensor_msgs/Imu`` -> (stamp_ns, acc[3], gyro[3], quat_xyzw[4]) float64."""
    a, g, q = msg.linear_acceleration, msg.angular_velocity, msg.orientation
    return (
        stamp_to_ns(msg.header.stamp),
        np.array((a.x, a.y, a.z)),
        np.array((g.x, g.y, g.z)),
        np.array((q.x, q.y, q.z, q.w)),
    )


def imu_values(msg) -> tuple[int, list[float]]:
    """``sensor_msgs/Imu`` -> (stamp_ns, [acc(3), gyro(3), quat_xyzw(4)]): the synchronizer's
    ``push_values`` input, built without numpy (one per sample on the hot path)."""
    a, g, q = msg.linear_acceleration, msg.angular_velocity, msg.orientation
    return stamp_to_ns(msg.header.stamp), [a.x, a.y, a.z, g.x, g.y, g.z, q.x, q.y, q.z, q.w]


def sample_values(acc, gyro, quat_xyzw) -> list[float]:
    """A source's sample (arrays or sequences) -> [acc(3), gyro(3), quat_xyzw(4)] plain floats."""
    return [*float_list(acc), *float_list(gyro), *float_list(quat_xyzw)]


def float_list(x) -> list:
    return x.tolist() if hasattr(x, "tolist") else list(x)


def bundle_values(msg, locations) -> list[tuple[str, int, list[float]]]:
    """A bundled input (``gait_estimator_msgs/ImuBundle``) -> ``(location, stamp_ns, [acc(3),
    gyro(3), quat_xyzw(4)])`` of each sample whose location is in ``locations`` (others are
    ignored, as an unsubscribed ``imu/<location>`` topic would be), each with its own stamp. A
    malformed bundle (array lengths that do not match its locations) yields nothing: its pairing is
    unknown."""
    n = len(msg.locations)
    acc, gyro, quat = msg.linear_acceleration, msg.angular_velocity, msg.orientation
    if len(msg.stamp_ns) != n or len(acc) != 3 * n or len(gyro) != 3 * n or len(quat) != 4 * n:
        return []
    acc, gyro, quat, stamps = list(acc), list(gyro), list(quat), list(msg.stamp_ns)
    return [
        (loc, stamps[i], acc[3 * i : 3 * i + 3] + gyro[3 * i : 3 * i + 3] + quat[4 * i : 4 * i + 4])
        for i, loc in enumerate(msg.locations)
        if loc in locations
    ]


def frame_to_msg(frame, rate_hz: float, msg=None):
    """``core.samples.SyncFrame`` -> ``gait_estimator_msgs/ImuFrame`` (``msg``: one to refill)."""
    from gait_estimator_msgs.msg import ImuFrame
    from sensor_msgs.msg import Imu

    msg = ImuFrame() if msg is None else msg
    set_stamp(msg.header.stamp, frame.stamp_ns)
    locations = list(frame.locations)
    if msg.locations != locations or len(msg.imus) != len(locations):
        msg.locations = locations
        msg.imus = [Imu() for _ in locations]
    # a reused msg keeps its Imu objects: filled in place, none built per frame (publish copies)
    for i, (loc, m) in enumerate(zip(locations, msg.imus, strict=True)):
        fill_imu(m, frame.stamp_ns, loc, frame.acc[i], frame.gyro[i], frame.quat_xyzw[i])
    msg.valid = [bool(v) for v in frame.valid]
    msg.rate_hz = float(rate_hz)
    return msg


def msg_to_frame(msg):
    """``gait_estimator_msgs/ImuFrame`` -> ``core.samples.SyncFrame`` (float64 arrays; one array
    built per frame, not three per IMU: this runs per frame in the windowing node)."""
    from gait_estimator.core.samples import SyncFrame

    n = len(msg.locations)
    if len(msg.imus) != n:
        raise ValueError(f"ImuFrame has {len(msg.imus)} imus for {n} locations")
    rows = []
    for m in msg.imus:
        a, g, q = m.linear_acceleration, m.angular_velocity, m.orientation
        rows.append((a.x, a.y, a.z, g.x, g.y, g.z, q.x, q.y, q.z, q.w))
    v = np.array(rows, dtype=np.float64).reshape(n, 10)
    return SyncFrame(
        stamp_to_ns(msg.header.stamp), tuple(msg.locations), v[:, 0:3], v[:, 3:6], v[:, 6:10],
        np.array(msg.valid, dtype=bool),
    )


def window_to_msg(
    window: np.ndarray,
    stamp_ns: int,
    channels: Sequence[str],
    rate_hz: float,
    valid: bool,
    normalized: bool = True,
    msg=None,
):
    """``[T, C]`` window -> ``gait_estimator_msgs/FeatureWindow`` (float32, row-major)."""
    from gait_estimator_msgs.msg import FeatureWindow

    msg = FeatureWindow() if msg is None else msg
    set_stamp(msg.header.stamp, stamp_ns)
    t, c = window.shape
    msg.num_samples, msg.num_channels = int(t), int(c)
    msg.channel_names = list(channels)
    data = array.array("f")
    data.frombytes(np.ascontiguousarray(window, dtype=np.float32).tobytes())
    msg.data = data
    msg.normalized = bool(normalized)
    msg.sample_rate_hz = float(rate_hz)
    msg.valid = bool(valid)
    return msg


def msg_to_window(msg) -> tuple[np.ndarray, int, bool]:
    """``FeatureWindow`` -> (window[T, C] float32, stamp_ns, valid); checks the shape."""
    data = (
        np.frombuffer(msg.data, dtype=np.float32)
        if isinstance(msg.data, array.array)
        else np.asarray(msg.data, dtype=np.float32)
    )
    if data.size != msg.num_samples * msg.num_channels:
        raise ValueError(
            f"FeatureWindow data has {data.size} values, expected {msg.num_samples} x {msg.num_channels}"
        )
    return data.reshape(msg.num_samples, msg.num_channels), stamp_to_ns(msg.header.stamp), bool(msg.valid)


def command_msg(out, stamp_ns: int, joints, active: bool, subject_mass: float, msg=None, confidence=1.0):
    """The exoskeleton command for a ``CommandShaper.update`` output; ``(message, valid)``.

    ``valid`` is the shaper's: true while the torque is a shaped command a controller may apply,
    ramp-outs included (a deactivation ramps out with ``valid`` true and STATUS_RAMPING; the node
    being inactive only stops new assistance). Whatever the shaper says, a message with ``valid``
    false carries exactly 0.0 (``joint_torque_msg``). Shared by torque_command and the fused node.
    ``active`` is kept for the callers' bookkeeping; ``confidence`` is the estimate's.
    """
    from gait_estimator_msgs.msg import JointTorque

    valid = bool(out.valid)
    m = joint_torque_msg(
        stamp_ns,
        JointTorque.SOURCE_COMMAND,
        joints,
        out.torque,
        status=out.status,
        valid=valid,
        subject_mass=subject_mass,
        msg=msg,
        confidence=confidence,
    )
    return m, m.valid


def joint_torque_msg(
    stamp_ns: int,
    source: int,
    joints: Sequence[str],
    torque,
    status=None,
    valid: bool = True,
    subject_mass: float = 0.0,
    gait_phase: float = float("nan"),
    msg=None,
    confidence: float = 1.0,
):
    """Build a ``gait_estimator_msgs/JointTorque``. ``status`` defaults to OK (or INVALID when
    not ``valid``). Non-finite torques are replaced by 0 with STATUS_INVALID (never on the wire),
    and a message that is not valid carries exactly 0.0 on every joint (the message contract)."""
    from gait_estimator_msgs.msg import JointTorque

    msg = JointTorque() if msg is None else msg
    set_stamp(msg.header.stamp, stamp_ns)
    msg.source = int(source)
    msg.joint_names = list(joints)
    t = np.asarray(torque, dtype=np.float64).reshape(-1)
    if status is None:
        st = np.full(t.shape, JointTorque.STATUS_OK if valid else JointTorque.STATUS_INVALID, np.uint8)
    else:
        st = np.asarray(status, dtype=np.uint8).reshape(-1).copy()
    bad = ~np.isfinite(t)
    if bad.any():
        t = np.where(bad, 0.0, t)
        st[bad] = JointTorque.STATUS_INVALID
        valid = False
    if not valid:  # invalid => 0.0, whatever the caller passed
        t = np.zeros_like(t)
        st[:] = JointTorque.STATUS_INVALID
    msg.torque = array.array("d", t.tobytes())
    msg.joint_status = st.tobytes()
    msg.valid = bool(valid)
    msg.subject_mass = float(subject_mass)
    msg.gait_phase = float(gait_phase)
    msg.confidence = float(confidence) if np.isfinite(confidence) else 0.0
    return msg


def joint_torque_arrays(msg) -> tuple[int, np.ndarray, np.ndarray, bool]:
    """``JointTorque`` -> (stamp_ns, torque[J], status[J] uint8, valid)."""
    st = msg.joint_status
    status = (
        np.frombuffer(bytes(st), dtype=np.uint8)
        if isinstance(st, (bytes, bytearray))
        else np.array([int(s) if not isinstance(s, bytes) else s[0] for s in st], dtype=np.uint8)
    )
    return stamp_to_ns(msg.header.stamp), np.array(msg.torque, dtype=np.float64), status, bool(msg.valid)


# --------------------------------------------------------------------------- diagnostics
# The conventions of diagnostic_updater (ros/diagnostics), which is C++/rclpy-from-source only:
# status name "<node>: <task>", a hardware_id, levels OK/WARN/ERROR/STALE, and per output topic
# a "<topic> topic status" merging a FrequencyStatus and a TimeStampStatus (diagnostic_updater's
# TopicDiagnostic) with its key names, so diagnostic_aggregator and rqt_robot_monitor read them.

OK, WARN, ERROR, STALE = 0, 1, 2, 3


class FrequencyStatus:
    """diagnostic_updater.FrequencyStatus: events counted by ``tick``; every ``run`` compares the
    rate over the last ``window_size`` runs with [min_hz, max_hz] widened by ``tolerance``."""

    def __init__(self, min_hz: float, max_hz: float, tolerance: float = 0.1, window_size: int = 5) -> None:
        self.min_hz, self.max_hz, self.tolerance = float(min_hz), float(max_hz), float(tolerance)
        self.count = 0
        now = time.monotonic_ns()
        self._hist = [(0, now)] * int(window_size)
        self._i = 0

    def tick(self) -> None:
        self.count += 1

    def run(self, now_ns: int | None = None) -> tuple[int, str, dict]:
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        seq, t0 = self._hist[self._i]
        events, window = self.count - seq, max((now_ns - t0) / 1e9, 1e-9)
        self._hist[self._i] = (self.count, now_ns)
        self._i = (self._i + 1) % len(self._hist)
        freq = events / window
        if events == 0:
            level, msg = ERROR, "No events recorded."
        elif freq < self.min_hz * (1 - self.tolerance):
            level, msg = WARN, "Frequency too low."
        elif freq > self.max_hz * (1 + self.tolerance):
            level, msg = WARN, "Frequency too high."
        else:
            level, msg = OK, "Desired frequency met"
        values = {
            "Events in window": events,
            "Events since startup": self.count,
            "Duration of window (s)": window,
            "Actual frequency (Hz)": freq,
        }
        if self.min_hz == self.max_hz:
            values["Target frequency (Hz)"] = self.min_hz
        if self.min_hz > 0:
            values["Minimum acceptable frequency (Hz)"] = self.min_hz * (1 - self.tolerance)
        if np.isfinite(self.max_hz):
            values["Maximum acceptable frequency (Hz)"] = self.max_hz * (1 + self.tolerance)
        return level, msg, values


class TimeStampStatus:
    """diagnostic_updater.TimeStampStatus: the delay ``receive - header.stamp`` (s) of the stamps
    ``tick``ed since the last ``run``, against [min_acceptable, max_acceptable]."""

    def __init__(self, min_acceptable: float = -1.0, max_acceptable: float = 5.0) -> None:
        self.min_acceptable, self.max_acceptable = float(min_acceptable), float(max_acceptable)
        self.early = self.late = self.zero = 0
        self._reset()

    def _reset(self) -> None:
        self._min = self._max = 0.0
        self._valid = self._zero_seen = False

    def tick(self, stamp_ns: int, now_ns: int | None = None) -> None:
        if stamp_ns == 0:
            self._zero_seen = True
            return
        d = ((time.time_ns() if now_ns is None else now_ns) - stamp_ns) / 1e9
        if not self._valid:
            self._min = self._max = d
            self._valid = True
        self._min, self._max = min(self._min, d), max(self._max, d)

    def run(self) -> tuple[int, str, dict]:
        level, msg = OK, "Timestamps are reasonable."
        if not self._valid:
            level, msg = WARN, "No data since last update."
        else:
            if self._min < self.min_acceptable:
                level, msg = ERROR, "Timestamps too far in future seen."
                self.early += 1
            if self._max > self.max_acceptable:
                level, msg = ERROR, "Timestamps too far in past seen."
                self.late += 1
        if self._zero_seen:
            level, msg = ERROR, "Zero timestamp seen."
            self.zero += 1
        values = {
            "Earliest timestamp delay:": self._min,
            "Latest timestamp delay:": self._max,
            "Earliest acceptable timestamp delay:": self.min_acceptable,
            "Latest acceptable timestamp delay:": self.max_acceptable,
            "Late diagnostic update count:": self.late,
            "Early diagnostic update count:": self.early,
            "Zero seen diagnostic update count:": self.zero,
        }
        self._reset()
        return level, msg, values


def merge_summary(level: int, message: str, other_level: int, other_message: str) -> tuple[int, str]:
    """diagnostic_updater's mergeSummary: the worse level wins; equal non-OK levels join messages."""
    if other_level > level:
        return other_level, other_message
    if other_level == level and level != OK and other_message and other_message != message:
        return level, f"{message}; {other_message}" if message else other_message
    return level, message


class TopicStatus:
    """diagnostic_updater's TopicDiagnostic for one published topic: frequency and stamp delay in
    one status "<node>: <topic> topic status". ``active()`` false (e.g. a deactivated node) and
    no events in the window report STALE: nothing is expected, so silence is no error."""

    def __init__(self, topic: str, min_hz: float, max_hz: float, active=None, **stamp_limits) -> None:
        self.topic = topic
        self.freq = FrequencyStatus(min_hz, max_hz)
        self.stamp = TimeStampStatus(**stamp_limits)
        self.active = active
        self._lock = threading.Lock()  # publishes may come from another thread than the timer's

    def tick(self, msg) -> None:
        with self._lock:
            self.freq.tick()
            self.stamp.tick(stamp_to_ns(msg.header.stamp))

    def run(self) -> tuple[int, str, dict]:
        with self._lock:
            level, msg, values = self.freq.run()
            s_level, s_msg, s_values = self.stamp.run()
        values.update(s_values)
        if self.active is not None and not self.active() and values["Events in window"] == 0:
            return STALE, "not active: no output expected", values
        return (*merge_summary(level, msg, s_level, s_msg), values)


def estimate_rate_hz(metadata, mode: str, fused: bool = False) -> float:
    """Expected rate of ``gait/torque_estimate``: one estimate per window (every ``stride`` frames);
    the fused node in streaming mode steps and publishes every frame."""
    per_frame = fused and mode == "streaming"
    return float(metadata.sample_rate_hz) / (1 if per_frame else max(1, int(metadata.stride)))


_TOPIC_STATUSES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # node -> {topic: TopicStatus}


def monitor_output(node, publisher, min_hz: float, max_hz: float, active=None, **stamp_limits):
    """Count every ``publisher.publish`` of ``node`` for a ``TopicStatus`` that
    ``diagnostic_array(node, ...)`` appends to the node's diagnostics; returns ``publisher``.

    The publisher keeps its type (its owner destroys it as before); only this instance's
    ``publish`` is wrapped, so no publish path can forget the count."""
    status = TopicStatus(publisher.topic_name, min_hz, max_hz, active, **stamp_limits)
    _TOPIC_STATUSES.setdefault(node, {})[publisher.topic_name] = status
    publish = publisher.publish

    def counted(msg) -> None:
        publish(msg)
        status.tick(msg)

    publisher.publish = counted
    return publisher


def diagnostic_status(node, task: str, level: int, message: str, values: dict, hardware_id: str = ""):
    """One ``DiagnosticStatus`` named "<node>: <task>" (diagnostic_updater's naming); hardware_id
    defaults to the node's fully qualified name (diagnostic_updater warns on an empty one)."""
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    st = DiagnosticStatus(
        level=bytes([level]),
        name=f"{node.get_name()}: {task}",
        message=message,
        hardware_id=hardware_id or node.get_fully_qualified_name(),
    )
    st.values = [
        KeyValue(key=str(k), value=(f"{v:.6g}" if isinstance(v, float) else str(v)))
        for k, v in values.items()
    ]
    return st


def diagnostic_array(node, name: str, level: int, message: str, values: dict, hardware_id: str = ""):
    """The node's ``/diagnostics`` message: its own status (``name`` "<node>: <task>") followed by
    one topic status per output registered with ``monitor_output``."""
    from diagnostic_msgs.msg import DiagnosticArray

    prefix = f"{node.get_name()}: "
    task = name[len(prefix):] if name.startswith(prefix) else name
    arr = DiagnosticArray()
    arr.header.stamp = node.get_clock().now().to_msg()
    arr.status = [diagnostic_status(node, task, level, message, values, hardware_id)] + [
        diagnostic_status(node, f"{topic} topic status", *ts.run(), hardware_id)
        for topic, ts in _TOPIC_STATUSES.get(node, {}).items()
    ]
    return arr


def shaper_status(shaper, active: bool, values: dict) -> tuple[int, str]:
    """Diagnostic level and message of a command node from its shaper (adds the shaper's counters
    and confidence to ``values``): ERROR on a latched fault or e-stop, WARN while low confidence
    holds the command at zero (the reason is the message), else OK."""
    if shaper is None:
        return 0, "unconfigured"
    values.update({f"shaper_{k}": v for k, v in shaper.counters.items()})
    values["confidence"] = float(shaper.confidence)
    if shaper.fault:
        return 2, str(shaper.fault)
    if shaper.reason:
        return 1, shaper.reason
    return 0, "active" if active else "inactive"


class LatencyStats:
    """Rolling percentiles of durations (ns) over the last ``n`` values, for diagnostics."""

    def __init__(self, n: int = 2000) -> None:
        self._buf = np.zeros(n, dtype=np.int64)
        self._n = 0
        self._i = 0
        self._last_stamp: int | None = None

    def add_stamp(self, stamp_ns: int, now_ns: int) -> None:
        """Add ``now - stamp`` once per stamp: repeats of a stamp (the control timer re-sending the
        last estimate's command) are not latency samples."""
        if stamp_ns != self._last_stamp:
            self._last_stamp = stamp_ns
            self.add(now_ns - stamp_ns)

    def add(self, ns: int) -> None:
        self._buf[self._i] = ns
        self._i = (self._i + 1) % len(self._buf)
        self._n = min(self._n + 1, len(self._buf))

    def summary_ms(self) -> dict[str, float]:
        if self._n == 0:
            return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
        v = self._buf[: self._n] / 1e6
        return {
            "p50_ms": float(np.percentile(v, 50)),
            "p99_ms": float(np.percentile(v, 99)),
            "max_ms": float(v.max()),
        }


# --------------------------------------------------------------------------- lifecycle guard


def guard_change_state(node) -> None:
    """Protect a ``rclpy.lifecycle.LifecycleNode`` against invalid ``change_state`` requests.

    rclpy 7.1.x raises ``RCLError`` out of ``spin`` when a ``change_state`` request names a
    transition that is not available from the current state (ros2/rclpy#1209), which kills the
    node. We replace the service callback by one that checks the requested id/label against the
    available transitions first and answers ``success=False`` for an invalid one (logged), and
    that turns any other error of the transition machinery into ``success=False`` as well.
    """
    srv = getattr(node, "_service_change_state", None)
    if srv is None:
        return
    original = srv.callback
    sm = node._state_machine

    def guarded(req, resp):
        try:
            available = {t[0]: t[1] for t in sm.available_transitions}
            tid, label = req.transition.id, req.transition.label
            ok = (label in available.values()) if label else (tid in available)
            if not ok:
                node.get_logger().warning(
                    f"rejected change_state request (id={tid}, label={label!r}): not available from "
                    f"state '{sm.current_state[1]}'; available: {sorted(available.values())}"
                )
                resp.success = False
                return resp
            return original(req, resp)
        except Exception as exc:
            node.get_logger().error(f"change_state request failed: {exc!r}")
            resp.success = False
            return resp

    srv.callback = guarded


def run_node(factory, args: list[str] | None = None, executor_factory=None) -> int:
    """``main`` of every executable: init, build, spin, shut down; ConfigError -> exit 2.

    SIGINT/SIGTERM are handled here rather than by rclpy's handler, which shuts the context down
    at once: a lifecycle node first goes through its ``shutdown`` transition while it can still
    publish (the command nodes send a last zero command), then the node is destroyed.

    Ctrl-C in a terminal running ``ros2 launch`` reaches every process twice: the terminal sends
    SIGINT to the whole process group, then launch sends its own ~80 ms later. The handlers only set
    a flag, and once the node is down SIGINT is ignored: Python's exit restores the default action of
    every signal it handles (not of ignored ones), and a second SIGINT landing while DDS tears down
    would kill the process (exit -2) or, with the default handler back, print a traceback."""
    import signal
    import threading

    import rclpy
    from rclpy.clock import Clock, ClockType
    from rclpy.executors import Executor, ExternalShutdownException
    from rclpy.lifecycle import LifecycleNode
    from rclpy.signals import SignalHandlerOptions

    args = sys.argv if args is None else args
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    code = 0
    try:
        node = factory()
        executor = (executor_factory or make_executor(node))()
        executor.add_node(node)
        apply_node_realtime(node)
        freeze_heap()
        # A signal only sets the flag; this timer guarantees a wake-up to see it. (spin_once with a
        # timeout would instead build a timer per wait: measured p99 latency x10 in the chain.) On the
        # steady clock: with use_sim_time a ROS-time timer stops with /clock and shutdown would hang.
        wake = node.create_timer(0.1, lambda: None, clock=Clock(clock_type=ClockType.STEADY_TIME))
        try:
            # rclpy 7.1.6's EventsExecutor never returns from spin_once() without a timeout, not even
            # after a callback ran (measured); with one it returns after each callback, and its C++
            # wait builds nothing per call. SingleThreadedExecutor: no timeout (see above).
            timeout = None if isinstance(executor, Executor) else 1.0
            while not stop.is_set() and rclpy.ok():
                executor.spin_once(timeout_sec=timeout)
            node.destroy_timer(wake)
            if isinstance(node, LifecycleNode) and rclpy.ok():
                state = node._state_machine.current_state[1]
                if state in ("unconfigured", "inactive", "active"):
                    node.trigger_shutdown()  # on_shutdown releases (last zero command)
        finally:
            executor.shutdown(timeout_sec=1.0)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ConfigError, GaitEstimatorError) as exc:
        print(f"[FATAL] {exc}", file=sys.stderr, flush=True)
        code = 2
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if callable(close):
                try:
                    close()
                except Exception as exc:
                    print(f"[WARN] close failed: {exc!r}", file=sys.stderr)
            node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return code


def apply_node_realtime(node, period_s: float = 1.0):
    """The node's real-time parameters (``params.REALTIME``: ``thread_priority``, ``realtime_policy``,
    ``cpu_affinity``, ``lock_memory``), applied once before the spin loop to every thread the
    process has (the executor thread and DDS's; later threads inherit). When anything is requested,
    the result is logged in one line (a warning naming what was refused and how to allow it) and
    published on ``/diagnostics`` as "<node>: real-time scheduling" every ``period_s``. Returns the
    ``core.realtime.RealtimeResult`` (None for a node without these parameters)."""
    params = getattr(node, "params", None)
    if not isinstance(params, dict) or "thread_priority" not in params:
        return None
    from diagnostic_msgs.msg import DiagnosticArray

    from gait_estimator.core.realtime import apply_realtime, settings_from_params

    result = apply_realtime(settings_from_params(params), whole_process=True)
    node.realtime = result
    if result.settings.requested:  # (off: nothing to say, behaviour as before)
        (node.get_logger().warning if result.warnings else node.get_logger().info)(result.line())
        level = OK if result.ok else WARN
        message = "applied" if result.ok else "refused (normal scheduling): " + " | ".join(result.warnings)
        pub = node.create_publisher(DiagnosticArray, TOPIC_DIAGNOSTICS, 10)

        def report() -> None:
            arr = DiagnosticArray()
            arr.header.stamp = node.get_clock().now().to_msg()
            arr.status = [diagnostic_status(node, "real-time scheduling", level, message, result.values())]
            pub.publish(arr)

        node.create_timer(period_s, report)
    return result


def make_executor(node):
    """The executor class the node's ``executor`` parameter names (``params.EXECUTOR``; read once, at
    start). ``events``: rclpy's EventsExecutor, a C++ event queue with no Python wait-set rebuilt per
    wake-up (bench_latency compares the two); a node without the parameter gets SingleThreadedExecutor."""
    from rclpy.executors import SingleThreadedExecutor

    name = node.get_parameter("executor").value if node.has_parameter("executor") else "single_threaded"
    if name == "events":
        from rclpy.experimental import EventsExecutor

        return EventsExecutor
    return SingleThreadedExecutor


def freeze_heap() -> None:
    """Collect once, then move every live object (torch, rclpy, the model) out of the cyclic GC's
    reach: a full collection over the ~220k objects of a loaded node takes ~45 ms (measured), a
    pause the real-time path must not take. Called at start-up and after a model is loaded."""
    import gc

    gc.collect()
    gc.freeze()


def deliver_last(publisher, timeout_s: float = 0.5) -> bool:
    """Wait (bounded) until reliable subscribers acknowledged what ``publisher`` sent: the last zero
    command before a publisher is destroyed must reach the controller, not die in a send queue."""
    from rclpy.duration import Duration

    try:
        return bool(publisher.wait_for_all_acked(Duration(nanoseconds=int(timeout_s * 1e9))))
    except Exception:  # publisher or context already gone: nothing left to deliver
        return False


def log_estop(node, callback_ns: int, published_ns: int) -> None:
    """Log an e-stop with its timing (host ns): the e-stop callback ran at ``callback_ns``, the zero
    command was published at ``published_ns`` (tests measure the e-stop path from these)."""
    node.get_logger().warning(
        f"emergency stop: zero command published {(published_ns - callback_ns) / 1e6:.3f} ms after the "
        f"e-stop callback started (callback_ns={callback_ns} published_ns={published_ns}); "
        "latched until exo/reset"
    )


def dump_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, default=float)
