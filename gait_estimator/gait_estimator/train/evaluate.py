"""Evaluate a model file on recordings: per-joint RMSE (N·m/kg), NRMSE, r, R², table, JSON, plots.

The model is run through the core runtime (``runtime.model_file.load_model``), on windows built
exactly as the pipeline builds them (metadata channels, normalisation, window), one estimate
per sample (stride 1) from the first full window on; the reference is the moment at the newest
row of each window. Samples a recording marks invalid (``Recording.valid``, e.g. a foot loaded
off the force plates) have a NaN reference and are left out of every metric.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gait_estimator.core.metrics import METRICS, joint_metrics
from gait_estimator.data.dataset import Recording
from gait_estimator.errors import DatasetError

__all__ = [
    "EvalResult",
    "evaluate_runtime",
    "format_table",
    "masked_joint_metrics",
    "plot_evaluation",
    "predict_recording",
]


def masked_joint_metrics(
    estimate: np.ndarray, reference: np.ndarray, joints: Sequence[str]
) -> dict[str, dict[str, float]]:
    """``joint_metrics`` over the samples whose reference is finite (NaN = masked), per joint."""
    ok = np.isfinite(reference)
    if ok.all():
        return joint_metrics(estimate, reference, joints)
    out = {}
    for i, j in enumerate(joints):
        sel = ok[:, i]
        if sel.sum() < 2:  # nothing to score for this joint here: say so with NaN
            out[j] = {m: float("nan") for m in METRICS}
            continue
        out[j] = joint_metrics(estimate[sel, i : i + 1], reference[sel, i : i + 1], [j])[j]
    return out


@dataclass
class EvalResult:
    joints: tuple[str, ...]
    metrics: dict[str, dict[str, float]]  # joint -> metric -> value (all recordings pooled)
    per_recording: dict[str, dict[str, dict[str, float]]]
    predictions: list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]] = field(
        repr=False, default_factory=list
    )
    samples: int = 0
    gait: dict[str, Any] | None = None  # gait phase vs the recordings' phase (recording_gait)

    def mean(self, metric: str = "rmse") -> float:
        return float(np.mean([self.metrics[j][metric] for j in self.joints]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "joints": list(self.joints),
            "unit": "N.m/kg",
            "samples": self.samples,
            "metrics": self.metrics,
            "mean": {m: self.mean(m) for m in METRICS},
            "per_recording": self.per_recording,
            **({"gait_phase": self.gait} if self.gait else {}),
        }


def predict_recording(runtime: Any, rec: Recording, batch: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Estimates ``[N - T + 1, J]`` (N·m/kg) of ``runtime`` on ``rec`` and the aligned reference
    (NaN where the recording marks a moment invalid)."""
    md = runtime.metadata
    if abs(rec.sample_rate_hz - md.sample_rate_hz) > 1e-6:
        rec = rec.resample(md.sample_rate_hz)
    r = rec.select(md.input_channels, md.output_joints)
    t = md.window
    if len(r) < t:
        raise DatasetError(f"recording '{rec.name}': {len(r)} samples < model window {t}")
    x = ((r.inputs - np.asarray(md.input_mean)) / np.asarray(md.input_std)).astype(np.float32)
    ends = np.arange(t - 1, len(r))
    out = np.empty((len(ends), len(md.output_joints)))
    offs = np.arange(-t + 1, 1)
    for i in range(0, len(ends), batch):
        e = ends[i : i + batch]
        out[i : i + len(e)] = runtime.predict_batch(x[e[:, None] + offs[None, :]])
    if md.output_unit == "N.m":  # a model predicting N·m: compare in N·m/kg
        out = out / rec.mass_kg
    ref = r.moments[ends].astype(np.float64)
    if r.valid is not None:
        ref[~r.valid[ends]] = np.nan
    return out, ref


def evaluate_runtime(
    runtime: Any, recordings: Sequence[Recording], keep_predictions: bool = True
) -> EvalResult:
    joints = tuple(runtime.metadata.output_joints)
    preds, refs, per, kept = [], [], {}, []
    t = runtime.metadata.window
    for rec in recordings:
        p, r = predict_recording(runtime, rec)
        preds.append(p)
        refs.append(r)
        per[rec.name] = masked_joint_metrics(p, r, joints)
        if keep_predictions:
            if rec.phase is not None:
                phase = rec.phase[t - 1 :][: len(p)]
            else:
                phase = estimate_phase(r[:, 0], runtime.metadata.sample_rate_hz)
            kept.append((rec.name, p, r, phase))
    if not preds:
        raise DatasetError("no recordings to evaluate")
    pe, re = np.concatenate(preds), np.concatenate(refs)
    gait = pooled_gait([g for g in (recording_gait(rec) for rec in recordings) if g is not None])
    return EvalResult(joints, masked_joint_metrics(pe, re, joints), per, kept, len(pe), gait)


