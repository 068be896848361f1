"""The neural view classifier (EchoPrime) over the node's model store."""

from __future__ import annotations

from ai.model_source import ModelSource
from ai.views import Classifier


def view_classifier(models: ModelSource | None) -> Classifier | None:
    """EchoPrime over `models` (the model store); None without a store. Without its weights
    the classifier answers None itself, so the header rules alone decide (and a clip they
    cannot place stays unknown). The worker and `echo-node analyze` both take it from here."""
    if models is None:
        return None
    # Imported here: torch is only loaded by processes that have a model store.
    from ai.models.view_classifier import ViewClassifier

    return ViewClassifier(models)
