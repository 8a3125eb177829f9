"""Small, real, scriptable reference models for tests, demos and benchmarks.

``make_tiny_lstm_model`` writes a valid model file (random but seeded weights, complete
metadata) for code that needs *a* model before a trained one exists: node tests, replay tests,
benchmarks. Its estimates are meaningless as torques; its interface is exactly a trained model's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from gait_estimator.conventions import (
    ACC_SIGNALS,
    GRAVITY,
    GRAVITY_SIGNALS,
    GYRO_SIGNALS,
    IMU_LOCATIONS,
    JOINTS,
    channel_name,
)
from gait_estimator.runtime.metadata import ModelMetadata
from gait_estimator.runtime.model_file import save_model

__all__ = ["DEFAULT_CHANNELS", "LstmRegressor", "make_tiny_lstm_model", "plausible_statistics"]

DEFAULT_CHANNELS: tuple[str, ...] = tuple(
    channel_name(loc, sig) for loc in IMU_LOCATIONS for sig in ACC_SIGNALS + GYRO_SIGNALS + GRAVITY_SIGNALS
)


class LstmRegressor(nn.Module):
    """LSTM over the window, linear head on the last step; streaming via ``forward_step``.

    Implements the module contract of ``runtime/metadata.py``: ``forward([B,T,C]) -> [B,J]``,
    ``init_state(B)``, ``forward_step([B,C], state) -> ([B,J], state)``. ``forward_step`` from
    ``init_state`` over T rows equals ``forward`` of those rows (same LSTM, zero initial state).
    """

    def __init__(self, n_inputs: int, n_outputs: int, hidden: int = 16, layers: int = 1) -> None:
        super().__init__()
        self.hidden = hidden
        self.layers = layers
        self.lstm = nn.LSTM(n_inputs, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, n_outputs)

    def forward(self, x: Tensor) -> Tensor:
        y, _ = self.lstm(x)
        return self.head(y[:, -1])

    @torch.jit.export
    def init_state(self, batch: int) -> list[Tensor]:
        h = torch.zeros(self.layers, batch, self.hidden)
        return [h, torch.zeros(self.layers, batch, self.hidden)]

    @torch.jit.export
    def forward_step(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        y, (h, c) = self.lstm(x.unsqueeze(1), (state[0], state[1]))
        return self.head(y[:, 0]), [h, c]


def plausible_statistics(channels: Sequence[str]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Rough per-channel mean/std of walking IMU data, by signal kind (for untrained models)."""
    mean, std = [], []
    for ch in channels:
        sig = ch.split("/", 1)[1]
        if sig.startswith("acc"):
            mean.append(GRAVITY if sig == "acc_z" else 0.0)
            std.append(3.0)
        elif sig.startswith("gyro"):
            mean.append(0.0)
            std.append(2.0)
        elif sig.startswith("grav"):
            mean.append(-1.0 if sig == "grav_z" else 0.0)
            std.append(0.3)
        else:  # euler angles, quaternion components
            mean.append(0.0)
            std.append(0.5)
    return tuple(mean), tuple(std)


def make_tiny_lstm_model(
    path: str | os.PathLike[str],
    channels: Sequence[str] = DEFAULT_CHANNELS,
    joints: Sequence[str] = JOINTS,
    window: int = 50,
    rate: float = 100.0,
    *,
    stride: int = 1,
    hidden: int = 16,
    layers: int = 1,
    seed: int = 0,
    output_unit: str = "N.m/kg",
    streaming: bool = True,
    stats_shift: float = 0.0,
) -> Path:
    """Write a seeded random LSTM model file with full metadata to ``path``; returns the path.
    ``stats_shift`` moves the input statistics (mean + shift x std, std x (1 + shift)): a model
    with another normalisation, as a retrained one has."""
    channels, joints = tuple(channels), tuple(joints)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        module = LstmRegressor(len(channels), len(joints), hidden=hidden, layers=layers)
    mean, std = plausible_statistics(channels)
    if stats_shift:
        mean = tuple(m + stats_shift * s for m, s in zip(mean, std, strict=True))
        std = tuple(s * (1.0 + stats_shift) for s in std)
    md = ModelMetadata(
        architecture="lstm",
        input_channels=channels,
        sample_rate_hz=float(rate),
        window=int(window),
        stride=int(stride),
        input_mean=mean,
        input_std=std,
        output_joints=joints,
        output_unit=output_unit,
        streaming=streaming,
        training={
            "note": "untrained reference model (random seeded weights)",
            "seed": seed,
            "hidden": hidden,
            "layers": layers,
        },
    )
    return save_model(module, md, path)
