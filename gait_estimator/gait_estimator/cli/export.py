"""``gait-estimator export``: re-export a run's checkpoint (or a model file) and check the reload.

``gait-estimator export runs/tcn_UG --out my_model.pt`` takes ``model.pt`` of the run (or,
with ``--checkpoint best|last``, the checkpoint's weights), optionally changes the run-time
``--stride``, writes the TorchScript file with its metadata and verifies it through the core
runtime. ``--info`` prints a model file's metadata.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export a trained run / model file for the estimator")
    p.add_argument("source", help="run directory or model file")
    p.add_argument("--out", default=None, help="output model file")
    p.add_argument(
        "--checkpoint",
        default=None,
        choices=("best", "last"),
        help="use the run's checkpoint weights instead of its model.pt",
    )
    p.add_argument("--stride", type=int, default=None, help="run-time stride (samples between estimates)")
    p.add_argument("--info", action="store_true", help="print the metadata and exit")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    import torch

    from gait_estimator.errors import ConfigError, ModelFileCorruptError
    from gait_estimator.train.experiment import load_trainable
    from gait_estimator.train.trainer import export_model

    src = Path(args.source)
    model_file = src / "model.pt" if src.is_dir() else src
    if not model_file.is_file():
        raise ModelFileCorruptError(f"{model_file}: no model file to export from")
    model, md = load_trainable(model_file)
    if args.info:
        print(md.to_json())
        return 0
    if args.checkpoint:
        ck = src / "checkpoints" / f"{args.checkpoint}.pt"
        if not ck.is_file():
            raise ModelFileCorruptError(f"{ck}: checkpoint not found")
        model.load_state_dict(torch.load(ck, map_location="cpu", weights_only=True)["state_dict"])
    if args.stride is not None:
        md = dataclasses.replace(md, stride=args.stride)
    if not args.out:
        raise ConfigError("out", None, "give --out <model file>")
    path = export_model(model, md, args.out)
    print(
        f"exported {path} ({path.stat().st_size / 1024:.0f} kB, {md.architecture}, window {md.window}, "
        f"{len(md.input_channels)} channels -> {list(md.output_joints)} in {md.output_unit}); reload verified"
    )
    return 0
