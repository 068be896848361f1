"""Checkpoints written as each model's publisher writes them, so the node's loader reads them on
its real path: EchoNet-Dynamic `module.` keys in {"state_dict": ...} with NumPy metadata,
EchoNet-LVH `model.`, EchoNet-Measurements `m.`, EchoPrime a bare state dict."""

from __future__ import annotations

from pathlib import Path

import torch

from ai.models.registry import ModelSpec
from tests.test_models import save_checkpoint

PUBLISHED_FORMATS = {  # name prefix → (key prefix, wrapped in {"state_dict": ...})
    "echonet-dynamic": ("module.", True),
    "echonet-lvh": ("model.", False),
    "echonet-measurements": ("m.", False),
    "echoprime": ("", False),
}


def published_format(spec: ModelSpec) -> tuple[str, bool]:
    for start, layout in PUBLISHED_FORMATS.items():
        if spec.name.startswith(start):
            return layout
    raise KeyError(f"no published format known for {spec.name}")


def write_published(path: Path, spec: ModelSpec, state: dict[str, torch.Tensor]) -> None:
    """The state in spec's published layout at path, renamed into place (a reader never finds
    half a file)."""
    partial = path.with_name(f".{path.name}.partial")
    prefix, wrapped = published_format(spec)
    save_checkpoint(partial, state, prefix, wrapped)
    partial.replace(path)
