"""The import map (``scripts/import_map.py``): the package has no cycle and no arrow back up the
layers, and the script does fail on a package that has them (a made-up one in a temp folder)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "import_map.py"
PACKAGE = Path(__file__).resolve().parents[2] / "gait_estimator"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_package_has_no_cycle_and_no_arrow_back_up_the_layers() -> None:
    out = _run(str(PACKAGE))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OK: no cycles, no arrow back up the layers" in out.stdout
    # The map is real: the top layers do import the ones below.
    nodes_line = next(line for line in out.stdout.splitlines() if line.strip().startswith("nodes "))
    assert "core (" in nodes_line and "runtime (" in nodes_line


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_cycle_and_an_upward_arrow_fail(tmp_path: Path) -> None:
    pkg = _write(
        tmp_path / "gait_estimator",
        {
            "__init__.py": "",
            "errors.py": "",
            "core/__init__.py": "",
            # core reaches up into nodes (lazily, inside a function: still an arrow).
            "core/a.py": "def f():\n    from gait_estimator.nodes import n\n    return n\n",
            "runtime/__init__.py": "",
            "runtime/x.py": "from gait_estimator.runtime import y\n",
            "runtime/y.py": "from . import x\nfrom gait_estimator.errors import *\n",
            "nodes/__init__.py": "",
            "nodes/n.py": "import gait_estimator.core.a\nfrom gait_estimator.runtime.x import thing\n",
        },
    )
    out = _run(str(pkg), "--modules")
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert "CYCLE: gait_estimator.runtime.x <-> gait_estimator.runtime.y" in lines
    # core.a <-> nodes.n is a cycle too, and its core -> nodes half goes back up the layers.
    assert "CYCLE: gait_estimator.core.a <-> gait_estimator.nodes.n" in lines
    assert "UPWARD: gait_estimator.core.a (core) -> gait_estimator.nodes.n (nodes)" in lines
    assert sum(line.startswith("UPWARD") for line in lines) == 1  # nodes -> core/runtime is fine
    assert "FAIL: 2 cycle(s), 1 arrow(s) back up the layers" in lines
    assert "  gait_estimator.runtime.y -> gait_estimator.errors" in lines


def test_a_clean_made_up_package_passes(tmp_path: Path) -> None:
    pkg = _write(
        tmp_path / "gait_estimator",
        {
            "__init__.py": "",
            "core/__init__.py": "",
            "core/a.py": "from gait_estimator.runtime.base import R\n",
            "runtime/__init__.py": "",
            "runtime/base.py": "R = 1\n",
            "cli/__init__.py": "",
            "cli/main.py": "from ..core import a\n",
        },
    )
    out = _run(str(pkg), "--modules")
    assert out.returncode == 0, out.stdout
    assert "  gait_estimator.cli.main -> gait_estimator.core.a" in out.stdout.splitlines()
