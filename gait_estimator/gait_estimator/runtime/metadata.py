"""The metadata contract that travels inside every model file.

A model file carries ``METADATA_FILE`` as UTF-8 JSON: a TorchScript archive
(``torch.jit.save``) in its ``_extra_files``, a torch.export ``.pt2`` package as an extra file,
an ONNX model as the ``metadata_props`` entry of that key. The ONNX and .pt2 graphs that stand
for the methods below (step with explicit state) are described in ``runtime/explicit_state.py``.
Everything the pipeline needs to feed the model (channel order, rate, window, stride,
normalisation) and to read its output (joints, unit) comes from here, never from separate
hand-kept settings.

TorchScript module interface (``SCHEMA_VERSION`` 1):

- ``forward(x: Tensor[B, T, C]) -> Tensor[B, J]``: window mode. ``x`` is z-score normalised
  with ``input_mean``/``input_std``, rows oldest first, ``T == window``, ``C == len(input_channels)``;
  the output is the torque at the newest row, in ``output_unit``, joints in ``output_joints`` order.
- Streaming models (``streaming`` true) also export
  ``init_state(batch: int) -> List[Tensor]`` and
  ``forward_step(x: Tensor[B, C], state: List[Tensor]) -> Tuple[Tensor[B, J], List[Tensor]]``:
  one normalised row in, the torque at that row out, recurrent state carried by the caller.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gait_estimator.errors import ModelFileCorruptError, ModelMetadataError

SCHEMA_VERSION = 1
METADATA_FILE = "gait_estimator/metadata.json"
OUTPUT_UNITS = ("N.m/kg", "N.m")
ARCHITECTURES = ("lstm", "cnn", "cnn_lstm", "cnn_gru_attention", "tcn", "gru", "mlp")


@dataclass(frozen=True)
class ModelMetadata:
    """Metadata of one exported model. See the module docstring for the contract."""

    architecture: str
    input_channels: tuple[str, ...]  # "<location>/<signal>", see conventions.channel_name
    sample_rate_hz: float
    window: int  # samples per window (T)
    stride: int  # samples between two estimates in window mode
    input_mean: tuple[float, ...]  # per input channel, SI units
    input_std: tuple[float, ...]  # per input channel, > 0
    output_joints: tuple[str, ...]  # OpenSim coordinate names
    output_unit: str  # one of OUTPUT_UNITS
    streaming: bool = False
    schema_version: int = SCHEMA_VERSION
    training: dict[str, Any] = field(default_factory=dict)  # provenance: data, seed, metrics

    def __post_init__(self) -> None:
        # Normalise sequences to tuples so equality and hashing behave.
        for name in ("input_channels", "input_mean", "input_std", "output_joints"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        self.validate()

    def validate(self) -> None:
        """Raise ``ModelMetadataError`` naming the first field that breaks its rule."""

        def bad(name: str, rule: str) -> ModelMetadataError:
            return ModelMetadataError(f"model metadata '{name}' = {getattr(self, name)!r}: {rule}")

        if self.schema_version != SCHEMA_VERSION:
            raise bad("schema_version", f"this gait_estimator reads schema {SCHEMA_VERSION}")
        if self.architecture not in ARCHITECTURES:
            raise bad("architecture", f"must be one of {ARCHITECTURES}")
        n = len(self.input_channels)
        if n == 0 or len(set(self.input_channels)) != n or any("/" not in c for c in self.input_channels):
            raise bad("input_channels", "must be unique non-empty '<location>/<signal>' names")
        if not (self.sample_rate_hz > 0 and math.isfinite(self.sample_rate_hz)):
            raise bad("sample_rate_hz", "must be a finite rate > 0 Hz")
        if self.window < 1:
            raise bad("window", "must be >= 1 sample")
        if not 1 <= self.stride <= self.window:
            raise bad("stride", "must be in [1, window]")
        if len(self.input_mean) != n or not all(math.isfinite(v) for v in self.input_mean):
            raise bad("input_mean", f"must be {n} finite values, one per input channel")
        if len(self.input_std) != n or not all(math.isfinite(v) and v > 0 for v in self.input_std):
            raise bad("input_std", f"must be {n} finite values > 0, one per input channel")
        if not self.output_joints or len(set(self.output_joints)) != len(self.output_joints):
            raise bad("output_joints", "must be unique OpenSim coordinate names")
        if self.output_unit not in OUTPUT_UNITS:
            raise bad("output_unit", f"must be one of {OUTPUT_UNITS}")

    @property
    def locations(self) -> tuple[str, ...]:
        """IMU locations the model reads, in first-use order."""
        return tuple(dict.fromkeys(c.split("/", 1)[0] for c in self.input_channels))

    @property
    def normalization_id(self) -> str:
        """Identity of the input normalisation (channel order, mean, std): two models with the same
        id read the same normalised windows. Carried on the wire in ``FeatureWindow``."""
        text = json.dumps([self.input_channels, self.input_mean, self.input_std])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "<metadata>") -> ModelMetadata:
        try:
            raw = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelMetadataError(f"{source}: metadata is not valid JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise ModelMetadataError(f"{source}: metadata must be a JSON object")
        known = set(cls.__dataclass_fields__)
        required = [k for k in ("architecture", "input_channels", "sample_rate_hz", "window", "stride",
                                "input_mean", "input_std", "output_joints", "output_unit") if k not in raw]
        if required:
            raise ModelMetadataError(f"{source}: metadata lacks required field(s) {required}")
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ModelMetadataError(f"{source}: metadata has unknown field(s) {unknown}")
        try:
            return cls(**raw)
        except ModelMetadataError as exc:
            raise ModelMetadataError(f"{source}: {exc}") from exc
        except TypeError as exc:
            raise ModelMetadataError(f"{source}: malformed metadata: {exc}") from exc


# -- reading it from a file (no torch, no ONNX Runtime: the windowing node needs only this) -----
def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (torch and ORT messages run to pages)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def no_metadata_error(p: Path) -> ModelMetadataError:
    return ModelMetadataError(
        f"model file {p}: no embedded metadata '{METADATA_FILE}' (export the model with "
        "gait_estimator.runtime.model_file.save_model or `gait-estimator export`)"
    )


def read_onnx_props(p: Path):
    """(parsed ONNX ModelProto, its ``metadata_props`` as a dict); refuses non-ONNX files."""
    import onnx

    try:
        model = onnx.load_model(str(p), load_external_data=False)
    except Exception as exc:
        raise ModelFileCorruptError(f"model file {p}: not a readable ONNX model ({first_line(exc)})") from exc
    if not model.graph.node:  # protobuf parses an empty or foreign file as an empty model
        raise ModelFileCorruptError(
            f"model file {p}: not a readable ONNX model (no graph: empty or not ONNX)"
        )
    return model, {e.key: e.value for e in model.metadata_props}


def read_file_metadata(path: str | os.PathLike[str]) -> ModelMetadata:
    """The metadata of a model file of any type, by its suffix (``.onnx``: ``metadata_props``;
    ``.pt2`` and TorchScript: the zip's extra file), without loading the model."""
    p = Path(path)
    if not p.is_file():
        raise ModelFileCorruptError(f"model file {p}: not found (or not a regular file)")
    suffix = p.suffix.lower()
    if suffix == ".onnx":
        props = read_onnx_props(p)[1]
        if METADATA_FILE not in props:
            raise no_metadata_error(p)
        return ModelMetadata.from_json(props[METADATA_FILE], source=f"model file {p}")
    kind = "torch.export .pt2" if suffix == ".pt2" else "TorchScript"
    try:
        with zipfile.ZipFile(p) as zf:
            # TorchScript keeps extra files under <archive>/extra/, .pt2 packages under extra/.
            names = [n for n in zf.namelist() if n.endswith("extra/" + METADATA_FILE)]
            if not names:
                raise no_metadata_error(p)
            text = zf.read(names[0])
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFileCorruptError(f"model file {p}: not a {kind} archive ({exc})") from exc
    return ModelMetadata.from_json(text, source=f"model file {p}")
