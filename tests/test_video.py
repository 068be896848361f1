"""Ultrasound clips as video (MPEG-2, MPEG-4 AVC/H.264, HEVC/H.265): accepted by the SCP (from
dcmtk's storescu) and STOW-RS, stored as received, decoded with PyAV to the frames that were
encoded (within a lossy codec's tolerance), analysed like any clip, and served over WADO-RS
(the instance as stored, /rendered frames decoded, /frames a clear 406).

Every clip is encoded here, from frames the test knows: a moving colour pattern, or the
phantom's TR CW Doppler spectrum, whose ground truth the analysis must find again.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.uid import generate_uid

from ai.decode import load_clip
from ai.phantom.study import generate_study
from ai.video import bitstream
from echo_node.cli.importer import import_file
from echo_node.processing import run_job
from storage.models import FindingRow, JobClip
from tests.conftest import NodeProcess, free_port, us_file
from tests.dicom_files import storescu
from tests.reliability import probes
from tests.test_processing import make_node, stable_job, truth
from tests.video import CODECS, H264, HEVC, Codec, moving_pattern, video_file

# Mean absolute difference (levels of 255, over R, G and B) allowed between the decoded and the
# encoded frames: 4:2:0 chroma subsampling of the test pattern alone costs about 3; a
# neighbouring frame differs by about 14.
MEAN_TOLERANCE = 5.0
RGB = "examples_rgb_color.dcm"  # a single-frame US Image: the header the clips are made from


def _clip(tmp_path: Path, codec: Codec, frames: np.ndarray, **changes: str) -> Path:
    changes.setdefault("SOPInstanceUID", str(generate_uid()))
    return video_file(us_file(RGB), frames, codec, tmp_path / f"{codec.encoder}.dcm", **changes)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.encoder)
def test_decoded_frames_are_the_encoded_ones(tmp_path: Path, codec: Codec) -> None:
    frames = moving_pattern(8, 64, 96)
    path = _clip(tmp_path, codec, frames)
    clip = load_clip(path)
    assert (len(clip), clip.rows, clip.columns) == (8, 64, 96)
    assert clip.decoder.startswith("av ") and "FFmpeg" in clip.decoder
    # In order, then backwards (the decoder starts again), then one frame at random.
    for index in [*range(8), 5, 2, 7]:
        decoded = clip.frames[index]
        assert decoded.shape == (64, 96, 3) and decoded.dtype == np.uint8
        error = np.abs(decoded.astype(int) - frames[index].astype(int))
        assert error.mean() < MEAN_TOLERANCE, (codec.encoder, index, error.mean())
    # A frame is told from its neighbours: the decoder returns frame i, not any frame.
    shifted = np.abs(clip.frames[3].astype(int) - frames[4].astype(int)).mean()
    assert shifted > 2 * MEAN_TOLERANCE


def test_a_stream_shorter_than_its_header_is_a_decode_error(tmp_path: Path) -> None:
    path = _clip(tmp_path, H264, moving_pattern(4, 64, 96))
    ds = dcmread(path)
    ds.NumberOfFrames = 6  # two frames more than the stream holds
    ds.save_as(path)
    clip = load_clip(path)
    assert clip.frames[3].shape == (64, 96, 3)
    with pytest.raises(ValueError, match="holds 4 frames; its header says 6"):
        clip.frames[5]


def test_scp_and_stow_store_video_as_received_and_wado_serves_it(
    tmp_path: Path, node_factory: type[NodeProcess]
) -> None:
    http_port = free_port()
    node = node_factory(
        tmp_path / "data",
        free_port(),
        extra_env={
            "http_enabled": "true",
            "http_port": str(http_port),
            "anonymous_loopback_read": "true",
        },
    ).start()
    study = str(generate_uid())
    frames = moving_pattern(8, 64, 96)
    h264 = _clip(tmp_path, H264, frames, StudyInstanceUID=study)
    hevc = _clip(tmp_path, HEVC, frames, StudyInstanceUID=study)

    sent = storescu(node.port, [h264], flag=H264.storescu_flag)
    assert sent.acknowledged == [h264], sent.output
    token = node.cli("tokens", "add", "--scope", "write").stdout.strip().splitlines()[-1]
    stowed = probes.stow(http_port, token, [hevc.read_bytes()])
    assert stowed.status_code == 200, stowed.text

    base = f"http://127.0.0.1:{http_port}/dicom-web/studies/{study}"
    for source in (h264, hevc):
        original = dcmread(source)
        path = f"{base}/series/{original.SeriesInstanceUID}/instances/{original.SOPInstanceUID}"
        # As received: the transfer syntax and the bitstream byte for byte.
        response = httpx.get(
            path, headers={"Accept": 'multipart/related; type="application/dicom"'}, timeout=30
        )
        assert response.status_code == 200, response.text
        boundary = response.headers["content-type"].split("boundary=")[1].strip('"')
        part = response.content.split(f"--{boundary}".encode())[1].split(b"\r\n\r\n", 1)[1]
        served = pydicom.dcmread(io.BytesIO(part.rsplit(b"\r\n", 1)[0]))
        assert served.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        assert bitstream(served.PixelData) == bitstream(original.PixelData)
        # Frames are one bitstream: no frame as stored, and the node says why.
        refused = httpx.get(
            f"{path}/frames/1",
            headers={"Accept": 'multipart/related; type="application/octet-stream"'},
            timeout=30,
        )
        assert refused.status_code == 406
        assert "video" in refused.text and "rendered" in refused.text
        # A frame rendered: decoded with PyAV, close to the encoded frame.
        rendered = httpx.get(
            f"{path}/frames/3/rendered", headers={"Accept": "image/png"}, timeout=30
        )
        assert rendered.status_code == 200, rendered.text
        image = np.asarray(Image.open(io.BytesIO(rendered.content)).convert("RGB"))
        assert np.abs(image.astype(int) - frames[2].astype(int)).mean() < MEAN_TOLERANCE
        # And a thumbnail, as a study browser asks for one.
        thumbnail = httpx.get(f"{path}/thumbnail", headers={"Accept": "image/jpeg"}, timeout=30)
        assert thumbnail.status_code == 200, thumbnail.text
        assert Image.open(io.BytesIO(thumbnail.content)).size[0] > 0
    status = json.loads(node.cli("status", "--json").stdout)
    assert status["instances"] == 2 and status["quarantined"] == 0


def test_a_video_doppler_clip_is_analysed_like_any_clip(tmp_path: Path) -> None:
    """The phantom's TR CW spectrum as an H.264 clip of 4 frames: processed by a job like any
    clip, its TR Vmax within 5 % of the ground truth, the decoder on record."""
    phantom = tmp_path / "phantom"
    generate_study(phantom, 3, compressed=False, rows=480, columns=640, cycles=1, frame_rate=20)
    spectrum = dcmread(phantom / "tr_cw.dcm").pixel_array
    frames = np.repeat(spectrum[None], 4, axis=0)
    tr = truth(phantom, "tr_cw")
    clip = video_file(
        phantom / "tr_cw.dcm", frames, H264, tmp_path / "tr_cw_h264.dcm", FrameTime="50"
    )
    node = make_node(tmp_path / "data", ECHO_NODE_DESTINATIONS="[]")
    try:
        assert import_file(node.ingestor, clip).outcome == "stored"
        outcome = run_job(node, stable_job(node), None)
        assert outcome.state == "done", outcome.message
        with node.sessions() as session:
            (found,) = session.query(FindingRow).filter_by(name="TR_Vmax").all()
            (record,) = session.query(JobClip).all()
            detail = record.detail
        want = abs(tr["expected"]["TR_Vmax"]["value"] * 100)  # m/s → cm/s
        assert abs(abs(found.value) - want) <= 0.05 * want, (found.value, want)
        assert record.view == "doppler"
        assert detail["result"]["decoder"].startswith("av ")
    finally:
        node.engine.dispose()
