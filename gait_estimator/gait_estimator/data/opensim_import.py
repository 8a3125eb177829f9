"""OpenSim lab data -> a dataset directory in the project's own format (``manifest.json`` + ``.npz``).

Inputs per trial (what a biomechanics lab has): a scaled ``.osim`` model, an IK ``.mot``, and
either a GRF ``.mot`` (with the lab's ExternalLoads XML, or a plate-to-foot assignment worked
out here, see :mod:`gait_estimator.data.opensim_grf`) or an ID ``.sto`` already computed.
``.gz`` copies of any of them are read too.

Per trial:

1. Joint moments: ``opensim.InverseDynamicsTool`` on a copy of the model with every force
   removed (muscles, actuators, contacts), IK coordinates low-passed by the tool at
   ``cutoff_hz`` (its IIR filter + GCV spline, as the OpenSim GUI). Rajagopal-type models have the
   knee coordinate positive in flexion: their knee moment is negated so every dataset uses the
   package convention (knee extension +, :mod:`gait_estimator.conventions`).
2. Virtual IMUs at configurable sites (:class:`ImuSite`): specific force ``R^T (a - g)`` and
   angular velocity in the sensor frame, from the same filtered spline kinematics through the
   model's state. Station acceleration is a central difference (1 ms) of the analytic station
   velocity (SimTK's acceleration-from-udot differs by up to 0.3 % below function-based knees).
   Sensor frame: the segment frame the simulator and models use (x forward, y left, z up;
   OpenSim body x, -z, y), rotated by the site's mounting rotation.
3. Validity: a leg's moments are invalid while its foot is on the ground but not on a plate
   (kinematic contact from heel/MTP height and speed), with a 30 ms margin.
4. Body mass: the sum of the model's body masses.

Output arrays per trial (see :mod:`gait_estimator.sim.dataset`): ``moment_nm`` [N, 6] in
``conventions.JOINTS`` order, ``imu/<loc>/acc|gyro|quat|valid|stamp_ns``, ``phase_r`` (NaN
where no right stride is known), ``extra/moment_valid`` [N, 6] (1 = physically valid),
``extra/grf_vy_r|l`` (N) and ``extra/time_source_s``. The manifest carries a per-trial report.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gait_estimator import conventions
from gait_estimator.data.opensim_grf import FY_ON, FootLoads, assign_plates, intervals, read_external_loads
from gait_estimator.data.opensim_kinematics import (
    ImuSite,
    Kinematics,
    bodies_of,
    body_mass,
    default_sites,
    foot_points,
    id_model,
    osim_module,
    plain_file,
    quiet_stdout,
    read_table,
    resolve_sites,
    virtual_imus,
)
from gait_estimator.errors import ConfigError, DatasetError

__all__ = [
    "ImportedTrial",
    "TrialSpec",
    "import_trial",
    "stride_phase",
]

LEGS = ("r", "l")
JOINT_STEMS = ("hip_flexion", "knee_angle", "ankle_angle")
MIN_CONTACT_S = 0.10  # s: kinematic contacts shorter than this are dropped, gaps shorter closed
VALID_MARGIN_S = 0.03  # s: invalid margin around an unmeasured contact
MIN_OVERLAP_S = 0.2  # s: IK and GRF must share at least this much time


@dataclass
class TrialSpec:
    """Files of one trial. ``id_sto`` replaces the ID tool; ``given_id`` is only compared with."""

    name: str
    model: Path
    ik: Path
    grf: Path | None = None
    external_loads: Path | None = None
    id_sto: Path | None = None
    given_id: Path | None = None
    subject: str | None = None


@dataclass
class ImportedTrial:
    trial: Any  # gait_estimator.sim.dataset.Trial
    report: dict = field(default_factory=dict)


def _kinematic_contact(feet: dict, rate_hz: float) -> dict[str, np.ndarray]:
    """Foot on the ground: heel or MTP within 3 cm of the floor (5th percentile) and slower than 1 m/s."""
    fh = np.percentile(np.concatenate([feet[s]["heel"][:, 1] for s in LEGS]), 5)
    ft = np.percentile(np.concatenate([feet[s]["toe"][:, 1] for s in LEGS]), 5)
    n = int(round(MIN_CONTACT_S * rate_hz))
    out = {}
    for sd in LEGS:
        d = feet[sd]
        on = ((d["heel"][:, 1] < fh + 0.03) & (d["v_heel"] < 1.0)) | (
            (d["toe"][:, 1] < ft + 0.03) & (d["v_toe"] < 1.0)
        )
        for flag in (False, True):  # close short gaps, then drop short blips (not at the edges)
            for a, b in intervals(on == flag):
                if b - a + 1 < n and a > 0 and b < len(on) - 1:
                    on[a : b + 1] = not flag
        out[sd] = on
    return out


def _validity(contact: dict, fy: dict, rate_hz: float) -> tuple[dict[str, np.ndarray], dict[str, list]]:
    """Leg valid unless its foot is on the ground but carried by a plate for under half the contact."""
    margin = int(round(VALID_MARGIN_S * rate_hz))
    valid, heel_strikes = {}, {}
    for sd in LEGS:
        on_plate = fy[sd] > FY_ON
        valid[sd] = np.ones(len(on_plate), bool)
        heel_strikes[sd] = []
        for a, b in intervals(contact[sd] | on_plate):
            if np.mean(on_plate[a : b + 1]) >= 0.5:
                start = a + int(np.flatnonzero(on_plate[a : b + 1])[0])
            else:
                valid[sd][max(0, a - margin) : b + margin + 1] = False
                start = a
            if start > 0:
                heel_strikes[sd].append(start)
    return valid, heel_strikes


def stride_phase(n: int, hs: list[int]) -> np.ndarray:
    """0..1 from each heel strike to the next (NaN outside complete strides)."""
    phase = np.full(n, np.nan)
    for a, b in zip(hs[:-1], hs[1:], strict=False):
        phase[a:b] = np.arange(b - a) / (b - a)
    return phase


def _run_id(
    osim: Any,
    model_path: Path,
    ik_path: Path,
    loads: FootLoads,
    t0: float,
    t1: float,
    cutoff_hz: float,
    tmp: Path,
    name: str,
) -> Path:
    tool = osim.InverseDynamicsTool()
    tool.setName(name)
    tool.setModelFileName(str(model_path))
    tool.setCoordinatesFileName(str(ik_path))
    tool.setExternalLoadsFileName(str(loads.xml_path))
    tool.setLowpassCutoffFrequency(cutoff_hz)
    tool.setStartTime(t0)
    tool.setEndTime(t1)
    tool.setResultsDir(str(tmp))
    tool.setOutputGenForceFileName(name + "_id.sto")
    setup = tmp / f"{name}_id_setup.xml"
    tool.printToXML(str(setup))
    try:
        with quiet_stdout():  # the tool prints the model summary on C++ stdout (breaks the progress bar)
            ok = osim.InverseDynamicsTool(str(setup)).run()
    except RuntimeError as exc:
        raise DatasetError(f"{name}: InverseDynamicsTool failed: {str(exc).strip()[:300]}") from exc
    if not ok:
        raise DatasetError(f"{name}: InverseDynamicsTool reported failure")
    return tmp / (name + "_id.sto")


RESIDUAL_FORCES = ("pelvis_tx_force", "pelvis_ty_force", "pelvis_tz_force")
RESIDUAL_MOMENTS = ("pelvis_tilt_moment", "pelvis_list_moment", "pelvis_rotation_moment")


def _pelvis_residuals(idt: dict, grid: np.ndarray, measured: np.ndarray, mass: float) -> dict | None:
    """Pelvis residual forces (% body weight) and moments (N·m/kg), RMS and max |.|, over the samples
    where every foot contact is measured (elsewhere the unmeasured GRF shows up as a residual)."""
    if not all(c in idt for c in RESIDUAL_FORCES + RESIDUAL_MOMENTS) or not measured.any():
        return None
    out = {"samples": int(measured.sum())}
    for cols, scale, unit in (
        (RESIDUAL_FORCES, 100.0 / (mass * 9.80665), "pct_bw"),
        (RESIDUAL_MOMENTS, 1.0 / mass, "nm_per_kg"),
    ):
        for c in cols:
            x = np.interp(grid, idt["time"], idt[c])[measured] * scale
            key = c.rsplit("_", 1)[0]
            out[f"{key}_rms_{unit}"] = round(float(np.sqrt(np.mean(x**2))), 3)
            out[f"{key}_max_{unit}"] = round(float(np.max(np.abs(x))), 3)
    return out


def _check_coordinates(ik: dict, model: Any, source: Path) -> None:
    cs = model.getCoordinateSet()
    coords = {cs.get(i).getName() for i in range(cs.getSize())}
    need = [f"{j}_{sd}" for j in JOINT_STEMS for sd in LEGS]
    missing_model = [c for c in need if c not in coords]
    if missing_model:
        raise DatasetError(f"{source}: the model has no coordinate(s) {missing_model}")
    missing_ik = [c for c in need if c not in ik]
    if missing_ik:
        raise DatasetError(f"{source}: IK file lacks coordinate column(s) {missing_ik}")


def import_trial(
    spec: TrialSpec, sites: Sequence[ImuSite] | None = None, cutoff_hz: float = 6.0, rate_hz: float = 100.0
) -> ImportedTrial:
    """One trial: ID moments, virtual IMUs, validity, mass (see the module docstring)."""
    from gait_estimator.sim.dataset import Trial

    if spec.grf is None and spec.id_sto is None:
        raise DatasetError(f"{spec.name}: give a GRF file (to run inverse dynamics) or an ID .sto")
    if not (cutoff_hz > 0 and rate_hz > 0):
        raise ConfigError("cutoff_hz/rate_hz", (cutoff_hz, rate_hz), "must both be > 0")
    osim = osim_module()
    with tempfile.TemporaryDirectory(prefix="ge_osim_") as tmp_s:
        tmp = Path(tmp_s)
        model_src = plain_file(spec.model, tmp)
        ik_path = plain_file(spec.ik, tmp)
        ik = read_table(ik_path, spec.ik)
        idm_path = id_model(osim, model_src, tmp)
        model = osim.Model(str(idm_path))
        _check_coordinates(ik, model, spec.ik)
        bodies = bodies_of(model)
        missing_bodies = [b for sd in LEGS for b in ("calcn_" + sd, "toes_" + sd) if b not in bodies]
        if missing_bodies:
            raise DatasetError(f"{spec.model}: needs bodies {missing_bodies} (feet for contacts and plates)")
        mass = body_mass(model)
        knee_sign = -1.0 if model.getCoordinateSet().get("knee_angle_r").getRangeMax() > 1.0 else 1.0
        t0, t1 = float(ik["time"][0]), float(ik["time"][-1])
        grf = grf_path = None
        if spec.grf is not None:
            grf_path = plain_file(spec.grf, tmp)
            grf = read_table(grf_path, spec.grf)
            t0, t1 = max(t0, float(grf["time"][0])), min(t1, float(grf["time"][-1]))
            if t1 - t0 < MIN_OVERLAP_S:
                raise DatasetError(
                    f"{spec.name}: IK {spec.ik} ({ik['time'][0]:.3f}-{ik['time'][-1]:.3f} s) and "
                    f"GRF {spec.grf} "
                    f"({grf['time'][0]:.3f}-{grf['time'][-1]:.3f} s) overlap for {max(t1 - t0, 0):.3f} s, "
                    f"need >= {MIN_OVERLAP_S} s"
                )
        kin = Kinematics(osim, model, ik_path, cutoff_hz)
        grid = np.round(
            np.arange(math.ceil(t0 * rate_hz - 1e-6), math.floor(t1 * rate_hz + 1e-6) + 1) / rate_hz, 9
        )
        feet = foot_points(kin, grid)

        loads = None
        if grf is not None:
            if spec.external_loads is not None:
                loads = read_external_loads(Path(spec.external_loads), grf, grf_path, bodies, tmp, spec.name)
            else:
                feet_t = np.arange(t0, t1 + 1e-9, 0.01)
                loads = assign_plates(
                    grf, foot_points(kin, feet_t), feet_t, (t0, t1), tmp, spec.name, str(spec.grf)
                )
        if spec.id_sto is not None:
            id_path = plain_file(spec.id_sto, tmp)
            moments_source = f"given ID file {spec.id_sto}"
        else:
            id_path = _run_id(osim, idm_path, ik_path, loads, t0, t1, cutoff_hz, tmp, spec.name)
            moments_source = f"opensim.InverseDynamicsTool {osim.GetVersion()}"
        idt = read_table(id_path, Path(spec.id_sto or id_path))
        if idt["time"][0] > grid[0] + 0.02 or idt["time"][-1] < grid[-1] - 0.02:
            raise DatasetError(
                f"{spec.name}: ID times {idt['time'][0]:.3f}-{idt['time'][-1]:.3f} s do not cover "
                f"the IK/GRF range {grid[0]:.3f}-{grid[-1]:.3f} s"
            )
        moments = np.zeros((len(grid), 6))
        for k, joint in enumerate(conventions.JOINTS):
            col = next((joint + s for s in ("_moment", "_force") if joint + s in idt), None)
            if col is None:
                raise DatasetError(f"{spec.id_sto or id_path}: no column '{joint}_moment'")
            sign = knee_sign if joint.startswith("knee") else 1.0
            moments[:, k] = sign * np.interp(grid, idt["time"], idt[col])

        contact = _kinematic_contact(feet, rate_hz)
        if loads is not None:
            fy = {sd: np.interp(grid, loads.time, loads.fy[sd]) for sd in LEGS}
            valid, hs = _validity(contact, fy, rate_hz)
        else:  # no plates known: every contact is assumed measured
            fy = {sd: np.full(len(grid), np.nan) for sd in LEGS}
            valid = {sd: np.ones(len(grid), bool) for sd in LEGS}
            hs = {sd: [a for a, _ in intervals(contact[sd]) if a > 0] for sd in LEGS}
        valid_j = np.column_stack([valid[j[-1]] for j in conventions.JOINTS])
        residuals = _pelvis_residuals(idt, grid, valid["r"] & valid["l"], mass)

        resolved = resolve_sites(osim, model, kin.set(float(grid[0])), sites or default_sites(), spec.model)
        imus = virtual_imus(kin, grid, resolved)
        time_ns = np.round((grid - grid[0]) * 1e9).astype(np.int64)
        for sig in imus.values():
            sig["valid"] = np.ones(len(grid), bool)
            sig["stamp_ns"] = time_ns.copy()
            for k in ("acc", "gyro", "quat"):
                sig[k] = sig[k].astype(np.float32)
        pelvis = np.column_stack([ik[c] for c in ("pelvis_tx", "pelvis_tz")]) if "pelvis_tx" in ik else None
        speed = (
            float(np.linalg.norm(pelvis[-1] - pelvis[0]) / (ik["time"][-1] - ik["time"][0]))
            if pelvis is not None
            else float("nan")
        )
        subject = spec.subject or Path(spec.model).name.split(".")[0]
        trial = Trial(
            trial_id=spec.name,
            subject={"id": subject, "mass_kg": round(mass, 4)},
            speed_mps=speed,
            sample_rate_hz=float(rate_hz),
            time_ns=time_ns,
            imu=imus,
            joint_names=conventions.JOINTS,
            moment_nm=moments.astype(np.float32),
            phase_r=stride_phase(len(grid), hs["r"]).astype(np.float32),
            events={f"heel_strike_{sd}": np.asarray(hs[sd], np.int64) for sd in LEGS},
            extras={
                "moment_valid": valid_j.astype(np.uint8),
                "grf_vy_r": fy["r"].astype(np.float32),
                "grf_vy_l": fy["l"].astype(np.float32),
                "time_source_s": grid,
            },
        )
        report = {
            "trial": spec.name,
            "subject": subject,
            "model": str(spec.model),
            "ik": str(spec.ik),
            "grf": None if spec.grf is None else str(spec.grf),
            "external_loads": None if spec.external_loads is None else str(spec.external_loads),
            "moments_from": moments_source,
            "body_mass_kg": round(mass, 3),
            "body_mass_from": "sum of body masses in the model",
            "knee_sign_applied": knee_sign,
            "time_range_s": [float(grid[0]), float(grid[-1])],
            "lowpass_hz": cutoff_hz,
            "coordinates_missing_in_ik": kin.missing,
            "plates": None if loads is None else loads.report,
            "valid_fraction": {sd: round(float(valid[sd].mean()), 3) for sd in LEGS},
            "pelvis_residuals": residuals,
            "imu_sites": {
                d["site"].location: {
                    "body": d["site"].body,
                    "position_m": [round(float(x), 4) for x in d["pos"]],
                    "rule": d["rule"],
                    "rotation_deg": list(d["site"].rotation_deg),
                }
                for d in resolved
            },
        }
        return ImportedTrial(trial, report)

