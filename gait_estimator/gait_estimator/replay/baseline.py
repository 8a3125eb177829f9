"""The regression gate's baseline: what it holds, when it is refused, how a report is judged.

A baseline (``schema`` 2, JSON) is made from ``validate`` reports and states, for one model,
the metrics per bag that a later run may not get worse than by the stated tolerances::

    {"schema": 2,
     "model": {"file", "sha256", "architecture", "output_joints", "output_unit", ...},
     "bags": {"<bag name>": {"bag": {"name", "sha256", "bytes"},
                             "settings": {...},        # replay settings the metrics depend on
                             "tolerances": {...}, "lower_is_better": {...},
                             "metrics": {joint: {"rmse", "nrmse", "pearson_r", "r2"}},
                             "mean": {...}}}}

The gate cannot be defeated by an empty or partial baseline, nor applied to what it was not
made for:

- every metric of every joint must be a finite number: a report with an undefined metric (a
  constant or all-NaN reference, no valid estimate) cannot be written as a baseline, and a file
  holding a null, NaN, a missing metric or joint is refused when read (:class:`BaselineError`);
- the bag is identified by the SHA-256 of its files (``metadata.yaml`` and the storage files,
  each listed; renaming the bag directory keeps it), the model by its file's SHA-256 (as
  ``sha256sum`` prints it) plus its interface;
  a bag whose content differs from the one named in the baseline, a bag it has no entry for, or
  other replay settings are errors; another model file is an error unless the caller states it
  compares a candidate (``validate --allow-model-change``), and even then its output joints
  and unit must match;
- in the current report a metric that is missing or not finite is a regression.

Schema 1 files (no identities) are refused with a message saying how to regenerate them:
accepting them would skip the identity checks, which is what made the gate defeatable.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gait_estimator.errors import BagError, GaitEstimatorError

__all__ = [
    "DEFAULT_TOLERANCES",
    "LOWER_IS_BETTER",
    "METRIC_NAMES",
    "SCHEMA",
    "BaselineError",
    "Regression",
    "bag_entry",
    "bag_identity",
    "check_model",
    "compare",
    "file_sha256",
    "incomplete_metrics",
    "load_baseline",
    "make_baseline",
    "model_identity",
    "select_entry",
    "write_baseline",
]

SCHEMA = 2
METRIC_NAMES = ("rmse", "nrmse", "pearson_r", "r2")
LOWER_IS_BETTER = {"rmse": True, "nrmse": True, "pearson_r": False, "r2": False}
# Absolute tolerances of a regression check: a metric may be worse than its baseline by this
# much. rmse in N·m/kg; nrmse, r, R² dimensionless.
DEFAULT_TOLERANCES = {"rmse": 0.005, "nrmse": 0.005, "pearson_r": 0.01, "r2": 0.02}
# Gait phase and heel strikes (replay.scoring.gait_phase_metrics), gated when the baseline has
# them (a reference that carries gait_phase): all lower is better.
GAIT_METRICS = ("phase_rmse_pct", "heel_strike_mae_ms", "heel_strikes_missed", "heel_strikes_extra")
GAIT_TOLERANCES = {
    "phase_rmse_pct": 0.5,
    "heel_strike_mae_ms": 5.0,
    "heel_strikes_missed": 0.0,
    "heel_strikes_extra": 0.0,
}
LOWER_IS_BETTER.update(dict.fromkeys(GAIT_METRICS, True))
_CHUNK = 1 << 20


class BaselineError(GaitEstimatorError):
    """A baseline cannot be written, read, or applied to this bag/model; the message says why."""


# --------------------------------------------------------------------------------------------
# identities
# --------------------------------------------------------------------------------------------
def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes (what ``sha256sum`` prints)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def bag_identity(path: str | Path) -> dict[str, Any]:
    """``{"name", "sha256", "bytes", "files"}`` of a bag: a single storage file's SHA-256, or for a
    bag directory the SHA-256 of its manifest (one ``<name> <sha256>`` line per file, sorted)
    over ``metadata.yaml`` and its ``.mcap``/``.db3`` files, each listed in ``files``; the
    directory's own name is not part of it."""
    p = Path(path)
    if not p.exists():
        raise BagError(f"bag {p}: no such file or directory")
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix in (".mcap", ".db3", ".yaml"))
        files = [f for f in files if f.suffix != ".yaml" or f.name == "metadata.yaml"]
    else:
        files = [p]
    if not files:
        raise BaselineError(f"bag {p}: no metadata.yaml, .mcap or .db3 file to identify it by")
    sums = {f.name: file_sha256(f) for f in files}
    if p.is_dir():
        digest = hashlib.sha256("".join(f"{n} {h}\n" for n, h in sums.items()).encode()).hexdigest()
    else:
        digest = sums[p.name]
    return {"name": p.name, "sha256": digest, "bytes": sum(f.stat().st_size for f in files), "files": sums}


