"""The study's reported values as a TID 1500 Measurement Report, for viewers that draw SR
measurements on the images: OHIF reads TID 1500 only (docs/VIEWERS.md says what its reader
accepts, from the OHIF 3.13 and @cornerstonejs/adapters source).

One TID 1501 measurement group per reported value that has a caliper:

    CONTAINER (126000 DCM) Imaging Measurement Report                    [TID 1500]
      HAS CONCEPT MOD Language; HAS OBS CONTEXT the node as device observer
      HAS CONCEPT MOD Procedure reported = Echocardiography
      CONTAINS Image Library > Image Library Group > IMAGE per source clip
      CONTAINS CONTAINER (126010 DCM) Imaging Measurements
        CONTAINS CONTAINER (125007 DCM) Measurement Group                [TID 1501]
          HAS OBS CONTEXT TEXT Tracking Identifier = "Cornerstone3DTools@^0.1.0:Length"
                                                     (a caliper line) or ":Probe" (a point)
          HAS OBS CONTEXT UIDREF Tracking Unique Identifier
          HAS CONCEPT MOD CODE Finding Site
          CONTAINS NUM <CID 12300 concept> <value> <UCUM unit>           [TID 300]
            INFERRED FROM SCOORD POLYLINE (2 points) or POINT            [TID 320]
              SELECTED FROM IMAGE <clip, frame>
            HAS CONCEPT MOD Derivation (how beats were combined), Algorithm (TID 4019)
          CONTAINS NUM <a value calculated from this caliper alone: TR/AV peak gradient>
          CONTAINS TEXT (121106 DCM) Comment = "LVIDd 4.81 cm", then each qualifier
        CONTAINS CONTAINER Measurement Group: E/A, inferred from a line from the E peak to
          the A peak of one beat (tracking identifier "E/A": drawn, not turned into a tool)

Why this shape: OHIF draws a group on the one frame its first SCOORD is selected from, so a
value gets the caliper of one beat (the beat whose own value is nearest the reported one; the
echo SR and the overlays carry every beat); it fails to load an SR with a group that has no
SCOORD, so a value without a caliper (LV ejection fraction, LV mass, RWT, FS) is not in this
document (the echo SR and the PDF have it); the tracking identifier is the text OHIF's reader
uses to turn a group into its Length or Probe tool; the Comment is the name OHIF shows for it.
The concepts are the self-describing CID 12300 ones ("Tricuspid regurgitation Vmax"), since a
viewer shows the concept without the TID 5200 section around it.
"""

from __future__ import annotations

import datetime
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from ai.findings import Aggregation
from echo_node.results import codes
from echo_node.results.catalogue import Geometry
from echo_node.results.coding import CODING_5200, CODING_5300, UNITS
from echo_node.results.device import DeviceInfo
from echo_node.results.patient import copy_patient_and_study
from echo_node.results.report import (
    BeatMark,
    DerivedValue,
    ImageMode,
    Report,
    ReportedValue,
    SourceImage,
)
from echo_node.results.series import Series, measurements_series
from echo_node.results.srcontent import evidence, node_observer

logger = logging.getLogger(__name__)

# The prefix @cornerstonejs/adapters gives the tools it writes; its reader picks the tool a
# group becomes by this text (BaseAdapter3D.isValidCornerstoneTrackingIdentifier).
TOOL_PREFIX = "Cornerstone3DTools@^0.1.0"
LENGTH_TOOL = f"{TOOL_PREFIX}:Length"
PROBE_TOOL = f"{TOOL_PREFIX}:Probe"
RATIO_TRACKING = "E/A"  # no tool of the reader's: drawn as a line in the SR view only

_DERIVATION = {
    Aggregation.MEAN: codes.MEAN,
    Aggregation.MEDIAN: codes.MEDIAN,
    Aggregation.MAX: codes.MAXIMUM,
}
# Derived values calculated from one reported value, so drawn with its caliper.
_FROM_ONE = {
    "TR_PG": ("TR_Vmax", codes.TR_PEAK_GRADIENT),
    "AV_PG": ("AV_Vmax", codes.AV_PEAK_GRADIENT),
}


@dataclass(frozen=True)
class _Caliper:
    tool: str  # tracking identifier
    graphic_type: hd.sr.GraphicTypeValues
    points: tuple[tuple[float, float], ...]
    frame: int  # zero-based


