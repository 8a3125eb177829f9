"""``gait-estimator import-opensim``: OpenSim model + IK + GRF (or ID) -> a dataset directory.

One trial (``--model --ik --grf|--id``) or every trial of ``--batch FOLDER`` (its trials.json /
trials.yaml, else IK/GRF files paired by name). The output directory is read by ``train``,
``evaluate`` and ``sweep`` like a simulator dataset. Needs ``opensim`` (requirements/python.txt).
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "import-opensim",
        help="OpenSim lab data (model, IK, GRF/ID) -> dataset with ID moments and virtual IMUs",
    )
    p.add_argument("--out", required=True, help="dataset directory to write (manifest.json + .npz)")
    p.add_argument("--batch", default=None, metavar="FOLDER", help="import every trial found in FOLDER")
    p.add_argument("--model", default=None, help="scaled OpenSim model (.osim)")
    p.add_argument("--ik", default=None, help="inverse-kinematics motion (.mot)")
    p.add_argument("--grf", default=None, help="force-plate GRF (.mot); plates are assigned to feet by COP")
    p.add_argument(
        "--external-loads", default=None, help="ExternalLoads XML for --grf (skips the assignment)"
    )
    p.add_argument(
        "--id", dest="id_sto", default=None, help="inverse-dynamics result (.sto) instead of running ID"
    )
    p.add_argument("--name", default=None, help="trial name (default: the IK file name)")
    p.add_argument("--subject", default=None, help="subject id (default: the model file name)")
    add_output_options(p)
    p.set_defaults(handler=run)


def add_output_options(p: argparse.ArgumentParser) -> None:
    """IMU sites, filter, rate and progress options shared with ``import-lab``."""
    p.add_argument("--sites", default=None, help="IMU site YAML (default: the seven standard sites)")
    p.add_argument("--cutoff", type=float, default=6.0, help="coordinate low-pass cut-off, Hz (default 6)")
    p.add_argument("--rate", type=float, default=100.0, help="output sample rate, Hz (default 100)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gait_estimator.data.opensim_batch import discover_trials, import_dataset
    from gait_estimator.data.opensim_import import TrialSpec
    from gait_estimator.data.opensim_kinematics import load_sites
    from gait_estimator.errors import ConfigError

    if args.batch:
        if args.model or args.ik:
            raise ConfigError("batch", args.batch, "give either --batch or --model/--ik, not both")
        specs = discover_trials(args.batch)
    else:
        if not (args.model and args.ik):
            raise ConfigError("model/ik", (args.model, args.ik), "give --model and --ik (or --batch FOLDER)")
        if not (args.grf or args.id_sto):
            raise ConfigError("grf/id", None, "give --grf (ID is run) or --id (a computed ID .sto)")
        if args.external_loads and not args.grf:
            raise ConfigError("external-loads", args.external_loads, "needs --grf")
        opt = {
            k: Path(v) if v else None
            for k, v in (("grf", args.grf), ("external_loads", args.external_loads), ("id_sto", args.id_sto))
        }
        name = args.name or Path(args.ik).name.split(".")[0]
        specs = [TrialSpec(name, Path(args.model), Path(args.ik), subject=args.subject, **opt)]
    sites = load_sites(args.sites) if args.sites else None
    manifest, reports = import_dataset(
        specs, args.out, sites, args.cutoff, args.rate, progress=not args.no_progress
    )
    for r in reports:
        print(
            f"{r['trial']}: {r['subject']}, {r['body_mass_kg']:.1f} kg, "
            f"{r['time_range_s'][0]:.2f}-{r['time_range_s'][1]:.2f} s, valid r/l "
            f"{r['valid_fraction']['r']:.2f}/{r['valid_fraction']['l']:.2f}, moments: {r['moments_from']}"
        )
    print(f"wrote {len(reports)} trial(s): {manifest}")
    return 0
