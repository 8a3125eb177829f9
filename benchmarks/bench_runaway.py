"""A runaway real-time thread must not lock the machine (issue 23): measure what a normal process
still gets on the core a SCHED_FIFO/RR busy loop occupies.

A child at ``--priority`` spins (never blocks) for ``--seconds`` on core ``--core``; a normal
(SCHED_OTHER) probe pinned to the same core sleeps 1 ms in a loop and records its CPU share and
the longest gap between two wake-ups. With the kernel's RT throttling
(``/proc/sys/kernel/sched_rt_runtime_us`` 950000 of 1000000) the probe keeps ~5 % of the core
and waits at most ~``period - runtime`` (50 ms) at a time; with throttling off (-1) it would get
nothing until the runaway ends. SCHED_RR changes nothing against normal tasks (its time slice only
rotates among real-time threads of the same priority), so throttling is what the package relies on.

Needs permission for real-time scheduling (root or an rtprio limit). Briefly takes one core.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

from gait_estimator.core.realtime import read_rt_throttle

_SPIN = (
    "import os,sys,time; os.sched_setaffinity(0,{%d}); os.sched_setscheduler(0,%d,os.sched_param(%d)); "
    "print('ready', flush=True); end=time.monotonic()+%f\nwhile time.monotonic()<end: pass"
)


def probe(core: int, seconds: float, policy: int, priority: int) -> dict[str, float]:
    os.sched_setaffinity(0, {core})
    spinner = subprocess.Popen(
        [sys.executable, "-c", _SPIN % (core, policy, priority, seconds)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert spinner.stdout is not None and spinner.stdout.readline().strip() == "ready"
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = last = time.monotonic()
        gaps = []
        while time.monotonic() - t0 < seconds - 0.2:
            time.sleep(0.001)
            now = time.monotonic()
            gaps.append(now - last)
            last = now
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.monotonic() - t0
    finally:
        spinner.wait(timeout=seconds + 10)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    gaps.sort()
    return {
        "wakeups": len(gaps),
        "wakeups_expected": wall / 0.00106,
        "max_gap_ms": gaps[-1] * 1e3,
        "p50_gap_ms": gaps[len(gaps) // 2] * 1e3,
        "cpu_share_pct": 100.0 * cpu / wall,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--core", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--priority", type=int, default=50)
    args = ap.parse_args()
    print(f"sched_rt_runtime_us/period_us: {read_rt_throttle()}")
    for name, pol in (("fifo", os.SCHED_FIFO), ("rr", os.SCHED_RR)):
        r = probe(args.core, args.seconds, pol, args.priority)
        print(
            f"runaway {name} {args.priority} on core {args.core} for {args.seconds:.1f} s: normal probe "
            f"on the same core woke {r['wakeups']} times ({r['wakeups_expected']:.0f} unloaded), longest gap "
            f"{r['max_gap_ms']:.1f} ms, median {r['p50_gap_ms']:.2f} ms, CPU share {r['cpu_share_pct']:.1f} %"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