def model_identity(path: str | Path, metadata: Any) -> dict[str, Any]:
    """The model file's SHA-256 (as ``sha256sum``) and the interface the metrics depend on."""
    p = Path(path)
    return {
        "file": p.name,
        "sha256": file_sha256(p),
        "bytes": p.stat().st_size,
        "architecture": metadata.architecture,
        "output_joints": list(metadata.output_joints),
        "output_unit": metadata.output_unit,
        "input_channels": len(metadata.input_channels),
        "sample_rate_hz": float(metadata.sample_rate_hz),
        "window": int(metadata.window),
    }


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------
def incomplete_metrics(metrics: Mapping[str, Any], joints: list[str] | tuple[str, ...]) -> list[str]:
    """Every ``"<joint> <metric>"`` that is missing, null or not a finite number."""
    out = []
    for joint in joints:
        m = metrics.get(joint)
        for name in METRIC_NAMES:
            v = m.get(name) if isinstance(m, Mapping) else None
            ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            if not ok:
                out.append(f"{joint} {name}")
    return out


def bag_entry(report: Mapping[str, Any], tolerances: Mapping[str, float] | None = None) -> dict[str, Any]:
    """One bag's baseline entry from its ``validate`` report; refuses undefined metrics."""
    bag = report.get("bag")
    if not report.get("metrics"):
        raise BaselineError(
            f"bag {bag}: no baseline written: no metrics ({report.get('metrics_skipped', 'no reference')})"
        )
    bad = incomplete_metrics(report["metrics"], list(report["joints"]))
    if bad:
        why = report.get("metrics_undefined") or {}
        reasons = sorted({r for joint in why.values() for r in joint.values()})
        raise BaselineError(
            f"bag {bag}: no baseline written: undefined metric(s) {', '.join(bad)}"
            + (f" ({'; '.join(reasons)})" if reasons else "")
            + "; a baseline needs every metric of every joint"
        )
    tol = dict(DEFAULT_TOLERANCES if tolerances is None else tolerances)
    gait = gait_values(report)
    if any(v is None for v in gait.values()):
        gait = {}  # a figure undefined on this bag (no heel strike matched): not gated
    return {
        "bag": dict(report["identity"]["bag"]),
        "settings": dict(report["settings"]),
        "tolerances": tol,
        "lower_is_better": {k: LOWER_IS_BETTER[k] for k in tol},
        "metrics": {j: {k: float(report["metrics"][j][k]) for k in METRIC_NAMES} for j in report["joints"]},
        "mean": dict(report.get("mean") or {}),
        **({"gait": {"values": gait, "tolerances": dict(GAIT_TOLERANCES)}} if gait else {}),
    }


def gait_values(report: Mapping[str, Any]) -> dict[str, float | None]:
    """The gated gait figures of a ``validate`` report ({} when it scored no gait phase)."""
    g = report.get("gait_phase") or {}
    hs = g.get("heel_strike")
    if not g or hs is None:
        return {}
    return {
        "phase_rmse_pct": g.get("phase_rmse_pct"),
        "heel_strike_mae_ms": hs.get("mae_ms"),
        "heel_strikes_missed": float(hs["missed"]),
        "heel_strikes_extra": float(hs["extra"]),
    }


def make_baseline(
    reports: list[Mapping[str, Any]], tolerances: Mapping[str, float] | None = None, **extra: Any
) -> dict[str, Any]:
    """A baseline document over one or more reports of the same model (``extra``: more top-level
    keys, e.g. how the regression data were generated)."""
    if not reports:
        raise BaselineError("no report to make a baseline from")
    models = {r["identity"]["model"]["sha256"] for r in reports}
    if len(models) != 1:
        raise BaselineError(f"reports of {len(models)} different model files cannot share a baseline")
    bags: dict[str, Any] = {}
    for r in reports:
        entry = bag_entry(r, tolerances)
        name = entry["bag"]["name"]
        if name in bags:
            raise BaselineError(f"two bags named '{name}': a baseline keys bags by name")
        bags[name] = entry
    return {
        "schema": SCHEMA,
        "note": "gait-estimator validate baseline: a metric may be worse than this by its tolerance",
        "model": dict(reports[0]["identity"]["model"]),
        **extra,
        "bags": bags,
    }


