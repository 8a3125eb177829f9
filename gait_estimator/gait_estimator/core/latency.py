"""Rolling latency percentiles for diagnostics (ROS-free: the command and estimation stages
keep them, the nodes report them)."""

from __future__ import annotations

import numpy as np

__all__ = ["LatencyStats"]


class LatencyStats:
    """Rolling percentiles of durations (ns) over the last ``n`` values, for diagnostics."""

    def __init__(self, n: int = 2000) -> None:
        self._buf = np.zeros(n, dtype=np.int64)
        self._n = 0
        self._i = 0
        self._last_stamp: int | None = None

    def add_stamp(self, stamp_ns: int, now_ns: int) -> None:
        """Add ``now - stamp`` once per stamp: repeats of a stamp (the control timer re-sending the
        last estimate's command) are not latency samples."""
        if stamp_ns != self._last_stamp:
            self._last_stamp = stamp_ns
            self.add(now_ns - stamp_ns)

    def add(self, ns: int) -> None:
        self._buf[self._i] = ns
        self._i = (self._i + 1) % len(self._buf)
        self._n = min(self._n + 1, len(self._buf))

    def summary_ms(self) -> dict[str, float]:
        if self._n == 0:
            return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
        v = self._buf[: self._n] / 1e6
        return {
            "p50_ms": float(np.percentile(v, 50)),
            "p99_ms": float(np.percentile(v, 99)),
            "max_ms": float(v.max()),
        }
