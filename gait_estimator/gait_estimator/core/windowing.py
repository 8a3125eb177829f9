"""O(1)-per-sample ring buffer of normalised feature rows, shaped by the model's metadata.

Window length, stride, rate and normalisation come from ``ModelMetadata``. The buffer is
written twice (at ``i`` and ``i + T``) so :meth:`WindowBuffer.window` is a contiguous view of the
last T rows, oldest first, with no copy.
"""

from __future__ import annotations

import numpy as np

from gait_estimator.runtime.metadata import ModelMetadata

__all__ = ["WindowBuffer"]


class WindowBuffer:
    """Last ``window`` rows; ``push`` says when a window is due (every ``stride`` rows once full).

    ``push(row, stamp_ns, valid)`` takes a raw SI row and z-score normalises it with the
    metadata statistics (``normalise_input=False``: rows are already normalised). A window is
    ``valid`` only if every row in it was valid. A gap in the stamps of more than 1.5 sample
    periods (frames lost upstream) empties the buffer: a window is always T consecutive samples.
    """

    def __init__(self, metadata: ModelMetadata, normalise_input: bool = True) -> None:
        self.metadata = metadata
        self.normalise_input = normalise_input
        self.size = metadata.window
        self.stride = metadata.stride
        self.channels = len(metadata.input_channels)
        self._mean = np.asarray(metadata.input_mean, dtype=np.float64)
        self._inv_std = 1.0 / np.asarray(metadata.input_std, dtype=np.float64)
        self._max_step_ns = int(1.5e9 / metadata.sample_rate_hz)
        self._buf = np.zeros((2 * self.size, self.channels), dtype=np.float32)
        self._ok = np.ones(self.size, dtype=bool)
        self.reset()

    def reset(self) -> None:
        self._pos = 0
        self.count = 0  # rows since reset (saturates only in meaning, not in value)
        self._since = 0  # rows since the last due window
        self._invalid = 0  # invalid rows among the last min(count, T)
        self._ok[:] = True
        self.newest_stamp_ns: int | None = None
        self.gaps = getattr(self, "gaps", 0)

    def push(self, row: np.ndarray, stamp_ns: int, valid: bool = True) -> bool:
        if self.newest_stamp_ns is not None and not 0 < stamp_ns - self.newest_stamp_ns <= self._max_step_ns:
            self.gaps += 1
            self.reset()
        t, i = self.size, self._pos
        x = (row - self._mean) * self._inv_std if self.normalise_input else row
        ok = bool(valid) and bool(np.isfinite(x).all())
        if self.count >= t and not self._ok[i]:
            self._invalid -= 1
        self._ok[i] = ok
        if not ok:
            self._invalid += 1
        self._buf[i] = x
        self._buf[i + t] = x
        self._pos = (i + 1) % t
        self.count += 1
        self.newest_stamp_ns = int(stamp_ns)
        self._since += 1
        if self.count >= t and self._since >= self.stride:
            self._since = 0
            return True
        return False

    @property
    def full(self) -> bool:
        return self.count >= self.size

    @property
    def valid(self) -> bool:
        """The current window is full and every row in it is valid."""
        return self.full and self._invalid == 0

    def window(self) -> np.ndarray:
        """``[T, C]`` float32 view of the last T rows, oldest first (valid until the next push)."""
        return self._buf[self._pos : self._pos + self.size]
