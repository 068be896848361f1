"""The benchmarks' segmentation network with its head fitted to the phantom finds the beats.

benchmarks/fitted_segmentation.py fits the head of the seeded random deeplabv3_resnet50 so that
the A4C pipeline's area curve follows the phantom's LV (else the EF model would run on every
clip start). Here the same fit runs small (48×48 input, 120×160 clips at 15 frames/s) and the
checks are on what it finds, with margins: a phase found near the phantom's own, an IoU well
above what the random network gives (0), never an exact number.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from ai.models.loader import sha256_file
from ai.pipelines.a4c import SEGMENTATION_MODEL
from benchmarks.all_models import benchmark_registry
from benchmarks.fitted_segmentation import (
    FIT_RECORD,
    FITTED_FILE,
    FitOptions,
    PhantomClip,
    install_fitted,
)
from tests.test_models import small_spec

pytestmark = pytest.mark.model  # trains part of a network

torch.set_num_threads(2)

# Measured with two training sets (seeds 100-107 and 200-207) on four held-out clips (seeds
# 90-93): every one had an ED and an ES found, IoU 0.68-0.82; on clip 90, IoU 0.76 and an area
# correlation of 0.55 and 0.76.
TINY = FitOptions(
    train=tuple(PhantomClip(seed, 120, 160, 1, 15.0) for seed in range(100, 108)),
    held_out=(PhantomClip(90, 120, 160, 2, 15.0),),
    calibration_frames=32,
    epochs=30,
    learning_rate=3e-3,
)


def record(folder: Path) -> dict[str, Any]:
    return dict(json.loads((folder / FIT_RECORD).read_text(encoding="utf-8")))


def test_fitted_head_finds_ed_and_es_on_a_held_out_clip(tmp_path: Path) -> None:
    spec = small_spec(SEGMENTATION_MODEL, input_height=48, input_width=48)
    path = install_fitted(tmp_path, spec, seed=0, options=TINY)
    (held_out,) = record(tmp_path)["held_out"]
    # Random weights give one logit for every pixel: no LV, no phase, an IoU of 0 (or of the
    # LV's share of the frame).
    assert held_out["ed_frames"] and held_out["es_frames"], held_out
    assert held_out["iou"] > 0.5, held_out
    assert held_out["area_correlation"] > 0.3, held_out
    # Installed again with the same options: the recorded fit is kept, not fitted again.
    written = path.stat().st_mtime_ns
    assert install_fitted(tmp_path, spec, seed=0, options=TINY) == path
    assert path.stat().st_mtime_ns == written


def test_a_stale_file_or_other_options_are_fitted_again(tmp_path: Path) -> None:
    spec = small_spec(SEGMENTATION_MODEL, input_height=32, input_width=32)
    quick = dataclasses.replace(TINY, train=TINY.train[:1], held_out=(), epochs=1)
    path = install_fitted(tmp_path, spec, seed=0, options=quick)
    stale = b"a random-weight checkpoint cached under this name"
    path.write_bytes(stale)
    install_fitted(tmp_path, spec, seed=0, options=quick)
    assert path.read_bytes() != stale
    assert sha256_file(path) == record(tmp_path)["sha256"]
    other = dataclasses.replace(quick, learning_rate=quick.learning_rate / 2)
    written = path.stat().st_mtime_ns
    install_fitted(tmp_path, spec, seed=0, options=other)
    assert record(tmp_path)["options_sha256"] == other.digest() != quick.digest()
    assert path.stat().st_mtime_ns != written
    assert sha256_file(path) == record(tmp_path)["sha256"]


def test_benchmark_registry_points_the_store_at_the_fitted_file() -> None:
    assert benchmark_registry().get(SEGMENTATION_MODEL).file == FITTED_FILE
    random = benchmark_registry(fitted_segmentation=False)
    assert random.get(SEGMENTATION_MODEL).file != FITTED_FILE
