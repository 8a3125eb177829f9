"""``gait-estimator``: one command, one subcommand per module in this package.

Every module ``gait_estimator.cli.<name>`` that defines ``register(subparsers)`` adds its
subcommand; ``register`` must stay cheap (no torch/rclpy import) so ``--help`` is fast, and
the chosen subcommand's handler imports what it needs. A handler returns the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from gait_estimator.errors import GaitEstimatorError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gait-estimator",
        description="Real-time joint torque estimation from wearable IMUs (ROS 2).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    package = importlib.import_module("gait_estimator.cli")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name in {"main"} or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"gait_estimator.cli.{info.name}")
        register = getattr(module, "register", None)
        if callable(register):
            register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except GaitEstimatorError as exc:
        # Expected failures (bad file, bad parameter): one clear line, no traceback.
        print(f"gait-estimator {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
