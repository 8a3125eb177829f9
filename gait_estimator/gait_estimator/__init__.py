"""gait_estimator: real-time joint torque estimation from wearable IMUs.

Layers (dependencies point one way): nodes -> core/runtime/sim/data/train/replay; only
``gait_estimator.nodes`` imports rclpy.
"""

__version__ = "0.1.0"
