"""One validation path for parameters (issue 13): YAML files (wildcard sections included), start-up
and every runtime set run the same schema and cross-parameter rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from gait_estimator.core.params import load_config, validate_node_params
from gait_estimator.errors import ConfigError
from gait_estimator.nodes.params import RuntimeParameters


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "params.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"joints": ["hip_flexion_r", "hip_flexion_r"]}, "torque_command.joints"),
        ({"watchdog_s": 0.01, "limit_nm": [30.0]}, "torque_command.watchdog_s"),  # 30 N.m needs 30 ms
        ({"limit_nm": [-5.0]}, "torque_command.limit_nm"),
        ({"limit_nm": [1e9]}, "torque_command.limit_nm"),
        ({"gains": [float("nan")]}, "torque_command.gains"),
        ({"gains": [float("inf")]}, "torque_command.gains"),
        ({"limit_nm": [1.0, 2.0]}, "torque_command.limit_nm"),
        ({"min_confidence": 1.5}, "torque_command.min_confidence"),
    ],
)
def test_command_rules_name_the_parameter(values, fragment):
    with pytest.raises(ConfigError) as info:
        validate_node_params("torque_command", values)
    assert fragment in str(info.value)


def test_a_wildcard_section_is_validated_like_a_named_one(tmp_path):
    """Issue 13 item 8: ``/**: limit_nm: [90.0]`` ran the node at 90 N.m while the validator
    checked 30; now the wildcard's value is validated for every node it reaches."""
    path = _write(
        tmp_path,
        "torque_command:\n  ros__parameters:\n    rate_limit_nm_s: 1000.0\n"
        "/**:\n  ros__parameters:\n    watchdog_s: 0.01\n",
    )
    with pytest.raises(ConfigError, match=r"torque_command\.watchdog_s.*too short"):
        load_config(path)  # 30 N.m at 1000 N.m/s needs 30 ms: a wildcard cannot slip it past
    path = _write(
        tmp_path,
        "torque_command:\n  ros__parameters:\n    limit_nm: [30.0]\n"
        "/**:\n  ros__parameters:\n    limit_nm: [90.0]\n",
    )
    with pytest.raises(ConfigError, match=r"torque_command\.limit_nm.*set to \[30\.0\].*and to \[90\.0\]"):
        load_config(path)


def test_wildcard_only_nodes_are_checked_and_named_sections_planned(tmp_path):
    path = _write(
        tmp_path,
        "/**/torque_command:\n  ros__parameters:\n    gains: [0.3]\n"
        "/**:\n  ros__parameters:\n    subject_mass_kg: 81.0\n",
    )
    cfg = load_config(path)
    assert set(cfg) == {"torque_command"}
    assert cfg["torque_command"]["subject_mass_kg"] == 81.0 and cfg["torque_command"]["gains"] == [0.3]
    bad = _write(tmp_path, "/**:\n  ros__parameters:\n    subject_mass_kg: 900.0\n")
    with pytest.raises(ConfigError, match="subject_mass_kg"):
        load_config(bad)  # no named section: still validated for every node it reaches
    unknown = _write(tmp_path, "/**:\n  ros__parameters:\n    limit_nmm: [9.0]\n")
    with pytest.raises(ConfigError, match="no node has this parameter"):
        load_config(unknown)


class _FakeNode:
    """The attributes RuntimeParameters uses of an rclpy node (the rclpy side is tested over DDS
    in test_safety_faults.py; this checks the decision logic alone)."""

    def __init__(self, params, state="active"):
        self.params = params
        self.state = state
        self.callbacks = []

    def get_name(self):
        return "torque_command"

    def add_on_set_parameters_callback(self, cb):
        self.callbacks.append(cb)

    def get_logger(self):  # pragma: no cover - only for refusals through _on_set
        raise AssertionError


