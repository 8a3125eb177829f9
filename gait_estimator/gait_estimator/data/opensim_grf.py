"""Force-plate GRF for OpenSim inverse dynamics: plate columns, plate-to-foot assignment, ExternalLoads.

Lab GRF files hold one force / point (COP) / torque triple per plate, not per foot. Each loaded
interval (Fy > ``FY_ON``) of each plate goes to the foot (``calcn_r`` or ``calcn_l``) whose
heel-to-MTP segment is horizontally closest to the COP; the GRF is rewritten with one triple per
(plate, foot) and an ExternalLoads XML maps each triple onto its calcaneus, in ground. A given
ExternalLoads XML is read instead when the lab already has one (:func:`read_external_loads`).
Torque columns must be the free moment about the COP; a moment about a fixed point is detected
(least squares on the horizontal rows) and converted, since applying it at the COP would count
``(P - o) x F`` twice.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gait_estimator.errors import DatasetError

__all__ = [
    "FY_ON",
    "FootLoads",
    "assign_plates",
    "find_plates",
    "intervals",
    "read_external_loads",
    "write_mot",
]

FY_ON = 20.0  # N: a plate is loaded above this vertical force
MIN_LOAD_S = 0.05  # s: shorter loads are spikes, not foot contacts (zeroed)
MAX_COP_DIST = 0.25  # m: a COP farther than this from both feet is not the subject (zeroed)
LEGS = ("r", "l")


@dataclass
class FootLoads:
    """GRF per foot, ready for the ID tool, and what was decided on the way."""

    mot_path: Path
    xml_path: Path
    time: np.ndarray
    fy: dict[str, np.ndarray]  # vertical GRF per leg (N), on ``time``
    report: list[dict] = field(default_factory=list)


def intervals(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (start, stop) index pairs of the True runs of ``mask``."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.flatnonzero(np.diff(m.astype(np.int8)))
    return [(int(a), int(b) - 1) for a, b in zip(d[::2], d[1::2], strict=True)]


def find_plates(cols: list[str], source: str) -> list[dict]:
    """Group GRF columns into plates: ``[{name, force: [3 cols], point: [3], torque: [3]}]``.

    Understands the common OpenSim spellings: ``ground_force_vx`` / ``1_ground_force_vx`` with
    ``..._px`` and ``ground_torque_x`` / ``..._mx``.
    """
    plates = []
    for c in cols:
        if not c.endswith("vx"):
            continue
        stem = c[:-1]  # e.g. ground_force_v, 1_ground_force_v
        force = [stem + a for a in "xyz"]
        point = [stem[:-1] + "p" + a for a in "xyz"]
        torque = None
        for tp in (
            stem[:-1] + "m",
            stem.replace("force_v", "torque_"),
            stem[:-2].replace("force", "torque") + "_",
        ):
            if all(tp + a in cols for a in "xyz"):
                torque = [tp + a for a in "xyz"]
                break
        missing = [x for x in force + point if x not in cols]
        if missing or torque is None:
            raise DatasetError(
                f"{source}: plate '{stem}' lacks column(s) {missing or ['torque x/y/z']}; "
                f"need force {stem}x/y/z, point {stem[:-1]}px/py/pz and a torque triple"
            )
        plates.append(
            {
                "name": stem[:-2] if stem.endswith("_v") else stem,
                "force": force,
                "point": point,
                "torque": torque,
            }
        )
    if not plates:
        raise DatasetError(
            f"{source}: no force-plate columns (such as 'ground_force_vx') among {cols[:12]}..."
        )
    return plates


def _free_moment(f: np.ndarray, p: np.ndarray, m: np.ndarray, loaded: np.ndarray) -> tuple[np.ndarray, dict]:
    """Torque about the COP: converts a moment about a fixed point o when that explains the data."""
    if not loaded.any():
        return m, {"converted": None}
    fl, pl, ml = f[loaded], p[loaded], m[loaded]
    pxf = np.cross(pl, fl)
    n = len(fl)
    a = np.zeros((2 * n, 3))
    b = np.zeros(2 * n)
    # m_x = (p x f)_x - (o_y f_z - o_z f_y);  m_z = (p x f)_z - (o_x f_y - o_y f_x)
    a[:n, 1], a[:n, 2], b[:n] = -fl[:, 2], fl[:, 1], ml[:, 0] - pxf[:, 0]
    a[n:, 0], a[n:, 1], b[n:] = -fl[:, 1], fl[:, 0], ml[:, 2] - pxf[:, 2]
    o = np.linalg.lstsq(a, b, rcond=None)[0]
    e_free = float(np.median(np.abs(ml[:, [0, 2]])))
    e_fit = float(np.median(np.abs(b - a @ o)))
    if e_fit < 0.2 * e_free:
        return m - np.cross(p - o, f), {
            "converted": "moment about a fixed point -> free moment about the COP",
            "o_m": [round(float(x), 4) for x in o],
        }
    return m, {"converted": None}


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Horizontal (x-z) distance from points ``p`` to segments ``a``-``b``, row-wise."""
    p, a, b = p[:, [0, 2]], a[:, [0, 2]], b[:, [0, 2]]
    ab = b - a
    t = np.clip(np.sum((p - a) * ab, 1) / np.maximum(np.sum(ab * ab, 1), 1e-9), 0, 1)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=1)


