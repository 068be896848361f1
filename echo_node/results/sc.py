"""Overlays for humans: a Multi-frame True Color Secondary Capture per processed clip.

PS3.3 A.8.5 (Multi-frame True Color SC IOD): Patient, General Study, General Series, SC
Equipment, General Image, Image Pixel, Multi-frame, Frame Pointers, SC Multi-frame Image, Cine,
SOP Common. The frames are the source's with what the report model reports from this clip
burned in (overlay.py decides, layout.py places, draw.py draws); the series is new, the study
is the source's, so a PACS shows it beside the clip.
"""

from __future__ import annotations

import datetime
import io
import logging
import math
import warnings

import highdicom as hd
import numpy as np
import numpy.typing as npt
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag
from pydicom.uid import UID, ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid

from ai.clip import UltrasoundRegion
from ai.findings import Provenance
from ai.regions import parse_regions
from echo_node.results.device import DeviceInfo, contributing_equipment
from echo_node.results.draw import Rendering, render_overlay
from echo_node.results.overlay import OverlayPlan, plan_overlay
from echo_node.results.patient import copy_patient_and_study
from echo_node.results.report import Report
from echo_node.results.series import (
    OVERLAYS,
    Reference,
    Series,
    overlay_series,
    referenced_instance,
)

logger = logging.getLogger(__name__)

MULTIFRAME_TRUE_COLOR_SC = UID("1.2.840.10008.5.1.4.1.1.7.4")
SERIES_DESCRIPTION = OVERLAYS  # the start of every overlay series' description
# CID 7202 "Source Image Purpose of Reference".
_SOURCE_IMAGE_PURPOSE = hd.sr.CodedConcept(
    "121322", "DCM", "Source image for image processing operation"
)


def plan_for(source: Dataset, report: Report, *, frame_time_ms: float | None = None) -> OverlayPlan:
    """What the overlay of the clip `source` (its header) shows: the values `report` reports
    from it (an empty plan: no overlay). `frame_time_ms` as decoded, else the source's."""
    frame_count = int(source.get("NumberOfFrames") or 1)
    frame_time = frame_time_ms or _number(source, "FrameTime")
    if frame_count > 1 and frame_time is None:
        raise ValueError("frame_time_ms: unknown (neither given nor in the source's FrameTime)")
    return plan_overlay(
        report,
        str(source.SOPInstanceUID),
        frame_count,
        frame_time_ms=frame_time,
        heart_rate_bpm=_number(source, "HeartRate"),
        regions=_regions(source),
    )


def render_for(source: Dataset, frames: npt.NDArray[np.uint8], plan: OverlayPlan) -> Rendering:
    """`plan` drawn on `frames`, the source's decoded RGB frames (N, Rows, Columns, 3), its
    legend kept off the source's ultrasound regions."""
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames: need uint8 (N, rows, columns, 3), got {frames.shape}")
    if (frames.shape[1], frames.shape[2]) != (source.Rows, source.Columns):
        raise ValueError("frames: size differs from the source's Rows/Columns")
    if len(frames) != plan.frame_count:
        raise ValueError(f"frames: {len(frames)}, but the source has {plan.frame_count}")
    return render_overlay(frames, plan, _regions(source))


def _regions(source: Dataset) -> tuple[UltrasoundRegion, ...]:
    return parse_regions(source, int(source.Rows), int(source.Columns))


def build_overlay_sc(
    source: Dataset,
    overlay: Rendering,
    *,
    node: DeviceInfo,
    series_uid: str | None = None,
    instance_uid: str | None = None,
    series: Series | None = None,
    report: Reference | None = None,
    instance_number: int = 1,
    transfer_syntax: str = JPEGBaseline8Bit,
    jpeg_quality: int = 90,
) -> Dataset:
    """The overlay (plan_for, render_for) as a new SC instance of the source's study.

    `series` is the run's overlay series (run 1 when not given); `report` the run's SR, which
    the SC references (Referenced Instance Sequence, purpose Source Document).
    `transfer_syntax` is JPEG Baseline (default, YBR_FULL_422) or Explicit VR Little Endian
    (RGB, lossless).
    """
    if transfer_syntax not in (JPEGBaseline8Bit, ExplicitVRLittleEndian):
        raise ValueError(f"transfer_syntax: JPEG Baseline or Explicit VR LE, got {transfer_syntax}")
    burned, frame_time = overlay.frames, overlay.plan.frame_time_ms
    series = series or overlay_series(1, datetime.datetime.now())
    ds = _base(source, node, series_uid, series, instance_uid, instance_number)
    if report is not None:
        ds.ReferencedInstanceSequence = DicomSequence([referenced_instance(report)])
    ds.file_meta.TransferSyntaxUID = UID(transfer_syntax)
    _general_image(ds, source, overlay)
    ds.ConversionType = "WSD"  # SC Equipment: produced by a workstation
    ds.SecondaryCaptureDeviceManufacturer = node.manufacturer
    ds.SecondaryCaptureDeviceManufacturerModelName = node.model_name
    ds.SecondaryCaptureDeviceSoftwareVersions = node.software_version
    ds.NumberOfFrames = len(burned)
    if len(burned) > 1 and frame_time is not None:  # render_for demands it for several frames
        # A one-frame Doppler still has no pointer: it is required only for more than one
        # frame (PS3.3 C.8.6.3), and must not point at nothing.
        ds.FrameIncrementPointer = Tag("FrameTime")
        ds.FrameTime = f"{frame_time:.3f}"
    _frame_pointers(ds, overlay.plan)
    _pixels(ds, burned, UID(transfer_syntax), jpeg_quality)
    algorithms = dict.fromkeys(v.algorithm for v in overlay.plan.values)
    if algorithms:
        provenances = [
            Provenance(a.name, a.version, a.sha256, published=a.published) for a in algorithms
        ]
        ds.ContributingEquipmentSequence = DicomSequence(contributing_equipment(provenances))
    logger.info(
        "built overlay SC (%d frames)",
        len(burned),
        extra={
            "sop_instance_uid": str(ds.SOPInstanceUID),
            "source_sop_instance_uid": str(source.SOPInstanceUID),
        },
    )
    return ds


