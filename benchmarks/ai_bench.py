"""AI benchmark: seconds per frame and per clip for each pipeline's network on this CPU.

Random weights (no weights ship) at the real input sizes: PLAX deeplabv3_resnet50 at 480×640
(and the 240×320 coarse scan the PLAX pipeline uses to pick ED/ES; the EchoNet-Measurements 2D
models are the same network with 2 outputs), A4C segmentation at 112×112, A4C EF r2plus1d_18
on 32×112×112 clips, the EchoPrime convnext_base at 224×224, the EchoNet-Measurements Doppler
network on its 426×1024 strip, and the classical Doppler engine on a phantom TR image.
Channels-last for the 2-D networks, and with --compile torch.compile of the PLAX network (over
channels-last, what the loader runs) and of the EF network: several minutes of compiling.
Then each network on torch (channels-last) and on OpenVINO (ai.models.backends: the same weights
converted, f32), timed alternately on the same input with the outputs' relative difference.
Writes benchmarks/results/ai.json. Three to four minutes on 2 cores, about 10 with --compile.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ai.models.architectures import build
from ai.models.registry import default_registry

RESULTS = Path(__file__).resolve().parent / "results" / "ai.json"
PLAX_CLIP_FRAMES = 60  # a typical PLAX loop, 2 beats at 30-50 fps
A4C_CLIP_FRAMES = 120


def _seconds(call: Callable[[], Any], repeats: int) -> float:
    """Median wall time of `repeats` calls after one warm-up call."""
    with torch.inference_mode():
        call()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def _segmentation(model: nn.Module, batch: torch.Tensor) -> Callable[[], Any]:
    return lambda: model(batch)["out"]


def bench(repeats: int, compile_models: bool) -> dict[str, Any]:
    registry = default_registry()
    out: dict[str, Any] = {}

    plax = build(registry.get("echonet-lvh-plax"))
    full = torch.rand(1, 3, 480, 640)
    coarse = torch.rand(4, 3, 240, 320)
    per_full = _seconds(_segmentation(plax, full), repeats)
    per_coarse = _seconds(_segmentation(plax, coarse), repeats) / 4
    plax_cl = plax.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    full_cl = full.contiguous(memory_format=torch.channels_last)
    per_full_cl = _seconds(_segmentation(plax_cl, full_cl), repeats)
    scan_frames = PLAX_CLIP_FRAMES // 2  # every second frame
    refine_frames = 4  # about 2 ED + 2 ES frames
    out["plax"] = {
        "s_per_frame_480x640": per_full,
        "s_per_frame_480x640_channels_last": per_full_cl,
        "s_per_frame_240x320_scan": per_coarse,
        "frames_per_s_480x640": 1 / per_full,
        f"s_per_{PLAX_CLIP_FRAMES}_frame_clip_reference_every_frame": PLAX_CLIP_FRAMES * per_full,
        f"s_per_{PLAX_CLIP_FRAMES}_frame_clip_pipeline": scan_frames * per_coarse
        + refine_frames * per_full,
    }

    seg = build(registry.get("echonet-dynamic-segmentation"))
    batch = torch.rand(16, 3, 112, 112)
    per_seg = _seconds(_segmentation(seg, batch), repeats) / 16
    ef_model = build(registry.get("echonet-dynamic-ef"))
    clip = torch.rand(1, 3, 32, 112, 112)
    per_clip = _seconds(lambda: ef_model(clip), repeats)
    if compile_models:
        out["compile"] = {
            "plax_480x640_channels_last": _compiled(
                lambda m: _segmentation(m, full_cl), plax_cl, per_full_cl, repeats
            ),
            "a4c_ef_32x112x112": _compiled(lambda m: lambda: m(clip), ef_model, per_clip, repeats),
        }
    starts = A4C_CLIP_FRAMES - 63 + 1
    out["a4c"] = {
        "segmentation_s_per_frame_112": per_seg,
        "segmentation_frames_per_s": 1 / per_seg,
        "ef_s_per_32x112x112_clip": per_clip,
        f"s_per_{A4C_CLIP_FRAMES}_frame_clip_every_start": A4C_CLIP_FRAMES * per_seg
        + starts * per_clip,
        f"s_per_{A4C_CLIP_FRAMES}_frame_clip_stride_8": A4C_CLIP_FRAMES * per_seg
        + len(range(0, starts, 8)) * per_clip,
    }

    view = build(registry.get("echoprime-view"))
    image = torch.rand(1, 3, 224, 224)
    out["view_classifier"] = {"s_per_clip": _seconds(lambda: view(image), repeats)}
    strip_model = build(registry.get("echonet-measurements-trvmax"))
    strip_model = strip_model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    strip = torch.rand(1, 3, 426, 1024).contiguous(memory_format=torch.channels_last)
    out["doppler"] = {
        "neural_s_per_426x1024_strip": _seconds(_segmentation(strip_model, strip), repeats),
        "classical_s_per_image": _classical_doppler_seconds(repeats),
    }
    return out


# (label, registry model, input shape): what each pipeline feeds its network.
BACKEND_INPUTS = (
    ("plax_480x640", "echonet-lvh-plax", (1, 3, 480, 640)),
    ("plax_scan_4x240x320", "echonet-lvh-plax", (4, 3, 240, 320)),
    ("a4c_segmentation_16x112x112", "echonet-dynamic-segmentation", (16, 3, 112, 112)),
    ("a4c_ef_32x112x112", "echonet-dynamic-ef", (1, 3, 32, 112, 112)),
    ("view_224x224", "echoprime-view", (1, 3, 224, 224)),
    ("doppler_426x1024", "echonet-measurements-trvmax", (1, 3, 426, 1024)),
)


def backend_comparison(repeats: int, threads: int) -> dict[str, Any]:
    """torch eager (channels-last, as the loader runs it) and OpenVINO on the same input,
    timed alternately; wall and CPU seconds per call and the outputs' relative difference."""
    import tempfile

    from ai.models import backends

    if not backends.openvino_available():
        return {"skipped": "openvino is not installed"}
    registry = default_registry()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as cache:
        for label, name, shape in BACKEND_INPUTS:
            spec = registry.get(name)
            model = build(spec)
            if spec.architecture in ("deeplabv3_resnet50", "convnext_base"):
                model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            # Keyed by label: each label builds its own random weights.
            runner, record = backends.convert(model, spec, f"bench-{label}", Path(cache), threads)
            batch = torch.rand(shape)
            ready = (
                batch.contiguous(memory_format=torch.channels_last) if batch.dim() == 4 else batch
            )
            calls = {
                "torch": lambda m=model, b=ready: backends.main_output(m, b),
                "openvino": lambda r=runner, b=batch: r(b),
            }
            with torch.inference_mode():
                difference = backends.relative_difference(
                    calls["torch"]().numpy(), calls["openvino"]().numpy()
                )
            wall: dict[str, list[float]] = {"torch": [], "openvino": []}
            cpu: dict[str, list[float]] = {"torch": [], "openvino": []}
            with torch.inference_mode():
                for _ in range(repeats):
                    for key, call in calls.items():
                        started, used = time.perf_counter(), time.process_time()
                        call()
                        wall[key].append(time.perf_counter() - started)
                        cpu[key].append(time.process_time() - used)
            median = {k: sorted(v)[len(v) // 2] for k, v in wall.items()}
            out[label] = {
                "torch_s": median["torch"],
                "openvino_s": median["openvino"],
                "torch_cpu_s": sorted(cpu["torch"])[len(cpu["torch"]) // 2],
                "openvino_cpu_s": sorted(cpu["openvino"])[len(cpu["openvino"]) // 2],
                "speedup": median["torch"] / median["openvino"],
                "relative_difference": difference,
                "conversion_s": record.seconds,
            }
    return out


def _flat(figures: dict[str, Any], prefix: str = "") -> list[tuple[str, float]]:
    rows: list[tuple[str, float]] = []
    for key, value in figures.items():
        if isinstance(value, dict):
            rows += _flat(value, f"{prefix}{key} ")
        elif isinstance(value, str):
            continue
        else:
            rows.append((f"{prefix}{key}", float(value)))
    return rows


def _compiled(
    call_of: Callable[[nn.Module], Callable[[], Any]],
    model: nn.Module,
    eager_s: float,
    repeats: int,
) -> dict[str, float]:
    """Compile time, then seconds per call compiled and the speed-up over the eager call."""
    compiled = torch.compile(model)
    start = time.perf_counter()
    with torch.inference_mode():
        call_of(compiled)()
    compile_s = time.perf_counter() - start
    per_call = _seconds(call_of(compiled), repeats)
    return {"compile_s": compile_s, "s_per_call": per_call, "speedup": eager_s / per_call}


def _classical_doppler_seconds(repeats: int) -> float:
    """The classical engine on a 600×800 phantom TR CW image: decode excluded."""
    import dataclasses
    import tempfile

    import numpy as np

    from ai.clip import ArrayFrames
    from ai.decode import load_clip
    from ai.phantom import generate_study
    from ai.pipelines.doppler import measure

    with tempfile.TemporaryDirectory() as folder:
        generate_study(Path(folder), 1, rows=600, columns=800, cycles=1)
        lazy = load_clip(Path(folder) / "tr_cw.dcm")
        clip = dataclasses.replace(lazy, frames=ArrayFrames(np.stack([lazy.frames[0]])))
        return _seconds(lambda: measure(clip, 0), repeats)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    figures = bench(args.repeats, args.compile)
    figures["backends"] = backend_comparison(max(3, args.repeats), args.threads)
    result = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "threads": args.threads,
            "cuda": torch.cuda.is_available(),
        },
        "figures": figures,
        "where_the_time_goes": (
            "deeplabv3_resnet50 at 480x640 dominates PLAX and the EchoNet-Measurements 2D models "
            "(output stride 8 keeps 60x80 feature maps through the dilated ResNet-50 and ASPP); "
            "the pipelines scan at 240x320 on every second frame and run full size only on the "
            "ED/ES frames. The same network on the 426x1024 Doppler strip costs more than a PLAX "
            "frame; the classical Doppler engine is numpy and takes tens of milliseconds. A4C "
            "time is r2plus1d_18 once per clip start: 58 starts for a 120-frame clip. "
            "Channels-last (what the loader runs for 2-D networks) beats contiguous memory; "
            "torch.compile adds only 10-30 % on top, after a first compile of minutes per model "
            "and input shape (seconds once inductor's cache is warm), so the node does not "
            "compile. OpenVINO (figures.backends) runs the same weights in f32 within about 1e-6 "
            "of torch; it gains most on the video networks."
        ),
        "total_s": time.perf_counter() - started,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for name, value in _flat(figures):
        print(f"{name:72s} {value:9.3f}")
    print(f"wrote {RESULTS} in {result['total_s']:.0f} s")


if __name__ == "__main__":
    main()
