"""IMU signals from the planar body: specific force, angular rate, orientation, error model.

Sensor frame: the segment frame (x forward, y left, z up when standing in the neutral pose)
rotated by the mounting misalignment. Accelerometers measure the specific force
R^T (a - g_world) (reads +9.81 on z at rest), gyroscopes R^T omega, orientation the
quaternion (x, y, z, w) of sensor -> world. Segment origins: pelvis, thigh: hip joint centre;
shank: knee; foot: ankle; trunk: hip joint centre (HAT segment).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from gait_estimator.conventions import GRAVITY, IMU_LOCATIONS

# Default mounting, segment frame (m), scaled by segment length / reference length.
# Positions follow the Dorschky et al. (2019) set-up (lateral thigh and shank, sacrum, dorsum).
_DEFAULT_POS = {
    "pelvis": (-0.10, 0.0, 0.05),
    "thigh": (0.0, 0.07, -0.21),
    "shank": (0.0, 0.055, -0.20),
    "foot": (0.12, 0.0, 0.0),
    "trunk": (-0.12, 0.0, 0.35),
}


@dataclass
class ImuErrorModel:
    """Sensor errors; ``enabled=False`` gives ideal signals."""

    enabled: bool = True
    acc_noise_density: float = 1.5e-3  # (m/s^2)/sqrt(Hz)
    gyro_noise_density: float = 1.5e-4  # (rad/s)/sqrt(Hz)
    acc_bias_sd: float = 0.05  # m/s^2 turn-on bias
    gyro_bias_sd: float = 0.005  # rad/s
    acc_bias_walk: float = 2e-4  # (m/s^2)/sqrt(s) random walk (bias instability)
    gyro_bias_walk: float = 2e-5  # (rad/s)/sqrt(s)
    scale_sd: float = 0.005  # relative, per axis
    acc_range: float = 16 * GRAVITY  # saturation, m/s^2
    gyro_range: float = np.radians(2000.0)  # rad/s
    quat_noise_rad: float = 0.005  # orientation estimate error (rad, per axis)
    dropout_prob: float = 0.0  # probability that a sample is lost
    jitter_ns: float = 0.0  # SD of the timestamp jitter (ns)


@dataclass
class ImuConfig:
    """Which IMUs, where and how they are mounted, at what rate, with which errors."""

    locations: tuple[str, ...] = IMU_LOCATIONS
    rate_hz: float = 100.0
    positions: dict = field(default_factory=dict)  # location -> (x, y, z) in the segment frame
    misalignment_deg: dict = field(default_factory=dict)  # location -> rotation vector, degrees
    random_misalignment_deg: float = 2.0  # SD of an extra random mounting rotation per axis
    errors: ImuErrorModel = field(default_factory=ImuErrorModel)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["locations"] = list(self.locations)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ImuConfig:
        d = dict(d)
        d["errors"] = ImuErrorModel(**d.get("errors", {}))
        d["locations"] = tuple(d.get("locations", IMU_LOCATIONS))
        return cls(**d)


def default_position(location: str, seg: dict) -> np.ndarray:
    part = location.split("_")[0]
    side = location.split("_")[1] if "_" in location else ""
    x, y, z = _DEFAULT_POS[part]
    if part == "thigh":
        z = z * seg["thigh"]["length"] / 0.42
    elif part == "shank":
        z = z * seg["shank"]["length"] / 0.43
    elif part == "foot":
        x = x * seg["foot"]["length"] / 0.26
    if side == "r":
        y = -y
    return np.array([x, y, z], dtype=float)


def _segment_key(location: str) -> str:
    return "hat" if location == "trunk" else location


def ideal_signals(body, location: str, position: np.ndarray, mount: Rotation) -> dict:
    """Ideal acc [N,3], gyro [N,3], quat [N,4] (x,y,z,w) for one IMU."""
    key = _segment_key(location)
    th, om, al = body.theta[key], body.omega[key], body.alpha[key]
    p0, v0, a0 = body.origin[key]
    r_local = np.array([position[0], position[2]])  # planar (x, z)
    c, s = np.cos(th), np.sin(th)
    r = np.stack([c * r_local[0] - s * r_local[1], s * r_local[0] + c * r_local[1]], axis=-1)
    perp_r = np.stack([-r[:, 1], r[:, 0]], axis=-1)
    a = a0 + al[:, None] * perp_r - (om**2)[:, None] * r
    n = th.size
    f_world = np.zeros((n, 3))
    f_world[:, 0] = a[:, 0]
    f_world[:, 2] = a[:, 1] + GRAVITY
    w_world = np.zeros((n, 3))
    w_world[:, 1] = -om  # planar CCW seen from the right = rotation about world -y
    seg_rot = Rotation.from_rotvec(np.stack([np.zeros(n), -th, np.zeros(n)], axis=-1))
    sensor = seg_rot * mount
    acc = sensor.inv().apply(f_world)
    gyro = sensor.inv().apply(w_world)
    quat = sensor.as_quat()  # x, y, z, w
    quat = np.where(quat[:, 3:4] < 0, -quat, quat)
    return {"acc": acc, "gyro": gyro, "quat": quat}


def apply_errors(sig: dict, em: ImuErrorModel, rate_hz: float, rng: np.random.Generator) -> dict:
    n = sig["acc"].shape[0]
    out = {k: v.copy() for k, v in sig.items()}
    valid = np.ones(n, dtype=bool)
    if not em.enabled:
        out["valid"] = valid
        return out
    dt = 1.0 / rate_hz
    for key, dens, b0, walk, rng_lim in (
        ("acc", em.acc_noise_density, em.acc_bias_sd, em.acc_bias_walk, em.acc_range),
        ("gyro", em.gyro_noise_density, em.gyro_bias_sd, em.gyro_bias_walk, em.gyro_range),
    ):
        scale = 1.0 + rng.normal(0.0, em.scale_sd, 3)
        bias = rng.normal(0.0, b0, 3) + np.cumsum(rng.normal(0.0, walk * np.sqrt(dt), (n, 3)), axis=0)
        noise = rng.normal(0.0, dens * np.sqrt(rate_hz / 2.0), (n, 3))
        out[key] = np.clip(out[key] * scale + bias + noise, -rng_lim, rng_lim)
    if em.quat_noise_rad > 0:
        err = Rotation.from_rotvec(rng.normal(0.0, em.quat_noise_rad, (n, 3)))
        q = (Rotation.from_quat(sig["quat"]) * err).as_quat()
        out["quat"] = np.where(q[:, 3:4] < 0, -q, q)
    if em.dropout_prob > 0:
        valid = rng.random(n) >= em.dropout_prob
        valid[0] = True
        idx = np.maximum.accumulate(np.where(valid, np.arange(n), 0))
        for key in ("acc", "gyro", "quat"):
            out[key] = out[key][idx]  # sample-and-hold; "valid" marks the lost samples
    out["valid"] = valid
    return out


def simulate_imus(body, seg: dict, config: ImuConfig, time_ns: np.ndarray,
                  rng: np.random.Generator, randomization=None, events_s: dict | None = None) -> dict:
    """Every configured IMU; ``randomization`` (:class:`sim.randomization.DomainRandomization`)
    adds residual mounting rotation/position, soft-tissue wobble at the heel strikes in
    ``events_s`` and a drawn IMU grade (``None``: the configured sensors, unchanged)."""
    from gait_estimator.sim import randomization as dr_mod

    dr = randomization if randomization is not None and randomization.enabled else None
    errors = dr_mod.sample_error_model(config.errors, dr, rng) if dr else config.errors
    out = {}
    for loc in config.locations:
        pos = np.asarray(config.positions.get(loc, default_position(loc, seg)), dtype=float)
        mis = np.radians(np.asarray(config.misalignment_deg.get(loc, (0.0, 0.0, 0.0)), dtype=float))
        rnd = np.radians(rng.normal(0.0, config.random_misalignment_deg, 3)) if config.errors.enabled \
            else np.zeros(3)
        mount = Rotation.from_rotvec(mis) * Rotation.from_rotvec(rnd)
        if dr:
            mount = mount * Rotation.from_rotvec(np.radians(rng.normal(0.0, dr.residual_rotation_deg, 3)))
            pos = pos + rng.normal(0.0, dr.position_sd_m, 3)
        ideal = ideal_signals(body, loc, pos, mount)
        if dr:
            hs = dr_mod.heel_strikes_for(loc, events_s or {})
            d_acc, d_gyro = dr_mod.soft_tissue(loc, hs, len(time_ns), config.rate_hz, dr, rng)
            ideal["acc"] = ideal["acc"] + d_acc
            ideal["gyro"] = ideal["gyro"] + d_gyro
        sig = apply_errors(ideal, errors, config.rate_hz, rng)
        stamp = time_ns.copy()
        if config.errors.enabled and config.errors.jitter_ns > 0:
            stamp = stamp + np.round(rng.normal(0.0, config.errors.jitter_ns, stamp.size)).astype(np.int64)
        sig["stamp_ns"] = stamp
        sig = {k: (v.astype(np.float32) if v.dtype == np.float64 else v) for k, v in sig.items()}
        out[loc] = sig
    return out
