"""``gait-estimator train``: train, export and evaluate a model under one protocol (UI, UG, UA).

Data: a simulator dataset directory (``manifest.json``) or a mapping YAML that lists CSV and
OpenSim trials (see ``gait_estimator.data.loaders``). Writes a run directory (config, logs,
checkpoints, ``model.pt``, ``metrics.json``, plots) and prints the per-joint test table.

Data-parallel: ``torchrun --nproc-per-node N -m gait_estimator.cli.main train ...`` trains with
DistributedDataParallel (``train/distributed.py``); rank 0 writes the same run directory and
prints the same table as a single process would.
"""

from __future__ import annotations

import argparse


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="simulator dataset directory or mapping YAML")
    p.add_argument("--imus", default="all", help="IMU subset, e.g. pelvis,thigh_r,shank_r (default: all)")
    p.add_argument("--signals", default="acc,gyro", help="signal groups per IMU: acc,gyro[,grav|quat|euler]")
    p.add_argument("--joints", default="right", help="right | left | all | comma list of coordinates")
    p.add_argument("--rate", type=float, default=100.0, help="common sample rate (Hz); data are resampled")
    p.add_argument(
        "--calibration-file",
        default=None,
        help="wearer calibration YAML (gait-estimator calibrate) for data of that one wearer: sensor -> "
        "segment frames before features, as the nodes, validate and evaluate apply it",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train + export + evaluate a torque model (UI/UG/UA)")
    add_data_args(p)
    p.add_argument(
        "--arch", default="tcn", help="lstm | gru | cnn | cnn_lstm | cnn_gru_attention | tcn (default tcn)"
    )
    p.add_argument(
        "--arch-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="architecture option, e.g. hidden=64 (repeatable; values parsed as YAML)",
    )
    p.add_argument("--protocol", default="UG", choices=("UI", "UG", "UA"))
    p.add_argument("--test-subjects", default=None, help="UG/UA: comma list (default: last 20%% of subjects)")
    p.add_argument("--val-subject", default=None, help="UG: validation subject (default: last non-test)")
    p.add_argument("--subjects", default=None, help="UI: subjects to train one model each (default all)")
    p.add_argument("--init", default=None, help="UA: the UG model file to fine-tune")
    p.add_argument("--fraction", type=float, default=0.2, help="UA: fraction of the target's data (0.2)")
    p.add_argument("--freeze", default="", help="UA: parameter prefixes to freeze, or 'backbone'")
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--train-stride", type=int, default=1, help="spacing of training windows")
    p.add_argument("--max-windows", type=int, default=0, help="random training windows per epoch (0: all)")
    p.add_argument("--seq-rows", type=int, default=1, help="causal models: rows trained per window")
    p.add_argument("--run-dir", default=None, help="output directory (default runs/<arch>_<protocol>)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=run)


def parse_arch_options(items: list[str]) -> dict:
    import yaml

    from gait_estimator.errors import ConfigError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError("arch-opt", item, "must be KEY=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError("arch-opt", item, f"value is not valid YAML: {exc}") from exc
    return out


def load_selected(args: argparse.Namespace):
    """Recordings of ``--data`` restricted to ``--imus``/``--signals``/``--joints``."""
    from gait_estimator.data.dataset import parse_imus, parse_joints, select_channels
    from gait_estimator.train.experiment import load_recordings

    signals = tuple(s.strip() for s in args.signals.split(",") if s.strip())
    calibration = getattr(args, "calibration_file", None)
    # every axis is loaded (and the quaternion for Euler angles): a calibration turns whole sensors
    extra = ("quat",) if calibration and "euler" in signals else ()
    loaded = tuple(dict.fromkeys(("acc", "gyro", *signals, *extra)))
    recs = load_recordings(args.data, args.rate, signals=loaded)
    if calibration:
        from gait_estimator.core.calibration import apply_to_recordings, read_calibration

        recs = apply_to_recordings(read_calibration(calibration), recs)
    return select_channels(recs, parse_imus(args.imus), signals, parse_joints(args.joints))


def _csv(text: str | None) -> list[str] | None:
    return None if not text else [s.strip() for s in text.split(",") if s.strip()]


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gait_estimator.errors import ConfigError
    from gait_estimator.train import distributed, experiment
    from gait_estimator.train.evaluate import format_table, plot_evaluation, write_json
    from gait_estimator.train.trainer import TrainConfig

    recs = load_selected(args)
    cfg = TrainConfig(
        architecture=args.arch,
        arch_options=parse_arch_options(args.arch_opt),
        window=args.window,
        sample_rate_hz=args.rate,
        channels=recs[0].channels,
        joints=recs[0].joints,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=args.patience,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        train_stride=args.train_stride,
        max_windows_per_epoch=args.max_windows,
        seq_rows=args.seq_rows,
        freeze=tuple(_csv(args.freeze) or ()),
        progress=not args.no_progress,
    )
    run_dir = Path(args.run_dir or f"runs/{args.arch}_{args.protocol}")
    if args.protocol == "UG":
        res = experiment.run_ug(recs, cfg, run_dir, _csv(args.test_subjects), args.val_subject)
    elif args.protocol == "UI":
        res = experiment.run_ui(recs, cfg, run_dir, _csv(args.subjects))
    else:
        if not args.init:
            raise ConfigError("init", None, "UA needs --init <UG model file>")
        model, md = experiment.load_trainable(args.init)
        subjects = _csv(args.test_subjects) or _csv(args.subjects)
        if not subjects:
            raise ConfigError("test-subjects", None, "UA needs the target subject(s)")
        res = experiment.run_ua(recs, model, md, cfg, run_dir, subjects, args.fraction, base_path=args.init)
    if not distributed.current().primary:
        distributed.shutdown()
        return 0  # rank 0 reports and writes metrics.json and the plots
    title = (
        f"{args.arch} {args.protocol}: test set, {res.evaluation.samples} samples, "
        f"training {res.train_seconds:.0f} s"
    )
    print(format_table(res.evaluation, title))
    if res.baseline is not None:
        print(format_table(res.baseline, "UG model (no adaptation) on the same test set"))
    write_json(res.evaluation, run_dir / "metrics.json", {"summary": res.summary()})
    plot_evaluation(res.evaluation, run_dir, rate_hz=args.rate, title=title)
    print(f"run directory: {run_dir}")
    distributed.shutdown()
    return 0
