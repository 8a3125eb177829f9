"""Vicon Plug-in Gait outputs in a c3d -> a dataset trial (joint moments + virtual IMUs), no OpenSim.

Plug-in Gait (PiG) writes, besides the markers, its model outputs as c3d points:

- joint moments ``L/R Hip/Knee/AnkleMoment``, labelled ``Nmm`` but normalised by body mass
  (N·mm/kg, as Vicon does when the subject mass is set). Component X is sagittal with PiG's
  (= Winter's) sign: extensor (hip, knee) and plantarflexor (ankle) positive. Converted here to
  the package convention (:mod:`gait_estimator.conventions`, OpenSim gait2392): hip_flexion =
  -X(hip), knee_angle = +X(knee), ankle_angle = -X(ankle), then N·m/kg x body mass -> N·m.
  PiG leaves the kinetics undefined (NaN) while a foot is on the ground off the plates; those
  samples are 0 with ``extra/moment_valid`` = 0.
- segment "bone" points ``<SEG>O/A/L/P``: origin plus one segment length along the anterior,
  left and proximal axes, in the lab frame (mm, Z up). Femur: O = knee centre, P = hip centre;
  tibia: O = ankle centre, P = knee centre; foot: O near the toe, A up (dorsal), P back to the heel.

Virtual IMUs: bone points low-passed (4th-order zero-phase Butterworth, ``cutoff_hz``), the
segment rotation re-orthonormalised, sensor frame = the segment frame the simulator and models
use (x forward, y left, z up): pelvis/thigh/shank ``[A, L, P]``, foot ``[-P, L, A]``. Sites (as
the OpenSim importer's standard sites): pelvis on the sacrum (SACR marker, 1 cm posterior),
thigh half way knee->hip 7 cm lateral, shank half way ankle->knee 3.5 cm anterior, foot 55 %
toe->heel 2 cm dorsal. acc = R^T (p'' - g), gyro = body angular velocity from consecutive
rotations. Frames where any bone point is missing are cropped (the longest complete run is kept).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gait_estimator import conventions
from gait_estimator.data.opensim_batch import import_tolerant
from gait_estimator.data.opensim_grf import intervals
from gait_estimator.data.opensim_import import ImportedTrial, stride_phase
from gait_estimator.errors import DatasetError

__all__ = ["PIG_MOMENT_SIGN", "PigC3d", "discover_pig_trials", "import_pig_dataset", "read_pig_trial"]

SIDES = {"r": "R", "l": "L"}
# package sign = PIG_MOMENT_SIGN x PiG X component (PiG: extensor / plantarflexor positive)
PIG_MOMENT_SIGN = {"hip_flexion": -1.0, "knee_angle": 1.0, "ankle_angle": -1.0}
PIG_JOINT = {"hip_flexion": "Hip", "knee_angle": "Knee", "ankle_angle": "Ankle"}
SEGMENTS = {
    "pelvis": "PEL",
    "thigh_r": "RFE",
    "thigh_l": "LFE",
    "shank_r": "RTI",
    "shank_l": "LTI",
    "foot_r": "RFO",
    "foot_l": "LFO",
}
MIN_SAMPLES = 50  # shortest usable complete run of bone points (0.5 s at 100 Hz)


@dataclass
class PigC3d:
    """The parts of a PiG c3d the importer uses (points in m, lab frame, Z up)."""

    path: Path
    rate_hz: float
    first_frame: int
    points: dict[str, np.ndarray]  # label -> [N, 3]
    mass_kg: float
    subject: str
    events: dict[str, list[float]]  # "Right Foot Strike" -> times (s, c3d time base)


def _labels(group: dict) -> list[str]:
    out: list[str] = []
    for key in ["LABELS"] + [f"LABELS{i}" for i in range(2, 10)]:
        if key in group:
            out += [str(s).strip() for s in group[key]["value"]]
    return out


def load_pig_c3d(path: str | Path) -> PigC3d:
    """Read a PiG c3d with ezc3d (``pip install ezc3d``)."""
    try:
        import ezc3d
    except ImportError as exc:
        raise DatasetError("reading c3d files needs the 'ezc3d' package (requirements/python.txt)") from exc
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{p}: file not found")
    try:
        c = ezc3d.c3d(str(p))
    except (RuntimeError, ValueError, OSError) as exc:
        raise DatasetError(f"{p}: not a readable c3d file: {str(exc).strip()[:200]}") from exc
    par = c["parameters"]
    labels = _labels(par["POINT"])
    data = np.asarray(c["data"]["points"][:3], float)  # [3, labels, frames]
    if len(labels) != data.shape[1]:
        raise DatasetError(f"{p}: {len(labels)} point labels for {data.shape[1]} points")
    units = str((list(par["POINT"].get("UNITS", {}).get("value", [])) or ["mm"])[0]).strip().lower()
    scale = 1e-3 if units == "mm" else 1.0
    # model outputs keep their own units (deg, N·mm/kg, N/kg, W/kg); only positions are in mm
    outputs = set()
    for group in ("ANGLES", "MOMENTS", "FORCES", "POWERS", "SCALARS"):
        if group in par["POINT"]:
            outputs.update(str(x).strip() for x in np.ravel(par["POINT"][group]["value"]))
    points = {name: data[:, k, :].T * (1.0 if name in outputs else scale) for k, name in enumerate(labels)}
    try:
        mass = float(np.ravel(par["PROCESSING"]["Bodymass"]["value"])[0])
    except (KeyError, IndexError) as exc:
        raise DatasetError(f"{p}: no PROCESSING:Bodymass (the Plug-in Gait subject mass)") from exc
    subj = par.get("SUBJECTS", {}).get("NAMES", {}).get("value", [])
    events: dict[str, list[float]] = {}
    ev = par.get("EVENT", {})
    if "TIMES" in ev:
        times = np.asarray(ev["TIMES"]["value"], float)
        for ctx, lab, t in zip(ev["CONTEXTS"]["value"], ev["LABELS"]["value"], times[1], strict=False):
            events.setdefault(f"{ctx.strip()} {lab.strip()}", []).append(float(t))
    return PigC3d(
        p,
        float(np.ravel(par["POINT"]["RATE"]["value"])[0]),
        int(c["header"]["points"]["first_frame"]),
        points,
        mass,
        str(subj[0]).strip() if len(subj) else p.parent.parent.name,
        {k: sorted(v) for k, v in events.items()},
    )


def _lowpass(x: np.ndarray, rate_hz: float, cutoff_hz: float) -> np.ndarray:
    from scipy.signal import butter, filtfilt

    b, a = butter(2, cutoff_hz / (rate_hz / 2))  # 2nd order, run twice (filtfilt): 4th order, no lag
    return filtfilt(b, a, x, axis=0)


def _rotations(o: np.ndarray, a: np.ndarray, lft: np.ndarray, p: np.ndarray, foot: bool) -> np.ndarray:
    """Sensor-to-lab rotations [N, 3, 3] (nearest rotation to the bone axes)."""
    ax = [(v - o) / np.linalg.norm(v - o, axis=1, keepdims=True) for v in (a, lft, p)]
    cols = (-ax[2], ax[1], ax[0]) if foot else (ax[0], ax[1], ax[2])
    m = np.stack(cols, axis=2)
    u, _, vt = np.linalg.svd(m)
    r = u @ vt
    if np.any(np.linalg.det(r) < 0):
        raise DatasetError("bone axes are left-handed: not Plug-in Gait O/A/L/P points")
    return r


def _site(
    loc: str, pts: dict[str, np.ndarray], seg: str, r: np.ndarray, o: np.ndarray
) -> tuple[np.ndarray, str]:
    """Sensor position in the segment (sensor) frame, m."""
    length = float(np.median(np.linalg.norm(pts[seg + "P"] - pts[seg + "O"], axis=1)))
    if loc == "pelvis":
        sacr = [k for k in ("SACR",) if k in pts] or [k for k in ("LPSI", "RPSI") if k in pts]
        if sacr:
            m = np.mean([pts[k] for k in sacr], axis=0)
            local = np.nanmedian(np.einsum("nji,nj->ni", r, m - o), axis=0)
            local[0] -= 0.01
            return local, f"{'/'.join(sacr)} marker(s), 1 cm posterior"
        return np.array([-0.12, 0.0, 0.05]), "12 cm behind, 5 cm above the pelvis origin"
    part, side = loc.split("_")
    lateral = -1.0 if side == "r" else 1.0  # sensor y points left
    if part == "thigh":
        return np.array([0.0, 0.07 * lateral, 0.5 * length]), "half way knee->hip centre, 7 cm lateral"
    if part == "shank":
        return np.array([0.035, 0.0, 0.5 * length]), "half way ankle->knee centre, 3.5 cm anterior"
    return np.array([-0.55 * length, 0.0, 0.02]), "55 % toe->heel, 2 cm dorsal"


def _imu(r: np.ndarray, pos: np.ndarray, rate_hz: float) -> dict[str, np.ndarray]:
    from scipy.spatial.transform import Rotation

    dt = 1.0 / rate_hz
    acc_lab = np.gradient(np.gradient(pos, dt, axis=0), dt, axis=0)
    g = np.array([0.0, 0.0, -conventions.GRAVITY])
    acc = np.einsum("nji,nj->ni", r, acc_lab - g)
    n = len(r)
    rot = Rotation.from_matrix(r)
    gyro = np.zeros((n, 3))
    # body angular velocity: R_{k+1} = R_{k-1} exp([w] 2 dt); one-sided at the ends
    gyro[1:-1] = (rot[:-2].inv() * rot[2:]).as_rotvec() / (2 * dt)
    gyro[0] = (rot[0].inv() * rot[1]).as_rotvec() / dt
    gyro[-1] = (rot[-2].inv() * rot[-1]).as_rotvec() / dt
    quat = rot.as_quat()
    quat = np.where(quat[:, 3:4] < 0, -quat, quat)
    return {"acc": acc, "gyro": gyro, "quat": quat}


def read_pig_trial(
    path: str | Path, name: str | None = None, subject: str | None = None, cutoff_hz: float = 6.0
) -> ImportedTrial:
    """One PiG walking trial -> dataset trial (see the module docstring) and a report."""
    from gait_estimator.sim.dataset import Trial

    c3d = load_pig_c3d(path)
    pts, rate = c3d.points, c3d.rate_hz
    need = [seg + k for seg in SEGMENTS.values() for k in "OALP"]
    need += [f"{s}{j}Moment" for s in SIDES.values() for j in PIG_JOINT.values()]
    missing = [k for k in need if k not in pts]
    if missing:
        raise DatasetError(f"{c3d.path}: not a Plug-in Gait output; missing points {missing[:8]}")
    complete = np.all([np.all(np.isfinite(pts[k]), axis=1) for k in need[: 4 * len(SEGMENTS)]], axis=0)
    runs = intervals(complete)
    if not runs:
        raise DatasetError(f"{c3d.path}: no frame with every bone point")
    a, b = max(runs, key=lambda ab: ab[1] - ab[0])
    if b - a + 1 < MIN_SAMPLES:
        raise DatasetError(f"{c3d.path}: bone points complete for only {b - a + 1} frames (< {MIN_SAMPLES})")
    sl = slice(a, b + 1)
    n = b - a + 1
    crop = {k: v[sl] for k, v in pts.items()}
    mass = c3d.mass_kg

    moments = np.zeros((n, 6))
    valid = np.zeros((n, 6), bool)
    for k, joint in enumerate(conventions.JOINTS):
        stem, side = joint.rsplit("_", 1)
        x = crop[f"{SIDES[side]}{PIG_JOINT[stem]}Moment"][:, 0]  # N·mm/kg
        valid[:, k] = np.isfinite(x)
        moments[:, k] = np.where(valid[:, k], PIG_MOMENT_SIGN[stem] * x * 1e-3 * mass, 0.0)

    imus, sites = {}, {}
    time_ns = np.round(np.arange(n) / rate * 1e9).astype(np.int64)
    for loc, seg in SEGMENTS.items():
        f = {k: _lowpass(crop[seg + k], rate, cutoff_hz) for k in "OALP"}
        r = _rotations(f["O"], f["A"], f["L"], f["P"], foot=loc.startswith("foot"))
        # the bone frame's origin, expressed with the sensor axes (foot: toe end)
        local, rule = _site(loc, crop, seg, r, f["O"])
        sig = _imu(r, f["O"] + np.einsum("nij,j->ni", r, local), rate)
        sig = {k: v.astype(np.float32) for k, v in sig.items()}
        sig["valid"] = np.ones(n, bool)
        sig["stamp_ns"] = time_ns.copy()
        imus[loc] = sig
        sites[loc] = {"segment": seg, "position_m": [round(float(x), 4) for x in local], "rule": rule}

    t0 = c3d.first_frame / rate  # c3d event times count from the header's first frame
    hs = {}
    for sd, side in (("r", "Right"), ("l", "Left")):
        idx = [int(round((t - t0) * rate)) - a for t in c3d.events.get(f"{side} Foot Strike", [])]
        hs[sd] = sorted(i for i in idx if 0 <= i < n)
    grf = {}
    for sd, side in SIDES.items():
        key = f"{side}GroundReactionForce"  # N/kg, Z up
        grf[sd] = (np.nan_to_num(crop[key][:, 2]) * mass) if key in crop else np.full(n, np.nan)
    pel = crop["PELO"][:, :2]
    speed = float(np.linalg.norm(pel[-1] - pel[0]) / max((n - 1) / rate, 1e-9))
    trial_name = name or c3d.path.name.split(".")[0]
    subject_id = subject or c3d.subject
    trial = Trial(
        trial_id=trial_name,
        subject={"id": subject_id, "mass_kg": round(mass, 4)},
        speed_mps=speed,
        sample_rate_hz=float(rate),
        time_ns=time_ns,
        imu=imus,
        joint_names=conventions.JOINTS,
        moment_nm=moments.astype(np.float32),
        phase_r=stride_phase(n, hs["r"]).astype(np.float32),
        events={f"heel_strike_{sd}": np.asarray(hs[sd], np.int64) for sd in SIDES},
        extras={
            "moment_valid": valid.astype(np.uint8),
            "grf_vy_r": grf["r"].astype(np.float32),
            "grf_vy_l": grf["l"].astype(np.float32),
            "time_source_s": t0 + (a + np.arange(n)) / rate,
        },
    )
    report = {
        "trial": trial_name,
        "subject": subject_id,
        "c3d": str(c3d.path),
        "moments_from": "Vicon Plug-in Gait (c3d POINT:MOMENTS, N·mm/kg)",
        "moment_sign": {j: PIG_MOMENT_SIGN[j] for j in PIG_MOMENT_SIGN},
        "body_mass_kg": round(mass, 3),
        "body_mass_from": "c3d PROCESSING:Bodymass",
        "frames_kept": [int(a), int(b)],
        "frames_total": int(len(complete)),
        "time_range_s": [float(t0 + a / rate), float(t0 + b / rate)],
        "lowpass_hz": cutoff_hz,
        "valid_fraction": {sd: round(float(valid[:, 3 * i].mean()), 3) for i, sd in enumerate(SIDES)},
        "imu_sites": sites,
    }
    return ImportedTrial(trial, report)


def discover_pig_trials(folder: str | Path) -> list[Path]:
    """Walking c3d files under ``folder`` (files in a ``Static`` folder or named ``*static*`` skipped)."""
    base = Path(folder)
    if not base.is_dir():
        raise DatasetError(f"{base}: not a folder")
    out = [
        p
        for p in sorted(base.rglob("*.c3d"))
        if "static" not in p.parent.name.lower() and "static" not in p.name.lower()
    ]
    if not out:
        raise DatasetError(f"{base}: no walking .c3d files")
    return out


def import_pig_dataset(
    paths: Iterable[str | Path], out_dir: str | Path, cutoff_hz: float = 6.0, progress: bool = True
) -> tuple[Path | None, list[dict], list[str]]:
    """Every c3d -> one dataset; a bad file is one line in the returned failures and left out."""
    extra = {
        "source": "gait_estimator.data.pig_c3d",
        "moment_valid": "extra/moment_valid [N, 6]: 1 = PiG defined that joint's moment",
    }
    return import_tolerant(
        [Path(p) for p in paths],
        lambda p: read_pig_trial(p, cutoff_hz=cutoff_hz),
        out_dir,
        extra,
        "import-pig",
        progress,
    )
