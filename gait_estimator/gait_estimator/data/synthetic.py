"""Tiny synthetic recordings for tests and benchmarks (no simulator needed).

Each subject walks with its own cadence and gains; IMU channels are harmonics of the gait phase
plus noise, and the moments are a fixed, causal function of the recent IMU history, so a model
can learn them from a window. Not biomechanics: use :mod:`gait_estimator.sim` for that.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gait_estimator import conventions
from gait_estimator.data.dataset import Recording, channels_for

__all__ = ["make_synthetic_recordings"]


def make_synthetic_recordings(
    n_subjects: int = 4,
    seconds: float = 20.0,
    rate_hz: float = 100.0,
    locations: Sequence[str] = ("pelvis", "thigh_r", "shank_r"),
    joints: Sequence[str] = conventions.JOINTS_R,
    seed: int = 0,
    trials_per_subject: int = 1,
) -> list[Recording]:
    rng = np.random.default_rng(seed)
    channels = channels_for(locations, ("acc", "gyro"))
    out = []
    for s in range(n_subjects):
        cadence = rng.uniform(0.8, 1.1)  # strides per second
        mass = rng.uniform(55, 95)
        gains = rng.normal(1.0, 0.15, size=len(joints))
        mix = rng.normal(0, 1, size=(len(channels), 3))
        for k in range(trials_per_subject):
            n = int(seconds * rate_hz)
            t = np.arange(n) / rate_hz
            phase = np.mod(cadence * t + rng.uniform(), 1.0)
            ang = 2 * np.pi * phase
            basis = np.stack([np.sin(ang), np.cos(ang), np.sin(2 * ang)], axis=1)  # [N, 3]
            inputs = basis @ mix.T + 0.05 * rng.normal(size=(n, len(channels)))
            lagged = np.roll(basis, 5, axis=0)  # moments depend on the recent past (causal)
            moments = np.stack(
                [
                    gains[j] * (0.6 * lagged[:, j % 3] + 0.3 * lagged[:, (j + 1) % 3])
                    for j in range(len(joints))
                ],
                axis=1,
            )
            out.append(
                Recording(
                    name=f"syn_s{s:02d}_t{k}",
                    subject_id=f"S{s:02d}",
                    mass_kg=mass,
                    sample_rate_hz=rate_hz,
                    channels=channels,
                    inputs=inputs,
                    joints=tuple(joints),
                    moments=moments,
                    phase=phase,
                    meta={"source": "synthetic"},
                )
            )
    return out
