"""Checking installed checkpoints against the registry's sha256 or the digest recorded at import.

Used by `echo-node models verify` and `echo-node doctor`; loading a file into its network is
the caller's further step (``ai.models.loader.load_model``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ai.models.loader import sha256_file
from ai.models.registry import ModelSpec, Registry
from ai.models.store import recorded_sha256

Verdict = Literal["missing", "ok", "changed", "unverified"]


@dataclass(frozen=True)
class FileCheck:
    spec: ModelSpec
    path: Path
    verdict: Verdict
    sha256: str | None  # of the file, when it is there
    expected: str | None
    source: str  # where ``expected`` comes from: "registry", "recorded at import", "unknown"

    def describe(self) -> str:
        if self.verdict == "missing":
            return "not installed"
        if self.verdict == "unverified":
            return f"unverified (no digest in the registry or recorded) sha256 {self.sha256}"
        if self.verdict == "changed":
            return f"CHANGED: sha256 {self.sha256}, {self.source} {self.expected}"
        return f"ok (sha256 matches the {self.source} digest)"


def expected_sha256(spec: ModelSpec, path: Path) -> tuple[str | None, str]:
    """(digest the file should have, where that comes from)."""
    if spec.sha256:
        return spec.sha256, "registry"
    recorded = recorded_sha256(path)
    return (recorded, "recorded at import") if recorded else (None, "unknown")


def check_file(spec: ModelSpec, model_dir: Path) -> FileCheck:
    """Hash the spec's file in ``model_dir`` (if there) and compare it with what is expected."""
    path = model_dir / spec.file
    expected, source = expected_sha256(spec, path)
    if not path.is_file():
        return FileCheck(spec, path, "missing", None, expected, source)
    digest = sha256_file(path)
    if expected is None:
        verdict: Verdict = "unverified"
    elif digest.lower() != expected.lower():
        verdict = "changed"
    else:
        verdict = "ok"
    return FileCheck(spec, path, verdict, digest, expected, source)


def check_files(registry: Registry, model_dir: Path) -> list[FileCheck]:
    return [check_file(spec, model_dir) for spec in registry]