GAIT_LEGS = ("shank_r", "shank_l", "foot_r", "foot_l")


def recording_gait(rec: Recording) -> dict[str, Any] | None:
    """The right leg's gait phase (``core.gait_phase``, streaming over the recording's own shank
    or foot gyro channels) against the recording's phase column; None when it has neither."""
    from gait_estimator.core.gait_metrics import event_timing, phase_error
    from gait_estimator.core.gait_phase import HEEL_STRIKE, LEG_RIGHT, make_gait_phase
    from gait_estimator.core.samples import SyncFrame

    locs = tuple(loc for loc in GAIT_LEGS if all(f"{loc}/gyro_{a}" in rec.channels for a in "xyz"))
    gait = make_gait_phase(rec.sample_rate_hz, locs) if rec.phase is not None and locs else None
    if gait is None:
        return None
    cols = [rec.channels.index(f"{loc}/gyro_{a}") for loc in locs for a in "xyz"]
    gyro = rec.inputs[:, cols].astype(np.float64).reshape(len(rec.inputs), len(locs), 3)
    zeros, ok = np.zeros((len(locs), 3)), np.ones(len(locs), bool)
    quat = np.tile([0.0, 0.0, 0.0, 1.0], (len(locs), 1))
    period = 1e9 / rec.sample_rate_hz
    est = np.full(len(gyro), np.nan)
    hs = []
    for i in range(len(gyro)):
        st = gait.push(SyncFrame(int(round(i * period)), locs, zeros, gyro[i], quat, ok))
        est[i] = st.phase[0]
        hs += [e.stamp_ns for e in st.events if e.leg == LEG_RIGHT and e.event == HEEL_STRIKE]
    ref = np.asarray(rec.phase, dtype=np.float64)
    fin = np.isfinite(ref)
    wraps = np.flatnonzero(fin[1:] & fin[:-1] & (np.diff(ref) < -0.5)) + 1
    window = (int(2.5e9), int((len(gyro) - 15) * period))  # after the detector locks on
    timing = event_timing(np.asarray(hs, np.int64), np.round(wraps * period).astype(np.int64),
                          150_000_000, window)
    both = np.isfinite(est) & fin
    valid = float(np.isfinite(est).mean())
    return {"err": phase_error(est[both], ref[both]), "valid": valid, "timing": timing}


