"""``gait-estimator sweep``: rank IMU subsets by UG test RMSE (one small model per subset)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from gait_estimator.cli.train import add_data_args

    p = subparsers.add_parser("sweep", help="rank IMU combinations by held-out RMSE (Hur 2025)")
    add_data_args(p)
    p.add_argument(
        "--candidates",
        default="pelvis,thigh_r,shank_r,foot_r",
        help="IMU locations to combine (default pelvis,thigh_r,shank_r,foot_r)",
    )
    p.add_argument("--sizes", default="1,2,3", help="subset sizes (default 1,2,3)")
    p.add_argument("--arch", default="tcn")
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--seq-rows", type=int, default=16)
    p.add_argument("--max-windows", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-subjects", default=None)
    p.add_argument("--run-dir", default="runs/sweep")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gait_estimator.cli.train import load_selected
    from gait_estimator.data.dataset import parse_imus
    from gait_estimator.errors import ConfigError
    from gait_estimator.train.experiment import sweep_imus
    from gait_estimator.train.trainer import TrainConfig

    candidates = parse_imus(args.candidates)
    if not candidates:
        raise ConfigError("candidates", args.candidates, "must name IMU locations")
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError as exc:
        raise ConfigError("sizes", args.sizes, "must be a comma list of integers") from exc
    args.imus = ",".join(candidates)
    recs = load_selected(args)
    signals = tuple(s.strip() for s in args.signals.split(",") if s.strip())
    cfg = TrainConfig(
        architecture=args.arch,
        window=args.window,
        sample_rate_hz=args.rate,
        joints=recs[0].joints,
        epochs=args.epochs,
        seq_rows=args.seq_rows,
        max_windows_per_epoch=args.max_windows,
        seed=args.seed,
        progress=False,
    )
    tests = [s.strip() for s in args.test_subjects.split(",")] if args.test_subjects else None
    rows = sweep_imus(recs, cfg, Path(args.run_dir), candidates, sizes, signals, tests, quiet=False)
    print(f"{'rank':>4}  {'IMUs':<36}{'mean RMSE':>10}{'mean r':>8}")
    for r in rows:
        print(f"{r['rank']:>4}  {'+'.join(r['imus']):<36}{r['mean_rmse']:>10.3f}{r['mean_r']:>8.3f}")
    print(f"wrote {args.run_dir}/sweep.json")
    return 0
