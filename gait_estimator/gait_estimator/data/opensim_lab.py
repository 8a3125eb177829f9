"""A lab's raw walking trial -> OpenSim ScaleTool -> InverseKinematicsTool -> the importer.

What a biomechanics lab holds per person: a static standing trial and walking trials as marker
files (``.trc``, mm or m, OpenSim axes: y up), force-plate GRF (``.mot``, with the lab's
ExternalLoads XML or a plate-to-foot assignment worked out by the importer) and the body mass.
Per person the generic model is scaled once (marker-pair measurements, mass distribution kept,
then the MarkerPlacer moves the model markers onto the static trial); per walking trial OpenSim's
InverseKinematicsTool gives the coordinates, and :func:`gait_estimator.data.opensim_import.import_trial`
runs the InverseDynamicsTool and makes the virtual IMUs.

The default model is gait2354 from opensim-core (Apache-2.0, ``lab_models/README.md``) with a
marker set for the ISB names of Schreiber & Moissenet (2019), written for this project. IK quality
is checked against OpenSim's best practice (RMS marker error < 2 cm, max < 4 cm): trials beyond
it are refused (:class:`IkQualityError`) unless the caller accepts them, and then flagged.
"""

from __future__ import annotations

import csv
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gait_estimator.data.lab_markers import (  # noqa: F401 (re-exported)
    c3d_to_trc,
    fix_label_swaps,
    lab_markers,
    read_trc,
    write_trc,
)
from gait_estimator.data.opensim_batch import check_names, import_tolerant
from gait_estimator.data.opensim_import import ImportedTrial, TrialSpec, import_trial
from gait_estimator.data.opensim_kinematics import ImuSite, osim_module, plain_file, quiet_stdout
from gait_estimator.errors import DatasetError

__all__ = [
    "DEFAULT_MARKER_SET",
    "DEFAULT_MODEL",
    "IK_MAX_M",
    "IK_RMS_M",
    "IkQualityError",
    "LabTrialSpec",
    "c3d_to_trc",
    "discover_lab_trials",
    "fix_label_swaps",
    "import_lab_dataset",
    "import_lab_trial",
    "read_masses",
    "read_trc",
    "run_ik",
    "scale_model",
]

MODEL_DIR = Path(__file__).resolve().parent / "lab_models"
DEFAULT_MODEL = MODEL_DIR / "gait2354_simbody.osim"
DEFAULT_MARKER_SET = MODEL_DIR / "isb_markers_gait2354.xml"
IK_RMS_M = 0.02  # OpenSim best practice: RMS marker error below 2 cm ...
IK_MAX_M = 0.04  # ... and the largest marker error below 4 cm

# Marker-pair measurements that scale the generic model (ISB names; every body listed is scaled
# uniformly by the mean ratio of experimental to model distances of its pairs).
MEASUREMENTS: dict[str, tuple[list[tuple[str, str]], list[str]]] = {
    "pelvis": ([("R_IAS", "L_IAS"), ("R_IAS", "R_IPS"), ("L_IAS", "L_IPS")], ["pelvis"]),
    "femur_r": ([("R_FTC", "R_FLE")], ["femur_r"]),
    "femur_l": ([("L_FTC", "L_FLE")], ["femur_l"]),
    "tibia_r": ([("R_FAX", "R_FAL"), ("R_TTC", "R_FAL")], ["tibia_r"]),
    "tibia_l": ([("L_FAX", "L_FAL"), ("L_TTC", "L_FAL")], ["tibia_l"]),
    "foot_r": ([("R_FCC", "R_FM2")], ["talus_r", "calcn_r", "toes_r"]),
    "foot_l": ([("L_FCC", "L_FM2")], ["talus_l", "calcn_l", "toes_l"]),
    "torso": ([("CV7", "R_IPS"), ("CV7", "L_IPS")], ["torso"]),
}


# Medial knee and ankle markers serve the static trial (scaling, marker placement) only: on walking
# trials they wobble against the lateral ones (up to 4 cm here) and are often taken off by labs.
STATIC_ONLY = ("R_FME", "L_FME", "R_TAM", "L_TAM")


