"""Real-kinematics virtual IMUs mixed into training, and leave-one-person-out over the mocap walkers.

The mocap walkers (OpenSim lab data imported with ``gait-estimator import-opensim --batch``:
ID moments, virtual IMUs from the real kinematics, ``extra/moment_valid`` masks) are far too
short to train on alone (25 trials of 1.2-1.45 s), so they enter in a second stage: the model
trained on the domain-randomized simulator is fine-tuned a few epochs on a mix of simulated
subjects and the real trials (replicated so they are about a third of the windows). Masked
samples (a foot loaded off the plates) add nothing to the loss or the metrics.

People, not folders: ``falisse_subject1`` and ``falisse_subject2`` are the same person (the
same recordings processed twice), so both map to one person and are never split.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from gait_estimator.data.dataset import Recording
from gait_estimator.errors import DatasetError
from gait_estimator.train.trainer import TrainConfig, TrainResult, train_model

__all__ = [
    "MOCAP_DIR",
    "PERSON_OF",
    "finetune_mixed",
    "leave_one_person_out",
    "load_mocap_walkers",
    "person_folds",
]

# The committed copy (derived from ../shared/data/real/mocap_walkers; provenance in its README).
MOCAP_DIR = Path(__file__).resolve().parents[2] / "models" / "training_data" / "mocap_walkers"
PERSON_OF = {
    "falisse_subject1": "falisse",
    "falisse_subject2": "falisse",  # the same person as falisse_subject1 (source README)
    "opencap_subject4": "opencap_s4",
}
REAL_SHARE = 0.33  # target share of real windows in a fine-tuning epoch
# A fixed-length fine-tune: min_delta -1e9 counts every epoch as an improvement, so the last epoch
# is kept and no data set (real or simulated) chooses the epoch (validation is only logged).
# Windows of 32 trained rows fit the 1.2-1.45 s trials; a random 3000 windows per epoch and every
# 10th validation window keep the stage to minutes on a 2-core CPU.
FT_CONFIG = {
    "epochs": 6,
    "patience": 6,
    "min_delta": -1e9,
    "seq_rows": 32,
    "train_stride": 4,
    "lr": 1e-4,
    "max_windows_per_epoch": 3000,
    "val_stride": 10,
}


def load_mocap_walkers(path: str | Path | None = None, rate_hz: float = 100.0) -> list[Recording]:
    """Every imported trial, its ``subject_id`` set to the person (see ``PERSON_OF``)."""
    from gait_estimator.train.experiment import load_recordings

    recs = load_recordings(Path(path or MOCAP_DIR), rate_hz, ("acc", "gyro"))
    out = []
    for r in recs:
        if r.subject_id not in PERSON_OF:
            raise DatasetError(f"mocap walkers: trial {r.name} has unknown subject {r.subject_id!r}")
        out.append(replace(r, subject_id=PERSON_OF[r.subject_id], meta={**r.meta, "source": "mocap"}))
    return out


def finetune_mixed(
    model: Any,
    metadata: Any,
    sim: Sequence[Recording],
    real: Sequence[Recording],
    val: Sequence[Recording],
    config: TrainConfig,
    run_dir: str | Path | None,
    info: dict[str, Any],
) -> TrainResult:
    """Fine-tune ``model`` on ``sim`` + ``real`` (replicated to ``REAL_SHARE`` of the windows)."""
    if not real:
        raise DatasetError("fine-tuning on real data needs at least one real recording")
    cfg = replace(copy.deepcopy(config), **FT_CONFIG, progress=False)
    span = cfg.seq_rows + cfg.window - 1
    real_windows = sum(max(0, (len(r) - span) // cfg.train_stride + 1) for r in real)
    sim_windows = sum(max(0, (len(r) - span) // cfg.train_stride + 1) for r in sim)
    if real_windows == 0:
        raise DatasetError(f"no real trial is long enough for a window of {span} samples")
    copies = max(1, round(REAL_SHARE / (1 - REAL_SHARE) * sim_windows / real_windows))
    mixed = list(sim) + [replace(r, name=f"{r.name}#{k}") for k in range(copies) for r in real]
    info = {**info, "real_copies": copies, "real_trials": [r.name for r in real]}
    return train_model(
        mixed, val, cfg, run_dir, init=model, init_metadata=metadata, extra_training_info=info, quiet=True
    )


def person_folds(real: Sequence[Recording]) -> list[tuple[str, list[Recording], list[Recording]]]:
    """``(test person, training trials, test trials)`` per person: no person on both sides."""
    people = sorted({r.subject_id for r in real})
    if len(people) < 2:
        raise DatasetError(f"leave-one-person-out needs at least two people, found {people}")
    return [
        (p, [r for r in real if r.subject_id != p], [r for r in real if r.subject_id == p]) for p in people
    ]


def leave_one_person_out(
    model: Any,
    metadata: Any,
    sim: Sequence[Recording],
    real: Sequence[Recording],
    sim_val: Sequence[Recording],
    config: TrainConfig,
    run_dir: str | Path,
) -> dict[str, Any]:
    """One fold per person: fine-tune on ``sim`` + the other person's trials, test on this one."""
    from gait_estimator.runtime.model_file import load_model
    from gait_estimator.train.evaluate import evaluate_runtime

    folds = {}
    for test_person, train_real, test_real in person_folds(real):
        res = finetune_mixed(
            model,
            metadata,
            sim,
            train_real,
            list(sim_val) + train_real,
            config,
            Path(run_dir) / f"loso_{test_person}",
            {"protocol": "LOSO", "test_person": test_person},
        )
        assert res.model_path is not None
        ev = evaluate_runtime(load_model(res.model_path, threads=0), test_real)
        folds[test_person] = {
            "trained_on": (
                f"stage 1 (simulator only, no real data); stage 2: fine-tuned {len(res.history)} epochs "
                f"on {len(sim)} domain-randomized simulated trials + the trials of "
                f"{sorted({r.subject_id for r in train_real})} ({len(train_real)} trials x "
                f"{res.metadata.training['real_copies']} copies), the last epoch kept (no data chooses it)"
            ),
            "test_trials": [r.name for r in test_real],
            "samples": ev.samples,
            "metrics": ev.metrics,
        }
    return {"people": sorted(folds), "folds": folds}
