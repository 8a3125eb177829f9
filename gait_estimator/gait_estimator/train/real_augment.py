"""Augmentation of real-kinematics virtual IMUs: left/right mirroring and domain randomization.

The real-walker corpus (``make real-data``) holds *ideal* virtual IMUs computed from real
kinematics: no mounting error, no soft tissue, no sensor noise. Real sensors have all three, so
each training copy of a trial gets what ``sim/randomization.py`` gives the simulator, applied
to the stored signals instead of to the simulated body:

- residual mounting rotation (SD ``residual_rotation_deg`` per axis): acc and gyro rotated into
  the misaligned sensor frame, ``v' = R^T v``;
- mounting position offset ``d`` (SD ``position_sd_m`` per axis): the rigid-body lever arm
  ``a' = a + alpha x d + omega x (omega x d)`` with ``omega`` the gyro and ``alpha`` its time
  derivative (both in the sensor frame, where the rigid-body relation holds as written);
- soft-tissue wobble started at every heel strike of the IMU's leg (``randomization.soft_tissue``);
- the noise, bias, bias walk and scale error of a drawn IMU grade (``imu.apply_errors``).

Mirroring swaps the legs: the ``_r`` and ``_l`` IMUs, moments, validity masks and heel strikes
trade places, and each 3-axis signal is reflected through the sagittal plane (frames x forward,
y left, z up: acceleration, a polar vector, ``(x, -y, z)``; angular rate, an axial vector,
``(-x, y, -z)``). The sagittal channels (acc_x, acc_z, gyro_y) keep their values; only which leg
they belong to changes, so one person's walk also trains the other leg.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.spatial.transform import Rotation

from gait_estimator.sim.dataset import Trial
from gait_estimator.sim.imu import ImuErrorModel, apply_errors
from gait_estimator.sim.randomization import (
    DomainRandomization,
    heel_strikes_for,
    sample_error_model,
    soft_tissue,
)

__all__ = ["mirror_trial", "randomize_trial", "swap_side"]

_ACC_MIRROR = np.array([1.0, -1.0, 1.0])
_GYRO_MIRROR = np.array([-1.0, 1.0, -1.0])


def swap_side(name: str) -> str:
    """``thigh_r`` <-> ``thigh_l``, ``knee_angle_r`` <-> ``knee_angle_l``; other names unchanged."""
    if name.endswith("_r"):
        return name[:-2] + "_l"
    if name.endswith("_l"):
        return name[:-2] + "_r"
    return name


def _mirror_quat(q: np.ndarray) -> np.ndarray:
    """Orientation reflected through the sagittal plane: ``M R M`` with ``M = diag(1, -1, 1)``."""
    m = np.diag([1.0, -1.0, 1.0])
    mats = m @ Rotation.from_quat(q).as_matrix() @ m
    out = Rotation.from_matrix(mats).as_quat()
    return np.where(out[:, 3:4] < 0, -out, out).astype(np.float32)


def mirror_trial(trial: Trial, suffix: str = "~mirror") -> Trial:
    """The same walk with the legs swapped (see the module docstring); the phase is unknown (NaN)."""
    joints = tuple(trial.joint_names)
    order = [joints.index(swap_side(j)) for j in joints]
    imu = {}
    for loc, sig in trial.imu.items():
        new = dict(sig)
        new["acc"] = (np.asarray(sig["acc"]) * _ACC_MIRROR).astype(np.float32)
        new["gyro"] = (np.asarray(sig["gyro"]) * _GYRO_MIRROR).astype(np.float32)
        if "quat" in sig:
            new["quat"] = _mirror_quat(np.asarray(sig["quat"], dtype=float))
        imu[swap_side(loc)] = new
    imu = {loc: imu[loc] for loc in (swap_side(x) for x in trial.imu)}
    extras = dict(trial.extras)
    if "moment_valid" in extras:
        extras["moment_valid"] = np.asarray(extras["moment_valid"])[:, order]
    return replace(
        trial,
        trial_id=trial.trial_id + suffix,
        imu=imu,
        moment_nm=np.asarray(trial.moment_nm)[:, order],
        phase_r=np.full(len(trial.time_ns), np.nan, dtype=np.float32),
        events={swap_side(k): v for k, v in trial.events.items()},
        extras=extras,
    )


def randomize_trial(
    trial: Trial,
    dr: DomainRandomization,
    rng: np.random.Generator,
    suffix: str = "",
    base_errors: ImuErrorModel | None = None,
) -> Trial:
    """A copy of ``trial`` whose IMUs carry one random draw of mounting, soft tissue and sensor errors.

    ``dr.enabled=False`` returns the signals unchanged (copied). Heel strikes come from
    ``trial.events`` (sample indices, as the datasets store them).
    """
    if not dr.enabled:
        return replace(
            trial, trial_id=trial.trial_id + suffix, imu={k: dict(v) for k, v in trial.imu.items()}
        )
    rate = float(trial.sample_rate_hz)
    events_s = {k: np.asarray(v, dtype=float) / rate for k, v in trial.events.items()}
    errors = sample_error_model(base_errors or ImuErrorModel(quat_noise_rad=0.0), dr, rng)
    imu = {}
    for loc, sig in trial.imu.items():
        acc = np.asarray(sig["acc"], dtype=float)
        gyro = np.asarray(sig["gyro"], dtype=float)
        n = len(acc)
        offset = rng.normal(0.0, dr.position_sd_m, 3)
        alpha = np.gradient(gyro, 1.0 / rate, axis=0) if n > 1 else np.zeros_like(gyro)
        acc = acc + np.cross(alpha, offset) + np.cross(gyro, np.cross(gyro, offset))
        mount = Rotation.from_rotvec(np.radians(rng.normal(0.0, dr.residual_rotation_deg, 3)))
        acc, gyro = mount.inv().apply(acc), mount.inv().apply(gyro)
        quat = np.asarray(sig.get("quat", np.tile([0.0, 0.0, 0.0, 1.0], (n, 1))), dtype=float)
        quat = (Rotation.from_quat(quat) * mount).as_quat()
        d_acc, d_gyro = soft_tissue(loc, heel_strikes_for(loc, events_s), n, rate, dr, rng)
        noisy = apply_errors({"acc": acc + d_acc, "gyro": gyro + d_gyro, "quat": quat}, errors, rate, rng)
        new = dict(sig)
        for key in ("acc", "gyro", "quat"):
            new[key] = noisy[key].astype(np.float32)
        imu[loc] = new
    return replace(trial, trial_id=trial.trial_id + suffix, imu=imu)
