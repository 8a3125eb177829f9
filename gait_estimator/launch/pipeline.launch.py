"""The gait_estimator pipeline (ROS 2 Jazzy launch_ros API).

    ros2 launch gait_estimator pipeline.launch.py                       # distributed, sim IMUs
    ros2 launch gait_estimator pipeline.launch.py fused:=true           # one process
    ros2 launch gait_estimator pipeline.launch.py imu_source:=serial \
        config:=/path/to/my.yaml model_path:=/path/to/model.pt namespace:=exo1

Arguments (``--show-args``): ``imu_source`` (sim | file | serial | topics: the driver backend;
``topics`` starts no driver), ``model_path`` (empty = the config file's, else the installed
default model), ``config`` (parameter file; empty = ``config/pipeline.yaml``, or
``config/fused.yaml`` with ``fused:=true``), ``fused``, ``namespace`` (pushed around every
node: nodes, topics and services all move under it), ``use_sim_time``, ``thread_priority`` and
``lock_memory`` (real-time scheduling of every data-path process; empty = the config file's).
The lifecycle nodes are ``LifecycleNode`` actions; the ``lifecycle_manager`` configures and
activates them in order. Which processes start with which parameters is
``gait_estimator.nodes.launch_plan`` (plain data, tested without ``launch``). Machines without
the ``ros2`` CLI use ``gait-estimator run --config ...`` (same nodes, same YAML).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node, PushRosNamespace
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from gait_estimator.nodes import launch_plan

PACKAGE = launch_plan.PACKAGE


def _typed(parameters):
    """String values as ParameterValue(str): launch_ros would otherwise parse '' or '1.0' as YAML."""
    out = []
    for p in parameters:
        if isinstance(p, dict):
            p = {k: ParameterValue(v, value_type=str) if isinstance(v, str) else v for k, v in p.items()}
        out.append(p)
    return out


def _nodes(context):
    arg = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    fused = launch_plan.as_bool(arg("fused"), "fused")
    share = FindPackageShare(PACKAGE).perform(context)
    specs = launch_plan.pipeline_nodes(
        fused=fused,
        imu_source=arg("imu_source"),
        model_path=arg("model_path"),
        config=launch_plan.config_file(share, arg("config"), fused),
        use_sim_time=launch_plan.as_bool(arg("use_sim_time"), "use_sim_time"),
        realtime=launch_plan.realtime_overrides(arg("thread_priority"), arg("lock_memory")),
    )
    actions = []
    for spec in specs:
        # namespace="": relative, so PushRosNamespace alone places the node (no /exo1/exo1).
        kind = LifecycleNode if spec.lifecycle else Node
        actions.append(
            kind(
                package=PACKAGE,
                executable=spec.executable,
                name=spec.executable,
                namespace="",
                output="screen",
                parameters=_typed(spec.parameters),
            )
        )
    return actions


def generate_launch_description():
    args = [
        DeclareLaunchArgument(
            "imu_source",
            default_value="sim",
            choices=list(launch_plan.IMU_SOURCES),
            description="IMU driver backend (topics: no driver, IMUs come from elsewhere)",
        ),
        DeclareLaunchArgument(
            "model_path",
            default_value="",
            description="TorchScript model file; empty = the config file's, else the installed default",
        ),
        DeclareLaunchArgument(
            "fused",
            default_value="false",
            choices=["true", "false"],
            description="run every stage in one process (gait_pipeline)",
        ),
        DeclareLaunchArgument(
            "config",
            default_value="",
            description="parameter file (ROS 2 params format) for every node; empty = the package's "
            "config/pipeline.yaml, or config/fused.yaml with fused:=true",
        ),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of every node and topic"),
        DeclareLaunchArgument(
            "thread_priority",
            default_value="",
            description="real-time priority of every data-path process: 0 = normal scheduling, 1-99 = "
            "SCHED_FIFO (needs an rtprio limit, README); empty = the config file's",
        ),
        DeclareLaunchArgument(
            "lock_memory",
            default_value="",
            choices=["", "true", "false"],
            description="mlockall in every data-path process; empty = the config file's",
        ),
        DeclareLaunchArgument(
            "use_sim_time",
            default_value="false",
            choices=["true", "false"],
            description="follow /clock (bag replay)",
        ),
    ]
    group = GroupAction([PushRosNamespace(LaunchConfiguration("namespace")), OpaqueFunction(function=_nodes)])
    return LaunchDescription([*args, group])
