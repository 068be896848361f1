"""Model registry, architectures, checkpoint loading and the model store (no weights ship)."""

from ai.models.loader import CheckpointError, LoadedModel, load_model, read_checkpoint
from ai.models.registry import ModelSpec, Registry, RegistryError, default_registry
from ai.models.store import ModelStore, NotInstalled

__all__ = [
    "CheckpointError",
    "LoadedModel",
    "ModelSpec",
    "ModelStore",
    "NotInstalled",
    "Registry",
    "RegistryError",
    "default_registry",
    "load_model",
    "read_checkpoint",
]
