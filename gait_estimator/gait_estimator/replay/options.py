"""What a replay is asked (``ReplayOptions``) and what it gives (``ReplayResult``), and the node
parameters it runs with (the fused node's schema: the same validation as the node)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gait_estimator.replay.bag import (
    DEFAULT_FRAME_TOPIC,
    DEFAULT_IMU_PREFIX,
    DEFAULT_REFERENCE_TOPIC,
    TorqueSeries,
)

__all__ = ["ReplayOptions", "ReplayResult", "node_parameters", "replay_settings"]


@dataclass(frozen=True)
class ReplayOptions:
    """What to read from the bag and how to run the pipeline.

    ``subject_mass_kg`` None: the reference messages' ``subject_mass``, else the bag's
    ``gait_estimator.subject_mass_kg`` custom data; an error when neither exists and the model
    predicts N·m/kg. ``reference_topic`` None: no reference (metrics are skipped);
    ``reference_required``: a missing reference topic is an error, else it is skipped.
    Synchronizer defaults are those of the ``imu_synchronizer`` / fused node parameters, so
    offline equals online.
    """

    reference_topic: str | None = DEFAULT_REFERENCE_TOPIC
    reference_required: bool = False
    imu_source: str = "auto"  # "auto" | "topics" | "frame"
    imu_prefix: str = DEFAULT_IMU_PREFIX
    frame_topic: str = DEFAULT_FRAME_TOPIC
    subject_mass_kg: float | None = None
    # EstimatorPipeline mode; None: the fused node's ``inference_mode`` parameter (``params``
    # below, default "window"), so offline runs the mode the node is configured with.
    mode: str | None = None
    # Overrides of the fused node's ROS parameters (``params.FUSED``, e.g. latency_s, max_gap_s,
    # estimate_clock_offset, locations, gains, limit_nm): the synchronizer and the command shaper
    # are built from exactly the values the node would use.
    params: Mapping[str, Any] = field(default_factory=dict)
    jump_threshold_s: float = 1.0
    start_offset_s: float = 0.0
    duration_s: float = 0.0  # 0 = to the end
    commands: bool = True  # run the command shaper on the estimates
    # The batched path (``replay.batch``: synchronizer in closed form, features with numpy,
    # windows through ``predict_batch`` in chunks of ``batch_size``); the per-sample path runs
    # when False or when the bag's timing needs it (``ReplayResult.path`` / ``path_reason``).
    batch: bool = True
    batch_size: int = 256


@dataclass
class ReplayResult:
    bag: Path
    storage: str
    model_source: str
    joints: tuple[str, ...]
    subject_mass_kg: float
    output_unit: str
    bag_start_ns: int
    bag_duration_s: float
    # estimates, in output order
    est_stamp_ns: np.ndarray  # int64 [N], frame stamp as the pipeline emits it (host clock)
    est_sensor_ns: np.ndarray  # int64 [N], the same instant in the IMU stamps' clock (minus the
    #                            synchronizer's clock-offset estimate): what the reference is matched on
    est_log_ns: np.ndarray  # int64 [N], log time of the sample that produced the estimate
    est_nm: np.ndarray  # [N, J] N·m
    est_valid: np.ndarray  # bool [N]
    inference_ns: np.ndarray  # int64 [N]
    # commands (one per estimate, at its log time), joints in cmd_joints order
    cmd_joints: tuple[str, ...]
    cmd_nm: np.ndarray  # [N, J] N·m
    cmd_status: np.ndarray  # uint8 [N, J]
    cmd_valid: np.ndarray  # bool [N]
    cmd_faults: list[str]
    reference: TorqueSeries | None
    counters: dict[str, int]
    events: list[dict[str, Any]]
    timing: dict[str, float]
    # gait phase (core.gait_phase, from the same frames): right leg per estimate, events
    est_phase: np.ndarray = field(default_factory=lambda: np.zeros(0))  # float [N], NaN unknown
    gait_events: list[Any] = field(default_factory=list)  # GaitEvent, frame (host) clock
    path: str = "per-sample"  # "batched" or "per-sample"
    path_reason: str = ""  # why the per-sample path ran ("" when batched)


# --------------------------------------------------------------------------------------------
# replay
# --------------------------------------------------------------------------------------------
def node_parameters(overrides: Mapping[str, Any] | None = None, **fixed: Any) -> dict[str, Any]:
    """The fused node's (``gait_pipeline``) parameters: schema defaults, ``overrides``, ``fixed``;
    validated by the same schema as the node (``ConfigError`` naming the parameter)."""
    from gait_estimator.core.params import validate_node_params

    return validate_node_params("gait_pipeline", {**dict(overrides or {}), **fixed})


def replay_settings(options: ReplayOptions) -> dict[str, Any]:
    """The options the metrics depend on, JSON-normalised (a baseline holds them: another
    mode, parameter, reference, span or mass makes other metrics, so the gate refuses it)."""
    import json

    mode = options.mode or node_parameters(options.params, subject_mass_kg=70.0)["inference_mode"]
    return json.loads(
        json.dumps(
            {
                "mode": mode,
                "params": dict(options.params),
                "reference_topic": options.reference_topic,
                "subject_mass_kg": options.subject_mass_kg,
                "start_offset_s": float(options.start_offset_s),
                "duration_s": float(options.duration_s),
                "jump_threshold_s": float(options.jump_threshold_s),
            },
            sort_keys=True,
            default=str,
        )
    )
