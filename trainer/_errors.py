"""The trainer's error hierarchy: every failure a caller can act on is a TrainerError."""


class TrainerError(Exception):
    """Base class of every error the trainer raises on purpose."""


class ConfigError(TrainerError):
    """A configuration that cannot run (unknown device, incompatible checkpoint, ...)."""


class DatasetError(TrainerError):
    """Data that cannot be loaded: missing files (named, with their folder) or a path
    outside the data root."""
