"""Message <-> numpy conversion for the nodes: pure functions (message in, numpy out or the
reverse) that tests call without spinning a node. Stamps are integer nanoseconds (DESIGN.md);
quaternions are x, y, z, w as in ROS messages.
"""

from __future__ import annotations

import array
from collections.abc import Sequence

import numpy as np


def stamp_to_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def set_stamp(stamp, ns: int) -> None:
    ns = int(ns)
    stamp.sec, stamp.nanosec = divmod(ns, 1_000_000_000)


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
    normalization_id: str = "",
    gait_phase: float = float("nan"),
):
    """``[T, C]`` window -> ``gait_estimator_msgs/FeatureWindow`` (float32, row-major);
    ``normalization_id``: the model metadata's, when ``normalized``."""
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
    msg.normalization_id = normalization_id if normalized else ""
    msg.gait_phase = float(gait_phase)
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


def command_msg(
    out, stamp_ns: int, joints, active: bool, subject_mass: float, msg=None, confidence=1.0,
    gait_phase: float = float("nan"),
):
    """The exoskeleton command for a ``CommandShaper.update`` output; ``(message, valid)``.

    ``valid`` is the shaper's: true while the torque is a shaped command a controller may apply,
    ramp-outs included (a disabled shaper ramps out with ``valid`` true and STATUS_RAMPING; the node
    being inactive only stops new assistance). Whatever the shaper says, a message with ``valid``
    false carries exactly 0.0 (``joint_torque_msg``). Shared by torque_command and the fused node.
    ``active`` is kept for the callers' bookkeeping; ``confidence`` and ``gait_phase`` are the
    estimate's.
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
        gait_phase=gait_phase,
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


def gait_state_msg(state, msg=None):
    """``core.gait_phase.GaitPhaseState`` -> ``gait_estimator_msgs/GaitState`` (``msg``: refilled)."""
    from gait_estimator_msgs.msg import GaitState

    msg = GaitState() if msg is None else msg
    set_stamp(msg.header.stamp, state.stamp_ns)
    msg.phase = [float(v) for v in state.phase]
    msg.phase_valid = [bool(v) for v in state.phase_valid]
    msg.state = [int(v) for v in state.state]
    msg.last_heel_strike_ns = [int(v) for v in state.last_heel_strike_ns]
    msg.last_toe_off_ns = [int(v) for v in state.last_toe_off_ns]
    msg.stride_time_s = [float(v) for v in state.stride_time_s]
    msg.cadence_steps_per_min = float(state.cadence_steps_per_min)
    msg.walking_speed_m_s = float(state.walking_speed_m_s)
    msg.confidence = [float(v) for v in state.confidence]
    return msg


def gait_event_msg(event):
    """``core.gait_phase.GaitEvent`` -> ``gait_estimator_msgs/GaitEvent``."""
    from gait_estimator_msgs.msg import GaitEvent

    msg = GaitEvent()
    set_stamp(msg.header.stamp, event.stamp_ns)
    msg.leg, msg.event = int(event.leg), int(event.event)
    msg.detected_ns = int(event.detected_ns)
    msg.stride_time_s = float(event.stride_time_s)
    return msg
