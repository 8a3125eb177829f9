"""``windowing``: ``gait/imu_frame`` -> ``gait/features`` (``FeatureWindow``), layout from the model.

Executable: ``windowing`` (``python -m gait_estimator.nodes.windowing``), node name ``windowing``.
Reads only the metadata of ``model_path`` (empty = the default model; no torch import): channel
order, window length, stride, normalisation. Each frame becomes one feature row
(``core.features.FeatureExtractor``) in a ``core.windowing.WindowBuffer``; every ``stride`` rows a
normalised ``[window x channels]`` float32 window is published (SensorDataQoS), stamped with its
newest frame and carrying the model's ``normalization_id`` (the estimator refuses or renormalises
windows of another normalisation); a frame with an invalid sensor publishes a ``valid = false``
window at once (the rule of ``core.pipeline.EstimatorPipeline``, window mode). ``valid`` is false
if any row of the window came from an invalid sensor or was not finite. Frames at another rate
than the model's are rejected (counted, logged). ``calibration_file``: each frame is turned into
the segment frames right after it arrives (``core.calibration.apply_to_frame``; a flagged sensor's
rows are invalid)."""

from __future__ import annotations

import math

from rclpy.node import Node

from gait_estimator.core.calibration import apply_to_frame
from gait_estimator.core.gait_phase import make_gait_phase
from gait_estimator.nodes import conversion, diagnostics, model_files, runner, topics
from gait_estimator.nodes.gait_port import GaitPort
from gait_estimator.nodes.params import declare_params, read_calibration_param, resolve_model_path


class WindowingNode(Node):
    def __init__(self, name: str = "windowing") -> None:
        super().__init__(name)
        from diagnostic_msgs.msg import DiagnosticArray
        from gait_estimator_msgs.msg import FeatureWindow, ImuFrame

        from gait_estimator.core.features import FeatureExtractor
        from gait_estimator.core.windowing import WindowBuffer

        p = self.params = declare_params(self, "windowing")
        path = resolve_model_path(p.model_path)
        # sensor -> segment frames before features, as core.pipeline (CalibrationError: exit 2)
        self.calibration = read_calibration_param(p.calibration_file)
        self.metadata = md = model_files.read_model_metadata(path)
        self.extractor = FeatureExtractor(md)
        self.buffer = WindowBuffer(md)
        qos = topics.sensor_qos()
        self.pub = self.create_publisher(FeatureWindow, topics.TOPIC_FEATURES, qos)
        self.create_subscription(
            ImuFrame, topics.TOPIC_FRAME, self._on_frame, topics.sensor_qos(topics.SENSOR_SUB_DEPTH)
        )
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.TOPIC_DIAGNOSTICS, 10)
        self.create_timer(1.0, self._diagnostics)
        self.counts = {
            "frames": 0, "windows": 0, "invalid_windows": 0, "wrong_rate": 0, "mismatch": 0, "malformed": 0
        }
        self.error = ""
        self._msg = FeatureWindow()
        self._gait_port = GaitPort(self, [])  # gait/state, gait/events
        self._gait = None  # core.gait_phase estimator, made for the locations of the first frame
        self._phase = math.nan
        self.get_logger().info(
            f"model {path}: {len(md.input_channels)} channels, window {md.window}, "
            f"stride {md.stride}, {md.sample_rate_hz} Hz"
        )

    def _on_frame(self, msg) -> None:
        from gait_estimator.errors import ModelMismatchError

        md, c = self.metadata, self.counts
        c["frames"] += 1
        if abs(msg.rate_hz - md.sample_rate_hz) > 1e-6 * md.sample_rate_hz:
            c["wrong_rate"] += 1
            self.error = f"frames at {msg.rate_hz} Hz, the model needs {md.sample_rate_hz} Hz"
            self.get_logger().error(self.error, throttle_duration_sec=5.0)
            return
        try:
            frame = conversion.msg_to_frame(msg)
        except ValueError as exc:  # a malformed frame from a broken/hostile publisher: dropped, counted
            c["malformed"] += 1
            self.error = str(exc)
            self.get_logger().error(self.error, throttle_duration_sec=5.0)
            return
        if self.calibration is not None:  # a flagged/missing sensor becomes invalid rows
            frame = apply_to_frame(self.calibration, frame)
        self._push_gait(frame)
        try:
            row, valid = self.extractor.row(frame)
        except ModelMismatchError as exc:
            c["mismatch"] += 1
            self.error = str(exc)
            self.get_logger().error(self.error, throttle_duration_sec=5.0)
            return
        # Same rule as core.pipeline.EstimatorPipeline (window mode), so online == offline:
        # an invalid row yields an invalid window at once; otherwise a window every stride rows.
        ready = self.buffer.push(row, frame.stamp_ns, valid)
        if valid and not ready:
            return
        ok = valid and self.buffer.valid
        c["windows"] += 1
        c["invalid_windows"] += 0 if ok else 1
        conversion.window_to_msg(
            self.buffer.window(),
            frame.stamp_ns,
            md.input_channels,
            md.sample_rate_hz,
            ok,
            True,
            msg=self._msg,
            normalization_id=md.normalization_id,  # model identity: the estimator checks it
            gait_phase=self._phase,
        )
        self.pub.publish(self._msg)

    def _push_gait(self, frame) -> None:
        """Gait phase and events from the same (calibrated) frames as the features."""
        if self._gait is None or self._gait.locations != frame.locations:
            self._gait = make_gait_phase(self.metadata.sample_rate_hz, frame.locations)
            if self._gait is None:
                return
        state = self._gait.push(frame)
        self._phase = state.phase[0]
        self._gait_port.publish(state)

    def _diagnostics(self) -> None:
        level = 2 if self.error else 0
        self.diag_pub.publish(
            diagnostics.diagnostic_array(
                self, f"{self.get_name()}: windowing", level, self.error or "ok",
                {**self.counts, **self._gait_port.counts},
            )
        )


def main(args=None) -> int:
    return runner.run_node(WindowingNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
