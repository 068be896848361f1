"""Every registry model installed with seeded random weights in its publisher's format, the A4C
segmentation network's head fitted to the phantom.

No weights ship and none can be fetched here, so the benchmarks time the networks the node
would run with every model installed: the same architectures, heads and input sizes, random
weights. Each file is written as its project publishes it (EchoNet-Dynamic: `module.` keys in
{"state_dict": ...} with NumPy metadata; EchoNet-LVH: `model.`; EchoNet-Measurements: `m.`;
EchoPrime: a bare state dict; benchmarks/checkpoints.py), so the loader's real path reads
them. Files are kept between runs (the same seed writes the same weights); about 3.5 GB for all
22.

Random weights change what runs, not only the values: the segmentation network then sees the
same LV in every frame, the A4C pipeline finds no beat, and EchoNet-Dynamic's EF model runs on
every clip start instead of the beats' clips alone (19 clips for 1 on the full-size 4-clip
study). So by default the segmentation network's head is fitted to the phantom
(benchmarks/fitted_segmentation.py: backbone still random, its output follows the phantom's
LV), written under its own file name (FITTED_FILE, with a record of the fit beside it) so that a
random file cached under the registry's name is never taken for it; install_all returns the
registry that points the store at whichever file was asked for. `fitted_segmentation=False`
installs the random one, as before.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from ai.models.registry import Registry, default_registry
from ai.pipelines.a4c import SEGMENTATION_MODEL
from benchmarks.checkpoints import write_published
from benchmarks.fitted_segmentation import FITTED_FILE, install_fitted
from tests.test_models import random_state

logger = logging.getLogger(__name__)


def benchmark_registry(fitted_segmentation: bool = True) -> Registry:
    """The registry, its segmentation entry pointing at the fitted file when that is asked for."""
    registry = default_registry()
    if not fitted_segmentation:
        return registry
    spec = registry.get(SEGMENTATION_MODEL)
    return registry.replace(dataclasses.replace(spec, file=FITTED_FILE))


def install_all(model_dir: Path, seed: int = 0, fitted_segmentation: bool = True) -> Registry:
    """Write a checkpoint for every registry model missing from model_dir (the segmentation
    network's fitted one unless fitted_segmentation is False); the registry to load them by."""
    model_dir.mkdir(parents=True, exist_ok=True)
    for index, spec in enumerate(default_registry()):
        if fitted_segmentation and spec.name == SEGMENTATION_MODEL:
            install_fitted(model_dir, spec, seed + index)
            continue
        path = model_dir / spec.file
        if not path.is_file():
            write_published(path, spec, random_state(spec, seed + index))
            logger.info("wrote random-weight %s", spec.name)
    return benchmark_registry(fitted_segmentation)
