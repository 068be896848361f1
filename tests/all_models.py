"""Every model a pipeline runs, installed with seeded random weights in its publisher's format.

A phantom study processed with this store runs every pipeline the node has (PLAX, A4C with its
classifiers, the EchoNet-Measurements 2D and Doppler models, the classical Doppler engine) at
small input sizes, so a test can look at a report that holds every kind of value the node
writes. The values are meaningless (random weights): tests check what reaches the report and
how it is written, never a number a random network computed.

Formats as the projects publish them: EchoNet-Dynamic `{"state_dict": {"module." + key}}` with
NumPy metadata, EchoNet-LVH keys prefixed `model.`, EchoNet-Measurements keys prefixed `m.`.
The view classifier is left out: the phantom's headers decide every view.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ai.models import ModelStore, default_registry
from ai.models.registry import Registry
from tests.test_models import random_state, save_checkpoint

# name -> (key prefix, wrapped in {"state_dict": ...}, smaller input for a shared CPU)
_MEASUREMENTS_2D = ("ivs", "lvid", "lvpw", "aorta", "aortic_root", "la", "rv_base")
_MEASUREMENTS_DOPPLER = ("avvmax", "trvmax", "mrvmax", "lvotvmax", "latevel", "medevel", "mvpeak")
INSTALLED: dict[str, tuple[str, bool, dict[str, int]]] = {
    "echonet-dynamic-segmentation": ("module.", True, {"input_height": 32, "input_width": 32}),
    "echonet-dynamic-ef": (
        "module.",
        True,
        {"input_height": 32, "input_width": 32, "frames": 4, "period": 2},
    ),
    "echonet-lvh-plax": ("model.", False, {"input_height": 48, "input_width": 64}),
    "echonet-lvh-amyloid": ("model.", False, {"input_height": 32, "input_width": 32, "frames": 8}),
    "echonet-lvh-hcm": ("model.", False, {"input_height": 32, "input_width": 32, "frames": 8}),
    **{
        f"echonet-measurements-{task}": ("m.", False, {"input_height": 48, "input_width": 64})
        for task in _MEASUREMENTS_2D
    },
    **{
        f"echonet-measurements-{task}": ("m.", False, {"input_height": 64, "input_width": 160})
        for task in _MEASUREMENTS_DOPPLER
    },
}


EF_PERCENT = 57.0  # what the EF network's head is built to answer; every other network is random


def _registry() -> Registry:
    registry = default_registry()
    for name, (_, _, smaller) in INSTALLED.items():
        registry = registry.replace(dataclasses.replace(registry.get(name), **smaller))  # type: ignore[arg-type]
    return registry


def write_all_models(folder: Path) -> None:
    """Checkpoints of every model in INSTALLED written into `folder` (2.8 GB: the networks are
    full size, only their inputs are small; tests share one folder, tests/conftest.py).

    The EF network's head is built to answer EF_PERCENT for any clip (its weights zero, its
    bias the value), so a test can follow a plausible AI value to the PACS.
    """
    folder.mkdir(parents=True, exist_ok=True)
    registry = _registry()
    for number, name in enumerate(sorted(INSTALLED)):
        prefix, wrapped, _ = INSTALLED[name]
        spec = registry.get(name)
        state = random_state(spec, number)
        if name == "echonet-dynamic-ef":
            state["fc.weight"].zero_()
            state["fc.bias"].fill_(EF_PERCENT)
        save_checkpoint(folder / spec.file, state, prefix, wrapped)


def all_models_store(folder: Path) -> ModelStore:
    """The store that loads what write_all_models wrote, each test with its own loaded copies."""
    return ModelStore(folder, _registry(), threads=2, batch_size=8)
