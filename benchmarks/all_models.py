"""Every registry model installed with seeded random weights in its publisher's format.

No weights ship and none can be fetched here, so the benchmarks time the networks the node
would run with every model installed: the same architectures, heads and input sizes, random
weights. Each file is written as its project publishes it (EchoNet-Dynamic: `module.` keys in
{"state_dict": ...} with NumPy metadata; EchoNet-LVH: `model.`; EchoNet-Measurements: `m.`;
EchoPrime: a bare state dict), so the loader's real path reads them. Files are kept between
runs (the same seed writes the same weights); about 3.5 GB for all 22.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ai.models.registry import ModelSpec, default_registry
from tests.test_models import random_state, save_checkpoint

logger = logging.getLogger(__name__)

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


def install_all(model_dir: Path, seed: int = 0) -> list[str]:
    """Write a checkpoint for every registry model missing from model_dir; the names."""
    model_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for index, spec in enumerate(default_registry()):
        path = model_dir / spec.file
        if not path.is_file():
            prefix, wrapped = published_format(spec)
            partial = path.with_name(f".{path.name}.partial")
            save_checkpoint(partial, random_state(spec, seed + index), prefix, wrapped)
            partial.replace(path)
            logger.info("wrote random-weight %s", spec.name)
        names.append(spec.name)
    return names
