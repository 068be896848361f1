"""dicomweb-client against the node: store real ultrasound files, search, retrieve, frames."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.uid import generate_uid

from echo_node.web import qido
from tests.conftest import us_file
from tests.test_web_support import WebNode, web  # noqa: F401 - the fixture

YBR = "examples_ybr_color.dcm"  # 30 frames, JPEG baseline
RGB = "examples_rgb_color.dcm"  # 1 frame, explicit VR little endian


def _copy(name: str, tmp: Path, **changes: str) -> Dataset:
    """A re-UIDed copy, so each test has its own study."""
    dataset = dcmread(us_file(name))
    dataset.StudyInstanceUID = changes.pop("study", generate_uid())
    dataset.SeriesInstanceUID = generate_uid()
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    for keyword, value in changes.items():
        setattr(dataset, keyword, value)
    path = tmp / f"{dataset.SOPInstanceUID}.dcm"
    dataset.save_as(path, enforce_file_format=True)
    return dcmread(path)


@pytest.fixture
def client(web: WebNode) -> DICOMwebClient:  # noqa: F811
    return DICOMwebClient(web.url, headers=web.auth())


def test_store_search_retrieve_byte_exact(
    web: WebNode,  # noqa: F811
    client: DICOMwebClient,
    tmp_path: Path,
) -> None:
    ybr = _copy(YBR, tmp_path, PatientName="Doe^Jane", StudyDate="20240105")
    rgb = _copy(RGB, tmp_path, study=ybr.StudyInstanceUID, PatientName="Doe^Jane")
    other = _copy(RGB, tmp_path, PatientName="Roe^Rick", StudyDate="20230301")

    response = client.store_instances([ybr, rgb, other])
    stored = {item.ReferencedSOPInstanceUID for item in response.ReferencedSOPSequence}
    assert stored == {ybr.SOPInstanceUID, rgb.SOPInstanceUID, other.SOPInstanceUID}
    assert "FailedSOPSequence" not in response

    # Matching: wildcard on names (case-insensitive), date ranges, UID lists, modalities.
    def studies(**filters: str) -> set[str]:
        found = client.search_for_studies(search_filters=filters)
        return {Dataset.from_json(item).StudyInstanceUID for item in found}

    assert studies(PatientName="doe*") == {ybr.StudyInstanceUID}
    assert studies(PatientName="?oe^*") == {ybr.StudyInstanceUID, other.StudyInstanceUID}
    assert studies(StudyDate="20240101-20241231") == {ybr.StudyInstanceUID}
    assert studies(StudyDate="-20231231") == {other.StudyInstanceUID}
    assert studies(StudyInstanceUID=f"{other.StudyInstanceUID},{ybr.StudyInstanceUID}") == {
        ybr.StudyInstanceUID,
        other.StudyInstanceUID,
    }
    assert studies(ModalitiesInStudy="US") == {ybr.StudyInstanceUID, other.StudyInstanceUID}
    assert studies(ModalitiesInStudy="CT") == set()

    (study,) = [
        Dataset.from_json(item)
        for item in client.search_for_studies(search_filters={"PatientName": "Doe^Jane"})
    ]
    assert study.NumberOfStudyRelatedInstances == 2
    assert study.NumberOfStudyRelatedSeries == 2
    assert study.ModalitiesInStudy == "US"
    assert str(study.PatientName) == "Doe^Jane"

    # limit/offset page through the results without overlap.
    first = client.search_for_studies(limit=1, offset=0)
    second = client.search_for_studies(limit=1, offset=1)
    assert len(first) == len(second) == 1 and first != second

    instances = client.search_for_instances(
        study_instance_uid=ybr.StudyInstanceUID, fields=["PatientSex", "Manufacturer"]
    )
    by_uid = {Dataset.from_json(item).SOPInstanceUID: Dataset.from_json(item) for item in instances}
    assert set(by_uid) == {ybr.SOPInstanceUID, rgb.SOPInstanceUID}
    found = by_uid[ybr.SOPInstanceUID]
    assert found.NumberOfFrames == 30
    assert found.Manufacturer == ybr.Manufacturer  # includefield: read from the file header
    assert found.Rows == ybr.Rows

    # Retrieval gives the same dataset, element for element, and the same pixel bytes.
    for original in (ybr, rgb):
        got = client.retrieve_instance(
            original.StudyInstanceUID, original.SeriesInstanceUID, original.SOPInstanceUID
        )
        assert got == original
        assert got.PixelData == original.PixelData
    whole = client.retrieve_study(ybr.StudyInstanceUID)
    assert {item.SOPInstanceUID for item in whole} == {ybr.SOPInstanceUID, rgb.SOPInstanceUID}

    # A single frame as stored: the JPEG fragment of frame 7.
    (frame,) = client.retrieve_instance_frames(
        ybr.StudyInstanceUID, ybr.SeriesInstanceUID, ybr.SOPInstanceUID, [7]
    )
    assert frame == get_frame(ybr.PixelData, 6, number_of_frames=30)
    (native,) = client.retrieve_instance_frames(
        rgb.StudyInstanceUID, rgb.SeriesInstanceUID, rgb.SOPInstanceUID, [1]
    )
    assert native == rgb.PixelData

    metadata = client.retrieve_instance_metadata(
        ybr.StudyInstanceUID, ybr.SeriesInstanceUID, ybr.SOPInstanceUID
    )
    meta = Dataset.from_json(metadata)
    assert meta.SOPInstanceUID == ybr.SOPInstanceUID
    assert meta.NumberOfFrames == 30 and "PixelData" not in meta
    assert str(meta.PatientName) == "Doe^Jane"

    rendered = httpx.get(
        f"{web.url}/studies/{ybr.StudyInstanceUID}/series/{ybr.SeriesInstanceUID}"
        f"/instances/{ybr.SOPInstanceUID}/frames/3/rendered",
        headers={**web.auth(web.read_token), "Accept": "image/png"},
    )
    assert rendered.status_code == 200 and rendered.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(rendered.content))
    assert image.size == (ybr.Columns, ybr.Rows) and image.mode == "RGB"


def test_retrieve_errors(
    web: WebNode,  # noqa: F811
    client: DICOMwebClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rgb = _copy(RGB, tmp_path)
    client.store_instances([rgb])
    base = f"{web.url}/studies/{rgb.StudyInstanceUID}"
    headers = web.auth(web.read_token)
    missing = httpx.get(f"{web.url}/studies/1.2.3.4", headers=headers)
    assert missing.status_code == 404 and "message" in missing.json()
    # Transcoding is not offered: another syntax is refused, the stored one accepted.
    jpeg = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'
    assert httpx.get(base, headers={**headers, "Accept": jpeg}).status_code == 406
    stored = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1'
    assert httpx.get(base, headers={**headers, "Accept": stored}).status_code == 200
    frame = f"{base}/series/{rgb.SeriesInstanceUID}/instances/{rgb.SOPInstanceUID}/frames/2"
    answer = httpx.get(frame, headers=headers)
    assert answer.status_code == 404 and "frame 2" in answer.json()["message"]
    # OHIF asks for octet-stream in any syntax: compressed frames come as stored, labelled.
    ybr = _copy(YBR, tmp_path)
    client.store_instances([ybr])
    frames = (
        f"{web.url}/studies/{ybr.StudyInstanceUID}/series/{ybr.SeriesInstanceUID}"
        f"/instances/{ybr.SOPInstanceUID}/frames/2,30"
    )
    any_syntax = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
    answer = httpx.get(frames, headers={**headers, "Accept": any_syntax})
    assert answer.status_code == 200
    boundary = answer.headers["content-type"].split("boundary=")[1].encode()
    parts = answer.content.split(b"--" + boundary)[1:-1]
    assert len(parts) == 2
    head, _, data = parts[1].partition(b"\r\n\r\n")
    assert b"transfer-syntax=1.2.840.10008.1.2.4.50" in head
    assert data[:-2] == get_frame(ybr.PixelData, 29, number_of_frames=30)
    strict = 'multipart/related; type="application/octet-stream"'
    assert httpx.get(frames, headers={**headers, "Accept": strict}).status_code == 406
    beyond = httpx.get(frames.replace("2,30", "31"), headers=headers)
    assert beyond.status_code == 404 and "frame 31" in beyond.json()["message"]

    # Keys the index cannot match are ignored with a Warning; unknown names are an error.
    ignored = httpx.get(f"{web.url}/studies", params={"PatientSex": "F"}, headers=headers)
    assert ignored.status_code == 200 and "PatientSex" in ignored.headers["warning"]
    unknown = httpx.get(f"{web.url}/studies", params={"NoSuchKeyword": "1"}, headers=headers)
    assert unknown.status_code == 400 and "NoSuchKeyword" in unknown.json()["message"]
    # More matches than the node returns at once: said in a Warning, reachable by offset.
    monkeypatch.setattr(qido, "DEFAULT_LIMIT", 1)
    capped = httpx.get(f"{web.url}/studies", headers=headers)
    assert len(capped.json()) == 1 and "additional results" in capped.headers["warning"]
    assert len(httpx.get(f"{web.url}/studies?offset=1", headers=headers).json()) == 1

    bad = httpx.get(f"{web.url}/studies", params={"limit": "x"}, headers=headers)
    assert bad.status_code == 400 and "limit" in bad.json()["message"]
