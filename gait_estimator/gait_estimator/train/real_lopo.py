"""Leave-persons-out over the real-walker corpus: evaluate model files, fine-tune on real people.

``python -m gait_estimator.train.real_lopo --corpus build/real_data`` (the corpus from ``make
real-data``; it needs ../shared, the tests do not):

1. Loads every set of the corpus with the dataset loaders, drops the trials ``corpus.json`` marks
   ``duplicate_of`` another one, and groups trials by person (``subject.id`` = ``<set>/<person>``).
2. Splits the people into ``--folds`` folds, stratified by set (:func:`person_folds`): a person's
   trials are all in one fold, so no person is ever on both sides of a split.
3. Scores the reference model files (the shipped ``default.pt`` and ``sim2real_candidate.pt``) on
   every person, pooled and per set, per speed band and per joint (RMSE, r, peak error).
4. Per fold: fine-tunes ``--init`` (the shipped default, trained on the simulator only) on the
   other folds' people, each trial mirrored (legs swapped) and drawn ``--copies`` times with the
   domain randomization of ``sim/randomization.py`` (mounting rotation and position, soft tissue,
   IMU grade noise; :mod:`train.real_augment`), mixed with ``--sim-subjects`` domain-randomized
   simulated subjects; a fixed number of epochs, the last kept (no data chooses the epoch);
   scores the fold's people with that model. The pooled fold predictions are the LOPO figures.
5. Fine-tunes the same way on all people (the final model), runs the Dorschky 2019 real-IMU
   check (``train/sim2real.py``: test only, never used to train or tune) for every model, and
   writes ``<name>_report.{json,md}``. The final model becomes ``<out>/<name>.pt`` only when it
   passes the gate (:func:`gate`): better than the shipped default on the LOPO folds and on
   Dorschky P01 and no joint worse on any real set; otherwise it stays in the run directory.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from gait_estimator import conventions
from gait_estimator.data.dataset import Recording, select_channels
from gait_estimator.errors import DatasetError
from gait_estimator.sim.dataset import Trial
from gait_estimator.sim.randomization import DomainRandomization
from gait_estimator.train.real_scoring import (  # noqa: F401 (re-exported for callers and tests)
    SPEED_BANDS,
    Prediction,
    _mean,
    gate,
    group_metrics,
    predict_all,
    set_of,
    speed_band,
)

__all__ = [
    "SPEED_BANDS",
    "Prediction",
    "dedupe_trials",
    "gate",
    "group_metrics",
    "load_corpus",
    "person_folds",
    "predict_all",
    "set_of",
    "speed_band",
    "split_trials",
    "to_recordings",
]

SIGNALS = ("sagittal",)
# Fine-tuning: fixed length, the last epoch kept (min_delta -1e9: every epoch "improves"), so
# neither the test people nor Dorschky nor a validation split chooses anything.
FT_CONFIG = {
    "epochs": 8,
    "patience": 8,
    "min_delta": -1e9,
    "seq_rows": 32,
    "train_stride": 4,
    "lr": 3e-4,
    "lr_schedule": "none",
    "max_windows_per_epoch": 4000,
    "val_stride": 10,
}


def dedupe_trials(trials: Sequence[Trial], rows: Sequence[dict[str, Any]]) -> list[Trial]:
    """``trials`` less those whose corpus row names a ``duplicate_of`` that is itself present."""
    ids = {t.trial_id for t in trials}
    dup = {r["trial"] for r in rows if r.get("duplicate_of") and r["duplicate_of"] in ids}
    return [t for t in trials if t.trial_id not in dup]


def load_corpus(root: str | Path) -> list[Trial]:
    """Every unique trial of the corpus at ``root`` (``corpus.json`` + one dataset per set)."""
    from gait_estimator.sim.dataset import load_dataset

    root = Path(root)
    index_path = root / "corpus.json"
    if not index_path.is_file():
        raise DatasetError(f"{root}: no corpus.json (build it with `make real-data`)")
    index = json.loads(index_path.read_text())
    out: list[Trial] = []
    for name, entry in index["sets"].items():
        if not entry["trials"]:
            continue
        trials = dedupe_trials(load_dataset(root / name), entry["trials"])
        for t in trials:
            pid = str(t.subject.get("id", ""))
            if set_of(pid) != name:
                raise DatasetError(
                    f"{root / name}: trial {t.trial_id} has person id {pid!r}, not '{name}/...'"
                )
        out += trials
    if not out:
        raise DatasetError(f"{root}: the corpus holds no trial")
    return out


def person_folds(people: Sequence[str], k: int, seed: int = 0) -> list[list[str]]:
    """``k`` disjoint groups of people covering ``people``, each set spread evenly over the folds.

    Within each set the people are shuffled (seeded) and dealt round-robin, continuing where the
    previous set stopped, so fold sizes differ by at most one and a set with fewer people than
    folds still lands in different folds.
    """
    uniq = sorted(set(people))
    if not 2 <= k <= len(uniq):
        raise DatasetError(f"leave-persons-out: {k} folds need 2..{len(uniq)} people, found {len(uniq)}")
    rng = np.random.default_rng(seed)
    folds: list[list[str]] = [[] for _ in range(k)]
    slot = 0
    for s in sorted({set_of(p) for p in uniq}):
        members = [p for p in uniq if set_of(p) == s]
        for i in rng.permutation(len(members)):
            folds[slot % k].append(members[i])
            slot += 1
    return [sorted(f) for f in folds]


def split_trials(trials: Sequence[Trial], test_people: Sequence[str]) -> tuple[list[Trial], list[Trial]]:
    """``(training trials, test trials)``: the test people's trials against everyone else's."""
    test = set(test_people)
    train = [t for t in trials if t.subject["id"] not in test]
    held = [t for t in trials if t.subject["id"] in test]
    missing = test - {t.subject["id"] for t in held}
    if missing:
        raise DatasetError(f"leave-persons-out: no trial of test people {sorted(missing)}")
    return train, held


def to_recordings(trials: Sequence[Trial]) -> list[Recording]:
    """Sagittal-channel recordings (N·m/kg, masks kept) tagged with set and speed in ``meta``."""
    from gait_estimator.data.loaders import recording_from_trial

    recs = []
    for t in trials:
        r = recording_from_trial(t, ("acc", "gyro"))
        recs.append(replace(r, meta={**r.meta, "source": set_of(r.subject_id), "set": set_of(r.subject_id)}))
    return select_channels(recs, conventions.IMU_LOCATIONS, SIGNALS, conventions.JOINTS)


def _augmented(
    trials: Sequence[Trial], copies: int, dr: DomainRandomization, seed: int, mirror: bool
) -> list[Recording]:
    """Training recordings: each trial (and its mirror) drawn ``copies`` times with randomization."""
    from gait_estimator.train.real_augment import mirror_trial, randomize_trial

    rng = np.random.default_rng(seed)
    base = list(trials) + ([mirror_trial(t) for t in trials] if mirror else [])
    out = [randomize_trial(t, dr, rng, f"#{c}") for c in range(copies) for t in base]
    return to_recordings(out)


def finetune(
    init_path: Path,
    train_trials: Sequence[Trial],
    sim: Sequence[Recording],
    args: argparse.Namespace,
    run_dir: Path,
    info: dict[str, Any],
):
    """Fine-tune the model file ``init_path`` on augmented real trials + simulated recordings."""
    from gait_estimator.train.default_model import CONFIG
    from gait_estimator.train.experiment import load_trainable
    from gait_estimator.train.trainer import train_model

    model, md = load_trainable(init_path)
    real = _augmented(train_trials, args.copies, DomainRandomization(), args.seed, not args.no_mirror)
    cfg = replace(
        copy.deepcopy(CONFIG),
        channels=tuple(md.input_channels),
        seed=args.seed,
        threads=args.threads,
        progress=False,
        **{**FT_CONFIG, "epochs": args.epochs, "patience": args.epochs, "lr": args.lr},
    )
    val = to_recordings(list(train_trials)[:: max(1, len(train_trials) // 6)])  # logged only
    info = {
        **info,
        "real_trials": len(train_trials),
        "real_recordings": len(real),
        "sim_recordings": len(sim),
    }
    return train_model(
        list(sim) + real,
        val,
        cfg,
        run_dir,
        init=model,
        init_metadata=md,
        extra_training_info=info,
        quiet=True,
    )


def _trained(
    args: argparse.Namespace, run_dir: Path, trials: Sequence[Trial], sim: Sequence[Recording], info: dict
) -> tuple[Path, float]:
    """The model file of a fine-tune in ``run_dir`` and its training seconds (``--reuse-runs``: an
    existing one, its seconds from its metadata)."""
    path = run_dir / "model.pt"
    if args.reuse_runs and path.is_file():
        from gait_estimator.runtime.model_file import load_model

        return path, float(load_model(path, threads=0).metadata.training.get("train_seconds", 0.0))
    t0 = time.perf_counter()
    res = finetune(Path(args.init), trials, sim, args, run_dir, info)
    assert res.model_path is not None
    return res.model_path, round(time.perf_counter() - t0, 1)


def _sim_heldout(args: argparse.Namespace) -> list[Recording]:
    """The recipe's held-out simulated subjects HS001-HS008 (plain simulator, seed + 1), as in
    ``make model``: reported for every model, never a gate."""
    from gait_estimator.train.default_model import HELDOUT_MINUTES, HELDOUT_SUBJECTS, ensure_dataset
    from gait_estimator.train.experiment import load_recordings

    d = ensure_dataset(Path(args.sim_heldout), HELDOUT_SUBJECTS, HELDOUT_MINUTES, args.seed + 1)
    recs = [r for r in load_recordings(d, 100.0, ("acc", "gyro")) if r.subject_id != "S000"]
    return select_channels(recs, conventions.IMU_LOCATIONS, SIGNALS, conventions.JOINTS)


def _sim_score(model_path: Path, recs: Sequence[Recording]) -> dict[str, Any]:
    from gait_estimator.runtime.model_file import load_model
    from gait_estimator.train.evaluate import evaluate_runtime

    ev = evaluate_runtime(load_model(model_path, threads=0), recs, keep_predictions=False)
    return {j: {"rmse": m["rmse"], "r": m["pearson_r"]} for j, m in ev.metrics.items()}


def _sim_pool(args: argparse.Namespace) -> list[Recording]:
    if args.sim_subjects <= 0:
        return []
    from gait_estimator.train.default_model import RANDOMIZATION, ensure_dataset
    from gait_estimator.train.experiment import load_recordings

    d = ensure_dataset(Path(args.sim_data), args.sim_subjects, 1.0, args.seed, RANDOMIZATION)
    recs = load_recordings(d, 100.0, ("acc", "gyro"))
    return select_channels(recs, conventions.IMU_LOCATIONS, SIGNALS, conventions.JOINTS)


def _score(model_path: Path, recs: Sequence[Recording]) -> list[Prediction]:
    from gait_estimator.runtime.model_file import load_model

    return predict_all(load_model(model_path, threads=0), recs)


def _dorschky(model_path: Path, shared: str | None) -> dict[str, Any]:
    from gait_estimator.train.sim2real import run_sim2real

    try:
        return run_sim2real(model_path, root=Path(shared) / "data" if shared else None)
    except Exception as exc:  # ../shared missing: the report says so
        return {"error": f"{type(exc).__name__}: {exc}"}


def _portable(value: Any) -> Any:
    """A path inside the working directory as a relative one (reports hold no machine paths)."""
    if isinstance(value, str) and Path(value).is_absolute():
        try:
            return str(Path(value).relative_to(Path.cwd()))
        except ValueError:
            return value
    return value


def main(argv: list[str] | None = None) -> int:
    models = Path(__file__).resolve().parents[2] / "models"
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default="build/real_data", help="the corpus of `make real-data`")
    p.add_argument(
        "--shared",
        default=None,
        help="the shared folder with data/real/dorschky2019_imu2d (default: ../shared)",
    )
    p.add_argument("--init", default=str(models / "default.pt"), help="starting model (simulator-trained)")
    p.add_argument(
        "--reference",
        action="append",
        default=None,
        metavar="LABEL=PATH",
        help="model files scored alongside (default: the shipped default and sim2real candidate)",
    )
    p.add_argument("--folds", type=int, default=4)
    p.add_argument("--copies", type=int, default=6, help="randomized draws per trial (and per mirror)")
    p.add_argument("--no-mirror", action="store_true")
    p.add_argument("--epochs", type=int, default=FT_CONFIG["epochs"])
    p.add_argument("--lr", type=float, default=FT_CONFIG["lr"])
    p.add_argument(
        "--sim-subjects", type=int, default=8, help="domain-randomized simulated subjects mixed in"
    )
    p.add_argument("--sim-data", default="build/sim_dr_ft")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument(
        "--sim-heldout",
        default="build/sim_default_heldout",
        help="held-out simulated subjects of `make model` (scored, not a gate); 'none' skips them",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-final", action="store_true", help="only the folds (no model on all people)")
    p.add_argument("--evaluate-only", action="store_true", help="score the reference files, train nothing")
    p.add_argument("--out", default=str(models))
    p.add_argument("--name", default="real_candidate")
    p.add_argument("--run-dir", default="runs/real_lopo")
    p.add_argument(
        "--default-report",
        default=None,
        help="also put the report into this markdown file (e.g. models/default_report.md) as its own section",
    )
    p.add_argument(
        "--reuse-runs",
        action="store_true",
        help="score the fold/final models already in --run-dir instead of training them (report, plots)",
    )
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    t_all = time.perf_counter()
    trials = load_corpus(args.corpus)
    recs = to_recordings(trials)
    people = sorted({r.subject_id for r in recs})
    folds = person_folds(people, args.folds, args.seed)
    joints = conventions.JOINTS
    refs = dict(x.split("=", 1) for x in (args.reference or []))
    if not refs:
        refs = {
            "default": str(models / "default.pt"),
            "sim2real_candidate": str(models / "sim2real_candidate.pt"),
        }
    report: dict[str, Any] = {
        "corpus": str(args.corpus),
        "people": people,
        "trials": len(recs),
        "folds": folds,
        "models": {},
        "settings": {k: _portable(v) for k, v in vars(args).items() if k not in ("reference",)}
        | {"ft_config": FT_CONFIG},
    }
    all_preds: dict[str, list[Prediction]] = {}
    for label, path in refs.items():
        preds = _score(Path(path), recs)
        all_preds[label] = preds
        report["models"][label] = {
            "file": Path(path).name,
            "lopo": group_metrics(preds, joints),
            "dorschky": _dorschky(Path(path), args.shared),
            "note": "never trained on this corpus (scored on every person)"
            if label == "default"
            else "a fixed file scored on every person",
        }
        print(f"[real] scored {label}", file=sys.stderr)
    if not args.evaluate_only:
        sim = _sim_pool(args)
        run = Path(args.run_dir)
        fold_preds: list[Prediction] = []
        fold_seconds = []
        for i, test_people in enumerate(folds):
            train_trials, test_trials = split_trials(trials, test_people)
            test_recs = to_recordings(test_trials)
            path, seconds = _trained(args, run / f"fold{i}", train_trials, sim, {"fold": i})
            fold_seconds.append(seconds)
            fold_preds += _score(path, test_recs)
            print(f"[real] fold {i + 1}/{len(folds)}: {fold_seconds[-1]:.0f} s", file=sys.stderr)
        entry: dict[str, Any] = {
            "lopo": group_metrics(fold_preds, joints),
            "fold_seconds": fold_seconds,
            "note": "each person scored by the fold model that never saw them",
        }
        if not args.no_final:
            path, entry["final_seconds"] = _trained(args, run / "final", trials, sim, {"fold": "all"})
            entry["dorschky"] = _dorschky(path, args.shared)
            entry["gate"] = gate(entry, report["models"]["default"], joints) if "default" in refs else None
            entry["file"] = _portable(str(path))
            if entry["gate"] and entry["gate"]["passed"]:
                dst = Path(args.out) / f"{args.name}.pt"
                shutil.copyfile(path, dst)
                entry["file"] = _portable(str(dst))
        report["models"]["new"] = entry
        all_preds["new"] = fold_preds
    if args.sim_heldout != "none":
        held = _sim_heldout(args)
        for label, entry in report["models"].items():
            path = refs.get(label) or entry.get("file")
            if path:
                entry["sim_heldout"] = _sim_score(Path(path), held)
    report["total_seconds"] = round(time.perf_counter() - t_all, 1)
    out = Path(args.out)
    (out / f"{args.name}_report.json").write_text(json.dumps(report, indent=1, default=float))
    from gait_estimator.train.real_report import plot_sets, write_real_report

    report["plots"] = [str(x) for x in plot_sets(all_preds, out / f"{args.name}_plots")]
    write_real_report(report, out / f"{args.name}_report.md")
    if args.default_report:
        from gait_estimator.train.real_report import update_section

        text = (out / f"{args.name}_report.md").read_text()  # headings one level down in there
        update_section(args.default_report, "#" + text.replace("\n## ", "\n### "))
    print((out / f"{args.name}_report.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
