"""``gait-estimator import-lab``: a lab's raw trials (markers + static + GRF + mass) -> a dataset.

OpenSim 4.6's ScaleTool (once per person) -> InverseKinematicsTool -> InverseDynamicsTool ->
virtual IMUs at the standard sites (:mod:`gait_estimator.data.opensim_lab`). One trial
(``--markers --static --mass --grf``) or every trial of ``--batch FOLDER`` (one folder per person,
masses from ``--masses CSV``). Trials whose IK marker error is beyond OpenSim's best practice
(RMS 2 cm, max 4 cm) are refused with one line each, unless ``--accept-ik-error``.
"""

from __future__ import annotations

import argparse

from gait_estimator.cli.import_opensim import add_output_options


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "import-lab",
        help="lab trials (.trc markers, static trial, GRF, body mass) -> OpenSim scale/IK/ID -> dataset",
    )
    p.add_argument("--out", required=True, help="dataset directory to write (manifest.json + .npz)")
    p.add_argument(
        "--batch", default=None, metavar="FOLDER", help="every trial of FOLDER (one folder per person)"
    )
    p.add_argument("--masses", default=None, help="CSV of body masses for --batch (subject, mass_kg)")
    p.add_argument("--markers", default=None, help="walking trial markers (.trc, OpenSim axes)")
    p.add_argument("--static", default=None, help="static standing trial (.trc) of the same person")
    p.add_argument("--mass", type=float, default=None, help="body mass, kg")
    p.add_argument("--grf", default=None, help="force-plate GRF (.mot)")
    p.add_argument(
        "--external-loads", default=None, help="ExternalLoads XML for --grf (else plates -> feet by COP)"
    )
    p.add_argument("--name", default=None, help="trial name (default: the marker file name)")
    p.add_argument("--subject", default=None, help="person id (default: the static file name)")
    p.add_argument("--model", default=None, help="generic model (default: packaged gait2354)")
    p.add_argument("--marker-set", default=None, help="marker set XML (default: packaged ISB set)")
    p.add_argument(
        "--work", default=None, help="folder for the scaled models and IK files (default: OUT/opensim)"
    )
    p.add_argument("--max-ik-rms", type=float, default=0.02, help="refuse above this RMS marker error, m")
    p.add_argument("--max-ik-error", type=float, default=0.04, help="refuse above this max marker error, m")
    p.add_argument(
        "--accept-ik-error", action="store_true", help="keep (and flag) trials beyond the IK limits"
    )
    add_output_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gait_estimator.data import opensim_lab as lab
    from gait_estimator.data.opensim_kinematics import load_sites
    from gait_estimator.errors import ConfigError, DatasetError

    if args.batch:
        if args.markers or args.static:
            raise ConfigError("batch", args.batch, "give either --batch or --markers/--static, not both")
        if not args.masses:
            raise ConfigError("masses", None, "--batch needs --masses CSV (subject, mass_kg)")
        specs = lab.discover_lab_trials(args.batch, lab.read_masses(args.masses))
    else:
        if not (args.markers and args.static and args.mass and args.grf):
            raise ConfigError(
                "markers/static/mass/grf",
                (args.markers, args.static, args.mass, args.grf),
                "give --markers, --static, --mass and --grf (or --batch FOLDER --masses CSV)",
            )
        name = args.name or Path(args.markers).name.split(".")[0]
        specs = [
            lab.LabTrialSpec(
                name,
                Path(args.markers),
                Path(args.static),
                args.mass,
                Path(args.grf),
                Path(args.external_loads) if args.external_loads else None,
                args.subject,
            )
        ]
    tools = lab.LabTools(
        Path(args.work) if args.work else Path(args.out) / "opensim",
        Path(args.model) if args.model else lab.DEFAULT_MODEL,
        Path(args.marker_set) if args.marker_set else lab.DEFAULT_MARKER_SET,
        args.max_ik_rms,
        args.max_ik_error,
        args.accept_ik_error,
    )
    sites = load_sites(args.sites) if args.sites else None
    manifest, reports, failures = lab.import_lab_dataset(
        specs, args.out, tools, sites, args.cutoff, args.rate, progress=not args.no_progress
    )
    for r in reports:
        q, res = r["ik_quality"], r["pelvis_residuals"] or {}
        print(
            f"{r['trial']}: {r['subject']}, {r['body_mass_kg']:.1f} kg, "
            f"IK RMS {q['rms_mean_m'] * 100:.2f} cm "
            f"max {q['max_m'] * 100:.2f} cm ({q['worst_marker']}){' FLAGGED' if q['beyond_limits'] else ''}, "
            f"pelvis residual RMS Fy {res.get('pelvis_ty_rms_pct_bw', float('nan')):.1f} %BW, "
            f"valid r/l {r['valid_fraction']['r']:.2f}/{r['valid_fraction']['l']:.2f}"
        )
    if manifest is None:
        raise DatasetError(f"no trial could be imported ({len(failures)} refused)")
    print(f"wrote {len(reports)} trial(s), refused {len(failures)}: {manifest}")
    return 0
