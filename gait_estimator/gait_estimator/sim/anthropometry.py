"""Subjects: sex, age, mass and height from adult distributions; segment parameters after
de Leva (1996, adjusted Zatsiorsky-Seluyanov tables) with a few Winter (2009) proportions.

Segments of the planar model: HAT (head, upper and middle trunk), two arms (swinging
against the ipsilateral leg, so whole-body angular momentum stays small), pelvis (de Leva's
lower trunk), thigh, shank and foot on each side. Lengths scale with height, masses with body
mass; every subject gets its own small random deviation of each length (a few per cent).
"""

from __future__ import annotations

import numpy as np

ANKLE_HEIGHT_PER_HEIGHT = 0.039  # Winter: lateral malleolus height over body height

# de Leva (1996), Table 4: mass fraction, length (mm at the reference stature), CoM from the
# proximal end (fraction of length), sagittal radius of gyration (fraction of length).
_DE_LEVA = {
    "male": {
        "stature_mm": 1741.0,
        "head": 0.0694, "upper_trunk": 0.1596, "mid_trunk": 0.1633, "lower_trunk": 0.1117,
        "upper_arm": 0.0271, "forearm": 0.0162, "hand": 0.0061,
        "thigh": (0.1416, 422.2, 0.4095, 0.329),
        "shank": (0.0433, 434.0, 0.4459, 0.255),
        "foot": (0.0137, 258.1, 0.4415, 0.257),
    },
    "female": {
        "stature_mm": 1735.0,
        "head": 0.0668, "upper_trunk": 0.1545, "mid_trunk": 0.1465, "lower_trunk": 0.1247,
        "upper_arm": 0.0255, "forearm": 0.0138, "hand": 0.0056,
        "thigh": (0.1478, 368.5, 0.3612, 0.369),
        "shank": (0.0481, 432.3, 0.4416, 0.271),
        "foot": (0.0129, 228.3, 0.4014, 0.299),
    },
}

_WINTER_LENGTH = {"thigh": 0.245, "shank": 0.246, "foot": 0.152}

AGE_GROUPS = {"young": (18, 35), "middle": (35, 55), "older": (55, 76)}
_AGE_P = (0.4, 0.35, 0.25)
# Adult height (m) and BMI (kg/m^2) distributions (roughly European adults).
_HEIGHT = {"male": (1.776, 0.070), "female": (1.645, 0.065)}
_BMI = {"male": (26.0, 3.8), "female": (25.0, 4.5)}


def segment_parameters(sex: str, mass_kg: float, height_m: float, length_scale=None) -> dict:
    """Planar segment table for one subject: masses (kg), lengths (m), CoM, inertia (kg m^2)."""
    t = _DE_LEVA[sex]
    ls = {"thigh": 1.0, "shank": 1.0, "foot": 1.0, "trunk": 1.0}
    if length_scale:
        ls.update(length_scale)
    seg: dict = {}
    for name in ("thigh", "shank", "foot"):
        frac, _length_mm, com, rog = t[name]
        # Lengths from Winter's (2009) height proportions (joint centre to joint centre): de
        # Leva's female thigh (hip estimate from surface landmarks) is too short for a chain.
        length = _WINTER_LENGTH[name] * height_m * ls[name]
        seg[name] = {
            "mass": frac * mass_kg,
            "length": length,
            "com": com,  # fraction of length from proximal (foot: from the heel)
            "inertia": frac * mass_kg * (rog * length) ** 2,
        }
    arm_frac = t["upper_arm"] + t["forearm"] + t["hand"]
    hat_frac = t["head"] + t["upper_trunk"] + t["mid_trunk"]  # arms: own segments (swing)
    trunk_len = 0.288 * height_m * ls["trunk"]  # hip joint to shoulder (Winter 2009)
    arm_len = 0.44 * height_m  # shoulder to fingertip, elbow slightly flexed (Winter 2009)
    seg["arm"] = {
        "mass": arm_frac * mass_kg,
        "length": arm_len,
        "com": 0.40,  # fraction of length from the shoulder
        "inertia": arm_frac * mass_kg * (0.30 * arm_len) ** 2,
        "shoulder_height": trunk_len,
    }
    seg["hat"] = {
        "mass": hat_frac * mass_kg,
        "length": trunk_len,
        "com_height": 0.66 * trunk_len,  # above the hip joint centre, along the trunk
        "inertia": hat_frac * mass_kg * (0.42 * trunk_len) ** 2,
    }
    pel_len = 0.10 * height_m
    seg["pelvis"] = {
        "mass": t["lower_trunk"] * mass_kg,
        "length": pel_len,
        "com_height": 0.35 * pel_len,
        "inertia": t["lower_trunk"] * mass_kg * (0.5 * pel_len) ** 2,
    }
    foot = seg["foot"]
    lf = foot["length"]
    foot["heel_back"] = 0.22 * lf  # heel behind the ankle joint
    foot["ball_front"] = 0.52 * lf  # metatarsal heads ahead of the ankle joint
    foot["ankle_height"] = ANKLE_HEIGHT_PER_HEIGHT * height_m
    return seg


