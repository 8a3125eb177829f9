"""Minimal c3d reader for the benchmarks (no c3d package in the environment).

Reads what bench_gait_phase needs from the biomechzoo_children files: the parameter section (all
groups), the 3-D points (NaN where the residual word marks a point invalid) and the analog
channels (scaled: (raw - OFFSET) x SCALE x GEN_SCALE). Intel processor type only (Vicon Nexus
writes it); float or int16 data. Checked on HC002D06 against its README row (255 frames, 3/3
foot strikes, peak vGRF 1.19 BW on plate 1).
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def read_c3d(path: str | Path) -> dict:
    b = Path(path).read_bytes()
    pblock = b[0]
    if b[1] != 0x50:
        raise ValueError(f"{path}: not a c3d file")
    p0 = (pblock - 1) * 512
    proc = b[p0 + 3]
    if proc != 84:
        raise ValueError(f"{path}: processor type {proc}, only Intel (84) supported")
    params: dict[str, dict] = {}
    groups: dict[int, str] = {}
    i = p0 + 4
    raw: list = []
    while True:
        nlen = struct.unpack_from("b", b, i)[0]
        gid = struct.unpack_from("b", b, i + 1)[0]
        if nlen == 0:
            break
        name = b[i + 2: i + 2 + abs(nlen)].decode("latin-1")
        j = i + 2 + abs(nlen)
        nxt = struct.unpack_from("<h", b, j)[0]
        j += 2
        if gid < 0:
            groups[-gid] = name.upper()
        else:
            dtype = struct.unpack_from("b", b, j)[0]
            nd = b[j + 1]
            dims = list(b[j + 2: j + 2 + nd])
            j += 2 + nd
            n = int(np.prod(dims)) if dims else 1
            size = abs(dtype)
            data = b[j: j + n * size]
            if dtype == -1:
                if nd <= 1:
                    val = data.decode("latin-1").strip()
                else:
                    w = dims[0]
                    val = [data[k * w:(k + 1) * w].decode("latin-1").strip() for k in range(n // w)]
            elif dtype == 1:
                val = np.frombuffer(data, np.uint8).copy()
            elif dtype == 2:
                val = np.frombuffer(data, "<i2").copy()
                val = val.reshape(dims[::-1]) if nd > 1 else val
            else:
                val = np.frombuffer(data, "<f4").copy()
                val = val.reshape(dims[::-1]) if nd > 1 else val
            raw.append((gid, name.upper(), val))
        if nxt == 0:
            break
        i = i + 2 + abs(nlen) + nxt
    for gid, name, val in raw:
        params.setdefault(groups.get(gid, str(gid)), {})[name] = val
    npts = struct.unpack_from("<h", b, 2)[0]
    nanalog_total = struct.unpack_from("<h", b, 4)[0]
    first, last = struct.unpack_from("<hh", b, 6)
    scale = struct.unpack_from("<f", b, 12)[0]
    dstart = struct.unpack_from("<h", b, 16)[0]
    an_per_frame = struct.unpack_from("<h", b, 18)[0]
    rate = struct.unpack_from("<f", b, 20)[0]
    nframes = int(last) - int(first) + 1
    if "POINT" in params and "FRAMES" in params["POINT"]:
        fr = params["POINT"]["FRAMES"]
        nframes = int(np.asarray(fr).ravel()[0]) if np.asarray(fr).size else nframes
    nch = nanalog_total // an_per_frame if an_per_frame else 0
    d0 = (dstart - 1) * 512
    if scale < 0:
        per = npts * 4 + nanalog_total
        arr = np.frombuffer(b, "<f4", count=per * nframes, offset=d0).reshape(nframes, per)
    else:
        per = npts * 4 + nanalog_total
        arr = np.frombuffer(b, "<i2", count=per * nframes, offset=d0).reshape(nframes, per).astype(np.float64)
    pts = arr[:, : npts * 4].reshape(nframes, npts, 4).astype(np.float64)
    if scale >= 0:
        pts[..., :3] *= scale
    resid = pts[..., 3]
    xyz = pts[..., :3].copy()
    xyz[resid < 0] = np.nan
    an = np.zeros((0, 0))
    if nch:
        an = arr[:, npts * 4:].reshape(nframes * an_per_frame, nch).astype(np.float64)
        A = params.get("ANALOG", {})
        sc = np.asarray(A.get("SCALE", np.ones(nch)), float).ravel()[:nch]
        off = np.asarray(A.get("OFFSET", np.zeros(nch)), float).ravel()[:nch]
        gen = float(np.asarray(A.get("GEN_SCALE", [1.0])).ravel()[0])
        an = (an - off) * sc * gen
    labels = list(params["POINT"]["LABELS"]) + list(params["POINT"].get("LABELS2", []))
    return {"rate": rate, "first_frame": first, "labels": labels[:npts], "points": xyz,
            "analog": an, "analog_labels": list(params.get("ANALOG", {}).get("LABELS", []))[:nch],
            "analog_rate": rate * an_per_frame, "params": params}
