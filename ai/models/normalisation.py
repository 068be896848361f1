"""Per-channel mean/std for models whose checkpoint does not carry its training statistics.

EchoNet-Dynamic normalises every pixel with the mean and std of its training videos (0-255
scale, per RGB channel, over every pixel of 128 randomly drawn videos); neither the repository
nor the checkpoints hold the values. The registry marks such entries `normalisation =
"stand-in"` and their findings carry STAND_IN_FLAG. A site that holds the training videos (the
EchoNet-Dynamic dataset is distributed under a research agreement) computes the statistics by
the same procedure with `echo-node models normalise`; the result is kept beside the checkpoint
and replaces the stand-in.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from ai.decode import load_clip
from ai.models.registry import ModelSpec
from ai.pipelines.a4c_frames import clip_window, dynamic_frames

STAND_IN_FLAG = "normalisation_stand_in"
SITE = "site"  # ModelSpec.normalisation of statistics computed here
OVERRIDE_SUFFIX = ".normalisation.json"
VIDEO_SUFFIXES = (".avi", ".mp4", ".dcm")


@dataclass(frozen=True)
class ChannelStatistics:
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    videos: int
    pixels: int  # per channel


def channel_statistics(videos: Iterable[npt.NDArray[np.uint8]]) -> ChannelStatistics:
    """Mean and std per channel over every pixel of every (frames, rows, columns, 3) video.

    Sums are kept in float64 per video, so hundreds of long clips add up without overflow and
    without holding more than one video in memory.
    """
    total = np.zeros(3)
    squares = np.zeros(3)
    pixels = 0
    count = 0
    for video in videos:
        flat = video.reshape(-1, 3).astype(np.float64)
        total += flat.sum(axis=0)
        squares += np.square(flat).sum(axis=0)
        pixels += flat.shape[0]
        count += 1
    if pixels == 0:
        raise ValueError("no video pixels to compute statistics from")
    mean = total / pixels
    std = np.sqrt(np.maximum(squares / pixels - np.square(mean), 0.0))
    return ChannelStatistics(_triple(mean), _triple(std), count, pixels)


def read_video(path: Path, size: tuple[int, int] = (112, 112)) -> npt.NDArray[np.uint8]:
    """(frames, rows, columns, 3) RGB uint8 from an AVI/MP4 (as the reference's loader: OpenCV
    decodes BGR, converted to RGB), or from a DICOM file the frames as the A4C pipeline hands
    them to a network of input ``size`` (rows, columns): windowed, resized and masked
    (ai.pipelines.a4c_frames). The statistics must describe what the network sees, and a
    training set's AVIs are already at that size; a full DICOM frame's black surround is not."""
    if path.suffix.lower() == ".dcm":
        clip = load_clip(path)
        decoded = np.stack([clip.frames[i] for i in range(len(clip))])
        return dynamic_frames(decoded, clip_window(clip, size).geometry)
    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise ValueError(f"{path.name}: no frame could be decoded")
    return np.stack(frames).astype(np.uint8)


def sample_videos(directory: Path, samples: int, seed: int) -> list[Path]:
    """Up to `samples` videos drawn at random (reproducibly for a seed) from `directory`."""
    paths = sorted(
        p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
    )
    if len(paths) <= samples:
        return paths
    return sorted(random.Random(seed).sample(paths, samples))


def override_path(model_dir: Path, spec: ModelSpec) -> Path:
    return model_dir / f"{spec.file}{OVERRIDE_SUFFIX}"


def write_override(
    model_dir: Path, spec: ModelSpec, stats: ChannelStatistics, sources: Sequence[Path]
) -> Path:
    path = override_path(model_dir, spec)
    record = {
        "name": spec.name,
        "mean": stats.mean,
        "std": stats.std,
        "videos": stats.videos,
        "pixels_per_channel": stats.pixels,
        "scale": "0-255",
        "sources": [p.name for p in sources],
    }
    model_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def with_site_statistics(spec: ModelSpec, model_dir: Path) -> ModelSpec:
    """The spec with the site's computed mean/std when `models normalise` recorded them."""
    path = override_path(model_dir, spec)
    if not path.is_file():
        return spec
    record = json.loads(path.read_text(encoding="utf-8"))
    return dataclasses.replace(
        spec,
        mean=_triple(record["mean"]),
        std=_triple(record["std"]),
        normalisation=SITE,
    )


def normalisation_flags(*specs: ModelSpec) -> tuple[str, ...]:
    """STAND_IN_FLAG when any model behind a value was fed with stand-in statistics."""
    return (STAND_IN_FLAG,) if any(s.normalisation == "stand-in" for s in specs) else ()


def _triple(values: Sequence[float] | npt.NDArray[np.float64]) -> tuple[float, float, float]:
    first, second, third = (float(v) for v in values)
    return (first, second, third)
