"""Accuracy metrics of torque estimates against a reference, per joint and per gait cycle.

All functions ignore samples where either signal is non-finite. Units follow the inputs:
pass N·m/kg (moments divided by body mass) to get RMSE in N·m/kg, as the literature reports.

- ``rmse``: root mean square error;
- ``nrmse``: RMSE divided by the reference's range (max - min), dimensionless (x100 for %);
- ``pearson_r``: Pearson correlation (NaN when either signal is constant);
- ``r2``: coefficient of determination ``1 - SS_res / SS_tot`` (can be negative).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "METRICS",
    "cycle_metrics",
    "joint_metrics",
    "nrmse",
    "pearson_r",
    "r2",
    "rmse",
    "summarise_cycles",
]

METRICS = ("rmse", "nrmse", "pearson_r", "r2")


def _pair(estimate: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    e = np.asarray(estimate, dtype=np.float64).reshape(-1)
    r = np.asarray(reference, dtype=np.float64).reshape(-1)
    if e.shape != r.shape:
        raise ValueError(f"estimate has {e.size} samples, reference {r.size}")
    ok = np.isfinite(e) & np.isfinite(r)
    return e[ok], r[ok]


def rmse(estimate: np.ndarray, reference: np.ndarray) -> float:
    e, r = _pair(estimate, reference)
    return float(np.sqrt(np.mean((e - r) ** 2))) if e.size else float("nan")


def nrmse(estimate: np.ndarray, reference: np.ndarray) -> float:
    e, r = _pair(estimate, reference)
    if not e.size:
        return float("nan")
    span = float(r.max() - r.min())
    return float(np.sqrt(np.mean((e - r) ** 2)) / span) if span > 0 else float("nan")


def pearson_r(estimate: np.ndarray, reference: np.ndarray) -> float:
    e, r = _pair(estimate, reference)
    # an exact range test: the mean of equal values can be off by an ulp, which would make a
    # constant signal's deviations tiny but non-zero and r a rounding artefact
    if e.size < 2 or np.ptp(e) == 0 or np.ptp(r) == 0:
        return float("nan")
    de, dr = e - e.mean(), r - r.mean()
    denom = float(np.sqrt((de @ de) * (dr @ dr)))
    return float(np.clip((de @ dr) / denom, -1.0, 1.0)) if denom > 0 else float("nan")


def r2(estimate: np.ndarray, reference: np.ndarray) -> float:
    e, r = _pair(estimate, reference)
    if e.size < 2 or np.ptp(r) == 0:  # constant reference (exact test, see pearson_r)
        return float("nan")
    ss_tot = float(((r - r.mean()) ** 2).sum())
    return float(1.0 - ((e - r) ** 2).sum() / ss_tot) if ss_tot > 0 else float("nan")


_FUNCS = {"rmse": rmse, "nrmse": nrmse, "pearson_r": pearson_r, "r2": r2}


def joint_metrics(
    estimate: np.ndarray, reference: np.ndarray, joints: Sequence[str]
) -> dict[str, dict[str, float]]:
    """``{joint: {"rmse", "nrmse", "pearson_r", "r2"}}`` for ``[N, J]`` arrays."""
    e = np.asarray(estimate, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if e.ndim != 2 or e.shape != r.shape or e.shape[1] != len(joints):
        raise ValueError(f"estimate {e.shape} and reference {r.shape} must both be [N, {len(joints)}]")
    return {j: {m: f(e[:, i], r[:, i]) for m, f in _FUNCS.items()} for i, j in enumerate(joints)}


def cycle_metrics(
    estimate: np.ndarray, reference: np.ndarray, joints: Sequence[str], cycle_starts: Sequence[int]
) -> list[dict[str, dict[str, float]]]:
    """:func:`joint_metrics` of every complete gait cycle ``[start_k, start_{k+1})``.

    ``cycle_starts`` are sample indices of the heel strikes of one leg (ascending).
    """
    starts = np.asarray(sorted(int(s) for s in cycle_starts))
    bounds = zip(starts[:-1], starts[1:], strict=True)
    return [joint_metrics(estimate[a:b], reference[a:b], joints) for a, b in bounds if b - a >= 2]


def summarise_cycles(cycles: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and standard deviation over cycles: ``{joint: {metric: {"mean", "std", "n"}}}``."""
    if not cycles:
        return {}
    out: dict[str, dict[str, dict[str, float]]] = {}
    for joint in cycles[0]:
        out[joint] = {}
        for m in METRICS:
            v = np.asarray([c[joint][m] for c in cycles], dtype=np.float64)
            v = v[np.isfinite(v)]
            out[joint][m] = {
                "mean": float(v.mean()) if v.size else float("nan"),
                "std": float(v.std(ddof=1)) if v.size > 1 else float("nan"),
                "n": float(v.size),
            }
    return out
