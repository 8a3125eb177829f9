#!/usr/bin/env python3
"""Agreement of ``gait-estimator import-opensim`` with the mocap_walkers reference files.

Imports every trial of ``../shared/data/real/mocap_walkers`` (its ``trials.json``) with the real
OpenSim tools, then compares per trial and joint with

- ``<subject>/derived/<trial>_moments.csv`` (moments, N·m; r and RMSE over all samples),
- the published ID ``source/ID/*.sto`` (falisse trials; r over samples valid for that leg),
- ``<trial>_imu.csv`` (virtual IMUs, mapped from OpenSim body axes into our sensor frame),

and prints the summary table used in the README. Usage::

    .venv/bin/python benchmarks/opensim_agreement.py [--data DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from gait_estimator.data.loaders import read_sto
from gait_estimator.data.opensim_batch import discover_trials, import_dataset
from gait_estimator.data.opensim_kinematics import OSIM_TO_SENSOR
from gait_estimator.sim.dataset import load_dataset

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "mocap_walkers"


def _r(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    spec_items = {t["trial"]: t for t in json.loads((args.data / "trials.json").read_text())["trials"]}
    specs = discover_trials(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        _, reports = import_dataset(specs, tmp)
        elapsed = time.perf_counter() - t0
        trials = load_dataset(tmp)
    rows = []
    for tr, rep in zip(trials, reports, strict=True):
        item = spec_items[tr.trial_id]
        derived = args.data / item["out"]
        ref = np.genfromtxt(derived / f"{tr.trial_id}_moments.csv", delimiter=",", names=True)
        valid = tr.extras["moment_valid"].astype(bool)
        row = {"trial": tr.trial_id, "subject": item["subject"], "moments": {}, "given_id": {}, "imu": {}}
        row["valid_agreement"] = float(
            np.mean(
                np.column_stack([valid[:, 0], valid[:, 3]])
                == np.column_stack([ref["valid_r"], ref["valid_l"]])
            )
        )
        for k, j in enumerate(tr.joint_names):
            row["moments"][j] = {
                "r": _r(tr.moment_nm[:, k], ref[j]),
                "rmse_nm": _rmse(tr.moment_nm[:, k], ref[j]),
            }
        if item.get("given_id"):
            _, g = read_sto(args.data / item["given_id"])
            t = tr.extras["time_source_s"]
            sel = (t >= g["time"][0] - 1e-9) & (t <= g["time"][-1] + 1e-9)
            for k, j in enumerate(tr.joint_names):
                v = sel & valid[:, k]
                pub = np.interp(t[v], g["time"], g[j + "_moment"]) * rep["knee_sign_applied"] ** j.startswith(
                    "knee"
                )
                row["given_id"][j] = {
                    "r": _r(tr.moment_nm[v, k], pub),
                    "rmse_nm": _rmse(tr.moment_nm[v, k], pub),
                    "samples": int(v.sum()),
                }
        imu = np.genfromtxt(derived / f"{tr.trial_id}_imu.csv", delimiter=",", names=True, deletechars="")
        for loc, sig in tr.imu.items():
            for kind in ("acc", "gyro"):
                want = np.column_stack([imu[f"{loc}/{kind}_{a}"] for a in "xyz"]) @ OSIM_TO_SENSOR.T
                row["imu"][f"{loc}/{kind}"] = {
                    "r_min": min(_r(sig[kind][:, i], want[:, i]) for i in range(3)),
                    "rmse": _rmse(sig[kind], want),
                }
        rows.append(row)

    def summary(key: str, metric: str, fn) -> dict:
        out = {}
        for row in rows:
            for name, m in row[key].items():
                out.setdefault(name, []).append(m[metric])
        return {name: fn(v) for name, v in out.items()}

    print(f"imported {len(rows)} trials in {elapsed:.1f} s (2-core machine under shared load: rough)")
    print("\nmoments vs derived/*_moments.csv (all samples)")
    print("| joint | r min | r median | RMSE max (N·m) |\n|---|---|---|---|")
    rmin, rmed = summary("moments", "r", min), summary("moments", "r", np.median)
    emax = summary("moments", "rmse_nm", max)
    for j in rmin:
        print(f"| {j} | {rmin[j]:.6f} | {rmed[j]:.6f} | {emax[j]:.5f} |")
    print(
        f"validity masks identical on {np.mean([r['valid_agreement'] for r in rows]) * 100:.2f} % of samples"
    )
    gmin, gmax = summary("given_id", "r", min), summary("given_id", "rmse_nm", max)
    n_given = sum(bool(r["given_id"]) for r in rows)
    print(f"\nmoments vs published ID .sto ({n_given} falisse trials, samples valid for that leg)")
    print("| joint | r min | RMSE max (N·m) |\n|---|---|---|")
    for j in gmin:
        print(f"| {j} | {gmin[j]:.4f} | {gmax[j]:.3f} |")
    print("\nvirtual IMUs vs derived/*_imu.csv (per sensor, worst axis over all trials)")
    print("| sensor | r min | RMSE max |\n|---|---|---|")
    imin, imax = summary("imu", "r_min", min), summary("imu", "rmse", max)
    for s in imin:
        unit = "m/s²" if s.endswith("acc") else "rad/s"
        print(f"| {s} | {imin[s]:.6f} | {imax[s]:.2e} {unit} |")
    if args.json:
        args.json.write_text(json.dumps({"elapsed_s": elapsed, "trials": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
