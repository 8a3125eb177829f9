"""Write the simulator's embedded normative data (``normative_coefficients.json``).

Fits, from the reference data directory (default ``../shared/data`` beside the repository):
the Winter/Bovi joint angle templates (Fourier coefficients), Winter's single-foot GRF over
stance, Bovi's adult speed per class and the pelvic tilt oscillation from the real Dorschky
sacrum gyroscopes; records the source files' SHA-256 and the fit settings. The simulator reads
only this file at run time. Re-run after changing a fit in :mod:`gait_estimator.sim.normative`
(the test suite fails while the file and a fresh fit disagree)::

    python -m gait_estimator.sim.make_normative_coefficients [--data-root DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gait_estimator.sim import normative as nv


def default_output() -> Path:
    return Path(nv.__file__).resolve().parent / nv.DATA_FILE


def render(payload: dict) -> str:
    """Stable JSON text (floats as Python repr: they round-trip exactly)."""
    return json.dumps(payload, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=Path, default=nv.default_data_root())
    ap.add_argument("--out", type=Path, default=default_output())
    args = ap.parse_args(argv)
    text = render(nv.build_payload(args.data_root))
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(text)} bytes) from {args.data_root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
