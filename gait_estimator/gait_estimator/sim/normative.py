"""Normative gait curves (Winter 2009 by cadence, Bovi 2011 by speed class) as Fourier series.

Each template holds four sagittal curves over one stride (heel strike to heel strike of the
same leg), in degrees, in the simulator's planar convention (counter-clockwise positive when
seen from the right, i.e. about the world -y axis):

- ``thigh``: absolute thigh angle (flexion +),
- ``knee``: knee flexion (+ flexion, Winter/Bovi convention; OpenSim knee_angle = -knee),
- ``ankle``: ankle dorsiflexion (+), offset so the foot is flat in mid-stance,
- ``pelvis``: pelvic tilt deviation from its mean (+ posterior), Bovi only (zero for Winter).

The curves are stored as Fourier coefficients so that any phase (and its derivatives) can be
evaluated cheaply. Templates are tagged with a normalised speed (body heights per second).

Run-time data source: the package file ``normative_coefficients.json`` (written by
``python -m gait_estimator.sim.make_normative_coefficients`` from ``../shared/data``, with the
source files' SHA-256 and the fit settings as provenance), so an installed package simulates
without the reference data directory. Passing ``root`` to the ``load_*`` functions fits afresh
from the CSV files instead (the test suite checks that both agree).

The pelvic tilt oscillation (:func:`fit_pelvis_tilt`) comes from the real sacrum gyroscope of
Dorschky et al. (2019) P01 and P03 walking (integrated over the cycle); Bovi's adult ensemble
tilt curves are too flat (0.1-0.6 deg per harmonic, phases scattered) to carry a pattern.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from gait_estimator.conventions import GRAVITY
from gait_estimator.errors import DatasetError
from gait_estimator.sim.anthropometry import ANKLE_HEIGHT_PER_HEIGHT

N_HARMONICS = 12
PELVIS_HARMONICS = 4
PELVIS_SOURCES = ("P01_walking", "P03_walking")
DATA_FILE = "normative_coefficients.json"
CURVES = ("thigh", "knee", "ankle", "pelvis")

# Winter's cadences (steps/min) and the normalised speed they imply through the simulator's
# stride-length law (SL/H = 0.92 (v/H)^0.44, fitted to Bovi's adult speed classes).
WINTER_CADENCE = {"slow": 87.0, "natural": 105.0, "fast": 123.0}
BOVI_CLASSES = ("XS", "S", "M", "L")


def default_data_root() -> Path:
    """../shared/data beside the repository (the reference data directory)."""
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def speed_from_cadence(cadence_spm: float) -> float:
    """Normalised speed v/H (1/s) from cadence with SL/H = 0.92 (v/H)^0.44."""
    # v/H = SL/H * cadence/120 = 0.92 (v/H)^0.44 c/120  ->  (v/H)^0.56 = 0.92 c / 120
    return float((0.92 * cadence_spm / 120.0) ** (1.0 / 0.56))


@dataclass(frozen=True)
class Template:
    name: str
    family: str  # "winter" or "bovi"
    speed_norm: float  # v / body height, 1/s
    coeffs: np.ndarray  # [len(CURVES), 2K+1]: a0, a1..aK, b1..bK (degrees)


def fourier_fit(frac: np.ndarray, values: np.ndarray, k: int = N_HARMONICS) -> np.ndarray:
    """Least-squares Fourier coefficients [a0, a1..ak, b1..bk] of a periodic curve."""
    h = np.arange(1, k + 1)
    arg = 2 * np.pi * np.outer(frac, h)
    basis = np.concatenate([np.ones((len(frac), 1)), np.cos(arg), np.sin(arg)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, values, rcond=None)
    return coef


def fourier_eval(coeffs: np.ndarray, phase: np.ndarray, deriv: int = 0) -> np.ndarray:
    """Evaluate Fourier series ``coeffs`` [..., 2K+1] at ``phase`` (cycles); d^n/dphase^n."""
    k = (coeffs.shape[-1] - 1) // 2
    h = np.arange(1, k + 1)
    w = 2 * np.pi * h
    arg = np.multiply.outer(phase, w)
    c, s = np.cos(arg), np.sin(arg)
    a, b = coeffs[..., 1 : k + 1], coeffs[..., k + 1 :]
    if deriv == 0:
        out = c @ a.T + s @ b.T + coeffs[..., 0]
    elif deriv == 1:
        out = -s @ (a * w).T + c @ (b * w).T
    elif deriv == 2:
        out = -c @ (a * w**2).T - s @ (b * w**2).T
    else:
        raise ValueError("deriv must be 0, 1 or 2")
    return out


def _read_winter(root: Path, which: str) -> dict[str, np.ndarray]:
    path = root / "normative" / "winter" / f"joint_angles_{which}_cadence.csv"
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if (r.get("Percent Stride") or "").strip()]
    pct = np.array([float(r["Percent Stride"]) for r in rows])
    keep = pct < 100.0 - 1e-9
    out = {"frac": pct[keep] / 100.0}
    for key in ("Hip", "Knee", "Ankle"):
        out[key] = np.array([float(r[f"{key} Mean"]) for r in rows])[keep]
    return out


def _read_bovi_long(path: Path, group: str = "Adult") -> dict[tuple[str, str], np.ndarray]:
    series: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            if r["group"] != group:
                continue
            series.setdefault((r["variable"].strip(), r["condition"]), []).append(
                (float(r["gait_cycle_fraction"]), float(r["mean"]))
            )
    out = {}
    for key, pts in series.items():
        pts.sort()
        arr = np.array(pts)
        out[key] = arr
    return out


def _flat_foot_offset(frac, thigh, knee, ankle) -> float:
    """Ankle offset (deg) that makes the foot flat on average over 15-35 % of the stride."""
    sel = (frac >= 0.15) & (frac <= 0.35)
    return float(-np.mean(thigh[sel] - knee[sel] + ankle[sel]))


def _require(base: Path) -> Path:
    if not (base / "normative").is_dir():
        raise DatasetError(f"normative data not found under {base}")
    return base


@lru_cache(maxsize=4)
def load_templates(root: str | None = None) -> tuple[Template, ...]:
    """All angle templates (Winter slow/natural/fast, Bovi adult XS/S/M/L): from the embedded
    package data, or fitted afresh from the CSV files under ``root``."""
    if root:
        return fit_templates(Path(root))
    return tuple(Template(t["name"], t["family"], float(t["speed_norm"]), np.array(t["coeffs"], dtype=float))
                 for t in embedded()["templates"])


def fit_templates(base: Path) -> tuple[Template, ...]:
    """Fit the angle templates from ``base``/normative (Winter CSV, Bovi long CSV)."""
    _require(base)
    templates: list[Template] = []
    for which, cad in WINTER_CADENCE.items():
        w = _read_winter(base, which)
        frac, thigh, knee, ankle = w["frac"], w["Hip"], w["Knee"], w["Ankle"]
        ankle = ankle + _flat_foot_offset(frac, thigh, knee, ankle)
        curves = np.stack([thigh, knee, ankle, np.zeros_like(thigh)])
        coef = np.stack([fourier_fit(frac, c) for c in curves])
        templates.append(Template(f"winter_{which}", "winter", speed_from_cadence(cad), coef))
    rot = _read_bovi_long(base / "normative" / "bovi2011" / "joint_rotations.csv")
    speeds = bovi_speed_norm(base)
    for cond in BOVI_CLASSES:
        frac = rot[("Thigh Flex/Extension", cond)][:, 0]
        keep = frac < 1.0 - 1e-9
        frac = frac[keep]
        thigh = rot[("Thigh Flex/Extension", cond)][keep, 1]
        knee = rot[("Knee Flex/Extension", cond)][keep, 1]
        ankle = rot[("Ankle Dorsi/Plantarflexion", cond)][keep, 1]
        tilt = rot[("Pelvic Ant/Posterior Tilt", cond)][keep, 1]
        ankle = ankle + _flat_foot_offset(frac, thigh, knee, ankle)
        curves = np.stack([thigh, knee, ankle, tilt - tilt.mean()])
        coef = np.stack([fourier_fit(frac, c) for c in curves])
        templates.append(Template(f"bovi_{cond}", "bovi", speeds[cond], coef))
    return tuple(templates)


def bovi_speed_norm(root: Path | None = None) -> dict[str, float]:
    """Adult mean gait speed per Bovi speed class, body heights per second (embedded data when
    ``root`` is None)."""
    if root is None:
        return {k: float(v) for k, v in embedded()["bovi_speed_norm"].items()}
    path = Path(root) / "normative" / "bovi2011" / "parameters.csv"
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    out: dict[str, float] = {}
    in_speed = False
    for r in rows:
        if r and r[0].startswith("Gait speed / BH"):
            in_speed = True
        elif r and r[0]:
            in_speed = False
        if in_speed and len(r) > 11 and r[1] in (*BOVI_CLASSES, "Natural"):
            out[r[1]] = float(r[11]) / 100.0  # adult mean, %BH/s -> BH/s
    return out


def family_weights(templates: tuple[Template, ...], family: str, speed_norm: np.ndarray) -> np.ndarray:
    """[N, T] linear-interpolation weights over one family's templates (clamped at the ends)."""
    idx = [i for i, t in enumerate(templates) if t.family == family]
    sp = np.array([templates[i].speed_norm for i in idx])
    order = np.argsort(sp)
    idx, sp = [idx[i] for i in order], sp[order]
    x = np.clip(np.asarray(speed_norm, dtype=float), sp[0], sp[-1])
    j = np.clip(np.searchsorted(sp, x, side="right") - 1, 0, len(sp) - 2)
    t = (x - sp[j]) / (sp[j + 1] - sp[j])
    w = np.zeros((x.size, len(templates)))
    rows = np.arange(x.size)
    w[rows, np.asarray(idx)[j]] = 1.0 - t
    w[rows, np.asarray(idx)[j + 1]] += t
    return w


