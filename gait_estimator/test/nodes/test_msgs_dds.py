"""Each custom message crosses real DDS between two processes with every field intact."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rclpy
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy

from support.msg_samples import all_samples, topic_for

pytestmark = pytest.mark.ros
PUBLISHER = Path(__file__).parents[1] / "support" / "publish_samples.py"


@pytest.fixture
def publisher_process():
    proc = subprocess.Popen([sys.executable, str(PUBLISHER)], stdout=subprocess.PIPE, text=True,
                            env=os.environ.copy())
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_every_custom_message_crosses_dds_intact(publisher_process):
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    expected = all_samples()
    received: dict[str, object] = {}
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("msg_sample_subscriber", context=context)
        qos = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE,
                         durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
        for name, msg in expected.items():
            node.create_subscription(type(msg), topic_for(name),
                                     lambda m, n=name: received.setdefault(n, m), qos)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        deadline = time.monotonic() + 30.0
        while len(received) < len(expected) and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    assert sorted(received) == sorted(expected), f"received only {sorted(received)} within 30 s"
    for name, msg in expected.items():
        assert received[name] == msg, f"{name} changed on the wire: {received[name]} != {msg}"
    # Spot-check values, not just equality of two possibly-empty objects.
    assert list(received["JointTorque"].torque) == [12.5, -30.25, -101.0]
    assert list(received["ImuFrame"].valid) == [True, False, True]
    assert received["ImuFrame"].imus[2].linear_acceleration.z == 9.0
    assert list(received["FeatureWindow"].data)[:3] == [-1.0, -0.5, 0.0]
