"""Architecture x protocol table (UI, UG, UA) on simulated subjects, measured, with training time.

All three protocols are scored on the same data: the last 20 % of each test subject's
recordings. UG trains on the other subjects (one of them validates); UI trains one model per
test subject on the first 80 % of that subject's data; UA fine-tunes the UG model on the first
20 % of the test subject's data. Usage::

    python -m gait_estimator.train.table --data build/sim_default --heldout build/sim_default_heldout \
        --out gait_estimator/models/arch_protocol_table

With ``--heldout`` (the default model's data), UG trains on the whole training pool, the first
held-out subject validates and the next ``--n-test`` held-out subjects are the test subjects.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from gait_estimator.data.dataset import parse_imus, parse_joints, select_channels, subjects_of
from gait_estimator.train.evaluate import evaluate_runtime
from gait_estimator.train.experiment import load_recordings, run_ua, run_ui
from gait_estimator.train.protocols import split_ug
from gait_estimator.train.trainer import TrainConfig, train_model

# Per-architecture settings used for the table (the paper sizes, shrunk where the shared 2-core
# CPU could not afford them; the table states what was used).
TABLE_ARCHS: dict[str, dict] = {
    "tcn": {"arch_options": {"channels": 32, "kernel": 3, "dilations": [1, 2, 4, 8]}, "seq_rows": 64},
    "lstm": {"arch_options": {"hidden": 64, "layers": 2}, "seq_rows": 16},
    "gru": {"arch_options": {"hidden": 64, "layers": 2}, "seq_rows": 16},
    "cnn": {"arch_options": {}, "train_stride": 2},
    "cnn_lstm": {"arch_options": {"conv_channels": 32, "hidden": 64}, "seq_rows": 16},
    "cnn_gru_attention": {"arch_options": {"conv_channels": 32, "hidden": 64}, "train_stride": 4},
}


UA_BATCH = 32  # fine-tuning data are small: small batches, as in the default recipe


def ua_config(cfg: TrainConfig, ua_epochs: int) -> TrainConfig:
    """UA fine-tuning settings: the UG config, ``ua_epochs`` epochs, overlapping windows, batch 32."""
    small_stride = 4 if cfg.seq_rows > 1 else 1
    return replace(
        copy.deepcopy(cfg),
        epochs=ua_epochs,
        patience=ua_epochs,
        train_stride=small_stride,
        batch_size=UA_BATCH,
    )


def rerun_ua(data: str, heldout: str, out: Path, ua_epochs: int, seed: int = 0) -> list[dict]:
    """Redo the UA rows of an existing table from its saved UG models (``runs/table/<arch>_UG``)."""
    from gait_estimator.train.experiment import load_trainable

    table = json.loads(out.with_suffix(".json").read_text())
    info, rows = table["info"], table["rows"]
    recs = load_recordings(data, 100.0, ("acc", "gyro"))
    held = [
        replace(r, subject_id="H" + r.subject_id, name="H" + r.name)
        for r in load_recordings(heldout, 100.0, ("acc", "gyro"))
    ]
    joints = tuple(info["joints"])
    recs = select_channels(recs + held, None, tuple(info["signals"]), joints)
    for i, row in enumerate(rows):
        if row["protocol"] != "UA":
            continue
        arch = row["architecture"]
        spec = TABLE_ARCHS[arch]
        model, md = load_trainable(Path("runs") / "table" / f"{arch}_UG" / "model.pt")
        cfg = TrainConfig(
            architecture=arch,
            arch_options=dict(spec["arch_options"]),
            window=md.window,
            channels=md.input_channels,
            joints=joints,
            seed=seed,
            seq_rows=spec.get("seq_rows", 1),
            progress=False,
            val_stride=4,
        )
        ua = run_ua(
            recs,
            model,
            md,
            ua_config(cfg, ua_epochs),
            Path("runs") / "table" / f"{arch}_UA",
            info["test_subjects"],
            0.2,
            quiet=True,
        )
        rows[i] = _row(
            arch,
            "UA",
            ua.evaluation,
            ua.train_seconds,
            row["parameters"],
            f"fine-tuned {ua_epochs} epochs (batch {UA_BATCH}) on 20 % of each test subject, "
            "no frozen layers",
        )
        print(f"[table] {arch} UA (rerun) mean RMSE {rows[i]['mean_rmse']:.3f}", file=sys.stderr)
    info["ua_batch"] = UA_BATCH
    _write(rows, out, info)
    return rows


def _row(arch: str, protocol: str, ev, seconds: float, params: int, note: str = "") -> dict:
    return {
        "architecture": arch,
        "protocol": protocol,
        "train_seconds": round(seconds, 1),
        "parameters": params,
        "rmse": {j: ev.metrics[j]["rmse"] for j in ev.joints},
        "r": {j: ev.metrics[j]["pearson_r"] for j in ev.joints},
        "mean_rmse": ev.mean("rmse"),
        "mean_r": ev.mean("pearson_r"),
        "note": note,
    }


def run_table(
    data: str,
    out: Path,
    archs: list[str],
    epochs: int,
    ua_epochs: int,
    window: int,
    imus: str | None,
    signals: tuple[str, ...],
    joints: tuple[str, ...],
    n_test: int,
    seed: int,
    max_windows: int,
    heldout: str | None = None,
    patience: int = 6,
) -> list[dict]:
    from gait_estimator.runtime.model_file import load_model

    recs = load_recordings(data, 100.0, ("acc", "gyro"))
    if heldout:  # separately simulated subjects (the default recipe): first validates, next n_test test
        held = [
            replace(r, subject_id="H" + r.subject_id, name="H" + r.name)
            for r in load_recordings(heldout, 100.0, ("acc", "gyro"))
        ]
        recs = select_channels(recs + held, parse_imus(imus), signals, joints)
        held_subjects = subjects_of([r for r in recs if r.subject_id.startswith("H")])
        val_subject, test_subjects = held_subjects[0], held_subjects[1 : 1 + n_test]
        recs = [
            r for r in recs if not r.subject_id.startswith("H") or r.subject_id in held_subjects[: 1 + n_test]
        ]
    else:
        recs = select_channels(recs, parse_imus(imus), signals, joints)
        subjects = subjects_of(recs)
        val_subject, test_subjects = None, subjects[-n_test:]
    split = split_ug(recs, test_subjects, val_subject)
    test_tail = [r.fraction(0.8, 1.0, ":test") for r in split.test]
    rows: list[dict] = []
    out.parent.mkdir(parents=True, exist_ok=True)
    run_root = Path("runs") / "table"
    for arch in archs:
        spec = TABLE_ARCHS[arch]
        cfg = TrainConfig(
            architecture=arch,
            arch_options=dict(spec["arch_options"]),
            window=window,
            channels=recs[0].channels,
            joints=joints,
            epochs=epochs,
            patience=patience,
            seed=seed,
            seq_rows=spec.get("seq_rows", 1),
            train_stride=spec.get("train_stride", 1),
            max_windows_per_epoch=max_windows,
            val_stride=4,
            progress=False,
        )
        # One subject's data (UI: 64 %, UA: 16 %) is small: overlapping windows give more steps per epoch.
        small_stride = 4 if cfg.seq_rows > 1 else 1
        t0 = time.perf_counter()
        ug = train_model(
            split.train,
            split.val,
            copy.deepcopy(cfg),
            run_root / f"{arch}_UG",
            quiet=True,
            extra_training_info={"protocol": "UG", "test_subjects": test_subjects},
        )
        ug_rt = load_model(ug.model_path, threads=0)
        params = ug.metadata.training["parameters"]
        rows.append(
            _row(
                arch,
                "UG",
                evaluate_runtime(ug_rt, test_tail),
                ug.train_seconds,
                params,
                f"{len(split.train)} train recordings, best epoch {ug.best_epoch}",
            )
        )
        print(
            f"[table] {arch} UG mean RMSE {rows[-1]['mean_rmse']:.3f} ({ug.train_seconds:.0f} s)",
            file=sys.stderr,
        )
        ua = run_ua(
            recs,
            ug.model,
            ug.metadata,
            ua_config(cfg, ua_epochs),
            run_root / f"{arch}_UA",
            test_subjects,
            0.2,
            quiet=True,
        )
        rows.append(
            _row(
                arch,
                "UA",
                ua.evaluation,
                ua.train_seconds,
                params,
                f"fine-tuned {ua_epochs} epochs on 20 % of each test subject, no frozen layers",
            )
        )
        print(f"[table] {arch} UA mean RMSE {rows[-1]['mean_rmse']:.3f}", file=sys.stderr)
        ui = run_ui(
            recs,
            replace(copy.deepcopy(cfg), train_stride=small_stride),
            run_root / f"{arch}_UI",
            test_subjects,
            quiet=True,
        )
        rows.append(
            _row(
                arch,
                "UI",
                ui.evaluation,
                ui.train_seconds,
                params,
                f"one model per test subject, {len(test_subjects)} models",
            )
        )
        print(
            f"[table] {arch} UI mean RMSE {rows[-1]['mean_rmse']:.3f} "
            f"(total {time.perf_counter() - t0:.0f} s)",
            file=sys.stderr,
        )
        _write(
            rows,
            out,
            {
                "data": str(data),
                "heldout": str(heldout),
                "test_subjects": test_subjects,
                "epochs": epochs,
                "ua_epochs": ua_epochs,
                "window": window,
                "joints": list(joints),
                "signals": list(signals),
                "channels": len(recs[0].channels),
                "max_windows_per_epoch": max_windows,
                "patience": patience,
                "archs": {a: TABLE_ARCHS[a] for a in archs},
            },
        )
    return rows


def _write(rows: list[dict], out: Path, info: dict) -> None:
    out.with_suffix(".json").write_text(json.dumps({"info": info, "rows": rows}, indent=1))
    joints = list(rows[0]["rmse"])
    head = (
        "| architecture | protocol | "
        + " | ".join(f"RMSE {j}" for j in joints)
        + " | mean RMSE | mean r | train time (s) | parameters |"
    )
    lines = [head, "|" + "---|" * (len(joints) + 6)]
    for r in rows:
        lines.append(
            f"| {r['architecture']} | {r['protocol']} | "
            + " | ".join(f"{r['rmse'][j]:.3f}" for j in joints)
            + f" | {r['mean_rmse']:.3f} | {r['mean_r']:.3f} | {r['train_seconds']:.0f} | {r['parameters']} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="training pool (simulator dataset directory)")
    p.add_argument("--heldout", default=None, help="separately simulated held-out subjects (val + test)")
    p.add_argument("--out", default="models/arch_protocol_table")
    p.add_argument("--archs", default=",".join(TABLE_ARCHS))
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--ua-epochs", type=int, default=5)
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--imus", default="all")
    p.add_argument("--signals", default="sagittal")
    p.add_argument("--joints", default="all")
    p.add_argument("--n-test", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-windows", type=int, default=20000)
    p.add_argument("--patience", type=int, default=6)
    p.add_argument("--ua-only", action="store_true", help="redo the UA rows of --out from its UG models")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if args.ua_only:
        rerun_ua(args.data, args.heldout, Path(args.out), args.ua_epochs, args.seed)
        return 0
    run_table(
        args.data,
        Path(args.out),
        [a.strip() for a in args.archs.split(",")],
        args.epochs,
        args.ua_epochs,
        args.window,
        args.imus,
        tuple(args.signals.split(",")),
        parse_joints(args.joints),
        args.n_test,
        args.seed,
        args.max_windows,
        args.heldout,
        args.patience,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