@dataclass(frozen=True)
class GrfTemplate:
    speed_norm: float
    progress: np.ndarray  # [P] stance progress 0..1 (heel strike -> toe off)
    vertical: np.ndarray  # [P] N/kg
    horizontal: np.ndarray  # [P] N/kg, + forward


@lru_cache(maxsize=4)
def load_grf_templates(root: str | None = None) -> tuple[GrfTemplate, ...]:
    """Winter's single-foot GRF (slow, natural, fast cadence) re-sampled over stance progress:
    embedded package data, or fitted afresh from the CSV files under ``root``."""
    if root:
        return fit_grf_templates(Path(root))
    return tuple(GrfTemplate(float(g["speed_norm"]), np.array(g["progress"], dtype=float),
                             np.array(g["vertical"], dtype=float), np.array(g["horizontal"], dtype=float))
                 for g in embedded()["grf"])


def fit_grf_templates(base: Path) -> tuple[GrfTemplate, ...]:
    """Re-sample Winter's GRF CSV files under ``base`` over stance progress (sorted by speed)."""
    _require(base)
    out = []
    for which, cad in WINTER_CADENCE.items():
        path = base / "normative" / "winter" / f"ground_reaction_{which}_cadence.csv"
        with open(path, newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.DictReader(fh) if (r.get("Percent Stride") or "").strip()]
        pct = np.array([float(r["Percent Stride"]) for r in rows]) / 100.0
        fz = np.array([float(r["Vertical Mean"]) for r in rows])
        fx = np.array([float(r["Horizontal Mean"]) for r in rows])
        peak = int(np.argmax(fz))
        end = peak + int(np.argmax(fz[peak:] <= 0.02 * fz.max()))
        to = pct[end]
        prog = np.linspace(0.0, 1.0, 101)
        vz = np.interp(prog * to, pct, fz)
        vx = np.interp(prog * to, pct, fx)
        vz[-1] = vx[-1] = 0.0
        vz[0] = vx[0] = 0.0
        out.append(GrfTemplate(speed_from_cadence(cad), prog, vz, vx))
    return tuple(sorted(out, key=lambda g: g.speed_norm))


