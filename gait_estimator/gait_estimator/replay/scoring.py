"""Scoring a replay: estimates matched with the reference torques, per-joint metrics, command
statistics (see :mod:`gait_estimator.replay.offline` for what is scored and why)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from gait_estimator.replay.baseline import METRIC_NAMES
from gait_estimator.replay.options import ReplayResult

__all__ = ["command_statistics", "evaluate", "gait_phase_metrics", "match_reference", "undefined_metrics"]

# A detected heel strike within this of a reference one is a match; further off it is an extra
# detection and the reference one is missed.
HEEL_STRIKE_TOLERANCE_NS = 150_000_000
HEEL_STRIKE_WARMUP_NS = 2_500_000_000


def match_reference(result: ReplayResult, max_gap_s: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(mask over estimates, reference [N, J] N·m at the estimate stamps; NaN where unmatched).

    Estimates are placed on the IMU stamps' clock (``est_sensor_ns``), the clock of the reference.

    Linear interpolation between reference samples no more than ``max_gap_s`` apart, only for
    valid estimates inside the reference's span and only from valid reference messages.
    """
    ref = result.reference
    n, j = result.est_nm.shape
    out = np.full((n, j), np.nan)
    if ref is None or n == 0:
        return np.zeros(n, dtype=bool), out
    order = np.argsort(ref.stamp_ns, kind="stable")
    t = ref.stamp_ns[order]
    keep = np.concatenate([[True], np.diff(t) > 0]) & ref.valid[order]
    t = t[keep]
    y = ref.torque_nm[order][keep]
    if t.size < 2:
        return np.zeros(n, dtype=bool), out
    s = result.est_sensor_ns
    i = np.searchsorted(t, s, side="right")  # t[i-1] <= s < t[i]
    exact = (i >= 1) & (t[np.clip(i - 1, 0, t.size - 1)] == s)
    inside = (i >= 1) & (i < t.size)
    ia, ib = np.clip(i - 1, 0, t.size - 1), np.clip(i, 0, t.size - 1)
    gap_ok = (t[ib] - t[ia]) <= int(max_gap_s * 1e9)
    ok = result.est_valid & (exact | (inside & gap_ok))
    w = np.where(ib > ia, (s - t[ia]) / np.maximum(t[ib] - t[ia], 1), 0.0)
    w = np.where(exact, 0.0, w)
    interp = y[ia] + (y[ib] - y[ia]) * w[:, None]
    out[ok] = interp[ok]
    return ok, out


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def undefined_metrics(
    est: np.ndarray, ref: np.ndarray, joints: tuple[str, ...], metrics: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, str]]:
    """``{joint: {metric: why}}`` for every metric that came out None (``est``, ``ref``: the
    matched [N, J] rows)."""
    out: dict[str, dict[str, str]] = {}
    for i, jn in enumerate(joints):
        missing = [k for k in METRIC_NAMES if metrics[jn][k] is None]
        if not missing:
            continue
        e, r = est[:, i], ref[:, i]
        both = np.isfinite(e) & np.isfinite(r)
        if both.sum() < 2:
            why = f"{int(both.sum())} sample(s) where estimate and reference are both finite (reference NaN?)"
        elif np.ptp(r[both]) == 0:
            why = f"reference is constant ({r[both][0]:g} N.m): range 0, r undefined"
        elif np.ptp(e[both]) == 0:
            why = "estimate is constant: r undefined"
        else:
            why = "not finite"
        out[jn] = dict.fromkeys(missing, why)
    return out


def evaluate(result: ReplayResult) -> dict[str, Any]:
    """The JSON-ready report: metrics per joint (N·m/kg), command statistics, counters, speed."""
    from gait_estimator.core.metrics import joint_metrics

    joints = result.joints
    mass = result.subject_mass_kg
    report: dict[str, Any] = {
        "bag": str(result.bag),
        "storage": result.storage,
        "model": result.model_source,
        "joints": list(joints),
        "subject_mass_kg": mass,
        "bag_duration_s": result.bag_duration_s,
        "estimates": int(result.est_nm.shape[0]),
        "valid_estimates": int(result.est_valid.sum()),
    }
    metrics: dict[str, dict[str, float | None]] = {}
    if result.reference is not None:
        ok, ref_nm = match_reference(result)
        report["scored_estimates"] = int(ok.sum())
        report["reference_topic"] = result.reference.topic
        if ok.sum() >= 2 and mass > 0:
            m = joint_metrics(result.est_nm[ok] / mass, ref_nm[ok] / mass, joints)
            metrics = {jn: {k: _finite(v) for k, v in d.items()} for jn, d in m.items()}
            undefined = undefined_metrics(result.est_nm[ok], ref_nm[ok], joints, metrics)
            if undefined:
                report["metrics_undefined"] = undefined
        elif mass <= 0:
            report["metrics_skipped"] = "subject mass unknown (N·m/kg metrics need it)"
        else:
            report["metrics_skipped"] = "no valid estimate matches a reference sample"
    else:
        report["metrics_skipped"] = "no reference topic"
    report["metrics"] = metrics
    if metrics:  # a mean over the joints that have the metric would hide the others: None then
        report["mean"] = {
            k: None
            if any(metrics[jn][k] is None for jn in joints)
            else float(np.mean([metrics[jn][k] for jn in joints]))
            for k in METRIC_NAMES
        }
    report["units"] = {
        "rmse": "N.m/kg",
        "nrmse": "fraction of the reference range",
        "pearson_r": "1",
        "r2": "1",
        "command": "N.m",
    }
    gait = gait_phase_metrics(result)
    if gait:
        report["gait_phase"] = gait
    report["commands"] = command_statistics(result)
    inf = result.inference_ns[result.est_valid] if result.inference_ns.size else result.inference_ns
    report["inference_us"] = (
        {"mean": float(inf.mean() / 1e3), "p99": float(np.percentile(inf, 99) / 1e3)} if inf.size else {}
    )
    report["units"]["inference_us"] = (
        "model time per window, amortised over its batch (batched path)"
        if result.path == "batched"
        else "model time per window call"
    )
    report["replay_path"] = result.path
    if result.path_reason:
        report["replay_path_reason"] = result.path_reason
    report["counters"] = dict(result.counters)
    report["events"] = list(result.events)
    report["timing"] = {k: float(v) for k, v in result.timing.items()}
    return report


