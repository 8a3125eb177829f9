"""The estimator pipeline: IMU samples in, joint torque estimates (N·m) out.

``synchronizer -> features -> window (or streaming state) -> model -> x subject mass``. The fused
node, the split nodes and offline ``validate`` all call this one object, so online and offline
results agree by construction: given the same sequence of ``(sample, receive_ns)`` the output is
identical (offline replay passes ``receive_ns`` = the recording's log or sample time).

Modes:

- ``"window"``: one estimate every ``stride`` frames from the whole window (stateless; the
  model's own contract).
- ``"streaming"``: one estimate per frame. Streaming models (``metadata.streaming``) carry
  recurrent state, O(1) per frame; they match window mode exactly for the first T frames after a
  (re)start and drift from it afterwards by design (longer memory). Window-only models stream
  through a ring buffer: exact, O(T) per frame. See ``runtime/model_file.py``.

Validity. Estimates are suppressed until the first valid one (start-up: streams coming up, the
window filling). After that, every frame in which an IMU the model reads is invalid (stale
beyond ``max_gap`` or missing) yields an invalid estimate (``valid`` False, torque zeros); in
window mode, windows that still contain such rows are invalid too; in streaming mode the state
is reset and T valid frames are needed before estimates are valid again.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from gait_estimator.core.features import FeatureExtractor
from gait_estimator.core.samples import ImuSample, SyncFrame
from gait_estimator.core.synchronizer import ImuSynchronizer, SyncConfig
from gait_estimator.core.windowing import WindowBuffer
from gait_estimator.errors import ConfigError, ModelMismatchError
from gait_estimator.runtime.model_file import ModelRuntime

__all__ = ["MODES", "Estimate", "EstimatorPipeline"]

MODES = ("window", "streaming")


@dataclass(frozen=True)
class Estimate:
    """Joint torques (N·m, ``joints`` order of the pipeline) at the frame ``stamp_ns``."""

    stamp_ns: int
    torque_nm: np.ndarray
    valid: bool
    inference_ns: int = 0


class EstimatorPipeline:
    """See the module docstring."""

    def __init__(
        self,
        model: ModelRuntime,
        sync: SyncConfig | ImuSynchronizer | None = None,
        subject_mass_kg: float | None = None,
        mode: str = "window",
    ) -> None:
        md = model.metadata
        if mode not in MODES:
            raise ConfigError("mode", mode, f"must be one of {MODES}")
        if md.output_unit == "N.m/kg":
            if subject_mass_kg is None or not (math.isfinite(subject_mass_kg) and 0 < subject_mass_kg <= 500):
                raise ConfigError(
                    "subject_mass_kg", subject_mass_kg, "must be in (0, 500] kg: the model predicts N·m/kg"
                )
            self.scale = float(subject_mass_kg)
        else:
            self.scale = 1.0
        self.subject_mass_kg = subject_mass_kg
        if isinstance(sync, ImuSynchronizer):
            self.synchronizer = sync
        else:
            cfg = sync or SyncConfig()
            self.synchronizer = ImuSynchronizer.from_config(cfg, md.locations, md.sample_rate_hz)
        if abs(self.synchronizer.rate_hz - md.sample_rate_hz) > 1e-9 * md.sample_rate_hz:
            raise ModelMismatchError(
                f"synchronizer rate {self.synchronizer.rate_hz} Hz != the model's sample rate "
                f"{md.sample_rate_hz} Hz (metadata)"
            )
        missing = [loc for loc in md.locations if loc not in self.synchronizer.locations]
        if missing:
            raise ModelMismatchError(
                f"the model reads IMU location(s) {missing}; "
                f"the synchronizer has {self.synchronizer.locations}"
            )
        self.model = model
        self.metadata = md
        self.mode = mode
        self.joints = md.output_joints
        self.features = FeatureExtractor(md)
        self.window = WindowBuffer(md)
        self._mean = np.asarray(md.input_mean)
        self._inv_std = 1.0 / np.asarray(md.input_std)
        self._max_step_ns = int(1.5e9 / md.sample_rate_hz)
        self._zeros = np.zeros(len(md.output_joints))
        self.counters = {"frames": 0, "estimates": 0, "invalid_estimates": 0, "stream_resets": 0}
        self.reset()

    def reset(self) -> None:
        self.synchronizer.reset()
        self.window.reset()
        self.model.reset_stream()
        self._started = False
        self._stream_count = 0
        self._last_stamp: int | None = None

    # -- input --------------------------------------------------------------------------------
    def push_sample(self, sample: ImuSample, receive_ns: int) -> list[Estimate]:
        """Add one IMU sample received at host time ``receive_ns``; returns estimates now due."""
        self.synchronizer.push(sample, receive_ns)
        return self.poll(receive_ns)

    def poll(self, now_ns: int) -> list[Estimate]:
        """Estimates for frames due at ``now_ns`` without a new sample (timer; dead streams)."""
        out: list[Estimate] = []
        for frame in self.synchronizer.poll(now_ns):
            out.extend(self.push_frame(frame))
        return out

    def push_frame(self, frame: SyncFrame) -> list[Estimate]:
        """Process one synchronized frame (the entry point when frames come from elsewhere)."""
        self.counters["frames"] += 1
        row, valid = self.features.row(frame)
        if self.mode == "window":
            return self._window(frame.stamp_ns, row, valid)
        return self._streaming(frame.stamp_ns, row, valid)

    # -- modes --------------------------------------------------------------------------------
    def _emit(self, stamp: int, y: np.ndarray | None, t0: int = 0) -> list[Estimate]:
        if y is None or not np.isfinite(y).all():
            if not self._started:
                return []
            self.counters["invalid_estimates"] += 1
            return [Estimate(stamp, self._zeros.copy(), False, 0)]
        self._started = True
        self.counters["estimates"] += 1
        return [Estimate(stamp, y * self.scale, True, time.perf_counter_ns() - t0)]

    def _window(self, stamp: int, row: np.ndarray, valid: bool) -> list[Estimate]:
        ready = self.window.push(row, stamp, valid)
        if not valid:
            return self._emit(stamp, None)
        if not ready:
            return []
        if not self.window.valid:
            return self._emit(stamp, None)
        t0 = time.perf_counter_ns()
        return self._emit(stamp, self.model.predict_window(self.window.window()), t0)

    def _streaming(self, stamp: int, row: np.ndarray, valid: bool) -> list[Estimate]:
        last, self._last_stamp = self._last_stamp, stamp
        if last is not None and not 0 < stamp - last <= self._max_step_ns and self._stream_count:
            self._restart_stream()
        z = (row - self._mean) * self._inv_std
        if not valid or not np.isfinite(z).all():
            if self._stream_count:
                self._restart_stream()
            return self._emit(stamp, None)
        t0 = time.perf_counter_ns()
        y = self.model.step(z)
        self._stream_count += 1
        if self._stream_count < self.metadata.window:
            return []
        return self._emit(stamp, y, t0)

    def _restart_stream(self) -> None:
        self.counters["stream_resets"] += 1
        self.model.reset_stream()
        self._stream_count = 0
