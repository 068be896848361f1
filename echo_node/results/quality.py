"""What each quality flag of a finding (ai/findings.py `Finding.flags`) does to the value.

Three outcomes, decided here once for every result object (docs/REPORTING.md has the table):

- WITHHOLD: the value is not reported. No NUM, no overlay label; the report says in one
  sentence what was not reported and why ("LVEF not reported: outside physiological limits").
  A value the node cannot stand behind: one no adult heart produces, or one whose caliper lies
  where the image has no calibrated anatomy (outside the sector, the calibrated region or the
  Doppler spectrum), or whose wave cannot be told apart (A and E/A when E and A are fused).
- QUALIFY: the value is reported, with a plain sentence attached to the value itself (in the
  SR a Comment on the NUM; on an overlay a mark on its label): it was measured, but with a
  caveat a reader should weigh (the flow was recognised by its shape; the cardiac phase came
  from a clip shorter than two beats; the AI model ran outside its training conditions).
- RECORD: how the value was made, not a doubt about it (beats found from the ECG; the clip
  was cropped to the model's aspect ratio). Kept in `echo-node jobs show`, not in the report.

A flag not in this table withholds the value ("a quality check did not pass") and is logged:
a new flag must be decided on before its values reach a reader.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

logger = logging.getLogger(__name__)


class Action(StrEnum):
    WITHHOLD = "withhold"
    QUALIFY = "qualify"
    RECORD = "record"


@dataclass(frozen=True)
class Rule:
    action: Action
    # WITHHOLD: why, completing "<label> not reported: ..."; QUALIFY: the sentence shown with
    # the value; RECORD: what the flag says, for the operator.
    words: str
    # The findings the rule applies to; None: every finding. A flag with several rules uses
    # the first whose names include the finding.
    names: frozenset[str] | None = None


def _one(action: Action, words: str) -> tuple[Rule, ...]:
    return (Rule(action, words),)


W, Q, R = Action.WITHHOLD, Action.QUALIFY, Action.RECORD

RULES: Mapping[str, tuple[Rule, ...]] = MappingProxyType(
    {
        # ai/plausibility.py: no adult heart gives the value.
        "outside_physiological_range": _one(W, "outside physiological limits"),
        # The caliper is not on calibrated anatomy: the number has no physical meaning.
        "point_outside_region": _one(W, "the measured point lies outside the Doppler spectrum"),
        "points_outside_region": _one(
            W, "the caliper lies outside the calibrated part of the image"
        ),
        "points_outside_sector": _one(W, "the caliper lies outside the ultrasound sector"),
        # E and A fused (fast heart rate): the A peak rides on the E tail and reads high, so A
        # and E/A are not reported (ASE 2016 diastolic function); E itself is still measured.
        "EA_fused": (
            Rule(W, "E and A waves are fused", frozenset({"MV_A", "MV_E_A"})),
            Rule(Q, "E and A waves are fused."),
        ),
        # Measured, with a caveat the reader weighs.
        "flow_identified_by_shape": _one(
            Q, "Flow identified by its Doppler pattern; the clip does not name it."
        ),
        "partial_beats": _one(Q, "Measured on incomplete cardiac cycles."),
        "EA_order_from_position": _one(Q, "E and A told apart by their order in the beat."),
        "phase_from_extreme_frame": _one(
            Q,
            "Clip shorter than two beats: end-diastole/end-systole taken at the largest/"
            "smallest dimension.",
        ),
        "no_beats_found": _one(
            Q, "No cardiac cycle found: measured at the frame where the dimension is extreme."
        ),
        "bad_angle": _one(Q, "Caliper oblique to the ventricle's long axis."),
        "short_clip_padded": _one(Q, "Clip shorter than the AI model's input window."),
        "outside_training_layout": _one(
            Q, "Image layout differs from the AI model's training images (resampled)."
        ),
        "normalisation_stand_in": _one(
            Q,
            "AI model input normalised with approximate statistics (its training statistics "
            "are not published).",
        ),
        # How the value was made.
        "beats_from_ecg": _one(R, "beats delimited by the ECG's R waves"),
        "beats_from_envelope_gaps": _one(R, "beats delimited by gaps in the Doppler envelope"),
        "no_time_calibration": _one(R, "no time calibration: a typical sweep speed was assumed"),
        "averaged_over_beats": _one(R, "mean of one prediction per beat"),
        "averaged_over_clip_starts": _one(R, "mean of predictions over every clip window"),
        "source_not_3_4_cropped": _one(R, "the clip was centre-cropped to 3:4 for the model"),
        "phase_from_echonet_lvh": _one(
            R, "end-diastole/end-systole from EchoNet-LVH's LVID curve on the same clip"
        ),
        "phase_from_lv_area": _one(
            R, "end-diastole from the LV area of EchoNet-Dynamic's segmentation of the clip"
        ),
    }
)

UNKNOWN = Rule(W, "a quality check did not pass")


def rule(flag: str, name: str) -> Rule:
    """The rule for `flag` on the finding `name` (UNKNOWN, logged, for a flag not decided)."""
    for candidate in RULES.get(flag, ()):
        if candidate.names is None or name in candidate.names:
            return candidate
    logger.warning(
        "finding flag not in the reporting rules; the value is withheld",
        extra={"flag": flag, "finding": name},
    )
    return UNKNOWN


@dataclass(frozen=True)
class Verdict:
    """What the flags of one finding add up to."""

    withheld: tuple[str, ...]  # reasons, in flag order, no repeats
    qualifiers: tuple[str, ...]  # sentences for a reported value
    recorded: tuple[str, ...]  # the flags that only describe how it was made

    @property
    def reportable(self) -> bool:
        return not self.withheld


def judge(name: str, flags: Sequence[str]) -> Verdict:
    withheld: list[str] = []
    qualifiers: list[str] = []
    recorded: list[str] = []
    for flag in flags:
        decided = rule(flag, name)
        target = {W: withheld, Q: qualifiers, R: recorded}[decided.action]
        words = flag if decided.action is R else decided.words
        if words not in target:
            target.append(words)
    return Verdict(tuple(withheld), tuple(qualifiers), tuple(recorded))
