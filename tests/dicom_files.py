"""Test data made from real ultrasound files: re-UIDed copies, damaged copies, and dcmtk runs."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import generate_uid

from tests.conftest import DCMTK_ENV

# storescu must propose the file's own transfer syntax, or it transcodes (or fails to).
STORESCU_FLAG = {
    "1.2.840.10008.1.2": "-xi",
    "1.2.840.10008.1.2.1": "-xe",
    "1.2.840.10008.1.2.2": "-xb",
    "1.2.840.10008.1.2.5": "-xr",
    "1.2.840.10008.1.2.4.50": "-xy",
    "1.2.840.10008.1.2.4.70": "-xs",
    "1.2.840.10008.1.2.4.90": "-xv",
    "1.2.840.10008.1.2.4.91": "-xw",
}


def reuid_copies(source: Path, out_dir: Path, count: int, *, series_per: int = 0) -> list[Path]:
    """``count`` copies of ``source`` as new instances of one new study.

    ``series_per`` > 0 starts a new series every that many instances.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = dcmread(source)
    dataset.StudyInstanceUID = generate_uid()
    paths = []
    for index in range(count):
        if index == 0 or (series_per and index % series_per == 0):
            dataset.SeriesInstanceUID = generate_uid()
        dataset.SOPInstanceUID = generate_uid()
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        path = out_dir / f"img{index:04d}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


@dataclass(frozen=True)
class StoreRun:
    returncode: int
    acknowledged: list[Path]  # files storescu reported as stored with status Success
    output: str


_SENDING = re.compile(r"Sending file: (.+)$")
_SUCCESS = re.compile(r"Received Store Response \(Success\)")


def storescu(
    port: int,
    files: list[Path],
    *,
    flag: str | None = None,
    timeout: float = 300,
    options: Sequence[str] = (),
) -> StoreRun:
    """Push files with dcmtk storescu over one association; which ones were acknowledged.

    ``options``: more storescu flags, e.g. its TLS ones (+tls KEY CERT, +cf CA)."""
    flag = (
        flag
        or STORESCU_FLAG[
            str(dcmread(files[0], stop_before_pixels=True).file_meta.TransferSyntaxUID)
        ]
    )
    result = subprocess.run(
        [
            "storescu",
            "-v",
            flag,
            "-aet",
            "STORESCU",
            "-aec",
            "ECHONODE",
            "-to",
            "30",
            *options,
            "127.0.0.1",
            str(port),
            *map(str, files),
        ],
        env=DCMTK_ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return StoreRun(
        result.returncode,
        parse_acknowledged(result.stdout + result.stderr),
        result.stdout + result.stderr,
    )


def parse_acknowledged(output: str) -> list[Path]:
    acknowledged, current = [], None
    for line in output.splitlines():
        if match := _SENDING.search(line):
            current = Path(match.group(1).strip())
        elif _SUCCESS.search(line) and current is not None:
            acknowledged.append(current)
            current = None
    return acknowledged
