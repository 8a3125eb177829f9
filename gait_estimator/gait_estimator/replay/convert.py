"""numpy <-> rosbags message objects for the types the bags carry (Imu, JointTorque).

rosbags messages are plain dataclasses from the typestore; these helpers keep the field
layout (quaternion x,y,z,w, stamps as sec/nanosec) in one place for every bag writer/reader.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from rosbags.typesys.store import Typestore

from gait_estimator.replay.typestore import IMU, JOINT_TORQUE, make_typestore

SOURCE_ESTIMATE, SOURCE_COMMAND, SOURCE_REFERENCE = 0, 1, 2
STATUS_OK, STATUS_LIMITED, STATUS_RAMPING, STATUS_INVALID = 0, 1, 2, 3
_UNKNOWN_COVARIANCE = np.zeros(9, dtype=np.float64)


def ns_to_stamp(stamp_ns: int, store: Typestore | None = None) -> Any:
    """builtin_interfaces/Time for an integer nanosecond stamp (>= 0)."""
    store = store or make_typestore()
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return store.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)


def stamp_to_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def header(stamp_ns: int, frame_id: str = "", store: Typestore | None = None) -> Any:
    store = store or make_typestore()
    return store.types["std_msgs/msg/Header"](stamp=ns_to_stamp(stamp_ns, store), frame_id=frame_id)


def imu_message(
    stamp_ns: int,
    frame_id: str,
    acc: Sequence[float],
    gyro: Sequence[float],
    quat_xyzw: Sequence[float],
    acc_covariance: np.ndarray | None = None,
    gyro_covariance: np.ndarray | None = None,
    orientation_covariance: np.ndarray | None = None,
    store: Typestore | None = None,
) -> Any:
    """sensor_msgs/Imu. Covariances are row-major 3x3 (9 values); default all zero = unknown."""
    store = store or make_typestore()
    vec3 = store.types["geometry_msgs/msg/Vector3"]
    quat = store.types["geometry_msgs/msg/Quaternion"]
    return store.types[IMU](
        header=header(stamp_ns, frame_id, store),
        orientation=quat(x=float(quat_xyzw[0]), y=float(quat_xyzw[1]), z=float(quat_xyzw[2]),
                         w=float(quat_xyzw[3])),
        orientation_covariance=np.asarray(
            _UNKNOWN_COVARIANCE if orientation_covariance is None else orientation_covariance,
            dtype=np.float64),
        angular_velocity=vec3(x=float(gyro[0]), y=float(gyro[1]), z=float(gyro[2])),
        angular_velocity_covariance=np.asarray(
            _UNKNOWN_COVARIANCE if gyro_covariance is None else gyro_covariance, dtype=np.float64),
        linear_acceleration=vec3(x=float(acc[0]), y=float(acc[1]), z=float(acc[2])),
        linear_acceleration_covariance=np.asarray(
            _UNKNOWN_COVARIANCE if acc_covariance is None else acc_covariance, dtype=np.float64),
    )


def imu_arrays(msg: Any) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """(stamp_ns, acc[3], gyro[3], quat_xyzw[4]) of a sensor_msgs/Imu."""
    a, g, q = msg.linear_acceleration, msg.angular_velocity, msg.orientation
    return (
        stamp_to_ns(msg.header.stamp),
        np.array([a.x, a.y, a.z], dtype=np.float64),
        np.array([g.x, g.y, g.z], dtype=np.float64),
        np.array([q.x, q.y, q.z, q.w], dtype=np.float64),
    )


def joint_torque_message(
    stamp_ns: int,
    joint_names: Sequence[str],
    torque_nm: Sequence[float],
    source: int,
    valid: bool = True,
    joint_status: Sequence[int] | None = None,
    subject_mass: float = 0.0,
    gait_phase: float = float("nan"),
    store: Typestore | None = None,
    confidence: float = 1.0,
    fault: int = 0,
) -> Any:
    """gait_estimator_msgs/JointTorque (torques in N·m, OpenSim signs; ``fault``: core.faults)."""
    store = store or make_typestore()
    torque = np.asarray(torque_nm, dtype=np.float64)
    if torque.shape != (len(joint_names),):
        raise ValueError(f"torque has shape {torque.shape}, expected ({len(joint_names)},) for {joint_names}")
    if joint_status is None:
        joint_status = [STATUS_OK if valid else STATUS_INVALID] * len(joint_names)
    return store.types[JOINT_TORQUE](
        header=header(stamp_ns, "", store),
        source=int(source),
        joint_names=list(joint_names),
        torque=torque,
        joint_status=np.asarray(joint_status, dtype=np.uint8),
        valid=bool(valid),
        subject_mass=float(subject_mass),
        gait_phase=float(gait_phase),
        confidence=float(confidence),
        fault=0 if valid else int(fault),
    )


def joint_torque_arrays(msg: Any) -> tuple[int, tuple[str, ...], np.ndarray, bool]:
    """(stamp_ns, joint_names, torque_nm[J], valid) of a JointTorque."""
    return (stamp_to_ns(msg.header.stamp), tuple(msg.joint_names),
            np.asarray(msg.torque, dtype=np.float64), bool(msg.valid))
