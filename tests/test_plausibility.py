"""Values no adult heart produces carry a flag; real measurements do not."""

from __future__ import annotations

from pathlib import Path

from ai.analyze import analyze, run_pipeline
from ai.clip import Clip
from ai.decode import load_clip
from ai.findings import CLASSICAL, Finding, PipelineResult, PipelineStatus, Provenance
from ai.phantom import generate_study
from ai.plausibility import FLAG, flag_implausible

MADE_UP = Provenance(CLASSICAL, "test")


def _finding(name: str, value: float, unit: str = "cm") -> Finding:
    return Finding(name, value, unit, MADE_UP, flags=("averaged_over_beats",))


def test_values_outside_the_limits_are_flagged_and_kept() -> None:
    result = PipelineResult(
        "plax",
        PipelineStatus.OK,
        (
            _finding("IVSd", 0.0),  # both points on one pixel: a model that failed
            _finding("LVIDd", 4.8),
            _finding("TR_Vmax", -280.0, "cm/s"),  # a jet below the baseline: its speed counts
            _finding("MV_E_A", 9.5, "1"),
            _finding("amyloid_probability", 0.7, "1"),  # no limits: left alone
        ),
    )
    flagged = flag_implausible(result)
    assert [FLAG in f.flags for f in flagged.findings] == [True, False, False, True, False]
    assert flagged.findings[0].value == 0.0  # kept, flagged, never silently dropped
    assert flagged.findings[0].flags == ("averaged_over_beats", FLAG)
    assert flag_implausible(PipelineResult("plax", PipelineStatus.OK, ())) is not None


def test_every_pipeline_run_is_checked(tmp_path: Path) -> None:
    generate_study(tmp_path, 4, rows=240, columns=320, cycles=1, frame_rate=15.0)
    clip = load_clip(tmp_path / "tr_cw.dcm")

    def collapsed(clip: Clip, models: object, *, earlier: object = ()) -> PipelineResult:
        return PipelineResult("plax", PipelineStatus.OK, (_finding("LVIDd", 0.0),))

    (finding,) = run_pipeline(collapsed, clip, None).findings
    assert FLAG in finding.flags
    # The phantom's real Doppler measurements are inside the limits.
    measured = analyze(tmp_path / "mv_pw.dcm")
    values = [f for p in measured.pipelines for f in p.findings]
    assert values and not any(FLAG in f.flags for f in values)
