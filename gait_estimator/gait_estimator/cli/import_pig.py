"""``gait-estimator import-pig``: Vicon Plug-in Gait c3d files -> a dataset (moments + virtual IMUs).

Reads the joint moments PiG computed (N·mm/kg, extensor/plantarflexor +; converted to the package
convention) and the segment bone points (-> segment poses -> virtual IMUs at the standard sites),
without OpenSim (:mod:`gait_estimator.data.pig_c3d`). Needs ``ezc3d``.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "import-pig", help="Vicon Plug-in Gait c3d (moments, bone points) -> dataset with virtual IMUs"
    )
    p.add_argument("--out", required=True, help="dataset directory to write (manifest.json + .npz)")
    p.add_argument("c3d", nargs="*", help="walking trial c3d files")
    p.add_argument("--batch", default=None, metavar="FOLDER", help="every walking c3d under FOLDER")
    p.add_argument("--cutoff", type=float, default=6.0, help="bone-point low-pass cut-off, Hz (default 6)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from gait_estimator.data.pig_c3d import discover_pig_trials, import_pig_dataset
    from gait_estimator.errors import ConfigError, DatasetError

    if bool(args.batch) == bool(args.c3d):
        raise ConfigError("c3d/batch", (args.c3d, args.batch), "give c3d files or --batch FOLDER")
    paths = discover_pig_trials(args.batch) if args.batch else args.c3d
    manifest, reports, failures = import_pig_dataset(paths, args.out, args.cutoff, not args.no_progress)
    for r in reports:
        print(
            f"{r['trial']}: {r['subject']}, {r['body_mass_kg']:.1f} kg, frames {r['frames_kept'][0]}-"
            f"{r['frames_kept'][1]} of {r['frames_total']}, moments defined r/l "
            f"{r['valid_fraction']['r']:.2f}/{r['valid_fraction']['l']:.2f}"
        )
    if manifest is None:
        raise DatasetError(f"no trial could be imported ({len(failures)} refused)")
    print(f"wrote {len(reports)} trial(s), refused {len(failures)}: {manifest}")
    return 0
