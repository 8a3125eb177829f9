"""Mounting-fault detection (core.mounting): detection rate, strides to detection, false alarms.

Walks (16 s, 100 Hz, calibrated segment frames):
- ``sim``: simulated subjects (seeds 7000+; the defaults were set on other seeds, 1-5) at
  0.6-1.8 m/s, domain randomisation on (residual mounting rotation 4 deg SD per axis, soft-tissue
  wobble at heel strike, a drawn IMU grade).
- real walkers' virtual IMUs (``make real-data``: schreiber2019, biomechzoo_children,
  mocap_walkers; ``--real`` points at its output): each trial is 1-2 strides, so one stride of
  it (the loop whose ends match best) is repeated with the stride time varied +-2 % per
  repetition, then the same noise as the simulator's domain randomisation is added (residual
  mounting rotation, soft tissue at the heel strikes, a drawn IMU grade).
- ``dorschky`` (real IMUs, P01/P03 walking means, 2D; TEST ONLY: false alarms only, nothing is
  tuned on it): the mean cycle repeated with the same variation and noise.

Per walk: one clean run (a fault latched on any sensor is a false alarm) and one run per fault
class, the fault injected at ``ONSET_S`` (the sensor knocked, swapped or failing during the walk,
after the monitor saw a few normal strides) with random parameters: rotated (30-180 deg about a
random axis), upside down (180 deg about x or y), slipping (0 -> 45 deg over 10 s about a random
axis), left/right pair swapped, thigh/shank swapped (one leg), on the wrong leg (the other leg's
segment), dead axis (one of the six channels stuck at 0). A draw counts as detected when the
injected sensor's first latched fault has the injected class within the run; strides to detection
are (detection - onset) / stride time (slipping also from the moment it passes 30 deg); a fault on
a sensor that was not touched is a wrong alarm. A further row injects the rotation from the start
of the walk (no normal strides seen): a 30-deg rotation there can be hidden by how a
segment's walking frame varies between people (not a target; printed for honesty).

``BENCH_MOUNT_SUBJECTS`` (default 6) sets the simulated subjects; ``BENCH_MOUNT_REAL_MAX`` caps
the real trials per set (default: all).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from gait_estimator.core.mounting import MountingMonitor
from gait_estimator.sim import mounting_faults as mf
from gait_estimator.sim.generate import sample_subject, simulate_trial
from gait_estimator.sim.imu import ImuErrorModel, apply_errors
from gait_estimator.sim.randomization import (
    DomainRandomization,
    heel_strikes_for,
    sample_error_model,
    soft_tissue,
)

RATE = 100.0
WALK_S = 16.0
ONSET_S = 5.0
N_SUBJECTS = int(os.environ.get("BENCH_MOUNT_SUBJECTS", "6"))
REAL_MAX = int(os.environ.get("BENCH_MOUNT_REAL_MAX", "0")) or None
SPEEDS = (0.6, 1.0, 1.4, 1.8)
REPO = Path(__file__).resolve().parents[1]
CLASSES = ("rotated", "upside_down", "slipping", "swapped_left_right", "swapped_thigh_shank", "wrong_leg",
           "dead_axis")
LEG = ("thigh", "shank", "foot")
DR = DomainRandomization()


# -- walks --------------------------------------------------------------------------------------
def sim_walks() -> list[tuple[str, dict, float]]:
    out = []
    for i in range(N_SUBJECTS):
        rng = np.random.default_rng(7000 + i)
        subject = sample_subject(rng, f"M{i:03d}")
        for speed in SPEEDS:
            tr = simulate_trial(subject, WALK_S, speed, RATE, seed=int(rng.integers(2**31 - 1)), extras=False,
                                randomization=DR)
            hs = np.sort(np.asarray(tr.events["heel_strike_r"], dtype=float)) / RATE
            out.append((f"sim {subject['id']} {speed} m/s", {k: dict(v) for k, v in tr.imu.items()},
                        float(np.median(np.diff(hs)))))
    return out


def best_loop(imu: dict, rate: float) -> tuple[int, int]:
    """(start, length) of the stride-long loop whose ends match best (all channels normalised)."""
    x = np.concatenate([np.asarray(imu[loc][k], dtype=float) for loc in imu for k in ("acc", "gyro")], axis=1)
    x = (x - x.mean(0)) / (x.std(0) + 1e-9)
    n = len(x)
    best = (math.inf, 0, 0)
    for length in range(int(0.7 * rate), n - 1):
        for a in range(0, n - length - 1):
            d = float(np.mean(np.abs(x[a + length] - x[a])) + np.mean(np.abs(x[a + length + 1] - x[a + 1])))
            if d < best[0]:
                best = (d, a, length)
    return best[1], best[2]


def repeat_loop(sig: np.ndarray, a: int, length: int, n: int, rng_warp: np.ndarray) -> np.ndarray:
    """The loop ``sig[a:a+length]`` repeated to ``n`` samples, repetition k stretched by rng_warp[k]."""
    loop = np.concatenate([sig[a: a + length], sig[a: a + 1]])
    src_t = np.arange(length + 1) / length
    pieces = []
    k = 0
    while sum(len(p) for p in pieces) < n:
        m = max(2, int(round(length * rng_warp[k % len(rng_warp)])))
        t = np.arange(m) / m
        pieces.append(np.stack([np.interp(t, src_t, loop[:, c]) for c in range(loop.shape[1])], axis=1))
        k += 1
    return np.concatenate(pieces)[:n]


def noisy(imu: dict, hs_s: dict, rng: np.random.Generator) -> dict:
    """The simulator's domain randomisation on ideal signals: residual mounting rotation, soft tissue
    at the heel strikes, a drawn IMU grade's noise and bias."""
    errors = sample_error_model(ImuErrorModel(), DR, rng)
    out = {}
    for loc, sig in imu.items():
        rot = Rotation.from_rotvec(np.radians(rng.normal(0.0, DR.residual_rotation_deg, 3)))
        acc, gyro = rot.inv().apply(sig["acc"]), rot.inv().apply(sig["gyro"])
        n = len(acc)
        d_acc, d_gyro = soft_tissue(loc, heel_strikes_for(loc, hs_s), n, RATE, DR, rng)
        ideal = {"acc": acc + d_acc, "gyro": gyro + d_gyro, "quat": np.tile([0.0, 0.0, 0.0, 1.0], (n, 1))}
        s = apply_errors(ideal, errors, RATE, rng)
        out[loc] = {"acc": s["acc"], "gyro": s["gyro"]}
    return out


