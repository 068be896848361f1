"""The PDF report as an Encapsulated PDF Storage instance (PS3.3 A.45.1) in the study.

highdicom has no encapsulated-document class; its SOPClass base writes the common modules
(Patient, General Study, the series, General Equipment, SOP Common) and this module adds the
Encapsulated Document Series and Encapsulated Document modules and SC Equipment (PS3.3
C.24.1, C.24.2, C.8.6.1).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from echo_node.results.device import DeviceInfo
from echo_node.results.patient import copy_patient_and_study
from echo_node.results.series import Series, pdf_series

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
DOCUMENT_TITLE = "Echocardiography measurements"


def build_encapsulated_pdf(
    pdf: bytes,
    sources: Sequence[Dataset],
    *,
    node: DeviceInfo,
    series_uid: str | None = None,
    instance_uid: str | None = None,
    series: Series | None = None,
    now: datetime.datetime | None = None,
) -> Dataset:
    """`pdf` in an Encapsulated PDF instance of the study of `sources` (the clips it reports
    on, listed as its Source Instance Sequence; headers are enough), in the run's PDF series
    `series` (run 1 when not given)."""
    if not pdf.startswith(b"%PDF-"):
        raise ValueError("pdf: not a PDF document")
    if not sources:
        raise ValueError("sources: at least one source instance is needed")
    first = sources[0]
    now = now or datetime.datetime.now(datetime.UTC).astimezone()
    series = series or pdf_series(1, now)
    dataset = hd.SOPClass(
        study_instance_uid=first.StudyInstanceUID,
        series_instance_uid=series_uid or generate_uid(),
        series_number=series.number,
        sop_instance_uid=instance_uid or generate_uid(),
        sop_class_uid=ENCAPSULATED_PDF,
        instance_number=1,
        modality="DOC",
        manufacturer=node.manufacturer,
        transfer_syntax_uid=ExplicitVRLittleEndian,
        series_description=series.description,
        manufacturer_model_name=node.model_name,
        software_versions=node.software_version,
        content_date=now.date(),
        content_time=now.time(),
    )
    series.apply(dataset)
    copy_patient_and_study(dataset, first)
    # SC Equipment (Type 1 Conversion Type): made on a workstation from the images.
    dataset.ConversionType = "WSD"
    # Encapsulated Document module.
    dataset.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    dataset.BurnedInAnnotation = "YES"  # the pages print the patient's name and ID
    dataset.DocumentTitle = DOCUMENT_TITLE
    dataset.ConceptNameCodeSequence = DicomSequence()
    dataset.VerificationFlag = "UNVERIFIED"  # machine output: nobody has signed it
    dataset.SourceInstanceSequence = DicomSequence([_reference(s) for s in sources])
    dataset.MIMETypeOfEncapsulatedDocument = "application/pdf"
    dataset.EncapsulatedDocumentLength = len(pdf)
    # OB values have even length: an odd document gets one padding byte, which readers drop
    # by the length above.
    dataset.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    return dataset


def _reference(source: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = source.SOPClassUID
    item.ReferencedSOPInstanceUID = source.SOPInstanceUID
    return item
