"""Overlays for humans: a Multi-frame True Color Secondary Capture per processed clip.

PS3.3 A.8.5 (Multi-frame True Color SC IOD): Patient, General Study, General Series, SC
Equipment, General Image, Image Pixel, Multi-frame, SC Multi-frame Image, Cine, SOP Common. The
frames are the source's with the findings burned in (draw.py); the series is new, the study is
the source's, so a PACS shows it beside the clip.
"""

from __future__ import annotations

import datetime
import io
import logging
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

from ai.findings import ClipResult
from echo_node.results.device import DeviceInfo, contributing_equipment
from echo_node.results.draw import burn_in
from echo_node.results.patient import copy_patient_and_study
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


def build_overlay_sc(
    source: Dataset,
    frames: npt.NDArray[np.uint8],
    result: ClipResult,
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
    """The source clip's frames with `result` burned in, as a new SC instance of its study.

    `series` is the run's overlay series (run 1 when not given); `report` the run's SR, which
    the SC references (Referenced Instance Sequence, purpose Source Document).
    `source` is the source header (pixels not needed); `frames` its decoded RGB frames
    (N, Rows, Columns, 3). `transfer_syntax` is JPEG Baseline (default, YBR_FULL_422) or
    Explicit VR Little Endian (RGB, lossless).
    """
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames: need uint8 (N, rows, columns, 3), got {frames.shape}")
    if (frames.shape[1], frames.shape[2]) != (source.Rows, source.Columns):
        raise ValueError("frames: size differs from the source's Rows/Columns")
    if transfer_syntax not in (JPEGBaseline8Bit, ExplicitVRLittleEndian):
        raise ValueError(f"transfer_syntax: JPEG Baseline or Explicit VR LE, got {transfer_syntax}")
    frame_time = _frame_time_ms(source, result)
    if len(frames) > 1 and frame_time is None:
        raise ValueError("result: frame time unknown (neither the result nor the source has it)")

    burned = burn_in(frames, result, node.software_version)
    series = series or overlay_series(1, datetime.datetime.now())
    ds = _base(source, node, series_uid, series, instance_uid, instance_number)
    if report is not None:
        ds.ReferencedInstanceSequence = DicomSequence([referenced_instance(report)])
    ds.file_meta.TransferSyntaxUID = UID(transfer_syntax)
    _general_image(ds, source)
    ds.ConversionType = "WSD"  # SC Equipment: produced by a workstation
    ds.SecondaryCaptureDeviceManufacturer = node.manufacturer
    ds.SecondaryCaptureDeviceManufacturerModelName = node.model_name
    ds.SecondaryCaptureDeviceSoftwareVersions = node.software_version
    ds.NumberOfFrames = len(burned)
    if frame_time is not None:
        # Without a frame time (a one-frame Doppler still) the pointer is left out: it is
        # required only for more than one frame (PS3.3 C.8.6.3), and must not point at nothing.
        ds.FrameIncrementPointer = Tag("FrameTime")
        ds.FrameTime = f"{frame_time:.3f}"
    _pixels(ds, burned, UID(transfer_syntax), jpeg_quality)
    provenances = [f.provenance for p in result.pipelines for f in p.findings]
    if provenances:
        ds.ContributingEquipmentSequence = DicomSequence(contributing_equipment(provenances))
    logger.info(
        "built overlay SC %s from %s (%d frames)",
        ds.SOPInstanceUID,
        source.SOPInstanceUID,
        len(burned),
    )
    return ds


def _frame_time_ms(source: Dataset, result: ClipResult) -> float | None:
    if result.frame_time_ms:
        return float(result.frame_time_ms)
    value = source.get("FrameTime")
    return float(value) if value not in (None, "") else None


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
    # dciodvfy warning, an absent one without Image Laterality an error.
    ds.ImageLaterality = "U"
    return ds


def _general_image(ds: Dataset, source: Dataset) -> None:
    now = datetime.datetime.now()
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.PatientOrientation = None  # Type 2C; no patient axes in an echo frame
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    ds.DerivationDescription = "Echo Node measurement overlay (burned-in graphics)"
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
