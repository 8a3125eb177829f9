"""Validate one bag or many: the unit of work of ``gait-estimator validate`` and its worker pool.

:func:`run_job` replays one bag, scores it and writes its plots/bag; the report it returns
carries the bag's and the model's identity and the replay settings (what the regression gate
checks). :func:`run_jobs` runs a list of jobs one by one or on a pool of worker processes; each
job is deterministic (replay and scoring depend only on the bag, the model and the options), so
the reports are the same either way, except the wall-clock figures (``timing``,
``inference_us``).

Pool workers are forked when the model runs on one thread (the parent has loaded and probed the
model, so a worker starts in milliseconds with it in memory; one intra-op thread means no
OpenMP pool exists to be broken by the fork); with more threads they are spawned and load it.
"""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gait_estimator.errors import GaitEstimatorError
from gait_estimator.replay.offline import ReplayOptions

__all__ = ["MEASURED_KEYS", "Outcome", "ValidateJob", "find_bags", "load_cached", "run_job", "run_jobs"]

# Report keys holding wall-clock measurements (vary from run to run; everything else does not).
MEASURED_KEYS = ("timing", "inference_us")

_MODELS: dict[tuple[str, int], tuple[Any, dict[str, Any]]] = {}  # per process: (path, threads) -> model


@dataclass(frozen=True)
class ValidateJob:
    bag: str
    model: str
    options: ReplayOptions
    threads: int = 1
    plots: str | None = None  # directory for the PNG plots
    output_bag: str | None = None
    storage: str = "mcap"


@dataclass(frozen=True)
class Outcome:
    bag: str
    report: dict[str, Any] | None  # None when the bag could not be validated
    error: str = ""  # the one-line error then


def load_cached(path: str, threads: int) -> tuple[Any, dict[str, Any]]:
    """(model runtime, model identity), loaded once per process and thread count."""
    key = (str(path), int(threads))
    if key not in _MODELS:
        from gait_estimator.replay.baseline import model_identity
        from gait_estimator.runtime.model_file import load_model

        model = load_model(path, threads=threads)
        _MODELS[key] = (model, model_identity(path, model.metadata))
    return _MODELS[key]


def run_job(job: ValidateJob) -> Outcome:
    """Replay, score and write the outputs of one bag; a bad bag is an Outcome with its error."""
    from gait_estimator.replay.baseline import bag_identity
    from gait_estimator.replay.offline import evaluate, replay_bag, replay_settings
    from gait_estimator.replay.outputs import write_output_bag, write_plots

    try:
        model, model_id = load_cached(job.model, job.threads)
        result = replay_bag(job.bag, model, job.options, model_source=str(job.model))
        report = evaluate(result)
        report["identity"] = {"bag": bag_identity(job.bag), "model": model_id}
        report["settings"] = replay_settings(job.options)
        if job.plots:
            write_plots(result, report, Path(job.plots))
        if job.output_bag:
            write_output_bag(result, report, job.output_bag, job.storage)
    except GaitEstimatorError as exc:
        return Outcome(str(job.bag), None, str(exc))
    return Outcome(str(job.bag), report)


def run_jobs(jobs: list[ValidateJob], workers: int = 1) -> list[Outcome]:
    """Every job's outcome, in the jobs' order; ``workers`` > 1: a pool of that many processes."""
    if workers <= 1 or len(jobs) <= 1:
        return [run_job(j) for j in jobs]
    method = "fork" if all(j.threads == 1 for j in jobs) and "fork" in mp.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=mp.get_context(method)) as pool:
        return list(pool.map(run_job, jobs, chunksize=1))


def find_bags(directory: str | Path) -> list[Path]:
    """The bags in ``directory``: sub-directories with a ``metadata.yaml`` and ``.mcap``/``.db3``
    files directly inside it, sorted by name. The directory itself must not be a bag."""
    d = Path(directory)
    return sorted(
        p
        for p in d.iterdir()
        if (p.is_dir() and (p / "metadata.yaml").is_file()) or (p.is_file() and p.suffix in (".mcap", ".db3"))
    )
