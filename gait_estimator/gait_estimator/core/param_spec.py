"""One parameter's description and rule (``ParamSpec``): type, default, range, choices, and the
check that refuses a value with a message naming the parameter, the value and the rule."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gait_estimator.errors import ConfigError

__all__ = ["TYPES", "ParamSpec", "param"]

TYPES = ("bool", "int", "double", "string", "string_array", "double_array", "int_array")


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: name, ROS type, default, description and its rule."""

    name: str
    type: str
    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    read_only: bool = False
    allow_empty: bool = False  # strings/arrays: whether "" / [] is accepted

    def rule(self) -> str:
        parts = [f"type {self.type}"]
        if self.min is not None and self.max is not None:
            parts.append(f"in [{self.min}, {self.max}]")
        elif self.min is not None:
            parts.append(f">= {self.min}")
        elif self.max is not None:
            parts.append(f"<= {self.max}")
        if self.choices:
            parts.append(f"one of {list(self.choices)}")
        if self.type in ("string", "string_array", "double_array", "int_array") and not self.allow_empty:
            parts.append("non-empty")
        return ", ".join(parts)

    def check(self, value: Any, node: str = "") -> Any:
        """Return ``value`` if it obeys the rule, else raise ``ConfigError`` naming it."""
        name = f"{node}.{self.name}" if node else self.name

        def bad(rule: str) -> ConfigError:
            return ConfigError(name, value, rule)

        t = self.type
        if t == "bool":
            if not isinstance(value, bool):
                raise bad("must be a bool (true/false)")
        elif t == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad("must be an integer")
        elif t == "double":
            if isinstance(value, bool) or isinstance(value, int):
                raise bad("must be a double: write it with a decimal point (e.g. 1.0), ROS rejects an int")
            if not isinstance(value, float) or not math.isfinite(value):
                raise bad("must be a finite double")
        elif t == "string":
            if not isinstance(value, str):
                raise bad("must be a string")
            if not value and not self.allow_empty:
                raise bad("must be a non-empty string")
        elif t.endswith("_array"):
            if isinstance(value, str) or not isinstance(value, Sequence):
                raise bad(f"must be a list ({t})")
            if not value and not self.allow_empty:
                raise bad(f"must be a non-empty list ({t})")
            elem = t[: -len("_array")]
            for v in value:
                if elem == "string" and not isinstance(v, str):
                    raise bad("every element must be a string")
                if elem == "double" and (
                    isinstance(v, bool) or not isinstance(v, float) or not math.isfinite(v)
                ):
                    raise bad("every element must be a finite double written with a decimal point")
                if elem == "int" and (isinstance(v, bool) or not isinstance(v, int)):
                    raise bad("every element must be an integer")
            value = list(value)
        else:  # pragma: no cover - schema error
            raise bad(f"unknown schema type {t}")
        nums = [value] if t in ("int", "double") else (value if t in ("double_array", "int_array") else [])
        for v in nums:
            if self.min is not None and v < self.min:
                raise bad(f"must be >= {self.min}" + (f" and <= {self.max}" if self.max is not None else ""))
            if self.max is not None and v > self.max:
                raise bad(f"must be <= {self.max}" + (f" and >= {self.min}" if self.min is not None else ""))
        if self.choices is not None:
            vals = value if t == "string_array" else [value]
            for v in vals:
                if v not in self.choices:
                    raise bad(f"must be one of {list(self.choices)}")
        return value


def param(name, type_, default, description, **kw) -> ParamSpec:
    return ParamSpec(name, type_, default, description, **kw)