def grf_at(templates: tuple[GrfTemplate, ...], progress: np.ndarray, speed_norm: np.ndarray):
    """Single-foot (vertical, horizontal) GRF in N/kg at stance ``progress`` (NaN/outside -> 0)."""
    sp = np.array([g.speed_norm for g in templates])
    x = np.clip(speed_norm, sp[0], sp[-1])
    j = np.clip(np.searchsorted(sp, x, side="right") - 1, 0, len(sp) - 2)
    t = (x - sp[j]) / (sp[j + 1] - sp[j])
    inside = (progress >= 0.0) & (progress <= 1.0)
    p = np.clip(progress, 0.0, 1.0)
    vz = np.zeros_like(p)
    vx = np.zeros_like(p)
    for i, g in enumerate(templates):
        wi = np.where(j == i, 1.0 - t, 0.0) + np.where(j + 1 == i, t, 0.0)
        vz += wi * np.interp(p, g.progress, g.vertical)
        vx += wi * np.interp(p, g.progress, g.horizontal)
    return np.where(inside, vz, 0.0), np.where(inside, vx, 0.0)


# --------------------------------------------------------------------------------------
# Pelvic tilt oscillation (real sacrum gyroscope)
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PelvisTemplate:
    """Pelvic tilt deviation over the right stride, degrees, simulator sign (+ posterior)."""

    speed_norm: float  # v/H at which ``coeffs`` apply (amplitude scales with speed)
    coeffs: np.ndarray  # [2K+1] a0 (= 0), a1..aK, b1..bK, degrees


