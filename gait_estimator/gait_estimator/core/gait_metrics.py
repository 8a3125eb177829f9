"""Accuracy of gait phase and gait events against a reference (ROS-free).

- ``reference_phase``: the phase that reference heel strikes define, linear in time from one heel
  strike (0) to the next (1); NaN before the first and after the last;
- ``phase_error`` / ``phase_rmse_pct``: circular phase error (0.99 against 0.01 is 0.02, not
  0.98), RMSE in % of the stride over the samples where both phases are finite;
- ``match_events`` / ``event_timing``: one-to-one matching of detected and reference events
  within a tolerance (closest pairs first); timing error = detected - reference (ms; positive =
  late), MAE over the matched pairs, missed = unmatched reference events, extra = unmatched
  detections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "EventTiming",
    "event_timing",
    "match_events",
    "phase_error",
    "phase_rmse_pct",
    "reference_phase",
]


def reference_phase(t_ns: np.ndarray, heel_strikes_ns: np.ndarray) -> np.ndarray:
    """Phase in [0, 1) at ``t_ns`` from sorted reference heel strikes; NaN outside them."""
    t = np.asarray(t_ns, dtype=np.int64)
    hs = np.sort(np.asarray(heel_strikes_ns, dtype=np.int64))
    out = np.full(t.shape, np.nan)
    if hs.size < 2:
        return out
    k = np.searchsorted(hs, t, side="right") - 1
    ok = (k >= 0) & (k < hs.size - 1)
    a, b = hs[k[ok]], hs[k[ok] + 1]
    out[ok] = (t[ok] - a) / (b - a).astype(np.float64)
    return out


def phase_error(estimate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Circular difference ``estimate - reference`` in [-0.5, 0.5) (cycles); NaN where either is."""
    d = np.asarray(estimate, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    return np.mod(d + 0.5, 1.0) - 0.5


def phase_rmse_pct(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Circular phase RMSE in % of the stride over samples where both are finite (NaN if none)."""
    e = phase_error(estimate, reference)
    e = e[np.isfinite(e)]
    return float(100.0 * np.sqrt(np.mean(e * e))) if e.size else math.nan


def match_events(detected_ns: np.ndarray, reference_ns: np.ndarray,
                 tolerance_ns: int) -> list[tuple[int, int]]:
    """Index pairs (detected, reference), one-to-one, ``|dt| <= tolerance_ns``, closest first."""
    d = np.asarray(detected_ns, dtype=np.int64).reshape(-1)
    r = np.asarray(reference_ns, dtype=np.int64).reshape(-1)
    if tolerance_ns < 0:
        raise ValueError(f"tolerance_ns = {tolerance_ns}: must be >= 0")
    if d.size == 0 or r.size == 0:
        return []
    dt = np.abs(d[:, None] - r[None, :])
    cand = np.argwhere(dt <= tolerance_ns)
    order = np.argsort(dt[cand[:, 0], cand[:, 1]], kind="stable")
    used_d: set[int] = set()
    used_r: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for i, j in cand[order]:
        if int(i) not in used_d and int(j) not in used_r:
            used_d.add(int(i))
            used_r.add(int(j))
            pairs.append((int(i), int(j)))
    return sorted(pairs, key=lambda p: p[1])


@dataclass(frozen=True, slots=True)
class EventTiming:
    """Matched event timing: errors in ms (detected - reference), counts of each kind."""

    n_reference: int
    n_detected: int
    matched: int
    missed: int
    extra: int
    mae_ms: float
    bias_ms: float
    errors_ms: tuple[float, ...]


def event_timing(detected_ns: np.ndarray, reference_ns: np.ndarray, tolerance_ns: int,
                 window_ns: tuple[int, int] | None = None) -> EventTiming:
    """Timing MAE and bias (ms) over matched pairs, missed and extra events (see module doc).

    ``window_ns = (lo, hi)``: match over all events, then count only the reference events and
    detections inside [lo, hi] (a pair counts when its reference does), so events cut by the
    ends of a recording are neither missed nor extra."""
    d = np.asarray(detected_ns, dtype=np.int64).reshape(-1)
    r = np.asarray(reference_ns, dtype=np.int64).reshape(-1)
    lo, hi = window_ns if window_ns is not None else (np.iinfo(np.int64).min, np.iinfo(np.int64).max)
    pairs = match_events(d, r, tolerance_ns)
    in_r = (r >= lo) & (r <= hi)
    in_d = (d >= lo) & (d <= hi)
    paired_d = {i for i, _ in pairs}
    paired_r = {j for _, j in pairs}
    pairs = [(i, j) for i, j in pairs if in_r[j]]
    err = np.array([(d[i] - r[j]) / 1e6 for i, j in pairs], dtype=np.float64)
    return EventTiming(
        n_reference=int(in_r.sum()),
        n_detected=int(in_d.sum()),
        matched=len(pairs),
        missed=int(sum(1 for j in np.flatnonzero(in_r) if j not in paired_r)),
        extra=int(sum(1 for i in np.flatnonzero(in_d) if i not in paired_d)),
        mae_ms=float(np.mean(np.abs(err))) if err.size else math.nan,
        bias_ms=float(np.mean(err)) if err.size else math.nan,
        errors_ms=tuple(float(x) for x in err),
    )
