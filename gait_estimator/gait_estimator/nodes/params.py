"""The rclpy side of the parameter schemas (``core/params.py``): declare, then one path for every set.

``declare_params`` declares a node's parameters from ``core.params.SCHEMAS`` with full
descriptors and registers :class:`RuntimeParameters`, through which every later parameter set
goes (``core.params.validate_node_params``, the same function YAML loading, start-up and offline
replay use). The schema names are re-exported here for the nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gait_estimator.core.param_types import PARAM_TYPES
from gait_estimator.core.params import *  # noqa: F403  (the nodes' one import of the schema)
from gait_estimator.core.params import (
    _BUILTIN,
    SCHEMAS,
    ParamSpec,
    validate_node_params,
)
from gait_estimator.errors import ConfigError


def _descriptor(spec: ParamSpec):
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

    ptype = {
        "bool": ParameterType.PARAMETER_BOOL,
        "int": ParameterType.PARAMETER_INTEGER,
        "double": ParameterType.PARAMETER_DOUBLE,
        "string": ParameterType.PARAMETER_STRING,
        "string_array": ParameterType.PARAMETER_STRING_ARRAY,
        "double_array": ParameterType.PARAMETER_DOUBLE_ARRAY,
        "int_array": ParameterType.PARAMETER_INTEGER_ARRAY,
    }[spec.type]
    d = ParameterDescriptor(
        name=spec.name,
        type=ptype,
        description=spec.description,
        additional_constraints=spec.rule(),
        read_only=spec.read_only,
    )
    if spec.min is not None and spec.max is not None:
        if spec.type == "int":
            d.integer_range = [IntegerRange(from_value=int(spec.min), to_value=int(spec.max), step=0)]
        elif spec.type == "double":
            d.floating_point_range = [
                FloatingPointRange(from_value=float(spec.min), to_value=float(spec.max), step=0.0)
            ]
    return d


def declare_params(
    node, schema_name: str, schema: Sequence[ParamSpec] | None = None, *, live=(), apply=None
) -> Any:
    """Declare every parameter of ``schema_name`` on an rclpy node and return its validated, typed
    parameters (``core.param_types``: ``params.limit_nm``, frozen; a runtime set replaces the object).

    Raises ``ConfigError`` (parameter, value, rule) for an override that breaks its rule; the
    node's ``main`` logs it and exits with status 2. Registers :class:`RuntimeParameters` (the one
    path of every later set): ``live`` names the parameters ``apply`` puts into effect at run time;
    a lifecycle node accepts the others while unconfigured, a plain node never.
    """
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

    schema = SCHEMAS[schema_name] if schema is None else schema
    values: dict[str, Any] = {}
    for spec in schema:
        try:
            # an empty array has no element type for rclpy (it would say BYTE_ARRAY): declare the type
            default = _rclpy_type(spec.type) if spec.default == [] else spec.default
            p = node.declare_parameter(spec.name, default, _descriptor(spec))
        except InvalidParameterTypeException as exc:
            raise ConfigError(
                f"{node.get_name()}.{spec.name}", "<override>", f"wrong type: {spec.rule()} ({exc})"
            ) from exc
        except InvalidParameterValueException as exc:
            raise ConfigError(
                f"{node.get_name()}.{spec.name}", "<override>", f"{spec.rule()} ({exc})"
            ) from exc
        values[spec.name] = [] if p.value is None and spec.default == [] else p.value
    out = PARAM_TYPES[schema_name].from_values(validate_node_params(schema_name, values))
    machine = getattr(node, "_state_machine", None)
    idle = (lambda: machine.current_state[1] == "unconfigured") if machine is not None else None
    node.runtime_params = RuntimeParameters(node, schema_name, live, apply, idle)
    return out


def _rclpy_type(type_: str):
    from rclpy.parameter import Parameter

    name = type_.upper()
    return getattr(Parameter.Type, "INTEGER" + name[3:] if name.startswith("INT") else name)


class RuntimeParameters:
    """The one path of every runtime ``set_parameters`` (ros2 param set, rqt, a launch event).

    Registered with ``add_on_set_parameters_callback``: the proposed values are merged with the
    node's current ones and run through :func:`validate_node_params` (the schema rules that YAML
    loading and start-up use, cross-parameter rules included: array lengths, duplicate joints,
    ``limit_nm <= rate_limit_nm_s x watchdog_s``). A set is then

    - applied at once if every changed parameter is in ``live`` (``apply(new_values, changed)``
      runs inside the callback, atomically; it may refuse with a reason);
    - accepted for the next configure if the node is not configured (``idle()``) - lifecycle
      nodes read the rest in ``on_configure``;
    - refused otherwise, naming the parameter, the value and the rule.

    rclpy itself refuses a changed type and a ``read_only`` parameter. Accepted values replace
    ``node.params`` as one new typed object (readers never see half a set).
    """

    def __init__(self, node, schema_name: str, live=(), apply=None, idle=None) -> None:
        self.node = node
        self.schema_name = schema_name
        self.live = frozenset(live)
        self.apply = apply
        self.idle = idle or (lambda: False)
        self.rejected = 0
        node.add_on_set_parameters_callback(self._on_set)

    def _on_set(self, params):
        from rcl_interfaces.msg import SetParametersResult

        reason = self.check([(p.name, p.value) for p in params])
        if reason:
            self.rejected += 1
            self.node.get_logger().error(f"parameter set refused: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def check(self, items) -> str:
        """'' when ``items`` [(name, value)] are accepted (and applied), else the reason."""
        node = self.node.get_name()
        changes = {k: v for k, v in items if k not in _BUILTIN}
        if not changes:
            return ""
        current = self.node.params.as_dict()
        merged = dict(current)
        merged.update(changes)
        try:
            new = validate_node_params(self.schema_name, merged)
        except ConfigError as exc:
            return str(exc)
        changed = {k for k in changes if new[k] != current.get(k)}
        late = sorted(changed - self.live)
        if late and not self.idle():
            k = late[0]
            return str(
                ConfigError(
                    f"{node}.{k}",
                    changes[k],
                    "read at configure: set it while the node is unconfigured (deactivate, cleanup), "
                    f"then configure; parameters applied at run time: {sorted(self.live)}",
                )
            )
        typed = PARAM_TYPES[self.schema_name].from_values(new)
        if changed & self.live and self.apply is not None:
            reason = self.apply(typed, changed & self.live)
            if reason:
                return reason
        self.node.params = typed
        return ""



def resolve_model_path(path: str) -> Path:
    """``""`` -> the installed default model (``default.pt``); a bare file name that is no file
    here but one of the installed models (``default.onnx``: the default model for ONNX Runtime)
    -> that model; otherwise the path itself (user-expanded)."""
    from gait_estimator.nodes.model_files import default_model_path

    if not path:
        return default_model_path()
    p = Path(path).expanduser()
    if not p.exists() and p.name == path:
        shipped = default_model_path().parent / path
        if shipped.is_file():
            return shipped
    return p


