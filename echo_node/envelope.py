"""Putting a dataset's bytes, unchanged, into the node's Part 10 envelope.

Files arriving by import or STOW-RS get the same File Meta Information that pynetdicom writes
for C-STORE, so the same dataset yields the same file (and sha256) whichever way it came.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import BinaryIO

from pydicom import dcmread
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID, ImplicitVRLittleEndian
from pynetdicom.dsutils import create_file_meta


def dataset_offset_and_syntax(handle: BinaryIO) -> tuple[int, UID]:
    """Where the dataset starts in a file and its transfer syntax (raw datasets: implicit LE)."""
    handle.seek(0)
    preamble = read_preamble(handle, force=True)
    if preamble is None and handle.read(4) != b"DICM":
        handle.seek(0)
        return 0, ImplicitVRLittleEndian
    meta = _read_file_meta_info(handle)
    return handle.tell(), UID(meta.get("TransferSyntaxUID", ImplicitVRLittleEndian))


def rewrap(source: Path, target: Path) -> None:
    """Write ``source``'s dataset bytes to ``target`` behind the node's own file meta.

    Raises whatever pydicom raises when ``source`` is not readable DICOM; the caller then
    quarantines the original bytes instead.
    """
    with source.open("rb") as handle:
        offset, syntax = dataset_offset_and_syntax(handle)
        handle.seek(0)
        header = dcmread(
            handle,
            stop_before_pixels=True,
            force=True,
            specific_tags=[
                "SOPClassUID",
                "SOPInstanceUID",
            ],
        )
        meta = create_file_meta(
            sop_class_uid=header.SOPClassUID,
            sop_instance_uid=header.SOPInstanceUID,
            transfer_syntax=syntax,
        )
        handle.seek(offset)
        with target.open("wb") as out:
            out.write(b"\x00" * 128 + b"DICM")
            write_file_meta_info(out, meta)  # type: ignore[arg-type]
            shutil.copyfileobj(handle, out, 1 << 20)
