"""Offline validation speed: ``gait-estimator validate`` as a multiple of real time.

Setup: a simulated 60 s walking trial (seed 3), 7 IMUs (conventions.IMU_LOCATIONS) at 100 Hz
plus the reference torques, written as a bag in each storage (mcap, sqlite3); the shipped
default model (``gait_estimator/models/default.pt``) when it exists, else the untrained
reference LSTM of the regression suite (stated in the output). One process, one torch thread.

Prints, per storage: the full replay (read + pipeline + command shaper + scoring) as a multiple
of real time (target >= 100x), the cost of reading alone (bag -> IMU samples, same fast path),
and the split of the replay's wall time between reading and estimating.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "gait_estimator" / "models" / "default.pt"
SECONDS = 60.0
TARGET = 100.0


def main() -> int:
    import torch

    from gait_estimator.replay.bag import BagReader, imu_source, iter_imu
    from gait_estimator.replay.offline import evaluate, replay_bag
    from gait_estimator.replay.trial_bag import write_trial_bag
    from gait_estimator.runtime.model_file import load_model
    from gait_estimator.runtime.reference_models import make_tiny_lstm_model
    from gait_estimator.sim.generate import sample_subject, simulate_trial

    torch.set_num_threads(1)
    trial = simulate_trial(
        sample_subject(np.random.default_rng(3), "B001"), SECONDS, 1.3, 100.0, seed=3, trial_id="bench"
    )
    with tempfile.TemporaryDirectory() as tmp:
        if DEFAULT_MODEL.is_file():
            model_path, which = DEFAULT_MODEL, "default model (models/default.pt)"
        else:
            model_path = make_tiny_lstm_model(Path(tmp) / "tiny.pt", window=50, hidden=16, seed=0)
            which = "NO default model yet: untrained reference LSTM (window 50, hidden 16, stride 1)"
        model = load_model(model_path, threads=1)
        md = model.metadata
        print(
            f"model: {which}; {md.architecture}, window {md.window}, stride {md.stride}, "
            f"{len(md.input_channels)} channels"
        )
        ok = True
        for storage in ("mcap", "sqlite3"):
            bag = write_trial_bag(Path(tmp) / storage, trial, storage)
            replay_bag(bag, model)  # warm-up (page cache, torch)
            t = time.perf_counter()
            with BagReader(bag) as reader:
                n = sum(1 for _ in iter_imu(reader, imu_source(reader)))
            read_s = time.perf_counter() - t
            best = None
            for _ in range(3):
                t = time.perf_counter()
                result = replay_bag(bag, model)
                report = evaluate(result)
                wall = time.perf_counter() - t
                if best is None or wall < best[0]:
                    best = (wall, result, report)
            wall, result, report = best
            factor = SECONDS / wall
            ok &= factor >= TARGET
            print(f"[{storage}] {SECONDS:.0f} s bag, {n} IMU messages, {result.est_nm.shape[0]} estimates")
            print(
                f"[{storage}] validate: {wall:.3f} s wall = {factor:.1f}x real time (target >= {TARGET:.0f}x:"
                f" {'met' if factor >= TARGET else 'NOT met'})"
            )
            print(
                f"[{storage}] reading alone: {read_s:.3f} s = {SECONDS / read_s:.0f}x real time,"
                f" {1e6 * read_s / n:.1f} us per IMU message"
            )
            print(
                f"[{storage}] inside validate: read {result.timing['read_s']:.3f} s"
                f" ({100 * result.timing['read_s'] / wall:.0f} %), pipeline+commands"
                f" {result.timing['estimate_s']:.3f} s ({100 * result.timing['estimate_s'] / wall:.0f} %),"
                f" per estimate {1e6 * result.timing['estimate_s'] / max(1, result.est_nm.shape[0]):.0f} us;"
                f" mean RMSE {report['mean']['rmse']:.3f} N.m/kg"
            )
    print(f"target >= {TARGET:.0f}x: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