# The static trial is taken as standing in the anatomical neutral pose: joints held near 0 while
# the markers are placed. Left free, the static fit trades pelvis tilt against hip flexion (up to
# 17 deg here, with the hip 12 deg extended while standing), which tilts every later pelvis frame.
NEUTRAL_COORDINATES = (
    *(
        f"{c}_{s}"
        for s in "rl"
        for c in ("hip_flexion", "hip_adduction", "hip_rotation", "knee_angle", "ankle_angle")
    ),
    "lumbar_extension",
    "lumbar_bending",
    "lumbar_rotation",
)
NEUTRAL_TASKS = "".join(
    f'<IKCoordinateTask name="{c}"><apply>true</apply><weight>1</weight>'
    "<value_type>manual_value</value_type><value>0</value></IKCoordinateTask>"
    for c in NEUTRAL_COORDINATES
)


class IkQualityError(DatasetError):
    """IK marker errors beyond the limits (the trial is refused)."""


@dataclass
class LabTrialSpec:
    """One walking trial of one person, as the lab holds it."""

    name: str
    markers: Path
    static: Path
    mass_kg: float
    grf: Path | None = None
    external_loads: Path | None = None
    subject: str | None = None


@dataclass
class LabTools:
    """Generic model, its marker set, IK limits and where the OpenSim files go."""

    work_dir: Path
    model: Path = DEFAULT_MODEL
    marker_set: Path = DEFAULT_MARKER_SET
    max_rms_m: float = IK_RMS_M
    max_err_m: float = IK_MAX_M
    accept_bad_ik: bool = False
    scaled: dict = field(default_factory=dict)  # (static, mass) -> (scaled model, report)


# -- markers --------------------------------------------------------------------------------------
def _xml_tasks(names: Iterable[str]) -> str:
    return "".join(
        f'<IKMarkerTask name="{n}"><apply>true</apply><weight>1</weight></IKMarkerTask>' for n in names
    )


def _model_markers(osim: Any, path: Path) -> list[str]:
    ms = osim.MarkerSet(str(path))
    return [ms.get(i).getName() for i in range(ms.getSize())]


