"""Checks of the simulator against reference data (Winter, Bovi, Dorschky 2019 P01)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from gait_estimator.sim import anthropometry as an
from gait_estimator.sim import model as md
from gait_estimator.sim import normative as nv
from gait_estimator.sim.imu import ImuConfig, ImuErrorModel
from gait_estimator.sim.normative import default_data_root

# The real Dorschky IMU signals lag the motion-capture kinematics that define the cycle (its
# events and joint angles): the thigh, shank and foot gyroscopes correlate best (r 0.92-0.99)
# with the time derivative of the mocap segment angles 11-16 ms later for P01 and 15-19 ms
# later for P03 (``measure_imu_latency``). The simulated IMU has no such lag, so the comparison
# delays the simulated channels by the participant's measured lag (sensor filtering/clock
# offset, a property of the recording, not of the simulator).
LATENCY_SEARCH_POINTS = np.arange(-3.0, 4.0001, 0.1)  # cycle points (1 % of a cycle each)

DORSCHKY_SEGMENT = {"pelvis": "pelvis", "femur_r": "thigh_r", "femur_l": "thigh_l", "tibia_r": "shank_r",
                    "tibia_l": "shank_l", "foot_r": "foot_r", "foot_l": "foot_l"}


def cycle_mean(x: np.ndarray, hs: np.ndarray, n: int = 100) -> np.ndarray:
    """Mean over cycles between consecutive heel strikes (sample indices), ``n`` points each."""
    x = np.asarray(x, dtype=float)
    idx = np.arange(x.shape[0])
    cyc = []
    for a, b in zip(hs[:-1], hs[1:], strict=False):
        tt = np.linspace(a, b, n + 1)[:-1]
        cyc.append(np.stack([np.interp(tt, idx, x[:, j]) for j in range(x.shape[1])], -1) if x.ndim == 2
                   else np.interp(tt, idx, x))
    return np.mean(cyc, axis=0)


def pearson(a, b) -> float:
    """Pearson r; NaN when either series is constant (e.g. an out-of-plane channel, noise off)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt(np.sum(a * a) * np.sum(b * b)))
    return float(np.sum(a * b) / den) if den > 1e-12 else float("nan")


def osim_to_rep103(v) -> np.ndarray:
    """OpenSim segment frame (x fwd, y up, z right) -> simulator segment frame (x fwd, y left, z up)."""
    x, y, z = v
    return np.array([x, -z, y], dtype=float)


def load_dorschky(name: str = "P01_walking", root: Path | None = None):
    base = (root or default_data_root()) / "real" / "dorschky2019_imu2d"
    meta = json.loads((base / f"{name}_meta.json").read_text(encoding="utf-8"))
    with open(base / f"{name}_mean.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    data = {k: np.array([float(r[k]) if r[k] not in ("", None) else np.nan for r in rows])
            for k in rows[0] if k != "sample"}
    return meta, data


def dorschky_subject(meta: dict, seed: int = 0, data: dict | None = None) -> dict:
    """A simulator subject for a Dorschky participant: height, mass and (with ``data``, the
    participant's mean curves) the gait parameters measured on that participant: the amplitude
    scale and offset of the thigh and knee curves and the ankle amplitude scale (least squares
    against the measured right-side joint angles) and the stride duration (``dur``). The joint
    angle *shapes* and everything else stay the simulator's population templates."""
    rng = np.random.default_rng(seed)
    s = an.sample_subject(rng, meta.get("participant", "P01"))
    s["sex"] = "male"
    s["height_m"], s["mass_kg"] = float(meta["height_m"]), float(meta["mass_kg"])
    s["segments"] = an.segment_parameters("male", s["mass_kg"], s["height_m"], s["length_scale"])
    # The population-mean pelvic tilt pattern (no per-subject amplitude/phase deviation).
    s["gait"]["pelvis_osc_scale"] = 1.0
    s["gait"]["pelvis_osc_phase_deg"] = [0.0] * 4
    if data is not None:
        calibrate_gait(s, data)
    return s