def build_measurement_report(
    report: Report,
    headers: Sequence[Dataset],
    *,
    node: DeviceInfo,
    echo_sr: Dataset | None = None,
    predecessor: Dataset | None = None,
    series_uid: str | None = None,
    instance_uid: str | None = None,
    series: Series | None = None,
) -> Dataset | None:
    """The TID 1500 document of `report`, or None when no reported value has a caliper.

    `headers`: the source instances of `report.sources` (any order; header only is enough).
    `echo_sr`: the study's echo SR of the same run, listed with the clips as the evidence of
    the procedure (Current Requested Procedure Evidence Sequence); `predecessor`:
    the TID 1500 document of an earlier run that this one supersedes. `series`: the run's
    measurement series (run 1 when not given).
    """
    by_uid = {str(h.SOPInstanceUID): h for h in headers}
    missing = [s.sop_instance_uid for s in report.sources if s.sop_instance_uid not in by_uid]
    if missing or not report.sources:
        raise ValueError(f"headers: no header for source instance(s) {missing or 'at all'}")
    study_uid = by_uid[report.sources[0].sop_instance_uid].StudyInstanceUID
    for document, name in ((echo_sr, "echo_sr"), (predecessor, "predecessor")):
        if document is not None and document.get("StudyInstanceUID") != study_uid:
            raise ValueError(f"{name}: not an SR of this study")

    groups = [group for value in report.values if (group := _group(value, report)) is not None]
    ratio = report.value("MV_E_A")
    if isinstance(ratio, DerivedValue) and (group := _ratio_group(ratio)) is not None:
        groups.append(group)
    if not groups:
        logger.info(
            "no TID 1500 document: no reported value with a caliper",
            extra={"study_instance_uid": study_uid},
        )
        return None
    sources = [by_uid[s.sop_instance_uid] for s in report.sources]
    series = series or measurements_series(1, datetime.datetime.now())
    content = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=node_observer(node)),
        procedure_reported=codes.ECHOCARDIOGRAPHY,
        imaging_measurements=groups,
        referenced_images=[evidence(h) for h in sources],
    )
    with warnings.catch_warnings():
        # highdicom warns about odd person names and quotes them: patient data in a log.
        warnings.simplefilter("ignore", UserWarning)
        sr = hd.sr.ComprehensiveSR(
            evidence=[evidence(h) for h in sources] + ([echo_sr] if echo_sr is not None else []),
            content=content,
            series_instance_uid=series_uid or generate_uid(),
            series_number=series.number,
            sop_instance_uid=instance_uid or generate_uid(),
            instance_number=1,
            manufacturer=node.manufacturer,
            is_complete=True,
            is_verified=False,  # machine output: nobody has signed it
            previous_versions=[predecessor] if predecessor is not None else None,
            manufacturer_model_name=node.model_name,
            software_versions=node.software_version,
            series_description=series.description,
        )
    series.apply(sr)
    copy_patient_and_study(sr, sources[0])
    if "PreliminaryFlag" in sr:  # Type 3; highdicom's PRELIMINARY reads as "ignore"
        del sr.PreliminaryFlag
    logger.info(
        "built TID 1500 document",
        extra={"sop_instance_uid": str(sr.SOPInstanceUID), "groups": len(groups)},
    )
    return sr


def _group(
    value: ReportedValue, report: Report
) -> hd.sr.MeasurementsAndQualitativeEvaluations | None:
    caliper = _caliper(value)
    concept = _concept(value.key, value.source)
    if caliper is None or concept is None:
        return None
    coordinates = _coordinates(caliper, value.source)
    measurements = [_measurement(value, concept, coordinates)]
    for derived in report.derived:
        source_key, derived_concept = _FROM_ONE.get(derived.key, ("", None))
        if source_key == value.key and derived_concept is not None:
            measurements.append(_derived(derived, derived_concept, coordinates))
    coding = CODING_5200[value.key]
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=caliper.tool),
        finding_sites=[hd.sr.FindingSite(coding.finding_site or coding.section)],
        measurements=measurements,
    )
    # The name a viewer lists the measurement by, and each sentence that qualifies it.
    group[0].ContentSequence.extend(_comment(text) for text in (value.display, *value.qualifiers))
    return group


