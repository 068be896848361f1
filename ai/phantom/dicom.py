"""Ultrasound DICOM objects as a scanner writes them (PS3.3 A.6 US Image, A.7 US Multi-frame).

JPEG baseline is the default: pydicom cannot encode it, so Pillow encodes each frame (quality
90, YCbCr with 4:2:2 chroma subsampling, hence PhotometricInterpretation YBR_FULL_422) and
pydicom only encapsulates the frames. `compressed=False` writes RGB in explicit VR little endian.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag
from pydicom.uid import UID, ExplicitVRLittleEndian, JPEGBaseline8Bit

from ai.clip import UltrasoundRegion

US_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.6.1")
US_MULTIFRAME_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.3.1")
MANUFACTURER = "Echo Node Phantom"
JPEG_QUALITY = 90

# ImageType value 4 of the US Image module (PS3.3 C.8.5.6.1.1): hex flags of the modes shown.
MODE_2D = 0x0001
MODE_CW = 0x0004
MODE_PW = 0x0008

# CID 12226 Echocardiography Image View.
VIEW_CODES = {
    "plax": ("399139001", "SCT", "Parasternal long axis"),
    "a4c": ("399214001", "SCT", "Apical four chamber"),
}


@dataclass(frozen=True)
class StudyHeader:
    """Patient and study attributes shared by every instance of one phantom study."""

    patient_name: str
    patient_id: str
    study_instance_uid: str
    series_instance_uid: str
    study_date: str
    study_time: str
    accession_number: str
    study_id: str


@dataclass(frozen=True)
class InstanceSpec:
    sop_instance_uid: str
    instance_number: int
    series_description: str
    modes: int  # ImageType value 4 flags
    regions: Sequence[UltrasoundRegion]
    frame_time_ms: float | None  # None: a single-frame US Image
    heart_rate_bpm: float
    view: str | None = None  # key of VIEW_CODES when a ViewCodeSequence is wanted


def write_instance(
    path: Path,
    frames: npt.NDArray[np.uint8],
    header: StudyHeader,
    spec: InstanceSpec,
    compressed: bool,
) -> Dataset:
    """Write frames as one US (Multi-frame) Image and return it.

    frames: (n, rows, columns, 3) RGB or (n, rows, columns) grey, uint8; grey frames are
    written as colour too (SamplesPerPixel 3), as echo scanners export them.
    """
    rgb = frames.ndim == 4 and frames.shape[3] == 3
    if not (rgb or frames.ndim == 3) or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (n, rows, columns[, 3]) uint8, got {frames.shape}")
    multiframe = spec.frame_time_ms is not None
    if not multiframe and frames.shape[0] != 1:
        raise ValueError("a single-frame US Image needs exactly one frame")
    ds = Dataset()
    sop_class = US_MULTIFRAME_IMAGE_STORAGE if multiframe else US_IMAGE_STORAGE
    _common(ds, header, spec, sop_class)
    ds.SequenceOfUltrasoundRegions = DicomSequence([_region(r) for r in spec.regions])
    if multiframe:
        assert spec.frame_time_ms is not None
        ds.NumberOfFrames = int(frames.shape[0])
        ds.FrameIncrementPointer = Tag(0x0018, 0x1063)  # Frame Time
        ds.FrameTime = f"{spec.frame_time_ms:.4f}"
        rate = round(1000.0 / spec.frame_time_ms)
        ds.CineRate = rate
        ds.RecommendedDisplayFrameRate = rate
        ds.PreferredPlaybackSequencing = 0  # looping
        ds.StartTrim = 1
        ds.StopTrim = int(frames.shape[0])
    _pixels(ds, frames, compressed)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = UID(spec.sop_instance_uid)
    meta.TransferSyntaxUID = JPEGBaseline8Bit if compressed else ExplicitVRLittleEndian
    ds.file_meta = meta
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return ds


def _common(ds: Dataset, header: StudyHeader, spec: InstanceSpec, sop_class: UID) -> None:
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = spec.sop_instance_uid
    ds.ImageType = ["ORIGINAL", "PRIMARY", "CARDIAC", f"{spec.modes:04X}"]
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = header.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = ds.AcquisitionTime = header.study_time
    ds.AccessionNumber = header.accession_number
    ds.Modality = "US"
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = "ai.phantom"
    ds.SoftwareVersions = "1"
    ds.StationName = "PHANTOM"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "Echocardiogram (phantom)"
    ds.SeriesDescription = spec.series_description
    ds.PatientName = header.patient_name
    ds.PatientID = header.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = header.study_instance_uid
    ds.SeriesInstanceUID = header.series_instance_uid
    ds.StudyID = header.study_id
    ds.SeriesNumber = 1
    ds.InstanceNumber = spec.instance_number
    ds.PatientOrientation = ""
    ds.HeartRate = round(spec.heart_rate_bpm)
    ds.BodyPartExamined = "HEART"
    if spec.view is not None:
        value, scheme, meaning = VIEW_CODES[spec.view]
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = scheme
        item.CodeMeaning = meaning
        ds.ViewCodeSequence = DicomSequence([item])


def _region(region: UltrasoundRegion) -> Dataset:
    item = Dataset()
    item.RegionSpatialFormat = region.spatial_format
    item.RegionDataType = region.data_type
    item.RegionFlags = region.flags
    item.RegionLocationMinX0 = region.min_x0
    item.RegionLocationMinY0 = region.min_y0
    item.RegionLocationMaxX1 = region.max_x1
    item.RegionLocationMaxY1 = region.max_y1
    item.PhysicalUnitsXDirection = region.physical_units_x
    item.PhysicalUnitsYDirection = region.physical_units_y
    item.PhysicalDeltaX = float(region.physical_delta_x)
    item.PhysicalDeltaY = float(region.physical_delta_y)
    if region.reference_pixel_x0 is not None:
        item.ReferencePixelX0 = region.reference_pixel_x0
    if region.reference_pixel_y0 is not None:
        item.ReferencePixelY0 = region.reference_pixel_y0
    if region.reference_physical_value_x is not None:
        item.ReferencePixelPhysicalValueX = float(region.reference_physical_value_x)
    if region.reference_physical_value_y is not None:
        item.ReferencePixelPhysicalValueY = float(region.reference_physical_value_y)
    return item


def _pixels(ds: Dataset, frames: npt.NDArray[np.uint8], compressed: bool) -> None:
    ds.Rows = int(frames.shape[1])
    ds.Columns = int(frames.shape[2])
    ds.SamplesPerPixel = 3
    ds.PlanarConfiguration = 0
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.UltrasoundColorDataPresent = 0  # no colour flow; the ECG trace is a graphic
    if not compressed:
        ds.PhotometricInterpretation = "RGB"
        ds.LossyImageCompression = "00"
        ds.PixelData = b"".join(_rgb(frame).tobytes() for frame in frames)
        return
    encoded = [encode_jpeg(_rgb(frame)) for frame in frames]
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    ratio = 3 * frames.shape[0] * ds.Rows * ds.Columns / max(1, sum(len(e) for e in encoded))
    ds.LossyImageCompressionRatio = f"{ratio:.2f}"
    ds.PixelData = encapsulate(encoded, has_bot=True)
    ds["PixelData"].VR = "OB"


def _rgb(frame: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    if frame.ndim == 3:
        return frame
    return np.repeat(frame[:, :, None], 3, axis=2)


def encode_jpeg(frame: npt.NDArray[np.uint8]) -> bytes:
    """One RGB frame as a baseline JPEG with 4:2:2 chroma subsampling."""
    buffer = io.BytesIO()
    # subsampling=1 is Pillow's 4:2:2 (chroma halved horizontally only).
    Image.fromarray(frame, "RGB").save(buffer, "JPEG", quality=JPEG_QUALITY, subsampling=1)
    return buffer.getvalue()
