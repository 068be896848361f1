"""Where a loaded network runs: torch eager (the reference) or OpenVINO on the CPU.

The same weights, converted once: the torch module is exported to ONNX (torch's TorchScript
exporter, dynamic batch, and dynamic height and width for the segmentation networks) and
OpenVINO compiles that file for the CPU in 32-bit float (INFERENCE_PRECISION_HINT f32: on CPUs
with bf16 units OpenVINO would otherwise lower the precision by itself). Measured on a 2-core
AVX2 EPYC: deeplabv3_resnet50 within 1e-6 of torch (relative to the output's range), 10–25 %
less CPU time; OpenVINO's own torch converter was 2e-4 off on the same network, outside the
tolerance, so it is not used (benchmarks/ and README "Speed"), nor is anything else of its
conversion tools (the only part of the package that carries usage telemetry): the node only
compiles and runs.

Every conversion is checked before it is used: torch and OpenVINO run the same probe input and
the largest difference, relative to the range of torch's output, must stay within TOLERANCE,
otherwise the model runs on torch. The converted file is cached beside the checkpoints under the
checkpoint's sha256, with the check's result in a JSON sidecar, so a model is converted once
(at `echo-node models import` or on first use) and every later load compiles it in about a
second. Anything that goes wrong (OpenVINO not installed, an export or compile error, a
difference past the tolerance) leaves the model on torch with the reason logged: the backend
that ran is in every finding's provenance.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from ai.models.registry import ModelSpec

logger = logging.getLogger(__name__)

TORCH, OPENVINO, AUTO = "torch", "openvino", "auto"
BACKENDS = (TORCH, OPENVINO, AUTO)
TOLERANCE = 1e-4  # largest |difference| / range of the reference output
CACHE_DIR = ".converted"  # inside the model directory
# Bumped when the export changes, so an older cached file is converted again.
FORMAT = 1
SEGMENTATION = "deeplabv3_resnet50"

Runner = Callable[[torch.Tensor], torch.Tensor]


class ConversionError(RuntimeError):
    """The network could not be run on the requested backend; the message says why."""


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def resolve(backend: str, device: torch.device) -> str:
    """The backend to use: OpenVINO runs on the CPU only, "auto" takes it where it can."""
    if backend not in BACKENDS:
        raise ValueError(f"inference backend must be one of {BACKENDS}, got {backend!r}")
    if backend == AUTO:
        return OPENVINO if device.type == "cpu" and openvino_available() else TORCH
    if backend == OPENVINO and device.type != "cpu":
        raise ValueError(f"the openvino backend runs on the CPU, not on {device}")
    return backend


class MainOutput(nn.Module):
    """The tensor a pipeline reads: deeplabv3's "out" (its dict is not exportable as is)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return main_output(self.module, batch)


def main_output(module: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    out = module(batch)
    result: torch.Tensor = out["out"] if isinstance(out, dict) else out
    return result


def probe_input(spec: ModelSpec, seed: int = 0) -> torch.Tensor:
    """A seeded input of the model's shape, values in the range its normalised inputs take."""
    generator = torch.Generator().manual_seed(seed)
    shape: tuple[int, ...] = (1, 3, spec.input_height, spec.input_width)
    if spec.architecture in ("r2plus1d_18", "r3d_18"):
        shape = (1, 3, spec.frames, spec.input_height, spec.input_width)
    return torch.rand(shape, generator=generator) * 2.0 - 0.5


def relative_difference(reference: npt.ArrayLike, other: npt.ArrayLike) -> float:
    """max |a − b| over the range of the reference output (its magnitude for a flat one)."""
    ref = np.asarray(reference, dtype=np.float64)
    scale = float(ref.max() - ref.min()) if ref.size else 0.0
    scale = max(scale, float(np.abs(ref).max()) if ref.size else 0.0, 1e-12)
    return float(np.abs(ref - np.asarray(other, dtype=np.float64)).max()) / scale


@dataclass(frozen=True)
class Converted:
    """A model file for OpenVINO and how it compared with torch when it was made."""

    path: Path
    relative_difference: float
    seconds: float


def cache_path(model_dir: Path, spec: ModelSpec, sha256: str) -> Path:
    name = f"{sha256}.{spec.architecture}.{spec.output_channels}.v{FORMAT}.onnx"
    return model_dir / CACHE_DIR / name


def export_onnx(module: nn.Module, spec: ModelSpec, target: Path) -> None:
    """torch → ONNX, written next to target and renamed (a reader never sees half a file)."""
    import warnings

    axes = {0: "batch", 2: "height", 3: "width"} if spec.architecture == SEGMENTATION else {0: "b"}
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".export-", suffix=".onnx")
    os.close(handle)
    wrapped = MainOutput(module).eval()
    try:
        with warnings.catch_warnings():
            # The TorchScript exporter announces its successor and traces shape arithmetic;
            # the check in convert() decides whether the result is used.
            warnings.simplefilter("ignore")
            with torch.no_grad():
                torch.onnx.export(
                    wrapped,
                    (probe_input(spec),),
                    temporary,
                    dynamo=False,
                    input_names=["input"],
                    output_names=["output"],
                    dynamic_axes={"input": axes, "output": {0: "batch"}},
                    opset_version=17,
                )
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)


