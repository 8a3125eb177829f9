"""Top level of the simulator: subjects -> trials -> dataset directory (ROS-free).

``simulate_trial`` runs the planar model (:mod:`gait_estimator.sim.model`) and the IMU model
(:mod:`gait_estimator.sim.imu`); every random draw comes from one ``numpy`` Generator seeded
from the trial seed, so the same seed gives the same arrays (and, via the dataset writer,
the same bytes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gait_estimator.conventions import JOINTS
from gait_estimator.sim import dynamics
from gait_estimator.sim import model as md
from gait_estimator.sim.anthropometry import sample_subject as _sample_subject
from gait_estimator.sim.dataset import Trial, write_dataset
from gait_estimator.sim.imu import ImuConfig, simulate_imus

SPEED_RANGE = (0.5, 2.0)


def sample_subject(rng: np.random.Generator, subject_id: str = "S000") -> dict:
    return _sample_subject(rng, subject_id)


def simulate_trial(subject: dict, duration_s: float, speed_mps: float, rate_hz: float = 100.0,
                   seed: int = 0, imu_config: ImuConfig | None = None, trial_id: str | None = None,
                   balance_cop: bool = True, extras: bool = True, randomization=None) -> Trial:
    """Simulate ``duration_s`` of walking at mean ``speed_mps`` (0.5-2.0 m/s).

    ``randomization``: a :class:`gait_estimator.sim.randomization.DomainRandomization` for the IMUs.
    """
    if not SPEED_RANGE[0] <= speed_mps <= SPEED_RANGE[1]:
        from gait_estimator.errors import ConfigError
        raise ConfigError("speed_mps", speed_mps, f"must be within {SPEED_RANGE} m/s (walking)")
    cfg = imu_config or ImuConfig(rate_hz=rate_hz)
    cfg.rate_hz = rate_hz
    rng = np.random.default_rng(seed)
    kin = md.simulate_kinematics(subject, duration_s, speed_mps, rate_hz, rng)
    body = dynamics.build_body(kin, subject["segments"])
    idd = dynamics.inverse_dynamics(body, kin, balance_cop=balance_cop)
    n = kin.t.size
    time_ns = np.round(np.arange(n) * (1e9 / rate_hz)).astype(np.int64)
    imu = simulate_imus(body, subject["segments"], cfg, time_ns, rng, randomization, kin.events)
    mom = idd["moments"]
    moment = np.stack([mom[f"{j.split('_')[0]}_{j[-1]}"] for j in JOINTS], axis=-1).astype(np.float32)
    events = {k: np.round(v * rate_hz).astype(np.int64) for k, v in kin.events.items()}
    ex = {}
    if extras:
        a = kin.angles
        ang = []
        for j in JOINTS:
            s = j[-1]
            if j.startswith("hip"):
                ang.append(a[f"thigh_{s}"] - a["pelvis"])
            elif j.startswith("knee"):
                ang.append(a[f"shank_{s}"] - a[f"thigh_{s}"])
            else:
                ang.append(a[f"foot_{s}"] - a[f"shank_{s}"])
        ex["angles_rad"] = np.stack(ang, axis=-1).astype(np.float32)
        for s in ("r", "l"):
            ex[f"grf_{s}"] = idd["grf"][s].astype(np.float32)
            ex[f"cop_{s}"] = idd["cop"][s][:, 0].astype(np.float32)
        ex["residual_moment_nm"] = idd["residual_moment"].astype(np.float32)
        ex["pelvis_tilt_rad"] = a["pelvis"].astype(np.float32)
        ex["speed_mps"] = kin.speed.astype(np.float32)
    mean_speed = float((kin.hip[-1, 0] - kin.hip[0, 0]) / max(kin.t[-1] - kin.t[0], 1e-9))
    subj = {k: v for k, v in subject.items()}
    return Trial(trial_id or f"{subject['id']}_v{speed_mps:.2f}", subj, round(mean_speed, 4), float(rate_hz),
                 time_ns, imu, JOINTS, moment, np.mod(kin.phase_r, 1.0).astype(np.float32), events, ex)


def plan_trials(n_subjects: int, minutes: float, seed: int, trial_s: float = 60.0, randomization=None):
    """(subject, speed, duration, seed) per trial: ``minutes`` per subject in ``trial_s`` pieces.

    With ``randomization`` the subjects' anthropometry spreads wider and part of the trials walk
    at a speed uniform over the whole walking range."""
    dr = randomization if randomization is not None and randomization.enabled else None
    ss = np.random.SeedSequence(seed)
    subj_seqs = ss.spawn(n_subjects)
    plan = []
    for i, sq in enumerate(subj_seqs):
        rng = np.random.default_rng(sq)
        subject = _sample_subject(rng, f"S{i:03d}", dr.anthropometry_scale) if dr else sample_subject(
            rng, f"S{i:03d}"
        )
        total = minutes * 60.0
        k = 0
        while total > 1e-6:
            dur = min(trial_s, total)
            pref = subject["preferred_speed_mps"]
            factor = rng.choice([0.6, 0.8, 1.0, 1.0, 1.2, 1.35]) * rng.normal(1, 0.03)
            speed = float(np.clip(pref * factor, *SPEED_RANGE))
            if dr and rng.random() < dr.uniform_speed_fraction:
                speed = float(rng.uniform(*SPEED_RANGE))
            tseed = int(rng.integers(0, 2**31 - 1))
            plan.append((subject, round(speed, 3), dur, tseed, f"S{i:03d}_T{k:03d}"))
            total -= dur
            k += 1
    return plan


def generate_dataset(n_subjects: int, minutes: float, seed: int, out_dir, rate_hz: float = 100.0,
                     imu_config: ImuConfig | None = None, trial_s: float = 60.0, progress=None,
                     randomization=None) -> Path:
    """Generate ``n_subjects`` x ``minutes`` of walking into ``out_dir``; returns the manifest.

    ``randomization``: domain randomization (:mod:`gait_estimator.sim.randomization`), recorded in
    the manifest."""
    plan = plan_trials(n_subjects, minutes, seed, trial_s, randomization)
    cfg = imu_config or ImuConfig(rate_hz=rate_hz)

    def trials():
        for subject, speed, dur, tseed, tid in plan:
            yield simulate_trial(subject, dur, speed, rate_hz, tseed, cfg, tid, randomization=randomization)
            if progress is not None:
                progress(1)

    gen = {"n_subjects": n_subjects, "minutes": minutes, "seed": seed, "rate_hz": rate_hz,
           "trial_s": trial_s, "imu_config": cfg.to_dict()}
    if randomization is not None:
        gen["randomization"] = randomization.to_dict()
    return write_dataset(Path(out_dir), trials(), {"generator": gen})
