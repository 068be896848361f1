"""The pipelines, one per view, found through a small registry (`@pipeline("plax")`).

A pipeline takes a decoded Clip, the model store and the results of the clip's pipelines that
ran before it (`earlier`, in order), and returns a PipelineResult; it never raises for a missing
model (status model_not_installed) and never invents a value. `earlier` lets a later pipeline
measure on the cardiac phases an earlier one found on the same clip (ai.pipelines.measurements_2d)
instead of finding them again; a pipeline run alone gets none and finds its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from ai.clip import Clip
from ai.findings import PipelineResult
from ai.model_source import ModelSource


class PipelineFn(Protocol):
    """models: the model store (ai.models.store.ModelStore), or None (every model not
    installed)."""

    __name__: str
    __module__: str

    def __call__(
        self, clip: Clip, models: ModelSource | None, *, earlier: Sequence[PipelineResult] = ()
    ) -> PipelineResult: ...


_REGISTRY: dict[str, list[PipelineFn]] = {}


def pipeline(view: str) -> Callable[[PipelineFn], PipelineFn]:
    def register(function: PipelineFn) -> PipelineFn:
        _REGISTRY.setdefault(view, []).append(function)
        return function

    return register


def pipelines_for(view: str) -> tuple[PipelineFn, ...]:
    """Every pipeline of a view, in the order they run: the order of ai.pipelines.all's
    modules, then of the functions in each. Every pipeline module is imported first, so the
    answer never depends on what the caller, or anything before it, imported."""
    from ai.pipelines.all import PIPELINE_MODULES  # registers every pipeline, once per process

    rank = {module.__name__: index for index, module in enumerate(PIPELINE_MODULES)}
    functions = _REGISTRY.get(view, [])
    # sorted() keeps the order of registration within a module.
    return tuple(sorted(functions, key=lambda function: rank.get(function.__module__, len(rank))))


def pipeline_name(function: PipelineFn) -> str:
    """The name a reprocess filter and a failed result use: the function name without run_ /
    _pipeline (run_plax → plax, run_a4c_amyloid → a4c_amyloid, doppler_pipeline → doppler)."""
    return function.__name__.removeprefix("run_").removesuffix("_pipeline")