def calibrate_gait(subject: dict, data: dict) -> None:
    """Fit ``subject["gait"]`` scale/offset and stride length to measured mean curves (in place)."""
    g = subject["gait"]
    speed = float(np.nanmean(data["speed"]))
    height = subject["height_m"]
    sn = speed / height
    g["scale"], g["offset_deg"] = [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]
    g["asym_scale"], g["asym_offset_deg"], g["asym_timing"] = [0.0] * 3, [0.0] * 3, 0.0
    templates = nv.load_templates()
    am = md.AngleModel(subject, templates, None, None, None, 0.0)
    ph = np.arange(100) / 100.0
    sns = np.full(ph.size, sn)
    a = am.side_angles(ph, sns, "r")
    pelvis = np.radians(g["pelvis_tilt_deg"]) + am.pelvis_dev(ph, sns)
    sim = {"thigh": a["thigh"], "knee": a["thigh"] - a["shank"], "ankle": a["foot"] - a["shank"]}
    real = {"thigh": data["hip_flexion_r_angle"][:100] + pelvis, "knee": -data["knee_angle_r_angle"][:100],
            "ankle": data["ankle_angle_r_angle"][:100]}
    scale, offset = [], []
    for key in ("thigh", "knee", "ankle"):
        x = sim[key] - sim[key].mean()
        y = real[key] - sim[key].mean()
        b = float(np.sum(x * (y - y.mean())) / np.sum(x * x))
        scale.append(float(np.clip(b, 0.7, 1.4)))
        # Ankle offset stays 0: the template ankle is offset so the foot is flat in mid-stance.
        offset.append(float(np.degrees(y.mean())) if key != "ankle" else 0.0)
    g["scale"], g["offset_deg"] = scale, offset
    g["stride_length_factor"] = 1.0
    if "dur" in data:
        sole = md.Sole(subject["segments"]["foot"]["heel_back"], subject["segments"]["foot"]["ball_front"],
                       subject["segments"]["foot"]["ankle_height"])
        am = md.AngleModel(subject, templates, None, None, None, 0.0)
        sl = md._geometric_stride(am, sn, subject["segments"], sole, 0.0)
        g["stride_length_factor"] = float(np.nanmean(data["dur"])) * speed / sl


def dorschky_imu_config(meta: dict, rate_hz: float = 100.0) -> ImuConfig:
    pos = {}
    for col in meta["columns"]:
        if col.get("type") in ("acc", "gyro"):
            pos[DORSCHKY_SEGMENT[col["segment"]]] = tuple(osim_to_rep103(col["sensor_position_in_segment_m"]))
    return ImuConfig(rate_hz=rate_hz, positions=pos, random_misalignment_deg=0.0,
                     errors=ImuErrorModel(enabled=False))


def sim_channel(trial, column: str, meta_col: dict, hs: np.ndarray, latency_s: float = 0.0) -> np.ndarray:
    """Cycle mean of a simulated channel mapped onto a Dorschky column's axis, delayed by
    ``latency_s`` (the value reported at a cycle point is the one ``latency_s`` earlier)."""
    loc = DORSCHKY_SEGMENT[meta_col["segment"]]
    kind = meta_col["type"]
    axis = osim_to_rep103(meta_col["axis_direction_in_segment"])
    sig = trial.imu[loc][kind].astype(float) @ axis
    return cycle_mean(sig, np.asarray(hs, dtype=float) - latency_s * trial.sample_rate_hz)


