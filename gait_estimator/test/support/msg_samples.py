"""Fully populated instances of every custom message, with values exact in their wire types."""

from __future__ import annotations

import math

from builtin_interfaces.msg import Time
from gait_estimator_msgs.msg import FeatureWindow, ImuBundle, ImuFrame, JointTorque
from geometry_msgs.msg import Quaternion, Vector3
from sensor_msgs.msg import Imu
from std_msgs.msg import Header

STAMP = Time(sec=1_700_000_123, nanosec=456_789_000)


def joint_torque() -> JointTorque:
    return JointTorque(
        header=Header(stamp=STAMP, frame_id=""),
        source=JointTorque.SOURCE_COMMAND,
        joint_names=["hip_flexion_r", "knee_angle_r", "ankle_angle_r"],
        torque=[12.5, -30.25, -101.0],
        joint_status=[JointTorque.STATUS_OK, JointTorque.STATUS_LIMITED, JointTorque.STATUS_RAMPING],
        valid=True,
        subject_mass=73.0,
        gait_phase=0.375,
    )


def _imu(frame_id: str, k: float) -> Imu:
    return Imu(
        header=Header(stamp=STAMP, frame_id=frame_id),
        orientation=Quaternion(x=0.0, y=0.6, z=0.0, w=0.8),
        orientation_covariance=[1e-4 * k] * 9,
        angular_velocity=Vector3(x=0.5 * k, y=-1.25, z=2.0),
        angular_velocity_covariance=[2e-5] * 9,
        linear_acceleration=Vector3(x=0.125, y=-9.5, z=3.0 * k),
        linear_acceleration_covariance=[3e-3] * 9,
    )


def imu_frame() -> ImuFrame:
    return ImuFrame(
        header=Header(stamp=STAMP, frame_id=""),
        locations=["pelvis", "thigh_r", "shank_r"],
        imus=[_imu("imu_pelvis", 1.0), _imu("imu_thigh_r", 2.0), _imu("imu_shank_r", 3.0)],
        valid=[True, False, True],
        rate_hz=100.0,
        implausible=[False, True, False],
    )


def feature_window() -> FeatureWindow:
    channels = ["thigh_r/gyro_z", "shank_r/acc_x"]
    rows = 4
    return FeatureWindow(
        header=Header(stamp=STAMP, frame_id=""),
        num_samples=rows,
        num_channels=len(channels),
        channel_names=channels,
        data=[0.5 * i - 1.0 for i in range(rows * len(channels))],  # exact in float32
        normalized=True,
        sample_rate_hz=100.0,
        valid=True,
        normalization_id="0123456789abcdef",
        gait_phase=0.375,
        fault=0,
    )


def imu_bundle() -> ImuBundle:
    return ImuBundle(
        header=Header(stamp=STAMP, frame_id="hub0"),
        locations=["pelvis", "thigh_r"],
        stamp_ns=[1_700_000_123_456_789_000, 1_700_000_123_457_000_001],
        linear_acceleration=[0.125, -9.5, 3.0, 0.25, -9.75, 6.0],
        angular_velocity=[0.5, -1.25, 2.0, 1.0, -1.25, 2.0],
        orientation=[0.0, 0.6, 0.0, 0.8, 0.0, 0.0, 0.0, 1.0],
        rate_hz=1000.0,
    )


def all_samples() -> dict[str, object]:
    return {
        "JointTorque": joint_torque(),
        "ImuFrame": imu_frame(),
        "FeatureWindow": feature_window(),
        "ImuBundle": imu_bundle(),
    }


def topic_for(name: str) -> str:
    return f"/msgtest/{name.lower()}"


def nan_equal(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))
