"""Regenerate the committed regression bags and baseline.

    python gait_estimator/test/data/regression/make_regression_data.py [--baseline-only]

Scenario (seeded, so the same script gives the same bags):

- ``walk_mcap/``: subject R001 (sampled with seed 11), 10 s of level walking at 1.2 m/s, 100 Hz,
  7 IMUs with the simulator's default error model, reference joint moments; mcap, zstd chunks.
- ``walk_sqlite3/``: subject R002 (seed 12), 6 s at 1.5 m/s, same IMUs; sqlite3, zstd messages.

Both are written by ``replay.trial_bag.write_trial_bag`` (topics ``imu/<location>`` and
``gait/torque_reference``, the subject's mass in the bag's custom data).

Model: the shipped default model (``gait_estimator/models/default.pt``) when it exists, else
``tiny_lstm`` = ``runtime.reference_models.make_tiny_lstm_model(window=50, hidden=16, seed=0)``
(untrained, recreated by the test from these arguments; ``generator.model_kind`` in the baseline
says which). ``baseline.json`` (schema 2, ``replay/baseline.py``) holds the metrics of
``gait-estimator validate`` on each bag with that model, the stated tolerances, and the
SHA-256 of the model file and of each bag: regenerate it whenever the bags or the model change
(the gate refuses a baseline made on other files).

``--baseline-only`` keeps the bags and recomputes the baseline (after a model change).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[3]
DEFAULT_MODEL = REPO / "gait_estimator" / "models" / "default.pt"
TINY_ARGS = {"window": 50, "hidden": 16, "seed": 0}
BAGS = {
    # name: (storage, subject seed, subject id, duration s, speed m/s)
    "walk_mcap": ("mcap", 11, "R001", 10.0, 1.2),
    "walk_sqlite3": ("sqlite3", 12, "R002", 6.0, 1.5),
}


def model_path(workdir: Path, name: str | None = None) -> tuple[str, Path]:
    """("default", path) when the shipped model exists (or name == "default"), else the tiny model."""
    if name == "default" or (name is None and DEFAULT_MODEL.is_file()):
        return "default", DEFAULT_MODEL
    from gait_estimator.runtime.reference_models import make_tiny_lstm_model

    path = workdir / "tiny_lstm.pt"
    if not path.exists():
        make_tiny_lstm_model(path, **TINY_ARGS)
    return "tiny_lstm", path


def make_bags() -> None:
    from gait_estimator.replay.trial_bag import write_trial_bag
    from gait_estimator.sim.generate import sample_subject, simulate_trial

    for name, (storage, seed, sid, duration, speed) in BAGS.items():
        subject = sample_subject(np.random.default_rng(seed), sid)
        trial = simulate_trial(subject, duration, speed, 100.0, seed=seed, trial_id=name)
        out = HERE / name
        if out.exists():
            shutil.rmtree(out)
        write_trial_bag(
            out,
            trial,
            storage,
            compress=True,
            custom={"gait_estimator.scenario": f"seed {seed}, {duration} s at {speed} m/s"},
        )
        print(f"wrote {out} ({sum(f.stat().st_size for f in out.iterdir()) / 1e6:.2f} MB)")


def make_baseline(workdir: Path) -> Path:
    """baseline.json (schema 2) through the code path of ``validate --write-baseline``: the
    model's and every bag's SHA-256, the replay settings, the metrics and the tolerances."""
    from gait_estimator.replay.baseline import make_baseline as baseline_doc
    from gait_estimator.replay.baseline import write_baseline
    from gait_estimator.replay.jobs import ValidateJob, run_job
    from gait_estimator.replay.offline import ReplayOptions

    kind, path = model_path(workdir)
    reports = []
    for name in BAGS:
        outcome = run_job(ValidateJob(str(HERE / name), str(path), ReplayOptions()))
        if outcome.report is None:
            raise SystemExit(f"{name}: {outcome.error}")
        reports.append(outcome.report)
        print(f"{name}: mean {outcome.report['mean']}")
    out = HERE / "baseline.json"
    write_baseline(out, baseline_doc(reports, generator={"model_kind": kind, "tiny_lstm_args": TINY_ARGS}))
    return out


def main(argv: list[str] | None = None) -> int:
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline-only", action="store_true")
    args = ap.parse_args(argv)
    if not args.baseline_only:
        make_bags()
    with tempfile.TemporaryDirectory() as tmp:
        print(make_baseline(Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
