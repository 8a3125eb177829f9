"""What defines a training run (:class:`TrainConfig`, saved as ``config.json``), what it returns
(:class:`TrainResult`), the device choice and the model-file metadata a run exports."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gait_estimator import conventions
from gait_estimator.errors import ConfigError
from gait_estimator.runtime.metadata import ModelMetadata

__all__ = ["TrainConfig", "TrainResult", "make_metadata", "resolve_device"]


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``config.json``)."""

    architecture: str = "tcn"
    arch_options: dict[str, Any] = field(default_factory=dict)
    window: int = 64  # samples per input window (T)
    stride: int = 1  # metadata stride: samples between estimates at run time
    sample_rate_hz: float = 100.0
    channels: tuple[str, ...] = ()  # input channels (set from the data when empty)
    joints: tuple[str, ...] = conventions.JOINTS_R
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    lr_schedule: str = "plateau"  # plateau: halve lr after 2 epochs without val improvement | none
    weight_decay: float = 0.0
    patience: int = 5  # early stopping: epochs without val improvement
    min_delta: float = 1e-4
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # torch CPU threads (0: leave torch's default)
    train_stride: int = 1  # spacing of training window ends (1: every row, or every seq_rows rows)
    max_windows_per_epoch: int = 0  # random subset per epoch (0: all)
    val_stride: int = 1  # spacing of validation window ends
    seq_rows: int = 1  # causal models: rows trained per window (exact for the TCN)
    input_noise: float = 0.0  # Gaussian noise added to normalised inputs while training
    freeze: tuple[str, ...] = ()  # parameter-name prefixes kept fixed (fine-tuning)
    progress: bool = True

    def validate(self) -> None:
        checks = [
            ("window", self.window >= 1, "must be >= 1"),
            ("stride", 1 <= self.stride <= self.window, "must be in [1, window]"),
            ("epochs", self.epochs >= 1, "must be >= 1"),
            ("batch_size", self.batch_size >= 1, "must be >= 1"),
            ("lr", self.lr > 0 and math.isfinite(self.lr), "must be a finite number > 0"),
            ("patience", self.patience >= 1, "must be >= 1"),
            ("sample_rate_hz", self.sample_rate_hz > 0, "must be > 0"),
            ("train_stride", self.train_stride >= 1, "must be >= 1"),
            ("seq_rows", self.seq_rows >= 1, "must be >= 1"),
            ("val_stride", self.val_stride >= 1, "must be >= 1"),
            ("device", self.device in ("auto", "cpu", "cuda"), "must be auto, cpu or cuda"),
            ("lr_schedule", self.lr_schedule in ("plateau", "none"), "must be plateau or none"),
            ("joints", len(self.joints) > 0, "must name at least one joint"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ConfigError(name, getattr(self, name), rule)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channels"], d["joints"], d["freeze"] = list(self.channels), list(self.joints), list(self.freeze)
        return d


@dataclass
class TrainResult:
    model: nn.Module  # the trained module (eval mode, CPU), best validation epoch
    metadata: ModelMetadata
    history: list[dict[str, float]]
    best_epoch: int
    train_seconds: float
    run_dir: Path | None
    model_path: Path | None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", name, "CUDA is not available on this machine")
    return torch.device(name)


def make_metadata(
    config: TrainConfig,
    mean: Sequence[float],
    std: Sequence[float],
    streaming: bool,
    training: dict[str, Any],
) -> ModelMetadata:
    return ModelMetadata(
        architecture=config.architecture,
        input_channels=tuple(config.channels),
        sample_rate_hz=float(config.sample_rate_hz),
        window=int(config.window),
        stride=int(config.stride),
        input_mean=tuple(float(v) for v in mean),
        input_std=tuple(float(v) for v in std),
        output_joints=tuple(config.joints),
        output_unit="N.m/kg",
        streaming=streaming,
        training=training,
    )
