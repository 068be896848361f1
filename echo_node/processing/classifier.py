"""The neural view classifier (EchoPrime) over the node's model store."""

from __future__ import annotations

from typing import Any

from ai.views import Classifier


def view_classifier(models: Any) -> Classifier | None:
    """EchoPrime over `models` (an ai.models ModelStore); None without a store. Without its
    weights the classifier answers None itself, so the header rules alone decide (and a clip
    they cannot place stays unknown)."""
    if models is None:
        return None
    # Imported here: torch is only loaded by processes that have a model store.
    from ai.models.store import ModelStore
    from ai.models.view_classifier import ViewClassifier

    if not isinstance(models, ModelStore):
        return None
    return ViewClassifier(models)
