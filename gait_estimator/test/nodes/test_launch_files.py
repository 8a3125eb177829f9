"""The launch files (issue 14).

Without the ``launch`` stack (the repository's own venv: ``launch``/``launch_ros`` are not on
PyPI) the tests check what the files start: ``nodes.launch_plan`` (executables, lifecycle nodes,
parameters, config default per ``fused``, the ``bag_player`` command line, parsed by the player's
own parser), that no node carries a namespace of its own under the pushed one, and that the
configs match their nodes in any namespace.

Where ``launch_ros`` imports (a Jazzy workspace, or the real launch stack put on PYTHONPATH: see
README "For ROS users"), the ``run_*`` tests launch the real files the way ``ros2 launch`` does
(``support/run_launch.py``, a subprocess in its own process group) and assert every lifecycle
node active, valid commands on ``exo/torque_command`` under the namespace, the parameters in
effect equal the config file, and after Ctrl-C (SIGINT to the group, then launch's own) every
process exits 0 without a traceback. launch_testing's pytest plugin does not load under pytest 9,
hence the subprocess.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest
import yaml

from gait_estimator.core.params import SCHEMAS, load_config
from gait_estimator.nodes import bag_player, launch_plan

PKG = Path(__file__).resolve().parents[2]
BAG = Path(__file__).parents[1] / "data" / "sim_bag" / "sim_walk_6s"
RUN_LAUNCH = Path(__file__).parents[1] / "support" / "run_launch.py"
DISTRIBUTED = ("torque_estimator", "torque_command")  # lifecycle nodes of the distributed pipeline


# -- without launch ------------------------------------------------------------------------------


def _executables(specs) -> list[str]:
    return [s.executable for s in specs]


def _plan(**overrides):
    kw = {"fused": False, "imu_source": "sim", "model_path": "", "config": "/c.yaml", "use_sim_time": False}
    return launch_plan.pipeline_nodes(**{**kw, **overrides})


def test_distributed_plan_and_its_manager():
    specs = _plan()
    stages = ["imu_driver", "imu_synchronizer", "windowing", *DISTRIBUTED]
    assert _executables(specs) == [*stages, "lifecycle_manager"]
    assert tuple(s.executable for s in specs if s.lifecycle) == DISTRIBUTED
    manager = specs[-1].parameters[-1]
    assert manager == {"node_names": list(DISTRIBUTED), "command_node": "torque_command"}
    for s in specs:  # the config file first, then overrides; no model override when model_path is empty
        assert s.parameters[0] == "/c.yaml" and {"use_sim_time": False} in s.parameters
        assert not any(isinstance(p, dict) and "model_path" in p for p in s.parameters)
    topics = _plan(imu_source="topics", model_path="/m.pt", use_sim_time=True)
    assert "imu_driver" not in _executables(topics)
    by_name = {s.executable: s.parameters for s in topics}
    for name in ("windowing", "torque_estimator"):
        assert {"model_path": "/m.pt"} in by_name[name]
    assert all({"use_sim_time": True} in p for p in by_name.values())


def test_fused_plan_and_config_default_per_fused(tmp_path):
    specs = _plan(fused=True, imu_source="topics", config="/f.yaml")
    assert _executables(specs) == ["gait_pipeline", "lifecycle_manager"]
    assert specs[0].lifecycle and {"imu_source": "topics"} in specs[0].parameters
    assert specs[1].parameters[-1] == {"node_names": ["gait_pipeline"], "command_node": "gait_pipeline"}
    assert launch_plan.config_file(tmp_path, "", True) == str(tmp_path / "config" / "fused.yaml")
    assert launch_plan.config_file(tmp_path, "", False) == str(tmp_path / "config" / "pipeline.yaml")
    assert launch_plan.config_file(tmp_path, "/my.yaml", True) == "/my.yaml"
    with pytest.raises(ValueError, match="imu_source"):
        _plan(imu_source="usb")
    with pytest.raises(ValueError, match="fused"):
        launch_plan.as_bool("yes", "fused")


def test_player_arguments_are_what_bag_player_parses():
    argv = launch_plan.player_arguments("/b", rate=2.0, loop=True, start_offset_s=1.5, use_sim_time=True)
    a = bag_player.build_parser().parse_args(argv)
    assert (a.bag, a.rate, a.loop, a.start_offset) == ("/b", 2.0, True, 1.5)
    assert a.restamp and a.topics_relative and a.wait_for_manager == launch_plan.PLAYER_WAIT_S
    assert a.clock_hz > 0  # /clock with sim time
    plain = bag_player.build_parser().parse_args(launch_plan.player_arguments("/b"))
    assert plain.clock_hz == 0 and not plain.loop and plain.start_offset == 0.0 and plain.restamp
    with pytest.raises(ValueError, match="rate"):
        launch_plan.player_arguments("/b", rate=0.0)


@pytest.mark.parametrize("launch", ["pipeline.launch.py", "replay.launch.py"])
def test_launch_files_push_one_namespace_and_give_none_per_node(launch):
    """``namespace=`` on a node under ``PushRosNamespace`` doubled it (``/exo1/exo1``): every node
    action here passes the empty (relative) namespace, and the file pushes the argument."""
    tree = ast.parse((PKG / "launch" / launch).read_text())
    compile(tree, launch, "exec")
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    nodes = [c for c in calls if c.func.id in ("Node", "LifecycleNode", "kind")]
    assert nodes
    for call in nodes:
        ns = [k.value for k in call.keywords if k.arg == "namespace"]
        assert len(ns) == 1 and isinstance(ns[0], ast.Constant) and ns[0].value == "", ast.unparse(call)
    pushes = [c for c in calls if c.func.id == "PushRosNamespace"]
    assert pushes and all("namespace" in ast.unparse(c) for c in pushes)


def test_player_executable_and_node_executables_are_console_scripts():
    import importlib.metadata as md

    scripts = md.entry_points(group="console_scripts")
    scripts = {e.name for e in scripts if e.value.startswith(launch_plan.PACKAGE)}
    planned = set(_executables(_plan())) | {"gait_pipeline", "bag_player"}
    assert planned <= scripts, planned - scripts
    for name in planned:
        assert (Path(sys.executable).parent / name).exists(), f"console script {name} not installed"
    assert 'executable="bag_player"' in (PKG / "launch" / "replay.launch.py").read_text()


@pytest.mark.parametrize("name", ["pipeline.yaml", "fused.yaml"])
def test_config_sections_match_their_node_in_any_namespace(name):
    """A bare ``torque_estimator:`` key only matches the root namespace: under namespace:=exo1 the
    whole file was ignored. ``/**/torque_estimator`` matches both; load_config maps it."""
    raw = yaml.safe_load((PKG / "config" / name).read_text())
    assert raw and all(str(k).startswith("/**/") for k in raw), list(raw)
    cfg = load_config(PKG / "config" / name)
    assert set(cfg) == {k[len("/**/"):] for k in raw} and set(cfg) <= set(SCHEMAS)


# -- with the real launch stack ------------------------------------------------------------------

needs_launch = pytest.mark.skipif(
    importlib.util.find_spec("launch_ros") is None,
    reason="launch_ros not importable (not on PyPI): run in a Jazzy workspace or with the launch stack "
    "on PYTHONPATH (README, For ROS users)",
)

EXPLICIT_ARGS = [
    "imu_source:=sim",
    f"model_path:={PKG / 'models' / 'default.pt'}",
    f"config:={PKG / 'config' / 'pipeline.yaml'}",
    "fused:=false",
    "namespace:=/exo3",
    "use_sim_time:=false",
]
REPLAY_ARGS = [
    f"bag:={BAG}", "use_sim_time:=true", "loop:=true", "rate:=1.5", "start_offset:=0.5", "namespace:=exo2"
]
# case: (launch file, arguments, namespace, lifecycle nodes, config in effect, processes started)
CASES = {
    "default": ("pipeline.launch.py", [], "", DISTRIBUTED, "pipeline.yaml", 6),
    "fused": ("pipeline.launch.py", ["fused:=true"], "", ("gait_pipeline",), "fused.yaml", 2),
    "namespaced": ("pipeline.launch.py", ["namespace:=exo1"], "exo1", DISTRIBUTED, "pipeline.yaml", 6),
    # every pipeline argument given explicitly, the namespace absolute
    "explicit": ("pipeline.launch.py", EXPLICIT_ARGS, "exo3", DISTRIBUTED, "pipeline.yaml", 6),
    # no driver (imu_source:=topics) + the player
    "replay_sim_time": ("replay.launch.py", REPLAY_ARGS, "exo2", DISTRIBUTED, "pipeline.yaml", 6),
}


SHOW_ARGS = """
import sys
from launch.launch_description_sources import PythonLaunchDescriptionSource
ld = PythonLaunchDescriptionSource(sys.argv[1]).try_get_launch_description_without_context()
print(" ".join(a.name for a in ld.get_launch_arguments()))
"""


@needs_launch
def test_show_args_lists_every_argument():
    """What ``ros2 launch ... --show-args`` prints: the replay file lists its own arguments and,
    through the include, every pipeline argument."""
    import subprocess

    pipeline = ["imu_source", "model_path", "fused", "config", "namespace", "use_sim_time"]
    replay = ["bag", "rate", "loop", "start_offset", *pipeline]
    for name, expected in (("pipeline", pipeline), ("replay", replay)):
        argv = [sys.executable, "-c", SHOW_ARGS, str(PKG / "launch" / f"{name}.launch.py")]
        out = subprocess.run(argv, env=_launch_env(), capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == expected


def _launch_env() -> dict:
    marker = Path(sys.prefix) / "share" / "ament_index" / "resource_index" / "packages" / "gait_estimator"
    assert marker.is_file(), f"{marker} missing: run make setup (the venv is the package's ament prefix)"
    env = dict(os.environ)
    env["AMENT_PREFIX_PATH"] = os.pathsep.join(p for p in (sys.prefix, env.get("AMENT_PREFIX_PATH")) if p)
    return env


def _parameters_in_effect(listener, namespace: str, node: str, expected: dict) -> dict:
    from rcl_interfaces.srv import GetParameters, ListParameters
    from rclpy.parameter import parameter_value_to_python

    from support.pipeline_watch import topic

    base = topic(namespace, node)
    listed = listener.call(ListParameters, f"{base}/list_parameters", ListParameters.Request()).result.names
    # An empty-list default stays an unset parameter in rclpy (no value to take a type from), and
    # get_parameters answers nothing at all when asked for one.
    names = [n for n in expected if n in set(listed) and expected[n] != []]
    res = listener.call(GetParameters, f"{base}/get_parameters", GetParameters.Request(names=names), 20.0)
    assert len(res.values) == len(names), (names, res)
    return {k: parameter_value_to_python(v) for k, v in zip(names, res.values, strict=True)}


def _process_exits(output: str) -> dict[str, str]:
    started = dict(re.findall(r"\[INFO\] \[([\w-]+)\]: process started with pid \[(\d+)\]", output))
    clean = set(re.findall(r"process has finished cleanly \[pid (\d+)\]", output))
    return {name: ("clean" if pid in clean else "NOT clean") for name, pid in started.items()}


@needs_launch
@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_run_launch_file(case, tmp_path):
    from _node_harness import Listener

    from support import pipeline_watch
    from support.process_group import ProcessGroup

    launch, args, ns, lifecycle_nodes, config, processes = CASES[case]
    group = ProcessGroup(tmp_path / "logs")
    listener = Listener(f"launch_test_{case}")
    try:
        pipeline_watch.watch(listener, ns)
        argv = [sys.executable, str(RUN_LAUNCH), "gait_estimator", launch, *args]
        group.start("launch", argv, env=_launch_env())

        def details():
            return group.log("launch")[-4000:]

        resets = pipeline_watch.wait_running(listener, ns, lifecycle_nodes, 150, details)
        print(f"{case}: {resets} exo/reset needed before valid commands")  # > 0 only under heavy load
        # The config file of the mode is in effect (namespaced too): its values, not schema defaults.
        node = lifecycle_nodes[0]
        expected = load_config(PKG / "config" / config)[node]
        given = dict(a.split(":=", 1) for a in args)
        if given.get("model_path"):  # the argument overrides the file
            expected["model_path"] = given["model_path"]
        comparable = {k: v for k, v in expected.items() if v != []}
        assert _parameters_in_effect(listener, ns, node, expected) == comparable
        group.interrupt(times=1)  # the terminal's SIGINT to the group; launch adds its own
        codes = group.wait(60)
        out = group.log("launch")
        assert codes == {"launch": 0}, out[-4000:]
        exits = _process_exits(out)
        assert len(exits) == processes and set(exits.values()) == {"clean"}, (exits, out[-4000:])
        assert "Traceback" not in out, out[-4000:]
    finally:
        listener.close()
        group.stop()


def test_realtime_launch_arguments_reach_every_data_path_node():
    rt = launch_plan.realtime_overrides("50", "true")
    assert rt == {"thread_priority": 50, "lock_memory": True}
    assert launch_plan.realtime_overrides("", "") == {}
    with pytest.raises(ValueError, match="thread_priority"):
        launch_plan.realtime_overrides("high", "")
    for fused in (False, True):
        specs = _plan(fused=fused, realtime=rt)
        for s in specs:
            given = rt in s.parameters
            assert given == (s.executable != "lifecycle_manager"), s
            if given:  # after the config file: the argument wins
                assert s.parameters.index(rt) > s.parameters.index("/c.yaml")