def scale_model(static: Path, mass_kg: float, out_dir: Path, name: str, tools: LabTools) -> tuple[Path, dict]:
    """Scaled model ``out_dir/<name>_scaled.osim`` (markers placed on the static trial) and a report."""
    osim = osim_module()
    out_dir = Path(out_dir).resolve()  # the ScaleTool works from inside its setup file's folder
    out_dir.mkdir(parents=True, exist_ok=True)
    static = plain_file(static, out_dir)
    t, names, xyz = read_trc(static)
    model_markers = _model_markers(osim, tools.marker_set)
    used = [n for n in model_markers if n in names and np.all(np.isfinite(xyz[:, names.index(n)]))]
    missing_pairs = [
        f"{a}-{b}" for pairs, _ in MEASUREMENTS.values() for a, b in pairs if a not in used or b not in used
    ]
    if missing_pairs:
        raise DatasetError(f"{static}: static trial lacks the scaling markers of {missing_pairs}")
    if not (mass_kg > 0):
        raise DatasetError(f"{name}: body mass must be > 0 kg, got {mass_kg}")
    measurements = "".join(
        f'<Measurement name="{m}"><apply>true</apply><MarkerPairSet><objects>'
        + "".join(f"<MarkerPair><markers>{a} {b}</markers></MarkerPair>" for a, b in pairs)
        + "</objects></MarkerPairSet><BodyScaleSet><objects>"
        + "".join(f'<BodyScale name="{b}"><axes>X Y Z</axes></BodyScale>' for b in bodies)
        + "</objects></BodyScaleSet></Measurement>"
        for m, (pairs, bodies) in MEASUREMENTS.items()
    )
    t_range = f"{t[0]} {t[-1]}"
    # ScaleTool joins its setup file's folder to every path, absolute or not: give them relative
    static_rel = os.path.relpath(static, out_dir)
    scaled = out_dir / f"{name}_scaled.osim"
    setup = out_dir / f"{name}_scale_setup.xml"
    setup.write_text(
        f"""<?xml version="1.0" encoding="UTF-8" ?>
<OpenSimDocument Version="40000"><ScaleTool name="{name}">
<mass>{mass_kg}</mass><height>-1</height><age>-1</age>
<GenericModelMaker><model_file>{Path(tools.model).resolve()}</model_file>
<marker_set_file>{Path(tools.marker_set).resolve()}</marker_set_file></GenericModelMaker>
<ModelScaler><apply>true</apply><scaling_order>measurements</scaling_order>
<MeasurementSet><objects>{measurements}</objects></MeasurementSet><ScaleSet><objects /></ScaleSet>
<marker_file>{static_rel}</marker_file><time_range>{t_range}</time_range>
<preserve_mass_distribution>true</preserve_mass_distribution>
<output_scale_file>{name}_scale_factors.xml</output_scale_file></ModelScaler>
<MarkerPlacer><apply>true</apply><IKTaskSet><objects>{_xml_tasks(used)}{NEUTRAL_TASKS}</objects></IKTaskSet>
<marker_file>{static_rel}</marker_file><coordinate_file>Unassigned</coordinate_file>
<time_range>{t_range}</time_range><output_model_file>{scaled.name}</output_model_file>
<output_motion_file>{name}_static_pose.mot</output_motion_file>
<max_marker_movement>-1</max_marker_movement></MarkerPlacer>
</ScaleTool></OpenSimDocument>
"""
    )
    try:
        with quiet_stdout():
            ok = osim.ScaleTool(str(setup)).run()
    except RuntimeError as exc:
        raise DatasetError(f"{name}: ScaleTool failed: {str(exc).strip()[:300]}") from exc
    if not ok or not scaled.is_file():
        raise DatasetError(f"{name}: ScaleTool reported failure ({static})")
    factors = {}
    try:
        for sc in ET.parse(out_dir / f"{name}_scale_factors.xml").getroot().iter("Scale"):
            factors[(sc.findtext("segment") or "").strip()] = round(
                float((sc.findtext("scales") or "").split()[0]), 4
            )
    except (OSError, ET.ParseError, ValueError, IndexError) as exc:
        raise DatasetError(f"{name}: cannot read the ScaleTool's scale factors: {exc}") from exc
    factors.pop("ground", None)
    report = {
        "generic_model": str(tools.model),
        "marker_set": str(tools.marker_set),
        "static": str(static),
        "mass_kg": float(mass_kg),
        "static_markers_used": len(used),
        "scale_factors": factors,
    }
    return scaled, report


