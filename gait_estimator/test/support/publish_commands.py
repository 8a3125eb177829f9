"""Child process for the sentinel test: a live command publisher (the command nodes' QoS, their
liveliness lease) sending valid non-zero commands every 5 ms until killed."""

from __future__ import annotations

import time

import rclpy

from gait_estimator.nodes import conversion, topics


def main() -> None:
    from gait_estimator_msgs.msg import JointTorque

    rclpy.init()
    node = rclpy.create_node("live_command_publisher")
    pub = node.create_publisher(JointTorque, topics.TOPIC_COMMAND, topics.command_publisher_qos())
    joints = ["hip_flexion_r", "knee_angle_r", "ankle_angle_r"]
    print("ready", flush=True)
    torque = [14.8, -3.0, 1.0]
    while True:  # until the test kills it (SIGKILL: no shutdown path to run)
        msg = conversion.joint_torque_msg(time.time_ns(), JointTorque.SOURCE_COMMAND, joints, torque)
        pub.publish(msg)
        time.sleep(0.005)

if __name__ == "__main__":
    main()
