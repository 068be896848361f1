"""Loading a checkpoint a site supplied into its registry architecture, safely and strictly.

- torch.load(weights_only=True) always: a checkpoint is a pickle, and weights_only=False would
  run whatever code a file carries. EchoNet-Dynamic's EF file stores `r2` as a NumPy float,
  which the restricted unpickler refuses, so the few NumPy scalar types are allowed explicitly.
- The published shapes: a bare state dict or {"state_dict": ...}; keys prefixed `module.`
  (DataParallel, Dynamic), `m.` (Lightning, Measurements), `model.` (LVH wrapper). Prefixes are
  removed only at the start of a key: Dynamic's keys contain `stem.` further in.
- Strict: every key the network has must be in the file with the same shape, and nothing else
  (a deeplabv3 aux classifier excepted, which inference never runs). The error lists what is
  missing, unexpected or of another shape, so a wrong head is rejected with a reason.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ai.findings import Provenance
from ai.models.architectures import build
from ai.models.backends import TORCH, Runner, main_output
from ai.models.registry import ModelSpec

logger = logging.getLogger(__name__)

PREFIXES = ("module.", "model.", "m.")
CHANNELS_LAST = ("deeplabv3_resnet50", "convnext_base")  # 2-D networks
_IGNORED_PREFIXES = ("aux_classifier.",)
_LISTED = 8  # keys named in an error before "... and N more"


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not fit its model; the message says why."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _numpy_safe_globals() -> list[Any]:
    """NumPy objects a checkpoint may pickle as metadata (e.g. Dynamic's r2 as np.float64).

    Pickles name the scalar constructor `numpy.core.multiarray.scalar` (NumPy 1) or
    `numpy._core.multiarray.scalar` (NumPy 2); both names are mapped to the same function.
    """
    # NumPy 2 moved numpy.core to numpy._core; the project allows NumPy >= 1.26.
    core = importlib.import_module("numpy._core" if hasattr(np, "_core") else "numpy.core")
    scalar = core.multiarray.scalar
    allowed: list[Any] = [
        scalar,
        (scalar, "numpy.core.multiarray.scalar"),
        (scalar, "numpy._core.multiarray.scalar"),
        np.dtype,
    ]
    for kind in (np.float16, np.float32, np.float64, np.int32, np.int64, np.bool_):
        allowed.append(type(np.dtype(kind)))
    return allowed


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint file, prefixes removed, on the CPU."""
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's text suggests weights_only=False; keep only what it refused.
        detail = str(exc).split("WeightsUnpickler error:")[-1].strip().splitlines()[0]
        raise CheckpointError(
            f"cannot read checkpoint {path.name}: it holds objects other than tensors and "
            f"plain metadata, refused without running them ({detail})"
        ) from None
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path.name}: {exc}") from exc
    except (IndexError, KeyError, TypeError, AttributeError) as exc:
        # The restricted unpickler trips over bytes that are no pickle at all (an HTML error
        # page saved under the checkpoint's name) with whatever its stack machine hits first.
        raise CheckpointError(
            f"cannot read checkpoint {path.name}: not a torch checkpoint "
            f"({type(exc).__name__} while unpickling)"
        ) from None
    return extract_state_dict(content, path.name)