# -- inverse kinematics ----------------------------------------------------------------------------
def run_ik(
    model: Path, markers: Path, out_dir: Path, name: str, marker_set: Path = DEFAULT_MARKER_SET
) -> tuple[Path, dict]:
    """IK motion ``out_dir/<name>_ik.mot`` and its marker-error summary (m, over every frame)."""
    osim = osim_module()
    out_dir = Path(out_dir).resolve()
    markers = plain_file(markers, out_dir)
    t, names, xyz = read_trc(markers)
    used = [n for n in _model_markers(osim, marker_set) if n in names and n not in STATIC_ONLY]
    if len(used) < 12:
        raise DatasetError(f"{markers}: only {len(used)} of the model's markers are in the file: {used}")
    ik_mot = out_dir / f"{name}_ik.mot"
    setup = out_dir / f"{name}_ik_setup.xml"
    setup.write_text(
        f"""<?xml version="1.0" encoding="UTF-8" ?>
<OpenSimDocument Version="40000"><InverseKinematicsTool name="{name}">
<results_directory>{out_dir}</results_directory><model_file>{Path(model).resolve()}</model_file>
<constraint_weight>Inf</constraint_weight><accuracy>1e-05</accuracy>
<IKTaskSet><objects>{_xml_tasks(used)}</objects></IKTaskSet>
<marker_file>{markers}</marker_file><coordinate_file>Unassigned</coordinate_file>
<time_range>{t[0]} {t[-1]}</time_range><report_errors>true</report_errors>
<output_motion_file>{ik_mot}</output_motion_file><report_marker_locations>true</report_marker_locations>
</InverseKinematicsTool></OpenSimDocument>
"""
    )
    try:
        with quiet_stdout():
            ok = osim.InverseKinematicsTool(str(setup)).run()
    except RuntimeError as exc:
        raise DatasetError(f"{name}: InverseKinematicsTool failed: {str(exc).strip()[:300]}") from exc
    if not ok or not ik_mot.is_file():
        raise DatasetError(f"{name}: InverseKinematicsTool reported failure ({markers})")
    from gait_estimator.data.opensim_kinematics import read_storage

    loc = read_storage(out_dir / f"{name}_ik_model_marker_locations.sto", markers)
    tt = loc["time"]
    err = np.full((len(tt), len(used)), np.nan)
    for k, n in enumerate(used):
        model_xyz = np.column_stack([loc[f"{n}_t{a}"] for a in "xyz"])
        exp = np.column_stack([np.interp(tt, t, xyz[:, names.index(n), a]) for a in range(3)])
        err[:, k] = np.linalg.norm(model_xyz - exp, axis=1)
    rms = np.sqrt(np.nanmean(err**2, axis=1))
    worst = np.nanmax(err, axis=0)
    k = int(np.nanargmax(worst))
    quality = {
        "frames": len(tt),
        "markers": len(used),
        "rms_mean_m": round(float(np.mean(rms)), 5),
        "rms_max_m": round(float(np.max(rms)), 5),
        "max_m": round(float(worst[k]), 5),
        "worst_marker": used[k],
        "worst_marker_time_s": round(float(tt[int(np.nanargmax(err[:, k]))]), 3),
        "per_marker_rms_m": {
            n: round(float(np.sqrt(np.nanmean(err[:, j] ** 2))), 5) for j, n in enumerate(used)
        },
    }
    return ik_mot, quality


def _ik_verdict(q: dict, tools: LabTools) -> str | None:
    bad = []
    if q["rms_mean_m"] > tools.max_rms_m:
        bad.append(f"RMS marker error {q['rms_mean_m'] * 100:.2f} cm > {tools.max_rms_m * 100:.1f} cm")
    if q["max_m"] > tools.max_err_m:
        bad.append(
            f"max marker error {q['max_m'] * 100:.2f} cm ({q['worst_marker']} at "
            f"{q['worst_marker_time_s']:.2f} s) > {tools.max_err_m * 100:.1f} cm"
        )
    return "; ".join(bad) or None


# -- one trial, many trials ------------------------------------------------------------------------
def import_lab_trial(
    spec: LabTrialSpec,
    tools: LabTools,
    sites: Sequence[ImuSite] | None = None,
    cutoff_hz: float = 6.0,
    rate_hz: float = 100.0,
) -> ImportedTrial:
    """Scale (once per person), IK, quality check, then ID + virtual IMUs (``import_trial``)."""
    subject = spec.subject or Path(spec.static).name.split(".")[0]
    # absolute: OpenSim's tools change into their setup file's folder while they run
    person_dir = (Path(tools.work_dir) / subject).resolve()
    key = (str(Path(spec.static).resolve()), float(spec.mass_kg))
    if key not in tools.scaled:
        person_dir.mkdir(parents=True, exist_ok=True)
        static = lab_markers(Path(spec.static), person_dir)
        tools.scaled[key] = scale_model(static, spec.mass_kg, person_dir, subject, tools)
    scaled, scale_report = tools.scaled[key]
    person_dir.mkdir(parents=True, exist_ok=True)
    markers, swaps = fix_label_swaps(
        lab_markers(Path(spec.markers), person_dir),
        lab_markers(Path(spec.static), person_dir),
        tools.marker_set,
        person_dir,
    )
    ik_mot, quality = run_ik(scaled, markers, person_dir, spec.name, tools.marker_set)
    quality["labels_swapped"] = swaps
    verdict = _ik_verdict(quality, tools)
    quality["beyond_limits"] = verdict
    if verdict and not tools.accept_bad_ik:
        raise IkQualityError(f"{spec.name}: IK refused ({spec.markers}): {verdict}")
    res = import_trial(
        TrialSpec(spec.name, scaled, ik_mot, spec.grf, spec.external_loads, subject=subject),
        sites,
        cutoff_hz,
        rate_hz,
    )
    res.report.update({"markers": str(spec.markers), "ik_quality": quality, "scaling": scale_report})
    return res


