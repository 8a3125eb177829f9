"""Parameter schemas of every node: one place for type, default, range and description.

ROS-free (the rclpy side, ``declare_params`` and ``RuntimeParameters``, is ``nodes/params.py``):
offline replay, the CLI and the YAML validator import it without ROS, and the nodes build their
descriptors from it. Each executable declares its parameters from ``SCHEMAS[<node>]`` with a full
``rcl_interfaces/ParameterDescriptor`` (type, description, range, constraint text), so
``ros2 param describe`` shows them. The same schema validates YAML configuration files
(``config/*.yaml``, ROS 2 ``--params-file`` format) before anything starts, with messages that
name the node, the parameter, the value and the rule (``errors.ConfigError``).

Layout: ``core/param_spec.py`` (one parameter's rule), ``core/param_schema.py`` (the tables of
every node), this module (validation of a node's whole set, YAML loading, the builders of the
objects the parameters configure).

ROS typing rules apply: a ``double`` parameter must be written ``1.0`` in YAML (ROS rejects an
integer for a double parameter); arrays must be non-empty lists of one element type.
This module imports no rclpy at all.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from gait_estimator.core.param_schema import *  # noqa: F403 (the schema tables, re-exported)
from gait_estimator.core.param_schema import BUILTIN, SCHEMAS, defaults
from gait_estimator.core.param_spec import TYPES, ParamSpec, param  # noqa: F401 (re-exported)
from gait_estimator.errors import ConfigError

_BUILTIN = BUILTIN  # parameters every node has from rclpy itself

def validate_node_params(node: str, values: Mapping[str, Any], *, partial: bool = True) -> dict[str, Any]:
    """Validate ``values`` for ``node`` against its schema; return the full dict with defaults.

    Cross-parameter rules (array lengths matching ``joints``) are checked too.
    """
    if node not in SCHEMAS:
        raise ConfigError("<node>", node, f"unknown node; known nodes: {sorted(SCHEMAS)}")
    schema = {s.name: s for s in SCHEMAS[node]}
    out = defaults(node)
    for key, value in values.items():
        if key in _BUILTIN:
            continue
        if key not in schema:
            raise ConfigError(f"{node}.{key}", value, f"unknown parameter; {node} has {sorted(schema)}")
        out[key] = schema[key].check(value, node)
    if "joints" in out and len(set(out["joints"])) != len(out["joints"]):
        raise ConfigError(f"{node}.joints", out["joints"], "must not repeat a joint")
    if "joints" in out:
        for arr in ("gains", "limit_nm"):
            if arr in out and len(out[arr]) not in (1, len(out["joints"])):
                raise ConfigError(
                    f"{node}.{arr}", out[arr], f"must have 1 or len(joints) = {len(out['joints'])} elements"
                )
    if set(out.get("effort_joints", ())) - set(out.get("joints", ())):
        rule = f"must be a subset of joints {out['joints']}"
        raise ConfigError(f"{node}.effort_joints", out["effort_joints"], rule)
    if "locations" in out and len(set(out["locations"])) != len(out["locations"]):
        raise ConfigError(f"{node}.locations", out["locations"], "must not repeat a location")
    if "thread_priority" in out:
        from gait_estimator.core.realtime import settings_from_params

        try:
            settings_from_params(out)  # its rules: a core listed once, ...
        except ConfigError as exc:
            raise ConfigError(f"{node}.{exc.name}", exc.value, exc.rule) from None
    if node in COMMAND_NODES:
        try:
            command_config(out)  # the shaper's rules: unique joints, limit <= rate x watchdog, ...
        except ConfigError as exc:
            raise ConfigError(f"{node}.{exc.name}", exc.value, exc.rule) from None
    if node == "imu_driver" or node == "gait_pipeline":
        src = out.get("source", out.get("imu_source"))
        if src == "file" and not out["file_path"]:
            raise ConfigError(f"{node}.file_path", out["file_path"], "required when the source is 'file'")
        if src == "serial" and not out["serial_port"]:
            raise ConfigError(
                f"{node}.serial_port", out["serial_port"], "required when the source is 'serial'"
            )
    return out


def load_config(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read and validate a ROS 2 parameter file; return ``{node: {param: value}}`` (with defaults).

    Accepted keys at top level: a node name (``torque_estimator``), a fully-qualified name
    (``/ns/torque_estimator``) or ``/**`` (applies to every node). Every section must hold a
    ``ros__parameters`` mapping.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError("config", str(path), f"cannot read the file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:  # binary garbage: a ConfigError, not a traceback
        raise ConfigError(
            "config", str(path), f"not a text (UTF-8) file: undecodable byte at offset {exc.start}"
        ) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("config", str(path), f"not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError("config", str(path), "must be a mapping of node names to {ros__parameters: ...}")
    sections: list[tuple[str, dict[str, Any]]] = []
    named: list[str] = []
    for key, section in raw.items():
        if not isinstance(section, dict) or not isinstance(section.get("ros__parameters"), dict):
            raise ConfigError(f"{key}", section, f"{path}: section must be {{ros__parameters: {{...}}}}")
        last = str(key).rstrip("/").split("/")[-1]
        if not _is_pattern(last):
            if last not in SCHEMAS:
                rule = f"{path}: unknown node; known nodes: {sorted(SCHEMAS)}"
                raise ConfigError(f"{key}", "<section>", rule)
            named.append(last)
        sections.append((str(key), section["ros__parameters"]))
    every = {s.name for schema in SCHEMAS.values() for s in schema} | _BUILTIN
    for key, params in sections:
        if _is_pattern(key.rstrip("/").split("/")[-1]):
            unknown = sorted(set(params) - every)
            if unknown:
                rule = f"{path}: no node has this parameter"
                raise ConfigError(f"{key}.{unknown[0]}", params[unknown[0]], rule)
    result: dict[str, dict[str, Any]] = {}
    # Every node a section applies to is validated, named or not: a wildcard section (``/**``)
    # reaches the nodes too, so what it sets is checked like everything else.
    for node in SCHEMAS:
        names = {s.name for s in SCHEMAS[node]} | _BUILTIN
        merged: dict[str, Any] = {}
        origin: dict[str, str] = {}
        for key, params in sections:
            if not _section_applies(key, node):
                continue
            for k, v in params.items():
                if k not in names:
                    if _is_pattern(key.rstrip("/").split("/")[-1]):
                        continue  # a wildcard's parameter for other nodes
                    merged[k] = v  # unknown for this node: validate_node_params names it
                    continue
                if k in merged and merged[k] != v and origin[k] != key:
                    raise ConfigError(
                        f"{node}.{k}",
                        v,
                        f"{path}: set to {merged[k]!r} by section '{origin[k]}' and to {v!r} by '{key}'; "
                        "give each parameter once per node (which one ROS applies depends on matching "
                        "order, and a safety parameter must not depend on that)",
                    )
                merged[k], origin[k] = v, key
        if node not in named and not (set(merged) - _BUILTIN):
            continue
        try:
            values = validate_node_params(node, merged)
        except ConfigError as exc:
            raise ConfigError(exc.name, exc.value, f"{exc.rule} (in {path})") from exc
        if node in named:
            result[node] = values
    return result


def _is_pattern(token: str) -> bool:
    return any(ch in token for ch in "*?[")


def _section_applies(key: str, node: str) -> bool:
    """Whether a parameter-file section key (``node``, ``/ns/node``, ``/**``, ``/**/node``,
    ``/*/torque_*``) applies to the node named ``node`` in some namespace."""
    last = key.rstrip("/").split("/")[-1] or "**"
    return last in ("*", "**") or fnmatch.fnmatchcase(node, last)


def check_inference_mode(node: str, mode: str, metadata: Any, model: Any = "") -> str:
    """``mode`` if the model (its ``ModelMetadata``) supports it, else ``ConfigError`` naming
    ``<node>.inference_mode``: streaming needs a model whose metadata says streaming true (a
    window-only model would stream through an O(window) ring buffer: no gain)."""
    if mode == "streaming" and not metadata.streaming:
        raise ConfigError(
            f"{node}.inference_mode",
            mode,
            f"needs a streaming-capable model (metadata streaming true); the model {model} "
            f"({metadata.architecture}) is window-only: use inference_mode window",
        )
    return mode


def read_calibration_param(path: str) -> Any:
    """The ``calibration_file`` parameter: None when empty, else the validated wearer calibration
    (``CalibrationError`` naming the file and what is wrong)."""
    if not path:
        return None
    from gait_estimator.core.calibration import read_calibration

    return read_calibration(path)


COMMAND_NODES = ("torque_command", "gait_pipeline")


def command_config(p: Mapping[str, Any]) -> Any:
    """The ``core.command.CommandConfig`` of ``torque_command`` / ``gait_pipeline`` parameters
    (raises ``ConfigError`` for a rule of the shaper: unique joints, limit <= rate x watchdog).
    A one-element ``gains`` / ``limit_nm`` applies to every joint."""
    from gait_estimator.core.command import CommandConfig

    joints = tuple(p["joints"])

    def per_joint(v: Any) -> tuple[float, ...]:
        v = list(v)
        return tuple(v * len(joints)) if len(v) == 1 else tuple(v)

    return CommandConfig(
        joints=joints,
        subject_mass_kg=p["subject_mass_kg"],
        gains=per_joint(p["gains"]),
        phase_shift_s=p["phase_shift_s"],
        lowpass_hz=p["lowpass_hz"],
        limit_nm=per_joint(p["limit_nm"]),
        rate_limit_nm_s=p["rate_limit_nm_s"],
        ramp_s=p["ramp_s"],
        watchdog_s=p["watchdog_s"],
        control_rate_hz=p["control_rate_hz"],
        min_confidence=p.get("min_confidence", 0.0),
    )


def make_shaper(p: Mapping[str, Any]) -> Any:
    """The command shaper built from validated ``torque_command`` / ``gait_pipeline`` parameters.

    One builder for the nodes and the offline replay, so both shape commands identically.
    """
    from gait_estimator.core.command import CommandShaper

    return CommandShaper(command_config(p))
