"""``torque_command``: lifecycle node, ``gait/torque_estimate`` -> ``exo/torque_command``.

Executable: ``torque_command`` (``python -m gait_estimator.nodes.torque_command``), node name
``torque_command`` (``rclpy.lifecycle.LifecycleNode``). A thin adapter: the command stage
(``core.command_stage.CommandStage`` around ``core.command.CommandShaper``: gains, predictive
shift, low-pass, saturation, rate limit, ramps, watchdog) on the wire through
``nodes.command_port.CommandPort``, the same objects the fused ``gait_pipeline`` uses.
Parameters (``params.COMMAND``): ``joints``, ``subject_mass_kg``, ``gains``,
``phase_shift_s``, ``lowpass_hz``, ``limit_nm``, ``rate_limit_nm_s``, ``ramp_s``,
``watchdog_s``, ``control_rate_hz``, ``publish_on_estimate``, ``diagnostics_period_s``.

Output: ``JointTorque`` SOURCE_COMMAND in N.m on ``exo/torque_command``, reliable QoS depth 10,
stamped with the stamp of the estimate (hence of the IMU frame) it was computed from.
A command is published on every estimate (``publish_on_estimate``, the lowest latency) and by
a timer at ``control_rate_hz`` whenever no command went out since its previous tick, so the
controller sees at
least ``control_rate_hz``.

Safety:
- unconfigured: nothing is published; *inactive* (configured): zero torque with
  ``valid = false`` at the control rate; activating ramps in over ``ramp_s``; deactivating
  publishes a zero at once (``valid = false``; a deactivated node commands no torque);
- watchdog: no valid estimate for ``watchdog_s`` (estimator or driver dead, invalid data)
  ramps the command to zero; NaN/inf never reaches the wire (``conversion.joint_torque_msg``);
- ``exo/emergency_stop`` (``std_msgs/Bool``, reliable): ``true`` latches zero output
  immediately (the next publish, at the latest one control period later; also published at
  once); ``false`` does not clear it;
- an invalid or non-finite estimate latches a fault (``core.command``): zero until reset;
- ``exo/reset`` (``std_msgs/Empty``, reliable): clears a latched e-stop or fault; the command
  ramps in again if the node is active. (std_srvs is not available in this ROS install, so the
  reset is a topic; a lifecycle deactivate/activate cycle resets as well.)

Diagnostics on ``/diagnostics``: state, fault, latency (frame stamp -> command publish)
percentiles, counts.
"""

from __future__ import annotations

from rclpy.lifecycle import TransitionCallbackReturn

from gait_estimator.core.command_stage import COMMAND_LIVE
from gait_estimator.nodes import conversion, diagnostics, lifecycle_guard, runner, topics
from gait_estimator.nodes.command_port import CommandPort
from gait_estimator.nodes.lifecycle_base import ReleasingLifecycleNode
from gait_estimator.nodes.params import declare_params

__all__ = ["COMMAND_LIVE", "TorqueCommand", "main"]


class TorqueCommand(ReleasingLifecycleNode):
    def __init__(self, name: str = "torque_command") -> None:
        super().__init__(name)
        lifecycle_guard.guard_change_state(self)
        self.params = declare_params(self, "torque_command", live=COMMAND_LIVE, apply=self._apply_params)
        self.port: CommandPort | None = None
        self._entities: list = []

    # -- lifecycle ------------------------------------------------------------------------
    def on_configure(self, state) -> TransitionCallbackReturn:
        from diagnostic_msgs.msg import DiagnosticArray
        from gait_estimator_msgs.msg import JointTorque

        p = self.params
        entities: list = []
        try:
            self.port = CommandPort(self, p, entities)
        except Exception as exc:
            self.get_logger().error(f"configure failed: {exc}")
            self.destroy_entities(entities)
            return TransitionCallbackReturn.FAILURE
        self._diag_pub = self.create_publisher(DiagnosticArray, topics.TOPIC_DIAGNOSTICS, 10)
        self._entities = entities + [
            self._diag_pub,
            self.create_subscription(
                JointTorque, topics.TOPIC_ESTIMATE, self._on_estimate,
                topics.sensor_qos(topics.SENSOR_SUB_DEPTH),
            ),
            self.create_timer(p.diagnostics_period_s, self._diagnostics),
        ]
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        self.port.activate()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self.port.deactivate()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        if self.port is not None:
            self.port.release()
        self.destroy_entities(self._entities)
        self._entities = []
        self.port = None

    def _apply_params(self, new, changed) -> str:
        """A validated runtime set of shaper parameters: applied to the running stage at once."""
        if self.port is not None:
            with self.port.lock:
                self.port.stage.reconfigure(new)
        self.get_logger().info(f"parameters applied: {sorted(changed)}")
        return ""

    # -- data -----------------------------------------------------------------------------
    def _on_estimate(self, msg) -> None:
        port = self.port
        if port is None:
            return
        stamp, torque, _status, valid = conversion.joint_torque_arrays(msg)
        with port.lock:
            if port.stage.map(msg.joint_names, torque) is None and port.stage.active:
                self.get_logger().error(
                    f"estimate joints {list(msg.joint_names)} lack some of {list(port.stage.joints)}",
                    throttle_duration_sec=5.0,
                )
            port.submit(msg.joint_names, torque, stamp, valid, float(msg.confidence), float(msg.gait_phase))

    def _diagnostics(self) -> None:
        port = self.port
        if port is None:
            return
        values: dict = {"rejected_parameter_sets": self.runtime_params.rejected}
        with port.lock:
            level, message = port.stage.status(values)
        self._diag_pub.publish(
            diagnostics.diagnostic_array(self, f"{self.get_name()}: torque command", level, message, values)
        )


def main(args=None) -> int:
    return runner.run_node(TorqueCommand, args)


if __name__ == "__main__":
    raise SystemExit(main())
