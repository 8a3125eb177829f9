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
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from gait_estimator.errors import DatasetError

N_HARMONICS = 12
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


@lru_cache(maxsize=4)
def load_templates(root: str | None = None) -> tuple[Template, ...]:
    """All angle templates (Winter slow/natural/fast, Bovi adult XS/S/M/L)."""
    base = Path(root) if root else default_data_root()
    if not (base / "normative").is_dir():
        raise DatasetError(f"normative data not found under {base}")
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


def bovi_speed_norm(root: Path) -> dict[str, float]:
    """Adult mean gait speed per Bovi speed class, body heights per second."""
    path = root / "normative" / "bovi2011" / "parameters.csv"
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
    """Winter's single-foot GRF (slow, natural, fast cadence) re-sampled over stance progress."""
    base = Path(root) if root else default_data_root()
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
