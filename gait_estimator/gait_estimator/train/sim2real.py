"""Sim-to-real check: a model file on the real Dorschky et al. (2019) walking cycles.

The data are gait-cycle *means* (100 samples per cycle, right heel strike to right heel
strike) of seven real IMUs and the inverse-dynamics moments of the right leg. For the check:

1. Each IMU's three columns are rotated from the OpenSim segment frame (x forward, y up,
   z right; axis directions from ``*_meta.json``) into the simulator's sensor frame (x forward,
   y left, z up) with ``gait_estimator.sim.validation.osim_to_rep103``: ``acc_x = x``,
   ``acc_z = y``, ``gyro_y = -gyro_z`` (a proper rotation, so it holds for both vector kinds).
2. The cycle (duration ``dur``) is repeated ``CYCLES`` times and resampled periodically to the
   model's rate, so every window is full; the model runs through the core runtime in window
   mode; the last cycle's estimates are compared with the measured moments.
3. Moments are in N·m in the source; they are divided by the body mass (73 kg for P01). P03's
   mass is not in the source, so only r is reported for it. Both use the OpenSim convention
   (hip + flexion, knee + extension, ankle + dorsiflexion), the convention of our models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gait_estimator.core.metrics import joint_metrics
from gait_estimator.errors import DatasetError

__all__ = ["CYCLES", "TRIALS", "dorschky_recording", "run_sim2real"]

CYCLES = 6
TRIALS = ("P01_walking", "P03_walking")


def _imu_in_sim_frame(meta: dict, data: dict, segment: str, kind: str) -> np.ndarray:
    """``[100, 3]`` signal of one Dorschky IMU in the simulator's sensor frame."""
    from gait_estimator.sim.validation import osim_to_rep103

    cols = [c for c in meta["columns"] if c.get("segment") == segment and c.get("type") == kind]
    if len(cols) != 3:
        raise DatasetError(f"Dorschky {segment}: expected 3 '{kind}' columns, found {len(cols)}")
    axes = np.array([c["axis_direction_in_segment"] for c in cols], dtype=float)  # rows: measured axes
    measured = np.stack([data[c["column"]][:100] for c in cols], axis=1)  # [100, 3]
    v_osim = np.linalg.solve(axes, measured.T).T  # components in the OpenSim segment frame
    return np.stack([osim_to_rep103(v) for v in v_osim])


def dorschky_recording(
    name: str, rate_hz: float, root: Path | None = None, cycles: int = CYCLES
) -> dict[str, Any]:
    """Periodically repeated cycle at ``rate_hz``: inputs for every sim channel, moments, phase."""
    from gait_estimator.sim.validation import DORSCHKY_SEGMENT, load_dorschky

    meta, data = load_dorschky(name, root)
    dur = float(data["dur"][0])
    n_src = 100
    t_src = np.arange(n_src + 1) * dur / n_src  # closed period: sample 100 == sample 0
    n = int(round(cycles * dur * rate_hz))
    t = np.arange(n) / rate_hz
    tm = np.mod(t, dur)

    def periodic(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)[:n_src]
        return np.interp(tm, t_src, np.append(x, x[0]))

    channels: dict[str, np.ndarray] = {}
    for seg, loc in DORSCHKY_SEGMENT.items():
        for kind in ("acc", "gyro"):
            v = _imu_in_sim_frame(meta, data, seg, kind)
            for k, axis in enumerate("xyz"):
                channels[f"{loc}/{kind}_{axis}"] = periodic(v[:, k])
    moments = {j: periodic(data[f"{j}_moment"]) for j in ("hip_flexion_r", "knee_angle_r", "ankle_angle_r")}
    mass = meta.get("mass_kg")
    return {
        "name": name,
        "channels": channels,
        "moments_nm": moments,
        "mass_kg": mass,
        "dur_s": dur,
        "phase": tm / dur,
        "rate_hz": rate_hz,
        "speed_mps": float(data["speed"][0]),
    }