def _frame_pointers(ds: Dataset, plan: OverlayPlan) -> None:
    """Frame Pointers module (PS3.3 C.7.6.9): the frame a PACS shows as thumbnail is one with
    calipers (frame 1 may have none); the measured frames are the frames of interest."""
    representative = plan.representative_frame
    if representative is None:
        return
    ds.RepresentativeFrameNumber = representative + 1
    measured: dict[int, set[str]] = {}
    for caliper in plan.calipers:
        measured.setdefault(caliper.frame, set()).add(caliper.phase or "")
    ds.FrameNumbersOfInterest = [frame + 1 for frame in sorted(measured)]
    ds.FrameOfInterestDescription = [
        " ".join(sorted(p for p in measured[frame] if p)) + " measured frame"
        if any(measured[frame])
        else "Measured frame"
        for frame in sorted(measured)
    ]


def _number(source: Dataset, keyword: str) -> float | None:
    """A positive number from the header; None when absent or not a number (a header fault
    costs the overlay its timing, not its existence)."""
    value = source.get(keyword)
    try:
        number = float(value) if value not in (None, "") else math.nan
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _base(
    source: Dataset,
    node: DeviceInfo,
    series_uid: str | None,
    series: Series,
    instance_uid: str | None,
    instance_number: int,
) -> Dataset:
    """SOP Common, General Series/Equipment, and Patient/Study copied from the source."""
    with warnings.catch_warnings():
        # highdicom warns about odd person names and quotes them: patient data in a log.
        warnings.simplefilter("ignore", UserWarning)
        ds = hd.SOPClass(
            study_instance_uid=source.StudyInstanceUID,
            series_instance_uid=series_uid or generate_uid(),
            series_number=series.number,
            sop_instance_uid=instance_uid or generate_uid(),
            sop_class_uid=MULTIFRAME_TRUE_COLOR_SC,
            instance_number=instance_number,
            modality=str(source.get("Modality") or "US"),
            manufacturer=node.manufacturer,
            manufacturer_model_name=node.model_name,
            software_versions=node.software_version,
            series_description=series.description,
            specific_character_set=source.get("SpecificCharacterSet"),
        )
        copy_patient_and_study(ds, source)
    series.apply(ds)
    # The heart is an unpaired body part: Image Laterality (General Image) U says so, and
    # General Series Laterality (Type 2C, for paired parts) stays absent; an empty one draws a
    # dciodvfy warning, an absent one without Image Laterality an error. Body Part Examined
    # tells a reader (and dciodvfy) which part it is.
    ds.ImageLaterality = "U"
    ds.BodyPartExamined = str(source.get("BodyPartExamined") or "HEART")
    return ds


def _general_image(ds: Dataset, source: Dataset, overlay: Rendering) -> None:
    now = datetime.datetime.now()
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.PatientOrientation = None  # Type 2C; no patient axes in an echo frame
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    ds.DerivationDescription = "Echo Node measurement overlay (burned-in graphics)"
    comments = "Reported measurements and their calipers drawn over the source frames"
    if overlay.widened:
        comments += (
            f"; legend in a panel added right of the source image"
            f" (columns {overlay.source_columns + 1} to {overlay.placement.columns}"
        )
        if overlay.lengthened:
            comments += f", rows {overlay.source_rows + 1} to {overlay.placement.rows} added"
        comments += ")"
    ds.ImageComments = comments + "."
    reference = Dataset()
    reference.ReferencedSOPClassUID = source.SOPClassUID
    reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
    reference.PurposeOfReferenceCodeSequence = [_SOURCE_IMAGE_PURPOSE]
    ds.SourceImageSequence = DicomSequence([reference])
    # BurnedInAnnotation says whether the pixels identify the patient. Our graphics never do,
    # but the source frames may carry the cart's banner: keep the source's NO, else say YES.
    ds.BurnedInAnnotation = "NO" if source.get("BurnedInAnnotation") == "NO" else "YES"
    if source.get("LossyImageCompression") == "01":
        ds.LossyImageCompression = "01"


def _pixels(ds: Dataset, frames: npt.NDArray[np.uint8], transfer_syntax: UID, quality: int) -> None:
    ds.SamplesPerPixel = 3
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = int(frames.shape[1]), int(frames.shape[2])
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    if transfer_syntax == ExplicitVRLittleEndian:
        ds.PhotometricInterpretation = "RGB"
        ds.PixelData = frames.tobytes()
        ds["PixelData"].VR = "OB"
        return
    encoded = [_jpeg(frame, quality) for frame in frames]
    # Pillow converts RGB to YCbCr with 4:2:2 subsampling (subsampling=1): YBR_FULL_422.
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.PixelData = encapsulate(encoded)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    ratio = frames.nbytes / max(1, sum(len(e) for e in encoded))
    ds.LossyImageCompressionRatio = f"{ratio:.2f}"


def _jpeg(frame: npt.NDArray[np.uint8], quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame, mode="RGB").save(buffer, format="JPEG", quality=quality, subsampling=1)
    return buffer.getvalue()
