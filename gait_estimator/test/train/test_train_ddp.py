"""``train`` under torchrun: 2 CPU processes (gloo) keep the single-process results contract.

What can be asserted of data-parallel training here (train/distributed.py): both ranks end with
bit-identical weights and histories; the run directory is written once and its model file
loads; the loss falls; and, because each global batch is split over the ranks and the loss is
scaled so that DDP's gradient average is the whole batch's gradient, the 2-rank result equals
single-process training on the same data to float summation order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from gait_estimator.runtime.model_file import load_model
from gait_estimator.train.trainer import TrainConfig, train_model
from support import ddp_train_job

JOB = Path(ddp_train_job.__file__)


def test_two_cpu_ranks_train_like_one_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = str(JOB.parent.parent)  # `support` for the job; gait_estimator is installed
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    proc = subprocess.run(
        [*cmd, str(JOB), str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    weights = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    losses = [[{k: v for k, v in row.items() if k != "seconds"} for row in r["history"]] for r in ranks]
    assert losses[0] == losses[1]  # same losses -> same decisions on both ranks
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    history = ranks[0]["history"]
    assert len(history) == ddp_train_job.CONFIG["epochs"]
    assert history[-1]["train_loss"] < 0.7 * history[0]["train_loss"]
    assert history[-1]["val_loss"] < history[0]["val_loss"]

    run = tmp_path / "run"
    assert ranks[0]["model_path"] == ranks[1]["model_path"] == str(run / "model.pt")
    for name in ("config.json", "log.csv", "train.log", "checkpoints/best.pt", "checkpoints/last.pt"):
        assert (run / name).is_file(), name
    assert len((run / "log.csv").read_text().splitlines()) == 1 + len(history)
    md = load_model(run / "model.pt", threads=0).metadata
    assert md.architecture == "tcn" and md.training["epochs_run"] == len(history)
    assert md.training["best_epoch"] == ranks[0]["best_epoch"]

    # The same training in this one process: equal up to float summation order.
    data = ddp_train_job.split()
    single = train_model(data.train, data.val, replace(TrainConfig(**ddp_train_job.CONFIG)), None, quiet=True)
    for k, v in single.model.state_dict().items():
        np.testing.assert_allclose(weights[0][k].numpy(), v.numpy(), atol=2e-5, err_msg=k)
    for a, b in zip(history, single.history, strict=True):
        for key in ("train_loss", "val_loss"):
            np.testing.assert_allclose(a[key], b[key], rtol=1e-4, err_msg=key)


def test_job_layout_comes_from_torchruns_environment(monkeypatch) -> None:
    from gait_estimator.errors import ConfigError
    from gait_estimator.train import distributed

    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.current() == distributed.Distributed(0, 1, 0)  # plain single process
    assert distributed.current().all_sum([1.5, 2.0]) == [1.5, 2.0]
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    ctx = distributed.current()
    assert (ctx.rank, ctx.world, ctx.local_rank, ctx.primary, ctx.active) == (3, 4, 1, False, True)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ConfigError, match=r"'RANK' = 4: must be in \[0, WORLD_SIZE=4\)"):
        distributed.current()
    monkeypatch.setenv("RANK", "two")
    with pytest.raises(ConfigError, match="not integers"):
        distributed.current()
