"""``torque_estimator``: lifecycle node, ``gait/features`` -> ``gait/torque_estimate``.

Executable: ``torque_estimator`` (``python -m gait_estimator.nodes.torque_estimator``), node
name ``torque_estimator`` (``rclpy.lifecycle.LifecycleNode``). Parameters
(``core.params.ESTIMATOR``): ``model_path`` (empty = default model), ``subject_mass_kg``,
``threads``, ``inference_mode``, ``diagnostics_period_s``.

``inference_mode`` (read at configure): ``window`` runs each received window through the model
(``predict_window``). ``streaming`` (needs a model whose metadata says streaming true, else
configure fails naming the parameter) steps the model only on the rows that are new since the
previous window (one row per window at stride 1), O(1) per sample, and equals window mode
exactly for a model whose receptive field fits the window (TCN; float32 rounding). Continuity is
checked on the window stamps: the first window, a window after an invalid one, a stamp step that
is not a whole number of frame periods in [1, window - 1], or a swapped model restarts the
stream, and until the restarted stream has seen a whole window of rows the estimate comes from
``predict_window`` (so every published estimate equals window mode's; the stream warms up
beside it). Missed windows (dropped messages) are caught up from the rows the next window still
holds. For a recurrent model the carried state remembers more than the window (see
``params.py``).

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

Setting ``model_path`` at run time (``ros2 param set``) swaps the model atomically: the
parameter callback checks the new file's metadata at once (missing file, bad metadata or
another input layout - channels, window, rate - than the windowing node produces: the set is
rejected with the reason); a worker thread then loads and validates the model while estimates
keep flowing with the old one, and swaps it in with one reference assignment. If the full load
fails, the old model keeps running and ``model_path`` is set back to its file (logged).

Diagnostics (``/diagnostics``): end-to-end latency (frame stamp -> estimate publish) and
inference time percentiles, counts, the model file.

``change_state`` requests naming an unavailable transition are answered ``success=False``
(guard for ros2/rclpy#1209, see ``common.guard_change_state``).
"""

from __future__ import annotations

import time

import numpy as np
from rclpy.lifecycle import TransitionCallbackReturn

from gait_estimator.nodes import common
from gait_estimator.nodes.lifecycle_base import ReleasingLifecycleNode
from gait_estimator.nodes.model_swap import ModelSwapper, load_checked_runtime
from gait_estimator.nodes.params import declare_params, resolve_model_path


