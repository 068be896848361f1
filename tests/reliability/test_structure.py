"""echo_node.structure: every declared length against the bytes on file, on real files and on
every cut of a small one (item 3 of issue 16)."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian

from echo_node.structure import MalformedDataset, check_lengths, dataset_start
from tests.reliability import corpus

REAL_FILES = [
    "examples_ybr_color.dcm",  # US multi-frame, JPEG: encapsulated fragments
    "examples_palette.dcm",  # US, regions (nested sequences), RLE
    "image_dfl.dcm",  # deflated
    "MR_small_bigendian.dcm",
    "MR_small_implicit.dcm",
    "rtstruct.dcm",  # deep sequences
    "OBXXXX1A.dcm",  # pydicom-data: US palette with two regions
    "US1_J2KR.dcm",
]


def _check(data: bytes) -> None:
    handle = io.BytesIO(data)
    offset, syntax = dataset_start(handle)
    check_lengths(handle, offset, syntax)


@pytest.mark.parametrize("name", REAL_FILES)
def test_real_files_pass(name: str) -> None:
    path = get_testdata_file(name)
    assert path is not None
    _check(Path(path).read_bytes())


def _boundaries(instance: corpus.Instance) -> set[int]:
    """Where the data set's top-level elements end: a cut there leaves whole elements."""
    ends, offset, data = {0}, 0, instance.dataset
    while offset < len(data):
        vr = data[offset + 4 : offset + 6]
        if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT", b"UC", b"UR", b"OD", b"OF", b"OL", b"OV"):
            (length,) = struct.unpack("<L", data[offset + 8 : offset + 12])
            offset += 12 + length
        else:
            (length,) = struct.unpack("<H", data[offset + 6 : offset + 8])
            offset += 8 + length
        ends.add(offset)
    return ends


def test_every_cut_inside_an_element_is_found() -> None:
    instance = corpus.image()
    whole = instance.part10()
    meta = len(whole) - len(instance.dataset)
    boundaries = _boundaries(instance)
    missed = []
    for length in range(len(instance.dataset)):
        try:
            _check(whole[: meta + length])
        except MalformedDataset:
            continue
        if length not in boundaries:
            missed.append(length)
    assert missed == []


def test_a_cut_clip_is_found_inside_its_fragments() -> None:
    path = get_testdata_file("examples_ybr_color.dcm")
    assert path is not None
    data = Path(path).read_bytes()
    for length in (len(data) - 1, len(data) - 300, len(data) // 2, len(data) * 3 // 4):
        with pytest.raises(MalformedDataset):
            _check(data[:length])


def test_a_deflated_file_cut_short_is_found() -> None:
    path = get_testdata_file("image_dfl.dcm")
    assert path is not None
    data = Path(path).read_bytes()
    with pytest.raises(MalformedDataset, match="deflate"):
        _check(data[: len(data) - 10])


def test_unknown_vr_and_overlong_values_are_named_without_values() -> None:
    instance = corpus.image()
    whole = instance.part10()
    meta = whole[: len(whole) - len(instance.dataset)]
    with pytest.raises(MalformedDataset, match=r"unknown VR ZZ in \(0010,0010\)") as unknown:
        _check(meta + corpus.unknown_vr(instance))
    with pytest.raises(MalformedDataset) as overlong:
        _check(meta + corpus.enlarged_name_length(instance, extra=5000))
    for error in (unknown, overlong):
        assert not any(marker in str(error.value) for marker in corpus.PHI)


def test_an_item_running_past_its_sequence_is_found() -> None:
    # (0008,1140) Referenced Image Sequence, defined length 16, holding an item of 24 bytes.
    item = struct.pack("<HHL", 0xFFFE, 0xE000, 24) + struct.pack(
        "<HH2sH", 0x0008, 0x1150, b"UI", 16
    )
    item += b"1.2.3.4.5.6.7.8\x00"
    element = struct.pack("<HH2sHL", 0x0008, 0x1140, b"SQ", 0, 16) + item
    handle = io.BytesIO(element)
    with pytest.raises(MalformedDataset):
        check_lengths(handle, 0, ExplicitVRLittleEndian)
