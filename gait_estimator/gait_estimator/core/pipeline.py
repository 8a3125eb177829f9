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

Calibration (``calibration``, a per-wearer ``core.calibration.WearerCalibration``): every frame
is turned from the sensor into the segment frames before features, in both paths; a sensor
without a usable calibration (flagged or missing) is invalid, so its estimates are invalid.

Batched (offline) path, additive: :meth:`EstimatorPipeline.frame_rows` computes the feature rows
of many frames at once (the same ``location_signals`` as ``FeatureExtractor.row``) and
:meth:`EstimatorPipeline.push_rows` turns them into the estimates ``push_frame`` would give frame
by frame. In window mode on a fresh window without stamp gaps it windows with numpy and runs
``predict_batch`` on chunks of windows (float32 batched vs single-window inference: differences
at float32 rounding, measured in ``test_replay_batch.py``), and leaves the pipeline in the state
the frame-by-frame path would (window content, stride phase, counters), so per-sample calls can
follow. Otherwise (streaming mode: state carries; a window already in use; gaps) it processes the
rows one by one through the per-frame code.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from gait_estimator.core.calibration import WearerCalibration, apply_to_arrays, apply_to_frame
from gait_estimator.core.confidence import ConfidenceMonitor
from gait_estimator.core.features import FeatureExtractor
from gait_estimator.core.gait_phase import GaitEvent, GaitPhaseState, make_gait_phase
from gait_estimator.core.model_stage import MODES, Estimate, ModelStage
from gait_estimator.core.samples import ImuSample, SyncFrame
from gait_estimator.core.synchronizer import ImuSynchronizer, SyncConfig
from gait_estimator.core.windowing import WindowBuffer
from gait_estimator.errors import ConfigError, ModelMismatchError
from gait_estimator.runtime.base import ModelRuntime

__all__ = ["MODES", "Estimate", "EstimateBatch", "EstimatorPipeline"]



@dataclass(frozen=True)
class EstimateBatch:
    """Estimates of :meth:`EstimatorPipeline.push_rows`, in output order (``M`` of them)."""

    frame_index: np.ndarray  # intp [M], the row (frame) that produced each estimate
    stamp_ns: np.ndarray  # int64 [M]
    torque_nm: np.ndarray  # [M, J] N·m
    valid: np.ndarray  # bool [M]
    inference_ns: np.ndarray  # int64 [M] (batched: the chunk's time shared by its windows)
    confidence: np.ndarray | None = None  # float [M], core.confidence (None: not computed)

    def __len__(self) -> int:
        return int(self.stamp_ns.shape[0])


