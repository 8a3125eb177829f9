"""The pipeline's topology as plain data (topic names included), the one source for the launch files
(``nodes.launch_plan``), ``gait-estimator run``, the lifecycle manager's defaults and the tests:
which processes a mode starts, in which order, which of them are lifecycle nodes (managed, in
start-up order), which read a model file, and the order in which they stop.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "TOPIC_COMMAND",
    "TOPIC_DIAGNOSTICS",
    "TOPIC_ESTIMATE",
    "TOPIC_ESTOP",
    "TOPIC_FEATURES",
    "TOPIC_FRAME",
    "TOPIC_GAIT_EVENTS",
    "TOPIC_GAIT_STATE",
    "TOPIC_IMU",
    "TOPIC_REFERENCE",
    "TOPIC_RESET",
    "DISTRIBUTED",
    "FUSED",
    "MANAGER",
    "Stage",
    "command_node",
    "managed",
    "model_nodes",
    "stages",
    "stop_order",
]


# Topic names: relative (a namespace pushes them all) except /diagnostics. The nodes
# (nodes/topics.py adds the QoS), replay, the CLI and the parameter defaults read them here.
TOPIC_IMU = "imu/{location}"
TOPIC_FRAME = "gait/imu_frame"
TOPIC_FEATURES = "gait/features"
TOPIC_ESTIMATE = "gait/torque_estimate"
TOPIC_REFERENCE = "gait/torque_reference"
TOPIC_COMMAND = "exo/torque_command"
TOPIC_ESTOP = "exo/emergency_stop"  # std_msgs/Bool: true latches the e-stop
TOPIC_RESET = "exo/reset"  # std_msgs/Empty: clears a latched fault / e-stop
TOPIC_DIAGNOSTICS = "/diagnostics"
TOPIC_GAIT_STATE = "gait/state"  # GaitState at the model rate, SensorDataQoS
TOPIC_GAIT_EVENTS = "gait/events"  # GaitEvent as detected, reliable


@dataclass(frozen=True)
class Stage:
    """One process of the pipeline; its node name is the executable's name."""

    executable: str
    lifecycle: bool = False  # managed by the lifecycle manager (configured, activated in order)
    reads_model: bool = False  # takes ``model_path``
    driver: bool = False  # the IMU driver: left out when the IMUs come from elsewhere


# Data-flow order: IMUs -> ... -> the command. Start-up follows it, stopping reverses it.
DISTRIBUTED = (
    Stage("imu_driver", driver=True),
    Stage("imu_synchronizer"),
    Stage("windowing", reads_model=True),
    Stage("torque_estimator", lifecycle=True, reads_model=True),
    Stage("torque_command", lifecycle=True),
)
FUSED = (Stage("gait_pipeline", lifecycle=True, reads_model=True),)
MANAGER = "lifecycle_manager"


def stages(fused: bool, with_driver: bool = True) -> tuple[Stage, ...]:
    return tuple(s for s in (FUSED if fused else DISTRIBUTED) if with_driver or not s.driver)


def managed(fused: bool) -> list[str]:
    """The lifecycle nodes, in start-up order (the manager's ``node_names``)."""
    return [s.executable for s in stages(fused) if s.lifecycle]


def command_node(fused: bool) -> str:
    """The node that publishes the exoskeleton command (the last stage)."""
    return stages(fused)[-1].executable


def model_nodes() -> tuple[str, ...]:
    return tuple(dict.fromkeys(s.executable for s in (*DISTRIBUTED, *FUSED) if s.reads_model))


def stop_order() -> list[str]:
    """Manager first (so it does not react to the others going away), then against the data flow:
    command nodes before their inputs."""
    return [MANAGER, *(s.executable for s in reversed(DISTRIBUTED + FUSED))]