class OpenVinoRunner:
    """A compiled OpenVINO model called like the torch module's main output (CPU tensors)."""

    def __init__(self, path: Path, threads: int | None) -> None:
        import openvino as ov

        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "LATENCY",
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = ov.Core().compile_model(str(path), "CPU", config)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        # One infer request per call: the compiled model may serve several worker threads.
        request = self.compiled.create_infer_request()
        array = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
        result = request.infer({0: array})
        return torch.from_numpy(np.array(result[self.compiled.output(0)], dtype=np.float32))


def convert(
    module: nn.Module, spec: ModelSpec, sha256: str, model_dir: Path, threads: int | None
) -> tuple[OpenVinoRunner, Converted]:
    """The OpenVINO runner of a torch module, converted or from the cache, checked against
    torch; ConversionError when it cannot be made or is outside the tolerance."""
    if not openvino_available():
        raise ConversionError("openvino is not installed (pip install openvino)")
    path = cache_path(model_dir, spec, sha256)
    record = _read_record(path)
    try:
        if record is None:
            started = time.perf_counter()
            export_onnx(module, spec, path)
            runner = OpenVinoRunner(path, threads)
            difference = _check(module, runner, spec)
            record = Converted(path, difference, time.perf_counter() - started)
            _write_record(path, record)
            logger.info(
                "model %s converted for openvino in %.1f s (difference %.2g of its range)",
                spec.name,
                record.seconds,
                difference,
            )
        else:
            runner = OpenVinoRunner(path, threads)
    except ConversionError:
        raise
    except Exception as error:  # exporter and runtime raise many kinds; all mean "use torch"
        raise ConversionError(f"{type(error).__name__}: {error}") from error
    if not record.relative_difference <= TOLERANCE:
        raise ConversionError(
            f"openvino output differs from torch by {record.relative_difference:.2g} of its "
            f"range (tolerance {TOLERANCE:g})"
        )
    return runner, record


def _check(module: nn.Module, runner: OpenVinoRunner, spec: ModelSpec) -> float:
    batch = probe_input(spec, seed=1)
    with torch.inference_mode():
        reference = main_output(module, batch).float()
    return relative_difference(reference.numpy(), runner(batch).numpy())


def _record_path(path: Path) -> Path:
    return path.with_suffix(".json")


def _read_record(path: Path) -> Converted | None:
    """The cached conversion, if its file and record are both there and were made by this
    torch; None means convert (again)."""
    try:
        data = json.loads(_record_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not path.is_file() or data.get("torch") != torch.__version__:
        return None
    return Converted(path, float(data["relative_difference"]), float(data["seconds"]))


def _write_record(path: Path, record: Converted) -> None:
    data = {
        "relative_difference": record.relative_difference,
        "tolerance": TOLERANCE,
        "seconds": round(record.seconds, 2),
        "torch": torch.__version__,
        "openvino": _openvino_version(),
    }
    _record_path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _openvino_version() -> str:
    import openvino as ov

    return str(ov.get_version())
