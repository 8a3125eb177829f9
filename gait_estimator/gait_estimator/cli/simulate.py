"""``gait-estimator simulate``: generate a simulated dataset (and optionally rosbag2 files)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("simulate", help="generate simulated IMU + joint-moment data")
    p.add_argument("--subjects", type=int, default=2, help="number of simulated subjects")
    p.add_argument("--minutes", type=float, default=1.0, help="minutes of walking per subject")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--rate", type=float, default=100.0, choices=[100.0, 200.0, 500.0, 1000.0],
                   help="IMU sample rate, Hz")
    p.add_argument("--trial-seconds", type=float, default=60.0, help="length of one trial file")
    p.add_argument("--bag", action="store_true", help="also write one rosbag2 per trial")
    p.add_argument("--storage", default="mcap", choices=["mcap", "sqlite3"], help="bag storage plugin")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from gait_estimator.errors import ConfigError
    from gait_estimator.sim import generate as gen

    if args.subjects < 1:
        raise ConfigError("--subjects", args.subjects, "must be >= 1")
    if args.minutes <= 0:
        raise ConfigError("--minutes", args.minutes, "must be > 0")
    out = Path(args.out)
    n = len(gen.plan_trials(args.subjects, args.minutes, args.seed, args.trial_seconds))
    with tqdm(total=n, unit="trial", disable=args.no_progress) as bar:
        manifest = gen.generate_dataset(args.subjects, args.minutes, args.seed, out, rate_hz=args.rate,
                                        trial_s=args.trial_seconds, progress=bar.update)
    print(f"dataset: {manifest}")
    if args.bag:
        from gait_estimator.replay.trial_bag import write_trial_bag
        from gait_estimator.sim.dataset import iter_dataset

        for trial in tqdm(list(iter_dataset(out)), unit="bag", disable=args.no_progress):
            path = write_trial_bag(out / "bags" / trial.trial_id, trial, args.storage, overwrite=True)
            print(f"bag: {path}")
    return 0