def run_sim2real(
    model_path: str | Path,
    root: Path | None = None,
    trials: tuple[str, ...] = TRIALS,
    plot_dir: str | Path | None = None,
) -> dict[str, Any]:
    from gait_estimator.runtime.model_file import load_model

    rt = load_model(model_path, threads=0)
    md = rt.metadata
    joints = [j for j in md.output_joints if j.endswith("_r")]
    jidx = [md.output_joints.index(j) for j in joints]
    out: dict[str, Any] = {"trials": {}}
    for name in trials:
        rec = dorschky_recording(name, md.sample_rate_hz, root)
        missing = [c for c in md.input_channels if c not in rec["channels"]]
        if missing:
            raise DatasetError(f"Dorschky {name}: the model needs channels {missing} the data set lacks")
        x = np.stack([rec["channels"][c] for c in md.input_channels], axis=1)
        x = ((x - np.asarray(md.input_mean)) / np.asarray(md.input_std)).astype(np.float32)
        per_cycle = int(round(rec["dur_s"] * md.sample_rate_hz))
        ends = np.arange(len(x) - per_cycle, len(x))  # the last cycle; its windows lie in earlier cycles
        win = x[ends[:, None] + np.arange(-md.window + 1, 1)[None, :]]
        est = rt.predict_batch(win)[:, jidx]
        if md.output_unit == "N.m" and rec["mass_kg"]:
            est = est / float(rec["mass_kg"])
        ref_nm = np.stack([rec["moments_nm"][j][ends] for j in joints], axis=1)
        mass = rec["mass_kg"]
        if mass:
            ref = ref_nm / float(mass)
            m = joint_metrics(est, ref, joints)
        else:  # P03: no mass -> correlation only
            m = joint_metrics(est, ref_nm, joints)
            for j in joints:
                m[j]["rmse"] = None
                m[j]["nrmse"] = None
                m[j]["r2"] = None
            ref = None
        out["trials"][name] = {
            "metrics": m,
            "mass_kg": mass,
            "speed_mps": rec["speed_mps"],
            "cycle_s": rec["dur_s"],
            "samples": len(ends),
        }
        if plot_dir is not None:
            _plot(
                Path(plot_dir) / f"sim2real_{name}.png",
                name,
                joints,
                rec["phase"][ends],
                est,
                ref if ref is not None else ref_nm,
                mass is not None,
            )
    out["method"] = (
        "Real Dorschky 2019 gait-cycle means (P01: 73 kg, 1.29 m/s; P03: 1.37 m/s, mass not given), "
        "IMU axes rotated from the OpenSim segment frame into the simulator's sensor frame "
        "(acc_x = x, acc_z = y, gyro_y = -z), the cycle repeated "
        f"{CYCLES} times and resampled to {md.sample_rate_hz:.0f} Hz, the model run in window mode through "
        "the core runtime; the last cycle is compared with the measured right-leg inverse-dynamics "
        "moments (OpenSim signs) divided by the body mass."
    )
    out["limits"] = (
        "Limits: one averaged cycle per participant (averaging removes stride-to-stride variation and "
        "smooths the IMU signals; a repeated mean cycle is not a real recording); two participants; "
        "real sensors sit on soft tissue and are not exactly aligned with the segment axes; the model "
        "never saw real data (trained on the planar simulator only, whose kinematics come from "
        "normative templates); P03 has no body mass, so only r is given."
    )
    return out


def _plot(
    path: Path,
    name: str,
    joints: list[str],
    phase: np.ndarray,
    est: np.ndarray,
    ref: np.ndarray,
    per_kg: bool,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    order = np.argsort(phase)
    x, est, ref = 100 * phase[order], est[order], ref[order]
    fig, axes = plt.subplots(1, len(joints), figsize=(4 * len(joints), 3.2), squeeze=False)
    for i, j in enumerate(joints):
        ax = axes[0, i]
        ax.plot(x, ref[:, i], "k-", label="measured (Dorschky 2019)")
        ax.plot(x, est[:, i], "r--", label="default model")
        ax.set_title(f"{name} {j}")
        ax.set_xlabel("gait cycle (%)")
    axes[0, 0].set_ylabel("moment (N·m/kg)" if per_kg else "moment (N·m, estimate N·m/kg)")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