def _ratio_group(ratio: DerivedValue) -> hd.sr.MeasurementsAndQualitativeEvaluations | None:
    """E/A over a line from the E peak to the A peak of one beat (both on the frame of the
    spectrum), in its own group: a line joining what the ratio compares."""
    e, a = (_caliper(value) for value in ratio.inputs)
    if e is None or a is None or e.frame != a.frame:
        return None
    line = _Caliper(RATIO_TRACKING, hd.sr.GraphicTypeValues.POLYLINE, e.points + a.points, e.frame)
    measurement = _scoord_first(
        hd.sr.Measurement(
            name=codes.MV_E_A_RATIO,
            value=ratio.value,
            unit=codes.UNIT_RATIO,
            referenced_coordinates=[_coordinates(line, ratio.inputs[0].source)],
        )
    )
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=line.tool),
        finding_sites=[hd.sr.FindingSite(codes.MITRAL_VALVE)],
        measurements=[measurement],
    )
    group[0].ContentSequence.extend(_comment(text) for text in (ratio.display, *ratio.qualifiers))
    return group


def drawn_beat(value: ReportedValue) -> BeatMark | None:
    """The beat a value is drawn on where one caliper stands for it: the beat whose own value
    is nearest the reported one (the highest for a maximum, the middle one for a median), the
    first drawn beat where beats carry no value; None for a value drawn with no points."""
    drawn = [b for b in value.beats if b.points]
    if not drawn:
        return None
    valued = [b for b in drawn if b.value is not None]
    if not valued:
        return drawn[0]
    return min(valued, key=lambda b: abs((b.value or 0.0) - value.value))


def _caliper(value: ReportedValue) -> _Caliper | None:
    beat = drawn_beat(value)
    if beat is None:
        return None
    if value.geometry is Geometry.LINE and len(beat.points) == 2:
        return _Caliper(LENGTH_TOOL, hd.sr.GraphicTypeValues.POLYLINE, beat.points, beat.frame)
    if value.geometry is Geometry.POINTS and len(beat.points) == 1:
        return _Caliper(PROBE_TOOL, hd.sr.GraphicTypeValues.POINT, beat.points, beat.frame)
    logger.warning(
        "caliper does not fit its geometry: value left out of the TID 1500 document",
        extra={"finding": value.key, "points": len(beat.points)},
    )
    return None


def _concept(key: str, source: SourceImage) -> Code | None:
    coding = CODING_5300.get(key)
    if coding is None or not coding.pre_coordinated:
        return None
    if source.mode is ImageMode.M and coding.mmode is not None:
        return coding.mmode
    return coding.concept


def _coordinates(caliper: _Caliper, source: SourceImage) -> hd.sr.CoordinatesForMeasurement:
    return hd.sr.CoordinatesForMeasurement(
        graphic_type=caliper.graphic_type,
        graphic_data=np.asarray(caliper.points, dtype=np.float64),
        source_image=hd.sr.SourceImageForRegion(
            referenced_sop_class_uid=source.sop_class_uid,
            referenced_sop_instance_uid=source.sop_instance_uid,
            referenced_frame_numbers=[caliper.frame + 1] if source.multi_frame else None,
        ),
    )


def _measurement(
    value: ReportedValue, concept: Code, coordinates: hd.sr.CoordinatesForMeasurement
) -> hd.sr.Measurement:
    measurement = hd.sr.Measurement(
        name=concept,
        value=value.value,
        unit=UNITS[value.unit],
        derivation=_DERIVATION.get(value.aggregation),
        referenced_coordinates=[coordinates],
        algorithm_id=hd.sr.AlgorithmIdentification(
            name=value.algorithm.name, version=value.algorithm.version_text
        ),
    )
    return _scoord_first(measurement)


def _derived(
    value: DerivedValue, concept: Code, coordinates: hd.sr.CoordinatesForMeasurement
) -> hd.sr.Measurement:
    measurement = hd.sr.Measurement(
        name=concept,
        value=value.value,
        unit=codes.UNIT_MMHG,
        method=codes.SIMPLIFIED_BERNOULLI,
        referenced_coordinates=[coordinates],
    )
    return _scoord_first(measurement)


def _scoord_first(measurement: hd.sr.Measurement) -> hd.sr.Measurement:
    """The NUM's caliper as its first child: OHIF releases before 3.10 read only the first."""
    num = measurement[0]
    children = list(num.ContentSequence)
    children.sort(key=lambda item: item.ValueType != "SCOORD")
    num.ContentSequence = DicomSequence(children)
    return measurement


def _comment(text: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(
        name=codes.COMMENT, value=text, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
    )
