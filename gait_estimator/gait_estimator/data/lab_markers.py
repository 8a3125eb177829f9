"""Marker files of a lab trial: ``.trc`` read and write, ``.c3d`` (ezc3d) to ``.trc`` in OpenSim's
axes, and the repair of marker label swaps against the static trial (used by
``data/opensim_lab.py``)."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gait_estimator.data.opensim_kinematics import plain_file
from gait_estimator.errors import DatasetError

SWAP_MIN_M = 0.02  # a label pair is swapped when its distances to its body's other markers are this
SWAP_GAIN = 0.3  # far (mean) from the static trial's, and swapping the labels leaves under 30 % of that


def read_trc(path: str | Path) -> tuple[np.ndarray, list[str], np.ndarray]:
    """``(time s, marker names, positions [frames, markers, 3] in m)``; gaps are NaN."""
    p = Path(path)
    try:
        lines = p.read_text(errors="replace").splitlines()
    except OSError as exc:
        raise DatasetError(f"{p}: cannot read: {exc.strerror or exc}") from exc
    if len(lines) < 6 or not lines[0].startswith("PathFileType"):
        raise DatasetError(f"{p}: not a .trc marker file (first line must start with 'PathFileType')")
    keys, vals = lines[1].split("\t"), lines[2].split("\t")
    meta = dict(zip([k.strip() for k in keys], [v.strip() for v in vals], strict=False))
    units = meta.get("Units", "mm").lower()
    scale = {"mm": 1e-3, "m": 1.0, "cm": 1e-2}.get(units)
    if scale is None:
        raise DatasetError(f"{p}: unknown marker units '{units}' (mm, cm or m)")
    names = [n.strip() for n in lines[3].split("\t")[2:] if n.strip()]
    rows = []
    for i, line in enumerate(lines[5:], start=6):
        if not line.strip():
            continue
        parts = line.split("\t")
        try:
            rows.append([float(v) if v.strip() else math.nan for v in parts[1 : 2 + 3 * len(names)]])
        except ValueError as exc:
            raise DatasetError(f"{p}: line {i}: non-numeric value: {exc}") from exc
        if len(rows[-1]) < 1 + 3 * len(names):
            rows[-1] += [math.nan] * (1 + 3 * len(names) - len(rows[-1]))
    if not rows:
        raise DatasetError(f"{p}: no marker frames")
    data = np.array(rows)
    return data[:, 0], names, data[:, 1:].reshape(len(rows), len(names), 3) * scale


def write_trc(path: Path, time: np.ndarray, names: Sequence[str], xyz_mm: np.ndarray) -> None:
    """An OpenSim .trc (mm); ``xyz_mm`` [frames, markers, 3], NaN written as an empty cell (gap)."""
    rate = 1.0 / float(np.median(np.diff(time))) if len(time) > 1 else 100.0
    n, m = xyz_mm.shape[:2]
    lines = [
        f"PathFileType\t4\t(X/Y/Z)\t{path.name}",
        "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames",
        f"{rate:g}\t{rate:g}\t{n}\t{m}\tmm\t{rate:g}\t1\t{n}",
        "Frame#\tTime\t" + "\t\t\t".join(names) + "\t\t",
        "\t\t" + "\t".join(f"{a}{i + 1}" for i in range(m) for a in "XYZ"),
        "",
    ]
    for i in range(n):
        vals = ["" if not np.isfinite(v) else f"{v:.5f}" for v in xyz_mm[i].ravel()]
        lines.append("\t".join([str(i + 1), f"{time[i]:.5f}", *vals]))
    path.write_text("\n".join(lines) + "\n")


def c3d_to_trc(c3d: Path, out_dir: Path) -> Path:
    """Markers of a lab c3d (Z up) in OpenSim axes (y up), turned about the vertical so that the
    person walks along +x (or, standing still, faces +x: ASIS ahead of PSIS). Needs ezc3d."""
    try:
        import ezc3d
    except ImportError as exc:
        raise DatasetError("reading c3d files needs the 'ezc3d' package (requirements/python.txt)") from exc
    try:
        c = ezc3d.c3d(str(c3d))
    except (RuntimeError, ValueError, OSError) as exc:
        raise DatasetError(f"{c3d}: not a readable c3d file: {str(exc).strip()[:200]}") from exc
    par = c["parameters"]["POINT"]
    names = [str(x).strip() for x in par["LABELS"]["value"]]
    names += [str(x).strip() for x in par.get("LABELS2", {}).get("value", [])]
    units = str((list(par.get("UNITS", {}).get("value", [])) or ["mm"])[0]).strip().lower()
    lab = np.asarray(c["data"]["points"][:3], float).transpose(2, 1, 0)  # [frames, markers, XYZ]
    lab = lab * {"mm": 1.0, "m": 1000.0, "cm": 10.0}.get(units, 1.0)
    xyz = np.stack([lab[..., 0], lab[..., 2], -lab[..., 1]], axis=-1)  # -90 deg about lab X: y up
    pelvis = [names.index(n) for n in ("L_IAS", "R_IAS", "L_IPS", "R_IPS") if n in names]
    if len(pelvis) < 4:
        raise DatasetError(f"{c3d}: needs the pelvis markers L_IAS, R_IAS, L_IPS, R_IPS to find the heading")
    mid = np.nanmean(xyz[:, pelvis], axis=1)
    front = np.nanmean(xyz[:, pelvis[:2]], axis=1) - np.nanmean(xyz[:, pelvis[2:]], axis=1)
    heading = mid[-1, 0] - mid[0, 0] if len(mid) > 10 else np.nanmean(front[:, 0])
    if heading < 0:  # 180 deg about the vertical
        xyz[..., 0] *= -1.0
        xyz[..., 2] *= -1.0
    rate = float(np.ravel(par["RATE"]["value"])[0])
    if len(xyz) == 1:  # OpenSim's ScaleTool cannot average a single-frame file: repeat the frame
        xyz = np.repeat(xyz, 2, axis=0)
    out = out_dir / (c3d.name.split(".")[0] + ".trc")
    write_trc(out, np.arange(len(xyz)) / rate, names, xyz)
    return out


def lab_markers(path: Path, out_dir: Path) -> Path:
    """A .trc to hand to OpenSim: ``.trc`` (or ``.trc.gz``) as it is, ``.c3d`` converted."""
    if Path(path).suffix.lower() == ".c3d":
        if not Path(path).is_file():
            raise DatasetError(f"{path}: file not found")
        return c3d_to_trc(Path(path), out_dir)
    return plain_file(Path(path), out_dir)


def _marker_bodies(path: Path) -> dict[str, str]:
    root = ET.parse(path).getroot()
    return {
        m.get("name", ""): (m.findtext("socket_parent_frame") or "").rsplit("/", 1)[-1]
        for m in root.iter("Marker")
    }


def fix_label_swaps(markers: Path, static: Path, marker_set: Path, out_dir: Path) -> tuple[Path, list[str]]:
    """Undo whole-trial label swaps between two markers of one body: their distances to the body's
    other markers must match the static trial's. Returns the marker file to use and the swaps made."""
    t, names, xyz = read_trc(markers)
    _, s_names, s_xyz = read_trc(static)
    groups: dict[str, list[str]] = {}
    for name, body in _marker_bodies(marker_set).items():
        if name in names and name in s_names:
            groups.setdefault(body, []).append(name)
    swaps = []
    rename = {n: n for n in names}
    for group in groups.values():
        if len(group) < 3:
            continue
        dyn = {n: xyz[:, names.index(n)] for n in group}
        sta = {n: np.nanmean(s_xyz[:, s_names.index(n)], axis=0) for n in group}

        def dist_err(a: str, b: str, dyn=dyn, sta=sta, group=group) -> float:
            """Mean |dynamic distance of a - static distance of b| to the other markers."""
            return float(
                np.mean(
                    [
                        abs(
                            np.nanmedian(np.linalg.norm(dyn[a] - dyn[k], axis=1))
                            - np.linalg.norm(sta[b] - sta[k])
                        )
                        for k in group
                        if k not in (a, b)
                    ]
                )
            )

        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                before = dist_err(a, a) + dist_err(b, b)
                after = dist_err(a, b) + dist_err(b, a)
                if before > 2 * SWAP_MIN_M and after < SWAP_GAIN * before:
                    rename[a], rename[b] = b, a
                    swaps.append(f"{a}<->{b}")
    if not swaps:
        return markers, []
    lines = Path(markers).read_text(errors="replace").splitlines(keepends=True)
    lines[3] = "\t".join(rename.get(tok.strip(), tok) if tok.strip() else tok for tok in lines[3].split("\t"))
    out = out_dir / (Path(markers).name.split(".")[0] + "_relabelled.trc")
    out.write_text("".join(lines))
    return out, swaps


# -- scaling ---------------------------------------------------------------------------------------
