"""Re-export facade of the node helpers that used to live here; import from the modules instead.

``nodes/common.py`` was split by job (issue 25); this module only re-exports their names so
code not yet moved keeps working. New code imports from:

- ``nodes.topics``: topic names, QoS profiles, ``deliver_last``;
- ``nodes.conversion``: message <-> numpy conversion and stamps;
- ``nodes.diagnostics``: the diagnostic_updater-style statuses, ``LatencyStats``, ``log_estop``;
- ``nodes.model_files``: ``default_model_path``, ``read_model_metadata``;
- ``nodes.lifecycle_guard``: the rclpy ``change_state`` patch;
- ``nodes.runner``: ``run_node``, ``make_executor``, ``freeze_heap``.
"""

from __future__ import annotations

from gait_estimator.nodes.conversion import (
    bundle_values,
    command_msg,
    fill_imu,
    float_list,
    frame_to_msg,
    imu_arrays,
    imu_values,
    joint_torque_arrays,
    joint_torque_msg,
    msg_to_frame,
    msg_to_window,
    sample_values,
    set_stamp,
    stamp_to_ns,
    window_to_msg,
)
from gait_estimator.nodes.diagnostics import (
    ERROR,
    OK,
    STALE,
    WARN,
    FrequencyStatus,
    LatencyStats,
    TimeStampStatus,
    TopicStatus,
    diagnostic_array,
    diagnostic_status,
    estimate_rate_hz,
    log_estop,
    merge_summary,
    monitor_output,
    shaper_status,
)
from gait_estimator.nodes.lifecycle_guard import (
    guard_change_state,
)
from gait_estimator.nodes.model_files import (
    default_model_path,
    read_model_metadata,
)
from gait_estimator.nodes.runner import (
    freeze_heap,
    make_executor,
    run_node,
)
from gait_estimator.nodes.topics import (
    COMMAND_LIVELINESS_LEASE_S,
    SENSOR_SUB_DEPTH,
    TOPIC_COMMAND,
    TOPIC_DIAGNOSTICS,
    TOPIC_ESTIMATE,
    TOPIC_ESTOP,
    TOPIC_FEATURES,
    TOPIC_FRAME,
    TOPIC_IMU,
    TOPIC_REFERENCE,
    TOPIC_RESET,
    command_publisher_qos,
    command_qos,
    deliver_last,
    sensor_qos,
)

__all__ = [
    "COMMAND_LIVELINESS_LEASE_S",
    "ERROR",
    "FrequencyStatus",
    "LatencyStats",
    "OK",
    "SENSOR_SUB_DEPTH",
    "STALE",
    "TOPIC_COMMAND",
    "TOPIC_DIAGNOSTICS",
    "TOPIC_ESTIMATE",
    "TOPIC_ESTOP",
    "TOPIC_FEATURES",
    "TOPIC_FRAME",
    "TOPIC_IMU",
    "TOPIC_REFERENCE",
    "TOPIC_RESET",
    "TimeStampStatus",
    "TopicStatus",
    "WARN",
    "bundle_values",
    "command_msg",
    "command_publisher_qos",
    "command_qos",
    "default_model_path",
    "deliver_last",
    "diagnostic_array",
    "diagnostic_status",
    "estimate_rate_hz",
    "fill_imu",
    "float_list",
    "frame_to_msg",
    "freeze_heap",
    "guard_change_state",
    "imu_arrays",
    "imu_values",
    "joint_torque_arrays",
    "joint_torque_msg",
    "log_estop",
    "make_executor",
    "merge_summary",
    "monitor_output",
    "msg_to_frame",
    "msg_to_window",
    "read_model_metadata",
    "run_node",
    "sample_values",
    "sensor_qos",
    "set_stamp",
    "shaper_status",
    "stamp_to_ns",
    "window_to_msg",
]
