"""Finding the sensor-to-segment rotations from standing and walking (the rules are in
``core/calibration.py``'s docstring): :func:`calibrate_sensor`, :func:`calibrate_wearer`,
:func:`check_alignment`, and the gait ``PRIORS`` they rely on."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from gait_estimator.conventions import GRAVITY
from gait_estimator.core.calibration_types import (
    MIN_QUALITY,
    SensorCalibration,
    WearerCalibration,
    rotation_angle_deg,
)
from gait_estimator.errors import CalibrationError

__all__ = ["PRIORS", "Prior", "calibrate_sensor", "calibrate_wearer", "check_alignment", "find_standing"]

ALIGNED_DEG, MISALIGNED_DEG = 25.0, 60.0  # check_alignment: full score below, zero above


@dataclass(frozen=True)
class Prior:
    """Gait features of a segment in the model's frame (measured on Dorschky 2019 real IMUs,
    mocap_walkers virtual IMUs and the simulator; ranges in the comments)."""

    peak_sign: float  # sign of the larger gyro_y excursion (swing / push-off)
    pitch_sign: float  # sign of the mean pitch atan2(acc_x, acc_z) while walking
    mean_pitch_deg: float  # typical mean pitch while walking (walking-alone calibration)


PRIORS: dict[str, Prior] = {
    "pelvis": Prior(0.0, 0.0, -2.0),  # pitch -7..+3
    "trunk": Prior(0.0, 0.0, 0.0),
    "thigh": Prior(-1.0, 1.0, 7.0),  # peak asymmetry -0.04..-0.39, pitch +1..+12
    "shank": Prior(-1.0, -1.0, -14.0),  # asymmetry -0.24..-0.39, pitch -4..-22
    "foot": Prior(1.0, -1.0, -15.0),  # asymmetry +0.02..+0.16, pitch 0..-27
}


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    if not n > 1e-9:
        raise CalibrationError("degenerate direction (zero vector) while calibrating")
    return v / n


def _horizontal_basis(z: np.ndarray) -> np.ndarray:
    """Two unit vectors orthogonal to ``z`` and each other, ``[2, 3]``."""
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = _unit(np.cross(z, helper))
    return np.stack([e1, np.cross(z, e1)])


def _clip01(x: float) -> float:
    return float(np.clip(x, 0.0, 1.0))


def find_standing(acc: np.ndarray, gyro: np.ndarray, rate_hz: float, min_s: float = 0.5) -> slice | None:
    """The still period at the start of a recording (|gyro| < 0.2 rad/s, | |acc| - g | < 0.8 m/s²),
    if it lasts ``min_s``; None when the recording starts with motion."""
    still = (np.linalg.norm(gyro, axis=1) < 0.2) & (np.abs(np.linalg.norm(acc, axis=1) - GRAVITY) < 0.8)
    end = int(np.argmin(still)) if not still.all() else len(still)
    return slice(0, end) if end >= min_s * rate_hz else None


def _pelvis_heading(
    acc: np.ndarray, z: np.ndarray, basis: np.ndarray, rate_hz: float
) -> tuple[np.ndarray, dict]:
    """Forward axis from the inverted-pendulum relation: a_forward ~ d(a_vertical)/dt."""
    a_v = acc @ z
    da_v = np.gradient(a_v) * rate_hz
    a_h = acc @ basis.T  # [N, 2]
    c = (a_h - a_h.mean(0)).T @ (da_v - da_v.mean()) / len(a_v)
    fwd2 = c / max(float(np.linalg.norm(c)), 1e-12)
    r = float(np.corrcoef(a_h @ fwd2, da_v)[0, 1]) if np.std(da_v) > 1e-9 else 0.0
    x = _unit(fwd2 @ basis)
    return np.cross(z, x), {"pendulum_r": round(r, 3), "q_axis": _clip01(r / 0.3), "q_sign": _clip01(r / 0.3)}


def _leg_axis(
    acc: np.ndarray, gyro: np.ndarray, z: np.ndarray, basis: np.ndarray, prior: Prior, use_pitch: bool
) -> tuple[np.ndarray, dict]:
    """Joint axis: dominant horizontal angular-velocity axis; sign from the gait's shape."""
    g_h = gyro @ basis.T
    w, v = np.linalg.eigh(np.cov(g_h.T))
    planarity = float(w[-1] / max(w.sum(), 1e-12))
    y = _unit(v[:, -1] @ basis)
    p = gyro @ y
    lo, hi = np.percentile(p, [1, 99])
    asym = float((hi + lo) / max(hi - lo, 1e-9))
    x = np.cross(y, z)
    pitch = float(np.degrees(np.arctan2(np.mean(acc @ x), np.mean(acc @ z))))
    score = prior.peak_sign * asym / 0.1 + (prior.pitch_sign * pitch / 5.0 if use_pitch else 0.0)
    if score < 0:
        y, score, asym, pitch = -y, -score, -asym, -pitch
    return y, {
        "planarity": round(planarity, 3),
        "peak_asymmetry": round(asym, 3),
        "walking_pitch_deg": round(pitch, 1),
        "sign_score": round(score, 2),
        "q_axis": _clip01((planarity - 0.6) / 0.25),
        "q_sign": _clip01(score / 1.0),
    }


