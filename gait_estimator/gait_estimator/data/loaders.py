"""Loaders that turn data on disk into :class:`~gait_estimator.data.dataset.Recording` objects.

Three sources:

(a) the simulator's dataset directory (``manifest.json`` + one ``.npz`` per trial, see
    :mod:`gait_estimator.sim.dataset`): :func:`load_sim_dataset`;
(b) generic CSV: a time column, IMU channel columns and moment columns, mapped onto our channel
    and joint names by a small YAML file: :func:`load_csv`;
(c) OpenSim inverse-dynamics results (``.sto``/``.mot``, columns such as
    ``hip_flexion_r_moment``) paired with IMU CSV files: :func:`load_opensim`.

Mapping YAML (one file describes every CSV of a lab's export; paths relative to the YAML)::

    sample_rate_hz: 60          # optional when a time column is given (then read from it)
    time_column: time           # optional; seconds unless time_unit says s | ms | us | ns
    time_unit: s
    subject: {id: S01, mass_kg: 72.5}
    moment_unit: N.m            # N.m (divided by mass_kg) or N.m/kg
    imu:                        # "<location>/<signal>": column, or {column, scale}
      pelvis/acc_x: {column: Pelvis_AccX, scale: 9.80665}   # g -> m/s^2
      pelvis/gyro_z: Pelvis_GyrZ
    moments:                    # OpenSim coordinate name: column, or {column, scale}
      hip_flexion_r: {column: HipMoment, scale: -1}          # extension-positive -> OpenSim
    trials:                     # optional: files to load (else pass them explicitly)
      - {csv: s01_walk1.csv}                                  # CSV holding IMU and moments
      - {imu_csv: s01_walk2_imu.csv, sto: s01_walk2_id.sto}   # OpenSim moments + IMU CSV
      - {csv: s02_walk1.csv, subject: {id: S02, mass_kg: 64}} # another subject

For OpenSim files the ``moments`` mapping is optional: columns ``<coordinate>_moment`` (or
``_force``, as OpenSim's ID tool writes) are found by name.
"""

from __future__ import annotations

import copy
import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gait_estimator import conventions
from gait_estimator.data.dataset import Recording, channels_for, resample_array
from gait_estimator.errors import DatasetError

__all__ = [
    "TIME_UNITS",
    "ColumnMap",
    "load_csv",
    "load_mapping",
    "load_mapped_dataset",
    "load_opensim",
    "load_sim_dataset",
    "read_csv_columns",
    "read_sto",
    "recording_from_trial",
]

TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_MAPPING_KEYS = {
    "sample_rate_hz",
    "time_column",
    "time_unit",
    "subject",
    "moment_unit",
    "imu",
    "moments",
    "trials",
    "target_rate_hz",
}


# -- (a) simulator dataset ------------------------------------------------------------------------
def recording_from_trial(trial: Any, signals: Sequence[str] = ("acc", "gyro", "grav")) -> Recording:
    """Convert a :class:`gait_estimator.sim.dataset.Trial` to a :class:`Recording` (N·m/kg).

    Feature values come from :func:`gait_estimator.core.features.channel_matrix`, the code path
    the running pipeline uses, so training and inference see the same channels.
    """
    from gait_estimator.core.features import channel_matrix

    locations = [
        loc for loc in (*conventions.IMU_LOCATIONS, *conventions.OPTIONAL_IMU_LOCATIONS) if loc in trial.imu
    ]
    channels = channels_for(locations, signals)
    mass = float(trial.subject["mass_kg"])
    moments = np.asarray(trial.moment_nm, dtype=np.float64) / mass
    phase = getattr(trial, "phase_r", None)
    valid = getattr(trial, "extras", {}).get("moment_valid")  # written by the OpenSim importer
    return Recording(
        name=str(trial.trial_id),
        subject_id=str(trial.subject.get("id", trial.trial_id)),
        mass_kg=mass,
        sample_rate_hz=float(trial.sample_rate_hz),
        channels=channels,
        inputs=channel_matrix(channels, trial.imu),
        joints=tuple(trial.joint_names),
        moments=moments,
        phase=None if phase is None else np.asarray(phase, dtype=np.float64),
        meta={"speed_mps": float(trial.speed_mps), "source": "sim"},
        valid=None if valid is None else np.asarray(valid) > 0,
    )


