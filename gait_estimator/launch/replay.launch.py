"""A rosbag2 recording through the pipeline (ROS 2 Jazzy launch_ros API).

    ros2 launch gait_estimator replay.launch.py bag:=/path/to/bag rate:=1.0 [fused:=true]

``bag_player`` (gait_estimator.replay, owned by the replay module) publishes the bag's
``imu/<location>`` streams (and ``/clock`` when ``use_sim_time``); the pipeline of
``pipeline.launch.py`` runs with ``imu_source:=topics`` (no driver), so estimates and commands
can be compared with the recorded reference (``gait-estimator validate``).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "gait_estimator"


def generate_launch_description():
    share = FindPackageShare(PACKAGE)
    bag = LaunchConfiguration("bag")
    rate = LaunchConfiguration("rate")
    use_sim_time = LaunchConfiguration("use_sim_time")
    args = [
        DeclareLaunchArgument("bag", description="rosbag2 directory (mcap or sqlite3)"),
        DeclareLaunchArgument("rate", default_value="1.0", description="playback speed factor"),
        DeclareLaunchArgument("model_path", default_value="", description="model file; empty = default"),
        DeclareLaunchArgument(
            "config",
            default_value=PathJoinSubstitution([share, "config", "pipeline.yaml"]),
            description="parameter file",
        ),
        DeclareLaunchArgument(
            "fused",
            default_value="false",
            choices=["true", "false"],
            description="fused single-process pipeline",
        ),
        DeclareLaunchArgument("namespace", default_value="", description="namespace"),
        DeclareLaunchArgument(
            "use_sim_time",
            default_value="false",
            choices=["true", "false"],
            description="publish and follow /clock from the bag",
        ),
    ]
    # bag_player takes its settings on the command line: bag_player BAG --rate R
    player = Node(
        package=PACKAGE,
        executable="bag_player",
        name="bag_player",
        output="screen",
        namespace=LaunchConfiguration("namespace"),
        arguments=[bag, "--rate", rate],
    )
    pipeline = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "pipeline.launch.py"])),
        launch_arguments={
            "imu_source": "topics",
            "model_path": LaunchConfiguration("model_path"),
            "config": LaunchConfiguration("config"),
            "fused": LaunchConfiguration("fused"),
            "namespace": LaunchConfiguration("namespace"),
            "use_sim_time": use_sim_time,
        }.items(),
    )
    return LaunchDescription(args + [player, pipeline])