def _periodic_shift(x: np.ndarray, d: float) -> np.ndarray:
    """Periodic signal ``x`` delayed by ``d`` samples (fractional, via the Fourier series)."""
    k = np.arange(x.size // 2 + 1)
    return np.fft.irfft(np.fft.rfft(x) * np.exp(-2j * np.pi * k * d / x.size), x.size)


def _periodic_derivative(x: np.ndarray, period_s: float) -> np.ndarray:
    """Time derivative of one period ``x`` lasting ``period_s`` seconds (Fourier series)."""
    k = np.arange(x.size // 2 + 1)
    return np.fft.irfft(np.fft.rfft(x) * 2j * np.pi * k / period_s, x.size)


def measure_imu_latency(data: dict, n: int = 100) -> tuple[float, dict[str, tuple[float, float]]]:
    """Lag (s) of the real IMUs behind the mocap kinematics of one Dorschky mean cycle.

    For the right thigh, shank and foot, the sagittal gyroscope is compared with the time
    derivative of the mocap segment angle (hip flexion; + knee angle; + ankle angle, OpenSim
    signs, relative to the pelvis, whose slow tilt changes little); the delay (0.1-point steps)
    that maximises Pearson r is that sensor's lag. Returns the median lag in seconds and, per
    segment, (lag in s, r at that lag)."""
    period = float(np.nanmean(data["dur"]))
    hip = np.asarray(data["hip_flexion_r_angle"][:n], float)
    knee = np.asarray(data["knee_angle_r_angle"][:n], float)
    ankle = np.asarray(data["ankle_angle_r_angle"][:n], float)
    per_seg = {}
    for seg, ang in (("femur_r", hip), ("tibia_r", hip + knee), ("foot_r", hip + knee + ankle)):
        gyro = np.asarray(data[f"{seg}_gyro_z"][:n], float)
        rate = _periodic_derivative(ang, period)
        r, d = max((pearson(_periodic_shift(rate, d), gyro), d) for d in LATENCY_SEARCH_POINTS)
        per_seg[seg] = (float(d * period / n), float(r))
    return float(np.median([v[0] for v in per_seg.values()])), per_seg


def compare_dorschky(trial, meta: dict, data: dict,
                     latency_s: float | None = None) -> dict[str, float]:
    """Pearson r per IMU column between simulated and real cycle means, the simulated channels
    delayed by ``latency_s`` (default: the participant's lag measured by ``measure_imu_latency``;
    0 compares the raw clocks)."""
    if latency_s is None:
        latency_s = measure_imu_latency(data)[0]
    hs = trial.events["heel_strike_r"]
    out = {}
    for col in meta["columns"]:
        if col.get("type") not in ("acc", "gyro"):
            continue
        real = data[col["column"]][:100]
        sim = sim_channel(trial, col["column"], col, hs, latency_s)
        out[col["column"]] = pearson(sim, real)
    return out


def _periodic_lowpass(x: np.ndarray, harmonics: int) -> np.ndarray:
    """One period ``x`` keeping only the mean and the first ``harmonics`` Fourier harmonics."""
    f = np.fft.rfft(np.asarray(x, float))
    f[harmonics + 1:] = 0.0
    return np.fft.irfft(f, x.size)


def participant_agreement(meta: dict, data_a: dict, data_b: dict) -> dict[str, float]:
    """Pearson r per IMU column between two real participants' cycle means, as recorded (same
    lab, set-up and cycle definition). How well one real walker's curves match another's: the
    most a simulator of a generic walker can be expected to reach on that channel."""
    return {c["column"]: pearson(data_a[c["column"]][:100], data_b[c["column"]][:100])
            for c in meta["columns"] if c.get("type") in ("acc", "gyro")}


def rigid_shank_prediction(meta: dict, data: dict, n: int = 100) -> np.ndarray:
    """The right shank sensor's sagittal specific force [n, 2] (x, y in its frame) predicted
    from the participant's own right thigh sensor, thigh and shank gyroscopes and mocap knee
    angle, assuming rigid segments: f_knee = f_thigh_sensor + alpha_t x d - omega_t^2 d in the
    thigh frame, rotated by the knee angle, then f_shank_sensor = f_knee + alpha_s x e -
    omega_s^2 e. Specific force is a free vector, so gravity needs no separate term. The thigh length
    (hip to knee) comes from the participant's height (Winter proportions)."""
    period = float(np.nanmean(data["dur"]))
    pos = {c["column"]: c["sensor_position_in_segment_m"] for c in meta["columns"]
           if "sensor_position_in_segment_m" in c}
    seg = an.segment_parameters("male", float(meta["mass_kg"]), float(meta["height_m"]))
    thigh_len = seg["thigh"]["length"]
    f_t = np.stack([np.asarray(data[f"femur_r_acc_{a}"][:n], float) for a in "xy"], -1)
    w_t = np.asarray(data["femur_r_gyro_z"][:n], float)
    w_s = np.asarray(data["tibia_r_gyro_z"][:n], float)
    a_t, a_s = _periodic_derivative(w_t, period), _periodic_derivative(w_s, period)
    # The IMUs lag the mocap (measure_imu_latency): put the knee angle on the IMU clock.
    lag = measure_imu_latency(data, n)[0] / period * n
    knee = _periodic_shift(np.asarray(data["knee_angle_r_angle"][:n], float), lag)

    def rigid(f0, alpha, omega, r):  # specific force at offset r from a point with f0 (2-D)
        return f0 + alpha[:, None] * md.perp(r) - (omega ** 2)[:, None] * r

    d = np.array([0.0, -thigh_len - pos["femur_r_acc_x"][1]])  # thigh sensor -> knee
    f_k = rigid(f_t, a_t, w_t, d)
    f_k = md.rot(-knee, f_k)  # thigh frame -> shank frame
    e = np.array([0.0, pos["tibia_r_acc_x"][1]])  # knee -> shank sensor
    return rigid(f_k, a_s, w_s, e)
