"""Package-specific exceptions. Each message names what was wrong (path, parameter, value)."""

from __future__ import annotations


class GaitEstimatorError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(GaitEstimatorError, ValueError):
    """A parameter or configuration value breaks its rule."""

    def __init__(self, name: str, value: object, rule: str) -> None:
        self.name, self.value, self.rule = name, value, rule
        super().__init__(f"parameter '{name}' = {value!r}: {rule}")


class ModelError(GaitEstimatorError):
    """A model file cannot be used; subclasses say why."""


class ModelFileCorruptError(ModelError):
    """The file is missing, unreadable or not a TorchScript archive."""


class ModelMetadataError(ModelError):
    """The TorchScript archive lacks the metadata, or the metadata is malformed."""


class ModelMismatchError(ModelError):
    """The model is valid but expects other inputs or outputs than this pipeline provides."""


class DatasetError(GaitEstimatorError):
    """A dataset file or directory cannot be read; the message carries the path."""


class BagError(GaitEstimatorError):
    """A rosbag2 file cannot be read or written as needed; the message carries the path."""


class SafetyFault(GaitEstimatorError):
    """A latched fault of the torque-command safety layer."""


class CalibrationError(GaitEstimatorError):
    """A sensor-to-segment calibration is malformed, unusable or flagged as bad."""
