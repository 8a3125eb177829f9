"""``gait-estimator validate``: deterministic offline replay of a bag, scored against its reference.

    gait-estimator validate BAG|DIR [--model MODEL] [--reference-topic T] [--baseline FILE]
                            [--allow-model-change] [--write-baseline FILE] [--workers N]
                            [--report OUT.json] [--plots DIR] [--output-bag OUT] [--param NAME=VALUE ...]

Replays the bag's IMU topics (``imu/<location>``, or an ``ImuFrame`` topic) in log-time order
through the same ``EstimatorPipeline`` and ``CommandShaper`` the nodes run, configured from the
same parameter schema (``--param`` overrides a ``gait_pipeline`` parameter), with the log time as
receive time: no DDS, as fast as the CPU allows, bit-identical from run to run. By default the
batched path runs (synchronizer in closed form, windows through the model in chunks; equal to the
per-sample path to float32 rounding, see ``replay/offline.py``); ``--per-sample`` runs every
sample through ``EstimatorPipeline.push_sample`` as the nodes do. The summary states the path
and the cost of reading the bag vs estimating.

Prints per-joint RMSE (N·m/kg), NRMSE (% of the reference range), r and R² against the
reference torques, and command statistics, as a table. ``--report`` writes everything as JSON,
``--plots`` PNG figures, ``--output-bag`` the estimates, commands and diagnostics as a new bag.
A metric the data leave undefined (a constant reference has no r; an all-NaN one has nothing)
is shown as n/a and named with its reason.

A directory that is not itself a bag is validated bag by bag (its sub-directory bags and
.mcap/.db3 files, by name); ``--workers N`` runs N bags at a time in worker processes, with the
same reports as one by one; ``--report`` then holds ``{"bags": {name: report}}`` and
``--plots DIR`` one sub-directory per bag.

Regression gate (``--baseline``, see ``replay/baseline.py``): the baseline names the model file
(SHA-256) and each bag (SHA-256 of its files) and the replay settings it was made with; it is
refused when a metric is missing or not finite, when the bag's content or the settings differ,
and when the model file differs (unless ``--allow-model-change``: judge a candidate model). A
metric missing or undefined in this run is a regression. ``--write-baseline FILE`` stores the
metrics with the default tolerances; it refuses (and writes nothing) if any metric is undefined.

Exit status: 0 ok (every metric within tolerance); 1 regression: a metric worse than the
baseline by more than its tolerance, or undefined in this run (each joint and metric named);
2 error: the gate could not judge (bad bag, model, parameter, or baseline: unreadable, incomplete,
another bag/model/settings; a baseline that cannot be written), one line per problem; with
several bags, 2 if any bag had an error, else 1 if any regressed; 3 internal error (a bug:
traceback printed).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from gait_estimator.core import topology


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "validate",
        help="replay a bag offline and score the estimates (CI regression test)",
        description=__doc__.split("\n\n")[0],
        epilog="exit status: 0 ok; 1 regression (a metric worse than the baseline beyond tolerance, or"
        " undefined); 2 error (bad input, or a baseline that is incomplete or not for this bag, model"
        " or settings: the gate could not judge); 3 internal error (a bug)",
    )
    p.add_argument(
        "bag", help="rosbag2 directory (mcap or sqlite3), a .mcap/.db3 file, or a directory of bags"
    )
    p.add_argument("--model", default="", help="model file (default: the installed default model)")
    p.add_argument(
        "--reference-topic",
        default=topology.TOPIC_REFERENCE,
        help="JointTorque topic with the reference torques ('' = none)",
    )
    p.add_argument(
        "--imu-source",
        choices=("auto", "topics", "frame"),
        default="auto",
        help="IMUs as imu/<location> topics or an ImuFrame topic (auto: topics when present)",
    )
    p.add_argument(
        "--frame-topic", default=topology.TOPIC_FRAME, help="ImuFrame topic (with --imu-source frame)"
    )
    p.add_argument(
        "--subject-mass",
        type=float,
        default=None,
        metavar="KG",
        help="body mass (default: from the reference messages or the bag's custom data)",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a gait_pipeline node parameter (YAML value), e.g. latency_s=0.05",
    )
    p.add_argument(
        "--calibration-file",
        default="",
        metavar="YAML",
        help="wearer calibration (gait-estimator calibrate): sensor -> segment frames before features, "
        "as the nodes' calibration_file parameter (same as --param calibration_file=YAML)",
    )
    p.add_argument(
        "--mode",
        choices=("window", "streaming"),
        default=None,
        help="pipeline mode (default: the gait_pipeline parameter inference_mode, i.e. --param"
        " inference_mode=..., else window; config/fused.yaml runs streaming, equal for a TCN)",
    )
    p.add_argument("--start-offset", type=float, default=0.0, metavar="S", help="skip the first S seconds")
    p.add_argument("--duration", type=float, default=0.0, metavar="S", help="replay only S seconds (0 = all)")
    p.add_argument(
        "--jump-threshold",
        type=float,
        default=1.0,
        metavar="S",
        help="a stamp step larger than this is a time jump: the pipeline is reset",
    )
    p.add_argument(
        "--baseline",
        default=None,
        help="baseline JSON: exit 1 when a metric is worse beyond tolerance or undefined, 2 when the"
        " baseline is not for this bag/model/settings or is incomplete",
    )
    p.add_argument(
        "--allow-model-change",
        action="store_true",
        help="judge another model file (a candidate) against the baseline (same output joints/unit)",
    )
    p.add_argument(
        "--write-baseline",
        default=None,
        metavar="FILE",
        help="write the metrics as a new baseline (refused, exit 2, if a metric is undefined)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="with a directory of bags: validate N bags at a time in worker processes (same reports)",
    )
    p.add_argument("--report", default=None, metavar="OUT.json", help="write the full report as JSON")
    p.add_argument("--plots", default=None, metavar="DIR", help="write PNG plots into DIR")
    p.add_argument("--output-bag", default=None, metavar="OUT", help="write estimates/commands/diagnostics")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="storage of --output-bag")
    p.add_argument(
        "--per-sample",
        action="store_true",
        help="run every sample through the pipeline one by one, as the nodes do (slower; the reference path)",
    )
    p.add_argument(
        "--batch-size", type=int, default=256, metavar="N", help="windows per model call (batched path)"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        metavar="N",
        help="torch intra-op threads (default 1 as the nodes; more can help the batched path's"
        " large model calls and slows the per-window calls of --per-sample on a busy machine)",
    )
    p.add_argument("--quiet", action="store_true", help="no table, no warnings (exit status only)")
    p.set_defaults(handler=guarded_run)


def parse_params(items: list[str]) -> dict[str, Any]:
    import yaml

    from gait_estimator.errors import ConfigError

    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError("--param", item, "must be NAME=VALUE")
        try:
            out[name.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--param {name}", value, f"is not a YAML value: {exc}") from None
    return out


def format_table(report: dict[str, Any]) -> str:
    """The per-joint table: accuracy against the reference and command statistics."""
    metrics = report.get("metrics") or {}
    cmd = (report.get("commands") or {}).get("joints", {})
    head = (
        f"{'joint':<15} {'RMSE N·m/kg':>11} {'NRMSE %':>8} {'r':>7} {'R²':>7} "
        f"{'cmd peak N·m':>12} {'cmd RMS N·m':>11} {'limited %':>9}"
    )
    lines = [head, "-" * len(head)]

    def f(v: Any, fmt: str) -> str:
        return "n/a" if v is None else format(v, fmt)

    for joint in report["joints"]:
        m, c = metrics.get(joint, {}), cmd.get(joint, {})
        nrmse = None if m.get("nrmse") is None else 100 * m["nrmse"]
        lim = None if c.get("limited_fraction") is None else 100 * c["limited_fraction"]
        lines.append(
            f"{joint:<15} {f(m.get('rmse'), '.4f'):>11} {f(nrmse, '.2f'):>8} "
            f"{f(m.get('pearson_r'), '.3f'):>7} {f(m.get('r2'), '.3f'):>7} "
            f"{f(c.get('peak_abs_nm'), '.2f'):>12} {f(c.get('rms_nm'), '.2f'):>11} {f(lim, '.1f'):>9}"
        )
    if report.get("mean"):
        mean = report["mean"]
        nrmse = None if mean.get("nrmse") is None else 100 * mean["nrmse"]
        lines.append(
            f"{'mean':<15} {f(mean.get('rmse'), '.4f'):>11} {f(nrmse, '.2f'):>8} "
            f"{f(mean.get('pearson_r'), '.3f'):>7} {f(mean.get('r2'), '.3f'):>7}"
        )
    return "\n".join(lines)


def summary_lines(report: dict[str, Any]) -> list[str]:
    t, c = report["timing"], report["counters"]
    wall = max(t["wall_s"], 1e-12)
    out = [
        f"bag {report['bag']} ({report['storage']}), {report['bag_duration_s']:.2f} s;"
        f" model {report['model']};"
        f" subject {report['subject_mass_kg']:.1f} kg",
        f"estimates {report['estimates']} (valid {report['valid_estimates']}, scored"
        f" {report.get('scored_estimates', 0)}); commands {report.get('commands', {}).get('count', 0)}"
        f" (valid {100 * report.get('commands', {}).get('valid_fraction', 0):.1f} %,"
        f" faults {len(report.get('commands', {}).get('faults', []))})",
        f"speed {t['realtime_factor']:.1f}x real time ({report.get('replay_path', 'per-sample')} path):"
        f" {t['wall_s']:.3f} s wall; read {t['read_s']:.3f} s ({100 * t['read_s'] / wall:.0f} %),"
        f" estimate {t['estimate_s']:.3f} s ({100 * t['estimate_s'] / wall:.0f} %)"
        + (
            f" = model {t['model_s']:.3f} s + commands {t['commands_s']:.3f} s + synchronizer/features"
            f" {max(0.0, t['estimate_s'] - t['model_s'] - t['commands_s']):.3f} s"
            if "model_s" in t
            else ""
        ),
    ]
    if report.get("replay_path_reason"):
        out.append(f"per-sample path: {report['replay_path_reason']}")
    odd = {k: c[k] for k in ("duplicates", "out_of_order", "time_jumps", "stale_after_jump") if c.get(k)}
    if odd:
        out.append("bag timing: " + ", ".join(f"{k} {v}" for k, v in odd.items()))
    if report.get("metrics_skipped"):
        out.append(f"metrics skipped: {report['metrics_skipped']}")
    gait = report.get("gait_phase")
    if gait:
        rmse = gait.get("phase_rmse_pct")
        line = f"gait phase (right leg): RMSE {'n/a' if rmse is None else f'{rmse:.2f}'} % of the stride" + (
            f", valid on {100 * gait['phase_valid_fraction']:.0f} % of the estimates"
        )
        hs = gait.get("heel_strike")
        if hs:
            mae = "n/a" if hs["mae_ms"] is None else f"{hs['mae_ms']:.1f} ms"
            line += f"; heel strikes {hs['detected']}/{hs['reference']}, timing MAE {mae}"
            line += f", missed {hs['missed']}, extra {hs['extra']}"
        out.append(line)
    return out


def guarded_run(args: argparse.Namespace) -> int:
    """``run``; an unexpected exception (a bug) exits 3, never 1 (which means "regression")."""
    from gait_estimator.errors import GaitEstimatorError

    try:
        return run(args)
    except (GaitEstimatorError, KeyboardInterrupt):
        raise
    except Exception:
        import traceback

        traceback.print_exc()
        print("gait-estimator validate: internal error (a bug, please report it): exit 3", file=sys.stderr)
        return 3


def _bags(arg: str) -> tuple[list[Path], bool]:
    """(bags, whether ``arg`` is a directory of bags rather than one bag)."""
    from gait_estimator.errors import BagError
    from gait_estimator.replay.jobs import find_bags

    p = Path(arg)
    if not p.is_dir() or (p / "metadata.yaml").is_file():
        return [p], False
    bags = find_bags(p)
    if not bags:
        raise BagError(f"bag {p}: neither a rosbag2 directory (no metadata.yaml) nor a directory of bags")
    return bags, True


def run(args: argparse.Namespace) -> int:
    from gait_estimator.errors import ConfigError, GaitEstimatorError
    from gait_estimator.replay.baseline import (
        BaselineError,
        bag_identity,
        check_model,
        compare,
        load_baseline,
        make_baseline,
        select_entry,
        write_baseline,
    )
    from gait_estimator.replay.jobs import ValidateJob, load_cached, run_jobs
    from gait_estimator.replay.offline import ReplayOptions, replay_settings

    logging.basicConfig(
        level=logging.ERROR if args.quiet else logging.WARNING,
        format="gait-estimator validate: warning: %(message)s",
    )
    for name, value in (
        ("--threads", args.threads),
        ("--batch-size", args.batch_size),
        ("--workers", args.workers),
    ):
        if value < 1:
            raise ConfigError(name, value, "must be >= 1")
    baseline = load_baseline(args.baseline) if args.baseline else None  # fail fast on a bad file
    if args.model:
        model_path = Path(args.model)
    else:
        from gait_estimator.nodes.params import resolve_model_path

        model_path = resolve_model_path("")
    if not model_path.is_file():
        raise ConfigError("--model", str(model_path), "no such model file")
    bags, many = _bags(args.bag)
    if many and args.output_bag:
        raise ConfigError("--output-bag", args.output_bag, "takes one bag, not a directory of bags")
    _, model_id = load_cached(str(model_path), args.threads)  # a bad model: one error, before any bag
    model_note = check_model(baseline, model_id, args.allow_model_change) if baseline is not None else ""
    params = parse_params(args.param)
    if args.calibration_file:
        from gait_estimator.core.calibration import read_calibration

        read_calibration(args.calibration_file)  # a bad file: one error, before any bag
        params["calibration_file"] = args.calibration_file
    options = ReplayOptions(
        reference_topic=args.reference_topic or None,
        reference_required=bool(args.reference_topic) and args.reference_topic != topology.TOPIC_REFERENCE,
        imu_source=args.imu_source,
        frame_topic=args.frame_topic,
        subject_mass_kg=args.subject_mass,
        mode=args.mode,
        params=params,
        jump_threshold_s=args.jump_threshold,
        start_offset_s=args.start_offset,
        duration_s=args.duration,
        batch=not args.per_sample,
        batch_size=args.batch_size,
    )
    errors: dict[str, str] = {}
    entries: dict[str, dict[str, Any]] = {}
    if baseline is not None:  # before replaying: a baseline for another bag or settings is an error
        settings = replay_settings(options)
        for bag in bags:
            try:
                entries[str(bag)] = select_entry(baseline, bag_identity(bag), settings)
            except GaitEstimatorError as exc:  # no such bag, or the baseline is not for it
                errors[str(bag)] = str(exc)
    jobs = [
        ValidateJob(
            str(bag),
            str(model_path),
            options,
            args.threads,
            plots=(str(Path(args.plots) / bag.name) if many else args.plots) if args.plots else None,
            output_bag=args.output_bag,
            storage=args.storage,
        )
        for bag in bags
        if str(bag) not in errors
    ]
    reports: dict[str, dict[str, Any]] = {}
    for outcome in run_jobs(jobs, args.workers):
        if outcome.report is None:
            errors[outcome.bag] = outcome.error
        else:
            reports[outcome.bag] = outcome.report
    regressions: dict[str, list[Any]] = {}
    for bag, report in reports.items():
        if bag in entries:
            regressions[bag] = compare(report, entries[bag])
            report["baseline"] = {
                "file": str(args.baseline),
                "model": model_note or "same model file",
                "tolerances": entries[bag]["tolerances"],
                "regressions": [str(r) for r in regressions[bag]],
            }
    if args.report:
        doc = (
            reports.get(str(bags[0]))
            if not many
            else {
                "bags": {Path(b).name: r for b, r in reports.items()},
                "errors": {Path(b).name: e for b, e in errors.items()},
            }
        )
        if doc is not None:
            Path(args.report).parent.mkdir(parents=True, exist_ok=True)
            Path(args.report).write_text(json.dumps(doc, indent=1, allow_nan=False, default=str) + "\n")
    if args.write_baseline:
        if errors:
            raise BaselineError(f"baseline {args.write_baseline} not written: {len(errors)} bag(s) failed")
        write_baseline(args.write_baseline, make_baseline(list(reports.values())))
    if not args.quiet:
        for bag, report in reports.items():
            if many:
                print(f"== {Path(bag).name}")
            print(format_table(report))
            print("\n".join(summary_lines(report)))
    if model_note and not args.quiet:
        print(f"note: {model_note}")
    for err in errors.values():
        print(f"gait-estimator validate: error: {err}", file=sys.stderr)
    bad = {b: r for b, r in regressions.items() if r}
    for bag, regs in bad.items():
        where = f" on {Path(bag).name}" if many else ""
        print(
            f"REGRESSION against {args.baseline}{where}: {len(regs)} metric(s) worse than baseline"
            " beyond tolerance or undefined:",
            file=sys.stderr,
        )
        for r in regs:
            print(f"  {r}", file=sys.stderr)
    if errors:
        return 2
    if bad:
        return 1
    if baseline is not None and not args.quiet:
        print(f"baseline {args.baseline}: ok (every metric within tolerance)")
    return 0