def _read_dorschky_gyro(base: Path, name: str) -> tuple[np.ndarray, float, float]:
    folder = base / "real" / "dorschky2019_imu2d"
    with open(folder / f"{name}_mean.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    gyro = np.array([float(r["pelvis_gyro_z"]) for r in rows])
    dur = float(rows[0]["dur"])
    speed = float(rows[0]["speed"])
    return gyro, dur, speed


def fit_pelvis_tilt(base: Path, k: int = PELVIS_HARMONICS) -> PelvisTemplate:
    """Population pelvic tilt template from the real sacrum gyroscopes (``PELVIS_SOURCES``).

    Each subject's cycle-mean ``pelvis_gyro_z`` (rad/s about the pelvis' right axis, i.e. the
    simulator's planar CCW = posterior tilt rate) is Fourier-fitted over the cycle (K
    harmonics) and integrated analytically into a tilt angle. The template takes, per harmonic,
    the phase of the subjects' complex mean and the mean of their amplitudes (a plain mean would
    shrink the amplitude where the subjects' phases differ). The speed reference is P01's v/H
    (P03's height is not given).
    """
    _require(base)
    comp = []
    sn_ref = None
    for name in PELVIS_SOURCES:
        gyro, dur, speed = _read_dorschky_gyro(base, name)
        frac = np.arange(gyro.size) / gyro.size
        c = fourier_fit(frac, gyro, k)  # rad/s
        n = np.arange(1, k + 1)
        # gyro * dur = d(theta)/d(phase): theta = sum A cos + B sin, with
        # a_n dur = 2 pi n B_n and b_n dur = -2 pi n A_n.
        a_ang = -c[k + 1:] * dur / (2 * np.pi * n)
        b_ang = c[1:k + 1] * dur / (2 * np.pi * n)
        comp.append((a_ang - 1j * b_ang) * (180.0 / np.pi))
        if name.startswith("P01"):
            meta = json.loads((base / "real" / "dorschky2019_imu2d" / f"{name}_meta.json").read_text("utf-8"))
            sn_ref = speed / float(meta["height_m"])
    comp = np.array(comp)
    mean = comp.mean(axis=0)
    amp = np.abs(comp).mean(axis=0)
    z = amp * np.exp(1j * np.angle(mean))
    coeffs = np.concatenate([[0.0], z.real, -z.imag])
    return PelvisTemplate(float(sn_ref), coeffs)


@lru_cache(maxsize=4)
def load_pelvis_tilt(root: str | None = None) -> PelvisTemplate:
    """The pelvic tilt template: embedded package data, or fitted afresh under ``root``."""
    if root:
        return fit_pelvis_tilt(Path(root))
    p = embedded()["pelvis_tilt"]
    return PelvisTemplate(float(p["speed_norm"]), np.array(p["coeffs"], dtype=float))


# --------------------------------------------------------------------------------------
# Centre of pressure under the stance foot (real ankle moment and GRF)
# --------------------------------------------------------------------------------------
COP_SOURCE = "P01_walking"  # P03's mass is not given, so its ankle moment cannot be turned into a COP
COP_POINTS = 51
COP_MIN_LOAD_BW = 0.2  # below this vertical load the moment/force ratio is ill-conditioned


@dataclass(frozen=True)
class CopTemplate:
    """Horizontal COP position ahead of the ankle joint over stance, in body heights."""

    progress: np.ndarray  # [P] stance progress 0 (heel strike) .. 1 (toe off)
    ahead: np.ndarray  # [P] (x_cop - x_ankle) / body height


def fit_cop_template(base: Path, name: str = COP_SOURCE) -> CopTemplate:
    """COP path from a real participant's ankle moment and GRF (Dorschky 2019 P01 walking).

    Quasi-static foot balance (the foot's own inertia is small in stance): the ankle moment
    M (OpenSim sign, + dorsiflexion, N m) equals minus the moment of the GRF about the ankle,
    M + d Fy + h Fx = 0, with d the COP's horizontal distance ahead of the ankle and h the
    ankle height. Samples with less than ``COP_MIN_LOAD_BW`` body weight are left out and the
    curve is held flat to heel strike / toe off there.
    """
    _require(base)
    folder = base / "real" / "dorschky2019_imu2d"
    meta = json.loads((folder / f"{name}_meta.json").read_text("utf-8"))
    height, weight = float(meta["height_m"]), float(meta["mass_kg"]) * GRAVITY
    with open(folder / f"{name}_mean.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    fy = np.array([float(r["GRF_y_r"]) for r in rows]) * weight  # body weights -> N
    fx = np.array([float(r["GRF_x_r"]) for r in rows]) * weight
    moment = np.array([float(r["ankle_angle_r_moment"]) for r in rows])
    loaded = np.nonzero(fy > 0.0)[0]
    stance_end = int(loaded[loaded < 0.8 * len(rows)].max()) + 1  # first unloaded sample
    idx = np.arange(stance_end)
    idx = idx[fy[idx] > COP_MIN_LOAD_BW * weight]
    ahead = (-moment[idx] - ANKLE_HEIGHT_PER_HEIGHT * height * fx[idx]) / fy[idx]
    progress = np.linspace(0.0, 1.0, COP_POINTS)
    return CopTemplate(progress, np.interp(progress, idx / stance_end, ahead) / height)


@lru_cache(maxsize=4)
def load_cop_template(root: str | None = None) -> CopTemplate:
    """The COP template: embedded package data, or fitted afresh under ``root``."""
    if root:
        return fit_cop_template(Path(root))
    c = embedded()["cop"]
    return CopTemplate(np.array(c["progress"], dtype=float), np.array(c["ahead"], dtype=float))


# --------------------------------------------------------------------------------------
# Embedded package data
# --------------------------------------------------------------------------------------
def source_files(base: Path) -> list[Path]:
    """The reference files the embedded data is fitted from (relative to ``base``)."""
    files = [base / "normative" / "winter" / f"{kind}_{w}_cadence.csv"
             for kind in ("joint_angles", "ground_reaction") for w in WINTER_CADENCE]
    files += [base / "normative" / "bovi2011" / f for f in ("joint_rotations.csv", "parameters.csv")]
    for name in sorted(set(PELVIS_SOURCES) | {COP_SOURCE}):
        files += [base / "real" / "dorschky2019_imu2d" / f"{name}_{x}" for x in ("mean.csv", "meta.json")]
    return files


def build_payload(base: Path) -> dict:
    """Everything the simulator reads at run time, fitted from ``base`` (JSON-serialisable)."""
    base = _require(Path(base))
    pel = fit_pelvis_tilt(base)
    cop = fit_cop_template(base)
    return {
        "format": 1,
        "generator": "python -m gait_estimator.sim.make_normative_coefficients",
        "provenance": {
            "sources": {str(p.relative_to(base)): hashlib.sha256(p.read_bytes()).hexdigest()
                        for p in source_files(base)},
            "angle_fit": f"least-squares Fourier series, {N_HARMONICS} harmonics, degrees, "
                         "coeffs [curve][a0, a1..aK, b1..bK], curves " + ", ".join(CURVES),
            "grf": "Winter single-foot GRF, N/kg, re-sampled over stance progress (101 points)",
            "pelvis_tilt": f"Dorschky 2019 {' + '.join(PELVIS_SOURCES)} pelvis_gyro_z, {PELVIS_HARMONICS}-"
                           "harmonic fit integrated to degrees (+ posterior); phase of the complex "
                           "mean, mean amplitude; speed_norm: P01 v/H",
            "cop": f"Dorschky 2019 {COP_SOURCE}: horizontal COP ahead of the ankle over stance from the "
                   "ankle moment and GRF (quasi-static foot), body heights",
        },
        "templates": [{"name": t.name, "family": t.family, "speed_norm": t.speed_norm,
                       "coeffs": t.coeffs.tolist()} for t in fit_templates(base)],
        "grf": [{"speed_norm": g.speed_norm, "progress": g.progress.tolist(), "vertical": g.vertical.tolist(),
                 "horizontal": g.horizontal.tolist()} for g in fit_grf_templates(base)],
        "bovi_speed_norm": bovi_speed_norm(base),
        "pelvis_tilt": {"speed_norm": pel.speed_norm, "coeffs": pel.coeffs.tolist()},
        "cop": {"progress": cop.progress.tolist(), "ahead": cop.ahead.tolist()},
    }


@lru_cache(maxsize=1)
def embedded() -> dict:
    """The package's embedded normative data (``normative_coefficients.json``)."""
    try:
        text = resources.files("gait_estimator.sim").joinpath(DATA_FILE).read_text(encoding="utf-8")
    except (FileNotFoundError, OSError) as exc:  # pragma: no cover - broken install
        raise DatasetError(f"embedded normative data {DATA_FILE} missing from the package: {exc}") from exc
    return json.loads(text)
