"""Which view a clip shows, decided in a fixed order and always saying who decided and why.

1. Regions: a spectral Doppler region (RegionDataType 3 PW / 4 CW) → doppler (the mode kept);
   an M-mode region (RegionSpatialFormat 2) → mmode. Confidence 1: the scanner wrote it.
2. View Code Sequence (0054,0220) codes from CID 12226 "Echocardiography Image View"
   (SCT 399139001 parasternal long axis → plax, SCT 399214001 apical four chamber → a4c, their
   legacy SRT codes G-0396 / G-A19C too; any other CID 12226 view → other with its meaning).
   Confidence 1.
3. Keywords in SeriesDescription, then ImageComments (PLAX, A4C, 4CH, "apical 4", ...): free
   text a sonographer typed or a preset named, so confidence 0.9.
4. A view classifier, when the caller passes one (ai.models provides the EchoPrime one; passing
   a callable keeps this module free of torch). It returns a ViewDecision or None.
5. Otherwise unknown, with the reason: recorded, not processed, never guessed.

Any decision below `min_confidence` becomes unknown, with the rejected decision in the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pydicom.sr.codedict import codes

from ai.clip import Clip
from ai.findings import View, ViewDecision
from ai.regions import DATA_CW, mmode_region, spectral_region

Classifier = Callable[[Clip], ViewDecision | None]

DEFAULT_MIN_CONFIDENCE = 0.5
KEYWORD_CONFIDENCE = 0.9

# (coding scheme, code value) → view with a pipeline here.
_CODED_VIEWS: dict[tuple[str, str], View] = {
    ("SCT", "399139001"): View.PLAX,
    ("SRT", "G-0396"): View.PLAX,
    ("SCT", "399214001"): View.A4C,
    ("SRT", "G-A19C"): View.A4C,
}
# Legacy SNOMED-RT codes (older files) of CID 12226 views.
_LEGACY = {
    ("SRT", "G-0396"): "Parasternal long axis",
    ("SRT", "G-A19C"): "Apical four chamber",
    ("SRT", "G-A19B"): "Apical two chamber",
    ("SRT", "G-0395"): "Apical long axis",
    ("SRT", "G-0397"): "Parasternal short axis",
}

# Keywords, checked in this order; word boundaries keep "A4C" from matching inside other words.
_KEYWORDS: tuple[tuple[re.Pattern[str], View, str], ...] = (
    (re.compile(r"\bPLAX\b|parasternal\s+long", re.IGNORECASE), View.PLAX, "PLAX"),
    (
        re.compile(r"\bA4C\b|\bA4CH\b|\b4\s?CH\b|apical\s*4|apical\s+four|\b4[-\s]?chamber", re.I),
        View.A4C,
        "A4C",
    ),
    (re.compile(r"\bA2C\b|\b2\s?CH\b|apical\s*2|apical\s+two", re.IGNORECASE), View.OTHER, "A2C"),
    (re.compile(r"\bA3C\b|\b3\s?CH\b|apical\s+long|\bAPLAX\b", re.IGNORECASE), View.OTHER, "A3C"),
    (re.compile(r"\bA5C\b|\b5\s?CH\b|apical\s*5|apical\s+five", re.IGNORECASE), View.OTHER, "A5C"),
    (re.compile(r"\bPSAX\b|parasternal\s+short|\bSAX\b", re.IGNORECASE), View.OTHER, "PSAX"),
    (re.compile(r"\bsubcostal\b|\bSUBC?\b|\bSC4C\b", re.IGNORECASE), View.OTHER, "Subcostal"),
    (re.compile(r"\bsuprasternal\b|\bSSN\b", re.IGNORECASE), View.OTHER, "SSN"),
)


def _cid12226() -> dict[tuple[str, str], str]:
    """Every CID 12226 code pydicom knows, with its meaning."""
    group = codes.cid12226
    known = {
        (str(code.scheme_designator), str(code.value)): str(code.meaning)
        for code in (getattr(group, name) for name in group.dir())
    }
    known.update(_LEGACY)
    return known


def _by_region(clip: Clip) -> ViewDecision | None:
    spectral = spectral_region(clip.regions)
    if spectral is not None:
        mode = "CW" if spectral.data_type == DATA_CW else "PW"
        return ViewDecision(
            view=View.DOPPLER,
            decided_by="region:spectral",
            confidence=1.0,
            reason=f"RegionDataType {spectral.data_type} ({mode} spectral Doppler)",
            doppler_mode=mode,
        )
    if mmode_region(clip.regions) is not None:
        return ViewDecision(
            view=View.MMODE,
            decided_by="region:mmode",
            confidence=1.0,
            reason="RegionSpatialFormat 2 (M-mode)",
        )
    return None


def _by_code(clip: Clip) -> ViewDecision | None:
    raw = clip.metadata.get("view_codes", ())
    view_codes = raw if isinstance(raw, tuple | list) else ()
    known = _cid12226()
    for entry in view_codes:
        scheme, value, meaning = (str(part) for part in entry)
        key = (scheme, value)
        if key not in known:
            continue
        view = _CODED_VIEWS.get(key, View.OTHER)
        return ViewDecision(
            view=view,
            decided_by="ViewCodeSequence",
            confidence=1.0,
            reason=f"({value}, {scheme}, {meaning or known[key]!r}) from CID 12226",
            label=known[key],
        )
    return None


def _by_keyword(clip: Clip) -> ViewDecision | None:
    for attribute in ("SeriesDescription", "ImageComments"):
        text = str(clip.metadata.get(attribute, ""))
        if not text:
            continue
        for pattern, view, label in _KEYWORDS:
            match = pattern.search(text)
            if match:
                return ViewDecision(
                    view=view,
                    decided_by=f"keyword:{attribute}",
                    confidence=KEYWORD_CONFIDENCE,
                    reason=f"{attribute} contains {match.group(0)!r}",
                    label=label,
                )
    return None


def decide_view(
    clip: Clip,
    classifier: Classifier | None = None,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
) -> ViewDecision:
    """The clip's view by the rules above; unknown (with the reason) when nothing decides."""
    for rule in (_by_region, _by_code, _by_keyword):
        decision = rule(clip)
        if decision is not None:
            return _confident(decision, min_confidence)
    if classifier is None:
        return ViewDecision(
            view=View.UNKNOWN,
            decided_by="none",
            confidence=0.0,
            reason=(
                "no spectral or M-mode region, no CID 12226 ViewCodeSequence code, no view "
                "keyword in SeriesDescription/ImageComments, and no view classifier installed"
            ),
        )
    decision = classifier(clip)
    if decision is None:
        return ViewDecision(
            view=View.UNKNOWN,
            decided_by="none",
            confidence=0.0,
            reason="no rule applied and the view classifier gave no decision",
        )
    return _confident(decision, min_confidence)


def _confident(decision: ViewDecision, min_confidence: float) -> ViewDecision:
    if decision.confidence >= min_confidence:
        return decision
    said = decision.label or decision.view.value
    return ViewDecision(
        view=View.UNKNOWN,
        decided_by=decision.decided_by,
        confidence=decision.confidence,
        reason=(
            f"{decision.decided_by} said {said} with confidence {decision.confidence:.2f}, "
            f"below the minimum {min_confidence:.2f}"
        ),
        label=decision.label,
    )
