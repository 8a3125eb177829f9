"""``validate`` over a directory of bags with a worker pool (issue 16 part 3), on real bag files.

The reports of ``--workers 2`` equal those of ``--workers 1`` and of each bag validated alone,
key for key (all but the wall-clock figures ``timing`` and ``inference_us``); a multi-bag
baseline gates the directory; a bad bag is reported without stopping the others.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gait_estimator.cli.main import main as cli_main
from gait_estimator.replay.jobs import MEASURED_KEYS

DATA = Path(__file__).resolve().parents[1] / "data" / "regression"
MODEL = Path(__file__).resolve().parents[2] / "models" / "default.pt"


@pytest.fixture(scope="module")
def bag_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two committed bags, a renamed copy, and the mcap bag as a single file."""
    d = tmp_path_factory.mktemp("bags")
    shutil.copytree(DATA / "walk_mcap", d / "walk_mcap")
    shutil.copytree(DATA / "walk_sqlite3", d / "walk_sqlite3")
    shutil.copytree(DATA / "walk_sqlite3", d / "walk_sqlite3_copy")
    shutil.copy(DATA / "walk_mcap" / "walk_mcap.mcap", d / "single.mcap")
    (d / "notes.txt").write_text("not a bag: ignored")
    return d


def _strip(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in MEASURED_KEYS}


def _run(*args: object) -> int:
    return cli_main(["validate", *map(str, args)])


def test_pool_reports_equal_one_by_one(bag_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pooled, serial = tmp_path / "pooled.json", tmp_path / "serial.json"
    assert _run(bag_dir, "--model", MODEL, "--workers", 2, "--report", pooled, "--quiet") == 0
    assert _run(bag_dir, "--model", MODEL, "--workers", 1, "--report", serial, "--quiet") == 0
    a, b = json.loads(pooled.read_text()), json.loads(serial.read_text())
    names = ["single.mcap", "walk_mcap", "walk_sqlite3", "walk_sqlite3_copy"]
    assert list(a["bags"]) == names and list(b["bags"]) == names
    assert a["errors"] == {} and b["errors"] == {}
    for name in names:
        alone = tmp_path / f"{name}.json"
        assert _run(bag_dir / name, "--model", MODEL, "--report", alone, "--quiet") == 0
        single = json.loads(alone.read_text())
        assert _strip(a["bags"][name]) == _strip(single), name
        assert _strip(b["bags"][name]) == _strip(single), name
        assert single["scored_estimates"] > 400
    # same content, same numbers (the file and the directory hold the same mcap data)
    assert a["bags"]["single.mcap"]["metrics"] == a["bags"]["walk_mcap"]["metrics"]
    assert (
        a["bags"]["walk_sqlite3_copy"]["identity"]["bag"]["sha256"]
        == (a["bags"]["walk_sqlite3"]["identity"]["bag"]["sha256"])
    )


def test_pool_against_a_multi_bag_baseline(
    bag_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    d = tmp_path / "two"
    d.mkdir()
    for name in ("walk_mcap", "walk_sqlite3"):
        (d / name).symlink_to(bag_dir / name, target_is_directory=True)
    code = _run(
        d, "--model", MODEL, "--workers", 2, "--baseline", DATA / "baseline.json", "--plots", tmp_path / "p"
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "== walk_mcap" in out.out and "== walk_sqlite3" in out.out
    assert "every metric within tolerance" in out.out
    for name in ("walk_mcap", "walk_sqlite3"):
        assert (tmp_path / "p" / name / "torque_estimate_vs_reference.png").stat().st_size > 10_000
    # the renamed copy is found by content; write and re-read a baseline of the whole directory
    base = tmp_path / "dir_baseline.json"
    assert _run(bag_dir, "--model", MODEL, "--workers", 2, "--write-baseline", base, "--quiet") == 0
    doc = json.loads(base.read_text())
    assert sorted(doc["bags"]) == ["single.mcap", "walk_mcap", "walk_sqlite3", "walk_sqlite3_copy"]
    assert _run(bag_dir, "--model", MODEL, "--workers", 2, "--baseline", base, "--quiet") == 0


def test_a_bad_bag_is_an_error_and_the_others_are_still_judged(
    bag_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    d = tmp_path / "mixed"
    d.mkdir()
    (d / "walk_mcap").symlink_to(bag_dir / "walk_mcap", target_is_directory=True)
    (d / "broken.mcap").write_bytes(b"\x89MCAP0\r\n" + b"garbage" * 100)
    report = tmp_path / "r.json"
    code = _run(d, "--model", MODEL, "--workers", 2, "--report", report, "--quiet")
    err = capsys.readouterr().err
    assert code == 2, err
    assert "broken.mcap" in err and "Traceback" not in err
    doc = json.loads(report.read_text())
    assert list(doc["bags"]) == ["walk_mcap"] and list(doc["errors"]) == ["broken.mcap"]
    # no baseline from an incomplete run
    assert _run(d, "--model", MODEL, "--write-baseline", tmp_path / "b.json", "--quiet") == 2
    assert not (tmp_path / "b.json").exists()
    assert "not written" in capsys.readouterr().err


def test_directory_without_bags_and_bad_worker_count(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert _run(tmp_path, "--model", MODEL) == 2
    assert "nor a directory of bags" in capsys.readouterr().err
    assert _run(DATA, "--model", MODEL, "--workers", 0) == 2
    assert "'--workers' = 0: must be >= 1" in capsys.readouterr().err
    assert _run(DATA, "--model", MODEL, "--output-bag", tmp_path / "o") == 2
    assert "takes one bag" in capsys.readouterr().err
