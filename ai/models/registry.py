"""The model registry: what each checkpoint is and how it must be fed (config/models.toml).

Everything a pipeline needs to feed a model as it was trained (input size, colour order,
scaling, mean/std, frames and period) lives here rather than in code, because the checkpoints
do not carry it and a model fed differently from its training gives confident nonsense.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

NORMALISATIONS = ("training", "stand-in")  # "site" is set at run time, never in the file
ARCHITECTURES = ("deeplabv3_resnet50", "r2plus1d_18", "r3d_18", "convnext_base")


class RegistryError(ValueError):
    """The registry file is malformed; the message names the model and the key."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: str
    task: str
    architecture: str
    output_channels: int
    input_height: int
    input_width: int
    frames: int
    period: int
    colour_order: str  # "RGB" or "BGR"
    scale: float  # pixels are divided by this before mean/std
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    file: str
    sha256: str
    source_url: str
    licence: str
    optional: bool = False
    labels: tuple[str, ...] = ()
    notes: str = ""
    # Where mean/std come from: "training" (the model's own), "stand-in" (not the training
    # set's: its values are flagged), "site" (computed here, ai.models.normalisation).
    normalisation: str = "training"
    # Digests of the file as its publisher released it (e.g. the Git LFS oid of a weight file):
    # a loaded file is reported as published or not, never refused for a mismatch (`sha256`
    # is the pin that refuses).
    published_sha256: tuple[str, ...] = ()
    # The file as the publisher serves it for `echo-node models fetch` ("" = not published),
    # the sha256 of what that URL serves where the publisher states it ("" = unknown), and,
    # for an archive, the member to install.
    download_url: str = ""
    download_sha256: str = ""
    archive_member: str = ""

    def is_published(self, digest: str) -> bool | None:
        """Whether `digest` is a published one; None when no published digest is known. The
        digest of a download that is the checkpoint itself (not an archive) is one."""
        known = set(self.published_sha256)
        if self.download_sha256 and not self.archive_member:
            known.add(self.download_sha256)
        if not known:
            return None
        return digest.lower() in known

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width)."""
        return (self.input_height, self.input_width)

    def install_command(self) -> str:
        imported = f"echo-node models import PATH --name {self.name}"
        if self.download_url:
            return f"echo-node models fetch {self.name} (or: {imported})"
        return imported


@dataclass(frozen=True)
class Registry:
    models: tuple[ModelSpec, ...]

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self.models)

    def __contains__(self, name: object) -> bool:
        return any(spec.name == name for spec in self.models)

    def get(self, name: str) -> ModelSpec:
        for spec in self.models:
            if spec.name == name:
                return spec
        known = ", ".join(spec.name for spec in self.models)
        raise KeyError(f"no model named {name!r} in the registry (known: {known})")

    def by_file(self, file_name: str) -> ModelSpec | None:
        matches = [spec for spec in self.models if spec.file == file_name]
        return matches[0] if len(matches) == 1 else None

    def by_sha256(self, digest: str) -> ModelSpec | None:
        for spec in self.models:
            if spec.sha256 and spec.sha256.lower() == digest.lower():
                return spec
        return None

    def replace(self, spec: ModelSpec) -> Registry:
        """A copy with one entry swapped (tests and benchmarks feed smaller inputs)."""
        return Registry(tuple(spec if m.name == spec.name else m for m in self.models))


_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "version": str,
    "task": str,
    "architecture": str,
    "output_channels": int,
    "input_height": int,
    "input_width": int,
    "frames": int,
    "period": int,
    "colour_order": str,
    "scale": (int, float),
    "mean": list,
    "std": list,
    "file": str,
    "sha256": str,
    "source_url": str,
    "licence": str,
}


def _spec(entry: Mapping[str, Any]) -> ModelSpec:
    name = str(entry.get("name", "?"))
    for key, kind in _REQUIRED.items():
        if key not in entry:
            raise RegistryError(f"model {name!r}: missing key {key!r}")
        if not isinstance(entry[key], kind) or isinstance(entry[key], bool):
            raise RegistryError(f"model {name!r}: key {key!r} has the wrong type")
    if entry["architecture"] not in ARCHITECTURES:
        raise RegistryError(
            f"model {name!r}: architecture {entry['architecture']!r} is not one of {ARCHITECTURES}"
        )
    if entry["colour_order"] not in ("RGB", "BGR"):
        raise RegistryError(f"model {name!r}: colour_order must be RGB or BGR")
    mean, std = entry["mean"], entry["std"]
    if len(mean) != 3 or len(std) != 3 or any(float(s) <= 0 for s in std):
        raise RegistryError(f"model {name!r}: mean/std need 3 values, std > 0")
    for key in ("output_channels", "input_height", "input_width", "frames", "period"):
        if entry[key] < 1:
            raise RegistryError(f"model {name!r}: {key} must be at least 1")
    normalisation = entry.get("normalisation", "training")
    if normalisation not in NORMALISATIONS:
        raise RegistryError(f"model {name!r}: normalisation must be one of {NORMALISATIONS}")
    download_url, download_sha256, member = (
        str(entry.get(key, "")) for key in ("download_url", "download_sha256", "archive_member")
    )
    if download_url and not download_url.startswith(("https://", "http://")):
        raise RegistryError(f"model {name!r}: download_url must be an http(s) URL")
    if download_sha256 and not _is_sha256(download_sha256):
        raise RegistryError(f"model {name!r}: download_sha256 must be 64 hex digits")
    if member and not download_url:
        raise RegistryError(f"model {name!r}: archive_member needs a download_url")
    labels = tuple(str(label) for label in entry.get("labels", ()))
    published = entry.get("published_sha256", [])
    if not isinstance(published, list) or not all(_is_sha256(d) for d in published):
        raise RegistryError(f"model {name!r}: published_sha256 must be a list of sha256 digests")
    if labels and len(labels) != entry["output_channels"]:
        raise RegistryError(f"model {name!r}: {len(labels)} labels for {entry['output_channels']}")
    return ModelSpec(
        name=name,
        version=entry["version"],
        task=entry["task"],
        architecture=entry["architecture"],
        output_channels=entry["output_channels"],
        input_height=entry["input_height"],
        input_width=entry["input_width"],
        frames=entry["frames"],
        period=entry["period"],
        colour_order=entry["colour_order"],
        scale=float(entry["scale"]),
        mean=(float(mean[0]), float(mean[1]), float(mean[2])),
        std=(float(std[0]), float(std[1]), float(std[2])),
        file=entry["file"],
        sha256=entry["sha256"].lower(),
        source_url=entry["source_url"],
        licence=entry["licence"],
        optional=bool(entry.get("optional", False)),
        labels=labels,
        notes=str(entry.get("notes", "")),
        normalisation=normalisation,
        published_sha256=tuple(d.lower() for d in published),
        download_url=download_url,
        download_sha256=download_sha256.lower(),
        archive_member=member,
    )


def _is_sha256(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) == 64
        and all(c in "0123456789abcdef" for c in value.lower())
    )


def parse_registry(text: str) -> Registry:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"models registry is not valid TOML: {exc}") from exc
    models = tuple(_spec(entry) for entry in data.get("model", ()))
    names = [spec.name for spec in models]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RegistryError(f"duplicate model names: {duplicates}")
    return Registry(models)


def default_registry() -> Registry:
    """config/models.toml, read as package data like config/default.toml."""
    text = resources.files("config").joinpath("models.toml").read_text(encoding="utf-8")
    return parse_registry(text)
