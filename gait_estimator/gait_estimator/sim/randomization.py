"""Domain randomization for sim-to-real training (off unless a generator is given one).

What real walkers add to the planar simulator's ideal sensors, drawn per trial and per IMU:

- residual mounting rotation after sensor-to-segment calibration (a few degrees per axis) and
  a mounting position offset (a few cm);
- soft-tissue motion: a damped oscillation of the sensor on its segment, excited at every heel
  strike (frequency, damping and amplitude per IMU; thigh/shank wobble most, the foot least);
- the noise and bias of a common IMU grade (consumer MEMS, wearable/industrial MEMS, tactical);
- walking speed drawn uniformly over 0.5-2.0 m/s for part of the trials;
- wider anthropometry (height, BMI and segment-length spread scaled up).

Every draw comes from the trial's ``numpy`` Generator, so a seed still gives the same bytes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

__all__ = ["IMU_GRADES", "DomainRandomization", "sample_error_model", "soft_tissue"]

# Typical datasheet figures (noise density, turn-on bias SD, bias instability walk, scale SD).
IMU_GRADES: dict[str, dict[str, float]] = {
    "consumer": {  # phone / hobby MEMS (MPU-6050 / BMI160 class)
        "acc_noise_density": 4e-3, "gyro_noise_density": 2e-4 * 3.5,
        "acc_bias_sd": 0.25, "gyro_bias_sd": 0.02,
        "acc_bias_walk": 1e-3, "gyro_bias_walk": 1e-4, "scale_sd": 0.02,
    },
    "wearable": {  # research wearables (Xsens MTw / APDM Opal / Shimmer class)
        "acc_noise_density": 1.5e-3, "gyro_noise_density": 1.5e-4,
        "acc_bias_sd": 0.05, "gyro_bias_sd": 0.005,
        "acc_bias_walk": 2e-4, "gyro_bias_walk": 2e-5, "scale_sd": 0.005,
    },
    "tactical": {  # high-end MEMS (ADIS165xx class)
        "acc_noise_density": 6e-4, "gyro_noise_density": 5e-5,
        "acc_bias_sd": 0.02, "gyro_bias_sd": 0.001,
        "acc_bias_walk": 5e-5, "gyro_bias_walk": 5e-6, "scale_sd": 0.002,
    },
}

# Soft-tissue wobble per segment: (acc amplitude m/s^2, gyro amplitude rad/s) at a heel strike.
_TISSUE = {
    "thigh": (2.5, 0.35),
    "shank": (2.0, 0.30),
    "pelvis": (1.0, 0.10),
    "trunk": (0.8, 0.08),
    "foot": (0.5, 0.05),
}


@dataclass
class DomainRandomization:
    """How much to randomize; ``enabled=False`` (the default) leaves the simulator unchanged."""

    enabled: bool = True
    residual_rotation_deg: float = 4.0  # SD per axis of the mounting rotation left after calibration
    position_sd_m: float = 0.02  # SD per axis of the mounting position offset
    soft_tissue_scale: float = 1.0  # 0 turns the heel-strike wobble off
    soft_tissue_hz: tuple[float, float] = (8.0, 20.0)  # oscillation frequency range
    soft_tissue_damping: tuple[float, float] = (0.15, 0.45)  # damping ratio range
    grades: tuple[str, ...] = ("consumer", "wearable", "wearable", "tactical")  # drawn per trial
    uniform_speed_fraction: float = 0.4  # share of trials at a speed uniform in 0.5-2.0 m/s
    anthropometry_scale: float = 1.6  # multiplies the height/BMI/segment-length SDs

    def to_dict(self) -> dict:
        d = asdict(self)
        d["grades"] = list(self.grades)
        return d


def sample_error_model(base, dr: DomainRandomization, rng: np.random.Generator):
    """``base`` (an ``ImuErrorModel``) with the noise/bias figures of a randomly drawn IMU grade."""
    if not dr.enabled or not dr.grades or not base.enabled:
        return base
    grade = IMU_GRADES[dr.grades[int(rng.integers(len(dr.grades)))]]
    return replace(base, **grade)


def soft_tissue(
    location: str,
    heel_strikes_s: np.ndarray,
    n: int,
    rate_hz: float,
    dr: DomainRandomization,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Additive acc ``[n, 3]`` (m/s^2) and gyro ``[n, 3]`` (rad/s) of a sensor wobbling on soft tissue.

    Each heel strike (of the IMU's own leg; either leg for pelvis/trunk) starts a damped sine
    ``a exp(-zeta w t) sin(w_d t)``; the amplitude varies +-30 % per strike, the direction is fixed
    per IMU (mostly sagittal: the impact is vertical/fore-aft and the segment rocks about its
    medio-lateral axis).
    """
    acc, gyro = np.zeros((n, 3)), np.zeros((n, 3))
    if not dr.enabled or dr.soft_tissue_scale <= 0 or len(heel_strikes_s) == 0:
        return acc, gyro
    a_amp, g_amp = _TISSUE[location.split("_")[0]]
    scale = dr.soft_tissue_scale * rng.uniform(0.3, 1.5)  # tissue and strap tightness per IMU
    f = rng.uniform(*dr.soft_tissue_hz)
    zeta = rng.uniform(*dr.soft_tissue_damping)
    w = 2 * np.pi * f
    wd = w * np.sqrt(1 - zeta**2)
    acc_dir = _unit(np.array([rng.normal(0, 0.6), rng.normal(0, 0.3), 1.0]))
    gyro_dir = _unit(np.array([rng.normal(0, 0.3), 1.0, rng.normal(0, 0.3)]))
    t = np.arange(n) / rate_hz
    for hs in np.asarray(heel_strikes_s, dtype=float):
        k0 = int(np.ceil(hs * rate_hz))
        if k0 >= n:
            continue
        k1 = min(n, k0 + int(rate_hz * 5 / (zeta * f)))  # until the envelope is ~e^-30
        tau = t[k0:k1] - hs
        wave = np.exp(-zeta * w * tau) * np.sin(wd * tau) * rng.uniform(0.7, 1.3)
        acc[k0:k1] += scale * a_amp * wave[:, None] * acc_dir
        gyro[k0:k1] += scale * g_amp * wave[:, None] * gyro_dir
    return acc, gyro


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def heel_strikes_for(location: str, events_s: dict) -> np.ndarray:
    """Heel strikes (s) that shake the IMU at ``location``: its own leg's, or both for the torso."""
    side = location.split("_")[1] if "_" in location else ""
    keys = [f"heel_strike_{side}"] if side else ["heel_strike_r", "heel_strike_l"]
    hs = [np.asarray(events_s.get(k, ()), dtype=float) for k in keys]
    return np.sort(np.concatenate(hs)) if hs else np.zeros(0)

