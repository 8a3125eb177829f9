"""``gait-estimator validate``: deterministic offline replay of a bag, scored against its reference.

    gait-estimator validate BAG [--model MODEL] [--reference-topic T] [--baseline FILE]
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

Exit status: 0 ok; 1 a metric is worse than ``--baseline`` by more than the baseline's stated
tolerance (each such joint and metric is named); 2 bad input (bag, model, parameter), one line.
``--write-baseline FILE`` stores the current metrics with the default tolerances.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "validate",
        help="replay a bag offline and score the estimates (CI regression test)",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("bag", help="rosbag2 directory (mcap or sqlite3) or a .mcap/.db3 file")
    p.add_argument("--model", default="", help="model file (default: the installed default model)")
    p.add_argument(
        "--reference-topic",
        default="gait/torque_reference",
        help="JointTorque topic with the reference torques ('' = none)",
    )
    p.add_argument(
        "--imu-source",
        choices=("auto", "topics", "frame"),
        default="auto",
        help="IMUs as imu/<location> topics or an ImuFrame topic (auto: topics when present)",
    )
    p.add_argument("--frame-topic", default="gait/imu_frame", help="ImuFrame topic (with --imu-source frame)")
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
        "--baseline", default=None, help="baseline JSON: exit 1 when a metric is worse beyond tolerance"
    )
    p.add_argument(
        "--write-baseline", default=None, metavar="FILE", help="write the metrics as a new baseline"
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
    p.set_defaults(handler=run)


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
    return out


def write_plots(result: Any, report: dict[str, Any], directory: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from gait_estimator.replay.offline import match_reference

    directory.mkdir(parents=True, exist_ok=True)
    mass = result.subject_mass_kg if result.subject_mass_kg > 0 else 1.0
    unit = "N·m/kg" if result.subject_mass_kg > 0 else "N·m"
    t = (result.est_sensor_ns - result.est_sensor_ns[0]) / 1e9 if result.est_sensor_ns.size else np.zeros(0)
    ok, ref = match_reference(result)
    joints = result.joints
    fig, axes = plt.subplots(len(joints), 1, figsize=(11, 1.9 * len(joints)), sharex=True, squeeze=False)
    for i, joint in enumerate(joints):
        ax = axes[i, 0]
        ax.plot(t, np.where(result.est_valid, result.est_nm[:, i] / mass, np.nan), lw=0.8, label="estimate")
        if ok.any():
            ax.plot(t, np.where(ok, ref[:, i] / mass, np.nan), lw=0.8, label="reference")
        m = (report.get("metrics") or {}).get(joint)
        title = (
            joint
            if not m or m.get("rmse") is None
            else f"{joint}: RMSE {m['rmse']:.3f} {unit}, r {m['pearson_r']:.2f}"
        )
        ax.set_title(title, fontsize=8, loc="left")
        ax.set_ylabel(unit, fontsize=7)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("time since first estimate (s)")
    fig.tight_layout()
    paths = [directory / "torque_estimate_vs_reference.png"]
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)
    if result.cmd_nm.shape[0]:
        fig, ax = plt.subplots(figsize=(11, 3.2))
        for i, joint in enumerate(result.cmd_joints):
            ax.plot(t[: result.cmd_nm.shape[0]], result.cmd_nm[:, i], lw=0.8, label=joint)
        ax.set_xlabel("time since first estimate (s)")
        ax.set_ylabel("command (N·m)")
        ax.legend(fontsize=7, ncol=3)
        fig.tight_layout()
        paths.append(directory / "torque_command.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


def write_output_bag(result: Any, report: dict[str, Any], path: str, storage: str) -> None:
    """Estimates (gait/torque_estimate), commands (exo/torque_command), one /diagnostics summary per
    second of bag time, and the reference (gait/torque_reference) when the bag had one."""
    from gait_estimator.replay import convert
    from gait_estimator.replay.bag import BagWriter
    from gait_estimator.replay.typestore import make_typestore

    store = make_typestore()
    mass = float(result.subject_mass_kg)
    diag_t = store.types["diagnostic_msgs/msg/DiagnosticArray"]
    status_t = store.types["diagnostic_msgs/msg/DiagnosticStatus"]
    kv_t = store.types["diagnostic_msgs/msg/KeyValue"]
    with BagWriter(path, storage) as w:
        w.set_custom_data("gait_estimator.subject_mass_kg", str(mass))
        w.set_custom_data("gait_estimator.source_bag", str(result.bag))
        w.set_custom_data("gait_estimator.model", str(result.model_source))
        next_diag = None
        for k in range(result.est_nm.shape[0]):
            log = int(result.est_log_ns[k])
            stamp = int(result.est_stamp_ns[k])
            w.write(
                "gait/torque_estimate",
                log,
                convert.joint_torque_message(
                    stamp,
                    result.joints,
                    result.est_nm[k],
                    convert.SOURCE_ESTIMATE,
                    valid=bool(result.est_valid[k]),
                    subject_mass=mass,
                    store=store,
                ),
            )
            if k < result.cmd_nm.shape[0]:
                w.write(
                    "exo/torque_command",
                    log,
                    convert.joint_torque_message(
                        stamp,
                        result.cmd_joints,
                        result.cmd_nm[k],
                        convert.SOURCE_COMMAND,
                        valid=bool(result.cmd_valid[k]),
                        joint_status=result.cmd_status[k],
                        subject_mass=mass,
                        store=store,
                    ),
                )
            if next_diag is None or log >= next_diag:
                next_diag = log + 1_000_000_000
                values = [kv_t(key=f"{key}", value=str(v)) for key, v in report["counters"].items()]
                w.write(
                    "/diagnostics",
                    log,
                    diag_t(
                        header=convert.header(log, "", store),
                        status=[
                            status_t(
                                level=0,
                                name="gait_estimator validate",
                                message="offline replay",
                                hardware_id="",
                                values=values,
                            )
                        ],
                    ),
                )
        ref = result.reference
        if ref is not None:
            for k in range(len(ref)):
                w.write(
                    "gait/torque_reference",
                    int(ref.log_ns[k]),
                    convert.joint_torque_message(
                        int(ref.stamp_ns[k]),
                        ref.joints,
                        ref.torque_nm[k],
                        convert.SOURCE_REFERENCE,
                        valid=bool(ref.valid[k]),
                        subject_mass=ref.subject_mass_kg,
                        store=store,
                    ),
                )


def run(args: argparse.Namespace) -> int:
    from gait_estimator.errors import ConfigError
    from gait_estimator.replay.offline import (
        ReplayOptions,
        compare_baseline,
        evaluate,
        load_baseline,
        make_baseline,
        replay_bag,
    )
    from gait_estimator.runtime.model_file import load_model

    logging.basicConfig(
        level=logging.ERROR if args.quiet else logging.WARNING,
        format="gait-estimator validate: warning: %(message)s",
    )
    baseline = load_baseline(args.baseline, args.bag) if args.baseline else None  # fail fast on a bad file
    if args.model:
        model_path = Path(args.model)
    else:
        from gait_estimator.nodes.params import resolve_model_path

        model_path = resolve_model_path("")
    if not model_path.is_file():
        raise ConfigError("--model", str(model_path), "no such model file")
    if args.threads < 1:
        raise ConfigError("--threads", args.threads, "must be >= 1")
    if args.batch_size < 1:
        raise ConfigError("--batch-size", args.batch_size, "must be >= 1")
    model = load_model(model_path, threads=args.threads)
    options = ReplayOptions(
        reference_topic=args.reference_topic or None,
        reference_required=bool(args.reference_topic) and args.reference_topic != "gait/torque_reference",
        imu_source=args.imu_source,
        frame_topic=args.frame_topic,
        subject_mass_kg=args.subject_mass,
        mode=args.mode,
        params=parse_params(args.param),
        jump_threshold_s=args.jump_threshold,
        start_offset_s=args.start_offset,
        duration_s=args.duration,
        batch=not args.per_sample,
        batch_size=args.batch_size,
    )
    result = replay_bag(args.bag, model, options, model_source=str(model_path))
    report = evaluate(result)
    regressions = compare_baseline(report, baseline) if baseline is not None else []
    if baseline is not None:
        report["baseline"] = {
            "file": str(args.baseline),
            "tolerances": baseline["tolerances"],
            "regressions": [str(r) for r in regressions],
        }
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report, indent=1, allow_nan=False, default=str) + "\n")
    if args.plots:
        write_plots(result, report, Path(args.plots))
    if args.output_bag:
        write_output_bag(result, report, args.output_bag, args.storage)
    if args.write_baseline:
        Path(args.write_baseline).write_text(json.dumps(make_baseline(report), indent=1) + "\n")
    if not args.quiet:
        print(format_table(report))
        print("\n".join(summary_lines(report)))
    if regressions:
        print(
            f"REGRESSION against {args.baseline}: {len(regressions)} metric(s) worse than baseline beyond"
            " tolerance:",
            file=sys.stderr,
        )
        for r in regressions:
            print(f"  {r}", file=sys.stderr)
        return 1
    if baseline is not None and not args.quiet:
        print(f"baseline {args.baseline}: ok (every metric within tolerance)")
    return 0
