"""Simulator physics and validation figures (issue 3)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from gait_estimator.conventions import WINTER_TO_OPENSIM_SIGN
from gait_estimator.sim import dynamics
from gait_estimator.sim import model as md
from gait_estimator.sim import normative as nv
from gait_estimator.sim import validation as va
from gait_estimator.sim.generate import sample_subject, simulate_trial
from gait_estimator.sim.imu import ImuConfig, ImuErrorModel


def _ideal() -> ImuConfig:
    return ImuConfig(errors=ImuErrorModel(enabled=False), random_misalignment_deg=0.0)


# 48 subjects: small pools are draw-dependent (12-subject draws give hip r 0.84-0.89 on v6).
NATURAL_SEEDS = tuple(range(11, 59))


@pytest.fixture(scope="module")
def natural_trials():
    out = []
    for seed in NATURAL_SEEDS:
        rng = np.random.default_rng(seed)
        s = sample_subject(rng, f"S{seed}")
        out.append(simulate_trial(s, 40.0, 0.78 * s["height_m"], 100.0, seed=seed, imu_config=_ideal()))
    return out


def _winter(shared_data, name):
    path = shared_data / "normative" / "winter" / f"joint_moment_{name}_cadence.csv"
    with open(path, newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["Percent Stride"].strip()]


def _cycle_moment(trials, joint_idx):
    curves = [va.cycle_mean(t.moment_nm_per_kg[:, joint_idx], t.events["heel_strike_r"], 50) for t in trials]
    return np.mean(curves, axis=0)


# Issue 3 targets: r >= 0.85 per joint and each main peak within Winter mean +- 2 SD. Measured
# (48 subjects pooled, noise off, v6 = real P01 COP path, HIP_FILTER 5, COP_MAX_SHIFT 0.05): hip r
# 0.862, knee 0.909, ankle 0.954; every peak within 0.6 of its 2 SD band (see the peak test).
@pytest.mark.parametrize("joint,col,idx,r_min", [
    ("hip", "Hip", 0, 0.85),
    ("knee", "Knee", 1, 0.85),
    ("ankle", "Ankle", 2, 0.85),
])
def test_moments_follow_winter_natural(natural_trials, shared_data, joint, col, idx, r_min):
    rows = _winter(shared_data, "natural")
    sign = WINTER_TO_OPENSIM_SIGN[joint]
    ref = sign * np.array([float(r[f"{col} Mean"]) for r in rows])[:50]
    sim = _cycle_moment(natural_trials, idx)
    r = va.pearson(sim, ref)
    print(f"{joint}: r = {r:.3f}")
    assert r >= r_min


@pytest.mark.parametrize("col,idx,which", [
    ("Hip", 0, "max"),    # hip extensor peak (Winter sign), early stance
    ("Hip", 0, "min"),    # hip flexor peak, late stance
    ("Knee", 1, "max"),   # knee extensor peak
    ("Ankle", 2, "max"),  # ankle plantarflexor peak
])
def test_moment_peaks_within_two_sd(natural_trials, shared_data, col, idx, which):
    rows = _winter(shared_data, "natural")
    mean = np.array([float(r[f"{col} Mean"]) for r in rows])[:50]
    sd = np.array([float(r[f"{col} Std. Dev."]) for r in rows])[:50]
    sim = WINTER_TO_OPENSIM_SIGN[col.lower()] * _cycle_moment(natural_trials, idx)  # Winter signs
    k = int(np.argmax(mean) if which == "max" else np.argmin(mean))
    peak = float(sim.max() if which == "max" else sim.min())
    print(f"{col} {which}: sim {peak:.2f}, Winter {mean[k]:.2f} +- {2 * sd[k]:.2f}")
    assert abs(peak - mean[k]) <= 2.0 * sd[k]


def test_bovi_speed_trend(shared_data):
    """Bovi XS/S/M/L: peak hip extensor and flexor moments grow with speed as in Bovi; the ankle
    plantarflexor peak stays about level (as in Bovi's adults: 1.25, 1.31, 1.32, 1.25 N m/kg)."""
    speeds = nv.bovi_speed_norm(shared_data)
    ext, flex, pf = [], [], []
    for cls in nv.BOVI_CLASSES:
        trials = []
        for seed in (21, 22):
            s = sample_subject(np.random.default_rng(seed), f"S{seed}")
            v = float(np.clip(speeds[cls] * s["height_m"], 0.5, 2.0))
            trials.append(simulate_trial(s, 20.0, v, 100.0, seed=seed, imu_config=_ideal()))
        hip = -_cycle_moment(trials, 0)  # Bovi/Winter sign: extensor +
        ext.append(hip.max())
        flex.append(-hip.min())
        pf.append(float((-_cycle_moment(trials, 2)).max()))
    print("hip ext", np.round(ext, 2), "hip flex", np.round(flex, 2), "ankle pf", np.round(pf, 2))
    assert np.all(np.diff(ext) > 0) and np.all(np.diff(flex) > 0)
    assert max(pf) - min(pf) < 0.3 and 1.0 < min(pf) and max(pf) < 2.0


def test_vertical_grf_integrates_to_body_weight(natural_trials):
    for t in natural_trials:
        fz = t.extras["grf_r"][:, 1].astype(float) + t.extras["grf_l"][:, 1].astype(float)
        weight = t.subject["mass_kg"] * 9.80665
        hs = t.events["heel_strike_r"]
        for a, b in zip(hs[:-1], hs[1:], strict=False):
            assert abs(fz[a:b].mean() / weight - 1.0) < 0.02


def test_pelvis_residual_bound(natural_trials):
    # Top-down (pelvis + HAT + arms) vs bottom-up hip moments. The force residual is zero by
    # construction; the moment residual is zero wherever the COP shift needed for angular
    # momentum balance fits and non-zero where it is clipped (COP_MAX_SHIFT). Measured RMS over
    # the 48 subjects (v6): median 0.60 N m/kg, 0.17-1.18, four above 1.0. Bounds: median < 0.7,
    # every subject < 1.3.
    rms = []
    for t in natural_trials:
        res = t.extras["residual_moment_nm"].astype(float) / t.subject["mass_kg"]
        rms.append(float(np.sqrt(np.mean(res**2))))
    print("residual RMS N m/kg:", np.round(rms, 2))
    assert float(np.median(rms)) < 0.7 and max(rms) < 1.3


def test_acc_is_second_derivative_of_position():
    rng = np.random.default_rng(5)
    s = sample_subject(rng)
    kin = md.simulate_kinematics(s, 5.0, 1.3, 200.0, rng)
    body = dynamics.build_body(kin, s["segments"])
    p, v, a = body.origin["foot_r"]
    dt = 1 / 200.0
    num = (p[2:] - 2 * p[1:-1] + p[:-2]) / dt**2
    err = np.abs(num - a[1:-1])
    assert np.median(err) < 0.05 * np.median(np.abs(a))


def test_real_imu_lag_behind_mocap_is_measured(shared_data):
    """The real gyroscopes lag the mocap joint-angle derivatives by 8-20 ms (P01 ~11 ms, P03
    ~16 ms), with r >= 0.9 at the lag, and aligning them raises r: the lag is in the recording."""
    for name in ("P01_walking", "P03_walking"):
        _, data = va.load_dorschky(name, shared_data)
        lag, per_seg = va.measure_imu_latency(data)
        print(name, f"lag {1000 * lag:.1f} ms",
              {k: (round(1000 * v[0], 1), round(v[1], 3)) for k, v in per_seg.items()})
        assert 0.008 <= lag <= 0.020, (name, lag)
        for seg, (seg_lag, r) in per_seg.items():
            assert r >= 0.9 and seg_lag > 0.0, (name, seg, seg_lag, r)


# Dominant accelerometer channel per segment (largest variance of the real P01 mean curve) and
# regression bounds (measured v6 minus ~0.05) where the 0.7 target is not met. The real thigh and
# shank acc_x curves carry 40-52 % of their variance above the 6th harmonic (heel-strike impact
# and soft-tissue ringing at 0-20 % and 50-65 %), which the rigid-segment model does not produce;
# test_dorschky_reference_agreement shows a second real walker misses 0.7 on the left thigh and
# left shank too.
DORSCHKY_DOMINANT = {  # segment: (dominant column, bound)
    "pelvis": ("pelvis_acc_y", 0.7),    # 0.82 (target met)
    "femur_r": ("femur_r_acc_x", 0.7),  # 0.73 (target met)
    "femur_l": ("femur_l_acc_x", 0.62),  # 0.67
    "tibia_r": ("tibia_r_acc_y", 0.7),   # 0.87 (target met)
    "tibia_l": ("tibia_l_acc_x", 0.22),  # 0.27
    "foot_r": ("foot_r_acc_x", 0.7),     # 0.75 (target met)
    "foot_l": ("foot_l_acc_x", 0.64),    # 0.69
}


def test_dorschky_p01_channels(shared_data):
    """All IMU channels vs real P01 walking means (table printed), the subject calibrated to P01
    (height, mass, stride duration, thigh/knee/ankle amplitude scales and offsets from P01's
    measured joint angles; curve shapes stay the population templates), the simulated channels
    delayed by P01's measured IMU lag. Asserted: every sagittal gyro (pelvis, thigh, shank, foot)
    r >= 0.7 (target), the dominant accelerometer channels (DORSCHKY_DOMINANT) and the stride
    duration within 3 % of P01's."""
    meta, data = va.load_dorschky("P01_walking", shared_data)
    s = va.dorschky_subject(meta, data=data)
    tr = simulate_trial(s, 60.0, 1.29, 100.0, seed=3, imu_config=va.dorschky_imu_config(meta))
    stride_s = float(np.mean(np.diff(tr.events["heel_strike_r"]))) / 100.0
    print(f"stride {stride_s:.3f} s, P01 {float(np.nanmean(data['dur'])):.3f} s")
    assert abs(stride_s / float(np.nanmean(data["dur"])) - 1.0) < 0.03
    r = va.compare_dorschky(tr, meta, data)
    r_raw = va.compare_dorschky(tr, meta, data, latency_s=0.0)
    for k, v in r.items():
        print(f"{k:16s} r = {v:6.2f}  (no lag alignment {r_raw[k]:6.2f})")
    for seg, (col, bound) in DORSCHKY_DOMINANT.items():
        assert r[f"{seg}_gyro_z"] >= 0.7, (seg, r[f"{seg}_gyro_z"])
        dom = max((f"{seg}_acc_{a}" for a in "xyz"), key=lambda c: float(np.var(data[c][:100])))
        print(f"dominant {dom}: r = {r[dom]:.2f}")
        assert dom == col
        assert r[dom] >= bound, (dom, r[dom])


def test_dorschky_reference_agreement(shared_data):
    """What the 0.7 target on the dominant accelerometer channels asks of a walker model.

    A second real walker, P03 (same lab, set-up and cycle definition; its left accelerometer
    columns are its right ones shifted by half a cycle in the source), agrees with P01 on every
    leg gyroscope (r >= 0.8) but reaches only 0.57 / 0.55 on P01's left thigh / left shank acc_x.
    Most of P01's shank acc_x variance lies above the 5th harmonic (stance ringing after heel
    strike). Its low harmonics are rigid-body motion: predicted from P01's own thigh sensor,
    gyroscopes and knee angle with rigid segments, they match at r 0.87 (first 4 harmonics),
    and acc_y matches at 0.78 unfiltered, but the whole acc_x curve does not (r 0.00). The same
    chain applied to the simulator's own cycle means (rigid by construction) reproduces its shank
    sensor at r > 0.99, so the chain itself is right."""
    m1, d1 = va.load_dorschky("P01_walking", shared_data)
    tr = simulate_trial(va.dorschky_subject(m1, data=d1), 30.0, 1.29, 100.0, seed=3,
                        imu_config=va.dorschky_imu_config(m1))
    hs = tr.events["heel_strike_r"]
    cols = {c["column"]: c for c in m1["columns"]}
    sim = {c: va.sim_channel(tr, c, cols[c], hs)
           for c in cols if c.startswith(("femur_r", "tibia_r", "foot_r"))}
    for i, k in enumerate(("hip_flexion_r_angle", "knee_angle_r_angle", "ankle_angle_r_angle")):
        sim[k] = va.cycle_mean(tr.extras["angles_rad"][:, i].astype(float), hs)
    sim["dur"] = np.array([float(np.mean(np.diff(hs))) / tr.sample_rate_hz])
    pred_sim = va.rigid_shank_prediction(m1, sim)
    for k, a in enumerate("xy"):
        assert va.pearson(pred_sim[:, k], sim[f"tibia_r_acc_{a}"]) > 0.99, a
    _, d3 = va.load_dorschky("P03_walking", shared_data)
    agree = va.participant_agreement(m1, d1, d3)
    for k, v in agree.items():
        if not np.isnan(v):
            print(f"P03 vs P01 {k:16s} r = {v:5.2f}")
    for seg in ("femur_r", "femur_l", "tibia_r", "tibia_l", "foot_r", "foot_l"):
        assert agree[f"{seg}_gyro_z"] >= 0.8, (seg, agree[f"{seg}_gyro_z"])
    assert agree["femur_l_acc_x"] < 0.65 and agree["tibia_l_acc_x"] < 0.65, agree
    for side in "rl":
        x = np.asarray(d1[f"tibia_{side}_acc_x"][:100], float)
        high = 1.0 - np.var(va._periodic_lowpass(x, 5)) / np.var(x)
        print(f"tibia_{side}_acc_x: {100 * high:.0f} % of the variance above the 5th harmonic")
        assert high > 0.5, (side, high)
    pred = va.rigid_shank_prediction(m1, d1)
    real = {a: np.asarray(d1[f"tibia_r_acc_{a}"][:100], float) for a in "xy"}
    r_y = va.pearson(pred[:, 1], real["y"])
    r_x = va.pearson(pred[:, 0], real["x"])
    r_x_low = va.pearson(va._periodic_lowpass(pred[:, 0], 4), va._periodic_lowpass(real["x"], 4))
    print(f"rigid chain from P01's thigh sensor: shank acc_y r {r_y:.2f}, acc_x r {r_x:.2f}, "
          f"acc_x first 4 harmonics r {r_x_low:.2f}")
    assert r_y >= 0.7 and r_x_low >= 0.8 and r_x < 0.3, (r_y, r_x_low, r_x)
