"""Regenerate the small extracts in this folder from ../shared (needs ezc3d; see README.md).

python make_extracts.py /path/to/shared
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
# the ISB markers the packaged marker set uses (upper-limb markers dropped)
LEG = ("IAS", "IPS", "FTC", "FLE", "FME", "FAX", "TTC", "FAL", "TAM", "FCC", "FM1", "FM2", "FM5")
MARKERS = [f"{s}_{m}" for s in "LR" for m in LEG] + ["CV7", "TV10", "SXS", "SJN"]
PIG_POINTS = [f"{seg}{k}" for seg in ("PEL", "RFE", "LFE", "RTI", "LTI", "RFO", "LFO") for k in "OALP"]
PIG_POINTS += ["SACR"] + [f"{s}{j}" for s in "LR" for j in ("HipMoment", "KneeMoment", "AnkleMoment")]
PIG_POINTS += [f"{s}{j}" for s in "LR" for j in ("GroundReactionForce", "HipAngles")]


def write_gz(dst: Path, text: str) -> None:
    """gzip without a time stamp: regenerating gives the same bytes."""
    with open(dst, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
        f.write(text.encode())


def trc_subset(src: Path, dst: Path) -> None:
    """Same frames, the marker set's markers only, values to 0.01 mm; gzip."""
    lines = src.read_text().splitlines()
    names = [n.strip() for n in lines[3].split("\t")[2:] if n.strip()]
    keep = [names.index(m) for m in MARKERS if m in names]
    kept = [names[i] for i in keep]
    head = lines[:3]
    head[2] = "\t".join(
        str(len(kept)) if k == 3 else v for k, v in enumerate(lines[2].split("\t"))
    )  # NumMarkers
    out = head + [
        "Frame#\tTime\t" + "\t\t\t".join(kept) + "\t\t",
        "\t\t" + "\t".join(f"{a}{i + 1}" for i in range(len(kept)) for a in "XYZ"),
        "",
    ]
    for line in lines[5:]:
        if not line.strip():
            continue
        v = line.split("\t")
        xyz = [f"{float(v[2 + 3 * i + a]):.2f}" for i in keep for a in range(3)]
        out.append("\t".join([v[0], v[1]] + xyz))
    write_gz(dst, "\n".join(out) + "\n")


def mot_compact(src: Path, dst: Path) -> None:
    """Same rows and columns, 7 significant digits; gzip."""
    lines = src.read_text().splitlines()
    end = next(i for i, line in enumerate(lines) if line.strip().lower() == "endheader")
    body = [lines[end + 1]] + [
        "\t".join(f"{float(x):.7g}" for x in line.split()) for line in lines[end + 2 :] if line.strip()
    ]
    write_gz(dst, "\n".join(lines[: end + 1] + body) + "\n")


def pig_subset(src: Path, dst: Path) -> None:
    """The points the PiG reader uses, all frames, with the metadata it reads (mass, events, rate)."""
    import ezc3d

    c = ezc3d.c3d(str(src))
    par = c["parameters"]
    labels = list(par["POINT"]["LABELS"]["value"]) + list(par["POINT"].get("LABELS2", {}).get("value", []))
    idx = [labels.index(p) for p in PIG_POINTS]
    n = ezc3d.c3d()
    n["parameters"]["POINT"]["RATE"]["value"] = [float(par["POINT"]["RATE"]["value"][0])]
    n["parameters"]["POINT"]["LABELS"]["value"] = PIG_POINTS
    n["parameters"]["POINT"]["UNITS"]["value"] = ["mm"]
    pts = np.asarray(c["data"]["points"])[:, idx, :]
    n["data"]["points"] = np.nan_to_num(pts, nan=0.0)
    # ezc3d writes NaN as a residual of -1 (a gap): keep the gaps where the source had them
    n["data"]["meta_points"]["residuals"] = np.where(np.isnan(pts[0]), -1.0, 0.0)[None, :, :]
    n["data"]["meta_points"]["camera_masks"] = np.zeros((7, len(idx), pts.shape[2]), dtype=bool)
    for group, suffix in (("MOMENTS", "Moment"), ("ANGLES", "Angles"), ("FORCES", "Force")):
        n.add_parameter("POINT", group, [p for p in PIG_POINTS if p.endswith(suffix)])
    n.add_parameter("PROCESSING", "Bodymass", [float(par["PROCESSING"]["Bodymass"]["value"][0])])
    n.add_parameter("SUBJECTS", "NAMES", list(par["SUBJECTS"]["NAMES"]["value"]))
    ev = par["EVENT"]
    first = int(c["header"]["points"]["first_frame"])
    rate = float(par["POINT"]["RATE"]["value"][0])
    n.add_parameter("EVENT", "CONTEXTS", list(ev["CONTEXTS"]["value"]))
    n.add_parameter("EVENT", "LABELS", list(ev["LABELS"]["value"]))
    times = np.asarray(ev["TIMES"]["value"], float).copy()
    times[1] -= first / rate  # the written file starts at frame 0
    n.add_parameter("EVENT", "TIMES", times)
    n.write(str(dst))


def c3d_markers(src: Path, dst: Path, frames: int) -> None:
    """The first frames of the marker set's markers, lab axes and units unchanged, no analog data."""
    import ezc3d

    c = ezc3d.c3d(str(src))
    labels = list(c["parameters"]["POINT"]["LABELS"]["value"])
    idx = [labels.index(m) for m in MARKERS if m in labels]
    n = ezc3d.c3d()
    n["parameters"]["POINT"]["RATE"]["value"] = [float(c["parameters"]["POINT"]["RATE"]["value"][0])]
    n["parameters"]["POINT"]["LABELS"]["value"] = [labels[i] for i in idx]
    n["parameters"]["POINT"]["UNITS"]["value"] = list(c["parameters"]["POINT"]["UNITS"]["value"])
    n["data"]["points"] = np.asarray(c["data"]["points"])[:, idx, :frames]
    n.write(str(dst))


def main(shared: Path) -> None:
    sch = shared / "data" / "real" / "schreiber2019" / "2014007"
    trc_subset(sch / "static" / "2014007_ST.trc", HERE / "2014007_ST.trc.gz")
    (HERE / "2014007_ST.c3d").write_bytes((sch / "static" / "2014007_ST.c3d").read_bytes())
    trc_subset(sch / "dynamic" / "2014007_C5_04.trc", HERE / "2014007_C5_04.trc.gz")
    c3d_markers(sch / "dynamic" / "2014007_C5_04.c3d", HERE / "2014007_C5_04_first30.c3d", 30)
    mot_compact(sch / "dynamic" / "2014007_C5_04_grf.mot", HERE / "2014007_C5_04_grf.mot.gz")
    (HERE / "2014007_C5_04_grf.xml").write_bytes((sch / "dynamic" / "2014007_C5_04_grf.xml").read_bytes())
    kids = shared / "data" / "real" / "biomechzoo_children" / "HC002D" / "Straight" / "HC002D06.c3d"
    pig_subset(kids, HERE / "HC002D06_pig.c3d")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
