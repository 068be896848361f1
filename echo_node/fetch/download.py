"""Downloading one publisher's file: resumable, bounded in size, through the site's proxy.

The client is httpx with ``trust_env``: HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY choose
the proxy as curl and pip do, SSL_CERT_FILE a site CA bundle for an inspecting proxy. GitHub
answers release and Git LFS downloads with redirects to its storage hosts; those are followed.

A download goes to ``<partial>`` with a small JSON state beside it (the URL and the response's
validator: a strong ETag or Last-Modified). When the connection breaks, the next attempt of
the same run or a later ``models fetch`` asks for the rest (``Range: bytes=N-``) with
``If-Range``, so a file the publisher replaced meanwhile comes back whole rather than spliced;
without a validator it starts again from zero. A body larger than ``max_bytes`` is refused
before (Content-Length, Content-Range) or while it arrives.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from echo_node import __version__
from storage.files import digest_file

logger = logging.getLogger(__name__)

# Bytes done, total (None while unknown).
Progress = Callable[[int, int | None], None]

ATTEMPTS = 5
_TIMEOUT = httpx.Timeout(30.0, read=120.0)


class DownloadError(Exception):
    """The file could not be had; the message names the URL and why. The partial file stays
    for the next attempt unless the refusal makes it useless (size limit, a wrong file)."""


@dataclass(frozen=True)
class Downloaded:
    path: Path
    size: int
    sha256: str
    resumed_from: int  # bytes already there from an earlier, broken attempt (0: none)


def client() -> httpx.Client:
    """The HTTP client of `models fetch`: proxies and CA bundle from the environment."""
    return httpx.Client(
        follow_redirects=True,
        timeout=_TIMEOUT,
        trust_env=True,
        # Identity: byte ranges then count the file's own bytes, not a compressed stream's.
        headers={"User-Agent": f"echo-node/{__version__}", "Accept-Encoding": "identity"},
    )


def _state_path(partial: Path) -> Path:
    return partial.with_name(partial.name + ".json")


def _load_state(partial: Path, url: str) -> str | None:
    """The validator of the partial download of ``url``; None (and no partial) otherwise."""
    try:
        state = json.loads(_state_path(partial).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        state = None
    if isinstance(state, dict) and state.get("url") == url and state.get("validator"):
        return str(state["validator"])
    partial.unlink(missing_ok=True)  # nothing to check it against: start from zero
    return None


def _save_state(partial: Path, url: str, validator: str | None) -> None:
    _state_path(partial).write_text(
        json.dumps({"url": url, "validator": validator}), encoding="utf-8"
    )


def discard(partial: Path) -> None:
    partial.unlink(missing_ok=True)
    _state_path(partial).unlink(missing_ok=True)


def _validator(response: httpx.Response) -> str | None:
    etag = str(response.headers.get("etag", ""))
    if etag and not etag.startswith("W/"):  # If-Range takes strong validators only
        return etag
    return str(response.headers.get("last-modified", "")) or None


def _content_range(response: httpx.Response) -> tuple[int | None, int | None]:
    """(first byte, total) of a Content-Range header "bytes A-B/T" or "bytes */T"."""
    value = response.headers.get("content-range", "")
    unit, _, spec = value.partition(" ")
    span, _, total = spec.partition("/")
    if unit != "bytes":
        return None, None
    first = span.split("-")[0]
    return (
        int(first) if first.isdigit() else None,
        int(total) if total.isdigit() else None,
    )


def download(
    http: httpx.Client,
    url: str,
    partial: Path,
    *,
    max_bytes: int,
    progress: Progress | None = None,
    attempts: int = ATTEMPTS,
    backoff_s: float = 1.0,
) -> Downloaded:
    """Fetch ``url`` into ``partial``, resuming what an earlier attempt left there."""
    partial.parent.mkdir(parents=True, exist_ok=True)
    validator = _load_state(partial, url)
    resumed_from = partial.stat().st_size if partial.exists() else 0
    for attempt in range(1, attempts + 1):
        try:
            validator, complete = _attempt(http, url, partial, validator, max_bytes, progress)
        except httpx.TransportError as exc:  # refused, reset, cut mid-body, timed out
            if attempt == attempts:
                raise DownloadError(
                    f"{url}: {type(exc).__name__} after {attempts} attempts: {exc}; "
                    "run the command again to resume"
                ) from None
            logger.warning(
                "download interrupted, resuming",
                extra={"url": url, "attempt": attempt, "error": type(exc).__name__},
            )
            time.sleep(backoff_s * attempt)
            validator = _load_state(partial, url)  # saved once the response began
            continue
        if complete:
            digest = digest_file(partial)
            return Downloaded(partial, digest.size, digest.sha256, resumed_from)
    raise DownloadError(f"{url}: the body stayed incomplete after {attempts} attempts")


def _attempt(
    http: httpx.Client,
    url: str,
    partial: Path,
    validator: str | None,
    max_bytes: int,
    progress: Progress | None,
) -> tuple[str | None, bool]:
    """One request; returns the validator and whether the file is now complete."""
    offset = partial.stat().st_size if partial.exists() and validator else 0
    headers = {}
    if offset:
        headers = {"Range": f"bytes={offset}-", "If-Range": validator or ""}
    with http.stream("GET", url, headers=headers) as response:
        if response.status_code == 416 and offset:
            # Nothing after offset: complete if the publisher's size is what we hold.
            _, total = _content_range(response)
            if total == offset:
                return validator, True
            discard(partial)
            return None, False
        if response.status_code >= 400:
            discard(partial)
            raise DownloadError(
                f"{url}: HTTP {response.status_code} {response.reason_phrase}"
                + (" (not published there, or moved)" if response.status_code == 404 else "")
            )
        if response.status_code == 206:
            first, total = _content_range(response)
            if first != offset:  # not the range asked for: take the file again from zero
                discard(partial)
                return None, False
        else:  # 200: the whole file (no partial, or the publisher's file changed)
            offset = 0
            length = response.headers.get("content-length", "")
            total = int(length) if length.isdigit() else None
        if total is not None and total > max_bytes:
            discard(partial)
            raise DownloadError(
                f"{url}: {total} bytes is over the size limit of {max_bytes} bytes "
                "(models_fetch_max_gb)"
            )
        validator = _validator(response)
        _save_state(partial, url, validator)
        size = _write_body(response, partial, offset, max_bytes, total, progress)
    return validator, total is None or size == total


def _write_body(
    response: httpx.Response,
    partial: Path,
    offset: int,
    max_bytes: int,
    total: int | None,
    progress: Progress | None,
) -> int:
    """Write the body at ``offset`` (dropping anything after it); the size reached. What
    arrived before a broken connection stays on disk for the next attempt."""
    size = offset
    try:
        with partial.open("r+b" if offset else "wb") as out:
            out.seek(offset)
            out.truncate()
            try:
                # As the network delivers it: a buffered chunk would be lost with the connection.
                for chunk in response.iter_bytes():
                    if size + len(chunk) > max_bytes:
                        raise DownloadError(
                            f"{response.url}: more than the size limit of {max_bytes} bytes "
                            "(models_fetch_max_gb)"
                        )
                    out.write(chunk)
                    size += len(chunk)
                    if progress is not None:
                        progress(size, total)
            finally:
                out.flush()
                os.fsync(out.fileno())
    except DownloadError:
        discard(partial)
        raise
    return size
