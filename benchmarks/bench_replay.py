"""Offline validation speed: ``gait-estimator validate`` as a multiple of real time.

Setup: a simulated 60 s walking trial (seed 3), 7 IMUs (conventions.IMU_LOCATIONS) at 100 Hz
plus the reference torques, written as a bag in each storage (mcap, sqlite3); the shipped
default model (``gait_estimator/models/default.pt``) when it exists, else the untrained
reference LSTM of the regression suite (stated in the output). One process, one torch thread.

Prints, per storage: the full replay (read + pipeline + command shaper + scoring) as a multiple
of real time (target >= 100x) for the batched path (the default) and the per-sample path
(``--per-sample``), best of 3 (1 for per-sample), wall and process CPU time (the CPU figure is the
one to read on a shared machine); the split of the batched replay between reading the bag and
estimating (synchronizer + features, model, command shaper); and the largest difference between
the two paths' estimates and commands (N.m).

Pool (issue 16 part 3): ``validate DIR`` over 8 bags (copies of the 60 s mcap bag: the same
work each) with ``--workers 1`` and ``--workers 2`` through the CLI code path (pool start-up
included, model loaded once by the parent), best of 3 wall times each, the speedup ratio
(target >= 1.7x) and whether the reports are identical apart from wall-clock figures. The ratio
needs two idle cores: the machine's CPU count and load average are printed with it.

    python benchmarks/bench_replay.py [--part all|single|pool] [--bags 8]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "gait_estimator" / "models" / "default.pt"
SECONDS = 60.0
TARGET = 100.0
POOL_TARGET = 1.7


def _cpu_s() -> float:
    """CPU seconds of this process and its waited-for children (the pool's workers)."""
    import resource

    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + c.ru_utime + c.ru_stime


def bench_pool(bag: Path, model_path: Path, tmp: Path, n_bags: int, reps: int = 3) -> bool:
    """``n_bags`` copies of ``bag`` validated with 1 and 2 workers; prints times, ratio, identity."""
    from gait_estimator.cli.main import main as cli_main
    from gait_estimator.replay.jobs import MEASURED_KEYS

    d = tmp / "pool_bags"
    d.mkdir()
    for i in range(n_bags):
        shutil.copytree(bag, d / f"bag_{i:02d}")
    best: dict[int, tuple[float, float]] = {}
    reports: dict[int, dict] = {}
    for _ in range(reps):
        for workers in (1, 2):
            out = tmp / f"pool_{workers}.json"
            t, c = time.perf_counter(), _cpu_s()
            code = cli_main(
                ["validate", str(d), "--model", str(model_path), "--workers", str(workers), "--quiet"]
                + ["--report", str(out)]
            )
            wall, cpu = time.perf_counter() - t, _cpu_s() - c
            if code != 0:
                print(f"[pool] validate --workers {workers} exited {code}")
                return False
            if workers not in best or wall < best[workers][0]:
                best[workers] = (wall, cpu)
            reports[workers] = json.loads(out.read_text())["bags"]

    def strip(bags: dict) -> dict:
        return {n: {k: v for k, v in r.items() if k not in MEASURED_KEYS} for n, r in bags.items()}

    same = strip(reports[1]) == strip(reports[2])
    (w1, c1), (w2, c2) = best[1], best[2]
    ratio = w1 / w2
    load = os.getloadavg()
    print(
        f"[pool] {n_bags} bags x {SECONDS:.0f} s: 1 worker {w1:.2f} s wall ({c1:.2f} s CPU),"
        f" 2 workers {w2:.2f} s wall ({c2:.2f} s CPU, parent + workers) (best of {reps} wall):"
        f" speedup {ratio:.2f}x (target >= {POOL_TARGET}x: {'met' if ratio >= POOL_TARGET else 'NOT met'});"
        f" pool CPU overhead {100 * (c2 / c1 - 1):+.0f} %; reports identical: {same};"
        f" {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"
        " (the speedup needs 2 idle cores)"
    )
    return same and ratio >= POOL_TARGET


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=("all", "single", "pool"), default="all")
    ap.add_argument("--bags", type=int, default=8, help="bags in the pool benchmark")
    args = ap.parse_args(argv)
    import torch

    from gait_estimator.replay.bag import BagReader, imu_source, iter_imu
    from gait_estimator.replay.offline import ReplayOptions, evaluate, replay_bag
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
        if args.part in ("all", "pool"):
            bag = write_trial_bag(Path(tmp) / "pool_src", trial, "mcap")
            ok &= bench_pool(bag, model_path, Path(tmp), args.bags)
        for storage in ("mcap", "sqlite3") if args.part in ("all", "single") else ():
            bag = write_trial_bag(Path(tmp) / storage, trial, storage)
            replay_bag(bag, model)  # warm-up (page cache, torch)
            t = time.perf_counter()
            with BagReader(bag) as reader:
                n = sum(1 for _ in iter_imu(reader, imu_source(reader)))
            read_s = time.perf_counter() - t
            runs = {}
            for name, options, reps in (
                ("batched", ReplayOptions(), 3),
                ("per-sample", ReplayOptions(batch=False), 1),
            ):
                best = None
                for _ in range(reps):
                    t, c = time.perf_counter(), time.process_time()
                    result = replay_bag(bag, model, options)
                    report = evaluate(result)
                    wall, cpu = time.perf_counter() - t, time.process_time() - c
                    if best is None or wall < best[0]:
                        best = (wall, cpu, result, report)
                runs[name] = best
            n_est = runs["batched"][2].est_nm.shape[0]
            print(f"[{storage}] {SECONDS:.0f} s bag, {n} IMU messages, {n_est} estimates")
            for name, (wall, cpu, result, report) in runs.items():
                factor, cpu_factor = SECONDS / wall, SECONDS / cpu
                if name == "batched":
                    ok &= max(factor, cpu_factor) >= TARGET
                print(
                    f"[{storage}] validate {name:<10} ({result.path}): {wall:.3f} s wall ="
                    f" {factor:.1f}x real time,"
                    f" {cpu:.3f} s CPU = {cpu_factor:.1f}x (target >= {TARGET:.0f}x);"
                    f" mean RMSE {report['mean']['rmse']:.4f} N.m/kg"
                )
            wall, cpu, result, _ = runs["batched"]
            tm = result.timing
            other = tm["estimate_s"] - tm["model_s"] - tm["commands_s"]
            print(
                f"[{storage}] batched split: read {tm['read_s']:.3f} s ({100 * tm['read_s'] / wall:.0f} %),"
                f" estimate {tm['estimate_s']:.3f} s ({100 * tm['estimate_s'] / wall:.0f} %) ="
                f" synchronizer+features {other:.3f} s + model {tm['model_s']:.3f} s"
                f" ({1e6 * tm['model_s'] / max(1, result.est_nm.shape[0]):.1f} us/window)"
                f" + commands {tm['commands_s']:.3f} s; scoring and setup"
                f" {wall - tm['read_s'] - tm['estimate_s']:.3f} s"
            )
            print(
                f"[{storage}] reading alone (iter_imu): {read_s:.3f} s = {SECONDS / read_s:.0f}x real time,"
                f" {1e6 * read_s / n:.1f} us per IMU message"
            )
            slow = runs["per-sample"][2]
            same = np.array_equal(result.est_stamp_ns, slow.est_stamp_ns) and np.array_equal(
                result.est_valid, slow.est_valid
            )
            est_diff = np.abs(result.est_nm - slow.est_nm).max()
            cmd_diff = np.abs(result.cmd_nm - slow.cmd_nm).max()
            print(
                f"[{storage}] batched vs per-sample: max |estimate diff| {est_diff:.2e} N.m,"
                f" max |command diff| {cmd_diff:.2e} N.m, stamps/validity equal: {same}"
            )
    print(
        f"targets (batched >= {TARGET:.0f}x wall or CPU; pool >= {POOL_TARGET}x):"
        f" {'met' if ok else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