def looped_walk(imu: dict, rate: float, events: dict, rng: np.random.Generator) -> tuple[dict, float]:
    a, length = best_loop(imu, rate)
    n = int(WALK_S * RATE)
    warp = 1.0 + rng.normal(0.0, 0.02, 64)
    walk = {loc: {k: repeat_loop(np.asarray(sig[k], dtype=float), a, length, n, warp)
                  for k in ("acc", "gyro")} for loc, sig in imu.items()}
    # heel strikes of the loop, repeated (soft tissue is excited there)
    stride = length / rate
    reps = np.cumsum(np.concatenate([[0.0], np.round(length * warp[: 64]) / rate]))
    hs = {}
    for side in "rl":
        inside = [(e - a) / length for e in np.asarray(events.get(f"heel_strike_{side}", []), float)
                  if a <= e < a + length]
        hs[f"heel_strike_{side}"] = np.array([r + f * (reps[k + 1] - r) for k, r in enumerate(reps[:-1])
                                              for f in inside if r < WALK_S])
    return noisy(walk, hs, rng), stride


def real_walks(root: Path, rng: np.random.Generator) -> dict[str, list[tuple[str, dict, float]]]:
    from gait_estimator.sim.dataset import load_dataset

    out = {}
    for name in ("schreiber2019", "biomechzoo_children", "mocap_walkers"):
        if not (root / name).is_dir():
            continue
        walks = []
        seen = set()
        for tr in load_dataset(root / name, load_extras=False)[:REAL_MAX]:
            if tr.trial_id in seen or tr.trial_id.startswith("f2_gait_1"):
                continue  # f2_gait_14/15 are f1_gait_14/15 (corpus README)
            seen.add(tr.trial_id)
            imu = {loc: {k: np.asarray(v[k], dtype=float) for k in ("acc", "gyro")}
                   for loc, v in tr.imu.items()}
            walk, stride = looped_walk(imu, tr.sample_rate_hz, tr.events, rng)
            walks.append((f"{name} {tr.trial_id}", walk, stride))
        out[name] = walks
    return out


