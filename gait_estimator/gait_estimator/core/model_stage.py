"""The model stage: normalised feature rows or windows in, torque estimates out.

One implementation for every mode. ``core.pipeline.EstimatorPipeline`` (fused node, offline
replay) feeds it one row per frame; the distributed ``torque_estimator`` node feeds it the
windows the ``windowing`` node publishes. Both get the same answers from the same rows:

- **Start-up and validity** (:meth:`ModelStage.emit`): nothing is emitted before the first valid
  estimate (streams coming up, the window filling); after it, every invalid input (a sensor
  flagged, a non-finite row or model output) gives an invalid estimate (zeros, ``valid`` False).
- **Window mode**: the whole window goes through ``predict_window`` (stateless).
- **Streaming mode** (models whose metadata says streaming): the model carries state and is
  stepped one row at a time, O(1) per row. A stream (re)starts on the first row, after an
  invalid row, after a stamp step that is not a continuation (``max_step``: more than 1.5 frame
  periods for rows, not a whole number of periods in [1, window - 1] for windows) and after
  :meth:`reset`; an estimate is emitted only once the stream has stepped ``window`` rows since
  its start, so it equals window mode's for those first rows (exactly for a TCN whose receptive
  field fits the window, to float32 rounding) and carries longer memory afterwards. Fed rows,
  the stage waits for ``window`` frames after a restart; fed windows, it steps the whole
  window at once (the rows are all there), then only the rows new since the previous window
  (rows missed with dropped windows are caught up from the ones the next window still holds).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from gait_estimator.errors import ConfigError
from gait_estimator.runtime.base import ModelRuntime  # the interface only (no backend, no torch)

__all__ = ["MODES", "Estimate", "ModelStage"]

MODES = ("window", "streaming")


@dataclass(frozen=True)
class Estimate:
    """Joint torques (N·m, the model's ``output_joints`` order) at the frame ``stamp_ns``."""

    stamp_ns: int
    torque_nm: np.ndarray
    valid: bool
    inference_ns: int = 0
    confidence: float = 1.0  # core.confidence: 1 = input like the training data, 0 = far from it
    gait_phase: float = math.nan  # right leg, [0, 1) since heel strike (core.gait_phase); NaN unknown


class ModelStage:
    """See the module docstring. ``scale`` multiplies the model output (the subject mass for a
    model in N·m/kg, else 1); ``counters`` may be a dict shared with the caller."""

    def __init__(
        self, model: ModelRuntime, mode: str, scale: float = 1.0, counters: dict[str, int] | None = None
    ) -> None:
        if mode not in MODES:
            raise ConfigError("mode", mode, f"must be one of {MODES}")
        md = model.metadata
        self.model = model
        self.metadata = md
        self.mode = mode
        self.scale = float(scale)
        self.window_len = int(md.window)
        self._period_ns = 1e9 / md.sample_rate_hz
        self._max_step_ns = int(1.5e9 / md.sample_rate_hz)
        self._zeros = np.zeros(len(md.output_joints))
        self.phase = math.nan  # gait phase of the frame being estimated, set by the caller
        self.counters = counters if counters is not None else {}
        for key in ("estimates", "invalid_estimates", "stream_resets"):
            self.counters.setdefault(key, 0)
        self.reset()

    def reset(self) -> None:
        self.model.reset_stream()
        self.started = False
        self._stream_count = 0
        self._last_stamp: int | None = None

    # -- the one start-up / validity policy ------------------------------------------------------
    def emit(self, stamp: int, y: np.ndarray | None, t0: int = 0, confidence: float = 1.0) -> list[Estimate]:
        if y is None or not np.isfinite(y).all():
            if not self.started:
                return []
            self.counters["invalid_estimates"] += 1
            return [Estimate(stamp, self._zeros.copy(), False, 0, 0.0, self.phase)]
        self.started = True
        self.counters["estimates"] += 1
        return [Estimate(stamp, y * self.scale, True, time.perf_counter_ns() - t0, confidence, self.phase)]

    # -- window mode -------------------------------------------------------------------------------
    def predict(self, stamp: int, window_z: np.ndarray, confidence: float = 1.0) -> list[Estimate]:
        """A whole valid normalised window ``[T, C]``."""
        t0 = time.perf_counter_ns()
        return self.emit(stamp, self.model.predict_window(window_z), t0, confidence)

    # -- streaming mode ----------------------------------------------------------------------------
    def restart_stream(self) -> None:
        self.counters["stream_resets"] += 1
        self.model.reset_stream()
        self._stream_count = 0

    def step(self, stamp: int, z: np.ndarray, valid: bool, confidence: float = 1.0) -> list[Estimate]:
        """One normalised row of the frame ``stamp`` (streaming mode, fed per frame)."""
        last, self._last_stamp = self._last_stamp, stamp
        if last is not None and not 0 < stamp - last <= self._max_step_ns and self._stream_count:
            self.restart_stream()
        if not valid or not np.isfinite(z).all():
            if self._stream_count:
                self.restart_stream()
            return self.emit(stamp, None)
        t0 = time.perf_counter_ns()
        y = self.model.step(z)
        self._stream_count += 1
        if self._stream_count < self.window_len:
            return []
        return self.emit(stamp, y, t0, confidence)

    # -- fed windows (the distributed estimator) ---------------------------------------------------
    def push_window(
        self, stamp: int, window_z: np.ndarray, valid: bool, confidence: float = 1.0
    ) -> list[Estimate]:
        """A normalised window ``[T, C]`` whose newest row is the frame ``stamp``."""
        if not valid or not np.isfinite(window_z).all():
            self._last_stamp = None  # the next valid window restarts the stream
            if self._stream_count:
                self.restart_stream()
            return self.emit(stamp, None)
        if self.mode == "window":
            return self.predict(stamp, window_z, confidence)
        t = self.window_len
        new = 0
        if self._last_stamp is not None and self._stream_count:
            dt = stamp - self._last_stamp
            k = round(dt / self._period_ns)
            if 1 <= k < t and abs(dt - k * self._period_ns) <= 0.25 * self._period_ns:
                new = k
        if new == 0:  # not a continuation: restart and step every row the window holds
            if self._stream_count or self._last_stamp is not None:
                self.restart_stream()
            else:
                self.model.reset_stream()
            self._stream_count = 0
            new = t
        self._last_stamp = stamp
        t0 = time.perf_counter_ns()
        y = None
        for row in window_z[t - new :]:
            y = self.model.step(row)
        self._stream_count += new
        return self.emit(stamp, y, t0, confidence)
