"""``gait-estimator calibrate BAG --out wearer.yaml``: sensor-to-segment calibration from a recording.

The bag holds the IMU topics (``/imu/<location>``, sensor_msgs/Imu) or an ImuFrame topic of a
short protocol: stand still (a few seconds), then walk a few strides. The standing period is
found at the start (``--standing auto``), given in seconds, or absent (``--standing 0``: walking
alone). Exit code 0 when every sensor's calibration is usable, 1 when some are flagged (the file is
still written, with the flags; applying it refuses those sensors), 2 on bad input.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("calibrate", help="per-wearer sensor-to-segment calibration from a bag -> YAML")
    p.add_argument("bag", help="rosbag2 directory or .mcap/.db3 file with the IMU topics")
    p.add_argument("--out", required=True, help="wearer calibration YAML to write")
    p.add_argument(
        "--standing", default="auto", help="seconds of standing at the start, 'auto' or 0 (default auto)"
    )
    p.add_argument(
        "--imus", default=None, help="comma list of IMU locations (default: the seven standard ones)"
    )
    p.add_argument(
        "--source", default="auto", choices=("auto", "topics", "frame"), help="IMU topics or ImuFrame"
    )
    p.add_argument("--wearer", default=None, help="wearer name stored in the file (default: the bag name)")
    p.add_argument(
        "--min-quality", type=float, default=0.5, help="flag sensors below this quality (default 0.5)"
    )
    p.set_defaults(handler=run)


def read_bag_imus(path: str, locations, kind: str = "auto") -> tuple[dict, float]:
    """``({location: {"acc", "gyro"}}, rate_hz)`` of the IMUs in a bag (stamp order per location)."""
    from gait_estimator.core.calibration_session import stack_samples
    from gait_estimator.errors import BagError
    from gait_estimator.replay.bag import BagReader, imu_source, iter_imu

    rows: dict[str, list] = {loc: [] for loc in locations}
    with BagReader(path) as reader:
        source = imu_source(reader, locations, kind)
        for rec in iter_imu(reader, source):
            rows[rec.location].append((rec.stamp_ns, rec.acc, rec.gyro))
    for loc, items in rows.items():
        if len(items) < 2:
            raise BagError(f"bag {path}: IMU '{loc}' has {len(items)} sample(s)")
    return stack_samples(rows)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gait_estimator.conventions import IMU_LOCATIONS
    from gait_estimator.core import calibration as cal
    from gait_estimator.data.dataset import parse_imus
    from gait_estimator.errors import ConfigError

    if args.standing == "auto":
        standing_s = None
    else:
        try:
            standing_s = float(args.standing)
        except ValueError:
            standing_s = -1.0
        if not standing_s >= 0:
            raise ConfigError("standing", args.standing, "must be 'auto' or a number of seconds >= 0")
    if not 0.0 <= args.min_quality <= 1.0:
        raise ConfigError("min-quality", args.min_quality, "must be within [0, 1]")
    locations = parse_imus(args.imus) or IMU_LOCATIONS
    imu, rate = read_bag_imus(args.bag, locations, args.source)
    wearer = cal.calibrate_wearer(
        imu,
        rate,
        standing_s,
        wearer=args.wearer or Path(args.bag).name,
        source=str(args.bag),
        min_quality=args.min_quality,
    )
    out = cal.write_calibration(wearer, args.out)
    print(f"{'sensor':9s} {'method':17s} {'quality':>7s} {'turn (deg)':>10s}")
    for loc, s in wearer.sensors.items():
        flag = "  FLAGGED" if s.flagged else ""
        print(f"{loc:9s} {s.method:17s} {s.quality:7.2f} {cal.rotation_angle_deg(s.rotation):10.1f}{flag}")
    print(f"wrote {out}")
    if wearer.flagged():
        print(f"flagged (not usable, recalibrate): {', '.join(wearer.flagged())}")
        return 1
    return 0
