"""Deterministic offline replay of a bag through the estimator pipeline, and its evaluation.

:func:`replay_bag` gives the estimates and commands the ROS nodes produce when every IMU sample
of a bag arrives in bag log-time order with ``receive_ns`` = the log time: the same
:class:`gait_estimator.core.pipeline.EstimatorPipeline` configuration, the same synchronizer
parameters, the same :class:`~gait_estimator.core.command.CommandShaper`, minus DDS, as fast as
the CPU allows. Given the same bag and model the result is bit-identical from run to run.

Two paths, one result. The per-sample path (``ReplayOptions(batch=False)``, ``validate --per-
sample``) pushes every sample through ``core.clock.DataClock`` (frames polled at data time) into
``EstimatorPipeline.push_frame``, exactly as the nodes do. The batched path (default) reads the
bag into arrays, computes the synchronizer's frames in closed form
(:mod:`gait_estimator.replay.batch`), the feature rows with numpy and the windows' torques with
``predict_batch`` on chunks of ``batch_size`` windows, then feeds the estimates to the command
shaper in order; it is used only when the bag's timing satisfies its preconditions (per stream
strictly increasing stamps without jumps, ...; ``ReplayResult.path_reason`` says otherwise) and
matches the per-sample path to float32 rounding of batched inference (``test_replay_batch.py``
asserts max abs difference of estimates and commands <= 1e-4 N·m; measured on a 60 s bag: 8.7e-6
N·m with the reference LSTM, 3.9e-5 N·m with an untrained TCN shaped like the default model;
frames, stamps, validity, statuses and counters identical). Streaming mode stays per-frame (state
carries) after the batched synchronizer.

Bad timing in the bag never raises:

- a duplicated stamp (same location, same stamp as its previous sample) and an out-of-order
  stamp (earlier than the previous one of that location, by less than ``jump_threshold_s``) are
  counted, logged as a warning once per kind (logger ``gait_estimator.replay``), and passed on
  to the pipeline, whose synchronizer
  rejects or re-orders them exactly as it does online;
- a time jump (a stamp more than ``jump_threshold_s`` before or after the previous one of that
  location, e.g. a looped bag) resets the pipeline (and the command shaper) and is reported as an
  event; samples of the old time base that are still in flight right after the jump are
  dropped and counted (``stale_after_jump``).

:func:`evaluate` matches the estimates with the reference torques (linear interpolation of
the reference at the estimate stamps, within the reference's span and without bridging gaps),
computes per-joint RMSE (N·m/kg), NRMSE, r, R² with :mod:`gait_estimator.core.metrics`, and
command statistics of :class:`gait_estimator.core.command.CommandShaper` driven by the
estimates. A metric that is undefined on the data (a constant or all-NaN reference, a constant
estimate) is None in the report and its reason is in ``metrics_undefined``; the regression gate
(:mod:`gait_estimator.replay.baseline`) refuses such a report as a baseline and counts such a
value as a regression.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gait_estimator.core.clock import DataClock, make_synchronizer
from gait_estimator.core.params import make_shaper
from gait_estimator.errors import BagError, ConfigError
from gait_estimator.replay.bag import (
    JOINT_TORQUE,
    BagReader,
    TorqueSeries,
    imu_source,
    normalise_topic,
    read_joint_torques,
)
from gait_estimator.replay.batch import (
    FrameArrays,
    ImuArrays,
    read_imu_arrays,
    read_reference,
    simulate_synchronizer,
)
from gait_estimator.replay.options import ReplayOptions, ReplayResult, node_parameters, replay_settings
from gait_estimator.replay.scoring import evaluate, match_reference, undefined_metrics

__all__ = [
    "MASS_KEY",
    "ReplayOptions",
    "ReplayResult",
    "evaluate",
    "match_reference",
    "replay_bag",
    "replay_settings",
    "undefined_metrics",
]

MASS_KEY = "gait_estimator.subject_mass_kg"  # bag custom_data key written by our bag generators
_MAX_EVENTS = 50


LOG = logging.getLogger("gait_estimator.replay")  # warnings about odd bags (the replay goes on)


def _subject_mass(
    options: ReplayOptions, reference: TorqueSeries | None, custom: Mapping[str, str], bag: Path, unit: str
) -> float:
    if options.subject_mass_kg is not None:
        return float(options.subject_mass_kg)
    if reference is not None and reference.subject_mass_kg > 0:
        return reference.subject_mass_kg
    if MASS_KEY in custom:
        try:
            return float(custom[MASS_KEY])
        except ValueError:
            raise BagError(
                f"bag {bag}: custom data {MASS_KEY}={custom[MASS_KEY]!r} is not a number"
            ) from None
    if unit == "N.m/kg":
        raise BagError(
            f"bag {bag}: the subject's body mass is unknown (no reference subject_mass, no"
            f" '{MASS_KEY}' custom data); pass it (--subject-mass)"
        )
    return 0.0


def replay_bag(
    bag: str | Path, model: Any, options: ReplayOptions | None = None, model_source: str = "<model>"
) -> ReplayResult:
    """Replay ``bag`` through a fresh :class:`EstimatorPipeline` around ``model`` (a
    :class:`~gait_estimator.runtime.model_file.ModelRuntime`). See the module docstring."""
    from gait_estimator.core.params import read_calibration_param
    from gait_estimator.core.pipeline import EstimatorPipeline

    options = options or ReplayOptions()
    if not (options.jump_threshold_s > 0 and math.isfinite(options.jump_threshold_s)):
        raise ConfigError("jump_threshold_s", options.jump_threshold_s, "must be a finite value > 0")
    if options.batch_size < 1:
        raise ConfigError("batch_size", options.batch_size, "must be >= 1")
    md = model.metadata
    joints = tuple(md.output_joints)
    t_wall = time.perf_counter()
    with BagReader(bag) as reader:
        info = reader.info()
        ref_topic = None
        if options.reference_topic is not None:
            if reader.has_topic(options.reference_topic) or options.reference_required:
                reader.require_topic(options.reference_topic, JOINT_TORQUE)
                ref_topic = normalise_topic(options.reference_topic)
            else:
                LOG.warning(
                    "bag %s: no reference topic '%s'; estimates are not scored",
                    reader.path,
                    options.reference_topic,
                )
        # Synchronizer locations as the node: its 'locations' parameter, unless the bag lacks one
        # the model does not read (then the model's own).
        p = node_parameters(options.params, subject_mass_kg=70.0)
        locations = tuple(p["locations"])
        if "locations" not in options.params and not all(
            reader.has_topic(f"{options.imu_prefix}{loc}") for loc in locations
        ):
            locations = tuple(md.locations)
        source = imu_source(reader, locations, options.imu_source, options.imu_prefix, options.frame_topic)
        start_ns = info.start_ns + int(round(options.start_offset_s * 1e9))
        stop_ns = (start_ns + int(round(options.duration_s * 1e9))) if options.duration_s > 0 else None
        whole = options.start_offset_s == 0 and stop_ns is None  # start_ns is the bag's first message
        # One pass over the bag for the IMUs and the reference when the whole bag is replayed.
        also: dict[str, list[tuple[int, bytes]]] = {}
        if options.batch and ref_topic is not None and whole and source.kind == "topics":
            also[ref_topic] = []
        imu = read_imu_arrays(reader, source, locations, None if whole else start_ns, stop_ns, also)
        reference = None
        if ref_topic is not None:
            if options.batch:
                reference = read_reference(reader, ref_topic, joints, also.get(ref_topic))
            else:
                reference = read_joint_torques(reader, ref_topic, joints)
        t_read = time.perf_counter() - t_wall
        mass = _subject_mass(options, reference, info.custom_data, reader.path, md.output_unit)
        p = node_parameters(options.params, subject_mass_kg=mass if mass > 0 else 70.0)
        p["locations"] = list(locations)
        pipeline = EstimatorPipeline(
            model,
            make_synchronizer(p, md.sample_rate_hz),
            mass if mass > 0 else None,
            p["inference_mode"] if options.mode is None else options.mode,
            read_calibration_param(p["calibration_file"]),  # as the node: before features
        )
    run = _Run(pipeline, p, options, locations, md.sample_rate_hz, Path(bag))
    t0 = time.perf_counter()
    frames = None
    if options.batch:
        reason = _batch_blocker(imu, int(round(options.jump_threshold_s * 1e9)))
        if reason is None:
            frames = simulate_synchronizer(pipeline.synchronizer, imu, run.final_poll_ns(imu))
            if frames is None:
                reason = "stream timing outside the batched synchronizer's preconditions"
    else:
        reason = "requested (batch=False, validate --per-sample)"
    if frames is not None:
        run.batched(imu, frames)
        path = "batched"
    else:
        run.per_sample(imu)
        path = "per-sample"
    t_est = time.perf_counter() - t0
    counters = run.counters
    for k, v in run.sync_counters.items():
        counters[f"sync_{k}"] = int(v)
    for k, v in pipeline.counters.items():
        counters[f"pipeline_{k}"] = int(v)
    j = len(joints)
    n = len(run.est_stamp)
    wall = time.perf_counter() - t_wall
    first = start_ns if len(imu) else info.start_ns
    span_end = min(info.end_ns, stop_ns) if stop_ns is not None else info.end_ns
    duration = max(0.0, (span_end - first) / 1e9)
    nc = len(run.command_joints)
    timing = {
        "read_s": t_read,
        "estimate_s": t_est,
        **run.timing,
        "wall_s": wall,
        "realtime_factor": duration / wall if wall > 0 else float("inf"),
    }
    return ReplayResult(
        bag=Path(bag),
        storage=info.storage,
        model_source=model_source,
        joints=joints,
        subject_mass_kg=mass,
        output_unit=md.output_unit,
        bag_start_ns=info.start_ns,
        bag_duration_s=duration,
        est_stamp_ns=np.asarray(run.est_stamp, dtype=np.int64),
        est_sensor_ns=np.asarray(run.est_sensor, dtype=np.int64),
        est_log_ns=np.asarray(run.est_log, dtype=np.int64),
        est_nm=np.vstack(run.est_rows) if n else np.zeros((0, j)),
        est_valid=np.asarray(run.est_valid, dtype=bool),
        est_phase=np.asarray(run.est_phase, dtype=np.float64),
        gait_events=list(run.gait_events),
        inference_ns=np.asarray(run.inf_ns, dtype=np.int64),
        cmd_joints=run.command_joints,
        cmd_nm=np.vstack(run.cmd_rows) if run.cmd_rows else np.zeros((0, nc)),
        cmd_status=(
            np.vstack(run.cmd_status).astype(np.uint8) if run.cmd_status else np.zeros((0, nc), np.uint8)
        ),
        cmd_valid=np.asarray(run.cmd_valid, dtype=bool),
        cmd_faults=run.faults,
        reference=reference,
        counters=counters,
        events=run.events,
        timing=timing,
        path=path,
        path_reason=reason or "",
    )


def _batch_blocker(imu: ImuArrays, jump_ns: int) -> str | None:
    """Why the bag's timing needs the per-sample path (duplicates, out-of-order stamps, time
    jumps: counted, logged and handled sample by sample), or None."""
    if len(imu) == 0:
        return "no IMU samples"
    for s in range(len(imu.locations)):
        dt = np.diff(imu.stamp_ns[imu.loc == s])
        if dt.size and (np.any(dt <= 0) or np.any(dt > jump_ns)):
            return f"duplicate, out-of-order or jumping stamps on imu '{imu.locations[s]}'"
    return None


class _Run:
    """The estimates and commands of one replay (both paths fill the same lists)."""

    def __init__(
        self,
        pipeline: Any,
        p: Mapping[str, Any],
        options: ReplayOptions,
        locations: tuple[str, ...],
        rate_hz: float,
        bag: Path,
    ) -> None:
        self.pipeline = pipeline
        self.p = p
        self.options = options
        self.locations = locations
        self.rate_hz = rate_hz
        self.bag = bag
        joints = tuple(pipeline.joints)
        self.shaper = None
        if options.commands:
            self.shaper = make_shaper(p)
            self.shaper.enable()
        self.command_joints = tuple(p["joints"])
        known = set(self.command_joints) <= set(joints)
        self.cmd_index = [joints.index(j) for j in self.command_joints] if known else None
        self.est_stamp: list[int] = []
        self.est_sensor: list[int] = []
        self.est_log: list[int] = []
        self.est_rows: list[np.ndarray] = []
        self.est_valid: list[bool] = []
        self.est_phase: list[float] = []  # right leg gait phase (core.gait_phase) per estimate
        self.gait_events: list[Any] = []  # core.gait_phase.GaitEvent, frame (host) clock
        self.inf_ns: list[int] = []
        self.cmd_rows: list[np.ndarray] = []
        self.cmd_status: list[np.ndarray] = []
        self.cmd_valid: list[bool] = []
        self.faults: list[str] = []
        self.counters = dict.fromkeys(
            ("samples", "duplicates", "out_of_order", "time_jumps", "stale_after_jump", "pipeline_resets"), 0
        )
        self.events: list[dict[str, Any]] = []
        self.sync_counters: dict[str, int] = {}
        self.timing: dict[str, float] = {}
        self._warned: set[str] = set()

    def final_poll_ns(self, imu: ImuArrays) -> int:
        # End of the bag: the nodes' timer keeps polling, so the last frames are emitted with
        # held samples until max_gap, then as invalid; flush the same here.
        p = self.p
        return (
            int(imu.log_ns[-1])
            + int(p["latency_s"] * 1e9)
            + int(p["max_gap_s"] * 1e9)
            + int(2e9 / self.rate_hz)
        )

    def command(
        self, stamp: int, torque: np.ndarray, valid: bool, log_ns: int, confidence: float = 1.0
    ) -> None:
        shaper = self.shaper
        if shaper is None:
            return
        if valid and self.cmd_index is not None:  # as the fused node: invalid estimates latch a fault
            # received at its log time, with its input confidence: what the node's shaper gets
            shaper.submit(torque[self.cmd_index], stamp, True, "N.m", log_ns, confidence)
        else:
            shaper.submit(None, stamp, False, "N.m")
        out = shaper.update(log_ns)
        self.cmd_rows.append(out.torque)
        self.cmd_status.append(out.status)
        self.cmd_valid.append(bool(out.valid))
        if out.fault and (not self.faults or self.faults[-1] != out.fault):
            self.faults.append(out.fault)

    # -- batched path ---------------------------------------------------------------------------
    def batched(self, imu: ImuArrays, frames: FrameArrays) -> None:
        pipeline = self.pipeline
        n = len(imu)
        self.counters["samples"] = n
        t0 = time.perf_counter()
        rows, valid = pipeline.frame_rows(
            frames.locations, frames.acc, frames.gyro, frames.quat_xyzw, frames.valid
        )
        t1 = time.perf_counter()
        est = pipeline.push_rows(frames.stamp_ns, rows, valid, self.options.batch_size)
        t2 = time.perf_counter()
        k = est.frame_index
        poll = frames.poll_index[k]
        logs = np.where(poll < n, imu.log_ns[np.minimum(poll, n - 1)], self.final_poll_ns(imu))
        self.est_stamp = est.stamp_ns.tolist()
        self.est_sensor = (est.stamp_ns - frames.sensor_offset_ns[k]).tolist()
        self.est_log = logs.tolist()
        self.est_rows = list(est.torque_nm)
        self.est_valid = est.valid.tolist()
        self.inf_ns = est.inference_ns.tolist()
        phase, self.gait_events = pipeline.frame_phases(
            frames.stamp_ns, frames.locations, frames.acc, frames.gyro, frames.quat_xyzw, frames.valid
        )
        self.est_phase = phase[k].tolist()
        conf = est.confidence.tolist() if est.confidence is not None else [1.0] * len(est)
        for i in range(len(est)):
            self.command(self.est_stamp[i], self.est_rows[i], self.est_valid[i], self.est_log[i], conf[i])
        t3 = time.perf_counter()
        self.sync_counters = dict(frames.counters)
        self.timing = {"features_s": t1 - t0, "model_s": t2 - t1, "commands_s": t3 - t2}

    # -- per-sample path ------------------------------------------------------------------------
    def event(self, kind: str, loc: str, log_ns: int, stamp_ns: int, detail: str) -> None:
        if len(self.events) < _MAX_EVENTS:
            self.events.append(
                {"kind": kind, "location": loc, "log_ns": log_ns, "stamp_ns": stamp_ns, "detail": detail}
            )
        if kind not in self._warned:
            self._warned.add(kind)
            LOG.warning("bag %s: %s (further '%s' events are only counted)", self.bag, detail, kind)

    def handle(self, estimates: list[Any], log_ns: int) -> None:
        sync = self.pipeline.synchronizer
        loc0 = self.locations[0]
        for est in estimates:
            self.est_stamp.append(est.stamp_ns)
            self.est_sensor.append(est.stamp_ns - (sync.clock_offset_ns(loc0) or 0))
            self.est_log.append(log_ns)
            self.est_rows.append(est.torque_nm)
            self.est_valid.append(bool(est.valid))
            self.est_phase.append(float(est.gait_phase))
            self.inf_ns.append(int(est.inference_ns))
            self.command(est.stamp_ns, est.torque_nm, bool(est.valid), log_ns, est.confidence)

    def per_sample(self, imu: ImuArrays) -> None:
        """Every sample through ``core.clock.DataClock`` and ``EstimatorPipeline.push_frame``,
        exactly as the nodes receive it (frames polled at data time)."""
        from gait_estimator.core.samples import ImuSample

        pipeline, shaper, counters = self.pipeline, self.shaper, self.counters
        clock = DataClock(pipeline.synchronizer)  # polls at data time, as the nodes do
        jump_ns = int(round(self.options.jump_threshold_s * 1e9))
        last: dict[str, int] = {}
        jump_log_ns: int | None = None
        jump_stamp_ns = 0
        last_log_ns: int | None = None
        names = imu.locations
        values = imu.values
        for i, (log_ns, li, stamp) in enumerate(
            zip(imu.log_ns.tolist(), imu.loc.tolist(), imu.stamp_ns.tolist(), strict=True)
        ):
            counters["samples"] += 1
            loc = names[li]
            prev = last.get(loc)
            if jump_log_ns is not None:
                if log_ns - jump_log_ns > jump_ns:
                    jump_log_ns = None
                elif abs(stamp - jump_stamp_ns) > jump_ns:
                    counters["stale_after_jump"] += 1
                    continue
            if prev is not None:
                if stamp == prev:
                    counters["duplicates"] += 1
                    self.event("duplicate", loc, log_ns, stamp, f"duplicated stamp {stamp} ns on imu '{loc}'")
                elif stamp < prev - jump_ns or stamp > prev + jump_ns:
                    counters["time_jumps"] += 1
                    counters["pipeline_resets"] += 1
                    self.event(
                        "time_jump",
                        loc,
                        log_ns,
                        stamp,
                        f"time jump of {(stamp - prev) / 1e9:+.3f} s on imu '{loc}' at"
                        f" log time {log_ns} ns: pipeline reset",
                    )
                    pipeline.reset()
                    clock.reset()
                    if shaper is not None:
                        shaper.reset()
                        shaper.enable()
                    last.clear()
                    jump_log_ns, jump_stamp_ns = log_ns, stamp
                elif stamp < prev:
                    counters["out_of_order"] += 1
                    self.event(
                        "out_of_order",
                        loc,
                        log_ns,
                        stamp,
                        f"out-of-order stamp on imu '{loc}': {stamp} ns after {prev} ns",
                    )
            if prev is None or stamp > prev or loc not in last:
                last[loc] = stamp
            v = values[i]
            sample = ImuSample(loc, stamp, v[0:3], v[3:6], v[6:10])
            for frame in clock.push(sample, log_ns):
                self.handle(pipeline.push_frame(frame), log_ns)
                if pipeline.gait_state is not None:
                    self.gait_events.extend(pipeline.gait_state.events)
            last_log_ns = log_ns
        if last_log_ns is not None:
            now = self.final_poll_ns(imu) - int(imu.log_ns[-1]) + last_log_ns
            self.handle(pipeline.poll(now), now)
        self.sync_counters = pipeline.synchronizer.counters
