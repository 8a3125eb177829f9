"""``gait-estimator export``: re-export a run's checkpoint (or a model file) and check the reload.

``gait-estimator export runs/tcn_UG --out my_model.pt`` takes ``model.pt`` of the run (or,
with ``--checkpoint best|last``, the checkpoint's weights), optionally changes the run-time
``--stride``, writes the model file with its metadata and verifies it through the core
runtime. ``--format torchscript|onnx|pt2`` picks the file type (default: from ``--out``'s
suffix, ``.onnx`` / ``.pt2`` / else TorchScript; the loader picks the backend the same way, so
the two must agree). ``--graph window|step`` with an ``.onnx`` source writes that graph alone
(for ``trtexec``). ``--info`` prints a model file's metadata.
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
    p.add_argument(
        "--format",
        default=None,
        choices=("torchscript", "onnx", "pt2"),
        help="model file type (default: from --out's suffix: .onnx, .pt2, else TorchScript)",
    )
    p.add_argument(
        "--graph",
        default=None,
        choices=("window", "step"),
        help="with an .onnx source: write only that graph (e.g. for TensorRT's trtexec)",
    )
    p.add_argument("--info", action="store_true", help="print the metadata and exit")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    import torch

    from gait_estimator.errors import ConfigError, ModelFileCorruptError
    from gait_estimator.runtime.model_file import FORMAT_SUFFIXES, model_format, read_metadata
    from gait_estimator.train.experiment import load_trainable
    from gait_estimator.train.trainer import export_model

    src = Path(args.source)
    model_file = src / "model.pt" if src.is_dir() else src
    if not model_file.is_file():
        raise ModelFileCorruptError(f"{model_file}: no model file to export from")
    if args.info:
        print(read_metadata(model_file).to_json())
        return 0
    if not args.out:
        raise ConfigError("out", None, "give --out <model file>")
    fmt = args.format or model_format(args.out)
    if model_format(args.out) != fmt:
        raise ConfigError(
            "out",
            args.out,
            f"--format {fmt} needs a file ending in {FORMAT_SUFFIXES[fmt]} (the loader picks the backend "
            "by file type)",
        )
    if args.graph:
        return _extract_graph(model_file, args.graph, Path(args.out))
    model, md = load_trainable(model_file)
    if args.checkpoint:
        ck = src / "checkpoints" / f"{args.checkpoint}.pt"
        if not ck.is_file():
            raise ModelFileCorruptError(f"{ck}: checkpoint not found")
        model.load_state_dict(torch.load(ck, map_location="cpu", weights_only=True)["state_dict"])
    if args.stride is not None:
        md = dataclasses.replace(md, stride=args.stride)
    path = export_model(model, md, args.out)
    print(
        f"exported {path} ({fmt}, {path.stat().st_size / 1024:.0f} kB, {md.architecture}, "
        f"window {md.window}, "
        f"{len(md.input_channels)} channels -> {list(md.output_joints)} in {md.output_unit}); reload verified"
    )
    return 0


def _extract_graph(source, graph: str, out) -> int:
    from gait_estimator.errors import ConfigError
    from gait_estimator.runtime.model_file import model_format
    from gait_estimator.runtime.onnx_file import extract_graph, trtexec_shapes

    if model_format(source) != "onnx" or model_format(out) != "onnx":
        raise ConfigError("graph", graph, "needs an .onnx source file and an .onnx --out")
    path = extract_graph(source, graph, out)
    print(f"wrote the {graph} graph of {source} to {path}")
    print(f"TensorRT: trtexec --onnx={path} --shapes={trtexec_shapes(path)} --saveEngine={path.stem}.plan")
    return 0