def pooled_gait(parts: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Phase RMSE (% of the stride) and heel-strike timing pooled over recordings."""
    if not parts:
        return None
    err = np.concatenate([p["err"] for p in parts])
    errs = [e for p in parts for e in p["timing"].errors_ms]
    return {
        "recordings": len(parts),
        "phase_rmse_pct": float(100.0 * np.sqrt(np.mean(err**2))) if err.size else None,
        "phase_valid_fraction": float(np.mean([p["valid"] for p in parts])),
        "heel_strike": {
            "reference": sum(p["timing"].n_reference for p in parts),
            "missed": sum(p["timing"].missed for p in parts),
            "extra": sum(p["timing"].extra for p in parts),
            "mae_ms": float(np.mean(np.abs(errs))) if errs else None,
        },
    }


def format_table(result: EvalResult, title: str = "") -> str:
    head = f"{'joint':<16}{'RMSE N.m/kg':>12}{'NRMSE %':>9}{'r':>7}{'R2':>7}"
    lines = ([title] if title else []) + [head, "-" * len(head)]
    for j in result.joints:
        m = result.metrics[j]
        lines.append(
            f"{j:<16}{m['rmse']:>12.3f}{100 * m['nrmse']:>9.1f}{m['pearson_r']:>7.3f}{m['r2']:>7.3f}"
        )
    lines.append(
        f"{'mean':<16}{result.mean('rmse'):>12.3f}{100 * result.mean('nrmse'):>9.1f}"
        f"{result.mean('pearson_r'):>7.3f}{result.mean('r2'):>7.3f}"
    )
    return "\n".join(lines)


def estimate_phase(signal: np.ndarray, rate_hz: float) -> np.ndarray | None:
    """Cycle phase in [0, 1) when no gait events are known: cycles start at the peaks of ``signal``.

    The stride period comes from the autocorrelation (0.6-2.5 s); peaks at least 0.7 periods
    apart start the cycles. Used only to average plots of data without a phase column.
    """
    x = np.asarray(signal, dtype=np.float64) - np.nanmean(signal)
    lo, hi = int(0.6 * rate_hz), min(int(2.5 * rate_hz), len(x) // 2)
    if hi <= lo + 1 or not np.all(np.isfinite(x)):
        return None
    seg = x[: 8 * hi]
    ac = np.correlate(seg, seg, "full")[len(seg) - 1 :]
    period = lo + int(np.argmax(ac[lo:hi]))
    from scipy.signal import find_peaks

    peaks, _ = find_peaks(x, distance=max(1, int(0.7 * period)))
    if len(peaks) < 2:
        return None
    phase = np.full(len(x), np.nan)
    for a, b in zip(peaks[:-1], peaks[1:], strict=True):
        phase[a:b] = np.arange(b - a) / (b - a)
    return phase


def cycle_average(values: np.ndarray, phase: np.ndarray, bins: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD of ``values[N, J]`` over gait-cycle phase bins (0..100 %)."""
    ok = np.isfinite(phase)
    values, phase = values[ok], phase[ok]
    idx = np.clip(np.round(phase * (bins - 1)).astype(int), 0, bins - 1)
    mean = np.full((bins, values.shape[1]), np.nan)
    sd = np.full((bins, values.shape[1]), np.nan)
    for b in range(bins):
        sel = idx == b
        if sel.any():
            mean[b], sd[b] = values[sel].mean(axis=0), values[sel].std(axis=0)
    return mean, sd


def plot_evaluation(
    result: EvalResult, out_dir: str | Path, seconds: float = 6.0, rate_hz: float = 100.0, title: str = ""
) -> list[Path]:
    """``estimate_time.png`` (first recording, first seconds) and ``estimate_cycle.png`` (phase means)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    name, p, r, _ = result.predictions[0]
    n = min(len(p), int(seconds * rate_hz))
    t = np.arange(n) / rate_hz
    fig, axes = plt.subplots(
        len(result.joints), 1, figsize=(9, 2.2 * len(result.joints)), sharex=True, squeeze=False
    )
    for i, j in enumerate(result.joints):
        ax = axes[i, 0]
        ax.plot(t, r[:n, i], "k-", label="reference")
        ax.plot(t, p[:n, i], "r--", label="estimate")
        ax.set_ylabel(f"{j}\nN·m/kg")
    axes[0, 0].legend(loc="upper right")
    axes[0, 0].set_title(title or f"{name}: estimate vs reference")
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    paths.append(out / "estimate_time.png")
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)

    with_phase = [(p, r, ph) for _, p, r, ph in result.predictions if ph is not None]
    if with_phase:
        pe = np.concatenate([a for a, _, _ in with_phase])
        re = np.concatenate([b for _, b, _ in with_phase])
        ph = np.concatenate([c for _, _, c in with_phase])
        pm, ps = cycle_average(pe, ph)
        rm, rs = cycle_average(re, ph)
        x = np.linspace(0, 100, len(pm))
        fig, axes = plt.subplots(1, len(result.joints), figsize=(4 * len(result.joints), 3.2), squeeze=False)
        for i, j in enumerate(result.joints):
            ax = axes[0, i]
            ax.fill_between(x, rm[:, i] - rs[:, i], rm[:, i] + rs[:, i], color="0.8")
            ax.plot(x, rm[:, i], "k-", label="reference")
            ax.fill_between(x, pm[:, i] - ps[:, i], pm[:, i] + ps[:, i], color="r", alpha=0.15)
            ax.plot(x, pm[:, i], "r--", label="estimate")
            ax.set_title(f"{j} RMSE {result.metrics[j]['rmse']:.3f}")
            ax.set_xlabel("gait cycle (%)")
        axes[0, 0].set_ylabel("moment (N·m/kg)")
        axes[0, 0].legend()
        fig.tight_layout()
        paths.append(out / "estimate_cycle.png")
        fig.savefig(paths[-1], dpi=90)
        plt.close(fig)
    return paths


def write_json(result: EvalResult, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    data = result.to_dict()
    if extra:
        data.update(extra)
    p.write_text(json.dumps(data, indent=1, allow_nan=True))
    return p
