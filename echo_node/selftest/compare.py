"""The self-test's verdict: every value the report reports, held against the phantom's truth.

The truth is the phantom's own (ai/phantom, each clip's JSON ``expected``: what a correct
measurement gives on the pixels drawn). A value is compared in the unit the report writes it
in (catalogue.in_sr_unit), as a magnitude (velocities are reported as speeds). A calculated
value (E/A, TR PG, LV mass, RWT, FS) is compared with the truth's own value where the phantom
gives one, else with its formula applied to the truth of its inputs.

Which values must be there: the classical Doppler values (TR Vmax, E, A, E/A, TR PG: no
weights needed, so a node that does not report them is broken), and every value a pipeline
measured on a clip whose truth knows it (a model that ran must have given a value the report
could use). A value the report withholds is a failure, with the report's sentence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from echo_node.results import catalogue
from echo_node.results.report import (
    AlgorithmKind,
    DerivedValue,
    Report,
    ReportedValue,
    calculate,
)

# Finding names of the values the classical Doppler engine gives without any weights.
CLASSICAL_DOPPLER = ("TR_Vmax", "MV_E", "MV_A", "MV_E_A", "TR_PG")


@dataclass(frozen=True)
class Tolerance:
    """How far a value may be from the truth: a share of it, or points of its own unit."""

    relative: float | None = None
    absolute: float | None = None

    def allows(self, reported: float, truth: float) -> bool:
        difference = abs(reported - truth)
        if self.absolute is not None:
            return difference <= self.absolute
        assert self.relative is not None
        return difference <= self.relative * abs(truth)

    def describe(self, unit: str) -> str:
        if self.absolute is not None:
            return f"±{self.absolute:g} {unit}"
        assert self.relative is not None
        return f"±{100 * self.relative:g} %"


_VELOCITY = Tolerance(relative=0.05)  # the classical engine's own test bound (test_doppler)
_LENGTH = Tolerance(relative=0.15)
TOLERANCES: Mapping[str, Tolerance] = {
    **{key: _VELOCITY for key, m in catalogue.MEASURED.items() if m.presentation.unit == "cm/s"},
    **{key: _LENGTH for key, m in catalogue.MEASURED.items() if m.presentation.unit == "cm"},
    "LVEF": Tolerance(absolute=10.0),
    "MV_E_A": Tolerance(relative=0.08),
    "TR_PG": Tolerance(relative=0.10),
    "AV_PG": Tolerance(relative=0.10),
    "LV_mass": Tolerance(relative=0.40),
    "RWT": Tolerance(relative=0.25),
    "FS": Tolerance(absolute=10.0),
}


@dataclass(frozen=True)
class Comparison:
    key: str  # the finding name, e.g. "TR_Vmax"
    label: str  # the report's short name, e.g. "TR Vmax"
    unit: str  # the report's (SR) unit
    truth: float
    reported: float | None  # None: not reported
    tolerance: str
    ok: bool
    why: str = ""  # for a value not reported: the report's sentence

    def describe(self) -> str:
        if self.reported is None:
            why = self.why or "no value"
            return f"{self.label}: not reported ({why}); truth {self.truth:.3g} {self.unit}"
        share = (self.reported - self.truth) / self.truth * 100 if self.truth else 0.0
        verdict = "within" if self.ok else "OUTSIDE"
        return (
            f"{self.label}: reported {self.reported:.3g} {self.unit}, truth {self.truth:.3g} "
            f"{self.unit} ({share:+.1f} %), {verdict} {self.tolerance}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "text": self.describe()}


@dataclass(frozen=True)
class Verdict:
    comparisons: tuple[Comparison, ...]
    notes: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return bool(self.comparisons) and all(c.ok for c in self.comparisons)

    @property
    def failures(self) -> tuple[Comparison, ...]:
        return tuple(c for c in self.comparisons if not c.ok)


Truths = Mapping[str, Mapping[str, Mapping[str, Any]]]  # SOP UID -> key -> {value, unit}


def compare(report: Report, truths: Truths, measured: Iterable[str]) -> Verdict:
    """``truths``: each clip's ``expected`` by SOP Instance UID; ``measured``: the finding
    names the pipelines gave (the values that must be reported when the truth knows them)."""
    required = set(CLASSICAL_DOPPLER) | {
        key for key in measured if key in catalogue.MEASURED and _truth_anywhere(truths, key)
    }
    required |= {
        key for key, derived in catalogue.DERIVED.items() if set(derived.inputs) <= required
    }
    comparisons: dict[str, Comparison] = {}
    notes: list[str] = []
    values: tuple[ReportedValue | DerivedValue, ...] = (*report.values, *report.derived)
    for value in values:
        truth = _truth(value, truths)
        if truth is None:
            notes.append(f"{value.label}: no ground truth in the phantom, not compared")
            continue
        tolerance = TOLERANCES.get(value.key, Tolerance(relative=0.15))
        reported = abs(value.value)
        comparisons[value.key] = Comparison(
            value.key,
            value.presentation.short,
            value.unit,
            truth,
            reported,
            tolerance.describe(value.unit),
            tolerance.allows(reported, truth),
        )
    for key in sorted(required - set(comparisons)):
        truth = _required_truth(key, truths)
        if truth is None:
            continue
        label, unit, _ = _presentation(key)
        why = next((w.sentence for w in report.withheld if w.key == key), "")
        tolerance = TOLERANCES.get(key, Tolerance(relative=0.15))
        comparisons[key] = Comparison(
            key, label, unit, truth, None, tolerance.describe(unit), False, why
        )
    if not any(v.algorithm.kind is AlgorithmKind.AI for v in report.values):
        notes.insert(
            0,
            "no AI model gave a value (model weights not installed?): only the classical "
            "Doppler values were compared",
        )
    ordered = sorted(comparisons.values(), key=lambda c: _order(c.key))
    return Verdict(tuple(ordered), tuple(notes))


def _truth(value: ReportedValue | DerivedValue, truths: Truths) -> float | None:
    clip = truths.get(value.source.sop_instance_uid, {})
    if value.key in clip:
        return _in_report_unit(value.key, clip[value.key], value.unit)
    if isinstance(value, DerivedValue):
        inputs = [_truth(item, truths) for item in value.inputs]
        if all(x is not None for x in inputs):
            return calculate(value.key, [x for x in inputs if x is not None])
    return None


def _required_truth(key: str, truths: Truths) -> float | None:
    """The truth of a value the report did not give, from whichever clip knows it."""
    _, unit, _ = _presentation(key)
    for clip in truths.values():
        if key in clip:
            return _in_report_unit(key, clip[key], unit)
    derived = catalogue.DERIVED.get(key)
    if derived is None:
        return None
    inputs = [_required_truth(name, truths) for name in derived.inputs]
    if any(x is None for x in inputs):
        return None
    return calculate(key, [x for x in inputs if x is not None])


def _in_report_unit(key: str, truth: Mapping[str, Any], unit: str) -> float:
    value = float(truth["value"])
    return abs(catalogue.in_sr_unit(key, value, str(truth["unit"]), unit))


def _truth_anywhere(truths: Truths, key: str) -> bool:
    return any(key in clip for clip in truths.values())


def _presentation(key: str) -> tuple[str, str, int]:
    """(short label, SR unit, catalogue order) of a measured or derived key."""
    names = [*catalogue.MEASURED, *catalogue.DERIVED]
    entry = catalogue.MEASURED.get(key) or catalogue.DERIVED.get(key)
    if entry is None:
        return key, "", len(names)
    return entry.presentation.short, entry.presentation.unit, names.index(key)


def _order(key: str) -> int:
    return _presentation(key)[2]