def write_mot(path: Path, cols: list[str], data: np.ndarray, name: str) -> None:
    with open(path, "w") as f:
        f.write(
            f"{name}\nversion=1\nnRows={data.shape[0]}\nnColumns={data.shape[1]}\ninDegrees=no\nendheader\n"
        )
        f.write("\t".join(cols) + "\n")
        for row in data:
            f.write("\t".join(f"{v:.8g}" for v in row) + "\n")


def _write_xml(path: Path, name: str, loads: list[tuple[str, str]], datafile: Path) -> None:
    root = ET.Element("OpenSimDocument", Version="40000")
    el = ET.SubElement(root, "ExternalLoads", name=name)
    objs = ET.SubElement(el, "objects")
    for tag, body in loads:
        ef = ET.SubElement(objs, "ExternalForce", name=tag)
        for k, v in (
            ("applied_to_body", body),
            ("force_expressed_in_body", "ground"),
            ("point_expressed_in_body", "ground"),
            ("force_identifier", tag + "_v"),
            ("point_identifier", tag + "_p"),
            ("torque_identifier", tag + "_m"),
        ):
            ET.SubElement(ef, k).text = v
    ET.SubElement(el, "datafile").text = str(datafile)
    ET.ElementTree(root).write(path)


def assign_plates(
    grf: dict[str, np.ndarray],
    feet: dict[str, dict[str, np.ndarray]],
    t_feet: np.ndarray,
    t_range: tuple[float, float],
    tmp: Path,
    name: str,
    source: str,
) -> FootLoads:
    """Per-foot GRF file + ExternalLoads XML from plate columns and foot positions.

    ``feet[side]["heel"|"toe"]``: ``[K, 3]`` ground positions of calcn and toes origins at ``t_feet``.
    """
    t = grf["time"]
    cols_in = [c for c in grf if c != "time"]
    heel = {
        sd: np.column_stack([np.interp(t, t_feet, feet[sd]["heel"][:, k]) for k in range(3)]) for sd in LEGS
    }
    toe = {
        sd: np.column_stack([np.interp(t, t_feet, feet[sd]["toe"][:, k]) for k in range(3)]) for sd in LEGS
    }
    cols, data, loads, report = ["time"], [t], [], []
    fy = {sd: np.zeros_like(t) for sd in LEGS}
    for pl in find_plates(cols_in, source):
        f = np.column_stack([grf[c] for c in pl["force"]])
        p = np.column_stack([grf[c] for c in pl["point"]])
        m = np.column_stack([grf[c] for c in pl["torque"]])
        loaded = f[:, 1] > FY_ON
        m, torque_note = _free_moment(f, p, m, loaded)
        owner = np.full(len(t), "", dtype=object)
        for a, b in intervals(loaded):
            if t[b] < t_range[0] or t[a] > t_range[1]:
                continue
            sl = slice(a, b + 1)
            dist = {sd: _segment_distance(p[sl], heel[sd][sl], toe[sd][sl]) for sd in LEGS}
            side = "r" if np.median(dist["r"]) < np.median(dist["l"]) else "l"
            near = float(np.median(dist[side]))
            dropped = None
            if t[b] - t[a] < MIN_LOAD_S:
                dropped = f"shorter than {MIN_LOAD_S * 1e3:.0f} ms"
            elif near > MAX_COP_DIST:
                dropped = f"COP {near:.2f} m from the nearest foot"
            else:
                owner[sl] = side
            other = "l" if side == "r" else "r"
            report.append(
                {
                    "plate": pl["name"],
                    "t_on": round(float(t[a]), 4),
                    "t_off": round(float(t[b]), 4),
                    "foot": None if dropped else side,
                    "dropped": dropped,
                    "median_cop_to_foot_m": round(near, 3),
                    "median_cop_to_other_foot_m": round(float(np.median(dist[other])), 3),
                    "torque": torque_note,
                }
            )
        for side in LEGS:
            sel = owner == side
            if not sel.any():
                continue
            tag = f"{pl['name']}_{side}"
            for arr, kind in ((f, "v"), (p, "p"), (m, "m")):
                # the COP stays defined (raw) outside the loaded interval to avoid jumps
                x = arr if kind == "p" else np.where(sel[:, None], arr, 0.0)
                data.extend([x[:, 0], x[:, 1], x[:, 2]])
                cols.extend(f"{tag}_{kind}{a}" for a in "xyz")
            fy[side] += np.where(sel, f[:, 1], 0.0)
            loads.append((tag, "calcn_" + side))
    mot = tmp / f"{name}_grf_by_foot.mot"
    write_mot(mot, cols, np.column_stack(data), f"{name}_grf_by_foot")
    xml = tmp / f"{name}_external_loads.xml"
    _write_xml(xml, name, loads, mot)
    return FootLoads(mot, xml, t, fy, report)


