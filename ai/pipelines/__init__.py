"""The pipelines, one per view, found through a small registry (`@pipeline("plax")`).

A pipeline takes a decoded Clip and the model store and returns a PipelineResult; it never
raises for a missing model (status model_not_installed) and never invents a value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ai.clip import Clip
from ai.findings import PipelineResult

# models: the model store (ai.models) or None; typed loosely so the registry stays import-light.
PipelineFn = Callable[[Clip, Any], PipelineResult]

_REGISTRY: dict[str, list[PipelineFn]] = {}


def pipeline(view: str) -> Callable[[PipelineFn], PipelineFn]:
    def register(function: PipelineFn) -> PipelineFn:
        _REGISTRY.setdefault(view, []).append(function)
        return function

    return register


def pipelines_for(view: str) -> tuple[PipelineFn, ...]:
    """Every pipeline registered for a view (importing ai.pipelines.all registers them)."""
    return tuple(_REGISTRY.get(view, ()))


def pipeline_name(function: PipelineFn) -> str:
    """The name a reprocess filter and a failed result use: the function name without run_ /
    _pipeline (run_plax → plax, run_a4c_amyloid → a4c_amyloid, doppler_pipeline → doppler)."""
    return function.__name__.removeprefix("run_").removesuffix("_pipeline")