class EstimatorPipeline:
    """See the module docstring."""

    def __init__(
        self,
        model: ModelRuntime,
        sync: SyncConfig | ImuSynchronizer | None = None,
        subject_mass_kg: float | None = None,
        mode: str = "window",
        calibration: WearerCalibration | None = None,
    ) -> None:
        md = model.metadata
        if mode not in MODES:
            raise ConfigError("mode", mode, f"must be one of {MODES}")
        if md.output_unit == "N.m/kg":
            if subject_mass_kg is None or not (math.isfinite(subject_mass_kg) and 0 < subject_mass_kg <= 500):
                raise ConfigError(
                    "subject_mass_kg", subject_mass_kg, "must be in (0, 500] kg: the model predicts N·m/kg"
                )
            scale = float(subject_mass_kg)
        else:
            scale = 1.0
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
        self.calibration = calibration  # sensor -> segment frames, applied before features
        self.joints = md.output_joints
        self.features = FeatureExtractor(md)
        self.monitor = ConfidenceMonitor(md)
        # Gait phase and events from the same (calibrated) frames; None without a shank/foot IMU.
        self.gait = make_gait_phase(self.synchronizer.rate_hz, self.synchronizer.locations)
        self.gait_state: GaitPhaseState | None = None  # of the newest frame (its events included)
        self.confidence = 0.0  # of the newest frame's input window
        self.window = WindowBuffer(md)
        self._mean = np.asarray(md.input_mean)
        self._inv_std = 1.0 / np.asarray(md.input_std)
        self._max_step_ns = int(1.5e9 / md.sample_rate_hz)
        self.counters = {"frames": 0, "estimates": 0, "invalid_estimates": 0, "stream_resets": 0}
        self.stage = ModelStage(model, mode, scale, self.counters)  # the model part, shared with the nodes
        self.reset()

    @property
    def scale(self) -> float:
        return self.stage.scale

    @scale.setter
    def scale(self, value: float) -> None:
        self.stage.scale = float(value)

    def reset(self) -> None:
        self.synchronizer.reset()
        self.window.reset()
        self.stage.reset()
        self.monitor.reset()
        if self.gait is not None:
            self.gait.reset()
        self.gait_state = None
        self.stage.phase = math.nan

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
        if self.calibration is not None:  # a flagged/missing sensor arrives invalid: zero command
            frame = apply_to_frame(self.calibration, frame)
        if self.gait is not None:
            self.gait_state = self.gait.push(frame)
            self.stage.phase = self.gait_state.phase[0]  # JointTorque.gait_phase: the right leg
        row, valid = self.features.row(frame)
        self._observe(row, valid)
        if self.mode == "window":
            return self._window(frame.stamp_ns, row, valid)
        return self._streaming(frame.stamp_ns, row, valid)

    def _observe(self, row: np.ndarray, valid: bool) -> None:
        """Confidence of the input window ending at this row (an invalid row restarts it)."""
        self._observe_d2(float(np.mean(np.square((row - self._mean) * self._inv_std))), valid)

    def _observe_d2(self, d2: float, valid: bool) -> None:
        if not valid:
            self.monitor.reset()
            self.confidence = 0.0
        else:
            self.confidence = self.monitor.push_d2(d2)

    # -- modes: the model stage (core.model_stage) decides start-up, validity and streaming ------
    def _window(self, stamp: int, row: np.ndarray, valid: bool) -> list[Estimate]:
        ready = self.window.push(row, stamp, valid)
        if not valid:
            return self.stage.emit(stamp, None)
        if not ready:
            return []
        if not self.window.valid:
            return self.stage.emit(stamp, None)
        return self.stage.predict(stamp, self.window.window(), self.confidence)

    def _streaming(self, stamp: int, row: np.ndarray, valid: bool) -> list[Estimate]:
        return self.stage.step(stamp, (row - self._mean) * self._inv_std, valid, self.confidence)

    # -- batched (offline) path ----------------------------------------------------------------
    def frame_rows(
        self,
        locations: tuple[str, ...],
        acc: np.ndarray,
        gyro: np.ndarray,
        quat_xyzw: np.ndarray,
        valid: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Feature rows ``[K, C]`` (raw SI) and row validity ``[K]`` of K frames over ``locations``
        (``acc``/``gyro`` ``[K, L, 3]``, ``quat_xyzw`` ``[K, L, 4]``, ``valid`` ``[K, L]``): what
        ``FeatureExtractor.row`` gives frame by frame."""
        from gait_estimator.core.features import SIGNALS, location_signals

        missing = [loc for loc in self.metadata.locations if loc not in locations]
        if missing:
            raise ModelMismatchError(
                f"the model reads IMU location(s) {missing} that the synchronizer does not provide "
                f"(it provides {locations})"
            )
        if self.calibration is not None:  # as push_frame, in the same arithmetic
            cal = self.calibration
            acc, gyro, quat_xyzw, valid = apply_to_arrays(cal, locations, acc, gyro, quat_xyzw, valid)
        rows = np.asarray([locations.index(loc) for loc in self.metadata.locations], dtype=np.intp)
        index = {loc: i for i, loc in enumerate(self.metadata.locations)}
        gather = np.asarray(
            [
                index[c.partition("/")[0]] * len(SIGNALS) + SIGNALS.index(c.partition("/")[2])
                for c in self.metadata.input_channels
            ],
            dtype=np.intp,
        )
        table = location_signals(acc[:, rows], gyro[:, rows], quat_xyzw[:, rows])  # [K, Lm, S]
        k = table.shape[0]
        return table.reshape(k, -1)[:, gather], np.asarray(valid)[:, rows].all(axis=1)

    def frame_phases(
        self,
        stamps_ns: np.ndarray,
        locations: tuple[str, ...],
        acc: np.ndarray,
        gyro: np.ndarray,
        quat_xyzw: np.ndarray,
        valid: np.ndarray,
    ) -> tuple[np.ndarray, list[GaitEvent]]:
        """The batched path's gait phase: the right leg's phase at each of K frames (NaN where not
        valid) and every event, as ``push_frame`` would give them frame by frame (same
        calibration, a fresh estimator)."""
        k = len(stamps_ns)
        phase = np.full(k, np.nan)
        gait = make_gait_phase(self.synchronizer.rate_hz, locations)
        if gait is None:
            return phase, []
        if self.calibration is not None:
            cal = self.calibration
            acc, gyro, quat_xyzw, valid = apply_to_arrays(cal, locations, acc, gyro, quat_xyzw, valid)
        events: list[GaitEvent] = []
        for i in range(k):
            st = gait.push(SyncFrame(int(stamps_ns[i]), locations, acc[i], gyro[i], quat_xyzw[i], valid[i]))
            phase[i] = st.phase[0]
            events.extend(st.events)
        return phase, events

    def push_rows(
        self, stamps_ns: np.ndarray, rows: np.ndarray, valid: np.ndarray, batch_size: int = 256
    ) -> EstimateBatch:
        """The estimates of K frames given as feature rows (see the module docstring)."""
        stamps = np.asarray(stamps_ns, dtype=np.int64)
        rows = np.asarray(rows, dtype=np.float64)
        valid = np.asarray(valid, dtype=bool)
        if batch_size < 1:
            raise ConfigError("batch_size", batch_size, "must be >= 1")
        k = stamps.shape[0]
        t, s = self.metadata.window, self.metadata.stride
        first = max(t, s)
        steps = np.diff(stamps)
        if (
            self.mode == "window"
            and self.window.count == 0
            and self.window.newest_stamp_ns is None
            and k >= first + s
            and bool(np.all((steps > 0) & (steps <= self._max_step_ns)))
        ):
            return self._push_rows_batched(stamps, rows, valid, batch_size)
        out_k: list[int] = []
        out: list[Estimate] = []
        for i in range(k):
            self.counters["frames"] += 1
            stamp = int(stamps[i])
            self._observe(rows[i], bool(valid[i]))
            if self.mode == "window":
                ests = self._window(stamp, rows[i], bool(valid[i]))
            else:
                ests = self._streaming(stamp, rows[i], bool(valid[i]))
            out.extend(ests)
            out_k.extend([i] * len(ests))
        j = len(self.joints)
        return EstimateBatch(
            np.asarray(out_k, dtype=np.intp),
            np.asarray([e.stamp_ns for e in out], dtype=np.int64),
            np.vstack([e.torque_nm for e in out]) if out else np.zeros((0, j)),
            np.asarray([e.valid for e in out], dtype=bool),
            np.asarray([e.inference_ns for e in out], dtype=np.int64),
            np.asarray([e.confidence for e in out], dtype=np.float64),
        )

    def _push_rows_batched(
        self, stamps: np.ndarray, rows: np.ndarray, valid: np.ndarray, batch_size: int
    ) -> EstimateBatch:
        md = self.metadata
        k, c = rows.shape
        t, s = md.window, md.stride
        first = max(t, s)
        win = self.window
        x = (rows - self._mean) * self._inv_std  # as WindowBuffer.push (normalise_input)
        ok = valid & np.isfinite(x).all(axis=1)
        # Confidence row by row through the same monitor as push_frame (exact parity, O(K)).
        conf = np.zeros(k)
        for i, d2 in enumerate(np.mean(np.square(x), axis=1).tolist()):
            self._observe_d2(d2, bool(valid[i]))
            conf[i] = self.confidence
        x32 = x.astype(np.float32)
        count = np.arange(1, k + 1)
        ready = (count >= first) & ((count - first) % s == 0)
        bad = np.concatenate([[0], np.cumsum(~ok)])
        lo = np.maximum(count - t, 0)
        window_ok = (count >= t) & (bad[count] - bad[lo] == 0)
        predict = valid & ready & window_ok
        invalid = ~valid | (ready & ~window_ok)
        pk = np.flatnonzero(predict)
        y = np.zeros((pk.size, len(self.joints)))
        inf = np.zeros(pk.size, dtype=np.int64)
        views = np.lib.stride_tricks.sliding_window_view(x32, t, axis=0)  # [K - T + 1, C, T]
        for b in range(0, pk.size, batch_size):
            sel = pk[b : b + batch_size]
            windows = np.ascontiguousarray(views[sel - t + 1].transpose(0, 2, 1))
            t0 = time.perf_counter_ns()
            y[b : b + sel.size] = self.model.predict_batch(windows)
            inf[b : b + sel.size] = (time.perf_counter_ns() - t0) // sel.size
        finite = np.isfinite(y).all(axis=1)
        emitted = predict | invalid
        if not self.stage.started:
            good = pk[finite]
            start = int(good[0]) if good.size else k
            emitted &= count - 1 >= start
        ek = np.flatnonzero(emitted)
        est_valid = np.zeros(k, dtype=bool)
        est_valid[pk[finite]] = True
        torque = np.zeros((k, len(self.joints)))
        torque[pk[finite]] = y[finite] * self.scale
        inf_k = np.zeros(k, dtype=np.int64)
        inf_k[pk[finite]] = inf[finite]
        n_valid = int(est_valid[ek].sum())
        if ek.size and n_valid:
            self.stage.started = True
        self.counters["frames"] += k
        self.counters["estimates"] += n_valid
        self.counters["invalid_estimates"] += int(ek.size) - n_valid
        # Leave the window as frame-by-frame pushing would: same last T rows, same stride phase.
        tail = first + (k - first) % s
        win.reset()
        for i in range(k - tail, k):
            win.push(rows[i], int(stamps[i]), bool(valid[i]))
        conf[~est_valid] = 0.0
        return EstimateBatch(ek, stamps[ek], torque[ek], est_valid[ek], inf_k[ek], conf[ek])
