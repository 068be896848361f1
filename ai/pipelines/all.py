"""Every pipeline module, imported by name so that each registers itself with `@pipeline(view)`.

A module renamed or removed fails here, loudly, at import: a pipeline never silently stops
running. PIPELINE_MODULES' order is the order in which each view's pipelines run and are
reported (ai.pipelines.pipelines_for), whatever order the modules were imported in: doppler
(the classical engine, then the EchoNet-Measurements models), plax and a4c (neural), then
measurements_2d (EchoNet-Measurements linear models for plax and a4c, after the view's own
pipeline).
"""

from __future__ import annotations

# isort: off
from ai.pipelines import doppler
from ai.pipelines import doppler_neural
from ai.pipelines import plax
from ai.pipelines import a4c
from ai.pipelines import measurements_2d

# isort: on

PIPELINE_MODULES = (doppler, doppler_neural, plax, a4c, measurements_2d)
