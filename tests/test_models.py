"""Model registry and checkpoint loader: the published formats load strictly, wrong ones fail.

Checkpoints are made here with seeded random weights in each format the EchoNet projects
publish (bare state dict, {"state_dict": ...} with NumPy metadata, prefixes module./m./model.).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from ai.clip import ArrayFrames, Clip, UltrasoundRegion
from ai.models import CheckpointError, ModelSpec, ModelStore, NotInstalled, default_registry
from ai.models.architectures import build
from ai.models.loader import load_model, sha256_file, strip_prefixes
from ai.models.registry import RegistryError, parse_registry

pytestmark = pytest.mark.model  # every test builds and loads the networks

torch.set_num_threads(2)


def small_spec(name: str, **changes: object) -> ModelSpec:
    """The registry entry with smaller inputs so tests run in seconds on a shared CPU."""
    return dataclasses.replace(default_registry().get(name), **changes)  # type: ignore[arg-type]


def random_model(spec: ModelSpec, seed: int = 0) -> torch.nn.Module:
    """The architecture with seeded random weights, skipping torchvision's slow initialisers."""
    with torch.device("meta"):
        model = build(spec)
    model = model.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if name.endswith("running_var"):
                tensor.fill_(1.0)
            elif name.endswith(("running_mean", "num_batches_tracked")):
                tensor.zero_()
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.05)
    return model.eval()


def random_state(spec: ModelSpec, seed: int = 0) -> dict[str, torch.Tensor]:
    return random_model(spec, seed).state_dict()


def save_checkpoint(
    path: Path,
    state: dict[str, torch.Tensor],
    prefix: str = "",
    wrapped: bool = False,
) -> Path:
    keyed = {prefix + key: value for key, value in state.items()}
    content: object = keyed
    if wrapped:  # EchoNet-Dynamic's layout: metadata next to the weights, r2 a NumPy float
        content = {"epoch": 44, "state_dict": keyed, "r2": np.float64(0.81), "frames": 32}
    torch.save(content, path)
    return path


def store_with(tmp_path: Path, *specs: ModelSpec) -> ModelStore:
    registry = default_registry()
    for spec in specs:
        registry = registry.replace(spec)
    return ModelStore(tmp_path, registry, threads=2)


def array_clip(frames: np.ndarray, regions: tuple[UltrasoundRegion, ...] = ()) -> Clip:
    return Clip(
        frames=ArrayFrames(frames),
        rows=frames.shape[1],
        columns=frames.shape[2],
        regions=regions,
        frame_time_ms=20.0,
        sop_instance_uid="1.2.3.4",
    )


def test_default_registry_lists_every_model_with_the_issue_facts() -> None:
    registry = default_registry()
    seg = registry.get("echonet-dynamic-segmentation")
    assert (seg.architecture, seg.output_channels, seg.input_size) == (
        "deeplabv3_resnet50",
        1,
        (112, 112),
    )
    ef = registry.get("echonet-dynamic-ef")
    assert (ef.architecture, ef.output_channels, ef.frames, ef.period) == ("r2plus1d_18", 1, 32, 2)
    plax = registry.get("echonet-lvh-plax")
    assert (plax.output_channels, plax.input_size, plax.colour_order, plax.scale) == (
        4,
        (480, 640),
        "BGR",
        255.0,
    )
    amyloid = registry.get("echonet-lvh-amyloid")
    assert (amyloid.architecture, amyloid.frames, amyloid.optional) == ("r3d_18", 96, True)
    view = registry.get("echoprime-view")
    assert view.labels[2] == "A4C" and view.labels[7] == "Parasternal_Long"
    assert view.mean == (29.110628, 28.076836, 29.096405)
    assert view.std == (47.989223, 46.456997, 47.20083)
    for spec in registry:
        assert spec.file and spec.licence


