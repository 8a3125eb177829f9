"""Training windows: recordings normalised and concatenated, with the window end rows that do not
cross a recording boundary (:class:`WindowSet`), and the normalisation statistics of a split."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from gait_estimator.data.dataset import Recording
from gait_estimator.errors import DatasetError

__all__ = ["WindowSet", "recording_stats"]


class WindowSet:
    """Normalised recordings concatenated, with the valid window end rows (no boundary crossing).

    Recordings with a validity mask (``Recording.valid``) weight their targets by it: masked
    samples add nothing to the loss, and windows whose target rows are all masked are left out.
    ``w`` is ``None`` when no recording has a mask (the plain mean, as before masks existed).
    """

    def __init__(
        self,
        recordings: Sequence[Recording],
        mean: np.ndarray,
        std: np.ndarray,
        window: int,
        span: int = 1,
        step: int = 1,
    ) -> None:
        xs, ys, ws, ends = [], [], [], []
        offset = 0
        self.window, self.span = window, span
        need = window + span - 1
        masked = any(r.valid is not None for r in recordings)
        for r in recordings:
            n = len(r)
            xs.append((r.inputs - mean) / std)
            ys.append(r.moments)
            w = np.ones(r.moments.shape, dtype=bool) if r.valid is None else r.valid
            ws.append(w)
            if n >= need:
                e = np.arange(need - 1, n, step)
                if r.valid is not None:  # keep windows with at least one valid target value
                    any_row = w.any(axis=1)
                    cum = np.concatenate([[0], np.cumsum(any_row)])
                    e = e[cum[e + 1] - cum[e + 1 - span] > 0]
                ends.append(offset + e)
            offset += n
        if not ends:
            raise DatasetError(f"no recording is long enough for one window of {need} samples")
        self.x = torch.from_numpy(np.concatenate(xs).astype(np.float32))
        self.y = torch.from_numpy(np.concatenate(ys).astype(np.float32))
        self.w = torch.from_numpy(np.concatenate(ws).astype(np.float32)) if masked else None
        if self.w is not None:
            self.y = torch.nan_to_num(self.y) * self.w  # masked targets may be NaN in the source
        self.ends = np.concatenate(ends)
        if not len(self.ends):
            raise DatasetError("no window has a valid target (every sample is masked)")

    def __len__(self) -> int:
        return len(self.ends)

    def batch(self, ends: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs ``[B, window + span - 1, C]`` and targets ``[B, span, J]`` (the last rows)."""
        xb, yb, _ = self.batch_weighted(ends)
        return xb, yb

    def batch_weighted(self, ends: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``batch`` plus the targets' validity weights ``[B, span, J]`` (``None``: all valid)."""
        e = torch.from_numpy(np.asarray(ends, dtype=np.int64))
        length = self.window + self.span - 1
        idx = e[:, None] - length + 1 + torch.arange(length)[None, :]
        rows = idx[:, length - self.span :]
        return self.x[idx], self.y[rows], None if self.w is None else self.w[rows]


def recording_stats(recordings: Sequence[Recording]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Input mean, input std, target mean, target std over ``recordings`` (targets: valid samples)."""
    x = np.concatenate([r.inputs for r in recordings]).astype(np.float64)
    y = np.concatenate([r.moments for r in recordings]).astype(np.float64)
    x_std = np.maximum(x.std(axis=0), 1e-6)
    if any(r.valid is not None for r in recordings):  # target statistics of valid samples only
        ok = np.concatenate([np.ones(r.moments.shape, bool) if r.valid is None else r.valid
                             for r in recordings])
        y = np.where(ok, y, np.nan)
        return x.mean(axis=0), x_std, np.nanmean(y, axis=0), np.maximum(np.nanstd(y, axis=0), 1e-6)
    y_std = np.maximum(y.std(axis=0), 1e-6)
    return x.mean(axis=0), x_std, y.mean(axis=0), y_std