def load_sim_dataset(
    directory: str | os.PathLike[str],
    signals: Sequence[str] = ("acc", "gyro", "grav"),
) -> list[Recording]:
    """Every trial of a simulator dataset directory as a recording."""
    from gait_estimator.sim.dataset import load_dataset

    path = Path(directory)
    if not (path / "manifest.json").is_file():
        raise DatasetError(f"{path}: not a simulator dataset (no manifest.json)")
    return [recording_from_trial(t, signals) for t in load_dataset(path)]


# -- mapping YAML -----------------------------------------------------------------------------
class ColumnMap:
    """Validated mapping YAML (see the module docstring)."""

    def __init__(self, raw: Any, source: str = "<mapping>") -> None:
        self.source = source
        if not isinstance(raw, dict):
            raise DatasetError(f"{source}: mapping must be a YAML mapping, got {type(raw).__name__}")
        unknown = sorted(set(raw) - _MAPPING_KEYS)
        if unknown:
            raise DatasetError(f"{source}: unknown key(s) {unknown}; allowed: {sorted(_MAPPING_KEYS)}")
        self.time_column: str | None = raw.get("time_column")
        self.time_unit = str(raw.get("time_unit", "s"))
        if self.time_unit not in TIME_UNITS:
            raise DatasetError(f"{source}: time_unit {self.time_unit!r} must be one of {sorted(TIME_UNITS)}")
        rate = raw.get("sample_rate_hz")
        if rate is not None and not (isinstance(rate, int | float) and rate > 0):
            raise DatasetError(f"{source}: sample_rate_hz {rate!r} must be a number > 0")
        self.sample_rate_hz = None if rate is None else float(rate)
        if self.time_column is None and self.sample_rate_hz is None:
            raise DatasetError(f"{source}: give time_column or sample_rate_hz")
        target = raw.get("target_rate_hz")
        self.target_rate_hz = None if target is None else float(target)
        subject = raw.get("subject") or {}
        if not isinstance(subject, dict):
            raise DatasetError(f"{source}: subject must be a mapping with id and mass_kg")
        self.subject_id = str(subject.get("id", Path(source).stem))
        mass = subject.get("mass_kg")
        self.moment_unit = str(raw.get("moment_unit", "N.m"))
        if self.moment_unit not in ("N.m", "N.m/kg"):
            raise DatasetError(f"{source}: moment_unit {self.moment_unit!r} must be 'N.m' or 'N.m/kg'")
        per_trial = bool(raw.get("trials")) and all(
            isinstance(t, dict) and "subject" in t for t in raw.get("trials") or []
        )
        if mass is None and per_trial:
            self.mass_kg = float("nan")  # every trial names its own subject and mass
        elif mass is None or not isinstance(mass, int | float) or not mass > 0:
            raise DatasetError(
                f"{source}: subject.mass_kg {mass!r} must be a number > 0 (body-mass normalisation needs it)"
            )
        else:
            self.mass_kg = float(mass)
        self.imu = self._columns(raw.get("imu"), "imu", channel=True)
        self.moments = self._columns(raw.get("moments") or {}, "moments", channel=False)
        trials = raw.get("trials") or []
        if not isinstance(trials, list) or not all(isinstance(t, dict) for t in trials):
            raise DatasetError(
                f"{source}: trials must be a list of mappings ({{{{csv: ...}}}} or {{{{imu_csv, sto}}}})"
            )
        self.trials: list[dict[str, str]] = trials

    def _columns(self, raw: Any, key: str, channel: bool) -> dict[str, tuple[str, float]]:
        if not isinstance(raw, dict) or (channel and not raw):
            raise DatasetError(f"{self.source}: '{key}' must be a non-empty mapping of name -> column")
        out: dict[str, tuple[str, float]] = {}
        for name, spec in raw.items():
            name = str(name)
            if channel:
                loc, _, signal = name.partition("/")
                if not signal or not loc:
                    raise DatasetError(f"{self.source}: {key} name {name!r} must be '<location>/<signal>'")
            if isinstance(spec, str):
                out[name] = (spec, 1.0)
            elif isinstance(spec, dict) and isinstance(spec.get("column"), str):
                scale = spec.get("scale", 1.0)
                if not isinstance(scale, int | float):
                    raise DatasetError(f"{self.source}: {key}.{name}.scale {scale!r} must be a number")
                extra = sorted(set(spec) - {"column", "scale"})
                if extra:
                    raise DatasetError(f"{self.source}: {key}.{name} has unknown key(s) {extra}")
                out[name] = (spec["column"], float(scale))
            else:
                raise DatasetError(f"{self.source}: {key}.{name} must be a column name or {{column, scale}}")
        return out


