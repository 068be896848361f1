"""The model store: the model directory plus the registry, answering "give me model X".

It answers with a LoadedModel or a NotInstalled that carries the command installing the file,
so a pipeline never raises for a missing model. Loaded models are kept for reuse, each on the
configured backend (ai.models.backends): converted for OpenVINO when that is asked for and the
conversion matches torch, else on torch, the reason logged. ``install_checkpoint`` is the one
way a file enters the directory (`echo-node models import` and `models fetch`): checked, then
copied and renamed so no reader sees half a checkpoint.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from ai.models import backends
from ai.models.loader import CheckpointError, LoadedModel, load_model, select_device, sha256_file
from ai.models.normalisation import with_site_statistics
from ai.models.registry import ModelSpec, Registry, default_registry

logger = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".json"


@dataclass(frozen=True)
class NotInstalled:
    name: str
    file: str
    command: str
    optional: bool

    @property
    def message(self) -> str:
        kind = "optional model" if self.optional else "model"
        return f"{kind} {self.name} is not installed (no {self.file}); install it with: " + (
            self.command
        )


def sidecar_path(path: Path) -> Path:
    """Where `models import` records the digest of a file the registry has no sha256 for."""
    return path.with_name(path.name + SIDECAR_SUFFIX)


def recorded_sha256(path: Path) -> str | None:
    try:
        data = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get("sha256") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


class InstallError(ValueError):
    """A checkpoint was refused; nothing was installed. The message says why."""


@dataclass(frozen=True)
class Installed:
    spec: ModelSpec
    path: Path
    sha256: str
    origin: str  # "matches the registry" or "recorded" (the registry has no digest)


def install_checkpoint(
    source: Path,
    spec: ModelSpec,
    model_dir: Path,
    *,
    force: bool = False,
    provenance: Mapping[str, str] | None = None,
) -> Installed:
    """Check ``source`` and install it as ``spec``'s file in ``model_dir``.

    Refused (InstallError, nothing changed) when its sha256 differs from the registry's, when
    it does not load strictly into the registry's architecture, or when another file is
    installed under that name and ``force`` is not given. Without a registry digest, the file's
    is recorded beside it with ``provenance`` (where it came from), so verify can later tell
    whether it changed.
    """
    digest = sha256_file(source)
    if spec.sha256 and digest != spec.sha256:
        raise InstallError(
            f"{source.name} is not the published {spec.name}: sha256 {digest}, "
            f"registry {spec.sha256}"
        )
    try:
        load_model(source, spec)
    except CheckpointError as exc:
        raise InstallError(f"refused: {exc}") from None
    model_dir.mkdir(parents=True, exist_ok=True)
    target = model_dir / spec.file
    if target.is_file() and not force and sha256_file(target) != digest:
        raise InstallError(f"{target} holds another file; pass --force to replace it")
    handle, temporary = tempfile.mkstemp(dir=model_dir, prefix=".install-")
    os.close(handle)
    try:
        shutil.copyfile(source, temporary)
        _fsync(Path(temporary))
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)
    if not spec.sha256:
        record = {
            "name": spec.name,
            "sha256": digest,
            **(provenance or {}),
            "installed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        sidecar_path(target).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    _fsync(model_dir)
    origin = "matches the registry" if spec.sha256 else "recorded"
    return Installed(spec, target, digest, origin)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class ModelStore:
    """Model directory (<data_dir>/models for the node) + registry + device, backend and
    threads. backend: "torch" (the reference), "openvino" or "auto" (OpenVINO on the CPU when
    it is installed, torch otherwise)."""

    def __init__(
        self,
        model_dir: Path,
        registry: Registry | None = None,
        device: str = "cpu",
        threads: int | None = None,
        batch_size: int = 16,
        backend: str = backends.TORCH,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.registry = registry or default_registry()
        self.device = select_device(device)
        self.backend = backends.resolve(backend, self.device)
        self.threads = threads
        self.batch_size = batch_size
        if threads is not None:
            # Process-wide in torch; the node runs inference in its own worker processes.
            torch.set_num_threads(threads)
        self._loaded: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()

    def spec(self, name: str) -> ModelSpec:
        """The registry entry, with the site's computed mean/std where it recorded them."""
        return with_site_statistics(self.registry.get(name), self.model_dir)

    def path(self, name: str) -> Path:
        return self.model_dir / self.spec(name).file

    def installed(self, name: str) -> bool:
        return self.path(name).is_file()

    def add(self, loaded: LoadedModel) -> None:
        """Use an already loaded model (a notebook's own, or a test's) under its spec's name."""
        with self._lock:
            self._loaded[loaded.spec.name] = loaded

    def get(self, name: str) -> LoadedModel | NotInstalled:
        """The loaded model, or NotInstalled. A file that does not fit raises CheckpointError."""
        spec = self.spec(name)
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
            path = self.model_dir / spec.file
            if not path.is_file():
                return NotInstalled(name, spec.file, spec.install_command(), spec.optional)
            loaded = self._on_backend(load_model(path, spec, self.device))
            recorded = recorded_sha256(path)
            if recorded is not None and recorded != loaded.sha256:
                logger.warning(
                    "model %s: %s changed since it was imported (sha256 %s, recorded %s)",
                    name,
                    spec.file,
                    loaded.sha256[:12],
                    recorded[:12],
                )
            self._loaded[name] = loaded
            return loaded

    def _on_backend(self, loaded: LoadedModel) -> LoadedModel:
        if self.backend == backends.TORCH:
            return loaded
        try:
            runner, _ = backends.convert(
                loaded.module, loaded.spec, loaded.sha256, self.model_dir, self.threads
            )
        except backends.ConversionError as error:
            logger.warning("model %s runs on torch: %s", loaded.spec.name, error)
            return loaded
        # The converted network holds its own weights: torch's copy is released (a node with
        # every model installed would otherwise hold each network twice).
        module = loaded.module.to("meta")
        return dataclasses.replace(loaded, module=module, backend=self.backend, runner=runner)
