"""What a pipeline or the view classifier asks of a model store, as a Protocol.

ai.models.store.ModelStore is the implementation (it loads torch); this module loads nothing,
so the pipeline registry, the node's processing and the CLI can name the store's type without
importing torch. A pipeline given None reports its models as not installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ai.models.loader import LoadedModel
    from ai.models.store import NotInstalled


class ModelSource(Protocol):
    """Models by registry name, loaded on first use."""

    # Clips (or frames) per forward pass.
    batch_size: int

    def installed(self, name: str) -> bool:
        """Whether the model's file is in the store (nothing is loaded)."""
        ...

    def get(self, name: str) -> LoadedModel | NotInstalled:
        """The loaded model, or NotInstalled with the command that installs it; raises
        ai.models.loader.CheckpointError for an installed file that does not fit."""
        ...
