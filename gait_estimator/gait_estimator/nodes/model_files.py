"""Where the nodes find model files: the default model, and a file's metadata read without torch."""

from __future__ import annotations

import os
from pathlib import Path

from gait_estimator.runtime.metadata import ModelMetadata


def default_model_path() -> Path:
    """The default model: the source tree's ``models/default.pt`` or the installed share copy."""
    here = Path(__file__).resolve()
    candidates = [here.parents[2] / "models" / "default.pt"]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("gait_estimator")) / "models" / "default.pt")
    except Exception:
        pass
    for c in candidates:
        if c.is_file():
            return c
    return candidates[0]


def read_model_metadata(path: str | os.PathLike) -> ModelMetadata:
    """Read only the metadata of a model file of any type (TorchScript, .pt2, ONNX), without
    importing torch or ONNX Runtime."""
    from gait_estimator.runtime.metadata import read_file_metadata

    return read_file_metadata(path)
