"""Every length a Part 10 file declares, checked against the bytes it holds (PS3.5 §7).

pydicom reads leniently: a value declared 256 bytes long of which 232 are on file is returned
short, a sequence cut inside its items ends early with a warning, a VR it does not know fails
only when the value is used. So a file cut anywhere but inside a large value passes for
complete. This walks the element structure without decoding any value, descending into
sequences and items and over encapsulated fragments (skipped by seeking, so a 500 MB clip is
never read), and raises MalformedDataset naming the first element that does not fit: cut
short, running past the item that holds it, or of an unknown VR.

Messages name tags, VRs and byte counts only, never a value: they end up in logs.
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

from pydicom.datadict import dictionary_VR
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, STANDARD_VR

_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_PIXEL_DATA = 0x7FE00010
_KNOWN_VRS = frozenset(vr.encode("ascii") for vr in STANDARD_VR)
_LONG_VRS = frozenset(vr.encode("ascii") for vr in EXPLICIT_VR_LENGTH_32)
_FRAGMENT_VRS = (b"OB", b"OW", b"UN")
# Deeper nesting than this is not a real data set but an attempt to exhaust the stack.
_MAX_DEPTH = 32
_INFLATE_CHUNK = 1 << 16


class MalformedDataset(ValueError):
    """A declared length does not fit the bytes on file; the message says where."""


def _tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


class _Source:
    """Bytes of the data set, read forward: a file (skips seek), or its inflated stream."""

    def __init__(self, handle: BinaryIO, offset: int, size: int, deflated: bool) -> None:
        self._handle = handle
        self._size = size
        self.position = 0
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS) if deflated else None
        self._buffer = b""
        handle.seek(offset)

    def read(self, count: int) -> bytes:
        if self._inflater is None:
            data = self._handle.read(count)
        else:
            while len(self._buffer) < count and self._inflate():
                pass
            data, self._buffer = self._buffer[:count], self._buffer[count:]
        self.position += len(data)
        return data

    def skip(self, count: int) -> int:
        if self._inflater is None:
            start = self._handle.tell()
            end = min(start + count, self._size)
            self._handle.seek(end)
            skipped = end - start
            self.position += skipped
            return skipped
        skipped = 0
        while skipped < count:
            data = self.read(min(count - skipped, _INFLATE_CHUNK))
            if not data:
                break
            skipped += len(data)
        return skipped

    def _inflate(self) -> bool:
        assert self._inflater is not None
        if self._inflater.eof:
            return False
        compressed = self._handle.read(_INFLATE_CHUNK)
        if not compressed:
            raise MalformedDataset("deflated data set cut short")
        try:
            self._buffer += self._inflater.decompress(compressed)
        except zlib.error:
            raise MalformedDataset("deflated data set is not a valid deflate stream") from None
        return True


class _Walker:
    def __init__(self, source: _Source, explicit: bool, little: bool) -> None:
        self.source = source
        self.explicit = explicit
        self.endian = "<" if little else ">"

    def dataset(self, end: int | None, depth: int, until: int | None = None) -> None:
        """Elements up to ``end`` (None: the end of the file), or up to the ``until``
        delimiter tag of an undefined-length item."""
        if depth > _MAX_DEPTH:
            raise MalformedDataset(f"sequences nested more than {_MAX_DEPTH} deep")
        while end is None or self.source.position < end:
            head = self.source.read(4)
            if not head and end is None and until is None:
                return
            if len(head) < 4:
                raise MalformedDataset(f"cut short inside an element tag ({len(head)} of 4 bytes)")
            group, element = struct.unpack(f"{self.endian}HH", head)
            tag = group << 16 | element
            if tag == until:
                self._length(tag)
                return
            self.element(tag, end, depth)
        if end is not None and self.source.position != end:
            raise MalformedDataset("an element runs past the end of the item that holds it")
        if until is not None:
            raise MalformedDataset("item without its delimiter")

    def _length(self, tag: int) -> int:
        data = self.source.read(4)
        if len(data) < 4:
            raise MalformedDataset(f"cut short in the length of {_tag_text(tag)}")
        return int(struct.unpack(f"{self.endian}L", data)[0])

    def element(self, tag: int, end: int | None, depth: int) -> None:
        if tag >> 16 == 0xFFFE:
            raise MalformedDataset(f"item tag {_tag_text(tag)} outside a sequence")
        vr: bytes | None = None
        if self.explicit:
            vr = self.source.read(2)
            if len(vr) < 2:
                raise MalformedDataset(f"cut short in the VR of {_tag_text(tag)}")
            if vr not in _KNOWN_VRS:
                shown = vr.decode("ascii") if vr.isalpha() and vr.isupper() else f"0x{vr.hex()}"
                raise MalformedDataset(f"unknown VR {shown} in {_tag_text(tag)}")
            if vr in _LONG_VRS:
                if len(self.source.read(2)) < 2:
                    raise MalformedDataset(f"cut short in the header of {_tag_text(tag)}")
                length = self._length(tag)
            else:
                data = self.source.read(2)
                if len(data) < 2:
                    raise MalformedDataset(f"cut short in the length of {_tag_text(tag)}")
                length = int(struct.unpack(f"{self.endian}H", data)[0])
        else:
            length = self._length(tag)
        if length == _UNDEFINED:
            self._undefined(tag, vr, depth)
            return
        value_end = self.source.position + length
        if end is not None and value_end > end:
            raise MalformedDataset(f"{_tag_text(tag)} runs past the end of its item")
        if self._is_sequence(tag, vr):
            self._items(value_end, depth, fragments=False)
            return
        skipped = self.source.skip(length)
        if skipped < length:
            raise MalformedDataset(
                f"truncated: {_tag_text(tag)} declares {length} bytes, {skipped} on file"
            )

    def _is_sequence(self, tag: int, vr: bytes | None) -> bool:
        if vr is not None:
            return vr == b"SQ"
        try:
            return bool(dictionary_VR(tag) == "SQ")
        except KeyError:  # private or unknown: its bytes are checked, not its content
            return False

    def _undefined(self, tag: int, vr: bytes | None, depth: int) -> None:
        if vr == b"UN":
            # PS3.5 §6.2.2: an undefined-length UN is a sequence in Implicit VR Little Endian.
            inner = _Walker(self.source, explicit=False, little=True)
            inner._items(None, depth, fragments=False)
            return
        fragments = tag == _PIXEL_DATA or vr in _FRAGMENT_VRS
        if vr not in (None, b"SQ") and not fragments:
            raise MalformedDataset(f"{_tag_text(tag)} of VR {vr!r} has an undefined length")
        self._items(None, depth, fragments=fragments)

    def _items(self, end: int | None, depth: int, fragments: bool) -> None:
        """Items up to ``end``, or (undefined length) up to the sequence delimiter."""
        while end is None or self.source.position < end:
            head = self.source.read(4)
            if len(head) < 4:
                raise MalformedDataset("cut short inside a sequence")
            group, element = struct.unpack(f"{self.endian}HH", head)
            tag = group << 16 | element
            length = self._length(tag)
            if tag == _SEQUENCE_END and end is None:
                return
            if tag != _ITEM:
                raise MalformedDataset(f"{_tag_text(tag)} where a sequence item was expected")
            if length == _UNDEFINED:
                if fragments:
                    raise MalformedDataset("encapsulated fragment of undefined length")
                self.dataset(None, depth + 1, until=_ITEM_END)
                continue
            item_end = self.source.position + length
            if end is not None and item_end > end:
                raise MalformedDataset("a sequence item runs past the end of its sequence")
            if fragments:
                skipped = self.source.skip(length)
                if skipped < length:
                    raise MalformedDataset(
                        f"truncated: a fragment declares {length} bytes, {skipped} on file"
                    )
            else:
                self.dataset(item_end, depth + 1)
        if self.source.position != end:
            raise MalformedDataset("a sequence item runs past the end of its sequence")


def dataset_start(handle: BinaryIO) -> tuple[int, UID]:
    """Where the data set begins after the File Meta Information (PS3.10 §7.1), and its
    transfer syntax; every meta element's length is checked on the way. A file without the
    preamble and "DICM" is a bare data set in Implicit VR Little Endian."""
    handle.seek(0)
    if handle.read(132)[128:] != b"DICM":
        return 0, ImplicitVRLittleEndian
    syntax = ImplicitVRLittleEndian
    while True:
        position = handle.tell()
        head = handle.read(8)
        if len(head) < 8 or struct.unpack("<H", head[:2])[0] != 0x0002:
            handle.seek(position)
            return position, syntax
        tag = struct.unpack("<L", head[2:4] + head[:2])[0]
        vr = head[4:6]
        if vr in _LONG_VRS:
            extra = handle.read(4)
            if len(extra) < 4:
                raise MalformedDataset(f"cut short in the header of {_tag_text(tag)}")
            length = int(struct.unpack("<L", extra)[0])
        elif vr in _KNOWN_VRS:
            length = int(struct.unpack("<H", head[6:8])[0])
        else:
            raise MalformedDataset(f"File Meta Information element {_tag_text(tag)} is damaged")
        value = handle.read(length)
        if len(value) < length:
            raise MalformedDataset(f"truncated in the File Meta Information at {_tag_text(tag)}")
        if tag == 0x00020010:
            syntax = UID(value.decode("ascii", "replace").rstrip("\x00 "))


def check_lengths(handle: BinaryIO, offset: int, syntax: UID) -> None:
    """Walk the data set that starts at ``offset`` of ``handle``; raise MalformedDataset."""
    size = handle.seek(0, 2)
    deflated = syntax == DeflatedExplicitVRLittleEndian
    try:
        little = deflated or syntax.is_little_endian
    except ValueError:  # a private transfer syntax: its data set is Explicit VR Little Endian
        little = True
    source = _Source(handle, offset, size, deflated)
    first = source.read(6)
    # As pydicom does: the first element's VR bytes tell explicit from implicit VR, whatever
    # the transfer syntax says (some senders get it wrong).
    explicit = first[4:6] in _KNOWN_VRS
    source = _Source(handle, offset, size, deflated)
    _Walker(source, explicit, little).dataset(None, 0)