def calibrate_sensor(
    location: str,
    acc: np.ndarray,
    gyro: np.ndarray,
    rate_hz: float,
    standing: slice | None = None,
    min_quality: float = MIN_QUALITY,
) -> SensorCalibration:
    """Rotation sensor -> segment for one IMU: ``acc``/``gyro`` ``[N, 3]`` in the sensor frame;
    ``standing`` the still samples (None: walking alone)."""
    acc, gyro = np.asarray(acc, float), np.asarray(gyro, float)
    if acc.ndim != 2 or acc.shape[1] != 3 or gyro.shape != acc.shape:
        raise CalibrationError(
            f"{location}: acc and gyro must both be [N, 3], got {acc.shape} and {gyro.shape}"
        )
    if not np.all(np.isfinite(acc)) or not np.all(np.isfinite(gyro)):
        raise CalibrationError(f"{location}: non-finite samples")
    part = location.split("_")[0]
    if part not in PRIORS:
        raise CalibrationError(f"{location}: no calibration rules for this location; known: {sorted(PRIORS)}")
    prior = PRIORS[part]
    details: dict[str, float] = {}
    if standing is not None:
        sa, sg = acc[standing], gyro[standing]
        walk_a, walk_g = (
            np.delete(acc, np.arange(len(acc))[standing], 0),
            np.delete(gyro, np.arange(len(acc))[standing], 0),
        )
        z = _unit(sa.mean(0))
        gyro_rms = float(np.sqrt(np.mean(np.sum(sg**2, 1))))
        acc_sd = float(np.sqrt(np.mean(np.sum((sa - sa.mean(0)) ** 2, 1))))
        details.update(
            standing_s=round(len(sa) / rate_hz, 2),
            standing_gyro_rms=round(gyro_rms, 4),
            standing_acc_sd=round(acc_sd, 4),
        )
        details["q_still"] = min(_clip01((0.3 - gyro_rms) / 0.25), _clip01((1.0 - acc_sd) / 0.7))
        method = "standing+walking"
    else:
        walk_a, walk_g = acc, gyro
        z = _unit(acc.mean(0))
        method = "walking"
    if len(walk_a) < rate_hz:
        raise CalibrationError(
            f"{location}: {len(walk_a) / rate_hz:.2f} s of walking; need at least 1 s (a few strides)"
        )
    basis = _horizontal_basis(z)
    if prior.peak_sign == 0.0:
        y, found = _pelvis_heading(walk_a, z, basis, rate_hz)
        motion = float(np.std(walk_a @ z))
        details["q_motion"] = _clip01(motion / 0.5)
    else:
        y, found = _leg_axis(walk_a, walk_g, z, basis, prior, standing is not None)
        motion = float(np.sqrt(np.mean((walk_g @ y) ** 2)))
        details["q_motion"] = _clip01(motion / 0.8)
    details.update(found)
    x = np.cross(y, z)
    rot = np.stack([x, y, z])
    if standing is None:  # mean specific force while walking is tilted by the mean segment pitch
        t = np.radians(prior.mean_pitch_deg)
        turn = np.array([[np.cos(t), 0.0, np.sin(t)], [0.0, 1.0, 0.0], [-np.sin(t), 0.0, np.cos(t)]])
        rot = turn @ rot
    quality = min(v for k, v in details.items() if k.startswith("q_"))
    details = {k: round(float(v), 4) for k, v in details.items()}
    return SensorCalibration(location, rot, round(float(quality), 3), method, details, min_quality)


def calibrate_wearer(
    imu: Mapping[str, Mapping[str, np.ndarray]],
    rate_hz: float,
    standing_s: float | None = None,
    wearer: str = "wearer",
    source: str = "",
    min_quality: float = MIN_QUALITY,
) -> WearerCalibration:
    """Every IMU of ``imu[location] = {"acc", "gyro"}``. ``standing_s``: the first seconds are
    standing; None = detect a still start per sensor (:func:`find_standing`); 0 = walking alone."""
    if not imu:
        raise CalibrationError("no IMU signals to calibrate")
    sensors = {}
    for loc, sig in imu.items():
        acc, gyro = np.asarray(sig["acc"], float), np.asarray(sig["gyro"], float)
        if standing_s is None:
            standing = find_standing(acc, gyro, rate_hz)
        else:
            standing = slice(0, int(round(standing_s * rate_hz))) if standing_s > 0 else None
        sensors[loc] = calibrate_sensor(loc, acc, gyro, rate_hz, standing, min_quality)
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    return WearerCalibration(sensors, wearer, source, now)


def check_alignment(location: str, acc: np.ndarray, gyro: np.ndarray, rate_hz: float) -> tuple[float, float]:
    """(angle, score) of walking signals against the model's frame: the rotation a walking-alone
    calibration would apply, and a score (1 below ``ALIGNED_DEG``, 0 above ``MISALIGNED_DEG``)."""
    found = calibrate_sensor(location, acc, gyro, rate_hz, None)
    angle = rotation_angle_deg(found.rotation)
    score = _clip01((MISALIGNED_DEG - angle) / (MISALIGNED_DEG - ALIGNED_DEG))
    return angle, round(score, 3)
