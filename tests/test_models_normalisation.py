"""Training-set mean/std: stand-in values are flagged until `models normalise` computes them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ai.clip import ArrayFrames
from ai.decode import load_clip
from ai.models.normalisation import STAND_IN_FLAG, channel_statistics, read_video
from ai.phantom import generate_study
from ai.pipelines import a4c
from ai.pipelines.a4c import EF_MODEL, A4cOptions, run_a4c
from ai.pipelines.a4c_frames import clip_window, dynamic_frames
from tests.test_models import random_state, save_checkpoint, small_spec, store_with
from tests.test_models_cli import listed, run


def test_statistics_are_over_every_pixel_of_every_video() -> None:
    generator = np.random.default_rng(4)
    videos = [
        generator.integers(0, 256, (frames, rows, 7, 3), dtype=np.uint8)
        for frames, rows in ((3, 5), (10, 2), (1, 9))
    ]
    stats = channel_statistics(iter(videos))
    pixels = np.concatenate([v.reshape(-1, 3) for v in videos]).astype(np.float64)
    np.testing.assert_allclose(stats.mean, pixels.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.std, pixels.std(axis=0), rtol=1e-9)
    assert stats.videos == 3 and stats.pixels == pixels.shape[0]
    with pytest.raises(ValueError, match="no video pixels"):
        channel_statistics(iter([]))


def test_videos_are_read_as_rgb_from_avi_and_dicom(tmp_path: Path) -> None:
    path = tmp_path / "red.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25, (64, 48))
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[..., 2] = 200  # red, in OpenCV's BGR order
    for _ in range(4):
        writer.write(frame)
    writer.release()
    video = read_video(path)
    assert video.shape == (4, 48, 64, 3)
    red, green, blue = video.reshape(-1, 3).mean(axis=0)
    assert red > 180 and green < 20 and blue < 20

    study = generate_study(tmp_path / "study", seed=3, rows=120, columns=160)
    a4c = study[1]
    clip = load_clip(a4c)
    # A DICOM clip: the frames as the A4C pipeline gives them to a 112x112 network.
    window = clip_window(clip, (112, 112))
    expected = dynamic_frames(np.stack([clip.frames[i] for i in range(len(clip))]), window.geometry)
    video = read_video(a4c)
    assert video.shape == (len(clip), 112, 112, 3)
    np.testing.assert_array_equal(video, expected)
    assert read_video(a4c, (64, 48)).shape == (len(clip), 64, 48, 3)


def network_inputs(monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """Every batch of clips handed to the EF network, as it reached the network.

    The test looks at the network's input, not its output: a random-weight r2plus1d_18 can
    answer the same LVEF for different inputs on one CPU's floating-point path (seen on an AMD
    EPYC with AVX-512) and not on another's.
    """
    seen: list[torch.Tensor] = []
    predict = a4c.predict_clips

    def recording(model: object, clips: torch.Tensor) -> object:
        seen.append(clips.detach().clone())
        return predict(model, clips)  # type: ignore[arg-type]

    monkeypatch.setattr(a4c, "predict_clips", recording)
    return seen


@pytest.mark.model
def test_ef_is_flagged_until_the_site_computes_the_statistics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    models = data / "models"
    ef = small_spec(EF_MODEL, frames=3, period=2, input_height=32, input_width=32)
    assert ef.normalisation == "stand-in"
    models.mkdir(parents=True)
    save_checkpoint(models / ef.file, random_state(ef, seed=2), "module.", wrapped=True)
    study = generate_study(tmp_path / "study", seed=9, rows=120, columns=160)
    phantom = load_clip(study[1])
    clip = dataclasses.replace(
        phantom, frames=ArrayFrames(np.stack(list(phantom.iter_frames(range(6)))))
    )
    fed = network_inputs(monkeypatch)
    (before,) = run_a4c(clip, store_with(models, ef), A4cOptions()).findings
    assert STAND_IN_FLAG in before.flags
    assert listed(data)[EF_MODEL]["normalisation"] == "stand-in"
    fed_before = torch.cat(fed)
    fed.clear()

    code, output = run(data, "models", "normalise", EF_MODEL, str(tmp_path / "study"))
    assert code == 0, output
    videos = sorted((tmp_path / "study").glob("*.dcm"))
    expected = channel_statistics(read_video(p) for p in videos)
    assert f"over {len(videos)} videos" in output
    assert listed(data)[EF_MODEL]["normalisation"] == "site"

    store = store_with(models, ef)
    assert store.spec(EF_MODEL).mean == pytest.approx(expected.mean)
    assert store.spec(EF_MODEL).std == pytest.approx(expected.std)
    (after,) = run_a4c(clip, store, A4cOptions()).findings
    assert STAND_IN_FLAG not in after.flags
    fed_after = torch.cat(fed)

    # The same pixels, normalised with the site's statistics instead of the stand-in ones:
    # undo the stand-in normalisation, apply the computed one, and it must be what was fed.
    def per_channel(values: tuple[float, ...]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float64).reshape(1, 3, 1, 1, 1)

    pixels = fed_before.double() * per_channel(ef.std) + per_channel(ef.mean)
    renormalised = (pixels - per_channel(expected.mean)) / per_channel(expected.std)
    assert fed_after.shape == fed_before.shape
    torch.testing.assert_close(fed_after.double(), renormalised, rtol=0, atol=1e-4)
    assert not torch.allclose(fed_after, fed_before, atol=1e-2)  # the statistics really differ


def test_normalise_refuses_an_unknown_model_and_an_empty_directory(tmp_path: Path) -> None:
    assert run(tmp_path, "models", "normalise", "no-such-model", str(tmp_path))[0] == 2
    (tmp_path / "empty").mkdir()
    code, output = run(tmp_path, "models", "normalise", EF_MODEL, str(tmp_path / "empty"))
    assert code == 1 and "no .avi, .mp4 or .dcm file" in output
