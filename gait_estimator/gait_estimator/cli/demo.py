"""``gait-estimator demo``: the main job on the embedded default (simulated IMUs, shipped model)."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="simulated IMUs -> default model -> torque commands")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    print("gait-estimator demo: not yet available: the pipeline nodes (issue 6) are not built yet.",
          file=sys.stderr)
    return 1
