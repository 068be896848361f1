"""The streaming multipart parser: the same parts whatever the chunking of the body."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from echo_node.web.mediatypes import content_type_parameters
from echo_node.web.multipart import MultipartError, MultipartParser, TruncatedPart


@dataclass
class Collect:
    parts: list[tuple[dict[str, str], bytes, bool]] = field(default_factory=list)
    _headers: dict[str, str] = field(default_factory=dict)
    _data: bytearray = field(default_factory=bytearray)

    def begin(self, headers: dict[str, str]) -> None:
        self._headers, self._data = headers, bytearray()

    def data(self, chunk: bytes) -> None:
        self._data += chunk

    def end(self, complete: bool) -> None:
        self.parts.append((self._headers, bytes(self._data), complete))


def _parse(body: bytes, boundary: str, sizes: list[int]) -> Collect:
    sink = Collect()
    parser = MultipartParser(boundary, sink)
    position = 0
    for size in sizes:
        parser.feed(body[position : position + size])
        position += size
    parser.feed(body[position:])
    parser.close()
    return sink


def test_parts_survive_any_chunking() -> None:
    rng = random.Random(3)
    boundary = "xyz"
    # Contents that hold pieces of the delimiter, CRLFs and dashes.
    contents = [
        b"",
        b"\r\n--xy",
        b"--xyz",
        b"a\r\n-" * 50,
        bytes(rng.randrange(256) for _ in range(3000)),
    ]
    body = b"preamble to ignore\r\n"
    for index, content in enumerate(contents):
        body += (
            f"--{boundary}  \r\nContent-Type: application/dicom\r\nX-N: {index}\r\n\r\n".encode()
        )
        body += content + b"\r\n"
    body += f"--{boundary}--\r\nepilogue".encode()
    for _ in range(200):
        sizes = [rng.randint(1, 40) for _ in range(rng.randint(0, 300))]
        sink = _parse(body, boundary, sizes)
        assert [data for _, data, _ in sink.parts] == contents
        assert [headers["x-n"] for headers, _, _ in sink.parts] == [str(i) for i in range(5)]
        assert all(complete for _, _, complete in sink.parts)


def test_faults_are_named() -> None:
    with pytest.raises(MultipartError, match="no part found"):
        _parse(b"no delimiter here", "b", [])
    with pytest.raises(TruncatedPart):
        _parse(b"--b\r\n\r\npartial", "b", [3])
    with pytest.raises(MultipartError, match="headers"):
        _parse(b"--b\r\nContent-Type: application/dicom", "b", [])
    with pytest.raises(MultipartError, match="malformed part header"):
        _parse(b"--b\r\nnot a header\r\n\r\nx\r\n--b--", "b", [])
    with pytest.raises(MultipartError, match="boundary"):
        MultipartParser("", Collect())


def test_content_type_parameters() -> None:
    media, params = content_type_parameters(
        'Multipart/Related; type="application/dicom"; boundary="a;b=c"'
    )
    assert media == "multipart/related"
    assert params == {"type": "application/dicom", "boundary": "a;b=c"}