def sample_subject(rng: np.random.Generator, subject_id: str = "S000", spread: float = 1.0) -> dict:
    """Random adult: sex, age group, age, height, mass, gait traits and segment table.

    ``spread`` scales the SDs of height, BMI and segment lengths (domain randomization: > 1).
    """
    sex = "male" if rng.random() < 0.5 else "female"
    group = list(AGE_GROUPS)[int(rng.choice(3, p=_AGE_P))]
    lo, hi = AGE_GROUPS[group]
    age = float(rng.uniform(lo, hi))
    h_mu, h_sd = _HEIGHT[sex]
    h_sd = h_sd * spread
    height = float(np.clip(rng.normal(h_mu, h_sd), h_mu - 2.5 * h_sd, h_mu + 2.5 * h_sd))
    b_mu, b_sd = _BMI[sex]
    bmi = float(np.clip(rng.normal(b_mu, b_sd * spread), 18.5, 38.0))
    mass = bmi * height**2
    lo_len, hi_len = (0.93, 1.07) if spread == 1.0 else (1 - 0.07 * spread, 1 + 0.07 * spread)
    length_scale = {k: float(np.clip(rng.normal(1.0, 0.03 * spread), lo_len, hi_len))
                    for k in ("thigh", "shank", "foot", "trunk")}
    # Preferred speed falls with age (Bohannon 1997); normalised by height.
    pref = {"young": 0.80, "middle": 0.78, "older": 0.72}[group] * height
    subject = {
        "id": subject_id,
        "sex": sex,
        "age_group": group,
        "age": round(age, 1),
        "height_m": round(height, 4),
        "mass_kg": round(mass, 3),
        "bmi": round(bmi, 2),
        "preferred_speed_mps": round(float(pref * rng.normal(1.0, 0.07)), 3),
        "length_scale": length_scale,
        # Gait style: blend between Winter and Bovi templates, offsets (deg), amplitude scales.
        "gait": {
            "winter_weight": float(rng.uniform(0.2, 0.8)),
            "pelvis_tilt_deg": float(rng.normal(-6.0, 3.0)),
            "trunk_lean_deg": float(rng.normal(-3.0, 2.0)),
            "offset_deg": [float(v) for v in rng.normal(0.0, [2.0, 2.0, 1.5])],
            "scale": [float(v) for v in np.clip(rng.normal(1.0, [0.06, 0.06, 0.08]), 0.8, 1.2)],
            "phase_shift": float(rng.normal(0.0, 0.01)),
            "stride_length_factor": float(np.clip(rng.normal(1.0, 0.04), 0.9, 1.1)),
            "asym_scale": [float(v) for v in rng.normal(0.0, [0.025, 0.025, 0.03])],
            "asym_offset_deg": [float(v) for v in rng.normal(0.0, [1.0, 1.0, 1.0])],
            "asym_timing": float(rng.normal(0.0, 0.006)),
            "stride_cv": float(rng.uniform(0.012, 0.03)),
        },
    }
    subject["segments"] = segment_parameters(sex, mass, height, length_scale)
    # Pelvic tilt oscillation: amplitude scale and per-harmonic phase shifts (deg) of the
    # population template (normative.PelvisTemplate); real subjects differ a lot (Dorschky P01
    # vs P03: harmonic phases 45-95 deg apart).
    subject["gait"]["pelvis_osc_scale"] = float(np.clip(rng.normal(1.0, 0.25), 0.5, 1.6))
    subject["gait"]["pelvis_osc_phase_deg"] = [float(v) for v in rng.normal(0.0, 30.0, 4)]
    return subject
