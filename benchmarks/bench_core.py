"""Per-sample cost of the real-time core, one thread.

Setup: 7 IMUs (conventions.IMU_LOCATIONS), 100 Hz, a 50-sample window, 63 channels
(acc, gyro, gravity direction per IMU), a 2-layer LSTM with 64 hidden units
(``runtime.reference_models``; untrained weights run exactly as fast as trained ones).

Prints p50/p99 per stage: synchronizer (per IMU sample: push + poll), features + ring buffer
(per frame), window inference (per call: a whole 50 x 63 window), streaming inference (per
call: one row, recurrent state carried), the window/streaming ratio, the streaming-vs-window
difference of this model, and the whole pipeline per frame in both modes.
Target: streaming inference p99 <= 0.3 ms.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gait_estimator.conventions import IMU_LOCATIONS
from gait_estimator.core.features import FeatureExtractor
from gait_estimator.core.pipeline import EstimatorPipeline
from gait_estimator.core.samples import ImuSample
from gait_estimator.core.synchronizer import ImuSynchronizer, SyncConfig
from gait_estimator.core.windowing import WindowBuffer
from gait_estimator.runtime.model_file import load_model
from gait_estimator.runtime.reference_models import DEFAULT_CHANNELS, make_tiny_lstm_model

MS = 1_000_000
N_FRAMES = int(os.environ.get("BENCH_FRAMES", "3000"))
TARGET_STREAM_P99_MS = 0.3


def stats(ns: list[int]) -> tuple[float, float]:
    a = np.asarray(ns, dtype=np.float64) / 1e6
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def line(name: str, ns: list[int], unit: str) -> tuple[float, float]:
    p50, p99 = stats(ns)
    print(f"  {name:<34} p50 {p50 * 1e3:8.1f} us   p99 {p99 * 1e3:8.1f} us   ({unit}, n={len(ns)})")
    return p50, p99


def make_samples(n_frames: int, seed: int = 0) -> list[tuple[int, ImuSample]]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_frames):
        for i, loc in enumerate(IMU_LOCATIONS):
            d = 10**9 + k * 10 * MS + i * 100_000
            ang = 0.4 * np.sin(0.06 * k + i)
            q = np.array([np.sin(ang / 2), 0.0, 0.0, np.cos(ang / 2)])
            acc = rng.normal(size=3) + [0.0, 0.0, 9.81]
            out.append(
                (d + 1 * MS + int(rng.integers(0, 3 * MS)), ImuSample(loc, d, acc, rng.normal(size=3), q))
            )
    out.sort(key=lambda a: a[0])
    return out


def main() -> int:
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="bench_core_"))
    path = make_tiny_lstm_model(
        tmp / "lstm_2x64.pt", DEFAULT_CHANNELS, window=50, rate=100, hidden=64, layers=2
    )
    model = load_model(path, threads=1)
    md = model.metadata
    print(
        f"bench_core: {len(IMU_LOCATIONS)} IMUs, {md.sample_rate_hz:.0f} Hz, window {md.window}, "
        f"{len(md.input_channels)} channels, LSTM 2 x 64, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, {N_FRAMES} frames"
    )
    items = make_samples(N_FRAMES)

    # 1. Synchronizer, per IMU sample (push + poll), frames collected for the next stage.
    sync = ImuSynchronizer(IMU_LOCATIONS, 100.0, 30 * MS, 100 * MS)
    sync_ns, frames = [], []
    for r, s in items:
        t0 = time.perf_counter_ns()
        sync.push(s, r)
        got = sync.poll(r)
        sync_ns.append(time.perf_counter_ns() - t0)
        frames += got
    # 2. Features + normalisation + ring buffer, per frame.
    fx, buf = FeatureExtractor(md), WindowBuffer(md)
    feat_ns, windows = [], []
    for f in frames:
        t0 = time.perf_counter_ns()
        row, valid = fx.row(f)
        buf.push(row, f.stamp_ns, valid)
        feat_ns.append(time.perf_counter_ns() - t0)
        if buf.full and len(windows) < 500:
            windows.append(buf.window().copy())
    # 3. Window inference, per call.
    win_ns = []
    for k in range(N_FRAMES):
        w = windows[k % len(windows)]
        t0 = time.perf_counter_ns()
        model.predict_window(w)
        win_ns.append(time.perf_counter_ns() - t0)
    # 4. Streaming inference, per call.
    rows = np.stack([w[-1] for w in windows])
    model.reset_stream()
    step_ns = []
    for k in range(N_FRAMES):
        t0 = time.perf_counter_ns()
        model.step(rows[k % len(rows)])
        step_ns.append(time.perf_counter_ns() - t0)
    # 5. Whole pipeline per frame (sync + features + model), both modes.
    pipe_ns = {}
    for mode in ("window", "streaming"):
        pipe = EstimatorPipeline(model, SyncConfig(latency_ns=30 * MS), subject_mass_kg=75.0, mode=mode)
        per_frame, acc = [], 0
        for j, (r, s) in enumerate(items):
            t0 = time.perf_counter_ns()
            pipe.push_sample(s, r)
            acc += time.perf_counter_ns() - t0
            if (j + 1) % len(IMU_LOCATIONS) == 0:
                per_frame.append(acc)
                acc = 0
        pipe_ns[mode] = per_frame[100:]

    print("per stage (one thread):")
    line("synchronizer push+poll", sync_ns, "per IMU sample")
    line("features + normalise + ring buffer", feat_ns, "per frame")
    w50, w99 = line("window inference (50 x 63)", win_ns, "per call")
    s50, s99 = line("streaming inference (1 x 63)", step_ns, "per call")
    line("pipeline, window mode", pipe_ns["window"], "per frame of 7 samples")
    line("pipeline, streaming mode", pipe_ns["streaming"], "per frame of 7 samples")
    print(f"  window/streaming ratio: p50 {w50 / s50:.1f}x, p99 {w99 / s99:.1f}x")

    # Streaming vs window of this model: first window from reset, then a long run.
    x = np.stack([w[-1] for w in windows] * 3)[:1000]
    model.reset_stream()
    stream = np.asarray([model.step(r) for r in x])
    win = model.predict_batch(np.stack([x[k - 49 : k + 1] for k in range(49, len(x))]))
    diff = np.abs(stream[49:] - win)
    print(
        f"  streaming vs window (same model, N.m/kg): first window {diff[0].max():.1e}, "
        f"after warm-up max {diff[50:].max():.1e} (untrained LSTM; output scale {np.abs(win).max():.2f})"
    )
    ok = s99 <= TARGET_STREAM_P99_MS
    print(f"  target streaming p99 <= {TARGET_STREAM_P99_MS} ms: {'met' if ok else 'NOT met'} ({s99:.3f} ms)")
    c = sync.counters
    print(
        f"  synchronizer counters: frames {c['frames']}, invalid {c['invalid_frames']}, late {c['late']}, "
        f"dropped {c['dropped']}, held {c['held']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
