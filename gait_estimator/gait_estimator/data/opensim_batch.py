"""Batch import of OpenSim lab folders: trial discovery (model, IK, GRF, ExternalLoads by name),
the coordinate-name check, and the tolerant per-trial import (one clear line per bad file) that
``import-opensim --batch``, ``import-lab``, ``import-pig`` and ``make real-data`` share."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from gait_estimator.data.opensim_import import ImportedTrial, TrialSpec, import_trial
from gait_estimator.data.opensim_kinematics import ImuSite
from gait_estimator.errors import DatasetError

__all__ = ["check_names", "discover_trials", "import_dataset", "import_tolerant"]

_ROLE_TOKENS = {"ik", "grf", "id", "mtp", "external", "loads", "forces"}


def _tokens(path: Path) -> set[str]:
    stem = path.name.split(".")[0].lower()
    return {t for t in stem.replace("-", "_").split("_") if t} - _ROLE_TOKENS


def discover_trials(folder: str | Path) -> list[TrialSpec]:
    """Trials of a lab folder: a ``trials.json``/``trials.yaml`` (``{trials: [{trial, model, ik, grf,
    external_loads, id, given_id, subject}]}``, paths relative to the folder), else found by name:
    one ``.osim`` model, IK files with ``ik`` in the name, GRF files with ``grf`` matched on the
    remaining name tokens (``IK_gait_14.mot`` + ``GRF_gait_14.mot``,
    ``walking1_ik.mot`` + ``walking1_grf.mot``)."""
    import json

    import yaml

    base = Path(folder)
    if not base.is_dir():
        raise DatasetError(f"{base}: not a folder")
    for name in ("trials.json", "trials.yaml", "trials.yml"):
        if (base / name).is_file():
            try:
                text = (base / name).read_text()
                raw = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
            except (OSError, ValueError, yaml.YAMLError) as exc:
                raise DatasetError(f"{base / name}: cannot read: {exc}") from exc
            items = raw.get("trials") if isinstance(raw, dict) else None
            if not isinstance(items, list) or not items:
                raise DatasetError(f"{base / name}: needs a non-empty list 'trials'")
            out = []
            for i, it in enumerate(items):
                if not isinstance(it, dict) or not all(k in it for k in ("model", "ik")):
                    raise DatasetError(f"{base / name}: trials[{i}] needs at least 'model' and 'ik'")
                if it.get("excluded"):
                    continue
                opt = {
                    k: (base / it[k] if it.get(k) else None) for k in ("grf", "external_loads", "given_id")
                }
                out.append(
                    TrialSpec(
                        str(it.get("trial", Path(it["ik"]).name.split(".")[0])),
                        base / it["model"],
                        base / it["ik"],
                        opt["grf"],
                        opt["external_loads"],
                        base / it["id"] if it.get("id") else None,
                        opt["given_id"],
                        it.get("subject"),
                    )
                )
            return out
    models = sorted(base.rglob("*.osim")) + sorted(base.rglob("*.osim.gz"))
    if len(models) != 1:
        raise DatasetError(
            f"{base}: found {len(models)} .osim models; put exactly one in the folder "
            "or list the trials in trials.json"
        )
    files = sorted(p for p in base.rglob("*") if p.is_file() and (".mot" in p.name or ".sto" in p.name))
    role = {p: p.name.split(".")[0].lower().replace("-", "_").split("_") for p in files}
    iks = [p for p in files if "ik" in role[p]]
    grfs = [p for p in files if "grf" in role[p]]
    if not iks:
        raise DatasetError(f"{base}: no IK motion (a .mot file with 'ik' in its name)")
    out = []
    for ik in iks:
        key = _tokens(ik)
        match = [g for g in grfs if _tokens(g) and _tokens(g) <= key]
        if not match:
            raise DatasetError(
                f"{base}: no GRF file (name with 'grf' and tokens {sorted(key)}) for {ik.name}"
            )
        grf = max(match, key=lambda g: len(_tokens(g)))
        out.append(
            TrialSpec(
                "_".join(sorted(key)) or ik.stem, models[0], ik, grf, subject=models[0].name.split(".")[0]
            )
        )
    return out


def check_names(names: Sequence[str]) -> None:
    if not names:
        raise DatasetError("no trials to import")
    dup = sorted({n for n in names if list(names).count(n) > 1})
    if dup:
        raise DatasetError(f"trial names must be unique; repeated: {dup}")


def import_tolerant(
    items: Sequence[Any],
    importer: Callable[[Any], ImportedTrial],
    out_dir: str | Path,
    extra: dict,
    desc: str,
    progress: bool = True,
) -> tuple[Path | None, list[dict], list[str]]:
    """Batch import that goes on past bad trials: each failure (a :class:`DatasetError`) is one
    printed line and one entry of the returned failures. Writes the dataset of the good trials
    (manifest ``extra`` + ``reports`` + ``refused``); returns (manifest or None, reports, failures)."""
    from tqdm import tqdm

    from gait_estimator.sim.dataset import write_dataset

    trials, reports, failures = [], [], []
    bar = tqdm(items, desc=desc, unit="trial", disable=not progress)
    for item in bar:
        bar.set_postfix_str(str(getattr(item, "name", item))[-40:])
        try:
            res = importer(item)
        except DatasetError as exc:
            failures.append(str(exc))
            tqdm.write(f"skipped: {exc}")
            continue
        trials.append(res.trial)
        reports.append(res.report)
    if not trials:
        return None, reports, failures
    return (
        write_dataset(out_dir, trials, {**extra, "reports": reports, "refused": failures}),
        reports,
        failures,
    )


def import_dataset(
    specs: Iterable[TrialSpec],
    out_dir: str | Path,
    sites: Sequence[ImuSite] | None = None,
    cutoff_hz: float = 6.0,
    rate_hz: float = 100.0,
    progress: bool = True,
) -> tuple[Path, list[dict]]:
    """Import every trial and write the dataset directory; returns (manifest path, reports)."""
    from tqdm import tqdm

    from gait_estimator.sim.dataset import write_dataset

    specs = list(specs)
    check_names([s.name for s in specs])
    trials, reports = [], []
    for spec in tqdm(specs, desc="import-opensim", unit="trial", disable=not progress):
        res = import_trial(spec, sites, cutoff_hz, rate_hz)
        trials.append(res.trial)
        reports.append(res.report)
    extra = {
        "source": "gait_estimator.data.opensim_import",
        "opensim_import": reports,
        "moment_valid": "extra/moment_valid [N, 6]: 1 = that leg's moments are physically valid",
    }
    return write_dataset(out_dir, trials, extra), reports
