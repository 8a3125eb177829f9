"""ROS-free real-time core: samples, synchronizer, features, windowing, command shaping, metrics,
and the pipeline that composes them (``core.pipeline.EstimatorPipeline``). Never imports rclpy."""
