"""A phantom exam as a lab acquires it: many clips of one patient, most of them views the node
has no pipeline for.

A 60-clip exam (the default) holds 8 PLAX and 7 A4C cine loops, 5 TR CW and 5 mitral PW
Doppler images, and 35 clips of other views (PSAX, A2C, A3C, A5C, subcostal, suprasternal),
in the order of the usual protocol: parasternal, apical, subcostal, suprasternal. Fewer or more
clips keep those proportions, with at least one of each measured kind. Every clip of a view is
its own acquisition (ai.phantom.study.make_clip's `variant`): the same patient, its own speckle.
The other views are rendered from the PLAX or A4C geometry and say their view in
SeriesDescription, as a scanner preset does, so the view rules route them to "other" and
nothing is measured on them: what they cost is decoding and deciding the view.

Files: NNN_<kind>.dcm with NNN_<kind>.json (the ground truth of ai.phantom.study), plus
exam.json listing each file with its kind and SeriesDescription.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydicom.uid import generate_uid

from ai.phantom.dicom import InstanceSpec
from ai.phantom.study import DEFAULT_UID_ROOT, make_clip, study_header, write_clip

# Share of each kind in a 60-clip exam (the rest are other views).
MEASURED_PER_60 = {"plax": 8, "a4c": 7, "tr_cw": 5, "mv_pw": 5}
# Other views in protocol order: (SeriesDescription, geometry rendered).
OTHER_VIEWS = (
    ("PSAX", "plax"),
    ("A2C", "a4c"),
    ("A3C", "a4c"),
    ("A5C", "a4c"),
    ("SUBCOSTAL", "a4c"),
    ("SSN", "plax"),
)
_DESCRIPTIONS = {"plax": "PLAX", "a4c": "A4C", "tr_cw": "TR CW", "mv_pw": "MV PW"}


@dataclass(frozen=True)
class ExamClip:
    kind: str  # plax, a4c, tr_cw, mv_pw or other
    rendered_as: str  # the ai.phantom clip name whose geometry it shows
    description: str  # SeriesDescription


def exam_plan(clips: int = 60) -> list[ExamClip]:
    """Which clips an exam of `clips` holds, in acquisition order."""
    measured = {kind: max(1, round(clips * share / 60)) for kind, share in MEASURED_PER_60.items()}
    if clips < sum(measured.values()):
        raise ValueError(f"an exam needs at least {sum(measured.values())} clips, got {clips}")
    others = clips - sum(measured.values())
    other = [OTHER_VIEWS[i * len(OTHER_VIEWS) // max(1, others)] for i in range(others)]

    def of(kind: str) -> list[ExamClip]:
        return [ExamClip(kind, kind, _DESCRIPTIONS[kind])] * measured[kind]

    def others_of(geometry: str, names: tuple[str, ...]) -> list[ExamClip]:
        return [ExamClip("other", g, d) for d, g in other if g == geometry and d in names]

    parasternal = of("plax") + others_of("plax", ("PSAX",))
    apical = of("a4c") + others_of("a4c", ("A2C", "A3C", "A5C")) + of("mv_pw") + of("tr_cw")
    rest = others_of("a4c", ("SUBCOSTAL",)) + others_of("plax", ("SSN",))
    return parasternal + apical + rest


def generate_exam(
    out_dir: Path,
    seed: int,
    clips: int = 60,
    *,
    compressed: bool = True,
    rows: int = 600,
    columns: int = 800,
    uid_root: str = DEFAULT_UID_ROOT,
    cycles: int = 2,
    frame_rate: float = 50.0,
    heart_rate_bpm: float | None = None,
) -> list[Path]:
    """Write the exam's clips into out_dir (see the module doc); the DICOM paths in order."""
    if not uid_root.endswith("."):
        uid_root += "."
    header = study_header(seed, uid_root)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    listing = []
    seen: dict[str, int] = {}
    for number, item in enumerate(exam_plan(clips), start=1):
        variant = seen.get(item.rendered_as, 0)
        seen[item.rendered_as] = variant + 1
        clip = make_clip(
            item.rendered_as,
            seed,
            heart_rate_bpm=heart_rate_bpm,
            rows=rows,
            columns=columns,
            cycles=cycles,
            frame_rate=frame_rate,
            variant=variant,
        )
        spec = InstanceSpec(
            sop_instance_uid=str(generate_uid(uid_root, [str(seed), "exam", str(number)])),
            instance_number=number,
            series_description=item.description,
            modes=clip.modes,
            regions=clip.regions,
            frame_time_ms=clip.frame_time_ms,
            heart_rate_bpm=clip.patient.heart_rate_bpm,
        )
        path = out_dir / f"{number:03d}_{item.kind}.dcm"
        paths.append(write_clip(path, clip, header, spec, seed, compressed))
        listing.append(
            {"file": path.name, "kind": item.kind, "series_description": item.description}
        )
    document = {"study_instance_uid": header.study_instance_uid, "clips": listing}
    (out_dir / "exam.json").write_text(json.dumps(document, indent=1))
    return paths
