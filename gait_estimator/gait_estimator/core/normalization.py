"""Z-score normalisation with a model's statistics (``ModelMetadata.input_mean``/``input_std``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_Stats = Sequence[float] | np.ndarray

__all__ = ["denormalise", "normalise"]


def normalise(x: np.ndarray, mean: _Stats, std: _Stats) -> np.ndarray:
    """``(x - mean) / std`` over the last axis (channels); returns a new float array."""
    return (np.asarray(x, dtype=np.float64) - np.asarray(mean, dtype=np.float64)) / np.asarray(
        std, dtype=np.float64
    )


def denormalise(z: np.ndarray, mean: _Stats, std: _Stats) -> np.ndarray:
    """Inverse of :func:`normalise`."""
    return np.asarray(z, dtype=np.float64) * np.asarray(std, dtype=np.float64) + np.asarray(
        mean, dtype=np.float64
    )
