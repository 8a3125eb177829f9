"""``torque_estimator``: lifecycle node, ``gait/features`` -> ``gait/torque_estimate``.

Executable: ``torque_estimator`` (``python -m gait_estimator.nodes.torque_estimator``), node
name ``torque_estimator`` (``rclpy.lifecycle.LifecycleNode``). Parameters
(``core.params.ESTIMATOR``): ``model_path`` (empty = default model), ``subject_mass_kg``,
``threads``, ``inference_mode``, ``diagnostics_period_s``.

``inference_mode`` (read at configure): the model stage (``core.model_stage.ModelStage``, the
same object the fused pipeline and offline replay run) turns each window into an estimate:
``window`` runs the window through the model; ``streaming`` (needs a model whose metadata says
streaming true, else configure fails naming the parameter) steps the model only on the rows new
since the previous window, O(1) per sample; after a (re)start (the first window, an invalid
window, a stamp step that is not a continuation, a swapped model) it steps the whole window, so
every estimate equals window mode's for a model whose receptive field fits the window.

Model identity (``FeatureWindow.normalization_id``): a normalised window whose id is the running
model's is used as it is; one normalised for a model this node loaded before (the windowing node
still runs the statistics of the model it started with, after a swap here) is renormalised to the
running model's statistics; any other id is refused (an invalid estimate, counted and logged):
a window is never read with another model's normalisation. A window with ``normalized`` false
(SI units) is normalised here.

Lifecycle:
- ``on_configure``: loads and validates the model file (``runtime.model_file.load_model``; the
  file type picks the backend: TorchScript ``.pt``, ONNX Runtime ``.onnx``, torch.export ``.pt2``);
  a missing/corrupt/mismatched model fails the transition with one clear log line and the node
  stays *unconfigured*, alive, ready for another ``model_path`` and configure.
- ``on_activate``: windows are turned into ``JointTorque`` estimates (SOURCE_ESTIMATE, N.m:
  N.m/kg outputs are scaled by ``subject_mass_kg``) on ``gait/torque_estimate`` (SensorDataQoS,
  lifecycle publisher), stamped with the window's newest frame. Invalid windows give an invalid
  (zero, STATUS_INVALID) estimate; non-finite model output likewise.
- ``on_deactivate`` stops publishing; ``on_cleanup``/``on_shutdown`` release model, publisher,
  subscription and timer.

Setting ``model_path`` at run time (``ros2 param set``) swaps the model atomically: the parameter
callback checks the new file's metadata at once (missing file, bad metadata or another input
layout - channels, window, rate - than the windowing node produces: the set is rejected with the
reason; other normalisation statistics are fine, see model identity); a worker thread then loads
and validates the model while estimates keep flowing with the old one, and swaps it in with one
reference assignment. If the full load fails, the old model keeps running and ``model_path`` is
set back to its file (logged).

Diagnostics (``/diagnostics``): end-to-end latency (frame stamp -> estimate publish) and
inference time percentiles, counts, the model file.

``change_state`` requests naming an unavailable transition are answered ``success=False``
(guard for ros2/rclpy#1209, see ``lifecycle_guard.guard_change_state``).
"""

from __future__ import annotations

import time

import numpy as np
from rclpy.lifecycle import TransitionCallbackReturn

from gait_estimator.core.latency import LatencyStats
from gait_estimator.nodes import conversion, diagnostics, lifecycle_guard, runner, topics
from gait_estimator.nodes.lifecycle_base import ReleasingLifecycleNode
from gait_estimator.nodes.model_swap import ModelSwapper, load_checked_runtime
from gait_estimator.nodes.params import declare_params, resolve_model_path


