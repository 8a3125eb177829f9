"""Reproduce the shipped default model (``make model``): simulate, train (UG), evaluate, export.

1. Simulate a training pool of ``SUBJECTS`` subjects x ``MINUTES`` min of walking (0.5-2.0 m/s,
   seed ``SEED``) and, separately, ``HELDOUT_SUBJECTS`` x ``HELDOUT_MINUTES`` min (seed ``SEED + 1``)
   with ``gait_estimator.sim.generate.generate_dataset`` into ``build/sim_default[_heldout]``
   (regenerated only when the simulator's source, the counts or the seed change).
2. Split by subject (UG): the pool trains, the first held-out subject validates (early stopping),
   the other held-out subjects test. Many short subjects generalise better than a few long ones
   (measured: 28 x 3 min -> hip RMSE 0.20-0.22, 96 x 1.5 min -> 0.11-0.14 N·m/kg on unseen subjects).
3. Train a small causal TCN (window 64 = 0.64 s at 100 Hz, stride 1) on the sagittal channels
   of all seven IMUs (``acc_x``, ``acc_z``, ``gyro_y`` in the segment-aligned sensor frame),
   output all six sagittal joint moments in N·m/kg.
4. Export ``models/default.pt`` through ``runtime.model_file.save_model``, evaluate the file on the
   held-out subjects (UG), fine-tune it on 20 % of each held-out subject (UA) and evaluate on the
   last 20 % of that subject, run the Dorschky 2019 sim-to-real check, and write
   ``models/default_report.md`` and ``models/default_report.json``.

``--sim2real`` (issue 15): step 1 simulates the pool with domain randomization
(``sim/randomization.py``, into ``build/sim_dr``; the held-out subjects stay plain), and after
step 3 a second stage fine-tunes on ``FT_SIM_SUBJECTS`` simulated subjects mixed with the committed
mocap walkers (``train/real_mix.py``: real-kinematics virtual IMUs and OpenSim moments, validity
masks respected), after first running the two leave-one-person-out folds from the same stage-1
model. ``--init MODEL`` takes stage 1 from a model file instead of training it. ``--name`` writes
``<name>.pt`` and ``<name>_report.*`` (candidates next to the shipped ``default.pt``).

Everything is seeded; on the CPU with the same thread count the model file is reproducible.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from gait_estimator import conventions
from gait_estimator.data.dataset import channels_for, select_channels, subjects_of
from gait_estimator.sim.randomization import DomainRandomization
from gait_estimator.train.evaluate import evaluate_runtime, format_table, plot_evaluation
from gait_estimator.train.protocols import split_ug
from gait_estimator.train.trainer import TrainConfig, export_model, train_model

SEED = 2026
SUBJECTS = 240  # training pool: many subjects, 1 min each (subject diversity is what generalises)
MINUTES = 1.0
HELDOUT_SUBJECTS = 9  # separately simulated: the first validates, the others are the UG test set
HELDOUT_MINUTES = 3.0
JOINTS = conventions.JOINTS
SIGNALS = ("sagittal",)
CONFIG = TrainConfig(
    architecture="tcn",
    arch_options={"channels": 48, "kernel": 3, "dilations": (1, 2, 4, 8)},
    window=64,
    stride=1,
    sample_rate_hz=100.0,
    joints=JOINTS,
    epochs=40,
    batch_size=32,
    lr=1e-3,
    patience=8,
    seed=SEED,
    device="cpu",
    threads=2,
    seq_rows=128,
    input_noise=0.05,
    progress=True,
)
UA_EPOCHS = 5
RANDOMIZATION = DomainRandomization()  # sim/randomization.py: its defaults are the recipe's
FT_SIM_SUBJECTS = 24  # simulated subjects mixed with the real trials in the fine-tuning stage
SIM_SECONDS: dict[str, float] = {}  # seconds spent simulating per data directory (0: reused)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def weights_sha256(model: torch.nn.Module) -> str:
    """sha256 of the trained weights alone (the file also holds timings, so its hash varies)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def simulator_fingerprint() -> str:
    """sha256 over the simulator's source and data files: a changed simulator means new data."""
    import gait_estimator.sim as sim

    h = hashlib.sha256()
    root = Path(sim.__file__).parent
    for f in sorted(list(root.glob("*.py")) + list(root.glob("*.json"))):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def ensure_dataset(
    directory: Path, subjects: int, minutes: float, seed: int,
    randomization: DomainRandomization | None = None,
) -> Path:
    """Simulate the training set unless ``directory`` holds it from the same simulator and seed."""
    stamp = directory / "recipe.json"
    want = {"n_subjects": subjects, "minutes": minutes, "seed": seed, "simulator": simulator_fingerprint()}
    if randomization is not None:
        want["randomization"] = json.loads(json.dumps(randomization.to_dict()))  # tuples as JSON lists
    if stamp.is_file() and (directory / "manifest.json").is_file() and json.loads(stamp.read_text()) == want:
        print(f"[model] simulated data: reusing {directory}", file=sys.stderr)
        SIM_SECONDS[str(directory)] = 0.0
        return directory
    from gait_estimator.sim.generate import generate_dataset

    print(
        f"[model] simulating {subjects} subjects x {minutes} min (seed {seed}) into {directory}",
        file=sys.stderr,
    )
    t0 = time.perf_counter()
    if directory.exists():
        for f in directory.glob("*.npz"):
            f.unlink()
    generate_dataset(subjects, minutes, seed, directory, randomization=randomization)
    stamp.write_text(json.dumps(want, indent=1))
    SIM_SECONDS[str(directory)] = round(time.perf_counter() - t0, 1)
    print(f"[model] simulated in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return directory


def _stage1_from_file(path: Path, info: dict):
    """A ``TrainResult`` standing for stage 1 from a model file that was trained on the simulator."""
    from gait_estimator.train.experiment import load_trainable
    from gait_estimator.train.trainer import TrainResult

    model, md = load_trainable(path)
    info["data"]["stage1"] = {"from_file": str(path), "sha256": _sha256(path)}
    hist = md.training.get("history") or []
    return TrainResult(model, md, hist, int(md.training.get("best_epoch", 0)),
                       float(md.training.get("train_seconds", 0.0)), None, None)


def _real_stage(res, split, cfg, args) -> tuple:
    """Stage 2: fine-tune on sim + every mocap walker; first the leave-one-person-out folds."""
    from gait_estimator.train.real_mix import finetune_mixed, leave_one_person_out, load_mocap_walkers

    t0 = time.perf_counter()
    real = select_channels(load_mocap_walkers(args.mocap), conventions.IMU_LOCATIONS, SIGNALS, JOINTS)
    pool = subjects_of(split.train)[:FT_SIM_SUBJECTS]
    sim = [r for r in split.train if r.subject_id in pool]
    report: dict = {
        "data": "mocap walkers (OpenSim ID moments + virtual IMUs from real kinematics, "
        "gait-estimator import-opensim --batch), committed copy in models/training_data/mocap_walkers",
        "people": {p: sorted(r.name for r in real if r.subject_id == p) for p in subjects_of(real)},
        "sim_subjects": pool,
    }
    if not args.no_loso:
        report["loso"] = leave_one_person_out(
            res.model, res.metadata, sim, real, split.val, cfg, Path(args.run_dir) / "real"
        )
    final = finetune_mixed(
        res.model,
        res.metadata,
        sim,
        real,
        list(split.val) + real,
        cfg,
        Path(args.run_dir) / "real" / "all",
        {"protocol": "UG + real mix", "real_people": subjects_of(real)},
    )
    report["final"] = {"best_epoch": final.best_epoch, "epochs_run": len(final.history)}
    report["seconds"] = round(time.perf_counter() - t0, 1)
    final.train_seconds += res.train_seconds
    return final, report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="training pool (build/sim_default; --sim2real: build/sim_dr)")
    p.add_argument("--heldout", default="build/sim_default_heldout", help="held-out subjects (plain sim)")
    p.add_argument("--mocap", default=None, help="imported mocap walkers (default: the committed copy)")
    p.add_argument(
        "--sim2real",
        action="store_true",
        help="the sim-to-real recipe: domain-randomized pool, then fine-tuning on sim + mocap walkers",
    )
    p.add_argument("--no-real", action="store_true", help="with --sim2real: skip the real-data stage")
    p.add_argument("--no-loso", action="store_true", help="skip the leave-one-person-out folds")
    p.add_argument("--name", default="default", help="model file stem in --out (default: default)")
    p.add_argument(
        "--init",
        default=None,
        help="skip stage 1: start the real-data stage from this model file (trained on the simulator only)",
    )
    p.add_argument("--out", default="gait_estimator/models")
    p.add_argument("--run-dir", default="runs/default_model")
    p.add_argument("--subjects", type=int, default=SUBJECTS)
    p.add_argument("--minutes", type=float, default=MINUTES)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--epochs", type=int, default=CONFIG.epochs)
    p.add_argument("--no-ua", action="store_true", help="skip the UA fine-tuning check")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="experiment: override a TrainConfig field or arch option (arch.KEY=VALUE), YAML value",
    )
    p.add_argument("--threads", type=int, default=CONFIG.threads)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    import yaml

    from gait_estimator.runtime.model_file import load_model
    from gait_estimator.train.experiment import load_recordings, run_ua

    overrides: dict = {}
    arch_over: dict = {}
    for item in args.set:
        key, _, value = item.partition("=")
        (arch_over if key.startswith("arch.") else overrides)[key.removeprefix("arch.")] = yaml.safe_load(
            value
        )
    t_all = time.perf_counter()
    torch.set_num_threads(args.threads)
    randomization = RANDOMIZATION if args.sim2real else None
    args.data = args.data or ("build/sim_dr" if args.sim2real else "build/sim_default")
    data = ensure_dataset(Path(args.data), args.subjects, args.minutes, args.seed, randomization)
    heldout_dir = ensure_dataset(Path(args.heldout), HELDOUT_SUBJECTS, HELDOUT_MINUTES, args.seed + 1)
    recs = load_recordings(data, 100.0, ("acc", "gyro"))
    # Held-out subjects come from another seed; rename them so subject ids stay unique.
    held = [
        replace(r, subject_id="H" + r.subject_id, name="H" + r.name)
        for r in load_recordings(heldout_dir, 100.0, ("acc", "gyro"))
    ]
    recs = select_channels(recs + held, conventions.IMU_LOCATIONS, SIGNALS, JOINTS)
    held_subjects = subjects_of([r for r in recs if r.subject_id.startswith("H")])
    test_subjects = held_subjects[1:]
    split = split_ug(recs, test_subjects, held_subjects[0])
    cfg = replace(
        copy.deepcopy(CONFIG),
        channels=channels_for(conventions.IMU_LOCATIONS, SIGNALS),
        epochs=args.epochs,
        seed=args.seed,
        progress=not args.no_progress,
        threads=args.threads,
        **overrides,
    )
    cfg.arch_options = {**cfg.arch_options, **arch_over}
    info = {
        "protocol": "UG",
        "data": {
            "generator": "gait_estimator.sim.generate.generate_dataset",
            "randomization": randomization.to_dict() if randomization else None,
            "n_subjects": args.subjects,
            "simulator_sha256": simulator_fingerprint(),
            "minutes_per_subject": args.minutes,
            "seed": args.seed,
            "heldout": {
                "n_subjects": HELDOUT_SUBJECTS,
                "minutes_per_subject": HELDOUT_MINUTES,
                "seed": args.seed + 1,
            },
        },
        "test_subjects": test_subjects,
        "val_subject": split.val[0].subject_id,
        "recipe": "python -m gait_estimator.train.default_model (make model)",
    }
    if args.init:
        res = _stage1_from_file(Path(args.init), info)
    else:
        res = train_model(split.train, split.val, cfg, args.run_dir, extra_training_info=info)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stage1 = res
    Path(args.run_dir).mkdir(parents=True, exist_ok=True)
    stage1_path = export_model(res.model, res.metadata, Path(args.run_dir) / "stage1_sim_only.pt")
    real_report: dict = {}
    if args.sim2real and not args.no_real:
        res, real_report = _real_stage(res, split, cfg, args)
    model_path = export_model(res.model, res.metadata, out / f"{args.name}.pt")
    rt = load_model(model_path, threads=0)
    ug = evaluate_runtime(rt, split.test)
    test_tail = [r.fraction(0.8, 1.0, ":test") for r in split.test]
    ug_tail = evaluate_runtime(rt, test_tail)
    print(format_table(ug, f"default model, UG: {len(test_subjects)} held-out subjects"))
    plot_evaluation(ug, out / f"{args.name}_plots", title="default model, UG held-out subjects")
    report = {
        "model": str(model_path),
        "sha256": _sha256(model_path),
        "weights_sha256": weights_sha256(res.model),
        "size_bytes": model_path.stat().st_size,
        "architecture": res.metadata.architecture,
        "arch_options": res.metadata.training["arch_options"],
        "parameters": res.metadata.training["parameters"],
        "window": cfg.window,
        "stride": cfg.stride,
        "sample_rate_hz": cfg.sample_rate_hz,
        "channels": list(cfg.channels),
        "joints": list(cfg.joints),
        "output_unit": "N.m/kg",
        "seed": args.seed,
        "data": info["data"],
        "test_subjects": test_subjects,
        "val_subject": info["val_subject"],
        "train_subjects": sorted({r.subject_id for r in split.train}),
        "train_seconds": round(res.train_seconds, 1),
        "epochs_run": len(stage1.history),
        "best_epoch": stage1.best_epoch,
        "history": stage1.history,
        "threads": cfg.threads,
        "torch": torch.__version__,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "ug": ug.to_dict() | {"per_recording": None},
        "ug_last20": ug_tail.to_dict() | {"per_recording": None},
    }
    if not args.no_ua:
        ua = run_ua(
            recs,
            res.model,
            res.metadata,
            replace(cfg, epochs=UA_EPOCHS, patience=UA_EPOCHS, progress=False, train_stride=4),
            Path(args.run_dir) / "UA",
            test_subjects,
            0.2,
            base_path=model_path,
            quiet=True,
        )
        assert ua.baseline is not None
        gain = {
            j: 1 - ua.evaluation.metrics[j]["rmse"] / ua.baseline.metrics[j]["rmse"]
            for j in ua.evaluation.joints
        }
        report["ua"] = {
            "fraction": 0.2,
            "epochs": UA_EPOCHS,
            "frozen": [],
            "train_seconds": round(ua.train_seconds, 1),
            "metrics": ua.evaluation.metrics,
            "baseline_ug_same_test": ua.baseline.metrics,
            "rmse_reduction": gain,
            "mean_rmse_reduction": 1 - ua.evaluation.mean("rmse") / ua.baseline.mean("rmse"),
        }
        print(format_table(ua.evaluation, "UA (20 % of each held-out subject), last 20 % of that subject"))
        print(format_table(ua.baseline, "UG on the same last 20 %"))
    try:
        from gait_estimator.train.sim2real import run_sim2real

        report["sim2real"] = run_sim2real(model_path, plot_dir=out / f"{args.name}_plots")
        if real_report:  # the same check before the real-data stage
            report["sim2real_stage1_sim_only"] = run_sim2real(stage1_path)
    except Exception as exc:  # the report says why the check is missing
        report["sim2real"] = {"error": f"{type(exc).__name__}: {exc}"}
    report["real_mix"] = real_report
    report["total_seconds"] = round(time.perf_counter() - t_all, 1)
    report["simulation_seconds"] = round(sum(SIM_SECONDS.values()), 1)
    (out / f"{args.name}_report.json").write_text(json.dumps(report, indent=1, default=float))
    from gait_estimator.train.report import write_default_report

    write_default_report(report, out / f"{args.name}_report.md")
    print(
        f"[model] wrote {model_path} ({report['size_bytes'] / 1024:.0f} kB) and its report in "
        f"{report['total_seconds']:.0f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
