"""rosbag2 I/O (mcap and sqlite3) on ``rosbags``: no ROS install, no generated message code.

Reading: :class:`BagReader` opens a bag directory (or a bare ``.mcap``/``.db3`` file), lists
its topics and yields raw or decoded messages in bag log-time order. :func:`imu_source` picks
how the IMUs are stored (one ``sensor_msgs/Imu`` topic per location, or an ``ImuFrame`` topic)
and :func:`iter_imu` yields :class:`ImuRecord` tuples; :func:`read_joint_torques` loads a
``JointTorque`` topic (the reference torques) into arrays.

Writing: :class:`BagWriter` creates a new bag in either storage format and serialises rosbags
message objects (see :mod:`gait_estimator.replay.convert`) or raw CDR.

Every failure of the underlying library or file system (missing or corrupt file, truncated
storage, unknown message type, missing topic, wrong type) is raised as
:class:`~gait_estimator.errors.BagError` with the bag path in the message, never as a bare
library exception.

This module is the public API; the code lives in ``bag_base`` (storages, topic names, library
errors), ``bag_reader``, ``bag_imu`` (IMU and torque topics as arrays) and ``bag_writer``.
"""

from __future__ import annotations

from gait_estimator.replay.bag_base import (
    DEFAULT_COMMAND_TOPIC,
    DEFAULT_ESTIMATE_TOPIC,
    DEFAULT_FRAME_TOPIC,
    DEFAULT_IMU_PREFIX,
    DEFAULT_REFERENCE_TOPIC,
    DIAGNOSTICS_TOPIC,
    STORAGES,
    imu_topic,
    normalise_topic,
)
from gait_estimator.replay.bag_imu import (
    ImuRecord,
    ImuSource,
    TorqueSeries,
    decode_imu_cdr,
    imu_source,
    iter_imu,
    read_joint_torques,
)
from gait_estimator.replay.bag_reader import BagInfo, BagReader, TopicSummary, bag_info
from gait_estimator.replay.bag_writer import BagWriter
from gait_estimator.replay.typestore import IMU, IMU_FRAME, JOINT_TORQUE

__all__ = [
    "DEFAULT_COMMAND_TOPIC",
    "DEFAULT_ESTIMATE_TOPIC",
    "DEFAULT_FRAME_TOPIC",
    "DEFAULT_IMU_PREFIX",
    "DEFAULT_REFERENCE_TOPIC",
    "DIAGNOSTICS_TOPIC",
    "IMU",
    "IMU_FRAME",
    "JOINT_TORQUE",
    "STORAGES",
    "BagInfo",
    "BagReader",
    "BagWriter",
    "ImuRecord",
    "ImuSource",
    "TopicSummary",
    "TorqueSeries",
    "bag_info",
    "decode_imu_cdr",
    "imu_source",
    "imu_topic",
    "iter_imu",
    "normalise_topic",
    "read_joint_torques",
]
