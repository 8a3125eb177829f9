"""Mounting faults injected into IMU signals (simulated or recorded), and the signals as frames.

``imu`` is ``{location: {"acc": [N, 3], "gyro": [N, 3], ...}}`` in the segment frames (as
``Trial.imu``); every function returns a new dict (the input is not changed) whose signals from
sample ``onset`` on are those of the faulty mounting:

- :func:`rotate`: the sensor turned by a fixed rotation (upside down = 180 deg about x);
- :func:`slip`: the sensor turning steadily about an axis, 0 -> ``max_deg`` over ``duration_s``;
- :func:`swap`: two locations' signals exchanged (left/right, thigh/shank);
- :func:`wrong_leg`: a location carrying the other leg's segment (its own sensor noise added);
- :func:`dead_axis`: one channel stuck at a constant.

A sensor turned by ``R`` (sensor -> segment) reads ``R^T v`` for a segment-frame vector ``v``.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from gait_estimator.core.samples import SyncFrame

__all__ = ["FAULTS", "dead_axis", "frames", "other_side", "rotate", "slip", "swap", "wrong_leg"]

FAULTS = ("rotated", "upside_down", "slipping", "swapped_left_right", "swapped_thigh_shank",
          "wrong_leg", "dead_axis")


def _copy(imu: dict) -> dict:
    return {loc: {k: np.array(v, dtype=np.float64) for k, v in sig.items() if k in ("acc", "gyro")}
            for loc, sig in imu.items()}


def other_side(location: str) -> str:
    seg, _, side = location.partition("_")
    return f"{seg}_{'l' if side == 'r' else 'r'}"


def _turn(sig: dict, rots: Rotation, onset: int) -> None:
    for key in ("acc", "gyro"):
        sig[key][onset:] = rots.inv().apply(sig[key][onset:])


def rotate(imu: dict, location: str, rotvec_deg: np.ndarray, onset: int = 0) -> dict:
    """``location`` turned by the rotation vector ``rotvec_deg`` (degrees, segment frame)."""
    out = _copy(imu)
    _turn(out[location], Rotation.from_rotvec(np.radians(np.asarray(rotvec_deg, dtype=float))), onset)
    return out


def slip(imu: dict, location: str, axis: np.ndarray, rate_hz: float, onset: int = 0,
         max_deg: float = 45.0, duration_s: float = 10.0) -> dict:
    """``location`` turning about ``axis`` from ``onset``: linearly to ``max_deg`` over ``duration_s``."""
    out = _copy(imu)
    n = len(out[location]["acc"]) - onset
    ang = np.minimum(np.arange(n) / (duration_s * rate_hz), 1.0) * np.radians(max_deg)
    u = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    if n > 0:
        _turn(out[location], Rotation.from_rotvec(ang[:, None] * u), onset)
    return out


def swap(imu: dict, a: str, b: str, onset: int = 0) -> dict:
    out = _copy(imu)
    for key in ("acc", "gyro"):
        va, vb = out[a][key][onset:].copy(), out[b][key][onset:].copy()
        out[a][key][onset:], out[b][key][onset:] = vb, va
    return out


def wrong_leg(imu: dict, location: str, rng: np.random.Generator, onset: int = 0,
              noise: tuple[float, float] = (0.02, 0.005)) -> dict:
    """``location`` reads the other leg's same segment, plus white noise of its own (acc m/s^2,
    gyro rad/s SD) so that the two sensors are not bit-identical."""
    out = _copy(imu)
    src = out[other_side(location)]
    for key, sd in zip(("acc", "gyro"), noise, strict=True):
        m = src[key][onset:]
        out[location][key][onset:] = m + rng.normal(0.0, sd, m.shape)
    return out


def dead_axis(imu: dict, location: str, channel: str, onset: int = 0, value: float = 0.0) -> dict:
    """``channel`` ("acc_x" ... "gyro_z") of ``location`` stuck at ``value``."""
    out = _copy(imu)
    key, _, axis = channel.partition("_")
    out[location][key][onset:, "xyz".index(axis)] = value
    return out


def frames(imu: dict, rate_hz: float, locations: tuple[str, ...] | None = None,
           t0_ns: int = 0) -> list[SyncFrame]:
    """One valid :class:`SyncFrame` per sample (identity orientation: the checks use acc and gyro)."""
    locs = tuple(locations or imu.keys())
    acc = np.stack([np.asarray(imu[loc]["acc"], dtype=np.float64) for loc in locs], axis=1)
    gyro = np.stack([np.asarray(imu[loc]["gyro"], dtype=np.float64) for loc in locs], axis=1)
    quat = np.tile([0.0, 0.0, 0.0, 1.0], (len(locs), 1))
    ok = np.ones(len(locs), dtype=bool)
    period = 1e9 / rate_hz
    return [SyncFrame(t0_ns + int(round(k * period)), locs, acc[k], gyro[k], quat, ok)
            for k in range(len(acc))]
