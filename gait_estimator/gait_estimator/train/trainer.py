"""Training loop: windows from recordings, Adam, early stopping, run directory, export.

``train_model`` is the one function every entry point calls (``gait-estimator train``, the
protocols, the sweep, ``make model``). A run directory holds::

    config.json        the TrainConfig and the data split (recording names per split)
    train.log          one line per epoch (also on stderr)
    log.csv            epoch, train_loss, val_loss, lr, seconds
    checkpoints/       best.pt and last.pt (state_dict + config)
    model.pt           the exported TorchScript model with its metadata (runtime.model_file)
    metrics.json       written by the evaluation step, when run

Determinism: ``seed`` fixes weight init, window order and dropout; on the CPU with the same
thread count a run is bit-reproducible.

Under ``torchrun`` the same call trains data-parallel (DistributedDataParallel, gloo on CPU,
NCCL on GPUs) with the same results contract; see ``train/distributed.py``.

The run's configuration and result types live in ``train/train_config.py``, the training
windows in ``train/windows.py``; both are re-exported here, the training API.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gait_estimator.data.dataset import Recording
from gait_estimator.errors import ConfigError, DatasetError
from gait_estimator.runtime.metadata import ModelMetadata
from gait_estimator.train import distributed
from gait_estimator.train.models import build_model, count_parameters
from gait_estimator.train.train_config import TrainConfig, TrainResult, make_metadata, resolve_device
from gait_estimator.train.windows import WindowSet, recording_stats

__all__ = [
    "TrainConfig",
    "TrainResult",
    "WindowSet",
    "export_model",
    "make_metadata",
    "resolve_device",
    "train_model",
]


def _check_recordings(recordings: Sequence[Recording], config: TrainConfig, what: str) -> list[Recording]:
    if not recordings:
        raise DatasetError(f"no {what} recordings")
    out = []
    for r in recordings:
        if abs(r.sample_rate_hz - config.sample_rate_hz) > 1e-6:
            r = r.resample(config.sample_rate_hz)
        out.append(r.select(config.channels, config.joints))
    return out


def _apply_freeze(model: nn.Module, prefixes: Sequence[str]) -> list[str]:
    if not prefixes:
        return []
    names = [n for n, _ in model.named_parameters()]
    frozen = []
    for prefix in prefixes:
        if prefix == "backbone":  # everything but the output head
            hits = [n for n in names if not n.startswith("head.")]
        else:
            hits = [n for n in names if n.startswith(prefix)]
        if not hits:
            raise ConfigError("freeze", prefix, f"matches no parameter; parameters: {names}")
        frozen += hits
    for n, p in model.named_parameters():
        if n in frozen:
            p.requires_grad_(False)
    return sorted(set(frozen))


class _TrainForward(nn.Module):
    """The training forward as one module, so DistributedDataParallel sees (and syncs) it:
    the last ``span`` rows of ``forward_seq`` for sequence training, else ``forward``."""

    def __init__(self, model: nn.Module, span: int) -> None:
        super().__init__()
        self.model, self.span = model, span

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.span > 1:
            return self.model.forward_seq(x)[:, -self.span :]
        return self.model(x)[:, None]


def _log(line: str, fh: Any | None, quiet: bool) -> None:
    if fh is not None:
        fh.write(line + "\n")
        fh.flush()
    if not quiet:
        print(line, file=sys.stderr)


def train_model(
    train: Sequence[Recording],
    val: Sequence[Recording],
    config: TrainConfig,
    run_dir: str | Path | None = None,
    init: nn.Module | None = None,
    init_metadata: ModelMetadata | None = None,
    export: bool = True,
    extra_training_info: dict[str, Any] | None = None,
    quiet: bool = False,
) -> TrainResult:
    """Train ``config.architecture`` on ``train``, early-stop on ``val``, export to ``run_dir``.

    With ``init`` (fine-tuning, protocol UA) the module is copied and trained further; its
    normalisation (``init_metadata``) is kept, so the model still matches its runtime inputs.
    """
    config.validate()
    if not config.channels:
        config.channels = train[0].channels if train else ()
    train = _check_recordings(train, config, "training")
    val = _check_recordings(val, config, "validation")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    ddp, device = distributed.setup(resolve_device(config.device))
    quiet = quiet or not ddp.primary  # one rank reports

    if init is not None:
        if init_metadata is None:
            raise ConfigError("init_metadata", None, "fine-tuning needs the initial model's metadata")
        model = copy.deepcopy(init)
        mean, std = np.asarray(init_metadata.input_mean), np.asarray(init_metadata.input_std)
    else:
        mean, std, y_mean, y_std = recording_stats(train)
        model = build_model(
            config.architecture,
            len(config.channels),
            len(config.joints),
            config.window,
            **config.arch_options,
        )
        model.set_output_scale(y_std, y_mean)
    frozen = _apply_freeze(model, config.freeze)
    span = config.seq_rows if hasattr(model, "forward_seq") else 1
    # Window ends every ``span`` rows (targets tile the data) unless train_stride asks for more/fewer.
    step = config.train_stride if config.train_stride > 1 else span
    train_set = WindowSet(train, mean, std, config.window, span, step)
    val_set = WindowSet(val, mean, std, config.window, 1, max(1, config.val_stride))
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("freeze", list(config.freeze), "leaves no parameter to train")
    net: nn.Module = _TrainForward(model, span)
    if ddp.active:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    opt = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    sched = (
        torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2, min_lr=config.lr / 64)
        if config.lr_schedule == "plateau"
        else None
    )
    scale = model.out_scale.detach().clone()

    run_path = Path(run_dir) if run_dir is not None else None
    writes = run_path is not None and ddp.primary  # rank 0 owns the run directory
    log_fh = None
    csv_rows: list[dict[str, float]] = []
    if writes:
        (run_path / "checkpoints").mkdir(parents=True, exist_ok=True)
        info = {
            "config": config.to_dict(),
            "train": [r.name for r in train],
            "val": [r.name for r in val],
            "frozen": frozen,
            "parameters": count_parameters(model),
        }
        if extra_training_info:
            info.update(extra_training_info)
        (run_path / "config.json").write_text(json.dumps(info, indent=1))
        log_fh = (run_path / "train.log").open("w")

    def squared_errors(batch_ends: np.ndarray, training: bool) -> torch.Tensor:
        """Normalised squared errors ``[B, span, J]`` (training: through the DDP-wrapped net);
        masked targets give 0 and the errors are rescaled so their mean is the mean over valid ones."""
        xb, yb, wb = (train_set if training else val_set).batch_weighted(batch_ends)
        xb, yb = xb.to(device), yb.to(device)
        if training and config.input_noise > 0:
            xb = xb + config.input_noise * torch.randn_like(xb)
        pred = net(xb) if training else model(xb)[:, None]
        err = ((pred - yb) / scale) ** 2
        if wb is None:
            return err
        wb = wb.to(device)
        return err * wb * (wb.numel() / wb.sum().clamp(min=1.0))

    def train_batch_loss(batch_ends: np.ndarray) -> tuple[torch.Tensor, float]:
        """The loss to back-propagate on this rank and its share of the epoch's summed loss.

        Single process: the batch mean. DDP: this rank's rows ``rank::world`` of the global
        batch, summed and scaled by ``world / elements of the global batch``, so the gradient
        average DDP takes is the gradient of the global batch mean (see train/distributed.py).
        """
        if not ddp.active:
            loss = squared_errors(batch_ends, True).mean()
            return loss, float(loss.detach()) * len(batch_ends)
        mine = batch_ends[ddp.rank :: ddp.world]
        if len(mine) == 0:  # a short last batch: DDP still needs this rank's forward/backward
            return squared_errors(batch_ends[:1], True).sum() * 0.0, 0.0
        err = squared_errors(mine, True)
        per_window = err[0].numel()
        total = err.sum()
        loss = total * (ddp.world / (len(batch_ends) * per_window))
        return loss, float(total.detach()) / per_window

    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a requirement
        tqdm = None
    def val_loss_of_model() -> float:
        model.eval()
        mine = val_set.ends[ddp.rank :: ddp.world]  # every window once over all ranks
        with torch.no_grad():
            vt, vc = 0.0, 0
            for i in range(0, len(mine), 1024):
                ends = mine[i : i + 1024]
                vt += float(squared_errors(ends, False).mean()) * len(ends)
                vc += len(ends)
        vt, vc = ddp.all_sum([vt, vc])
        return vt / max(vc, 1)

    best, best_epoch, bad_epochs = math.inf, 0, 0
    best_state = copy.deepcopy(model.state_dict())
    if init is not None:
        # Fine-tuning keeps the starting model (epoch 0) unless an epoch beats it on validation.
        best = val_loss_of_model()
    history: list[dict[str, float]] = []
    t_start = time.perf_counter()
    _log(
        f"train: {config.architecture} {count_parameters(model)} parameters, {len(train_set)} train windows "
        f"x {span} rows, {len(val_set)} val windows, device {device}",
        log_fh,
        quiet,
    )
    bar = (
        tqdm(
            total=config.epochs,
            desc=f"train {config.architecture}",
            unit="epoch",
            file=sys.stderr,
            disable=not config.progress or quiet or tqdm is None,
        )
        if tqdm
        else None
    )
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = rng.permutation(len(train_set))
        if config.max_windows_per_epoch and len(order) > config.max_windows_per_epoch:
            order = order[: config.max_windows_per_epoch]
        total, count = 0.0, 0
        for i in range(0, len(order), config.batch_size):
            ends = train_set.ends[order[i : i + config.batch_size]]
            opt.zero_grad(set_to_none=True)
            loss, batch_total = train_batch_loss(ends)
            loss.backward()
            opt.step()
            total += batch_total
            count += len(ends)
        total = ddp.all_sum([total])[0]
        train_loss, val_loss = total / max(count, 1), val_loss_of_model()
        lr_now = opt.param_groups[0]["lr"]
        if sched is not None:
            sched.step(val_loss)
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "lr": lr_now,
            "seconds": time.perf_counter() - t0,
        }
        history.append(row)
        csv_rows.append(row)
        improved = val_loss < best - config.min_delta
        if improved:
            best, best_epoch, bad_epochs = val_loss, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
            if writes:
                torch.save(
                    {"state_dict": best_state, "epoch": epoch, "config": config.to_dict()},
                    run_path / "checkpoints" / "best.pt",
                )
        else:
            bad_epochs += 1
        _log(
            f"epoch {epoch:3d} train {train_loss:.4f} val {val_loss:.4f} ({row['seconds']:.1f} s)"
            f"{' *' if improved else ''}",
            log_fh,
            quiet or bool(bar and not bar.disable),
        )
        if bar is not None:
            bar.set_postfix(train=f"{train_loss:.3f}", val=f"{val_loss:.3f}", best=best_epoch)
            bar.update(1)
        if bad_epochs >= config.patience:
            _log(
                f"early stop: no val improvement for {config.patience} epochs; best epoch {best_epoch}",
                log_fh,
                quiet,
            )
            break
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t_start
    model.load_state_dict(best_state)
    model.to("cpu").eval()
    for p in model.parameters():
        p.requires_grad_(True)
    training_info = {
        "seed": config.seed,
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "best_val_loss": best,
        "train_seconds": round(seconds, 1),
        "parameters": count_parameters(model),
        "train_recordings": len(train),
        "val_recordings": len(val),
        "subjects_train": sorted({r.subject_id for r in train}),
        "arch_options": {k: list(v) if isinstance(v, tuple) else v for k, v in config.arch_options.items()},
    }
    if extra_training_info:
        training_info.update(extra_training_info)
    metadata = make_metadata(config, mean, std, bool(getattr(model, "STREAMING", False)), training_info)
    model_path = None
    if writes:
        torch.save(
            {"state_dict": model.state_dict(), "epoch": len(history), "config": config.to_dict()},
            run_path / "checkpoints" / "last.pt",
        )
        with (run_path / "log.csv").open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(csv_rows[0]))
            w.writeheader()
            w.writerows(csv_rows)
        if export:
            model_path = export_model(model, metadata, run_path / "model.pt")
        _log(
            f"done: best epoch {best_epoch}, val loss {best:.4f}, {seconds:.1f} s"
            + (f", exported {model_path}" if model_path else ""),
            log_fh,
            quiet,
        )
        if log_fh is not None:
            log_fh.close()
    ddp.barrier()  # the other ranks return once rank 0 has written and verified model.pt
    if run_path is not None and export and not ddp.primary:
        model_path = run_path / "model.pt"
    return TrainResult(model, metadata, history, best_epoch, seconds, run_path, model_path)


def export_model(model: nn.Module, metadata: ModelMetadata, path: str | Path) -> Path:
    """Write ``model`` as a TorchScript model file with ``metadata`` (``runtime.model_file``)."""
    from gait_estimator.runtime.model_file import save_model

    model = model.to("cpu").eval()
    return Path(save_model(model, metadata, path))
