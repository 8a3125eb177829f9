"""A rosbag2 recording through the pipeline (ROS 2 Jazzy launch_ros API).

    ros2 launch gait_estimator replay.launch.py bag:=/path/to/bag [rate:=1.0] [loop:=true] \
        [start_offset:=2.0] [use_sim_time:=true] [fused:=true] [namespace:=exo1]

The pipeline of ``pipeline.launch.py`` runs with ``imu_source:=topics`` (no driver); every one of
its arguments (``fused``, ``config``, ``model_path``, ``namespace``, ``use_sim_time``) applies here
too. ``bag_player`` then publishes the bag's streams under the same namespace, restamped onto
this host's clock, once ``lifecycle_manager`` reports the lifecycle nodes active, and ``/clock``
when ``use_sim_time:=true`` (``launch_plan.player_arguments`` says why each flag). Estimates and
commands can be compared with the recorded reference (``gait-estimator validate``).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node, PushRosNamespace
from launch_ros.substitutions import FindPackageShare

from gait_estimator.nodes import launch_plan


def _player(context):
    arg = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    use_sim_time = launch_plan.as_bool(arg("use_sim_time"), "use_sim_time")
    return [
        Node(
            package=launch_plan.PACKAGE,
            executable="bag_player",
            name="bag_player",
            namespace="",  # relative: the pushed namespace below applies (none pushed: root)
            output="screen",
            arguments=launch_plan.player_arguments(
                arg("bag"),
                rate=float(arg("rate")),
                loop=launch_plan.as_bool(arg("loop"), "loop"),
                start_offset_s=float(arg("start_offset")),
                use_sim_time=use_sim_time,
            ),
            parameters=[{"use_sim_time": use_sim_time}],
        )
    ]


def generate_launch_description():
    share = FindPackageShare(launch_plan.PACKAGE)
    args = [
        DeclareLaunchArgument("bag", description="rosbag2 directory (mcap or sqlite3)"),
        DeclareLaunchArgument("rate", default_value="1.0", description="playback speed factor (> 0)"),
        DeclareLaunchArgument(
            "loop", default_value="false", choices=["true", "false"], description="replay the bag endlessly"
        ),
        DeclareLaunchArgument(
            "start_offset", default_value="0.0", description="skip the first S seconds of the bag"
        ),
    ]
    # Included first: its arguments (namespace, use_sim_time, ...) and their defaults are then set
    # when the player below is evaluated (launch configurations of an include are not scoped).
    pipeline = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "pipeline.launch.py"])),
        launch_arguments={"imu_source": "topics"}.items(),
    )
    namespace = PushRosNamespace(LaunchConfiguration("namespace"))
    player = GroupAction([namespace, OpaqueFunction(function=_player)])
    return LaunchDescription([*args, pipeline, player])