def extract_state_dict(content: object, label: str = "checkpoint") -> dict[str, torch.Tensor]:
    if isinstance(content, Mapping) and "state_dict" in content:
        content = content["state_dict"]
    if not isinstance(content, Mapping) or not content:
        raise CheckpointError(f"{label}: neither a state dict nor {{'state_dict': ...}}")
    not_tensors = [str(k) for k, v in content.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(
            f"{label}: not a state dict (entries that are not tensors: {_names(not_tensors)})"
        )
    return {strip_prefixes(str(key)): value for key, value in content.items()}


def strip_prefixes(key: str) -> str:
    """Remove wrapper prefixes from the start of a key only (`module.model.x` -> `x`)."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
                stripped = True
    return key


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LISTED])
    return shown if len(keys) <= _LISTED else f"{shown} ... and {len(keys) - _LISTED} more"


def check_fit(model: nn.Module, state: Mapping[str, torch.Tensor], spec: ModelSpec) -> None:
    """Raise CheckpointError naming every missing, unexpected or mis-shaped key."""
    expected = model.state_dict()
    given = {k: v for k, v in state.items() if not k.startswith(_IGNORED_PREFIXES)}
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    shapes = [
        f"{key} is {tuple(given[key].shape)} in the file, {tuple(expected[key].shape)} in "
        f"{spec.architecture}"
        for key in sorted(set(expected) & set(given))
        if given[key].shape != expected[key].shape
    ]
    if not (missing or unexpected or shapes):
        return
    problems = []
    if shapes:
        problems.append("shape mismatches: " + "; ".join(shapes[:_LISTED]))
    if missing:
        problems.append(f"missing keys: {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_names(unexpected)}")
    raise CheckpointError(
        f"checkpoint does not fit {spec.name} ({spec.architecture}, "
        f"{spec.output_channels} output channel(s)): " + " | ".join(problems)
    )


def select_device(preference: str = "cpu") -> torch.device:
    """'cpu' (default), 'cuda' (fails without CUDA) or 'auto' (CUDA when present)."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' configured but torch sees no CUDA device")
    return torch.device(preference)


@dataclass(frozen=True)
class LoadedModel:
    spec: ModelSpec
    # The torch network. With a converted runner it is kept on the meta device (its shape,
    # no weights): the runner holds the weights.
    module: nn.Module
    sha256: str
    device: torch.device
    backend: str = TORCH
    runner: Runner | None = None  # the converted network (ai.models.backends); None: torch

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        """The network's main output for a batch (deeplabv3's "out", a classifier's logits) on
        the model's backend, as a tensor on the model's device. Call under inference_mode."""
        if self.runner is not None:
            return self.runner(batch)
        return main_output(self.module, self.input(batch))

    def input(self, batch: torch.Tensor) -> torch.Tensor:
        """batch on the model's device; images channels-last (measured 1.2-1.4x faster for
        deeplabv3_resnet50 at 480x640 on this CPU, same outputs to 1e-5)."""
        batch = batch.to(self.device)
        if batch.dim() == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch

    @property
    def provenance(self) -> Provenance:
        return Provenance(
            name=self.spec.name,
            version=self.spec.version,
            sha256=self.sha256,
            device=str(self.device),
            published=self.spec.is_published(self.sha256),
            backend=self.backend,
        )


def load_model(path: Path, spec: ModelSpec, device: torch.device | None = None) -> LoadedModel:
    """Verify path against spec.sha256 (when known), build, load strictly, move to device."""
    digest = sha256_file(path)
    if spec.sha256 and digest != spec.sha256:
        raise CheckpointError(
            f"{path.name}: sha256 {digest} differs from the registry's {spec.sha256} for "
            f"{spec.name}; the file is not the published checkpoint"
        )
    state = read_checkpoint(path)
    # Built on the meta device: random initialisation would be thrown away (and costs seconds
    # for convnext_base); the checkpoint's tensors are assigned instead.
    with torch.device("meta"):
        model = build(spec)
    check_fit(model, state, spec)
    model.load_state_dict(
        {k: v for k, v in state.items() if not k.startswith(_IGNORED_PREFIXES)},
        strict=True,
        assign=True,
    )
    empty = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if empty:
        raise CheckpointError(f"{path.name}: no values for {_names(empty)}")
    target = device or torch.device("cpu")
    model = model.to(target).eval()
    if spec.architecture in CHANNELS_LAST:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    logger.info("loaded model %s (%s) sha256 %s on %s", spec.name, path.name, digest[:12], target)
    return LoadedModel(spec=spec, module=model, sha256=digest, device=target)
