"""`echo-node models fetch`: a registry entry's published file, checked, then installed.

The steps, each of which stops the model with a reason and installs nothing:
1. download ``download_url`` (echo_node.fetch.download: resume, proxy, size limit), through
   ``models_mirror`` when the site keeps a copy of the publishers' files;
2. check its sha256: against ``download_sha256`` where the publisher states it (a Git LFS
   object id names exactly the file's sha256), else against the digest recorded when this node
   first fetched that URL (``downloads.json`` in the model directory: trust on first use, and
   said so), else record it now;
3. for an archive, take out ``archive_member`` alone, bounded by the same size limit;
4. install it like `models import` (ai.models.store.install_checkpoint: the registry's sha256,
   a strict load into the architecture, then an atomic rename).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from ai.models.registry import ModelSpec
from ai.models.store import InstallError, install_checkpoint
from ai.models.verify import check_file
from echo_node.fetch.download import DownloadError, Progress, discard, download

LEDGER = "downloads.json"
PARTIAL_DIR = ".partial"


class FetchError(Exception):
    """The model was not installed; the message says why and what to do."""


@dataclass(frozen=True)
class Fetched:
    name: str
    message: str


def mirrored(url: str, mirror: str) -> str:
    """``url`` as the site mirror serves it: the mirror's base, then host and path."""
    if not mirror:
        return url
    parts = urlsplit(url)
    return f"{mirror.rstrip('/')}/{parts.netloc}{parts.path}"


def _partial_path(model_dir: Path, spec: ModelSpec) -> Path:
    key = hashlib.sha256(spec.download_url.encode()).hexdigest()[:12]
    name = Path(urlsplit(spec.download_url).path).name or spec.file
    return model_dir / PARTIAL_DIR / f"{key}-{name}"


def read_ledger(model_dir: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads((model_dir / LEDGER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _record(model_dir: Path, url: str, sha256: str, size: int) -> None:
    ledger = read_ledger(model_dir)
    ledger[url] = {
        "sha256": sha256,
        "bytes": size,
        "first_fetched_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    handle, temporary = tempfile.mkstemp(dir=model_dir, prefix=".ledger-")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(json.dumps(ledger, indent=2, sort_keys=True) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, model_dir / LEDGER)


def fetch_model(
    spec: ModelSpec,
    model_dir: Path,
    http: httpx.Client,
    *,
    max_bytes: int,
    mirror: str = "",
    force: bool = False,
    accept_changed: bool = False,
    progress: Progress | None = None,
) -> Fetched:
    """Download, check and install ``spec``'s file; FetchError says why it was not."""
    if not spec.download_url:
        raise FetchError(
            f"the publisher gives no download of {spec.name} ({spec.licence}); install a copy "
            f"you are entitled to with: echo-node models import PATH --name {spec.name}"
        )
    if (model_dir / spec.file).is_file() and not force:
        check = check_file(spec, model_dir)
        if check.verdict == "changed":
            raise FetchError(f"installed {spec.file} {check.describe()}; --force replaces it")
        return Fetched(spec.name, f"already installed, {check.describe()}")
    model_dir.mkdir(parents=True, exist_ok=True)
    partial = _partial_path(model_dir, spec)
    url = mirrored(spec.download_url, mirror)
    try:
        got = download(http, url, partial, max_bytes=max_bytes, progress=progress)
    except DownloadError as exc:
        raise FetchError(str(exc)) from None
    notes = [f"resumed at byte {got.resumed_from}"] if got.resumed_from else []
    try:
        checked, record = _check_digest(spec, model_dir, got.sha256, accept_changed)
        notes.append(checked)
        source = _extract(spec, got.path, max_bytes) if spec.archive_member else got.path
        try:
            installed = install_checkpoint(
                source,
                spec,
                model_dir,
                force=force,
                provenance={"source_url": spec.download_url, "download_sha256": got.sha256},
            )
        except InstallError as exc:
            raise FetchError(str(exc)) from None
        finally:
            if source != got.path:
                source.unlink(missing_ok=True)
    finally:
        discard(partial)  # checked and installed, or refused: never kept half-done
    if record:
        _record(model_dir, spec.download_url, got.sha256, got.size)
    notes.append(f"sha256 {installed.sha256} ({installed.origin})")
    return Fetched(spec.name, f"installed at {installed.path}; " + "; ".join(notes))


def _check_digest(
    spec: ModelSpec, model_dir: Path, digest: str, accept_changed: bool
) -> tuple[str, bool]:
    """What the download's digest was checked against, and whether to record it once the
    file is installed; FetchError when it differs."""
    if spec.download_sha256:
        if digest != spec.download_sha256:
            raise FetchError(
                f"{spec.download_url} gave a file with sha256 {digest}, not the published "
                f"{spec.download_sha256}: refused, nothing installed"
            )
        return "download sha256 matches the published digest", False
    recorded = read_ledger(model_dir).get(spec.download_url)
    if not isinstance(recorded, dict):
        return (
            "no published digest: this first download's sha256 is recorded in "
            f"{model_dir / LEDGER}, and later fetches must match it (trust on first use)"
        ), True
    first = recorded.get("first_fetched_at")
    if recorded.get("sha256") == digest:
        return f"download sha256 matches the one recorded at first fetch ({first})", False
    if not accept_changed:
        raise FetchError(
            f"{spec.download_url} gave a file with sha256 {digest}, not the "
            f"{recorded.get('sha256')} recorded at its first fetch "
            f"({first}): refused, nothing installed. If the "
            "publisher replaced the file on purpose, fetch again with --accept-changed"
        )
    changed = "download sha256 differs from the one recorded at first fetch: accepted"
    return f"{changed} and recorded (--accept-changed)", True


def _extract(spec: ModelSpec, archive: Path, max_bytes: int) -> Path:
    """The archive member alone, in a file beside the download."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            try:
                member = bundle.getinfo(spec.archive_member)
            except KeyError:
                raise FetchError(
                    f"{spec.download_url} has no {spec.archive_member}: refused, nothing installed"
                ) from None
            if member.file_size > max_bytes:
                raise FetchError(
                    f"{spec.archive_member} unpacks to {member.file_size} bytes, over the size "
                    f"limit of {max_bytes} bytes (models_fetch_max_gb)"
                )
            target = archive.with_name(archive.name + ".member")
            with bundle.open(member) as source, target.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError) as exc:
        raise FetchError(f"{spec.download_url} is not a readable zip archive: {exc}") from None
    return target
