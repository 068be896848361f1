"""The EchoPrime 11-view classifier as a view rule: Clip → ViewDecision, or None without weights.

Input as EchoPrime prepares it (docs/METHODS.md, "Views"): the first frame, pixels
outside the ultrasound sector zeroed, centre-cropped to the model's aspect, 10 % trimmed from
each side, resized to 224×224 with INTER_CUBIC, normalised with the registry's mean/std on the
0–255 scale in the registry's colour order. Softmax over the 11 classes; the top class decides.
Parasternal_Long → plax, A4C → a4c; every other class is recorded as View.OTHER with its label.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import cv2
import numpy as np
import numpy.typing as npt
import torch

from ai.clip import Clip
from ai.findings import View, ViewDecision
from ai.model_source import ModelSource
from ai.models.loader import LoadedModel
from ai.models.preprocess import crop_and_scale, crop_window, to_tensor
from ai.models.registry import ModelSpec
from ai.models.store import NotInstalled
from ai.sector import sector_mask

logger = logging.getLogger(__name__)

MODEL = "echoprime-view"
ZOOM = 0.1
ROUTES = {"Parasternal_Long": View.PLAX, "A4C": View.A4C}

Mask = npt.NDArray[np.bool_]
MaskFn = Callable[[Clip], Mask]


def preprocess(frame: npt.NDArray[np.uint8], mask: Mask | None, spec: ModelSpec) -> torch.Tensor:
    """One (rows, columns, 3) RGB frame → (1, 3, H, W) normalised tensor."""
    if mask is not None:
        frame = np.where(mask[..., None], frame, 0).astype(np.uint8)
    geometry = crop_window(
        frame.shape[0], frame.shape[1], spec.input_width, spec.input_height, ZOOM
    )
    resized = crop_and_scale(frame, geometry, cv2.INTER_CUBIC)
    return to_tensor(resized[None], spec)


def predict(model: LoadedModel, batch: torch.Tensor) -> npt.NDArray[np.float64]:
    """Class probabilities (N, classes)."""
    with torch.inference_mode():
        logits = model.run(batch)
        return np.asarray(torch.softmax(logits.float(), dim=1).cpu().numpy(), dtype=np.float64)


def decide(probabilities: npt.NDArray[np.float64], spec: ModelSpec) -> ViewDecision:
    index = int(np.argmax(probabilities))
    label = spec.labels[index] if spec.labels else str(index)
    confidence = float(probabilities[index])
    return ViewDecision(
        view=ROUTES.get(label, View.OTHER),
        decided_by=spec.name,
        confidence=confidence,
        reason=f"view classifier {spec.name} {spec.version}: {label} (p={confidence:.2f})",
        label=label,
    )


class ViewClassifier:
    """Callable for ai.views / ai.analyze; None when the weights are not installed.

    mask_fn gives the sector mask of a clip (default ai.sector.sector_mask); pass None to feed
    the frame unmasked (e.g. a frame that is already only the sector).
    """

    def __init__(self, store: ModelSource, mask_fn: MaskFn | None = sector_mask) -> None:
        self.store = store
        self.mask_fn = mask_fn

    def __call__(self, clip: Clip) -> ViewDecision | None:
        loaded = self.store.get(MODEL)
        if isinstance(loaded, NotInstalled) or len(clip) == 0:
            return None
        mask = self.mask_fn(clip) if self.mask_fn is not None else None
        batch = preprocess(clip.frames[0], mask, loaded.spec)
        decision = decide(predict(loaded, batch)[0], loaded.spec)
        logger.info(
            "view classified: %s (%s, p=%.2f)",
            decision.view,
            decision.label,
            decision.confidence,
            extra={"sop_instance_uid": clip.sop_instance_uid},
        )
        return decision
