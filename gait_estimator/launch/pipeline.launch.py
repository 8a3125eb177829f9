"""The gait_estimator pipeline (ROS 2 Jazzy launch_ros API).

    ros2 launch gait_estimator pipeline.launch.py                       # distributed, sim IMUs
    ros2 launch gait_estimator pipeline.launch.py fused:=true           # one process
    ros2 launch gait_estimator pipeline.launch.py imu_source:=serial \
        config:=/path/to/my.yaml model_path:=/path/to/model.pt namespace:=exo1

Arguments: ``imu_source`` (sim | file | serial | topics: the driver backend; ``topics`` starts
no driver), ``model_path`` (empty = the installed default model), ``config`` (parameter file,
default ``config/pipeline.yaml``; ``config/fused.yaml`` for the fused mode), ``fused``,
``namespace``, ``use_sim_time``. The lifecycle nodes are ``LifecycleNode`` actions; the
``lifecycle_manager`` configures and activates them in order. Machines without the ``ros2``
CLI use ``gait-estimator run --config ...`` (same nodes, same YAML).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import LifecycleNode, Node, PushRosNamespace
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "gait_estimator"


def generate_launch_description():
    imu_source = LaunchConfiguration("imu_source")
    model_path = LaunchConfiguration("model_path")
    config = LaunchConfiguration("config")
    fused = LaunchConfiguration("fused")
    namespace = LaunchConfiguration("namespace")
    use_sim_time = ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)
    model = {"model_path": ParameterValue(model_path, value_type=str)}
    sim_time = {"use_sim_time": use_sim_time}

    args = [
        DeclareLaunchArgument(
            "imu_source",
            default_value="sim",
            choices=["sim", "file", "serial", "topics"],
            description="IMU driver backend (topics: no driver, IMUs come from elsewhere)",
        ),
        DeclareLaunchArgument(
            "model_path",
            default_value="",
            description="TorchScript model file; empty = the installed default model",
        ),
        DeclareLaunchArgument(
            "config",
            default_value=PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "pipeline.yaml"]),
            description="parameter file (ROS 2 params format) for every node",
        ),
        DeclareLaunchArgument(
            "fused",
            default_value="false",
            choices=["true", "false"],
            description="run every stage in one process (gait_pipeline)",
        ),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of every node and topic"),
        DeclareLaunchArgument(
            "use_sim_time",
            default_value="false",
            choices=["true", "false"],
            description="use /clock (bag replay)",
        ),
    ]

    driver_needed = PythonExpression(["'", imu_source, "' != 'topics'"])
    distributed = GroupAction(
        condition=UnlessCondition(fused),
        actions=[
            Node(
                package=PACKAGE,
                executable="imu_driver",
                name="imu_driver",
                output="screen",
                condition=IfCondition(driver_needed),
                parameters=[config, {"source": imu_source}, sim_time],
            ),
            Node(
                package=PACKAGE,
                executable="imu_synchronizer",
                name="imu_synchronizer",
                output="screen",
                parameters=[config, sim_time],
            ),
            Node(
                package=PACKAGE,
                executable="windowing",
                name="windowing",
                output="screen",
                parameters=[config, model, sim_time],
            ),
            LifecycleNode(
                package=PACKAGE,
                executable="torque_estimator",
                name="torque_estimator",
                namespace=namespace,
                output="screen",
                parameters=[config, model, sim_time],
            ),
            LifecycleNode(
                package=PACKAGE,
                executable="torque_command",
                name="torque_command",
                namespace=namespace,
                output="screen",
                parameters=[config, sim_time],
            ),
            Node(
                package=PACKAGE,
                executable="lifecycle_manager",
                name="lifecycle_manager",
                output="screen",
                parameters=[
                    config,
                    sim_time,
                    {"node_names": ["torque_estimator", "torque_command"], "command_node": "torque_command"},
                ],
            ),
        ],
    )
    fused_group = GroupAction(
        condition=IfCondition(fused),
        actions=[
            LifecycleNode(
                package=PACKAGE,
                executable="gait_pipeline",
                name="gait_pipeline",
                namespace=namespace,
                output="screen",
                parameters=[config, model, sim_time, {"imu_source": imu_source}],
            ),
            Node(
                package=PACKAGE,
                executable="lifecycle_manager",
                name="lifecycle_manager",
                output="screen",
                parameters=[
                    config,
                    sim_time,
                    {"node_names": ["gait_pipeline"], "command_node": "gait_pipeline"},
                ],
            ),
        ],
    )
    return LaunchDescription(args + [GroupAction([PushRosNamespace(namespace), distributed, fused_group])])
