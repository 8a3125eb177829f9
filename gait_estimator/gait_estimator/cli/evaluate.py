"""``gait-estimator evaluate``: a model file on recordings -> per-joint table, JSON, PNG plots."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="per-joint RMSE/NRMSE/r/R2 of a model file on data")
    p.add_argument("model", help="model file (.pt) exported by train/export")
    p.add_argument("--data", required=True, help="simulator dataset directory or mapping YAML")
    p.add_argument("--subjects", default=None, help="comma list of subjects to evaluate (default all)")
    p.add_argument(
        "--part",
        default="all",
        choices=("all", "test"),
        help="'test': only the last 20%% of each recording (the UI/UA test part)",
    )
    p.add_argument("--out", default=None, help="directory for metrics.json and plots (default: beside model)")
    p.add_argument(
        "--calibration-file", default=None, help="wearer calibration YAML, applied before features"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gait_estimator.data.dataset import split_by_subject
    from gait_estimator.errors import ConfigError
    from gait_estimator.runtime.model_file import load_model
    from gait_estimator.train.evaluate import evaluate_runtime, format_table, plot_evaluation, write_json
    from gait_estimator.train.experiment import load_recordings

    runtime = load_model(args.model, threads=0)
    md = runtime.metadata
    signals = ("acc", "gyro", "grav", "quat", "euler")  # every channel kind a model may read
    recs = load_recordings(args.data, md.sample_rate_hz, signals=signals)
    if args.calibration_file:  # sensor -> segment frames before features, as the nodes do
        from gait_estimator.core.calibration import apply_to_recordings, read_calibration

        recs = apply_to_recordings(read_calibration(args.calibration_file), recs)
    if args.subjects:
        by = split_by_subject(recs)
        want = [s.strip() for s in args.subjects.split(",") if s.strip()]
        missing = [s for s in want if s not in by]
        if missing:
            raise ConfigError("subjects", args.subjects, f"unknown subject(s) {missing}; have {sorted(by)}")
        recs = [r for s in want for r in by[s]]
    if args.part == "test":
        recs = [r.fraction(0.8, 1.0, ":test") for r in recs]
    res = evaluate_runtime(runtime, recs)
    out = (
        Path(args.out)
        if args.out
        else Path(args.model).with_suffix("").parent / (Path(args.model).stem + "_eval")
    )
    print(format_table(res, f"{args.model}: {len(recs)} recordings, {res.samples} samples"))
    if res.gait:
        g, hs = res.gait, res.gait["heel_strike"]
        rmse = "n/a" if g["phase_rmse_pct"] is None else f"{g['phase_rmse_pct']:.2f} %"
        mae = "n/a" if hs["mae_ms"] is None else f"{hs['mae_ms']:.1f} ms"
        print(
            f"gait phase (right leg, {g['recordings']} recordings with a phase): RMSE {rmse} of the stride;"
            f" heel strikes {hs['reference']}: timing MAE {mae}, missed {hs['missed']}, extra {hs['extra']}"
        )
    write_json(res, out / "metrics.json", {"model": str(args.model)})
    plot_evaluation(res, out, rate_hz=md.sample_rate_hz, title=Path(args.model).name)
    print(f"wrote {out}/metrics.json and plots")
    return 0
