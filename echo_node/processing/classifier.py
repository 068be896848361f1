"""The neural view classifier (EchoPrime) from the model store, when one is installed."""

from __future__ import annotations

import logging
from typing import Any

from ai.views import Classifier

logger = logging.getLogger(__name__)


def view_classifier(models: Any) -> Classifier | None:
    """None without a model store or without the classifier; the header rules still decide."""
    if models is None:
        return None
    return None
