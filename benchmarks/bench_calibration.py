#!/usr/bin/env python3
"""Sensor-to-segment calibration on real data: rotate every IMU at random, calibrate, run the model.

Data: the real Dorschky 2019 walking cycles (P01, P03; real IMUs, the cycle repeated 6 times as in
``train/sim2real.py``) and the mocap_walkers virtual IMUs (25 real-kinematics trials, 1.2-1.45 s).
For each repetition every sensor is turned by its own random rotation (uniform axis, angle
uniform in 0-180 deg), then:

- ``rotated``: no calibration (what the model sees from a sensor strapped on anyhow);
- ``standing+walking``: 2 s of standing before the walk (gravity on the segment's z, with a
  random posture tilt of 3 deg SD and sensor noise, since neither data set has a standing
  trial), then calibration from it plus the walk;
- ``walking``: calibration from the walk alone.

The model (default ``gait_estimator/models/default.pt``) runs on each; RMSE (N·m/kg) and r per
joint against the measured moments, mean over repetitions; ``ratio`` = calibrated RMSE / aligned.
Usage: ``.venv/bin/python benchmarks/bench_calibration.py [--reps 5] [--model M] [--data ../shared/data]``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from gait_estimator.conventions import GRAVITY
from gait_estimator.core import calibration as cal
from gait_estimator.core.features import channel_matrix
from gait_estimator.runtime.model_file import load_model

ROOT = Path(__file__).resolve().parents[1]
STANDING_S = 2.0
REPO_REFERENCE = Path("gait_estimator/test/data/reference")  # Dorschky P01/P03 copies (no mocap_walkers)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    axis = rng.normal(size=3)
    return Rotation.from_rotvec(axis / np.linalg.norm(axis) * np.radians(rng.uniform(0, 180))).as_matrix()


def standing(rate_hz: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Quiet standing in the segment frame: gravity on z tilted by a posture error, plus noise."""
    n = int(STANDING_S * rate_hz)
    tilt = Rotation.from_rotvec(np.radians(rng.normal(0, 3.0, 3)) * np.array([1, 1, 0])).as_matrix()
    acc = tilt.T @ np.array([0.0, 0.0, GRAVITY]) + rng.normal(0, 0.02, (n, 3))
    return {"acc": acc, "gyro": rng.normal(0, 0.005, (n, 3))}


def conditions(imu: dict, rate_hz: float, rng: np.random.Generator) -> dict[str, dict]:
    """The four versions of one recording's IMU signals (see the module docstring)."""
    rots = {loc: random_rotation(rng) for loc in imu}
    # sensor turned by R relative to the segment: v_sensor = R^T v_segment
    rotated = {loc: {k: sig[k] @ rots[loc] for k in ("acc", "gyro")} for loc, sig in imu.items()}
    out = {"aligned": imu, "rotated": rotated}
    with_stand = {}
    for loc, sig in rotated.items():
        st = standing(rate_hz, rng)
        with_stand[loc] = {k: np.concatenate([st[k] @ rots[loc], sig[k]]) for k in ("acc", "gyro")}
    for name, data, stand_s in (("standing+walking", with_stand, STANDING_S), ("walking", rotated, 0.0)):
        wc = cal.calibrate_wearer(data, rate_hz, standing_s=stand_s)
        out[name] = cal.apply_to_imu(wc, rotated, allow_flagged=True)
        out[name + ":quality"] = {loc: s.quality for loc, s in wc.sensors.items()}
        out[name + ":error_deg"] = {
            loc: cal.rotation_angle_deg(s.rotation @ rots[loc].T) for loc, s in wc.sensors.items()
        }
        out[name + ":flagged"] = {loc: float(s.flagged) for loc, s in wc.sensors.items()}
        out[name + ":silent_over_30deg"] = {
            loc: float(not s.flagged and out[name + ":error_deg"][loc] > 30) for loc, s in wc.sensors.items()
        }
    return out


