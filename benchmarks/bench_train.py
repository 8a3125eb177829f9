"""Training and model benchmarks: default-model training time vs the 15-minute budget, model size,
inference latency of the shipped model, and per-architecture training throughput.

Prints measured figures only. The full ``make model`` time is read from the report that run
wrote (``gait_estimator/models/default_report.json``); this script also measures one epoch of
the same recipe on a small freshly simulated set, so a slow machine shows up here too.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "gait_estimator" / "models"
BUDGET_S = 15 * 60


def main() -> int:
    from gait_estimator import conventions
    from gait_estimator.data.dataset import select_channels
    from gait_estimator.data.synthetic import make_synthetic_recordings
    from gait_estimator.runtime.model_file import load_model
    from gait_estimator.train.default_model import CONFIG, SIGNALS
    from gait_estimator.train.experiment import load_recordings
    from gait_estimator.train.trainer import TrainConfig, train_model

    torch.set_num_threads(CONFIG.threads)
    report_path = MODELS / "default_report.json"
    if report_path.is_file():
        rep = json.loads(report_path.read_text())
        print(
            f"default model: {rep['architecture']}, {rep['parameters']} parameters, "
            f"{rep['size_bytes'] / 1024:.0f} kB file"
        )
        print(
            f"make model (recorded): training {rep['train_seconds']:.0f} s, "
            f"whole recipe {rep['total_seconds']:.0f} s "
            f"= {rep['total_seconds'] / BUDGET_S:.2f} x the 15 min budget ({rep['epochs_run']} epochs, "
            f"{rep['threads']} threads)"
        )
        ug = rep["ug"]["metrics"]
        print("default model UG RMSE (N.m/kg): " + ", ".join(f"{j} {m['rmse']:.3f}" for j, m in ug.items()))
    else:
        print(f"no {report_path}: run `make model` first", file=sys.stderr)

    # Fresh measurement: 2 epochs of the default recipe on 3 newly simulated subjects x 1 min.
    from gait_estimator.sim.generate import generate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        generate_dataset(3, 1.0, 7, tmp)
        sim_s = time.perf_counter() - t0
        recs = select_channels(
            load_recordings(tmp, 100.0, ("acc", "gyro")), conventions.IMU_LOCATIONS, SIGNALS, CONFIG.joints
        )
        cfg = replace(CONFIG, channels=recs[0].channels, epochs=2, progress=False)
        res = train_model(recs[:2], recs[2:], cfg, Path(tmp) / "run", quiet=True)
        print(f"simulation: {sim_s / 3:.2f} s per simulated subject-minute (3 subjects)")
        print(
            f"default recipe on 2 subjects x 1 min: {res.history[-1]['seconds']:.2f} s per epoch "
            "(incl. validation)"
        )
        if report_path.is_file():
            per_epoch = [h["seconds"] for h in rep["history"]]
            print(
                f"recorded make model: {np.mean(per_epoch):.1f} s per epoch "
                f"(median {np.median(per_epoch):.1f} s) "
                f"over {len(per_epoch)} epochs of {len(rep['train_subjects'])} subjects"
            )

        # Inference latency of the shipped model through the core runtime (1 thread).
        model_file = MODELS / "default.pt"
        if model_file.is_file():
            rt = load_model(model_file, threads=1)
            md = rt.metadata
            x = np.random.default_rng(0).normal(size=(md.window, len(md.input_channels))).astype(np.float32)
            for _ in range(20):
                rt.predict_window(x)
            n = 500
            t0 = time.perf_counter()
            for _ in range(n):
                rt.predict_window(x)
            lat = (time.perf_counter() - t0) / n
            print(
                f"default.pt predict_window: {lat * 1e3:.3f} ms per estimate (1 thread) = "
                f"{lat * md.sample_rate_hz:.3f} of the {1e3 / md.sample_rate_hz:.0f} ms sample period"
            )

    # Training throughput per architecture (table sizes) on synthetic data: windows per second.
    torch.set_num_threads(1)
    from gait_estimator.train.table import TABLE_ARCHS

    syn = make_synthetic_recordings(2, 30.0, locations=conventions.IMU_LOCATIONS, seed=0)
    for arch, spec in TABLE_ARCHS.items():
        cfg = TrainConfig(
            architecture=arch,
            arch_options=dict(spec["arch_options"]),
            window=64,
            epochs=1,
            seq_rows=spec.get("seq_rows", 1),
            train_stride=spec.get("train_stride", 1),
            progress=False,
            max_windows_per_epoch=2000,
        )
        res = train_model(syn[:1], syn[1:], cfg, None, quiet=True)
        print(
            f"train {arch:<18} {res.metadata.training['parameters']:>7} params  "
            f"{res.history[0]['seconds']:6.2f} s "
            f"per epoch of <= 2000 windows x {cfg.seq_rows} rows (1 thread)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
