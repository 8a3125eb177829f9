"""Processes in one process group, as a terminal runs a foreground job: Ctrl-C (SIGINT to the
group) reaches every one of them. Logs go to files; ``stop`` never leaves a process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


class ProcessGroup:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}
        self.pgid: int | None = None
        self._logs: list = []

    def start(self, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "w")
        self._logs.append(log)
        # The first process leads a new group (in this session, so the others may join it).
        group = 0 if self.pgid is None else self.pgid
        p = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env or dict(os.environ), process_group=group
        )
        if self.pgid is None:
            self.pgid = p.pid
        self.procs[name] = p
        return p

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def interrupt(self, times: int = 1, gap_s: float = 0.08) -> None:
        """SIGINT to the whole group ``times`` times, ``gap_s`` apart (a terminal's Ctrl-C)."""
        assert self.pgid is not None
        for i in range(times):
            if i:
                time.sleep(gap_s)
            os.killpg(self.pgid, signal.SIGINT)

    def wait(self, timeout_s: float) -> dict[str, int | None]:
        """Exit status of every process; None for one still running after ``timeout_s`` (then killed)."""
        deadline = time.monotonic() + timeout_s
        codes: dict[str, int | None] = {}
        for name, p in self.procs.items():
            try:
                codes[name] = p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                codes[name] = None
        return codes

    def stop(self) -> None:
        """Kill whatever is left in the group (children of the processes included)."""
        if self.pgid is not None:
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in self.procs.values():
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for log in self._logs:
            log.close()
