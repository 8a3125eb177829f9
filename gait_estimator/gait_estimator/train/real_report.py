"""Markdown report of the real-walker leave-persons-out evaluation (``train/real_lopo.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gait_estimator import conventions

JOINTS = conventions.JOINTS
BEGIN, END = "<!-- real-lopo:begin (train/real_lopo.py) -->", "<!-- real-lopo:end -->"
TARGET_RMSE, TARGET_R = 0.15, 0.85


def _cell(m: dict[str, Any], key: str = "rmse") -> str:
    if key == "peak_error":
        return f"{m['peak_error']:.3f}"
    return f"{m['rmse']:.3f} / {m['r']:.2f}"


def _group_table(models: dict[str, Any], group: str, key: str = "rmse") -> list[str]:
    lines = [
        "| model | " + " | ".join(JOINTS) + " | mean |",
        "|---" * (len(JOINTS) + 2) + "|",
    ]
    for label, entry in models.items():
        m = entry.get("lopo", {}).get(group)
        if not m:
            continue
        cells = [_cell(m[j], key) for j in JOINTS]
        if key == "rmse":
            mean = f"{sum(m[j]['rmse'] for j in JOINTS) / 6:.3f} / {sum(m[j]['r'] for j in JOINTS) / 6:.2f}"
        else:
            mean = f"{sum(m[j]['peak_error'] for j in JOINTS) / 6:.3f}"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {mean} |")
    return lines


def _dorschky_table(models: dict[str, Any]) -> list[str]:
    jr = conventions.JOINTS_R
    lines = [
        "| model | P01 " + " | P01 ".join(jr) + " | P03 r " + " / ".join(j.split("_")[0] for j in jr) + " |",
        "|---" * (len(jr) + 2) + "|",
    ]
    for label, entry in models.items():
        d = entry.get("dorschky") or {}
        if "trials" not in d:
            lines.append(f"| {label} | " + " | ".join(["n/a"] * len(jr)) + f" | {d.get('error', 'n/a')} |")
            continue
        p01, p03 = d["trials"]["P01_walking"]["metrics"], d["trials"]["P03_walking"]["metrics"]
        cells = [f"{p01[j]['rmse']:.3f} / {p01[j]['pearson_r']:.2f}" for j in jr]
        lines.append(
            f"| {label} | "
            + " | ".join(cells)
            + " | "
            + " / ".join(f"{p03[j]['pearson_r']:.2f}" for j in jr)
            + " |"
        )
    return lines


def _misses(entry: dict[str, Any]) -> list[str]:
    out = []
    m = entry["lopo"]["all"]
    for j in JOINTS:
        if m[j]["rmse"] > TARGET_RMSE or m[j]["r"] < TARGET_R:
            out.append(f"LOPO {j} {m[j]['rmse']:.3f} / {m[j]['r']:.2f}")
    for side_a, side_b in zip(conventions.JOINTS_R, conventions.JOINTS_L, strict=True):
        a, b = m[side_a]["rmse"], m[side_b]["rmse"]
        if abs(a - b) > 0.2 * min(a, b):
            out.append(f"left/right RMSE {side_a} {a:.3f} vs {side_b} {b:.3f} (> 20 % apart)")
    d = entry.get("dorschky", {}).get("trials")
    if d:
        for j in conventions.JOINTS_R:
            p01 = d["P01_walking"]["metrics"][j]
            if p01["rmse"] > TARGET_RMSE or p01["pearson_r"] < TARGET_R:
                out.append(f"Dorschky P01 {j} {p01['rmse']:.3f} / {p01['pearson_r']:.2f}")
            r3 = d["P03_walking"]["metrics"][j]["pearson_r"]
            if r3 < TARGET_R:
                out.append(f"Dorschky P03 {j} r {r3:.2f}")
    return out


def write_real_report(report: dict[str, Any], path: str | Path) -> Path:
    models = report["models"]
    sets = sorted({g for e in models.values() for g in e.get("lopo", {}) if g.startswith("set:")})
    speeds = [g for g in next(iter(models.values()))["lopo"] if g.startswith("speed:")]
    all_m = next(iter(models.values()))["lopo"]
    lines = [
        "# Real walkers: leave-persons-out evaluation",
        "",
        f"Data: the real-walker corpus (`make real-data`: virtual IMUs computed from real kinematics, "
        f"no sensor noise; real inverse-dynamics moments, masked samples excluded), {len(report['people'])} "
        f"people, {report['trials']} trials after removing duplicates; every estimate from the first full "
        f"window of a trial on. Folds by person, stratified by set: "
        + "; ".join(f"fold {i}: {len(f)} people" for i, f in enumerate(report["folds"]))
        + ". Cells: RMSE N·m/kg / r, all samples of the group pooled.",
        "",
        "Rows: `default` = the shipped `default.pt` (simulator only, never saw this corpus); "
        "`sim2real_candidate` = `sim2real_candidate.pt` (fine-tuned on the two mocap_walkers people, "
        "so its mocap_walkers row is not held out); `new` = fine-tuned per fold on the other folds' "
        "people (each person scored by a model that never saw them).",
        "",
        f"## All {len(report['people'])} people (pooled)",
        "",
        *_group_table(models, "all"),
        "",
    ]
    for g in sets:
        lines += [f"## {g[4:]} ({all_m[g]['_people']} people, {all_m[g]['_trials']} trials)", ""]
        lines += _group_table(models, g) + [""]
    for g in speeds:
        lines += [f"## speed {g[6:]} ({all_m[g]['_people']} people, {all_m[g]['_trials']} trials)", ""]
        lines += _group_table(models, g) + [""]
    lines += [
        "## Peak error (N·m/kg, all people)",
        "",
        "Mean over trials of |estimate - reference| at the reference's largest-magnitude extreme.",
        "",
        *_group_table(models, "all", "peak_error"),
        "",
        "## Dorschky 2019 real IMUs (test only: never used to train or tune)",
        "",
        "P01: RMSE N·m/kg / r; P03: r only (no body mass in the source).",
        "",
        *_dorschky_table(models),
        "",
    ]
    sim_rows = [(label, e["sim_heldout"]) for label, e in models.items() if e.get("sim_heldout")]
    if sim_rows:
        lines += [
            "## Simulated held-out subjects (8 unseen plain-simulator subjects of `make model`; not a gate)",
            "",
            "| model | " + " | ".join(JOINTS) + " |",
            "|---" * (len(JOINTS) + 1) + "|",
        ]
        lines += [
            f"| {label} | " + " | ".join(f"{m[j]['rmse']:.3f} / {m[j]['r']:.2f}" for j in JOINTS) + " |"
            for label, m in sim_rows
        ]
        lines.append("")
    new = models.get("new")
    if new:
        lines += ["## New model: time, gate, targets", ""]
        lines.append(
            f"Fold fine-tunes {new['fold_seconds']} s"
            + (f", final model {new['final_seconds']:.0f} s" if "final_seconds" in new else "")
            + (
                f"; this report was scored from the existing fold models ({report['total_seconds']:.0f} s), "
                "their training seconds read from the model files"
                if report["settings"].get("reuse_runs")
                else f"; whole run {report['total_seconds']:.0f} s"
            )
            + f" (settings: {report['settings']})."
        )
        g = new.get("gate")
        if g is not None:
            lines.append(
                "Candidate gate (better than default on LOPO and Dorschky P01, no joint worse on any set): "
                + ("passed" if g["passed"] else "failed: " + "; ".join(g["reasons"]))
                + "."
            )
        miss = _misses(new) if "dorschky" in new else []
        lines.append("Targets not met: " + ("; ".join(miss) if miss else "none") + ".")
        lines.append("")
    Path(path).write_text("\n".join(lines))
    return Path(path)


def plot_sets(preds: dict[str, list[Any]], out_dir: str | Path) -> list[Path]:
    """One figure per set: reference and each model's estimate over the right gait cycle, mean ± SD
    (samples with a known phase and a valid reference; left joints on the same right-leg phase)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from gait_estimator.train.evaluate import cycle_average

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    colors = ("tab:blue", "tab:orange", "tab:red", "tab:green")
    sets = sorted({p.set for ps in preds.values() for p in ps})
    for s in sets:
        fig, axes = plt.subplots(1, len(JOINTS), figsize=(3.2 * len(JOINTS), 3.0), squeeze=False)
        drawn_ref = False
        for c, (label, ps) in enumerate(preds.items()):
            ps = [p for p in ps if p.set == s and p.phase is not None]
            if not ps:
                continue
            ph = np.concatenate([p.phase for p in ps])
            est = np.concatenate([p.estimate for p in ps])
            ref = np.concatenate([p.reference for p in ps])
            x = np.linspace(0, 100, 51)
            for k, j in enumerate(JOINTS):
                ok = np.isfinite(ph) & np.isfinite(ref[:, k])
                if ok.sum() < 10:
                    continue
                ax = axes[0, k]
                if not drawn_ref:
                    rm, rs = cycle_average(ref[ok, k : k + 1], ph[ok], 51)
                    ax.fill_between(x, rm[:, 0] - rs[:, 0], rm[:, 0] + rs[:, 0], color="0.85")
                    ax.plot(x, rm[:, 0], "k-", label="reference")
                em, es = cycle_average(est[ok, k : k + 1], ph[ok], 51)
                ax.plot(x, em[:, 0], "--", color=colors[c % len(colors)], label=label)
                ax.fill_between(x, em[:, 0] - es[:, 0], em[:, 0] + es[:, 0], color=colors[c % 4], alpha=0.1)
                ax.set_title(j, fontsize=9)
                ax.set_xlabel("right gait cycle (%)", fontsize=8)
            drawn_ref = True
        axes[0, 0].set_ylabel(f"{s}\nmoment (N·m/kg)")
        axes[0, 0].legend(fontsize=6)
        fig.tight_layout()
        paths.append(out / f"{s}.png")
        fig.savefig(paths[-1], dpi=70)
        plt.close(fig)
    return paths


def update_section(path: str | Path, text: str) -> Path:
    """Put ``text`` between the real-LOPO markers of ``path`` (appended with them when absent), so
    a rerun replaces its own section and leaves the rest of the file as it was."""
    p = Path(path)
    body = p.read_text() if p.is_file() else ""
    block = f"{BEGIN}\n{text.rstrip()}\n{END}\n"
    if BEGIN in body and END in body:
        head, rest = body.split(BEGIN, 1)
        body = head + block + rest.split(END, 1)[1].lstrip("\n")
    else:
        body = body.rstrip("\n") + ("\n\n" if body else "") + block
    p.write_text(body)
    return p
