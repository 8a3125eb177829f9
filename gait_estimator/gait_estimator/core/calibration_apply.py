"""Applying a wearer calibration: sensor -> segment frames for one IMU sample, arrays, a
synchronised frame, feature channels or whole recordings; a flagged sensor is refused
(:func:`require_usable`) or, in a frame, marked invalid."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from gait_estimator.core.calibration_types import WearerCalibration
from gait_estimator.core.samples import SyncFrame
from gait_estimator.errors import CalibrationError

__all__ = [
    "apply_to_arrays",
    "apply_to_channels",
    "apply_to_frame",
    "apply_to_imu",
    "apply_to_recordings",
    "require_usable",
]

_QUAT_OF: dict[bytes, np.ndarray] = {}  # rotation matrix bytes -> quaternion of R^T (few wearers)


def _rotation_quat(r: np.ndarray) -> np.ndarray:
    """Quaternion (xyzw) of ``R^T``, cached per matrix."""
    key = np.ascontiguousarray(r, dtype=float).tobytes()
    q = _QUAT_OF.get(key)
    if q is None:
        from scipy.spatial.transform import Rotation

        q = _QUAT_OF.setdefault(key, Rotation.from_matrix(r.T).as_quat())
    return q


def _hamilton(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``p * q`` (xyzw, broadcast), ``p`` normalised first (an all-zero ``p``: orientation unknown,
    as some IMUs send, stays zero), sign with w >= 0. numpy, not scipy Rotations: the node hook
    runs it on every frame."""
    norm = np.linalg.norm(p, axis=-1, keepdims=True)
    p = np.divide(p, norm, out=np.zeros_like(p), where=norm > 0)
    px, py, pz, pw = p[..., 0], p[..., 1], p[..., 2], p[..., 3]
    qx, qy, qz, qw = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    out = np.stack(
        [
            pw * qx + px * qw + py * qz - pz * qy,
            pw * qy - px * qz + py * qw + pz * qx,
            pw * qz + px * qy - py * qx + pz * qw,
            pw * qw - px * qx - py * qy - pz * qz,
        ],
        axis=-1,
    )
    return np.where(out[..., 3:4] < 0, -out, out)