def dorschky_walks(root: Path, rng: np.random.Generator) -> list[tuple[str, dict, float]]:
    from gait_estimator.train.sim2real import dorschky_recording

    out = []
    for name in ("P01_walking", "P03_walking"):
        rec = dorschky_recording(name, RATE, root, cycles=1)
        ch = rec["channels"]
        locs = sorted({c.split("/")[0] for c in ch})
        imu = {loc: {k: np.stack([ch[f"{loc}/{k}_{ax}"] for ax in "xyz"], axis=1) for k in ("acc", "gyro")}
               for loc in locs}
        length = len(imu[locs[0]]["acc"])
        n = int(WALK_S * RATE)
        warp = 1.0 + rng.normal(0.0, 0.02, 64)
        walk = {loc: {k: repeat_loop(v, 0, length, n, warp) for k, v in sig.items()}
                for loc, sig in imu.items()}
        out.append((f"dorschky {name}", noisy(walk, {}, rng), rec["dur_s"]))
    return out


# -- faults -------------------------------------------------------------------------------------
def random_axis(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def inject(cls: str, imu: dict, rng: np.random.Generator, onset: int) -> tuple[dict, set[str]]:
    locs = list(imu)
    legs = [loc for loc in locs if loc.split("_")[0] in LEG]
    if cls in ("rotated", "rotated_at_start"):
        loc = str(rng.choice(locs))
        return mf.rotate(imu, loc, random_axis(rng) * rng.uniform(30.0, 180.0), onset), {loc}
    if cls == "upside_down":
        loc = str(rng.choice(locs))
        axis = np.eye(3)[int(rng.integers(2))]
        return mf.rotate(imu, loc, axis * 180.0, onset), {loc}
    if cls == "slipping":
        loc = str(rng.choice(locs))
        return mf.slip(imu, loc, random_axis(rng), RATE, onset), {loc}
    if cls == "swapped_left_right":
        seg = str(rng.choice(LEG))
        return mf.swap(imu, f"{seg}_r", f"{seg}_l", onset), {f"{seg}_r", f"{seg}_l"}
    if cls == "swapped_thigh_shank":
        side = str(rng.choice(["r", "l"]))
        return mf.swap(imu, f"thigh_{side}", f"shank_{side}", onset), {f"thigh_{side}", f"shank_{side}"}
    if cls == "wrong_leg":
        loc = str(rng.choice(legs))
        return mf.wrong_leg(imu, loc, rng, onset), {loc}
    if cls == "dead_axis":
        loc = str(rng.choice(locs))
        ch = str(rng.choice(["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]))
        return mf.dead_axis(imu, loc, ch, onset), {loc}
    raise ValueError(cls)


def run(imu: dict, suspect: list[float] | None = None) -> list[tuple[int, str, str, str]]:
    """(frame, location, class, reason) of each fault as it latches; appends the fraction of
    frames with a suspect sensor to ``suspect``."""
    mon = MountingMonitor(RATE, tuple(imu))
    latched: dict[str, tuple[int, str, str, str]] = {}
    n_suspect = 0
    frames = mf.frames(imu, RATE)
    for k, f in enumerate(frames):
        st = mon.push(f)
        n_suspect += not st.ok and not st.faults
        for s in st.faults:
            if s.location not in latched:
                latched[s.location] = (k, s.location, s.fault, s.reason)
    if suspect is not None:
        suspect.append(n_suspect / len(frames))
    return sorted(latched.values())


class Table:
    def __init__(self) -> None:
        self.rows: dict[str, dict] = defaultdict(lambda: {"n": 0, "hit": 0, "strides": [], "wrong": 0,
                                                          "misclass": defaultdict(int), "strides30": []})
        self.clean = {"n": 0, "alarms": 0, "reasons": [], "suspect": []}

    def fault(self, cls: str, events: list, touched: set[str], onset: int, stride: float,
              when30: float | None = None) -> None:
        r = self.rows[cls]
        r["n"] += 1
        want = "rotated" if cls in ("upside_down", "rotated_at_start") else cls
        first = next((e for e in events if e[1] in touched), None)
        if first is not None and first[2] == want:
            r["hit"] += 1
            r["strides"].append((first[0] - onset) / RATE / stride)
            if when30 is not None:
                r["strides30"].append((first[0] - onset - when30 * RATE) / RATE / stride)
        elif first is not None:
            r["misclass"][first[2]] += 1
        r["wrong"] += sum(1 for e in events if e[1] not in touched)

    def report(self, title: str) -> None:
        c = self.clean
        print(f"  {title}: clean walks {c['n']}, false alarms {c['alarms']}"
              + (f" ({'; '.join(c['reasons'][:4])})" if c["reasons"] else "")
              + f"; frames with a sensor suspect: {np.mean(c['suspect']):.1%} (worst walk "
              f"{np.max(c['suspect']):.1%})")
        if not self.rows:
            return
        print(f"    {'fault class':22s} {'detected':>10s} {'strides to detection':>30s} {'other':>6s}  "
              "misclassified")
        for cls, r in self.rows.items():
            s = np.asarray(r["strides"])
            st = (f"med {np.median(s):4.2f} max {s.max():4.2f} ({np.mean(s <= 3.0):4.0%} <= 3)"
                  if s.size else "-")
            extra = ""
            if r["strides30"]:
                s30 = np.asarray(r["strides30"])
                extra = f"; after passing 30 deg: max {s30.max():.2f}"
            mis = ", ".join(f"{k} {v}" for k, v in r["misclass"].items())
            print(f"    {cls:22s} {r['hit']:4d}/{r['n']:<4d} {r['hit'] / max(r['n'], 1):4.0%} "
                  f"{st:>30s} {r['wrong']:6d}  {mis}{extra}")


def bench(walks: list, rng: np.random.Generator, faults: bool = True) -> Table:
    table = Table()
    onset = int(ONSET_S * RATE)
    for name, imu, stride in walks:
        ev = run(imu, table.clean["suspect"])
        table.clean["n"] += 1
        if ev:
            table.clean["alarms"] += 1
            table.clean["reasons"].append(f"{name}: {ev[0][3]}")
        if not faults:
            continue
        for cls in (*CLASSES, "rotated_at_start"):
            at = 0 if cls == "rotated_at_start" else onset
            bad, touched = inject(cls, imu, rng, at)
            table.fault(cls, run(bad), touched, at, stride, 30.0 / 45.0 * 10.0 if cls == "slipping" else None)
    return table


def bench_cost(imu: dict) -> None:
    """push() per frame: most frames only store; every eval_period_s one runs the checks."""
    frames = mf.frames(imu, RATE)
    mon = MountingMonitor(RATE, tuple(imu))
    times = []
    for f in frames:
        t0 = time.perf_counter_ns()
        mon.push(f)
        times.append(time.perf_counter_ns() - t0)
    us = np.asarray(times[300:]) / 1e3
    p50, p99, mx = np.percentile(us, [50, 99, 100])
    every = round(mon.config.eval_period_s * RATE)
    print(f"  push() per frame, {len(imu)} IMUs: mean {us.mean():.0f} us, p50 {p50:.0f} us, "
          f"p99 {p99:.0f} us, max {mx:.0f} us (the checks run on one frame in {every})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=Path, default=REPO / "build" / "real_data",
                    help="make real-data output (default build/real_data)")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data",
                    help="the shared data directory (Dorschky IMUs; default ../shared/data)")
    args = ap.parse_args()
    rng = np.random.default_rng(2026)
    t0 = time.perf_counter()
    print(f"bench_mounting: {WALK_S:g} s walks at {RATE:g} Hz, faults from {ONSET_S:g} s; "
          "detection = the injected sensor's first latched fault has the injected class")
    sims = sim_walks()
    bench(sims, rng).report(f"sim ({N_SUBJECTS} subjects x {len(SPEEDS)} speeds, domain randomisation)")
    skipped = []
    real = real_walks(args.real, rng) if args.real.is_dir() else {}
    for name, walks in real.items():
        bench(walks, rng).report(f"{name} (virtual IMUs from real mocap, one stride looped, sim noise)")
    if not real:
        skipped.append(f"real walkers (no {args.real}: run make real-data)")
    if (args.data / "real" / "dorschky2019_imu2d").is_dir():
        bench(dorschky_walks(args.data, rng), rng, faults=False).report(
            "dorschky P01+P03 (real IMU mean cycles, looped, sim noise; test only: false alarms)")
    else:
        skipped.append("dorschky2019_imu2d")
    if skipped:
        print(f"  SKIPPED: {'; '.join(skipped)}")
    print("cost (one process, back to back):")
    bench_cost(sims[0][1])
    print(f"  ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