def predict(rt, imu: dict, idx: np.ndarray) -> np.ndarray:
    md = rt.metadata
    quat = {
        loc: {**sig, "quat": np.tile([0.0, 0.0, 0.0, 1.0], (len(sig["acc"]), 1))} for loc, sig in imu.items()
    }
    x = channel_matrix(md.input_channels, quat)
    x = ((x - np.asarray(md.input_mean)) / np.asarray(md.input_std)).astype(np.float32)
    win = x[idx[:, None] + np.arange(-md.window + 1, 1)[None, :]]
    return rt.predict_batch(win)


def dorschky_items(data_root: Path, rate_hz: float):
    from gait_estimator.train.sim2real import dorschky_recording

    for name in ("P01_walking", "P03_walking"):
        rec = dorschky_recording(name, rate_hz, data_root)
        ch = rec["channels"]
        locs = dict.fromkeys(c.split("/")[0] for c in ch)
        imu = {
            loc: {k: np.stack([ch[f"{loc}/{k}_{a}"] for a in "xyz"], 1) for k in ("acc", "gyro")}
            for loc in locs
        }
        per = int(round(rec["dur_s"] * rate_hz))
        idx = np.arange(len(rec["phase"]) - per, len(rec["phase"]))
        joints = ("hip_flexion_r", "knee_angle_r", "ankle_angle_r")
        ref = np.stack([rec["moments_nm"][j][idx] for j in joints], 1)
        yield name, imu, idx, joints, ref, rec["mass_kg"]


def mocap_items(data_root: Path, window: int):
    from gait_estimator.data.opensim_kinematics import OSIM_TO_SENSOR

    base = data_root / "real" / "mocap_walkers"
    for meta_path in sorted(base.glob("*/derived/*.json")):
        meta = json.loads(meta_path.read_text())
        name = meta["trial"]
        d = np.genfromtxt(meta_path.with_name(name + "_imu.csv"), delimiter=",", names=True, deletechars="")
        m = np.genfromtxt(meta_path.with_name(name + "_moments.csv"), delimiter=",", names=True)
        locs = dict.fromkeys(c.split("/")[0] for c in d.dtype.names if "/" in c)
        imu = {
            loc: {
                k: np.column_stack([d[f"{loc}/{k}_{a}"] for a in "xyz"]) @ OSIM_TO_SENSOR.T
                for k in ("acc", "gyro")
            }
            for loc in locs
        }
        joints = (
            "hip_flexion_r",
            "knee_angle_r",
            "ankle_angle_r",
            "hip_flexion_l",
            "knee_angle_l",
            "ankle_angle_l",
        )
        idx = np.arange(window - 1, len(d))
        ref = np.stack([m[j] for j in joints], 1)[idx]
        valid = np.stack([m["valid_" + j[-1]] for j in joints], 1)[idx] == 1
        yield name, imu, idx, joints, np.where(valid, ref, np.nan), meta["body_mass_kg"]


