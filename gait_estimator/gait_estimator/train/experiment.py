"""Protocol runs (UI, UG, UA) and the IMU-combination sweep, shared by the CLI and the scripts.

Each run trains through :func:`~gait_estimator.train.trainer.train_model`, exports the model
file, reloads it through the core runtime and evaluates the *file* on the test split, so every
reported number is what the running pipeline would produce.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gait_estimator.data.dataset import Recording, channels_for, subjects_of
from gait_estimator.errors import ConfigError, DatasetError, ModelError
from gait_estimator.runtime.metadata import ModelMetadata
from gait_estimator.train.evaluate import EvalResult, evaluate_runtime
from gait_estimator.train.models import build_model
from gait_estimator.train.protocols import split_ua, split_ug, split_ui
from gait_estimator.train.trainer import TrainConfig, TrainResult, train_model

__all__ = [
    "ProtocolResult",
    "load_recordings",
    "load_trainable",
    "run_ua",
    "run_ug",
    "run_ui",
    "sweep_imus",
]


@dataclass
class ProtocolResult:
    protocol: str
    evaluation: EvalResult
    train_seconds: float
    runs: list[TrainResult]
    baseline: EvalResult | None = None  # UA: the UG model on the same test data

    def summary(self) -> dict[str, Any]:
        out = {
            "protocol": self.protocol,
            "train_seconds": round(self.train_seconds, 1),
            **self.evaluation.to_dict(),
        }
        out.pop("per_recording", None)
        if self.baseline is not None:
            out["baseline_ug"] = {"metrics": self.baseline.metrics, "mean_rmse": self.baseline.mean("rmse")}
        return out


def load_recordings(
    path: str | os.PathLike[str],
    rate_hz: float | None = 100.0,
    signals: Sequence[str] = ("acc", "gyro", "grav"),
) -> list[Recording]:
    """A simulator dataset directory or a mapping YAML listing CSV / OpenSim trials."""
    from gait_estimator.data import loaders

    p = Path(path)
    if p.is_dir():
        recs = loaders.load_sim_dataset(p, signals)
    elif p.suffix.lower() in (".yaml", ".yml"):
        recs = loaders.load_mapped_dataset(p, rate_hz)
    else:
        raise DatasetError(f"{p}: give a simulator dataset directory (manifest.json) or a mapping YAML")
    if rate_hz:
        recs = [r.resample(rate_hz) for r in recs]
    return recs


def load_trainable(path: str | os.PathLike[str]) -> tuple[torch.nn.Module, ModelMetadata]:
    """An eager, trainable module rebuilt from a model file (architecture + options in metadata)."""
    from gait_estimator.runtime.model_file import load_model

    runtime = load_model(path, threads=0)
    md = runtime.metadata
    module = getattr(runtime, "module", None)  # TorchScript and .pt2 keep parameter names; ONNX does not
    if module is None:
        raise ModelError(
            f"{path}: a trainable model cannot be rebuilt from an ONNX file; use the run directory or "
            "its TorchScript (.pt) or .pt2 file"
        )
    options = dict(md.training.get("arch_options", {}))
    model = build_model(md.architecture, len(md.input_channels), len(md.output_joints), md.window, **options)
    try:
        model.load_state_dict(module.state_dict())
    except RuntimeError as exc:
        raise ModelError(
            f"{path}: cannot rebuild a trainable '{md.architecture}' from the file: {exc}"
        ) from exc
    return model, md


def _eval(result: TrainResult, test: Sequence[Recording]) -> EvalResult:
    from gait_estimator.runtime.model_file import load_model

    if result.model_path is None:
        raise ModelError("training did not export a model file (no run directory)")
    return evaluate_runtime(load_model(result.model_path, threads=0), test)


def run_ug(
    recordings: Sequence[Recording],
    config: TrainConfig,
    run_dir: str | Path,
    test_subjects: Sequence[str] | None = None,
    val_subject: str | None = None,
    quiet: bool = False,
) -> ProtocolResult:
    subjects = subjects_of(recordings)
    if test_subjects is None:
        n_test = max(1, len(subjects) // 5)
        test_subjects = subjects[-n_test:]
    split = split_ug(recordings, test_subjects, val_subject)
    res = train_model(
        split.train,
        split.val,
        config,
        run_dir,
        quiet=quiet,
        extra_training_info={"protocol": "UG", "test_subjects": list(test_subjects)},
    )
    ev = _eval(res, split.test)
    return ProtocolResult("UG", ev, res.train_seconds, [res])


def run_ui(
    recordings: Sequence[Recording],
    config: TrainConfig,
    run_dir: str | Path,
    subjects: Sequence[str] | None = None,
    quiet: bool = False,
) -> ProtocolResult:
    """One model per subject; metrics pooled over the subjects' test parts."""
    subjects = list(subjects or subjects_of(recordings))
    runs, tests = [], []
    for s in subjects:
        split = split_ui(recordings, s)
        res = train_model(
            split.train,
            split.val,
            copy.deepcopy(config),
            Path(run_dir) / f"UI_{s}",
            quiet=quiet,
            extra_training_info={"protocol": "UI", "subject": s},
        )
        runs.append(res)
        tests.append(_eval(res, split.test))
    return ProtocolResult("UI", _pool(tests), sum(r.train_seconds for r in runs), runs)