def command_statistics(result: ReplayResult) -> dict[str, Any]:
    from gait_estimator.core.command import STATUS_INVALID, STATUS_LIMITED, STATUS_RAMPING

    c, st = result.cmd_nm, result.cmd_status
    if c.shape[0] == 0:
        return {}
    per_joint = {}
    for i, jn in enumerate(result.cmd_joints):
        per_joint[jn] = {
            "peak_abs_nm": float(np.abs(c[:, i]).max()),
            "rms_nm": float(np.sqrt(np.mean(c[:, i] ** 2))),
            "mean_nm": float(c[:, i].mean()),
            "limited_fraction": float(np.mean(st[:, i] == STATUS_LIMITED)),
            "ramping_fraction": float(np.mean(st[:, i] == STATUS_RAMPING)),
            "invalid_fraction": float(np.mean(st[:, i] == STATUS_INVALID)),
        }
    return {
        "count": int(c.shape[0]),
        "valid_fraction": float(result.cmd_valid.mean()),
        "faults": list(result.cmd_faults),
        "joints": per_joint,
    }


def gait_phase_metrics(result: ReplayResult) -> dict[str, Any]:
    """The right leg's gait phase against the reference's ``JointTorque.gait_phase`` (the
    simulator writes it; {} when the reference has none): circular phase RMSE in % of the stride
    over the estimates with a phase on both sides (same stamp), and the heel strikes (the
    reference phase's wraps) against the detected ones: timing MAE (ms), missed, extra."""
    from gait_estimator.core.gait_metrics import event_timing, phase_rmse_pct
    from gait_estimator.core.gait_phase import HEEL_STRIKE, LEG_RIGHT

    ref = result.reference
    if ref is None or ref.gait_phase is None or not np.isfinite(ref.gait_phase).any():
        return {}
    order = np.argsort(ref.stamp_ns, kind="stable")
    t, ph = ref.stamp_ns[order], ref.gait_phase[order]
    i = np.clip(np.searchsorted(t, result.est_sensor_ns), 0, t.size - 1)
    same = t[i] == result.est_sensor_ns
    ref_at = np.where(same, ph[i], np.nan)
    est = result.est_phase if result.est_phase.size == ref_at.size else np.full(ref_at.size, np.nan)
    both = np.isfinite(ref_at) & np.isfinite(est)
    out: dict[str, Any] = {
        "scored_estimates": int(both.sum()),
        "phase_valid_fraction": float(np.isfinite(est).mean()) if est.size else 0.0,
        "phase_rmse_pct": float(phase_rmse_pct(est[both], ref_at[both])) if both.any() else None,
    }
    ok = np.isfinite(ph)
    wraps = np.flatnonzero(ok[1:] & ok[:-1] & (np.diff(ph) < -0.5)) + 1
    ref_hs = t[wraps]
    # detected events are on the frame (host) clock; the reference on the IMU stamps' clock
    offset = int(np.median(result.est_stamp_ns - result.est_sensor_ns)) if result.est_stamp_ns.size else 0
    det = np.asarray(
        [e.stamp_ns - offset for e in result.gait_events if e.leg == LEG_RIGHT and e.event == HEEL_STRIKE],
        dtype=np.int64,
    )
    if ref_hs.size and result.est_sensor_ns.size:
        # Scored from two strides after the first estimate (the detector needs a stride to lock
        # on: onset is reported by phase_valid_fraction) to shortly before the last one.
        lo = int(result.est_sensor_ns.min()) + HEEL_STRIKE_WARMUP_NS
        hi = int(result.est_sensor_ns.max()) - HEEL_STRIKE_TOLERANCE_NS
        timing = event_timing(det, ref_hs, HEEL_STRIKE_TOLERANCE_NS, (lo, hi))
        out["heel_strike"] = {
            "reference": timing.n_reference,
            "detected": timing.n_detected,
            "missed": timing.missed,
            "extra": timing.extra,
            "mae_ms": _finite(timing.mae_ms),
            "bias_ms": _finite(timing.bias_ms),
        }
    return out