def metrics(est: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rmse, r = [], []
    for k in range(ref.shape[1]):
        ok = np.isfinite(ref[:, k])
        rmse.append(np.sqrt(np.mean((est[ok, k] - ref[ok, k]) ** 2)))
        r.append(np.corrcoef(est[ok, k], ref[ok, k])[0, 1])
    return np.array(rmse), np.array(r)


def run_set(rt, items, reps: int, seed: int) -> dict:
    """Pooled estimates per condition (mean over repetitions of the pooled metrics)."""
    md = rt.metadata
    rng = np.random.default_rng(seed)
    items = list(items)
    per_rep = []
    for _ in range(reps):
        pooled: dict[str, list] = {}
        refs = []
        extra: dict[str, list] = {}
        for _name, imu, idx, joints, ref, mass in items:
            cond = conditions(imu, md.sample_rate_hz, rng)
            jidx = [md.output_joints.index(j) for j in joints]
            refs.append(ref / mass if mass else ref)
            for cname in ("aligned", "rotated", "standing+walking", "walking"):
                pooled.setdefault(cname, []).append(predict(rt, cond[cname], idx)[:, jidx])
            for key in [k for k in cond if ":" in k]:
                extra.setdefault(key, []).extend(cond[key].values())
        ref_all = np.concatenate(refs)
        per_rep.append({c: metrics(np.concatenate(v), ref_all) for c, v in pooled.items()} | {"extra": extra})
    out = {"joints": list(joints)}
    for c in ("aligned", "rotated", "standing+walking", "walking"):
        out[c] = {
            "rmse": np.mean([p[c][0] for p in per_rep], 0).tolist(),
            "r": np.mean([p[c][1] for p in per_rep], 0).tolist(),
            "rmse_worst_rep": np.max([p[c][0] for p in per_rep], 0).tolist(),
        }
    for key in per_rep[0]["extra"]:
        vals = np.concatenate([p["extra"][key] for p in per_rep])
        out[key] = {
            "median": float(np.median(vals)),
            "max": float(np.max(vals)),
            "min": float(np.min(vals)),
            "sum": float(np.sum(vals)),
            "count": len(vals),
        }
    return out


def table(title: str, res: dict, per_kg: bool = True) -> str:
    lines = [
        f"\n{title}",
        "| joint | aligned RMSE / r | rotated, no calibration | standing+walking calibrated (ratio) "
        "| walking-only calibrated (ratio) |",
        "|---|---|---|---|---|",
    ]
    for k, j in enumerate(res["joints"]):
        a = res["aligned"]
        cells = [f"{a['rmse'][k]:.3f} / {a['r'][k]:.2f}" if per_kg else f"r {a['r'][k]:.2f}"]
        for c in ("rotated", "standing+walking", "walking"):
            x = res[c]
            if per_kg:
                ratio = ""
                if c != "rotated":
                    worst = x["rmse_worst_rep"][k] / a["rmse"][k]
                    ratio = f" ({x['rmse'][k] / a['rmse'][k]:.3f}, worst {worst:.3f})"
                cells.append(f"{x['rmse'][k]:.3f} / {x['r'][k]:.2f}{ratio}")
            else:
                cells.append(f"r {x['r'][k]:.2f}")
        lines.append(f"| {j} | " + " | ".join(cells) + " |")
    for key in ("standing+walking", "walking"):
        q, e = res[key + ":quality"], res[key + ":error_deg"]
        lines.append(
            f"{key}: residual rotation error median {e['median']:.1f} deg (max {e['max']:.1f}); "
            f"quality median {q['median']:.2f} (min {q['min']:.2f}); "
            f"flagged {res[key + ':flagged']['sum']:.0f} of {q['count']} sensor calibrations, "
            f"unflagged but > 30 deg off: {res[key + ':silent_over_30deg']['sum']:.0f}"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "gait_estimator" / "models" / "default.pt"))
    shared = ROOT.parent / "shared" / "data"
    ap.add_argument("--data", type=Path, default=shared if shared.is_dir() else ROOT / REPO_REFERENCE)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    rt = load_model(args.model, threads=0)
    results = {}
    for name, imu, idx, joints, ref, mass in dorschky_items(args.data, rt.metadata.sample_rate_hz):
        results[name] = run_set(rt, [(name, imu, idx, joints, ref, mass)], args.reps, args.seed)
        print(
            table(
                f"Dorschky {name} (real IMUs), {args.reps} random rotations", results[name], per_kg=bool(mass)
            )
        )
    if (args.data / "real" / "mocap_walkers").is_dir():
        results["mocap_walkers"] = run_set(
            rt, mocap_items(args.data, rt.metadata.window), args.reps, args.seed
        )
        title = "mocap_walkers virtual IMUs, 25 trials pooled (valid samples after the first window)"
        print(table(f"{title}, {args.reps} random rotations", results["mocap_walkers"]))
    else:
        print(f"\nmocap_walkers not found under {args.data}: that part needs ../shared/data (skipped)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