class TorqueEstimator(ReleasingLifecycleNode):
    def __init__(self, name: str = "torque_estimator") -> None:
        super().__init__(name)
        lifecycle_guard.guard_change_state(self)
        self.params = declare_params(
            self, "torque_estimator", live=("model_path", "subject_mass_kg"), apply=self._apply_params
        )
        self.runtime = None
        self.stage = None  # core.model_stage.ModelStage of the running model
        self.model_file = ""
        self._pub = self._sub = self._timer = self._diag_pub = None
        self._active = False
        self.latency = LatencyStats()
        self.inference = LatencyStats()
        self.counts = {"windows": 0, "renormalized_windows": 0, "foreign_windows": 0}
        self._norms: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # id -> (mean, std) of loaded models
        self.swapper = ModelSwapper(
            self, lambda: self.runtime, self._install, self.params.threads, self.params.inference_mode
        )
        self.monitor = None  # core.confidence.ConfidenceMonitor of the running model

    # -- lifecycle ------------------------------------------------------------------------
    def on_configure(self, state) -> TransitionCallbackReturn:
        from diagnostic_msgs.msg import DiagnosticArray
        from gait_estimator_msgs.msg import FeatureWindow, JointTorque

        path = resolve_model_path(self.get_parameter("model_path").value)
        p = self.params
        try:
            runtime = load_checked_runtime(path, p.threads, self.get_name(), p.inference_mode)
        except Exception as exc:
            self.get_logger().error(f"configure failed: cannot use model: {exc}")
            self.swapper.last_rejection = f"configure failed: {exc}"
            self.runtime = None
            return TransitionCallbackReturn.FAILURE
        self._install(runtime, path)
        self.swapper.model_file = self.model_file
        md = self.runtime.metadata
        self.get_logger().info(
            f"loaded model {path} ({md.architecture}, {len(md.input_channels)} channels, "
            f"window {md.window}, joints {list(md.output_joints)}, {md.output_unit}; "
            f"{self.params.inference_mode} mode)"
        )
        qos = topics.sensor_qos()
        est_hz = diagnostics.estimate_rate_hz(md, self.params.inference_mode)  # rate/stamp diagnostics
        self._pub = diagnostics.monitor_output(
            self, self.create_lifecycle_publisher(JointTorque, topics.TOPIC_ESTIMATE, qos), est_hz, est_hz,
            active=lambda: self._active)
        self._sub = self.create_subscription(
            FeatureWindow, topics.TOPIC_FEATURES, self._on_window, topics.sensor_qos(topics.SENSOR_SUB_DEPTH)
        )
        self._diag_pub = self.create_publisher(DiagnosticArray, topics.TOPIC_DIAGNOSTICS, 10)
        self._timer = self.create_timer(self.params.diagnostics_period_s, self._diagnostics)
        self._msg = JointTorque()
        runner.freeze_heap()
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        self.stage.reset()
        self._active = True
        return super().on_activate(state)  # activates the lifecycle publisher

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self._active = False
        return super().on_deactivate(state)

    def _release(self) -> None:
        self._active = False
        for destroy, attr in (
            (self.destroy_subscription, "_sub"),
            (self.destroy_timer, "_timer"),
            (self.destroy_lifecycle_publisher, "_pub"),
            (self.destroy_publisher, "_diag_pub"),
        ):
            obj = getattr(self, attr)
            if obj is not None:
                destroy(obj)
                setattr(self, attr, None)
        self.runtime = self.stage = None

    # -- parameters: atomic model swap (nodes/model_swap.py) --------------------------------
    def _apply_params(self, new, changed) -> str:
        if "model_path" in changed:
            return self.swapper.request(new.model_path)
        return ""  # subject_mass_kg: read per window from self.params

    def _install(self, runtime, path) -> None:
        from gait_estimator.core.confidence import ConfidenceMonitor
        from gait_estimator.core.model_stage import ModelStage

        md = runtime.metadata
        scale = self.params.subject_mass_kg if md.output_unit == "N.m/kg" else 1.0
        counters = self.stage.counters if self.stage is not None else None  # counts span swaps
        stage = ModelStage(runtime, self.params.inference_mode, scale, counters)
        self._norms[md.normalization_id] = (np.asarray(md.input_mean), np.asarray(md.input_std))
        self.model_file = str(path)
        self.monitor = ConfidenceMonitor(md)
        self.stage, self.runtime = stage, runtime  # the window callback reads self.stage once per window

    # -- data -----------------------------------------------------------------------------
    def _normalised(self, msg, window: np.ndarray, md) -> np.ndarray | None:
        """The window in the running model's normalisation (see model identity), or None."""
        if not msg.normalized:
            return ((window - np.asarray(md.input_mean)) / np.asarray(md.input_std)).astype(np.float32)
        if msg.normalization_id == md.normalization_id:
            return window
        known = self._norms.get(msg.normalization_id)
        if known is None or tuple(msg.channel_names) != md.input_channels:
            self.counts["foreign_windows"] += 1
            self.get_logger().error(
                f"feature window normalised for model '{msg.normalization_id}', not the running model's "
                f"'{md.normalization_id}' nor one loaded before: refused (zero command)",
                throttle_duration_sec=5.0,
            )
            return None
        self.counts["renormalized_windows"] += 1
        mean, std = known
        raw = window * std + mean
        return ((raw - np.asarray(md.input_mean)) / np.asarray(md.input_std)).astype(np.float32)

    def _on_window(self, msg) -> None:
        from gait_estimator_msgs.msg import JointTorque

        stage = self.stage
        if not self._active or stage is None:
            return
        self.counts["windows"] += 1
        md = stage.metadata
        window, stamp, valid = conversion.msg_to_window(msg)
        if valid and tuple(msg.channel_names) != md.input_channels:
            self.get_logger().error(
                "feature window channels differ from the model's", throttle_duration_sec=5.0
            )
            valid = False
        confidence = 0.0
        if valid:
            window = self._normalised(msg, window, md)
            valid = window is not None
        if valid:
            confidence = self.monitor.window_confidence(window)  # the window is z-scored
        stage.scale = self.params.subject_mass_kg if md.output_unit == "N.m/kg" else 1.0
        stage.phase = float(msg.gait_phase)  # the windowing node's, at the window's newest frame
        for est in stage.push_window(stamp, window, valid, confidence):
            m = conversion.joint_torque_msg(
                est.stamp_ns, JointTorque.SOURCE_ESTIMATE, md.output_joints, est.torque_nm,
                valid=est.valid, subject_mass=self.params.subject_mass_kg, gait_phase=est.gait_phase,
                msg=self._msg, confidence=est.confidence,
            )
            self._pub.publish(m)
            if m.valid:
                self.inference.add(est.inference_ns)
            self.latency.add(time.time_ns() - stamp)

    def _diagnostics(self) -> None:
        if self._diag_pub is None:
            return
        values = dict(self.counts)
        if self.stage is not None:
            values.update(self.stage.counters)
        values.update({f"latency_{k}": v for k, v in self.latency.summary_ms().items()})
        values.update({f"inference_{k}": v for k, v in self.inference.summary_ms().items()})
        values["model"] = self.model_file
        values["inference_mode"] = self.params.inference_mode
        values["active"] = self._active
        values.update(self.swapper.counts)
        values["last_rejection"] = self.swapper.last_rejection
        if self.monitor is not None:
            values["input_distance"] = float(self.monitor.distance)
        # A refused model (configure keeps failing, or a swap was refused): WARN with the reason.
        level, message = (1, self.swapper.last_rejection) if self.swapper.last_rejection else (
            0, "active" if self._active else "inactive")
        self._diag_pub.publish(
            diagnostics.diagnostic_array(self, f"{self.get_name()}: torque estimator", level, message, values)
        )


def main(args=None) -> int:
    return runner.run_node(TorqueEstimator, args)


if __name__ == "__main__":
    raise SystemExit(main())
