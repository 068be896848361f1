"""The values ai/ hands back: plain dataclasses, usable from a notebook or the node.

Every finding carries where it came from (frames, points in source pixels) and what made it
(model name, version, sha256, or "classical"), so a result can always be explained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class View(StrEnum):
    PLAX = "plax"
    A4C = "a4c"
    DOPPLER = "doppler"
    MMODE = "mmode"
    OTHER = "other"  # a known view with no pipeline here (e.g. A2C from the classifier)
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ViewDecision:
    view: View
    decided_by: str  # the rule or model, e.g. "region:spectral", "ViewCodeSequence", "echoprime"
    confidence: float
    reason: str = ""
    label: str | None = None  # the classifier's own class name when it has one (e.g. "A2C")
    doppler_mode: str | None = None  # "PW" or "CW" for spectral clips


@dataclass(frozen=True)
class Provenance:
    """What produced a value: a model checkpoint or the classical engine."""

    name: str
    version: str
    sha256: str | None = None  # None for the classical engine
    device: str = "cpu"
    # Whether the checkpoint's sha256 is one its publisher released (config/models.toml
    # published_sha256): True / False; None when no published digest is known (or classical).
    published: bool | None = None
    # The runtime that ran the network on that device: "torch" (the reference) or "openvino"
    # (the same weights converted, within 1e-4 of torch; ai.models.backends).
    backend: str = "torch"


CLASSICAL = "classical"


class Aggregation(StrEnum):
    """How a value measured on several beats (or frames) was combined into the one reported."""

    SINGLE = "single"  # one beat or frame: nothing combined
    MAX = "max"  # the highest of the beats (peak velocities of jets: TR, AV, MR)
    MEAN = "mean"  # the mean of the beats (E, A, e', LVOT Vmax; EF over beats)
    MEDIAN = "median"  # the median of the beats (the EchoNet 2D linear measurements)
    RATIO = "ratio"  # a ratio of two values, each combined over the beats (E/A = mean E / mean A)


@dataclass(frozen=True)
class Beat:
    """One beat (or frame) of a value combined over several: its own value and calipers."""

    value: float  # in the finding's unit, signed as the finding's value
    frame: int  # zero-based source frame it was measured on
    points: tuple[tuple[float, float], ...] = ()  # (x, y) in source pixels, on that frame


class PipelineStatus(StrEnum):
    OK = "ok"
    MODEL_NOT_INSTALLED = "model_not_installed"
    NOT_APPLICABLE = "not_applicable"  # e.g. a clip too short for the model
    FAILED = "failed"


@dataclass(frozen=True)
class Finding:
    name: str  # e.g. "IVSd", "LVIDd", "LVPWd", "LVEF", "TR_Vmax", "MV_E", "MV_A", "MV_E_A"
    value: float
    unit: str  # UCUM: "cm", "%", "cm/s", "m/s", "1"
    provenance: Provenance
    frames: tuple[int, ...] = ()  # zero-based source frame indices
    points: tuple[tuple[float, float], ...] = ()  # (x, y) in source pixels
    cardiac_phase: str | None = None  # "diastole" / "systole" where it applies
    flags: tuple[str, ...] = ()  # quality flags, e.g. "outside_training_layout"
    spread: tuple[float, float] | None = None  # (min, max) over beats where several
    # Each beat's value, frame and points where the value combines several, and how they were
    # combined (None: the pipeline does not say; the report then infers it, see
    # echo_node/results/catalogue.py).
    beats: tuple[Beat, ...] = ()
    aggregation: Aggregation | None = None


@dataclass(frozen=True)
class PipelineResult:
    pipeline: str  # "plax", "a4c", "doppler"
    status: PipelineStatus
    findings: tuple[Finding, ...] = ()
    message: str = ""  # why it did not run, with the command that fixes it when there is one
    series: dict[str, tuple[float, ...]] = field(default_factory=dict)  # per-frame curves


@dataclass(frozen=True)
class ClipResult:
    sop_instance_uid: str | None
    view: ViewDecision
    pipelines: tuple[PipelineResult, ...] = ()
    frame_count: int = 0
    frame_time_ms: float | None = None
    message: str = ""  # why no pipeline ran (unknown view, a view without a pipeline here)
    decoder: str = ""  # what decoded the pixels the pipelines saw (ai.clip.Clip.decoder)
