"""The CMake work-around for the wheels' stale include directories: drops only missing ones.

A throw-away CMake project defines imported targets like the wheels' (one whose include
directories all exist, one with a directory of another machine) and runs our function.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
MODULE = REPO / "gait_estimator_msgs" / "cmake" / "drop_missing_include_dirs.cmake"


def _configure(tmp_path: Path) -> str:
    exists_a, exists_b = tmp_path / "inc_a", tmp_path / "inc_b"
    exists_a.mkdir()
    exists_b.mkdir()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "CMakeLists.txt").write_text(f"""
cmake_minimum_required(VERSION 3.21)
project(include_fix_check NONE)
include({MODULE})
add_library(complete INTERFACE IMPORTED)
set_target_properties(complete PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "{exists_a};{exists_b}")
add_library(stale INTERFACE IMPORTED)
set_target_properties(stale PROPERTIES INTERFACE_INCLUDE_DIRECTORIES
  "{exists_a};/opt/python/cp311-cp311/include/python3.11;$<BUILD_INTERFACE:/nowhere>")
gait_estimator_drop_missing_include_dirs()
get_target_property(c complete INTERFACE_INCLUDE_DIRECTORIES)
get_target_property(s stale INTERFACE_INCLUDE_DIRECTORIES)
message(STATUS "COMPLETE=${{c}}")
message(STATUS "STALE=${{s}}")
""")
    result = subprocess.run(["cmake", "-S", str(tmp_path / "src"), "-B", str(tmp_path / "build")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _value(output: str, key: str) -> str:
    line = next(line for line in output.splitlines() if f"{key}=" in line)
    return line.split(f"{key}=", 1)[1]


def test_noop_when_every_include_directory_exists(tmp_path):
    assert shutil.which("cmake"), "cmake is required (it builds gait_estimator_msgs)"
    out = _configure(tmp_path)
    assert _value(out, "COMPLETE") == f"{tmp_path / 'inc_a'};{tmp_path / 'inc_b'}"
    assert "complete: dropping" not in out


def test_drops_only_the_missing_directory(tmp_path):
    out = _configure(tmp_path)
    # Generator expressions are kept for CMake to resolve later; the stale path is gone.
    assert _value(out, "STALE") == f"{tmp_path / 'inc_a'};$<BUILD_INTERFACE:/nowhere>"
    assert "stale: dropping missing include dirs: /opt/python/cp311-cp311/include/python3.11" in out
