"""The series a run's result objects go into, so a PACS user can tell runs apart, and the
references that tie a run's SR and overlays to each other.

Every run of a study (its first processing, and each reprocess) is a new run with a number:
its SR series is 900 + 10·run + 1, its overlay series 900 + 10·run + 2, its TID 1500
measurement report 900 + 10·run + 3 and its PDF report 900 + 10·run + 4 (911-914, 921-924,
...), each with the run's date and time as Series Date/Time and a description naming the run
("Echo Node report, run 2, supersedes run 1"), so the latest run sorts last and says so.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.coding import Code

from echo_node.results import codes

REPORT = "Echo Node report"
OVERLAYS = "Echo Node overlays"
MEASUREMENTS = "Echo Node measurements"
PDF_REPORT = "Echo Node report (PDF)"


@dataclass(frozen=True)
class Series:
    """One series of a run: number, description and the run's date and time."""

    number: int
    description: str
    started: datetime.datetime

    def apply(self, ds: Dataset) -> None:
        """Series Number, Description, Date and Time on `ds` (General Series module)."""
        ds.SeriesNumber = self.number
        ds.SeriesDescription = self.description
        ds.SeriesDate = self.started.strftime("%Y%m%d")
        ds.SeriesTime = self.started.strftime("%H%M%S")


def report_series(run: int, started: datetime.datetime) -> Series:
    after = f", supersedes run {run - 1}" if run > 1 else ""
    return Series(900 + 10 * run + 1, f"{REPORT}, run {run}{after}", started)


def overlay_series(run: int, started: datetime.datetime) -> Series:
    return Series(900 + 10 * run + 2, f"{OVERLAYS}, run {run}", started)


def measurements_series(run: int, started: datetime.datetime) -> Series:
    return Series(900 + 10 * run + 3, f"{MEASUREMENTS}, run {run}", started)


def pdf_series(run: int, started: datetime.datetime) -> Series:
    return Series(900 + 10 * run + 4, f"{PDF_REPORT}, run {run}", started)


@dataclass(frozen=True)
class Reference:
    """A result object another one references."""

    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str


def hierarchical(study_uid: str, references: list[Reference]) -> DicomSequence:
    """A Hierarchical SOP Instance Reference (PS3.3 Table C.17-3): study > series > SOP."""
    study = Dataset()
    study.StudyInstanceUID = study_uid
    series_items = []
    for series_uid in dict.fromkeys(r.series_instance_uid for r in references):
        series = Dataset()
        series.SeriesInstanceUID = series_uid
        series.ReferencedSOPSequence = DicomSequence(
            [_sop(r) for r in references if r.series_instance_uid == series_uid]
        )
        series_items.append(series)
    study.ReferencedSeriesSequence = DicomSequence(series_items)
    return DicomSequence([study])


def referenced_instance(reference: Reference, purpose: Code = codes.SOURCE_DOCUMENT) -> Dataset:
    """An item of Referenced Instance Sequence (General Reference module) with its purpose."""
    item = _sop(reference)
    code = Dataset()
    code.CodeValue = purpose.value
    code.CodingSchemeDesignator = purpose.scheme_designator
    code.CodeMeaning = purpose.meaning
    item.PurposeOfReferenceCodeSequence = DicomSequence([code])
    return item


def _sop(reference: Reference) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = reference.sop_class_uid
    item.ReferencedSOPInstanceUID = reference.sop_instance_uid
    return item