def read_masses(path: str | Path) -> dict[str, float]:
    """``{subject: kg}`` from a CSV with a subject column (subject, subjectID, id) and a mass column
    (mass_kg, mass)."""
    p = Path(path)
    try:
        with open(p, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise DatasetError(f"{p}: cannot read: {exc.strerror or exc}") from exc
    if not rows:
        raise DatasetError(f"{p}: no rows")
    cols = {c.lower(): c for c in rows[0]}
    sc = next((cols[c] for c in ("subject", "subjectid", "id") if c in cols), None)
    mc = next((cols[c] for c in ("mass_kg", "mass") if c in cols), None)
    if sc is None or mc is None:
        raise DatasetError(f"{p}: needs a subject column (subject/subjectID/id) and mass_kg or mass")
    try:
        return {r[sc].strip(): float(r[mc]) for r in rows}
    except ValueError as exc:
        raise DatasetError(f"{p}: non-numeric mass: {exc}") from exc


def _is_static(p: Path) -> bool:
    stem = p.name.split(".")[0].lower()
    return "static" in p.parent.name.lower() or stem.endswith("_st") or "static" in stem


def discover_lab_trials(folder: str | Path, masses: dict[str, float]) -> list[LabTrialSpec]:
    """Every walking trial of a lab folder laid out one folder per person: ``<person>/**`` holds one
    static ``.trc`` (in a ``static`` folder, or named ``*_ST.trc`` / ``*static*.trc``) and walking
    ``.trc`` files, each with ``<stem>_grf.mot`` beside it (and optionally ``<stem>_grf.xml``)."""
    base = Path(folder)
    if not base.is_dir():
        raise DatasetError(f"{base}: not a folder")
    out = []
    people = sorted(d for d in base.iterdir() if d.is_dir() and any(d.rglob("*.trc")))
    if not people:
        raise DatasetError(f"{base}: no person folders with .trc marker files")
    for d in people:
        trcs = sorted(d.rglob("*.trc"))
        statics = [p for p in trcs if _is_static(p)]
        if len(statics) != 1:
            raise DatasetError(f"{d}: needs exactly one static .trc, found {[p.name for p in statics]}")
        if d.name not in masses:
            raise DatasetError(f"{d}: no body mass for person '{d.name}' in the masses table")
        for trc in (p for p in trcs if p is not statics[0]):
            stem = trc.name.split(".")[0]
            grf = trc.with_name(stem + "_grf.mot")
            xml = trc.with_name(stem + "_grf.xml")
            if not grf.is_file():
                raise DatasetError(f"{trc}: no GRF file {grf.name} beside it")
            out.append(
                LabTrialSpec(
                    stem, trc, statics[0], masses[d.name], grf, xml if xml.is_file() else None, d.name
                )
            )
    return out


def import_lab_dataset(
    specs: Iterable[LabTrialSpec],
    out_dir: str | Path,
    tools: LabTools | None = None,
    sites: Sequence[ImuSite] | None = None,
    cutoff_hz: float = 6.0,
    rate_hz: float = 100.0,
    progress: bool = True,
) -> tuple[Path | None, list[dict], list[str]]:
    """Import every trial; a trial that fails (bad file, IK beyond limits) is one line in the
    returned failures and is left out. Returns (manifest path or None, reports, failures)."""
    specs = list(specs)
    check_names([s.name for s in specs])
    with tempfile.TemporaryDirectory(prefix="ge_lab_") as tmp:
        tools = tools or LabTools(Path(tmp))
        extra = {
            "source": "gait_estimator.data.opensim_lab",
            "moment_valid": "extra/moment_valid [N, 6]: 1 = that leg's moments are physically valid",
        }
        return import_tolerant(
            specs,
            lambda spec: import_lab_trial(spec, tools, sites, cutoff_hz, rate_hz),
            out_dir,
            extra,
            "import-lab",
            progress,
        )
