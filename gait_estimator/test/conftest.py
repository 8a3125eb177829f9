"""Test-session isolation: a ROS_DOMAIN_ID of its own and localhost-only discovery.

The domain is chosen before any test imports rclpy and is held with a lock file, so parallel
pytest sessions on one machine (two CI jobs, a developer and CI) never cross-talk. Child
processes started by tests inherit the environment.
"""

from __future__ import annotations

import fcntl
import os
import random
import sys
from pathlib import Path

import pytest

_LOCK_DIR = Path(os.environ.get("TMPDIR", "/tmp")) / "gait_estimator_ros_domains"
_held_lock = None  # keeps the lock file open (and so locked) for the whole session

REPO_ROOT = Path(__file__).resolve().parents[2]
# Tests live in one folder per layer (core/, runtime/, sim/, datasets/, train/, replay/, nodes/,
# cli/, tools/); the shared helpers (_node_harness.py, support/) stay here, importable from all.
sys.path.insert(0, str(Path(__file__).resolve().parent))
# The subset of ../shared/data the tests read, shipped in the repository (see its README for
# provenance and licences), so a plain clone runs its tests alone.
REFERENCE_DATA = Path(__file__).resolve().parent / "data" / "reference"


def _claim_domain_id() -> int:
    global _held_lock
    _LOCK_DIR.mkdir(parents=True, exist_ok=True)
    candidates = list(range(1, 102))
    random.SystemRandom().shuffle(candidates)
    for domain in candidates:
        handle = open(_LOCK_DIR / f"{domain}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _held_lock = handle
        return domain
    raise RuntimeError(f"no free ROS_DOMAIN_ID in 1..101 (locks in {_LOCK_DIR})")


def pytest_configure(config: pytest.Config) -> None:
    os.environ["ROS_DOMAIN_ID"] = str(_claim_domain_id())
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("ROS_LOG_DIR", str(REPO_ROOT / "build" / "ros_log"))


def pytest_unconfigure(config: pytest.Config) -> None:
    global _held_lock
    if _held_lock is not None:
        _held_lock.close()
        _held_lock = None


def pytest_report_header(config: pytest.Config) -> str:
    return f"ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']} ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The in-repository reference data (same layout as ../shared/data); fails, never skips,
    when the checkout lacks it."""
    if not (REFERENCE_DATA / "README.md").is_file():
        pytest.fail(f"reference data not found at {REFERENCE_DATA}: the checkout is incomplete")
    return REFERENCE_DATA
