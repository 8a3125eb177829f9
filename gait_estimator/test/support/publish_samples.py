"""Child process for the DDS test: publishes every sample message until terminated."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rclpy
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy

from support.msg_samples import all_samples, topic_for


def main() -> None:
    rclpy.init()
    node = rclpy.create_node("msg_sample_publisher")
    qos = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE,
                     durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
    samples = all_samples()
    pubs = {name: node.create_publisher(type(msg), topic_for(name), qos) for name, msg in samples.items()}
    print("ready", flush=True)
    try:
        while rclpy.ok():
            for name, msg in samples.items():
                pubs[name].publish(msg)
            rclpy.spin_once(node, timeout_sec=0.1)
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