def read_external_loads(
    xml_path: Path, grf: dict[str, np.ndarray], grf_path: Path, bodies: set[str], tmp: Path, name: str
) -> FootLoads:
    """A lab's own ExternalLoads XML, checked against the GRF columns and the model's bodies.

    The copy handed to OpenSim points at ``grf_path`` (the file given on the command line), so
    a ``datafile`` entry relative to some other folder cannot break it. Vertical GRF per leg is
    the sum of the forces applied to bodies ending in ``_r`` / ``_l``.
    """
    try:
        tree = ET.parse(xml_path)
    except (OSError, ET.ParseError) as exc:
        raise DatasetError(f"{xml_path}: cannot read ExternalLoads XML: {exc}") from exc
    forces = tree.getroot().findall(".//ExternalForce")
    if not forces:
        raise DatasetError(f"{xml_path}: no <ExternalForce> entries")
    fy = {sd: np.zeros_like(grf["time"]) for sd in LEGS}
    report = []
    for ef in forces:
        body = (ef.findtext("applied_to_body") or "").strip()
        if body not in bodies:
            raise DatasetError(
                f"{xml_path}: ExternalForce '{ef.get('name')}' is applied to unknown body "
                f"'{body}'; the model has {sorted(bodies)}"
            )
        ident = (ef.findtext("force_identifier") or "").strip()
        need = [ident + a for a in "xyz"] + [
            (ef.findtext("point_identifier") or "").strip() + a for a in "xyz"
        ]
        missing = [c for c in need if c not in grf]
        if missing:
            raise DatasetError(
                f"{xml_path}: ExternalForce '{ef.get('name')}' needs column(s) {missing} "
                f"that {grf_path} lacks"
            )
        side = body.rsplit("_", 1)[-1] if body.endswith(("_r", "_l")) else None
        if side is not None:
            fy[side] += np.where(grf[ident + "y"] > FY_ON, grf[ident + "y"], 0.0)
        report.append({"force": ef.get("name"), "body": body, "leg": side, "given": True})
    datafile = tree.getroot().find(".//ExternalLoads/datafile")
    if datafile is None:
        datafile = ET.SubElement(tree.getroot().find(".//ExternalLoads"), "datafile")
    datafile.text = str(grf_path)
    out = tmp / f"{name}_external_loads.xml"
    tree.write(out)
    return FootLoads(grf_path, out, grf["time"], fy, report)
