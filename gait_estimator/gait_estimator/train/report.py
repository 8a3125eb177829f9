"""Markdown training report of the default model (``models/default_report.md``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _metrics_table(metrics: dict[str, dict[str, float]]) -> list[str]:
    lines = ["| joint | RMSE (N·m/kg) | NRMSE (%) | r | R² |", "|---|---|---|---|---|"]
    for j, m in metrics.items():
        lines.append(
            f"| {j} | {m['rmse']:.3f} | {100 * m['nrmse']:.1f} | {m['pearson_r']:.3f} | {m['r2']:.3f} |"
        )
    return lines


def write_default_report(report: dict[str, Any], path: str | Path) -> Path:
    r = report
    lines = [
        "# Default model: training report",
        "",
        f"`{Path(r['model']).name}`: {r['architecture']} {r['arch_options']}, {r['parameters']} parameters, "
        f"{r['size_bytes'] / 1024:.0f} kB; weights sha256 `{r.get('weights_sha256', '?')[:16]}…` "
        "(the same on every run of the recipe with the same simulator, seed and thread count).",
        f"Inputs: {len(r['channels'])} channels ({', '.join(r['channels'][:3])}, … : the sagittal channels "
        f"`acc_x`, `acc_z`, `gyro_y` of all seven IMUs), window {r['window']} samples at "
        f"{r['sample_rate_hz']:.0f} Hz, stride {r['stride']}. "
        f"Output: {', '.join(r['joints'])} in {r['output_unit']}.",
        "",
        "Reproduce: `make model` (= `python -m gait_estimator.train.default_model`): simulates "
        f"{r['data']['n_subjects']} subjects x {r['data']['minutes_per_subject']} min of walking with seed "
        f"{r['data']['seed']}, trains with seed {r['seed']} on {r['threads']} CPU threads "
        f"(torch {r['torch']}).",
        "",
        f"Training: {r['epochs_run']} epochs (best {r['best_epoch']}, early stopping on the validation "
        f"subject {r['val_subject']}), {r['train_seconds']:.0f} s on {r['machine']}; the whole recipe "
        f"(simulation, training, evaluation, UA check, sim-to-real) took {r['total_seconds']:.0f} s"
        + (
            f", of which simulation {r['simulation_seconds']:.0f} s."
            if r.get("simulation_seconds")
            else " (the simulated data were reused from an earlier run of the same recipe; simulating them "
            "takes about 50 s)."
        ),
        f"Training subjects: {len(r['train_subjects'])} simulated subjects "
        f"({r['train_subjects'][0]}-{r['train_subjects'][-1]}, {r['data']['minutes_per_subject']} min each, "
        "0.5-2.0 m/s); held-out subjects (validation "
        f"{r['val_subject']}, test {', '.join(r['test_subjects'])}): simulated separately, "
        f"{r['data'].get('heldout', {}).get('minutes_per_subject', '?')} min each, seed "
        f"{r['data'].get('heldout', {}).get('seed', '?')}. NRMSE is RMSE / (max - min) of the reference.",
        "",
        f"## UG: held-out simulated subjects {', '.join(r['test_subjects'])} (all of their data)",
        "",
        *_metrics_table(r["ug"]["metrics"]),
        "",
    ]
    if "ua" in r:
        ua = r["ua"]
        lines += [
            f"## UA: fine-tuned on the first 20 % of each held-out subject ({ua['epochs']} epochs, no frozen "
            "layers), tested on the last 20 % of that subject",
            "",
            *_metrics_table(ua["metrics"]),
            "",
            "UG model on the same last 20 %:",
            "",
            *_metrics_table(ua["baseline_ug_same_test"]),
            "",
            "RMSE reduction by UA: "
            + ", ".join(f"{j} {100 * v:.0f} %" for j, v in ua["rmse_reduction"].items())
            + f"; mean {100 * ua['mean_rmse_reduction']:.0f} % (fine-tuning time {ua['train_seconds']:.0f} s "
            "for all held-out subjects).",
            "",
        ]
    lines += _real_mix_lines(r)
    s2r = r.get("sim2real", {})
    lines += ["## Sim-to-real: Dorschky et al. (2019) walking cycles", ""]
    if "error" in s2r:
        lines += [f"Not run: {s2r['error']}", ""]
    else:
        lines += [s2r.get("method", ""), ""]
        lines += ["| trial | joint | RMSE (N·m/kg) | r |", "|---|---|---|---|"]
        for trial, res in s2r.get("trials", {}).items():
            for j, m in res["metrics"].items():
                rmse = "n/a (mass unknown)" if m.get("rmse") is None else f"{m['rmse']:.3f}"
                lines.append(f"| {trial} | {j} | {rmse} | {m['pearson_r']:.3f} |")
        lines += ["", s2r.get("limits", ""), ""]
    if "sim2real_stage1_sim_only" in r and "trials" in r["sim2real_stage1_sim_only"]:
        lines += ["Stage 1 alone (simulator only, before the real-data stage), same check:", ""]
        lines += ["| trial | joint | r |", "|---|---|---|"]
        for trial, res in r["sim2real_stage1_sim_only"]["trials"].items():
            for j, m in res["metrics"].items():
                lines.append(f"| {trial} | {j} | {m['pearson_r']:.3f} |")
        lines.append("")
    p = Path(path)
    p.write_text("\n".join(lines))
    return p


def _real_mix_lines(r: dict[str, Any]) -> list[str]:
    """The sim-to-real recipe: where stage 1 came from, the real-data stage, the LOSO folds."""
    mix = r.get("real_mix")
    if not mix:
        return []
    stage1 = r["data"].get("stage1")
    lines = [
        "## Sim-to-real recipe",
        "",
        "Stage 1: "
        + (
            f"the model file `{stage1['from_file']}` (sha256 `{stage1['sha256'][:16]}…`, trained on the "
            "plain simulator); the UG/UA figures above are of the final model."
            if stage1
            else "trained on the domain-randomized simulator (`sim/randomization.py`)."
        ),
        f"Stage 2: fine-tuned on {len(mix['sim_subjects'])} domain-randomized simulated subjects + "
        f"{mix['data']}; people: "
        + "; ".join(f"{p}: {len(t)} trials" for p, t in mix["people"].items())
        + f" (best epoch {mix['final']['best_epoch']} of {mix['final']['epochs_run']}); "
        f"{mix['seconds']:.0f} s incl. the folds.",
        "",
    ]
    loso = mix.get("loso")
    if loso:
        lines += [
            "### Leave-one-person-out over the mocap walkers (virtual IMUs from real kinematics)",
            "",
            "| test person | joint | RMSE (N·m/kg) | r |",
            "|---|---|---|---|",
        ]
        for person, fold in loso["folds"].items():
            for j, m in fold["metrics"].items():
                lines.append(f"| {person} | {j} | {m['rmse']:.3f} | {m['pearson_r']:.3f} |")
        lines.append("")
        lines += [f"- {person}: {fold['trained_on']}." for person, fold in loso["folds"].items()]
        lines.append("")
    return lines
