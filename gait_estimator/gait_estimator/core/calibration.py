"""Sensor-to-segment calibration: per IMU, the rotation from the sensor frame to the segment frame.

The models read each IMU in its segment frame (``sim/imu.py``, ``train/sim2real.py``): x forward,
y left, z up when standing in the neutral pose; the same on both legs (the frames are not
mirrored, so one set of rules serves left and right). A real sensor strapped on at any angle
measures ``v_sensor = R^T v_segment``; calibration finds ``R`` (``v_segment = R v_sensor``) from:

- **standing** (optional, first): the specific force points up, so its mean gives z;
- **walking**: for leg segments the dominant angular-velocity axis in the horizontal plane is the
  joint (medio-lateral) axis y; for the pelvis the forward direction is where the horizontal
  acceleration follows the rate of change of the vertical one (inverted-pendulum gait: braking
  while the vertical acceleration falls after heel strike, propulsion while it rises);
- **the sign of y** (left vs right, forward vs backward) from the shape of gait: the swing-phase
  peak of the thigh and shank rotate them backward about y (negative), the foot's push-off peak
  is positive, and the mean pitch while walking is forward for the thigh, backward for the shank
  and foot (with a standing period only);
- **walking alone**: z is the mean specific force over whole strides, turned by the typical
  mean segment pitch while walking (``PRIORS``), so expect a few degrees more error.

Each sensor gets a quality score in [0, 1] (stillness while standing, how planar the rotation is,
how clear the sign is, enough motion); below ``min_quality`` it is flagged and
:func:`apply_to_imu` refuses it (:func:`apply_to_frame` marks it invalid), so a bad calibration
is never used silently. :func:`check_alignment` scores how far signals are from the model's frame
(a mis-mounted, uncalibrated sensor scores low).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from gait_estimator.conventions import GRAVITY, IMU_LOCATIONS, OPTIONAL_IMU_LOCATIONS
from gait_estimator.core.samples import SyncFrame
from gait_estimator.errors import CalibrationError

__all__ = [
    "FORMAT",
    "PRIORS",
    "SensorCalibration",
    "WearerCalibration",
    "apply_to_arrays",
    "apply_to_channels",
    "apply_to_frame",
    "apply_to_imu",
    "apply_to_recordings",
    "calibrate_sensor",
    "calibrate_wearer",
    "check_alignment",
    "find_standing",
    "read_calibration",
    "require_usable",
    "rotation_angle_deg",
    "write_calibration",
]

FORMAT = "gait_estimator.calibration"
VERSION = 1
MIN_QUALITY = 0.5
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


@dataclass
class SensorCalibration:
    """``rotation``: sensor -> segment (``v_segment = rotation @ v_sensor``); rows are the segment
    axes x, y, z written in sensor coordinates."""

    location: str
    rotation: np.ndarray
    quality: float
    method: str
    details: dict[str, float] = field(default_factory=dict)
    min_quality: float = MIN_QUALITY

    @property
    def flagged(self) -> bool:
        return not self.quality >= self.min_quality


@dataclass
class WearerCalibration:
    sensors: dict[str, SensorCalibration]
    wearer: str = "wearer"
    source: str = ""
    created: str = ""

    def flagged(self) -> list[str]:
        return [loc for loc, s in self.sensors.items() if s.flagged]


def rotation_angle_deg(r: np.ndarray) -> float:
    """Angle of a rotation matrix (deg)."""
    return float(np.degrees(np.arccos(np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0))))


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


# -- applying -------------------------------------------------------------------------------------
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


# -- YAML -------------------------------------------------------------------------------------------
_SENSOR_KEYS = {"rotation_sensor_to_segment", "quality", "method", "min_quality", "details"}
_TOP_KEYS = {"format", "version", "wearer", "source", "created", "sensors"}


def write_calibration(cal: WearerCalibration, path: str | Path) -> Path:
    import yaml

    doc = {
        "format": FORMAT,
        "version": VERSION,
        "wearer": cal.wearer,
        "source": cal.source,
        "created": cal.created,
        "sensors": {
            loc: {
                "rotation_sensor_to_segment": [[round(float(v), 6) for v in row] for row in s.rotation],
                "quality": float(s.quality),
                "min_quality": float(s.min_quality),
                "method": s.method,
                "details": {k: float(v) for k, v in s.details.items()},
            }
            for loc, s in cal.sensors.items()
        },
    }
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    header = "# Sensor-to-segment calibration (gait-estimator calibrate). v_segment = R v_sensor.\n"
    p.write_text(header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None))
    return p


def _rotation(raw: Any, where: str) -> np.ndarray:
    try:
        r = np.array(raw, dtype=float)
    except (TypeError, ValueError) as exc:
        raise CalibrationError(f"{where}: rotation must be a 3x3 list of numbers") from exc
    if r.shape != (3, 3) or not np.all(np.isfinite(r)):
        raise CalibrationError(f"{where}: rotation must be a 3x3 list of numbers, got shape {r.shape}")
    err = float(np.abs(r @ r.T - np.eye(3)).max())
    if err > 1e-3 or np.linalg.det(r) < 0:
        raise CalibrationError(
            f"{where}: not a rotation (orthonormality error {err:.2g}, det {np.linalg.det(r):.3f})"
        )
    u, _, vt = np.linalg.svd(r)  # re-orthonormalise the rounded values
    return u @ vt


def read_calibration(path: str | Path) -> WearerCalibration:
    """A per-wearer YAML written by :func:`write_calibration`, validated (CalibrationError naming
    the file and entry)."""
    import yaml

    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise CalibrationError(f"{p}: cannot read calibration: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise CalibrationError(f"{p}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CalibrationError(f"{p}: not a calibration file (needs 'format: {FORMAT}')")
    if raw.get("version") != VERSION:
        raise CalibrationError(f"{p}: version {raw.get('version')!r} is not supported (expected {VERSION})")
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise CalibrationError(f"{p}: unknown key(s) {unknown}; allowed: {sorted(_TOP_KEYS)}")
    sensors_raw = raw.get("sensors")
    if not isinstance(sensors_raw, dict) or not sensors_raw:
        raise CalibrationError(f"{p}: 'sensors' must be a non-empty mapping of location -> calibration")
    known = IMU_LOCATIONS + OPTIONAL_IMU_LOCATIONS
    sensors = {}
    for loc, s in sensors_raw.items():
        where = f"{p}: sensors.{loc}"
        if loc not in known:
            raise CalibrationError(f"{where}: unknown location; known: {list(known)}")
        if not isinstance(s, dict) or set(s) - _SENSOR_KEYS or "rotation_sensor_to_segment" not in s:
            raise CalibrationError(
                f"{where}: needs rotation_sensor_to_segment (keys allowed: {sorted(_SENSOR_KEYS)})"
            )
        q, mq = s.get("quality", 1.0), s.get("min_quality", MIN_QUALITY)
        if not all(isinstance(v, int | float) and 0.0 <= v <= 1.0 for v in (q, mq)):
            raise CalibrationError(f"{where}: quality {q!r} and min_quality {mq!r} must be numbers in [0, 1]")
        details = s.get("details") or {}
        if not isinstance(details, dict):
            raise CalibrationError(f"{where}: details must be a mapping")
        sensors[loc] = SensorCalibration(
            loc,
            _rotation(s["rotation_sensor_to_segment"], where),
            float(q),
            str(s.get("method", "given")),
            dict(details),
            float(mq),
        )
    return WearerCalibration(
        sensors, str(raw.get("wearer", "wearer")), str(raw.get("source", "")), str(raw.get("created", ""))
    )
