"""Import every pipeline module so that each registers itself with `@pipeline(view)`.

The pipelines: doppler (classical, ai.pipelines.doppler, then the EchoNet-Measurements models,
ai.pipelines.doppler_neural), plax and a4c (neural, ai.pipelines.plax / ai.pipelines.a4c),
measurements_2d (EchoNet-Measurements linear models for plax and a4c, registered after the
view's own pipeline). A module that is not there (yet) is skipped, so the others still run;
`registered()` says which were found.
"""

from __future__ import annotations

import importlib
import importlib.util

PIPELINE_MODULES = ("doppler", "doppler_neural", "plax", "a4c", "measurements_2d")


def registered() -> tuple[str, ...]:
    """Import the pipeline modules that exist; the names of those imported."""
    found = []
    for name in PIPELINE_MODULES:
        module = f"ai.pipelines.{name}"
        if importlib.util.find_spec(module) is None:
            continue
        importlib.import_module(module)  # cached after the first time: registers once
        found.append(name)
    return tuple(found)


registered()