def run_ua(
    recordings: Sequence[Recording],
    base_model: torch.nn.Module,
    base_metadata: ModelMetadata,
    config: TrainConfig,
    run_dir: str | Path,
    subjects: Sequence[str],
    fraction: float = 0.2,
    base_path: str | Path | None = None,
    quiet: bool = False,
) -> ProtocolResult:
    """Fine-tune the UG model per target subject on ``fraction`` of its data; compare with UG."""
    from gait_estimator.runtime.model_file import load_model

    if not 1 <= config.epochs <= 15:
        raise ConfigError("epochs", config.epochs, "UA fine-tuning runs 1-15 epochs")
    cfg = replace(
        config,
        channels=tuple(base_metadata.input_channels),
        joints=tuple(base_metadata.output_joints),
        window=base_metadata.window,
        architecture=base_metadata.architecture,
        sample_rate_hz=base_metadata.sample_rate_hz,
    )
    runs, tests, base_tests = [], [], []
    base_rt = load_model(base_path, threads=0) if base_path is not None else None
    for s in subjects:
        split = split_ua(recordings, s, fraction)
        res = train_model(
            split.train,
            split.val,
            copy.deepcopy(cfg),
            Path(run_dir) / f"UA_{s}",
            init=base_model,
            init_metadata=base_metadata,
            quiet=quiet,
            extra_training_info={
                "protocol": "UA",
                "subject": s,
                "fraction": fraction,
                "freeze": list(cfg.freeze),
            },
        )
        runs.append(res)
        tests.append(_eval(res, split.test))
        if base_rt is not None:
            base_tests.append(evaluate_runtime(base_rt, split.test))
    return ProtocolResult(
        "UA",
        _pool(tests),
        sum(r.train_seconds for r in runs),
        runs,
        _pool(base_tests) if base_tests else None,
    )


def _pool(results: Sequence[EvalResult]) -> EvalResult:
    """Pool predictions of several evaluations (same joints) into one set of metrics."""
    from gait_estimator.train.evaluate import masked_joint_metrics

    joints = results[0].joints
    preds = [x for r in results for x in r.predictions]
    pe = np.concatenate([p for _, p, _, _ in preds])
    re = np.concatenate([r for _, _, r, _ in preds])
    per = {k: v for r in results for k, v in r.per_recording.items()}
    return EvalResult(joints, masked_joint_metrics(pe, re, joints), per, preds, len(pe))


def sweep_imus(
    recordings: Sequence[Recording],
    config: TrainConfig,
    run_dir: str | Path,
    candidates: Sequence[str],
    sizes: Sequence[int],
    signals: Sequence[str] = ("acc", "gyro"),
    test_subjects: Sequence[str] | None = None,
    quiet: bool = True,
) -> list[dict[str, Any]]:
    """Train a UG model per IMU subset; rank the subsets by mean RMSE (as Hur 2025)."""
    rows = []
    combos = [c for k in sizes for c in itertools.combinations(candidates, k)]
    if not combos:
        raise ConfigError("sizes", list(sizes), f"gives no IMU subset of {list(candidates)}")
    for combo in combos:
        cfg = replace(copy.deepcopy(config), channels=channels_for(combo, signals))
        t0 = time.perf_counter()
        res = run_ug(recordings, cfg, Path(run_dir) / "+".join(combo), test_subjects, quiet=quiet)
        rows.append(
            {
                "imus": list(combo),
                "n_imus": len(combo),
                "mean_rmse": res.evaluation.mean("rmse"),
                "mean_r": res.evaluation.mean("pearson_r"),
                "rmse": {j: res.evaluation.metrics[j]["rmse"] for j in res.evaluation.joints},
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
        if not quiet:
            print(f"sweep {'+'.join(combo)}: mean RMSE {rows[-1]['mean_rmse']:.3f}")
    rows.sort(key=lambda r: r["mean_rmse"])
    for rank, r in enumerate(rows, 1):
        r["rank"] = rank
    (Path(run_dir) / "sweep.json").write_text(json.dumps(rows, indent=1))
    return rows
