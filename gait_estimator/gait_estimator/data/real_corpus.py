"""The real-walker corpus: every trial of the three mocap sets in ``../shared``, one command.

``python -m gait_estimator.data.real_corpus --shared ../shared --out build/real_data`` (``make
real-data``) writes one dataset directory per set plus ``corpus.json`` (index, conventions,
summary) and ``corpus.md`` (the summary as a table):

- ``schreiber2019/``: 14 adults, markers -> OpenSim scale/IK/ID (:mod:`.opensim_lab`), virtual IMUs;
  body mass from ``anthropometrics.csv`` (the paper's table; the c3d differs only for 2014048).
  Trials beyond OpenSim's IK limits are kept and flagged (``ik_flagged``), not dropped.
- ``biomechzoo_children/``: 12 children, Plug-in Gait moments and bone points (:mod:`.pig_c3d`).
- ``mocap_walkers/``: 2 people, the lab's own IK + GRF -> OpenSim ID (:mod:`.opensim_import`).

Per-person ids are ``<set>/<person>`` and are the trials' ``subject.id``: ``falisse_subject1`` and
``falisse_subject2`` are one person (``mocap_walkers/falisse``), and ``f2_gait_14/15`` are the
same recordings as ``f1_gait_14/15`` (``duplicate_of`` in the index), so no split by person can
put one person on both sides. Trials the importers refuse are listed with the reason.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from gait_estimator import conventions
from gait_estimator.data import opensim_lab, pig_c3d
from gait_estimator.data.opensim_batch import discover_trials, import_tolerant
from gait_estimator.data.opensim_import import ImportedTrial, import_trial

__all__ = ["CONVENTIONS", "build_corpus", "main"]

CONVENTIONS = {
    "moment_nm": "net internal joint moment, N·m (divide by subject.mass_kg for N·m/kg), "
    "columns conventions.JOINTS = hip_flexion_r, knee_angle_r, ankle_angle_r, hip_flexion_l, "
    "knee_angle_l, ankle_angle_l",
    "signs": "OpenSim gait2392 / package convention: hip flexion +, knee extension +, ankle "
    "dorsiflexion + (plantarflexor push-off negative). Plug-in Gait X (extensor/plantarflexor +) "
    "mapped as hip -X, knee +X, ankle -X; Rajagopal-type knees negated",
    "moment_valid": "extra/moment_valid [N, 6]: 1 = that joint's moment is physically valid (the "
    "foot's GRF was measured or the foot was in the air); 0 = the foot was on the ground off the "
    "plates (schreiber/mocap: kinematic contact +-30 ms; children: Plug-in Gait left it undefined)",
    "imu": "virtual IMUs (no noise, soft tissue or mounting error) at pelvis (sacrum), mid-thigh "
    "lateral, mid-shank anterior, foot dorsum; sensor frame = segment frame x forward, y left, z up; "
    "acc = specific force m/s^2, gyro rad/s",
    "person_id": "subject.id = <set>/<person>; split by it, never by trial",
}
FALISSE = {"falisse_subject1": "falisse", "falisse_subject2": "falisse"}


def _with_person(res: ImportedTrial, set_name: str, person: str) -> ImportedTrial:
    pid = f"{set_name}/{person}"
    res.trial.subject["id"] = pid
    res.report["person_id"] = pid
    return res


def _schreiber(root: Path, out: Path, progress: bool) -> tuple[list[dict], list[str]]:
    masses = opensim_lab.read_masses(root / "anthropometrics.csv")
    specs = opensim_lab.discover_lab_trials(root, masses)
    # every trial is kept: one beyond OpenSim's IK limits is flagged (ik_quality.beyond_limits, and
    # the summary's ik_flagged), not dropped, so the training side decides
    tools = opensim_lab.LabTools(out / "opensim", accept_bad_ik=True)

    def one(spec: opensim_lab.LabTrialSpec) -> ImportedTrial:
        res = opensim_lab.import_lab_trial(spec, tools)
        res.report["speed_condition"] = spec.name.split("_")[1]  # C4 preferred, C5 fast
        return _with_person(res, "schreiber2019", str(spec.subject))

    extra = {"source": "gait_estimator.data.opensim_lab", "mass_from": "anthropometrics.csv"}
    _, reports, failures = import_tolerant(specs, one, out, extra, "schreiber2019", progress)
    return reports, failures


def _children(root: Path, out: Path, progress: bool) -> tuple[list[dict], list[str]]:
    paths = pig_c3d.discover_pig_trials(root)

    def one(path: Path) -> ImportedTrial:
        res = pig_c3d.read_pig_trial(path)
        return _with_person(res, "biomechzoo_children", res.trial.subject["id"])

    extra = {"source": "gait_estimator.data.pig_c3d"}
    _, reports, failures = import_tolerant(paths, one, out, extra, "biomechzoo_children", progress)
    return reports, failures


def _mocap(root: Path, out: Path, progress: bool) -> tuple[list[dict], list[str]]:
    specs = discover_trials(root)
    f1 = {s.name.replace("f1_", "f2_") for s in specs if s.name.startswith("f1_")}

    def one(spec) -> ImportedTrial:
        res = import_trial(spec)
        if spec.name in f1:
            res.report["duplicate_of"] = spec.name.replace("f2_", "f1_")
        return _with_person(res, "mocap_walkers", FALISSE.get(str(spec.subject), str(spec.subject)))

    extra = {"source": "gait_estimator.data.opensim_import"}
    _, reports, failures = import_tolerant(specs, one, out, extra, "mocap_walkers", progress)
    return reports, failures


WINTER_COLUMNS = {"hip_flexion": "Hip_Mean", "knee_angle": "Knee_Mean", "ankle_angle": "Ankle_Mean"}


def _winter_r(t, winter: dict[str, np.ndarray]) -> dict[str, list[float]]:
    """Shape check: r of each complete plate stance (vertical GRF > 20 N) with Winter's
    natural-cadence mean over 0-60 % of the stride, his signs mapped onto ours."""
    from gait_estimator.data.opensim_grf import intervals

    out: dict[str, list[float]] = {}
    m = t.moment_nm_per_kg
    for side in ("r", "l"):
        for a, b in intervals(t.extras[f"grf_vy_{side}"] > 20.0):
            if a == 0 or b >= len(m) - 1 or (b - a) / t.sample_rate_hz < 0.3:
                continue
            for stem, col in WINTER_COLUMNS.items():
                k = conventions.JOINTS.index(f"{stem}_{side}")
                ref = winter[col]
                x = np.interp(np.linspace(0, 1, len(ref)), np.linspace(0, 1, b - a + 1), m[a : b + 1, k])
                out.setdefault(stem, []).append(round(float(np.corrcoef(x, ref)[0, 1]), 3))
    return out


def _read_winter(shared: Path) -> dict[str, np.ndarray]:
    path = shared / "data" / "normative" / "winter" / "joint_moment_natural_cadence.csv"
    w = np.genfromtxt(path, delimiter=",", names=True)
    stance = w["Percent_Stride"] <= 60.0
    sign = conventions.WINTER_TO_OPENSIM_SIGN
    return {c: sign[c.split("_")[0].lower()] * w[c][stance] for c in WINTER_COLUMNS.values()}


def _trial_summary(out: Path, winter: dict[str, np.ndarray]) -> list[dict]:
    from gait_estimator.sim.dataset import load_dataset

    rows = []
    for t in load_dataset(out):
        m = t.moment_nm_per_kg
        v = t.extras["moment_valid"].astype(bool)
        peaks = {}
        for k, j in enumerate(conventions.JOINTS):
            x = m[v[:, k], k]
            peaks[j] = [round(float(x.min()), 3), round(float(x.max()), 3)] if len(x) else None
        rows.append(
            {
                "trial": t.trial_id,
                "person_id": t.subject["id"],
                "mass_kg": t.subject["mass_kg"],
                "speed_mps": round(float(t.speed_mps), 3),
                "samples": len(t.time_ns),
                "valid_fraction_r": round(float(v[:, 0].mean()), 3),
                "valid_fraction_l": round(float(v[:, 3].mean()), 3),
                "heel_strikes_r": len(t.events["heel_strike_r"]),
                "heel_strikes_l": len(t.events["heel_strike_l"]),
                "moment_range_nm_per_kg": peaks,
                "winter_r_plate_stances": _winter_r(t, winter),
            }
        )
    return rows


def _set_summary(rows: list[dict], reports: list[dict], failures: list[str]) -> dict:
    def rng(vals: list[float], nd: int = 2) -> list[float] | None:
        vals = [x for x in vals if x is not None and np.isfinite(x)]
        return [round(float(min(vals)), nd), round(float(max(vals)), nd)] if vals else None

    ik = [r["ik_quality"] for r in reports if "ik_quality" in r]
    res = [r["pelvis_residuals"] for r in reports if r.get("pelvis_residuals")]
    ankle = [min(r["moment_range_nm_per_kg"][j][0] for j in ("ankle_angle_r", "ankle_angle_l")) for r in rows]
    return {
        "people": len({r["person_id"] for r in rows}),
        "trials": len(rows),
        "refused": len(failures),
        "samples": int(sum(r["samples"] for r in rows)),
        "valid_samples_r": int(sum(r["samples"] * r["valid_fraction_r"] for r in rows)),
        "valid_samples_l": int(sum(r["samples"] * r["valid_fraction_l"] for r in rows)),
        "speed_mps": rng([r["speed_mps"] for r in rows]),
        "mass_kg": rng([r["mass_kg"] for r in rows], 1),
        "ik_rms_cm": rng([q["rms_mean_m"] * 100 for q in ik]),
        "ik_max_cm": rng([q["max_m"] * 100 for q in ik]),
        "labels_swapped": [
            f"{r['trial']}: {r['ik_quality']['labels_swapped']}"
            for r in reports
            if r.get("ik_quality", {}).get("labels_swapped")
        ],
        "ik_flagged": [
            f"{r['trial']}: {r['ik_quality']['beyond_limits']}"
            for r in reports
            if r.get("ik_quality", {}).get("beyond_limits")
        ],
        "residual_fy_rms_pct_bw": rng([x["pelvis_ty_rms_pct_bw"] for x in res], 1),
        "residual_fx_rms_pct_bw": rng([x["pelvis_tx_rms_pct_bw"] for x in res], 1),
        "residual_tilt_rms_nm_per_kg": rng([x["pelvis_tilt_rms_nm_per_kg"] for x in res]),
        "ankle_plantarflexor_peak_nm_per_kg": rng(ankle),
        "winter_r_median": {
            stem: round(float(np.median(rs)), 2) if rs else None
            for stem in WINTER_COLUMNS
            for rs in [[x for r in rows for x in r["winter_r_plate_stances"].get(stem, [])]]
        },
        "plate_stances": sum(len(r["winter_r_plate_stances"].get("hip_flexion", [])) for r in rows),
    }


def _markdown(summary: dict, seconds: float) -> str:
    cols = [
        ("people", "people"),
        ("trials", "trials"),
        ("refused", "refused"),
        ("samples", "samples (100 Hz)"),
        ("valid_samples_r", "valid R"),
        ("valid_samples_l", "valid L"),
        ("speed_mps", "speed m/s"),
        ("mass_kg", "mass kg"),
        ("ik_rms_cm", "IK RMS cm"),
        ("ik_max_cm", "IK max cm"),
        ("residual_fy_rms_pct_bw", "pelvis Fy RMS %BW"),
        ("residual_tilt_rms_nm_per_kg", "pelvis tilt RMS N·m/kg"),
        ("ankle_plantarflexor_peak_nm_per_kg", "ankle min N·m/kg"),
        ("plate_stances", "plate stances"),
        ("winter_r_median", "r with Winter (median, hip/knee/ankle)"),
    ]

    def cell(v: object) -> str:
        if v is None:
            return "-"
        if isinstance(v, dict):
            return " / ".join(str(x) for x in v.values())
        return f"{v[0]} to {v[1]}" if isinstance(v, list) else str(v)

    lines = [
        "# Real-walker corpus (virtual IMUs from real kinematics, real inverse-dynamics moments)",
        "",
        "| set | " + " | ".join(c[1] for c in cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for name, s in summary.items():
        lines.append(f"| {name} | " + " | ".join(cell(s.get(k)) for k, _ in cols) + " |")
    lines += ["", f"Built in {seconds:.0f} s. Conventions: see corpus.json `conventions`.", ""]
    return "\n".join(lines)


def build_corpus(shared: Path, out: Path, progress: bool = True) -> dict:
    """Build every set under ``out``; returns the corpus index (also written as corpus.json)."""
    t0 = time.monotonic()
    real = Path(shared) / "data" / "real"
    sets = {
        "schreiber2019": _schreiber,
        "biomechzoo_children": _children,
        "mocap_walkers": _mocap,
    }
    index: dict = {"conventions": CONVENTIONS, "sets": {}, "summary": {}}
    winter = _read_winter(Path(shared))
    for name, build in sets.items():
        folder = out / name
        reports, failures = build(real / name, folder, progress)
        rows = _trial_summary(folder, winter) if reports else []
        by_trial = {r["trial"]: r for r in reports}
        for row in rows:
            rep = by_trial[row["trial"]]
            for key in ("ik_quality", "pelvis_residuals", "duplicate_of", "speed_condition"):
                if rep.get(key) is not None:
                    row[key] = (
                        {k: v for k, v in rep[key].items() if k != "per_marker_rms_m"}
                        if key == "ik_quality"
                        else rep[key]
                    )
        index["sets"][name] = {
            "dataset": str(folder),
            "source": str(real / name),
            "trials": rows,
            "refused": failures,
        }
        index["summary"][name] = _set_summary(rows, reports, failures)
    seconds = time.monotonic() - t0
    index["build_seconds"] = round(seconds, 1)
    people = {r["person_id"] for s in index["sets"].values() for r in s["trials"]}
    index["people"] = sorted(people)
    out.mkdir(parents=True, exist_ok=True)
    (out / "corpus.json").write_text(json.dumps(index, indent=1))
    (out / "corpus.md").write_text(_markdown(index["summary"], seconds))
    return index


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--shared", default="../shared", help="the shared folder holding data/real/ (default ../shared)"
    )
    ap.add_argument("--out", default="build/real_data", help="output folder (default build/real_data)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if not (Path(args.shared) / "data" / "real").is_dir():
        print(f"real_corpus: {args.shared}/data/real not found (the corpus needs ../shared)", file=sys.stderr)
        return 2
    index = build_corpus(Path(args.shared), Path(args.out), progress=not args.no_progress)
    print((Path(args.out) / "corpus.md").read_text())
    print(f"{len(index['people'])} people; index: {Path(args.out) / 'corpus.json'}")
    for name, s in index["sets"].items():
        for f in s["refused"]:
            print(f"refused ({name}): {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
