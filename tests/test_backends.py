"""The OpenVINO backend runs the same networks as torch, within 1e-4 of their output range.

Checkpoints are made as in tests/test_models.py (seeded random weights in the published
formats), with smaller inputs so that conversion takes seconds. The comparison is of raw
network outputs on the same input, so it holds whatever the random weights make of the input.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ai.models import backends
from ai.models.backends import TOLERANCE, relative_difference
from ai.models.loader import LoadedModel
from ai.models.registry import default_registry
from ai.models.store import ModelStore
from tests.test_models import random_state, save_checkpoint, small_spec

pytestmark = pytest.mark.model  # every test converts or runs the networks

# (registry name, smaller input, checkpoint prefix): one of each architecture and head.
NETWORKS = [
    ("echonet-lvh-plax", {"input_height": 48, "input_width": 64}, "model."),
    ("echonet-measurements-mvpeak", {"input_height": 40, "input_width": 96}, "m."),
    ("echonet-dynamic-segmentation", {"input_height": 32, "input_width": 32}, "module."),
    ("echonet-dynamic-ef", {"frames": 4, "input_height": 32, "input_width": 32}, "module."),
    ("echonet-lvh-amyloid", {"frames": 4, "input_height": 32, "input_width": 32}, "model."),
    ("echoprime-view", {"input_height": 64, "input_width": 64}, ""),
]


def installed_store(tmp_path: Path, name: str, changes: dict[str, int], prefix: str) -> ModelStore:
    spec = small_spec(name, **changes)
    save_checkpoint(tmp_path / spec.file, random_state(spec, seed=3), prefix)
    registry = default_registry().replace(spec)
    return ModelStore(tmp_path, registry, threads=2, backend=backends.OPENVINO)


def on_both(loaded: LoadedModel, reference_model: LoadedModel, batch: torch.Tensor) -> float:
    """Relative difference of the converted network from torch's on one batch."""
    with torch.inference_mode():
        reference = reference_model.run(batch)
        converted = loaded.run(batch)
    assert converted.shape == reference.shape
    return relative_difference(reference.numpy(), converted.numpy())


@pytest.mark.parametrize(("name", "changes", "prefix"), NETWORKS, ids=[n[0] for n in NETWORKS])
def test_every_architecture_matches_torch_within_the_tolerance(
    tmp_path: Path, name: str, changes: dict[str, int], prefix: str
) -> None:
    store = installed_store(tmp_path, name, changes, prefix)
    loaded = store.get(name)
    assert isinstance(loaded, LoadedModel)
    assert loaded.backend == "openvino" and loaded.provenance.backend == "openvino"
    torch_store = ModelStore(tmp_path, store.registry, threads=2, backend=backends.TORCH)
    reference = torch_store.get(name)
    assert isinstance(reference, LoadedModel) and reference.backend == "torch"
    assert reference.provenance.backend == "torch"
    spec = loaded.spec
    generator = torch.Generator().manual_seed(11)
    if spec.architecture in ("r2plus1d_18", "r3d_18"):
        shapes = [(2, 3, spec.frames, spec.input_height, spec.input_width)]
    else:
        shapes = [(3, 3, spec.input_height, spec.input_width)]
    if spec.architecture == backends.SEGMENTATION:  # scanned at other sizes (half size)
        shapes.append((2, 3, spec.input_height // 2, spec.input_width // 2))
    for shape in shapes:
        batch = torch.randn(shape, generator=generator)
        assert on_both(loaded, reference, batch) <= TOLERANCE, shape


def test_the_conversion_is_cached_by_checkpoint_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, changes, prefix = NETWORKS[2]
    first = installed_store(tmp_path, name, changes, prefix).get(name)
    assert isinstance(first, LoadedModel) and first.backend == "openvino"
    cached = backends.cache_path(tmp_path, first.spec, first.sha256)
    record = json.loads(cached.with_suffix(".json").read_text())
    assert record["relative_difference"] <= TOLERANCE and record["torch"] == torch.__version__

    def no_export(*_: object) -> None:
        raise AssertionError("converted again although the cache holds this checkpoint")

    monkeypatch.setattr(backends, "export_onnx", no_export)
    again = installed_store(tmp_path, name, changes, prefix).get(name)
    assert isinstance(again, LoadedModel) and again.backend == "openvino"
    batch = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        assert torch.equal(first.run(batch), again.run(batch))


def test_a_conversion_outside_the_tolerance_leaves_the_model_on_torch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    name, changes, prefix = NETWORKS[2]
    store = installed_store(tmp_path, name, changes, prefix)
    first = store.get(name)
    assert isinstance(first, LoadedModel)
    record_path = backends.cache_path(tmp_path, first.spec, first.sha256).with_suffix(".json")
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({**record, "relative_difference": 0.01}))
    loaded = installed_store(tmp_path, name, changes, prefix).get(name)
    assert isinstance(loaded, LoadedModel)
    assert loaded.backend == "torch" and loaded.runner is None
    assert loaded.provenance.backend == "torch"
    assert "runs on torch" in caplog.text and "0.01 of its range" in caplog.text


def test_a_failed_export_leaves_the_model_on_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("exporter cannot trace this network")

    monkeypatch.setattr(backends, "export_onnx", broken)
    name, changes, prefix = NETWORKS[2]
    loaded = installed_store(tmp_path, name, changes, prefix).get(name)
    assert isinstance(loaded, LoadedModel) and loaded.backend == "torch"
    assert "exporter cannot trace this network" in caplog.text


def test_auto_takes_openvino_on_the_cpu_and_torch_elsewhere() -> None:
    assert backends.resolve("auto", torch.device("cpu")) == "openvino"
    assert backends.resolve("auto", torch.device("cuda")) == "torch"
    assert backends.resolve("torch", torch.device("cpu")) == "torch"
    with pytest.raises(ValueError, match="runs on the CPU"):
        backends.resolve("openvino", torch.device("cuda"))
    with pytest.raises(ValueError, match="must be one of"):
        backends.resolve("tensorrt", torch.device("cpu"))