def load_mapping(path: str | os.PathLike[str]) -> ColumnMap:
    import yaml

    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise DatasetError(f"{p}: cannot read mapping: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise DatasetError(f"{p}: mapping is not valid YAML: {exc}") from exc
    return ColumnMap(raw, str(p))


# -- CSV -------------------------------------------------------------------------------------
def read_csv_columns(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Numeric columns of a CSV with a header row (empty cells -> NaN)."""
    p = Path(path)
    try:
        with p.open(newline="") as fh:
            sample = fh.read(4096)
            fh.seek(0)
            try:
                dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
            except csv.Error:
                dialect = csv.excel
            rows = list(csv.reader(fh, dialect))
    except OSError as exc:
        raise DatasetError(f"{p}: cannot read CSV: {exc.strerror or exc}") from exc
    if len(rows) < 2:
        raise DatasetError(f"{p}: CSV needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    body = [r for r in rows[1:] if any(c.strip() for c in r)]
    out: dict[str, np.ndarray] = {}
    for j, name in enumerate(header):
        col = np.full(len(body), np.nan)
        for i, r in enumerate(body):
            cell = r[j].strip() if j < len(r) else ""
            if cell:
                try:
                    col[i] = float(cell)
                except ValueError as exc:
                    raise DatasetError(f"{p}: column '{name}' row {i + 2}: {cell!r} is not a number") from exc
        out[name] = col
    return out


def _time_axis(cols: dict[str, np.ndarray], cmap: ColumnMap, path: Path) -> np.ndarray:
    n = len(next(iter(cols.values())))
    if cmap.time_column is None:
        return np.arange(n) / float(cmap.sample_rate_hz)  # type: ignore[arg-type]
    if cmap.time_column not in cols:
        raise DatasetError(f"{path}: time column '{cmap.time_column}' not found; columns: {sorted(cols)}")
    t = cols[cmap.time_column] * TIME_UNITS[cmap.time_unit]
    if np.any(~np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise DatasetError(f"{path}: time column '{cmap.time_column}' must be finite and strictly increasing")
    return t - t[0]


def _pick(
    cols: dict[str, np.ndarray], spec: dict[str, tuple[str, float]], path: Path, what: str
) -> np.ndarray:
    missing = [c for c, _ in spec.values() if c not in cols]
    if missing:
        raise DatasetError(f"{path}: {what} column(s) {missing} not found; columns: {sorted(cols)}")
    return np.stack([cols[c] * s for c, s in spec.values()], axis=1)


def _fill_gaps(values: np.ndarray, path: Path, names: Sequence[str]) -> np.ndarray:
    """Linearly interpolate isolated NaNs; refuse a column that is mostly empty."""
    out = values.copy()
    idx = np.arange(len(values))
    for k in range(values.shape[1]):
        bad = ~np.isfinite(values[:, k])
        if bad.mean() > 0.5:
            raise DatasetError(f"{path}: column for '{names[k]}' is mostly empty ({bad.mean():.0%} missing)")
        if bad.any():
            out[bad, k] = np.interp(idx[bad], idx[~bad], values[~bad, k])
    return out


def load_csv(
    path: str | os.PathLike[str],
    mapping: ColumnMap | str | os.PathLike[str],
    target_rate_hz: float | None = None,
) -> Recording:
    """One CSV holding the IMU channels and the moments named by ``mapping``."""
    cmap = mapping if isinstance(mapping, ColumnMap) else load_mapping(mapping)
    p = Path(path)
    cols = read_csv_columns(p)
    if not cmap.moments:
        raise DatasetError(f"{cmap.source}: 'moments' mapping is required for CSV files ({p})")
    t = _time_axis(cols, cmap, p)
    imu = _fill_gaps(_pick(cols, cmap.imu, p, "IMU"), p, list(cmap.imu))
    mom = _fill_gaps(_pick(cols, cmap.moments, p, "moment"), p, list(cmap.moments))
    return _build(p.stem, cmap, t, imu, t, mom, list(cmap.moments), target_rate_hz, str(p))


def _build(
    name: str,
    cmap: ColumnMap,
    t_imu: np.ndarray,
    imu: np.ndarray,
    t_mom: np.ndarray,
    mom: np.ndarray,
    joints: Sequence[str],
    target_rate_hz: float | None,
    source: str,
) -> Recording:
    rate = target_rate_hz or cmap.target_rate_hz
    if not cmap.mass_kg > 0:
        raise DatasetError(f"{source}: no subject mass_kg for this file in {cmap.source}")
    start, stop = max(t_imu[0], t_mom[0]), min(t_imu[-1], t_mom[-1])
    if stop - start <= 0:
        raise DatasetError(f"{source}: IMU and moment time ranges do not overlap")
    src_rate = 1.0 / float(np.median(np.diff(t_imu)))
    rate = float(rate or src_rate)
    grid = np.arange(start, stop + 1e-9, 1.0 / rate)
    mom_rate = 1.0 / float(np.median(np.diff(t_mom)))
    inputs = resample_array(t_imu, imu, grid, src_rate)
    moments = resample_array(t_mom, mom, grid, mom_rate)
    if cmap.moment_unit == "N.m":
        moments = moments / cmap.mass_kg
    return Recording(
        name=name,
        subject_id=cmap.subject_id,
        mass_kg=cmap.mass_kg,
        sample_rate_hz=rate,
        channels=tuple(cmap.imu),
        inputs=inputs,
        joints=tuple(joints),
        moments=moments,
        meta={"source": source, "source_rate_hz": src_rate},
    )


# -- OpenSim -----------------------------------------------------------------------------------
def read_sto(path: str | os.PathLike[str]) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """Header key/values and numeric columns of an OpenSim ``.sto``/``.mot`` file.

    Format: free header lines (``key=value``) ending with ``endheader``, then a tab- or
    space-separated column-name row, then numeric rows. Old-style ``.mot`` files whose first
    line is the name, then ``nRows``/``nColumns`` are read the same way.
    """
    p = Path(path)
    try:
        lines = p.read_text().splitlines()
    except OSError as exc:
        raise DatasetError(f"{p}: cannot read OpenSim file: {exc.strerror or exc}") from exc
    try:
        end = next(i for i, line in enumerate(lines) if line.strip().lower() == "endheader")
    except StopIteration as exc:
        raise DatasetError(f"{p}: not an OpenSim storage file (no 'endheader' line)") from exc
    header: dict[str, str] = {}
    for line in lines[:end]:
        if "=" in line:
            k, _, v = line.partition("=")
            header[k.strip()] = v.strip()
    rest = [line for line in lines[end + 1 :] if line.strip()]
    if len(rest) < 2:
        raise DatasetError(f"{p}: OpenSim file has no column names or no data after 'endheader'")
    names = rest[0].split("\t") if "\t" in rest[0] else rest[0].split()
    names = [n.strip() for n in names]
    try:
        data = np.array([[float(v) for v in (r.split("\t") if "\t" in r else r.split())] for r in rest[1:]])
    except ValueError as exc:
        raise DatasetError(f"{p}: non-numeric value in data rows: {exc}") from exc
    if data.ndim != 2 or data.shape[1] != len(names):
        raise DatasetError(
            f"{p}: data rows have {data.shape[-1] if data.ndim == 2 else '?'} values but the "
            f"header names {len(names)} columns"
        )
    return header, {n: data[:, j] for j, n in enumerate(names)}


def _opensim_moment_columns(
    cols: dict[str, np.ndarray], path: Path, joints: Sequence[str]
) -> dict[str, tuple[str, float]]:
    out: dict[str, tuple[str, float]] = {}
    for j in joints:
        for suffix in ("_moment", "_force"):
            if j + suffix in cols:
                out[j] = (j + suffix, 1.0)
                break
    if not out:
        raise DatasetError(
            f"{path}: no moment columns such as '{joints[0]}_moment' found; columns: {sorted(cols)}"
        )
    return out


def load_opensim(
    sto_path: str | os.PathLike[str],
    imu_csv: str | os.PathLike[str],
    mapping: ColumnMap | str | os.PathLike[str],
    target_rate_hz: float | None = None,
    joints: Sequence[str] = conventions.JOINTS,
) -> Recording:
    """OpenSim inverse-dynamics moments (``.sto``/``.mot``) paired with an IMU CSV.

    Both files are put on one uniform grid over their common time range (the IMU rate, or
    ``target_rate_hz``). OpenSim's ``time`` column is used for the moments; the mapping's time
    column (or rate) for the IMU file. Moments keep the OpenSim sign convention.
    """
    cmap = mapping if isinstance(mapping, ColumnMap) else load_mapping(mapping)
    sto, imu_p = Path(sto_path), Path(imu_csv)
    _, mcols = read_sto(sto)
    if "time" not in mcols:
        raise DatasetError(f"{sto}: OpenSim file has no 'time' column")
    t_mom = mcols["time"]
    spec = cmap.moments or _opensim_moment_columns(mcols, sto, joints)
    mom = _fill_gaps(_pick(mcols, spec, sto, "moment"), sto, list(spec))
    icols = read_csv_columns(imu_p)
    t_imu = _time_axis(icols, cmap, imu_p)
    if cmap.time_column is not None:  # same clock as OpenSim: keep absolute times
        t_imu = icols[cmap.time_column] * TIME_UNITS[cmap.time_unit]
    else:
        t_imu = t_imu + t_mom[0]
    imu = _fill_gaps(_pick(icols, cmap.imu, imu_p, "IMU"), imu_p, list(cmap.imu))
    return _build(f"{imu_p.stem}", cmap, t_imu, imu, t_mom, mom, list(spec), target_rate_hz, str(sto))


def load_mapped_dataset(
    mapping_path: str | os.PathLike[str], target_rate_hz: float | None = None
) -> list[Recording]:
    """Every trial listed under ``trials:`` in a mapping YAML (paths relative to the YAML)."""
    cmap = load_mapping(mapping_path)
    base = Path(mapping_path).parent
    if not cmap.trials:
        raise DatasetError(f"{cmap.source}: no 'trials' listed")
    out = []
    for i, trial in enumerate(cmap.trials):
        trial_map = cmap
        if "subject" in trial:  # per-trial subject (one YAML for a multi-subject data set)
            subj = trial["subject"]
            mass = subj.get("mass_kg") if isinstance(subj, dict) else None
            if not isinstance(mass, int | float) or not mass > 0:
                raise DatasetError(f"{cmap.source}: trials[{i}].subject needs mass_kg > 0, got {subj!r}")
            trial_map = copy.copy(cmap)
            trial_map.subject_id, trial_map.mass_kg = str(subj.get("id", f"trial{i}")), float(mass)
        if "csv" in trial:
            out.append(load_csv(base / trial["csv"], trial_map, target_rate_hz))
        elif "imu_csv" in trial and "sto" in trial:
            out.append(load_opensim(base / trial["sto"], base / trial["imu_csv"], trial_map, target_rate_hz))
        else:
            raise DatasetError(f"{cmap.source}: trials[{i}] needs 'csv', or 'imu_csv' and 'sto'")
    return out
