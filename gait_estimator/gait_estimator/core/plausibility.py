"""Input plausibility gate: IMU samples a real sensor cannot produce never reach a valid frame.

A broken cable, a driver bug or a hostile publisher can deliver values that are finite but
physically impossible for the sensor (1e9 m/s^2) or a stamp from the future. Finite garbage is
worse than NaN: it flows through the network and saturates the command while every flag says
``valid``. The synchronizer therefore rejects (and counts) every sample outside the ranges
below and marks the stream invalid from that sample until its next plausible one: frames in
between are invalid at once (zero command, latched fault, within the synchronizer latency), never
bridged from the last good sample as a merely lost sample is (for at most ``max_gap``).

Default ranges cover the common wearable IMUs with margin (full-scale settings):
- accelerometer |a_i| <= 16 g = 156.9 m/s^2 per axis (Xsens MTi 16 g, Bosch BMI160/BMI270
  +-16 g, ICM-20948 +-16 g, Movella DOT 16 g);
- gyroscope |w_i| <= 35 rad/s per axis (2000 deg/s = 34.9 rad/s: the top range of BMI2xx,
  ICM-20948, MTi);
- orientation: a unit quaternion within ``quat_norm_tol`` (0.1) of norm 1, renormalised after.

A tighter sensor (e.g. +-8 g) should set its own limits: values at or beyond full scale are
clipped by the sensor and no longer describe the motion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gait_estimator.errors import ConfigError

__all__ = ["DEFAULT_LIMITS", "PlausibilityLimits", "implausible_rows", "why_implausible"]

STANDARD_GRAVITY = 9.80665


@dataclass(frozen=True)
class PlausibilityLimits:
    """Per-axis magnitude limits of one IMU sample; validated on construction."""

    max_acc_mps2: float = 16.0 * STANDARD_GRAVITY
    max_gyro_rps: float = 35.0
    quat_norm_tol: float = 0.1

    def __post_init__(self) -> None:
        for name, lo, hi in (
            ("max_acc_mps2", 1.0, 2000.0),
            ("max_gyro_rps", 0.1, 500.0),
            ("quat_norm_tol", 1e-6, 0.5),
        ):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and lo <= v <= hi):
                raise ConfigError(name, v, f"must be a number in [{lo}, {hi}]")


DEFAULT_LIMITS = PlausibilityLimits()


def why_implausible(v, limits: PlausibilityLimits = DEFAULT_LIMITS) -> str | None:
    """``v`` = [acc(3), gyro(3), quat_xyzw(4)] (array or float sequence): None when plausible, else
    the reason. Plain float arithmetic: it runs once per sample on the synchronizer's hot path,
    where numpy calls on 10 values cost more than the checks (same rules as ``implausible_rows``)."""
    if hasattr(v, "tolist"):
        v = v.tolist()
    if not all(map(math.isfinite, v)):
        return "non-finite value"
    if max(abs(v[0]), abs(v[1]), abs(v[2])) > limits.max_acc_mps2:
        return f"acceleration beyond +-{limits.max_acc_mps2:.4g} m/s^2"
    if max(abs(v[3]), abs(v[4]), abs(v[5])) > limits.max_gyro_rps:
        return f"angular velocity beyond +-{limits.max_gyro_rps:.4g} rad/s"
    n = math.sqrt(v[6] * v[6] + v[7] * v[7] + v[8] * v[8] + v[9] * v[9])
    if abs(n - 1.0) > limits.quat_norm_tol:
        return f"orientation quaternion norm {n:.4g} not within {limits.quat_norm_tol} of 1"
    return None


def implausible_rows(v: np.ndarray, limits: PlausibilityLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Vectorised :func:`why_implausible` over rows of ``v`` [N, 10]: bool [N], True = reject."""
    v = np.asarray(v, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        norm = np.sqrt(np.einsum("ij,ij->i", v[:, 6:10], v[:, 6:10]))
        ok = (
            np.isfinite(v).all(axis=1)
            & (np.abs(v[:, 0:3]).max(axis=1) <= limits.max_acc_mps2)
            & (np.abs(v[:, 3:6]).max(axis=1) <= limits.max_gyro_rps)
            & (np.abs(norm - 1.0) <= limits.quat_norm_tol)
        )
    return ~ok