class TorqueEstimator(ReleasingLifecycleNode):
    def __init__(self, name: str = "torque_estimator") -> None:
        super().__init__(name)
        common.guard_change_state(self)
        self.params = declare_params(
            self, "torque_estimator", live=("model_path", "subject_mass_kg"), apply=self._apply_params
        )
        self.runtime = None
        self.model_file = ""
        self._pub = self._sub = self._timer = self._diag_pub = None
        self._active = False
        self._started = False
        self.latency = common.LatencyStats()
        self.inference = common.LatencyStats()
        self.counts = {
            "windows": 0,
            "estimates": 0,
            "invalid": 0,
            "stream_restarts": 0,
        }
        self._stream_runtime = None  # the runtime whose stream state follows the windows
        self._stream_stamp: int | None = None  # newest stamp stepped into that stream
        self._stream_rows = 0  # rows stepped since the stream's restart
        self.swapper = ModelSwapper(
            self, lambda: self.runtime, self._install, self.params["threads"], self.params["inference_mode"]
        )
        self.monitor = None  # core.confidence.ConfidenceMonitor of the running model

    # -- lifecycle ------------------------------------------------------------------------
    def on_configure(self, state) -> TransitionCallbackReturn:
        from diagnostic_msgs.msg import DiagnosticArray
        from gait_estimator_msgs.msg import FeatureWindow, JointTorque

        path = resolve_model_path(self.get_parameter("model_path").value)
        p = self.params
        try:
            runtime = load_checked_runtime(path, p["threads"], self.get_name(), p["inference_mode"])
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
            f"{self.params['inference_mode']} mode)"
        )
        qos = common.sensor_qos()
        est_hz = common.estimate_rate_hz(md, self.params["inference_mode"])  # rate/stamp diagnostics
        self._pub = common.monitor_output(
            self, self.create_lifecycle_publisher(JointTorque, common.TOPIC_ESTIMATE, qos), est_hz, est_hz,
            active=lambda: self._active)
        self._sub = self.create_subscription(
            FeatureWindow, common.TOPIC_FEATURES, self._on_window, common.sensor_qos(common.SENSOR_SUB_DEPTH)
        )
        self._diag_pub = self.create_publisher(DiagnosticArray, common.TOPIC_DIAGNOSTICS, 10)
        self._timer = self.create_timer(self.params["diagnostics_period_s"], self._diagnostics)
        self._msg = JointTorque()
        common.freeze_heap()
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        self._started = False
        self._stream_stamp = None
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
        self.runtime = None

    # -- parameters: atomic model swap (nodes/model_swap.py) --------------------------------
    def _apply_params(self, new, changed) -> str:
        if "model_path" in changed:
            return self.swapper.request(new["model_path"])
        return ""  # subject_mass_kg: read per window from self.params

    def _install(self, runtime, path) -> None:
        from gait_estimator.core.confidence import ConfidenceMonitor

        monitor = ConfidenceMonitor(runtime.metadata)
        self.model_file = str(path)
        self.monitor = monitor
        self.runtime = runtime  # atomic: the window callback reads self.runtime once per window

    # -- data -----------------------------------------------------------------------------
    def _on_window(self, msg) -> None:
        from gait_estimator_msgs.msg import JointTorque

        runtime = self.runtime
        if not self._active or runtime is None:
            return
        self.counts["windows"] += 1
        md = runtime.metadata
        window, stamp, valid = common.msg_to_window(msg)
        inf_ns = 0
        if valid and tuple(msg.channel_names) != md.input_channels:
            self.get_logger().error(
                "feature window channels differ from the model's", throttle_duration_sec=5.0
            )
            valid = False
        y = None
        confidence = 0.0
        if valid:
            confidence = self.monitor.window_confidence(window)  # the window is z-scored (normalized)
            t0 = time.perf_counter_ns()
            if self.params["inference_mode"] == "streaming":
                y = self._stream(runtime, window, stamp)
            else:
                y = runtime.predict_window(window)
            inf_ns = time.perf_counter_ns() - t0
            if md.output_unit == "N.m/kg":
                y = y * self.params["subject_mass_kg"]
            valid = bool(np.isfinite(y).all())
        if not valid:
            self._stream_stamp = None  # the next valid window restarts the stream
        # As core.pipeline.EstimatorPipeline: nothing before the first valid estimate (start-up),
        # then an invalid (zero) estimate for every invalid window.
        if not valid:
            if not self._started:
                return
            y = np.zeros(len(md.output_joints))
        self._started = True
        m = common.joint_torque_msg(
            stamp,
            JointTorque.SOURCE_ESTIMATE,
            md.output_joints,
            y,
            valid=valid,
            subject_mass=self.params["subject_mass_kg"],
            msg=self._msg,
            confidence=confidence,
        )
        self._pub.publish(m)
        self.counts["estimates"] += 1
        if not m.valid:
            self.counts["invalid"] += 1
        else:
            self.inference.add(inf_ns)
        self.latency.add(time.time_ns() - stamp)

    def _stream(self, runtime, window: np.ndarray, stamp: int) -> np.ndarray:
        """Streaming inference on a valid window: step the rows new since the previous window
        (see the module docstring); equals ``predict_window(window)`` once warmed up."""
        t = runtime.metadata.window
        period = 1e9 / runtime.metadata.sample_rate_hz
        new = 0
        if runtime is self._stream_runtime and self._stream_stamp is not None:
            dt = stamp - self._stream_stamp
            k = round(dt / period)
            if 1 <= k < t and abs(dt - k * period) <= 0.25 * period:
                new = k
        if new == 0:  # not a continuation of the stream: restart it
            runtime.reset_stream()
            self._stream_runtime = runtime
            self._stream_rows = 0
            self.counts["stream_restarts"] += 1
            new = 1
        for row in window[t - new :]:
            y = runtime.step(row)
        self._stream_rows += new
        self._stream_stamp = stamp
        if self._stream_rows < t:  # warming up: the stream has not seen a whole window yet
            y = runtime.predict_window(window)
        return y

    def _diagnostics(self) -> None:
        if self._diag_pub is None:
            return
        values = dict(self.counts)
        values.update({f"latency_{k}": v for k, v in self.latency.summary_ms().items()})
        values.update({f"inference_{k}": v for k, v in self.inference.summary_ms().items()})
        values["model"] = self.model_file
        values["inference_mode"] = self.params["inference_mode"]
        values["active"] = self._active
        values.update(self.swapper.counts)
        values["last_rejection"] = self.swapper.last_rejection
        if self.monitor is not None:
            values["input_distance"] = float(self.monitor.distance)
        # A refused model (configure keeps failing, or a swap was refused): WARN with the reason.
        level, message = (1, self.swapper.last_rejection) if self.swapper.last_rejection else (
            0, "active" if self._active else "inactive")
        self._diag_pub.publish(
            common.diagnostic_array(self, f"{self.get_name()}: torque estimator", level, message, values)
        )


def main(args=None) -> int:
    return common.run_node(TorqueEstimator, args)


if __name__ == "__main__":
    raise SystemExit(main())
