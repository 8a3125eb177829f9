"""Simulated trials on disk: one deterministic ``.npz`` per trial plus ``manifest.json``.

Array names inside a trial file: ``time_ns``, ``moment_nm``, ``phase_r``, ``event/<name>``,
``imu/<location>/<signal>`` (acc, gyro, quat, valid, stamp_ns) and ``extra/<name>``. The zip
entries carry a fixed date, so the same seed gives byte-identical files. ``load_trial`` can
memory-map nothing (npz is compressed) but reads only the arrays asked for.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gait_estimator.errors import DatasetError

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass
class Trial:
    trial_id: str
    subject: dict
    speed_mps: float
    sample_rate_hz: float
    time_ns: np.ndarray
    imu: dict
    joint_names: tuple
    moment_nm: np.ndarray
    phase_r: np.ndarray
    events: dict
    extras: dict = field(default_factory=dict)

    @property
    def moment_nm_per_kg(self) -> np.ndarray:
        return self.moment_nm / float(self.subject["mass_kg"])


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def trial_arrays(trial: Trial) -> dict[str, np.ndarray]:
    arr = {"time_ns": trial.time_ns, "moment_nm": trial.moment_nm, "phase_r": trial.phase_r}
    for k, v in trial.events.items():
        arr[f"event/{k}"] = np.asarray(v, dtype=np.int64)
    for loc, sig in trial.imu.items():
        for k, v in sig.items():
            arr[f"imu/{loc}/{k}"] = v
    for k, v in trial.extras.items():
        arr[f"extra/{k}"] = v
    return arr


def trial_meta(trial: Trial, filename: str) -> dict:
    return {
        "trial_id": trial.trial_id, "file": filename, "subject": trial.subject,
        "speed_mps": trial.speed_mps, "sample_rate_hz": trial.sample_rate_hz,
        "n_samples": int(trial.time_ns.size), "joint_names": list(trial.joint_names),
        "imu_locations": list(trial.imu),
    }


def write_dataset(directory, trials, manifest_extra: dict | None = None) -> Path:
    """Write trials (iterable) and the manifest; returns the manifest path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    metas = []
    for trial in trials:
        name = f"{trial.trial_id}.npz"
        _write_npz(directory / name, trial_arrays(trial))
        metas.append(trial_meta(trial, name))
    manifest = {
        "format": "gait_estimator.sim", "format_version": FORMAT_VERSION,
        "units": {"time_ns": "ns", "acc": "m/s^2 (specific force, sensor frame)",
                  "gyro": "rad/s (sensor frame)", "quat": "x,y,z,w sensor->world (REP 103)",
                  "moment_nm": "N m, OpenSim sign convention", "phase_r": "[0,1) since right heel strike",
                  "events": "sample indices", "extra/grf_*": "N (x forward, z up)",
                  "extra/cop_*": "m (world x)", "extra/angles_rad": "rad, OpenSim coordinates"},
        "trials": metas,
    }
    manifest.update(manifest_extra or {})
    path = directory / MANIFEST
    path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def load_trial(path, meta: dict | None = None, load_extras: bool = True) -> Trial:
    """One trial from its ``.npz`` (``meta`` from the manifest; read from it when omitted)."""
    path = Path(path)
    if meta is None:
        man = path.parent / MANIFEST
        try:
            metas = json.loads(man.read_text(encoding="utf-8"))["trials"]
            meta = next(m for m in metas if m["file"] == path.name)
        except (OSError, ValueError, KeyError, StopIteration) as exc:
            raise DatasetError(f"{path}: no entry in {man}: {exc}") from exc
    try:
        with np.load(path, allow_pickle=False) as z:
            names = z.files
            imu: dict = {}
            events, extras = {}, {}
            for n in names:
                key = n[:-4] if n.endswith(".npy") else n
                parts = key.split("/")
                if parts[0] == "imu":
                    imu.setdefault(parts[1], {})[parts[2]] = z[n]
                elif parts[0] == "event":
                    events[parts[1]] = z[n]
                elif parts[0] == "extra" and load_extras:
                    extras[parts[1]] = z[n]
            time_ns, moment, phase = z["time_ns"], z["moment_nm"], z["phase_r"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{path}: cannot read trial: {exc}") from exc
    order = meta.get("imu_locations", list(imu))
    imu = {loc: imu[loc] for loc in order if loc in imu}
    return Trial(meta["trial_id"], meta["subject"], float(meta["speed_mps"]), float(meta["sample_rate_hz"]),
                 time_ns, imu, tuple(meta["joint_names"]), moment, phase, events, extras)


def load_manifest(directory) -> dict:
    path = Path(directory) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read manifest: {exc}") from exc


def iter_dataset(directory, load_extras: bool = False):
    """Yield trials one at a time (memory-friendly)."""
    directory = Path(directory)
    for meta in load_manifest(directory)["trials"]:
        yield load_trial(directory / meta["file"], meta, load_extras=load_extras)


def load_dataset(directory, load_extras: bool = True) -> list[Trial]:
    return list(iter_dataset(directory, load_extras=load_extras))
