"""``gait-estimator run`` fails loudly (issue 13 item 8): binary garbage as ``--config`` is a
one-line ConfigError (exit 2, nothing started), and a pipeline whose configure fails makes
``run`` exit 1 (real node processes over DDS in the test session's isolated domain)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from gait_estimator.cli.main import main as cli_main
from gait_estimator.errors import ConfigError

CONFIG = Path(__file__).resolve().parents[2] / "config"


def _fused_config(tmp_path: Path) -> Path:
    """config/fused.yaml with a start-up timeout that a starved CI machine cannot exceed (the
    manager's 60 s default would fail the start-up for lack of CPU, not for what is tested)."""
    import yaml

    doc = yaml.safe_load((CONFIG / "fused.yaml").read_text())
    key = next(k for k in doc if str(k).rstrip("/").endswith("lifecycle_manager"))
    doc[key]["ros__parameters"]["startup_timeout_s"] = 600.0
    path = tmp_path / "fused.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def garbage(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.yaml"
    path.write_bytes(bytes(range(128, 256)) * 8)  # not UTF-8 from the first byte
    return path


def test_binary_config_is_a_config_error(garbage: Path) -> None:
    from gait_estimator.core.params import load_config

    with pytest.raises(ConfigError) as info:
        load_config(garbage)
    assert str(garbage) in str(info.value) and "not a text (UTF-8) file" in str(info.value)
    assert "offset 0" in str(info.value)


def test_run_with_binary_config_exits_2_in_one_line(garbage: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["run", "--config", str(garbage), "--duration", "1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing started
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "not a text (UTF-8) file" in lines[0], captured.err


@pytest.mark.ros
def test_run_exits_1_when_configure_fails(tmp_path: Path) -> None:
    """The fused node cannot load its model: the manager reports the failed configure, ``run``
    stops every node and exits 1 long before its --duration."""
    t0 = time.monotonic()
    r = subprocess.run(
        [
            str(Path(sys.executable).parent / "gait-estimator"),
            "run",
            "--config",
            str(_fused_config(tmp_path)),
            "--model",
            str(tmp_path / "missing.pt"),
            "--duration",
            "400",
            "--log-dir",
            str(tmp_path / "logs"),
        ],
        capture_output=True,
        text=True,
        timeout=500,
    )
    elapsed = time.monotonic() - t0
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "lifecycle manager failed: could not configure 'gait_pipeline'" in r.stderr, r.stderr
    assert elapsed < 390, elapsed  # stopped on the failure, not at the end of --duration


@pytest.mark.ros
def test_run_with_a_working_pipeline_exits_0_on_sigint(tmp_path: Path) -> None:
    """The manager watch does not turn a normal stop into a failure."""
    from gait_estimator.runtime.reference_models import make_tiny_lstm_model

    model = make_tiny_lstm_model(tmp_path / "tiny.pt", window=50, seed=1)
    logs = tmp_path / "logs"
    run = subprocess.Popen(
        [str(Path(sys.executable).parent / "gait-estimator"), "run", "--config", str(_fused_config(tmp_path))]
        + ["--model", str(model), "--duration", "590", "--log-dir", str(logs)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        manager_log = logs / "lifecycle_manager.log"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and run.poll() is None:
            if manager_log.is_file() and "activated gait_pipeline" in manager_log.read_text():
                break
            time.sleep(0.3)
        up = run.poll() is None and "activated gait_pipeline" in manager_log.read_text()
        time.sleep(1.0)
    finally:
        run.send_signal(2)
        _, err = run.communicate(timeout=60)
    why = f"stderr: {err}; manager log: {manager_log.read_text()[-2000:] if manager_log.is_file() else '-'}"
    assert up, why
    assert run.returncode == 0, why
