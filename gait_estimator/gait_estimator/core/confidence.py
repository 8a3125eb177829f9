"""Out-of-distribution monitor: how far the model's input is from what it was trained on.

A network extrapolates silently: a window unlike its training data (a sensor slipped or upside
down, a saturated accelerometer, running fed to a walking model) still yields a finite torque,
often a large one. Every model file carries the statistics of its training inputs
(``input_mean``/``input_std`` per channel, ``runtime/metadata.py``), so each estimate can carry
a confidence computed from the z-scored input it was made from:

    D = sqrt(mean over the window's rows and channels of z^2),   z = (x - mean) / std

On the training distribution E[z^2] = 1, so D is about 1 (measured with the shipped default
model: simulated walking 0.5-2.0 m/s 0.60-1.98, real IMUs of Dorschky P01/P03 walking 0.88/1.06;
P01 running 3.4; +3 g on one accelerometer axis 3.3-3.8; one saturated thigh sensor 16.7).
The confidence falls linearly from 1 at ``soft`` to 0 at ``hard`` (defaults 2.5 and 4.0; a model
may carry its own in ``metadata.training["ood"] = {"soft": .., "hard": ..}``). The command
shaper (``core.command``) ramps the command to zero while the confidence is below its
``min_confidence``.

Streaming use is O(1) per row (running sum over the last ``window`` rows); a whole window (the
distributed estimator receives windows) is O(window x channels).
"""

from __future__ import annotations

import math

import numpy as np

from gait_estimator.errors import ModelMetadataError
from gait_estimator.runtime.metadata import ModelMetadata

__all__ = ["DEFAULT_HARD", "DEFAULT_SOFT", "ConfidenceMonitor", "confidence_from_distance", "thresholds"]

DEFAULT_SOFT = 2.5
DEFAULT_HARD = 4.0


def thresholds(metadata: ModelMetadata) -> tuple[float, float]:
    """``(soft, hard)`` distances of a model: its own (``training["ood"]``) or the defaults."""
    ood = metadata.training.get("ood", {}) if isinstance(metadata.training, dict) else {}
    soft = float(ood.get("soft", DEFAULT_SOFT))
    hard = float(ood.get("hard", DEFAULT_HARD))
    if not (math.isfinite(soft) and math.isfinite(hard) and 0 < soft < hard):
        raise ModelMetadataError(f"model metadata training.ood = {ood!r}: needs 0 < soft < hard")
    return soft, hard


def confidence_from_distance(d: float, soft: float = DEFAULT_SOFT, hard: float = DEFAULT_HARD) -> float:
    """1 up to ``soft``, linear to 0 at ``hard``; 0 for a non-finite distance."""
    if not math.isfinite(d):
        return 0.0
    return float(min(1.0, max(0.0, (hard - d) / (hard - soft))))


class ConfidenceMonitor:
    """Confidence of the newest ``window`` z-scored rows (see the module docstring)."""

    def __init__(self, metadata: ModelMetadata) -> None:
        self.soft, self.hard = thresholds(metadata)
        self.window = int(metadata.window)
        self._ring = np.zeros(self.window)
        self._i = 0
        self._n = 0
        self._sum = 0.0
        self.distance = math.nan

    def reset(self) -> None:
        self._ring[:] = 0.0
        self._i = self._n = 0
        self._sum = 0.0
        self.distance = math.nan

    def push_row(self, z: np.ndarray) -> float:
        """Add one z-scored row; return the confidence over the newest ``window`` rows."""
        return self.push_d2(float(np.mean(np.square(z))))

    def push_d2(self, d2: float) -> float:
        """:meth:`push_row` given the row's mean squared z-score."""
        if not math.isfinite(d2):
            d2 = math.inf
        old = float(self._ring[self._i])  # python floats: inf - inf is nan, not a warning
        self._ring[self._i] = d2
        self._i = (self._i + 1) % self.window
        if self._n == self.window:
            self._sum -= old
        else:
            self._n += 1
        self._sum += d2
        if not math.isfinite(self._sum):  # an inf left the ring: recompute the exact sum
            self._sum = float(self._ring[: self._n].sum())
        self.distance = math.sqrt(max(self._sum, 0.0) / self._n)
        return confidence_from_distance(self.distance, self.soft, self.hard)

    def window_confidence(self, z_window: np.ndarray) -> float:
        """Confidence of a whole z-scored window ``[T, C]`` (no state)."""
        d2 = float(np.mean(np.square(np.asarray(z_window, dtype=np.float64))))
        self.distance = math.sqrt(d2) if math.isfinite(d2) else math.inf
        return confidence_from_distance(self.distance, self.soft, self.hard)