def write_baseline(path: str | Path, doc: Mapping[str, Any]) -> None:
    """Write ``doc`` after checking it as :func:`load_baseline` will (nothing is written if not)."""
    _check_document(doc, str(path))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------
def _reject_constant(token: str) -> float:
    raise ValueError(f"{token} is not a number a baseline may hold")


def load_baseline(path: str | Path) -> dict[str, Any]:
    """Read and check a baseline file; :class:`BaselineError` naming the file and the problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BaselineError(f"baseline {path}: cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise BaselineError(f"baseline {path}: is not a text (UTF-8) file") from None
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise BaselineError(f"baseline {path}: is not valid JSON: {exc}") from None
    except ValueError as exc:  # NaN / Infinity
        raise BaselineError(f"baseline {path}: {exc}") from None
    _check_document(doc, str(path))
    return doc


def _check_document(doc: Any, where: str) -> None:
    if not isinstance(doc, Mapping):
        raise BaselineError(f"baseline {where}: must be a JSON object")
    if doc.get("schema") != SCHEMA:
        raise BaselineError(
            f"baseline {where}: schema {doc.get('schema')!r} is not {SCHEMA}: older baselines name no bag"
            " or model identity; regenerate it (validate --write-baseline, or"
            " test/data/regression/make_regression_data.py --baseline-only)"
        )
    model = doc.get("model")
    if not isinstance(model, Mapping) or not all(
        isinstance(model.get(k), str | list) for k in ("sha256", "file", "output_joints", "output_unit")
    ):
        raise BaselineError(f"baseline {where}: 'model' must hold sha256, file, output_joints, output_unit")
    bags = doc.get("bags")
    if not isinstance(bags, Mapping) or not bags:
        raise BaselineError(f"baseline {where}: 'bags' must be a non-empty object")
    joints = list(model["output_joints"])
    for name, entry in bags.items():
        at = f"baseline {where}, bag '{name}'"
        if not isinstance(entry, Mapping):
            raise BaselineError(f"{at}: must be an object")
        bag = entry.get("bag")
        if not isinstance(bag, Mapping) or not isinstance(bag.get("sha256"), str):
            raise BaselineError(f"{at}: 'bag' must hold the bag's sha256")
        if not isinstance(entry.get("settings"), Mapping):
            raise BaselineError(f"{at}: 'settings' must be an object")
        tol = entry.get("tolerances")
        if not isinstance(tol, Mapping) or set(tol) != set(METRIC_NAMES):
            raise BaselineError(f"{at}: 'tolerances' must give exactly {list(METRIC_NAMES)}")
        for k, v in tol.items():
            if not (isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0):
                raise BaselineError(f"{at}: tolerance {k} = {v!r} must be a finite number >= 0")
        metrics = entry.get("metrics")
        if not isinstance(metrics, Mapping):
            raise BaselineError(f"{at}: 'metrics' must be an object")
        gait = entry.get("gait")
        if gait is not None:
            ok = isinstance(gait, Mapping) and all(
                isinstance(gait.get(part), Mapping)
                and set(gait[part]) == set(GAIT_METRICS)
                and all(
                    isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                    for v in gait[part].values()
                )
                for part in ("values", "tolerances")
            )
            if not ok:
                raise BaselineError(
                    f"{at}: 'gait' must hold finite values and tolerances >= 0 of {list(GAIT_METRICS)}"
                )
        extra = sorted(set(metrics) - set(joints))
        bad = incomplete_metrics(metrics, joints)
        if bad or extra:
            raise BaselineError(
                f"{at}: refused: "
                + "; ".join(
                    ([f"missing or non-finite metric(s) {', '.join(bad)}"] if bad else [])
                    + ([f"joints {extra} the model does not output"] if extra else [])
                )
            )


# --------------------------------------------------------------------------------------------
# applying
# --------------------------------------------------------------------------------------------
def check_model(doc: Mapping[str, Any], model: Mapping[str, Any], allow_change: bool = False) -> str:
    """Raise unless ``model`` (a :func:`model_identity`) is the baseline's model; with
    ``allow_change`` another file with the same outputs is accepted: returns a note saying so."""
    base = doc["model"]
    if model["sha256"] == base["sha256"]:
        return ""
    what = (
        f"model {model['file']} (sha256 {model['sha256'][:12]}) is not the baseline's model"
        f" {base['file']} (sha256 {base['sha256'][:12]})"
    )
    if not allow_change:
        raise BaselineError(
            f"{what}; to judge a candidate model against it pass --allow-model-change; after"
            " accepting a new model write a new baseline (--write-baseline)"
        )
    for key in ("output_joints", "output_unit"):
        if model[key] != base[key]:
            raise BaselineError(f"{what}, and its {key} differ ({model[key]} vs {base[key]}): not comparable")
    return f"{what}: compared as a candidate (--allow-model-change)"


def select_entry(
    doc: Mapping[str, Any], bag: Mapping[str, Any], settings: Mapping[str, Any]
) -> dict[str, Any]:
    """The baseline entry of ``bag`` (a :func:`bag_identity`): by name, else by content (a renamed
    bag); raise when the content differs, no entry fits, or the replay settings differ."""
    bags = doc["bags"]
    entry = bags.get(bag["name"])
    if entry is not None and entry["bag"]["sha256"] != bag["sha256"]:
        raise BaselineError(
            f"bag {bag['name']}: content differs from the bag the baseline was made on"
            f" (sha256 {bag['sha256'][:12]}, baseline {entry['bag']['sha256'][:12]})"
        )
    if entry is None:
        same = [e for e in bags.values() if e["bag"]["sha256"] == bag["sha256"]]
        if not same:
            raise BaselineError(
                f"bag {bag['name']} (sha256 {bag['sha256'][:12]}): the baseline has no entry for it"
                f" (entries: {sorted(bags)})"
            )
        entry = same[0]
    diff = sorted(
        k for k in set(entry["settings"]) | set(settings) if entry["settings"].get(k) != settings.get(k)
    )
    if diff:
        raise BaselineError(
            f"bag {bag['name']}: replay settings differ from the baseline's: "
            + ", ".join(f"{k} {settings.get(k)!r} (baseline {entry['settings'].get(k)!r})" for k in diff)
        )
    return dict(entry)


@dataclass(frozen=True)
class Regression:
    joint: str
    metric: str
    value: float | None
    baseline: float
    tolerance: float
    why: str = ""  # why the value is missing

    def __str__(self) -> str:
        if self.value is None:
            return f"{self.joint} {self.metric}: undefined in this run (baseline {self.baseline:.4f})" + (
                f": {self.why}" if self.why else ""
            )
        op = ">" if LOWER_IS_BETTER[self.metric] else "<"
        bound = (
            self.baseline + self.tolerance if LOWER_IS_BETTER[self.metric] else self.baseline - self.tolerance
        )
        return (
            f"{self.joint} {self.metric} = {self.value:.4f} {op} {bound:.4f}"
            f" (baseline {self.baseline:.4f}, tolerance {self.tolerance:g})"
        )


def compare(report: Mapping[str, Any], entry: Mapping[str, Any]) -> list[Regression]:
    """Every (joint, metric) of the entry that the report misses, has non-finite, or exceeds
    beyond its tolerance: a missing value is a regression, never a pass."""
    tol = entry["tolerances"]
    current = report.get("metrics") or {}
    undefined = report.get("metrics_undefined") or {}
    skipped = report.get("metrics_skipped", "")
    out = []
    for joint, base in entry["metrics"].items():
        for metric in METRIC_NAMES:
            b, t = float(base[metric]), float(tol[metric])
            v = (current.get(joint) or {}).get(metric)
            if v is None or not math.isfinite(v):
                why = (undefined.get(joint) or {}).get(metric) or skipped or "no value"
                out.append(Regression(joint, metric, None, b, t, why))
            elif (LOWER_IS_BETTER[metric] and v > b + t) or (not LOWER_IS_BETTER[metric] and v < b - t):
                out.append(Regression(joint, metric, float(v), b, t))
    gait = entry.get("gait")
    if gait:
        now = gait_values(report)
        for metric in GAIT_METRICS:
            b, t = float(gait["values"][metric]), float(gait["tolerances"][metric])
            v = now.get(metric)
            if v is None or not math.isfinite(v):
                out.append(Regression("gait", metric, None, b, t, "no gait phase scored in this run"))
            elif v > b + t:
                out.append(Regression("gait", metric, float(v), b, t))
    return out
