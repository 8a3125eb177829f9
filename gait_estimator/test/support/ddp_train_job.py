"""Run by ``test_train_ddp.py`` under torchrun: train a tiny TCN data-parallel, dump this rank's result.

Usage: ``torchrun --standalone --nproc-per-node 2 ddp_train_job.py OUT_DIR``. Each rank writes
``OUT_DIR/rank<r>.pt`` (final state_dict) and ``OUT_DIR/rank<r>.json`` (history, model path);
rank 0 also writes the run directory ``OUT_DIR/run`` as ``train_model`` always does.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from gait_estimator.data.synthetic import make_synthetic_recordings
from gait_estimator.train import distributed
from gait_estimator.train.protocols import split_ui
from gait_estimator.train.trainer import TrainConfig, train_model

# 65 windows per epoch in batches of 32: the last batch has one window, so rank 1 gets none
# of it and the uneven-split path runs too.
CONFIG = dict(
    architecture="tcn",
    arch_options={"channels": 6, "dilations": [1, 2]},
    window=16,
    epochs=4,
    batch_size=32,
    max_windows_per_epoch=65,
    lr=3e-3,
    patience=4,
    train_stride=2,
    seed=5,
    threads=1,
    device="cpu",
    progress=False,
)


def split():
    recordings = make_synthetic_recordings(n_subjects=1, seconds=10.0, seed=2)
    return split_ui(recordings, recordings[0].subject_id)


def main(out: Path) -> int:
    data = split()
    res = train_model(data.train, data.val, TrainConfig(**CONFIG), out / "run", quiet=True)
    rank = distributed.current().rank
    torch.save(res.model.state_dict(), out / f"rank{rank}.pt")
    info = {"history": res.history, "best_epoch": res.best_epoch, "model_path": str(res.model_path)}
    (out / f"rank{rank}.json").write_text(json.dumps(info))
    distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