def _quat_times_rotation(quat_xyzw: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Orientation segment -> world from sensor -> world: q_ws * R^T (R: sensor -> segment)."""
    return _hamilton(np.asarray(quat_xyzw, dtype=float), _rotation_quat(r))


def require_usable(cal: WearerCalibration, locations, allow_flagged: bool = False) -> None:
    """CalibrationError unless every location has a calibration that is not flagged."""
    missing = [loc for loc in locations if loc not in cal.sensors]
    if missing:
        raise CalibrationError(f"no calibration for IMU(s) {missing}; the file has {sorted(cal.sensors)}")
    bad = [loc for loc in locations if cal.sensors[loc].flagged]
    if bad and not allow_flagged:
        raise CalibrationError(
            f"calibration of {bad} is flagged (quality "
            + ", ".join(f"{cal.sensors[b].quality:.2f}" for b in bad)
            + f" < {cal.sensors[bad[0]].min_quality}); recalibrate (stand still, then walk a few strides)"
        )


def apply_to_imu(
    cal: WearerCalibration, imu: Mapping[str, Mapping[str, np.ndarray]], allow_flagged: bool = False
) -> dict[str, dict[str, np.ndarray]]:
    """``imu[location] = {"acc", "gyro", "quat"?...}`` rotated into the segment frames (a copy).

    Every location must have a calibration; flagged ones raise unless ``allow_flagged``."""
    require_usable(cal, imu, allow_flagged)
    out = {}
    for loc, sig in imu.items():
        r = cal.sensors[loc].rotation
        new = dict(sig)
        for key in ("acc", "gyro"):
            new[key] = (np.asarray(sig[key], float) @ r.T).astype(np.asarray(sig[key]).dtype)
        if "quat" in sig:
            new["quat"] = _quat_times_rotation(sig["quat"], r).astype(np.asarray(sig["quat"]).dtype)
        out[loc] = new
    return out


def apply_to_arrays(
    cal: WearerCalibration,
    locations: tuple[str, ...],
    acc: np.ndarray,
    gyro: np.ndarray,
    quat_xyzw: np.ndarray,
    valid: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """K synchronized frames (``acc``/``gyro`` ``[K, L, 3]``, ``quat_xyzw`` ``[K, L, 4]``, ``valid``
    ``[K, L]``) in the segment frames (copies): the batched form of :func:`apply_to_frame`, same
    arithmetic, so offline batched replay equals the nodes. A location without a usable
    calibration (missing or flagged) is marked invalid in every frame."""
    sensors = [cal.sensors.get(loc) for loc in locations]
    usable = np.array([s is not None and not s.flagged for s in sensors], dtype=bool)
    rot = np.stack([s.rotation if ok else np.eye(3) for s, ok in zip(sensors, usable, strict=True)])
    qr = np.stack([_rotation_quat(r) for r in rot])  # [L, 4]
    acc = (np.asarray(acc, dtype=float)[..., None, :] @ rot.transpose(0, 2, 1))[..., 0, :]
    gyro = (np.asarray(gyro, dtype=float)[..., None, :] @ rot.transpose(0, 2, 1))[..., 0, :]
    quat = np.asarray(quat_xyzw, dtype=float)
    valid = np.asarray(valid, dtype=bool) & usable
    # an invalid sample may carry no orientation: it keeps its own
    quat = np.where(valid[..., None], _hamilton(quat, qr), quat)
    return acc, gyro, quat, valid


def apply_to_frame(cal: WearerCalibration, frame: SyncFrame) -> SyncFrame:
    """A synchronized frame in the segment frames (the node hook, before features). A location
    without a usable calibration (missing or flagged) is marked invalid, never passed on raw."""
    acc, gyro, quat, valid = apply_to_arrays(
        cal, frame.locations, frame.acc[None], frame.gyro[None], frame.quat_xyzw[None], frame.valid[None]
    )
    return replace(frame, acc=acc[0], gyro=gyro[0], quat_xyzw=quat[0], valid=valid[0])


_VECTOR_GROUPS = (("acc_x", "acc_y", "acc_z"), ("gyro_x", "gyro_y", "gyro_z"), ("grav_x", "grav_y", "grav_z"))
_QUAT = ("quat_x", "quat_y", "quat_z", "quat_w")


def apply_to_channels(cal: WearerCalibration, channels: tuple[str, ...], inputs: np.ndarray) -> np.ndarray:
    """Feature matrix ``inputs[N, C]`` (``"<location>/<signal>"`` columns) in the segment frames.

    Vector signals (acc, gyro, grav) need all three axes of a location, the quaternion all four;
    Euler angles are recomputed from the rotated quaternion. Flagged sensors raise."""
    from gait_estimator.core.features import SIGNALS, location_signals

    out = np.array(inputs, dtype=np.float64, copy=True)
    col = {c: i for i, c in enumerate(channels)}
    locations = list(dict.fromkeys(c.split("/", 1)[0] for c in channels))
    require_usable(cal, locations)
    for loc in locations:
        r = cal.sensors[loc].rotation
        have = {c.split("/", 1)[1] for c in channels if c.startswith(loc + "/")}
        for group in (*_VECTOR_GROUPS, _QUAT):
            present = [s for s in group if s in have]
            if present and len(present) < len(group):
                raise CalibrationError(
                    f"{loc}: cannot rotate {present} without {[s for s in group if s not in have]} "
                    "(calibration needs every axis of a sensor)"
                )
        for group in _VECTOR_GROUPS:
            if group[0] in have:
                idx = [col[f"{loc}/{s}"] for s in group]
                out[:, idx] = out[:, idx] @ r.T
        euler = [s for s in ("roll", "pitch", "yaw") if s in have]
        if "quat_x" in have:
            idx = [col[f"{loc}/{s}"] for s in _QUAT]
            out[:, idx] = _quat_times_rotation(out[:, idx], r)
            if euler:
                sig = location_signals(np.zeros((len(out), 3)), np.zeros((len(out), 3)), out[:, idx])
                for s in euler:
                    out[:, col[f"{loc}/{s}"]] = sig[:, SIGNALS.index(s)]
        elif euler:
            raise CalibrationError(
                f"{loc}: Euler channels {euler} can be rotated only with the quaternion channels"
            )
    return out.astype(np.asarray(inputs).dtype)


def apply_to_recordings(cal: WearerCalibration, recordings: list) -> list:
    """Recordings (``channels``, ``inputs[N, C]``: ``train``/``data`` datasets) in the segment
    frames (copies), for ``evaluate``/``train --calibration-file``: one wearer's recordings."""
    return [replace(r, inputs=apply_to_channels(cal, r.channels, r.inputs)) for r in recordings]
