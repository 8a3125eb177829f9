"""``gait_pipeline``: the fused mode, every stage in one process with no DDS hop between them.

Executable: ``gait_pipeline`` (``python -m gait_estimator.nodes.gait_pipeline``), node name
``gait_pipeline`` (a lifecycle node, managed like ``torque_estimator``). Same output topics as
the distributed chain: ``gait/torque_estimate`` (SensorDataQoS), ``exo/torque_command``
(reliable), ``/diagnostics``; optionally ``gait/imu_frame`` (``publish_frames``) and, with an
in-process sim/file source, ``gait/torque_reference``. Same inputs: ``exo/emergency_stop``,
``exo/reset``.

Input (``imu_source``): ``topics`` subscribes ``imu/<location>`` from a separate
``imu_driver``; ``bundle`` subscribes ``bundle_topic`` (one ``ImuBundle`` per sampling instant, an
``imu_driver`` with ``imu_output`` bundle: all samples pushed, frames polled once);
``sim``/``file``/``serial`` runs that driver backend inside this process and feeds samples
straight into the core (``driver_rate_hz`` for sim; the other driver parameters have the
``imu_driver`` names).

Core: ``core.pipeline.EstimatorPipeline`` (synchronizer -> features -> window -> model ->
x subject mass, mode ``inference_mode``: ``window`` or ``streaming``; streaming steps the model
one row per frame from its carried state, O(1) per sample, and needs a model whose metadata
says streaming true; for a TCN whose receptive field fits the window it equals window mode), the
same object offline validation uses (``validate`` takes the mode from the same parameter), then
the command stage (``core.command_stage.CommandStage`` on the wire through
``nodes.command_port.CommandPort``: the very objects ``torque_command`` uses); all under one
lock (samples may arrive on the source thread,
timers on the executor thread). Parameters: ``params.FUSED`` (the union of the stages').
Everything runs in the sample callback: the sample is pushed, the frames due at data time
(``core.clock.DataClock``: a starved process never synthesises invalid frames for samples
not yet processed) go through the model and the command is published at once. The control-rate
timer only fills gaps (watchdog ramp, inactive zeros); ``exo/emergency_stop`` publishes a zero
command in its own callback.

Calibration: ``calibration_file`` (read at configure; a malformed file fails configure with its
message) turns every frame into the segment frames in the core, before features; a flagged
sensor is invalid there, so the command goes to zero rather than using it.

Lifecycle: configure loads the model (failure: stays unconfigured, logged) and starts the
input; activate enables estimates and the command ramp-in; deactivate publishes a zero at once
(``valid = false``) and invalid zeros at the control rate while inactive, like ``torque_command``;
cleanup/shutdown stop the input and release all. ``/diagnostics`` every ``diagnostics_period_s``.
"""

from __future__ import annotations

import threading
import time

from rclpy.lifecycle import TransitionCallbackReturn

from gait_estimator.core.clock import DataClock, make_synchronizer
from gait_estimator.core.command_stage import COMMAND_LIVE
from gait_estimator.core.latency import LatencyStats
from gait_estimator.nodes import conversion, diagnostics, lifecycle_guard, runner, topics
from gait_estimator.nodes.command_port import CommandPort
from gait_estimator.nodes.gait_port import GaitPort
from gait_estimator.nodes.imu_sources import make_source
from gait_estimator.nodes.lifecycle_base import ReleasingLifecycleNode
from gait_estimator.nodes.model_swap import ModelSwapper, load_checked_runtime
from gait_estimator.nodes.params import declare_params, read_calibration_param, resolve_model_path


