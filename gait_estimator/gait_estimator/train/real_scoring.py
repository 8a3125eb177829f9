"""Scoring of the real-walker leave-persons-out evaluation (``train/real_lopo.py``): predictions
per recording, RMSE, r and peak error per joint and both legs, per set and speed band, and the
candidate gate (a new model must be no worse on any real set)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gait_estimator.data.dataset import Recording

SPEED_BANDS = ((0.0, 1.0, "< 1.0 m/s"), (1.0, 1.4, "1.0-1.4 m/s"), (1.4, 9.9, ">= 1.4 m/s"))


def set_of(person_id: str) -> str:
    """``schreiber2019/2014001`` -> ``schreiber2019``."""
    return person_id.split("/", 1)[0]


def speed_band(speed_mps: float) -> str:
    for lo, hi, name in SPEED_BANDS:
        if lo <= speed_mps < hi:
            return name
    return SPEED_BANDS[-1][2]


@dataclass
class Prediction:
    """One trial's estimates and reference (NaN where masked), ``[N - window + 1, J]``."""

    name: str
    person: str
    set: str
    speed_mps: float
    estimate: np.ndarray
    reference: np.ndarray
    phase: np.ndarray | None = None  # right gait-cycle phase of each estimate, NaN where unknown


def predict_all(runtime: Any, recs: Sequence[Recording]) -> list[Prediction]:
    """Estimates of a loaded model file on every recording long enough for one window."""
    from gait_estimator.train.evaluate import predict_recording

    out = []
    for r in recs:
        if len(r) < runtime.metadata.window:
            continue
        est, ref = predict_recording(runtime, r)
        phase = None if r.phase is None else r.phase[runtime.metadata.window - 1 :][: len(est)]
        speed = float(r.meta["speed_mps"])
        out.append(Prediction(r.name, r.subject_id, set_of(r.subject_id), speed, est, ref, phase))
    return out


def _peak_error(preds: Sequence[Prediction], k: int) -> float:
    """Mean over trials of |estimate - reference| at the reference's largest-magnitude extreme,
    each taken over the trial's valid samples (the peak the estimate reaches in the same sign)."""
    errs = []
    for p in preds:
        ok = np.isfinite(p.reference[:, k])
        if ok.sum() < 10:
            continue
        ref, est = p.reference[ok, k], p.estimate[ok, k]
        sign = 1.0 if ref.max() >= -ref.min() else -1.0
        errs.append(abs(float((sign * est).max() - (sign * ref).max())))
    return float(np.mean(errs)) if errs else float("nan")


def _metrics(preds: Sequence[Prediction], joints: Sequence[str]) -> dict[str, Any]:
    from gait_estimator.train.evaluate import masked_joint_metrics

    est = np.concatenate([p.estimate for p in preds])
    ref = np.concatenate([p.reference for p in preds])
    m = masked_joint_metrics(est, ref, joints)
    out: dict[str, Any] = {}
    for k, j in enumerate(joints):
        out[j] = {
            "rmse": m[j]["rmse"],
            "r": m[j]["pearson_r"],
            "peak_error": _peak_error(preds, k),
            "samples": int(np.isfinite(ref[:, k]).sum()),
        }
    return out


def group_metrics(preds: Sequence[Prediction], joints: Sequence[str]) -> dict[str, Any]:
    """Per joint RMSE (N·m/kg), r and peak error pooled over all trials, per set and per speed band."""
    groups: dict[str, list[Prediction]] = {"all": list(preds)}
    for p in preds:
        groups.setdefault(f"set:{p.set}", []).append(p)
        groups.setdefault(f"speed:{speed_band(p.speed_mps)}", []).append(p)
    out = {}
    for g, ps in groups.items():
        out[g] = _metrics(ps, joints) | {
            "_people": len({p.person for p in ps}),
            "_trials": len(ps),
        }
    return out


def _mean(m: dict[str, Any], joints: Sequence[str], key: str) -> float:
    return float(np.mean([m[j][key] for j in joints]))


def gate(new: dict[str, Any], old: dict[str, Any], joints: Sequence[str]) -> dict[str, Any]:
    """The candidate rule: lower mean LOPO RMSE, every joint of every real set no worse (RMSE),
    lower Dorschky P01 mean RMSE and no lower P01/P03 mean r than the shipped default."""
    why = []
    if not _mean(new["lopo"]["all"], joints, "rmse") < _mean(old["lopo"]["all"], joints, "rmse"):
        why.append("LOPO mean RMSE not lower")
    for g, m in old["lopo"].items():
        if not g.startswith("set:"):
            continue
        worse = [j for j in joints if new["lopo"][g][j]["rmse"] > m[j]["rmse"]]
        if worse:
            why.append(f"{g[4:]}: RMSE worse for {worse}")
    d_new, d_old = new.get("dorschky", {}).get("trials"), old.get("dorschky", {}).get("trials")
    if not d_new or not d_old:
        why.append("Dorschky check missing")
    else:
        rj = [j for j in joints if j.endswith("_r")]
        p01n, p01o = d_new["P01_walking"]["metrics"], d_old["P01_walking"]["metrics"]
        if not _mean(p01n, rj, "rmse") < _mean(p01o, rj, "rmse"):
            why.append("Dorschky P01 mean RMSE not lower")
        for t in ("P01_walking", "P03_walking"):
            if _mean(d_new[t]["metrics"], rj, "pearson_r") < _mean(d_old[t]["metrics"], rj, "pearson_r"):
                why.append(f"Dorschky {t} mean r lower")
    return {"passed": not why, "reasons": why}