# A registry entry with one of everything; tests swap a line for the fault they look at.
ENTRY = """
[[model]]
name = "x"
version = "1"
task = "t"
architecture = "r3d_18"
output_channels = 1
input_height = 1
input_width = 1
frames = 1
period = 1
colour_order = "RGB"
scale = 1.0
mean = [0.0, 0.0, 0.0]
std = [1.0, 1.0, 1.0]
file = "x.pt"
sha256 = ""
source_url = ""
licence = "l"
"""


def test_registry_rejects_a_bad_entry_naming_it() -> None:
    text = ENTRY.replace('"r3d_18"', '"resnet9000"')
    assert parse_registry(ENTRY).get("x").architecture == "r3d_18"
    with pytest.raises(RegistryError, match=r"'x'.*resnet9000"):
        parse_registry(text)
    with pytest.raises(RegistryError, match="missing key 'file'"):
        parse_registry(text.replace('file = "x.pt"', ""))


def test_prefixes_are_stripped_only_at_the_start() -> None:
    assert strip_prefixes("module.stem.0.weight") == "stem.0.weight"
    assert strip_prefixes("m.backbone.layer1.0.conv1.weight") == "backbone.layer1.0.conv1.weight"
    assert strip_prefixes("model.classifier.4.bias") == "classifier.4.bias"
    assert strip_prefixes("module.model.fc.bias") == "fc.bias"
    # `stem.` contains "m." inside: a replace() would corrupt it.
    assert strip_prefixes("layer1.0.conv1.0.1.stem.m.x") == "layer1.0.conv1.0.1.stem.m.x"


@pytest.mark.parametrize(
    ("name", "prefix", "wrapped"),
    [
        ("echonet-dynamic-segmentation", "module.", True),
        ("echonet-lvh-amyloid", "", False),
        ("echonet-lvh-amyloid", "m.", False),
        ("echonet-lvh-amyloid", "model.", False),
    ],
    ids=["dynamic-state_dict+module", "bare", "lightning-m", "lvh-model"],
)
def test_published_formats_load_strictly(
    tmp_path: Path, name: str, prefix: str, wrapped: bool
) -> None:
    spec = default_registry().get(name)
    state = random_state(spec, seed=7)
    path = save_checkpoint(tmp_path / spec.file, state, prefix, wrapped)
    loaded = load_model(path, spec)
    for key, value in loaded.module.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert loaded.sha256 == sha256_file(path)
    assert loaded.provenance.name == spec.name and loaded.provenance.device == "cpu"
    assert not loaded.module.training


def test_loaded_model_runs_deterministically_for_a_seed(tmp_path: Path) -> None:
    spec = default_registry().get("echonet-lvh-amyloid")
    clip = torch.from_numpy(np.random.default_rng(0).random((1, 3, 4, 32, 32))).float()
    path = save_checkpoint(tmp_path / "a.pt", random_state(spec, seed=3), "model.")
    outputs = []
    for _ in range(2):
        with torch.inference_mode():
            outputs.append(load_model(path, spec).module(clip))
    assert outputs[0].shape == (1, 1)
    assert torch.equal(outputs[0], outputs[1])
    other = save_checkpoint(tmp_path / "b.pt", random_state(spec, seed=4), "model.")
    with torch.inference_mode():
        assert not torch.equal(outputs[0], load_model(other, spec).module(clip))


def test_wrong_head_is_rejected_with_the_keys_and_shapes(tmp_path: Path) -> None:
    spec = small_spec("echonet-dynamic-ef")
    two_outputs = dataclasses.replace(spec, output_channels=2)
    path = save_checkpoint(tmp_path / spec.file, random_state(two_outputs), "module.", True)
    with pytest.raises(CheckpointError) as caught:
        load_model(path, spec)
    message = str(caught.value)
    assert "echonet-dynamic-ef" in message
    assert "fc.weight is (2, 512) in the file, (1, 512) in r2plus1d_18" in message