class GaitPipeline(ReleasingLifecycleNode):
    def __init__(self, name: str = "gait_pipeline") -> None:
        super().__init__(name)
        lifecycle_guard.guard_change_state(self)
        self.params = declare_params(
            self, "gait_pipeline", live=COMMAND_LIVE + ("model_path",), apply=self._apply_params
        )
        self.lock = threading.Lock()
        self.pipeline = self.port = self.source = None
        self._entities: list = []
        self._active = False
        self.inference = LatencyStats()
        self.counts = {"samples": 0}
        p = self.params
        self.swapper = ModelSwapper(
            self, self._running_model, self._install, p.threads, p.inference_mode
        )

    # -- lifecycle ------------------------------------------------------------------------
    def on_configure(self, state) -> TransitionCallbackReturn:
        from diagnostic_msgs.msg import DiagnosticArray
        from gait_estimator_msgs.msg import ImuBundle, ImuFrame, JointTorque
        from sensor_msgs.msg import Imu

        from gait_estimator.core.pipeline import EstimatorPipeline

        p = self.params
        path = resolve_model_path(p.model_path)
        try:
            runtime = load_checked_runtime(path, p.threads, self.get_name(), p.inference_mode)
            md = runtime.metadata
            mode = p.inference_mode
            sync = make_synchronizer(p, md.sample_rate_hz)  # at the model rate
            self.calibration = read_calibration_param(p.calibration_file)  # CalibrationError: fail
            self.pipeline = EstimatorPipeline(
                runtime, sync, p.subject_mass_kg, mode, self.calibration
            )
            self.clock = DataClock(self.pipeline.synchronizer)
            entities: list = []
            self.port = CommandPort(self, p, entities, self.lock)
        except Exception as exc:
            self.get_logger().error(f"configure failed: {exc}")
            self.swapper.last_rejection = f"configure failed: {exc}"
            self.pipeline = self.port = None
            return TransitionCallbackReturn.FAILURE
        self.swapper.model_file = str(path)
        self.get_logger().info(f"loaded model {path} ({p.inference_mode} mode); input '{p.imu_source}'")
        self.joints = md.output_joints
        self._est_msg = JointTorque()
        sensor = topics.sensor_qos()
        est_hz = diagnostics.estimate_rate_hz(md, p.inference_mode, fused=True)  # rate/stamp diagnostics
        self._est_pub = diagnostics.monitor_output(
            self, self.create_publisher(JointTorque, topics.TOPIC_ESTIMATE, sensor), est_hz, est_hz,
            active=lambda: self._active)
        self._frame_pub = (
            self.create_publisher(ImuFrame, topics.TOPIC_FRAME, sensor) if p.publish_frames else None
        )
        self._ref_pub = (
            self.create_publisher(JointTorque, topics.TOPIC_REFERENCE, sensor)
            if p.publish_reference and p.imu_source in ("sim", "file")
            else None
        )
        self._diag_pub = self.create_publisher(DiagnosticArray, topics.TOPIC_DIAGNOSTICS, 10)
        self._entities = entities + [
            self._est_pub,
            self._diag_pub,
            self.create_timer(p.diagnostics_period_s, self._diagnostics),
        ] + [e for e in (self._frame_pub, self._ref_pub) if e is not None]
        self._gait = GaitPort(self, self._entities)  # gait/state, gait/events
        if p.imu_source == "bundle":
            self._locations = frozenset(p.locations)
            self._entities.append(
                self.create_subscription(
                    ImuBundle, p.bundle_topic, self._on_bundle, topics.sensor_qos(topics.SENSOR_SUB_DEPTH)
                )
            )
        elif p.imu_source == "topics":
            for loc in p.locations:
                self._entities.append(
                    self.create_subscription(
                        Imu,
                        topics.TOPIC_IMU.format(location=loc),
                        lambda msg, loc=loc: self._on_imu(loc, msg),
                        topics.sensor_qos(topics.SENSOR_SUB_DEPTH),
                    )
                )
        else:
            try:
                self.source = make_source(p, p.locations, p.driver_rate_hz, p.imu_source)
            except Exception as exc:
                self.get_logger().error(f"configure failed: input: {exc}")
                self._release()
                return TransitionCallbackReturn.FAILURE
            runner.freeze_heap()  # before samples flow
            self.source.start(self._on_sample, self._on_reference if self._ref_pub else None)
            return TransitionCallbackReturn.SUCCESS
        runner.freeze_heap()
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        self.port.activate()
        self._active = True
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self._active = False
        self.port.deactivate()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        if self.source is not None:
            self.source.stop()
            self.source = None
        self._active = False
        if self.port is not None:
            self.port.release()
        with self.lock:
            self.destroy_entities(self._entities)
            self._entities = []
            self.pipeline = self.port = None

    def close(self) -> None:
        if self.source is not None:
            self.source.stop()

    # -- parameters (params.RuntimeParameters) and model swap (nodes/model_swap.py) -----------
    def _apply_params(self, new, changed) -> str:
        if "model_path" in changed:
            reason = self.swapper.request(new.model_path)
            if reason:
                return reason
        with self.lock:
            if self.port is not None:
                self.port.stage.reconfigure(new)
            if self.pipeline is not None and self.pipeline.metadata.output_unit == "N.m/kg":
                self.pipeline.scale = float(new.subject_mass_kg)
        return ""

    def _running_model(self):
        pipe = self.pipeline
        return None if pipe is None else pipe.model

    def _install(self, runtime, path) -> None:
        """Put a loaded, probed model in charge: a new core pipeline on the same synchronizer (the
        stream restarts, so estimates resume after one window; the command ramps meanwhile)."""
        from gait_estimator.core.pipeline import EstimatorPipeline

        with self.lock:
            if self.pipeline is None:
                return
            old = self.pipeline
            mass = self.params.subject_mass_kg
            # same synchronizer, so self.clock (DataClock) keeps feeding it
            self.pipeline = EstimatorPipeline(runtime, old.synchronizer, mass, old.mode, old.calibration)

    # -- data -----------------------------------------------------------------------------
    def _on_sample(self, location, stamp_ns, acc, gyro, quat) -> None:
        """A sample from the in-process source (numpy rows)."""
        now = time.time_ns()
        self._push(((location, stamp_ns, conversion.sample_values(acc, gyro, quat)),), now)

    def _on_imu(self, location, msg) -> None:
        now = time.time_ns()
        self._push(((location, *conversion.imu_values(msg)),), now)

    def _on_bundle(self, msg) -> None:
        """A bundled input: every sample of the instant pushed, then frames polled once."""
        now = time.time_ns()
        self._push(conversion.bundle_values(msg, self._locations), now)

    def _push(self, samples, now: int) -> None:
        """``(location, stamp_ns, values)`` samples received at ``now`` -> frames -> commands."""
        with self.lock:
            if self.pipeline is None:
                return
            self.counts["samples"] += len(samples)
            self._process(self.clock.push_many(samples, now))

    def _process(self, frames) -> None:
        """Frames -> estimates -> commands, synchronously in the sample's callback (no timer in
        between): the command of a frame is published as soon as its last IMU sample arrived."""
        from gait_estimator_msgs.msg import JointTorque

        pipe, port = self.pipeline, self.port
        for frame in frames:
            if self._frame_pub is not None:
                self._frame_pub.publish(conversion.frame_to_msg(frame, pipe.synchronizer.rate_hz))
            estimates = pipe.push_frame(frame)
            if not self._active:
                continue
            for est in estimates:
                port.submit(
                    self.joints, est.torque_nm, est.stamp_ns, est.valid, est.confidence, est.gait_phase
                )
                if est.valid:
                    self.inference.add(est.inference_ns)
                # after the command: the command is the latency-critical one
                self._est_pub.publish(conversion.joint_torque_msg(
                    est.stamp_ns, JointTorque.SOURCE_ESTIMATE, self.joints, est.torque_nm, valid=est.valid,
                    subject_mass=self.params.subject_mass_kg, gait_phase=est.gait_phase, msg=self._est_msg,
                    confidence=est.confidence,
                ))
            self._gait.publish(pipe.gait_state)

    def _on_reference(self, stamp_ns, torque, joints, phase) -> None:
        from gait_estimator_msgs.msg import JointTorque

        self._ref_pub.publish(
            conversion.joint_torque_msg(
                stamp_ns, JointTorque.SOURCE_REFERENCE, joints, torque, gait_phase=phase
            )
        )

    def _diagnostics(self) -> None:
        with self.lock:
            if self.pipeline is None:
                return
            values = dict(self.counts)
            values.update(self.pipeline.synchronizer.counters)
            values.update({f"model_{k}": v for k, v in self.pipeline.counters.items()})
            values.update(self._gait.counts)
            level, message = self.port.stage.status(values)
            values["input_distance"] = float(self.pipeline.monitor.distance)
        values.update({f"inference_{k}": v for k, v in self.inference.summary_ms().items()})
        values.update(self.swapper.counts)
        values["model"] = self.swapper.model_file
        values["last_rejection"] = self.swapper.last_rejection
        values["rejected_parameter_sets"] = self.runtime_params.rejected
        if self.source is not None and self.source.error:
            level, message = 2, f"input failed: {self.source.error}"
        elif level == 0 and self.swapper.last_rejection:
            level, message = 1, self.swapper.last_rejection
        self._diag_pub.publish(
            diagnostics.diagnostic_array(self, f"{self.get_name()}: fused pipeline", level, message, values)
        )


def main(args=None) -> int:
    return runner.run_node(GaitPipeline, args)


if __name__ == "__main__":
    raise SystemExit(main())
