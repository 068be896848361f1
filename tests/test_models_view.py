"""EchoPrime view classifier: preprocessing, routing of its classes, None without weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ai.findings import View
from ai.models import ModelStore
from ai.models.loader import LoadedModel
from ai.models.view_classifier import MODEL, ViewClassifier, decide, preprocess
from tests.test_models import array_clip, random_model, small_spec, store_with

torch.set_num_threads(2)


def test_first_frame_is_masked_cropped_zoomed_and_normalised() -> None:
    spec = small_spec(MODEL)
    frame = np.full((100, 200, 3), 200, np.uint8)
    mask = np.zeros((100, 200), bool)
    mask[:, 100:] = True  # right half is "sector"
    tensor = preprocess(frame, mask, spec)
    assert tensor.shape == (1, 3, 224, 224)
    mean, std = np.array(spec.mean), np.array(spec.std)
    # Square crop of 200 columns → 50..149, 10 % trimmed → 60..139: the mask edge is the middle.
    np.testing.assert_allclose(tensor[0, :, 112, 20].numpy(), -mean / std, rtol=1e-5)
    np.testing.assert_allclose(tensor[0, :, 112, 200].numpy(), (200 - mean) / std, rtol=1e-5)
    unmasked = preprocess(frame, None, spec)
    np.testing.assert_allclose(unmasked[0, :, 112, 20].numpy(), (200 - mean) / std, rtol=1e-5)


@pytest.mark.parametrize(
    ("label", "view"),
    [("Parasternal_Long", View.PLAX), ("A4C", View.A4C), ("A2C", View.OTHER), ("SSN", View.OTHER)],
)
def test_classes_route_to_views(label: str, view: View) -> None:
    spec = small_spec(MODEL)
    probabilities = np.full(11, 0.02)
    probabilities[spec.labels.index(label)] = 0.8
    decision = decide(probabilities, spec)
    assert (decision.view, decision.label, decision.decided_by) == (view, label, MODEL)
    assert decision.confidence == pytest.approx(0.8)


@pytest.mark.model
def test_installed_classifier_decides_and_missing_weights_give_none(tmp_path: Path) -> None:
    clip = array_clip(np.random.default_rng(1).integers(0, 255, (2, 60, 80, 3), dtype=np.uint8))
    assert ViewClassifier(ModelStore(tmp_path / "empty")).__call__(clip) is None
    spec = small_spec(MODEL, input_height=64, input_width=64)
    model = random_model(spec, seed=0)  # then a head that always answers Parasternal_Long
    head = model.classifier[2]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-5.0)
        head.bias[spec.labels.index("Parasternal_Long")] = 5.0
    store = store_with(tmp_path, spec)
    store.add(LoadedModel(spec, model, "0" * 64, torch.device("cpu")))
    decision = ViewClassifier(store)(clip)
    assert decision is not None
    assert (decision.view, decision.label) == (View.PLAX, "Parasternal_Long")
    assert decision.confidence > 0.99
