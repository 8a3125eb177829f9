"""What the launch files start, as plain data (no ``launch`` import): which executables
(``core.topology``, the one source of the topology), with which parameters, and the
``bag_player`` command line. ``launch/*.launch.py`` turn this into
``Node``/``LifecycleNode`` actions; tests check it where the ``launch`` stack is not installed.

Namespaces: the launch files push one namespace (``PushRosNamespace``) around every node; no node
carries a namespace of its own (giving both made ``/exo1/exo1``). Every topic, service and node
name inside the package is relative, so the whole pipeline moves under the namespace.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gait_estimator.core import topology

PACKAGE = "gait_estimator"
IMU_SOURCES = ("sim", "file", "serial", "topics")  # topics: no driver, the IMUs come from elsewhere
# Seconds the player waits for lifecycle_manager/state == 'active' before it gives up.
PLAYER_WAIT_S = 120.0


@dataclass(frozen=True)
class NodeSpec:
    """One process; its node name is the executable's name."""

    executable: str
    lifecycle: bool = False
    parameters: tuple[Any, ...] = ()  # parameter file paths (str) and {name: value} dicts, in order


def as_bool(text: str | bool, what: str) -> bool:
    if isinstance(text, bool):
        return text
    low = str(text).strip().lower()
    if low in ("true", "1"):
        return True
    if low in ("false", "0"):
        return False
    raise ValueError(f"{what}: {text!r} is not a boolean (true | false)")


def config_file(share: str | Path, config: str, fused: bool) -> str:
    """``config`` when given, else the package's ``config/fused.yaml`` (fused) or ``pipeline.yaml``."""
    if config:
        return config
    return str(Path(share) / "config" / ("fused.yaml" if fused else "pipeline.yaml"))


def realtime_overrides(thread_priority: str = "", lock_memory: str = "") -> dict[str, Any]:
    """The ``thread_priority`` / ``lock_memory`` launch arguments as parameters of every data-path
    node ("" = the config file's); validated by the parameter schema like any other value."""
    out: dict[str, Any] = {}
    if str(thread_priority).strip():
        try:
            out["thread_priority"] = int(str(thread_priority).strip())
        except ValueError:
            raise ValueError(f"thread_priority: {thread_priority!r} is not an integer (0-99)") from None
    if str(lock_memory).strip():
        out["lock_memory"] = as_bool(lock_memory, "lock_memory")
    return out


def pipeline_nodes(
    *,
    fused: bool,
    imu_source: str,
    model_path: str,
    config: str,
    use_sim_time: bool,
    realtime: dict[str, Any] | None = None,
) -> list[NodeSpec]:
    """The pipeline's processes. ``model_path`` empty: the config file's (default model if unset);
    ``realtime``: parameters for every data-path node (``realtime_overrides``)."""
    if imu_source not in IMU_SOURCES:
        raise ValueError(f"imu_source: {imu_source!r} is not one of {', '.join(IMU_SOURCES)}")
    sim_time = {"use_sim_time": bool(use_sim_time)}
    model = [{"model_path": model_path}] if model_path else []
    rt = [dict(realtime)] if realtime else []
    stages = []
    for s in topology.stages(fused, with_driver=imu_source != "topics"):
        extra: list[Any] = [*model] if s.reads_model else []
        if s.driver:
            extra.append({"source": imu_source})
        if fused:
            extra.append({"imu_source": imu_source})
        stages.append(NodeSpec(s.executable, s.lifecycle, (config, *extra, sim_time, *rt)))
    manager = NodeSpec(
        topology.MANAGER,
        False,
        (
            config,
            sim_time,
            {"node_names": topology.managed(fused), "command_node": topology.command_node(fused)},
        ),
    )
    return [*stages, manager]


def player_arguments(
    bag: str,
    *,
    rate: float = 1.0,
    loop: bool = False,
    start_offset_s: float = 0.0,
    use_sim_time: bool = False,
    wait_s: float = PLAYER_WAIT_S,
) -> list[str]:
    """``bag_player`` command line for a replay through the pipeline.

    - ``--restamp``: the pipeline stamps receipt on the host clock; a bag's own stamps (often near
      t=0) would never line up, and the synchronizer would emit nothing. The stamps follow the
      playback (host time of publication), so any ``rate`` gives valid commands (the gait then
      looks ``rate`` times faster to the model).
    - ``--wait-for-manager``: play only once the lifecycle nodes are active, so the start of the
      bag is not lost to start-up.
    - ``--topics-relative``: the bag's absolute topics (``/imu/pelvis``) are published relative to
      the player's namespace, so a namespaced replay reaches the namespaced pipeline.
    - ``/clock`` only with ``use_sim_time`` (``--clock-hz 0`` otherwise).
    """
    if not float(rate) > 0:
        raise ValueError(f"rate: {rate} must be > 0")
    if float(start_offset_s) < 0:
        raise ValueError(f"start_offset: {start_offset_s} must be >= 0")
    args = [
        str(bag),
        "--rate", str(float(rate)),
        "--start-offset", str(float(start_offset_s)),
        "--restamp",
        "--topics-relative",
        "--wait-for-manager", str(float(wait_s)),
    ]
    if loop:
        args.append("--loop")
    if not use_sim_time:
        args += ["--clock-hz", "0"]
    return args