def test_runtime_sets_live_configure_time_and_refused():
    from gait_estimator.core.command_stage import COMMAND_LIVE
    from gait_estimator.core.param_types import TorqueCommandParams

    node = _FakeNode(TorqueCommandParams.from_values(validate_node_params("torque_command", {})))
    applied = []
    rp = RuntimeParameters(node, "torque_command", COMMAND_LIVE, lambda new, ch: applied.append(ch) or "",
                           idle=lambda: node.state == "unconfigured")
    assert rp.check([("limit_nm", [5.0])]) == "" and applied == [{"limit_nm"}]
    assert isinstance(node.params, TorqueCommandParams) and node.params.limit_nm == (5.0,)
    reason = rp.check([("limit_nm", [-5.0])])
    assert "torque_command.limit_nm" in reason and node.params.limit_nm == (5.0,)
    reason = rp.check([("control_rate_hz", 200.0)])
    assert "read at configure" in reason and node.params.control_rate_hz == 100.0
    node.state = "unconfigured"
    assert rp.check([("control_rate_hz", 200.0)]) == "" and node.params.control_rate_hz == 200.0
    # A set of two parameters is atomic: one bad value refuses both.
    reason = rp.check([("gains", [0.1]), ("watchdog_s", 0.001)])
    assert "watchdog_s" in reason and node.params.gains == (0.2,) * 6


def test_generated_parameter_types_are_up_to_date_and_typed():
    """``core/param_types.py`` is generated from the schema (scripts/gen_param_types.py): stale
    means a schema change without regeneration; every node's class holds every schema field."""
    import dataclasses
    import subprocess
    import sys
    import typing
    from pathlib import Path

    from gait_estimator.core.param_schema import SCHEMAS
    from gait_estimator.core.param_types import PARAM_TYPES

    script = Path(__file__).resolve().parents[3] / "scripts" / "gen_param_types.py"
    done = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert set(PARAM_TYPES) == set(SCHEMAS)
    for node, cls in PARAM_TYPES.items():
        hints = typing.get_type_hints(cls)
        assert list(hints) == [s.name for s in SCHEMAS[node]], node
        p = cls.from_values(validate_node_params(node, {}))
        assert all(getattr(p, s.name) == (tuple(s.default) if isinstance(s.default, list) else s.default)
                   for s in SCHEMAS[node]), node
        with pytest.raises(dataclasses.FrozenInstanceError):  # a node never edits them in place
            setattr(p, next(iter(hints)), None)


DATA_PATH = (
    "imu_driver", "imu_synchronizer", "windowing", "torque_estimator", "torque_command", "gait_pipeline"
)


@pytest.mark.parametrize("node", DATA_PATH)
def test_every_data_path_node_takes_the_realtime_settings_off_by_default(node):
    v = validate_node_params(node, {})
    rt = (v["thread_priority"], v["realtime_policy"], v["cpu_affinity"], v["lock_memory"])
    assert rt == (0, "fifo", [], False)
    v = validate_node_params(node, {"thread_priority": 80, "cpu_affinity": [1], "lock_memory": True})
    assert (v["thread_priority"], v["cpu_affinity"], v["lock_memory"]) == (80, [1], True)
    with pytest.raises(ConfigError, match=rf"{node}\.thread_priority.*<= 99"):
        validate_node_params(node, {"thread_priority": 100})
    with pytest.raises(ConfigError, match=rf"{node}\.cpu_affinity.*must not repeat a core"):
        validate_node_params(node, {"cpu_affinity": [1, 1]})
    with pytest.raises(ConfigError, match=rf"{node}\.realtime_policy"):
        validate_node_params(node, {"realtime_policy": "deadline"})


def test_the_manager_takes_no_realtime_settings(tmp_path):
    with pytest.raises(ConfigError, match=r"lifecycle_manager\.thread_priority.*unknown parameter"):
        validate_node_params("lifecycle_manager", {"thread_priority": 10})
    path = _write(tmp_path, "/**:\n  ros__parameters:\n    thread_priority: 120\n")
    with pytest.raises(ConfigError, match=r"thread_priority.*<= 99"):
        load_config(path)  # a wildcard reaches every data-path node and is checked for each