def test_missing_and_unexpected_keys_are_named(tmp_path: Path) -> None:
    spec = default_registry().get("echonet-lvh-amyloid")
    state = random_state(spec)
    state.pop("fc.bias")
    state["head.extra"] = torch.zeros(1)
    path = save_checkpoint(tmp_path / spec.file, state, "model.")
    with pytest.raises(
        CheckpointError, match=r"missing keys: fc\.bias.*unexpected keys: head\.extra"
    ):
        load_model(path, spec)


def test_not_a_checkpoint_and_unsafe_pickles_are_refused(tmp_path: Path) -> None:
    spec = default_registry().get("echonet-lvh-amyloid")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a pickle at all")
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint junk\.pt"):
        load_model(junk, spec)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"state_dict": {"fc.bias": torch.zeros(1)}, "hook": Path("x")}, unsafe)
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint unsafe\.pt: .*refused"):
        load_model(unsafe, spec)


def test_sha256_in_the_registry_is_enforced(tmp_path: Path) -> None:
    spec = default_registry().get("echonet-lvh-amyloid")
    path = save_checkpoint(tmp_path / spec.file, random_state(spec))
    digest = sha256_file(path)
    assert load_model(path, dataclasses.replace(spec, sha256=digest)).sha256 == digest
    with pytest.raises(CheckpointError, match="differs from the registry"):
        load_model(path, dataclasses.replace(spec, sha256="0" * 64))


def test_store_answers_not_installed_with_the_command(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    answer = store.get("echonet-lvh-plax")
    assert isinstance(answer, NotInstalled)
    assert answer.command == "echo-node models import PATH --name echonet-lvh-plax"
    assert "hypertrophy_model.pt" in answer.message and answer.command in answer.message


def test_store_loads_once_and_reuses(tmp_path: Path) -> None:
    spec = default_registry().get("echonet-lvh-amyloid")
    save_checkpoint(tmp_path / spec.file, random_state(spec))
    store = ModelStore(tmp_path, threads=2)
    first = store.get(spec.name)
    assert not isinstance(first, NotInstalled)
    assert store.get(spec.name) is first


def test_image_models_run_channels_last_with_the_same_outputs(tmp_path: Path) -> None:
    spec = default_registry().get("echonet-dynamic-segmentation")
    reference = random_model(spec, seed=5)
    path = save_checkpoint(tmp_path / spec.file, reference.state_dict(), "module.", True)
    loaded = load_model(path, spec)
    frames = torch.from_numpy(np.random.default_rng(2).normal(size=(2, 3, 48, 48))).float()
    batch = loaded.input(frames)
    assert batch.is_contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        np.testing.assert_allclose(
            loaded.module(batch)["out"].numpy(),
            reference(frames)["out"].numpy(),
            rtol=1e-4,
            atol=1e-5,
        )


def test_published_digests_say_whether_a_checkpoint_is_the_publishers(tmp_path: Path) -> None:
    """The EchoNet-Measurements weights' Git LFS oids are their published sha256; a file that
    matches none still loads and its provenance says it is not the published checkpoint."""
    registry = default_registry()
    listed = {spec.name: spec.published_sha256 for spec in registry if spec.published_sha256}
    assert len(listed) == 16 and all(n.startswith("echonet-measurements-") for n in listed)
    assert listed["echonet-measurements-trvmax"] == (
        "76658959a8fefcc6f6b47ac0b513222eed505aeda8da26e853780d390e7b36e3",
    )
    spec = small_spec("echonet-lvh-amyloid")
    path = save_checkpoint(tmp_path / spec.file, random_state(spec))
    digest = sha256_file(path)
    assert load_model(path, spec).provenance.published is None  # nothing published to compare
    other = dataclasses.replace(spec, published_sha256=("0" * 64,))
    assert load_model(path, other).provenance.published is False
    mine = dataclasses.replace(spec, published_sha256=("0" * 64, digest))
    assert load_model(path, mine).provenance.published is True
    text = ENTRY.replace('sha256 = ""', 'sha256 = ""\npublished_sha256 = ["not a digest"]')
    with pytest.raises(RegistryError, match="'x': published_sha256"):
        parse_registry(text)
