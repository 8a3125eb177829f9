"""``calibrator``: the live sensor-to-segment calibration of a wearer (a lifecycle node).

Executable: ``calibrator`` (``python -m gait_estimator.nodes.calibrator``), node name
``calibrator``. Configure subscribes ``imu/<location>`` (``locations``); while active, a request
on ``gait/calibration/start`` (std_msgs/String: the wearer YAML to write; empty = the
``output_file`` parameter) runs ``core.calibration_session.CalibrationSession``: stand still for
``standing_s`` s, then walk ``strides`` strides; the rotations are computed
(``core.calibration``) and written with ``write_calibration``. Progress goes to
``gait/calibration/status`` (std_msgs/String, JSON, reliable): ``phase`` (``idle``,
``standing``, ``walking``, ``computing``, ``done``, ``failed``, ``aborted``), ``seconds`` in
the phase, ``strides``, and at the end the per-sensor ``quality``, ``flagged`` and ``path``.
A flagged sensor ends ``failed`` (the file is still written, with its flags, so the nodes refuse
that sensor); data that cannot be calibrated ends ``failed`` without a file. Deactivate aborts a
running calibration. Give the file to ``windowing``/``gait_pipeline`` as ``calibration_file``.
(std_srvs is not among the installed interfaces, so the request is a topic, not a service.)
"""

from __future__ import annotations

import json

from rclpy.lifecycle import TransitionCallbackReturn

from gait_estimator.nodes import conversion, lifecycle_guard, runner, topics
from gait_estimator.nodes.lifecycle_base import ReleasingLifecycleNode
from gait_estimator.nodes.params import declare_params

TOPIC_START = "gait/calibration/start"
TOPIC_STATUS = "gait/calibration/status"


class CalibratorNode(ReleasingLifecycleNode):
    def __init__(self, name: str = "calibrator") -> None:
        super().__init__(name)
        lifecycle_guard.guard_change_state(self)
        self.params = declare_params(self, "calibrator")
        self._entities: list = []
        self._status_pub = None
        self._active = False
        self.session = None
        self.path = ""

    # -- lifecycle ------------------------------------------------------------------------
    def on_configure(self, state) -> TransitionCallbackReturn:
        from sensor_msgs.msg import Imu
        from std_msgs.msg import String

        from gait_estimator.core.calibration_session import stride_location

        p = self.params
        try:
            stride_location(p.locations)
        except Exception as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        rel = topics.command_qos()
        self._status_pub = self.create_publisher(String, TOPIC_STATUS, rel)
        self._entities = [
            self._status_pub,
            self.create_subscription(String, TOPIC_START, self._on_start, rel),
            self.create_timer(0.5, self._publish_status),
        ] + [
            self.create_subscription(
                Imu,
                topics.TOPIC_IMU.format(location=loc),
                lambda msg, loc=loc: self._on_sample(loc, msg),
                topics.sensor_qos(topics.SENSOR_SUB_DEPTH),
            )
            for loc in p.locations
        ]
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        self._active = True
        self._send({"phase": "idle"})
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self._active = False
        self._abort("deactivated")
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        self._abort("shut down")
        self.destroy_entities(self._entities)
        self._entities, self._status_pub, self._active = [], None, False

    # -- routine --------------------------------------------------------------------------
    def _on_start(self, msg) -> None:
        from gait_estimator.core.calibration_session import CalibrationSession

        path = msg.data.strip() or self.params.output_file
        if not self._active:
            self._send({"phase": "failed", "message": "calibrator is not active (activate it first)"})
            return
        if not path:
            self._send({"phase": "failed", "message": "no output path: send one or set output_file"})
            return
        self._abort("restarted by a new request")
        p = self.params
        self.path = path
        self.session = CalibrationSession(
            p.locations, p.standing_s, p.strides, p.max_walk_s, p.min_quality, p.wearer
        )
        self.get_logger().info(f"calibration started -> {path}: stand still {p.standing_s} s, then walk")
        self._publish_status()

    def _on_sample(self, location: str, msg) -> None:
        s = self.session
        if s is None or not self._active:
            return
        stamp, acc, gyro, _ = conversion.imu_arrays(msg)
        if not s.push(location, stamp, acc, gyro):
            return
        self._publish_status()  # the phase changed
        if s.phase == "computing":
            self._finish()
        elif s.phase == "failed":
            self.session = None

    def _finish(self) -> None:
        from gait_estimator.core.calibration import write_calibration
        from gait_estimator.errors import CalibrationError

        s, self.session = self.session, None
        try:
            result = s.compute()
        except CalibrationError:
            self._send({**s.status(), "path": ""})
            return
        try:
            write_calibration(result, self.path)
        except OSError as exc:
            s.fail(f"cannot write {self.path}: {exc.strerror or exc}")
            self._send({**s.status(), "path": ""})
            return
        self.get_logger().info(f"calibration {s.phase}: {self.path} {s.status().get('quality')}")
        self._send({**s.status(), "path": self.path})

    def _abort(self, why: str) -> None:
        if self.session is not None:
            self.session = None
            self._send({"phase": "aborted", "message": why})

    def _publish_status(self) -> None:
        if self.session is not None:
            self._send(self.session.status())

    def _send(self, status: dict) -> None:
        from std_msgs.msg import String

        if self._status_pub is not None:
            self._status_pub.publish(String(data=json.dumps(status)))


def main(args=None) -> int:
    return runner.run_node(CalibratorNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
