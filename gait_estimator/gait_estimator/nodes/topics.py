"""Topic names and QoS profiles of the node graph, and the bounded wait for reliable delivery.

QoS (DESIGN.md): sensor streams (``imu/<location>``, ``gait/imu_frame``, ``gait/features``,
``gait/torque_estimate``, ``gait/torque_reference``) use SensorDataQoS (best effort, depth 5:
a late sample is worthless; the pipeline's own subscriptions keep ``SENSOR_SUB_DEPTH`` so a
stalled process catches up instead of dropping); ``exo/torque_command`` uses reliable QoS,
volatile, depth 10; ``exo/emergency_stop`` and ``exo/reset`` use reliable QoS, depth 10.
rclpy is imported inside the functions, so the names are readable without ROS.
"""

from __future__ import annotations

from gait_estimator.core.topology import (  # noqa: F401 (the one source of the names)
    TOPIC_COMMAND,
    TOPIC_DIAGNOSTICS,
    TOPIC_ESTIMATE,
    TOPIC_ESTOP,
    TOPIC_FEATURES,
    TOPIC_FRAME,
    TOPIC_GAIT_EVENTS,
    TOPIC_GAIT_STATE,
    TOPIC_IMU,
    TOPIC_REFERENCE,
    TOPIC_RESET,
)


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



def deliver_last(publisher, timeout_s: float = 0.5) -> bool:
    """Wait (bounded) until reliable subscribers acknowledged what ``publisher`` sent: the last zero
    command before a publisher is destroyed must reach the controller, not die in a send queue."""
    from rclpy.duration import Duration

    try:
        return bool(publisher.wait_for_all_acked(Duration(nanoseconds=int(timeout_s * 1e9))))
    except Exception:  # publisher or context already gone: nothing left to deliver
        return False


def events_qos():
    """Gait events: reliable, depth 50 (a few strides), so a controller that switches on a heel
    strike does not lose it to a best-effort drop."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=50,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )
