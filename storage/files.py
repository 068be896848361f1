"""The file store: instances are written to a temp file, fsynced, renamed, directory fsynced.

Layout (content-addressed, docs/ARCHITECTURE.md §3):
``<root>/instances/<study>/<series>/<sop>.<sha16>.dcm``
where ``sha16`` starts the file's sha256. Naming by content means two writers can never
overwrite each other: the same bytes land on the same name, other bytes on another.
``<root>/tmp`` holds files being received (same filesystem, so the final rename is atomic),
``<root>/quarantine`` what was refused, each with a JSON sidecar.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from storage.uids import checked_uid

# Files are readable by the node's group (operators, backup jobs), never world-readable.
FILE_MODE = 0o640
DIR_MODE = 0o750
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileDigest:
    sha256: str
    size: int


def digest_file(path: Path) -> FileDigest:
    sha = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return FileDigest(sha.hexdigest(), size)


_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def out_of_space(exc: BaseException) -> bool:
    """Whether an error means the filesystem (or the user's quota) is full."""
    return isinstance(exc, OSError) and exc.errno in _SPACE_ERRNOS


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs(path: Path, stop: Path) -> None:
    """Create ``path`` and fsync each new directory's parent so the entry itself is durable."""
    missing = []
    current = path
    while not current.exists() and current != stop:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # another thread or process made it first: also fine
        fsync_dir(directory.parent)


class FileStore:
    """Owns the data directory's file layout; holds only paths, so it is safe to share."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.instances = self.root / "instances"
        self.tmp = self.root / "tmp"
        self.quarantine_dir = self.root / "quarantine"

    def prepare(self) -> None:
        for directory in (self.root, self.instances, self.tmp, self.quarantine_dir):
            directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)

    def remove_stale_temp_files(self) -> int:
        """Delete files left in tmp/ by a crash: they were never acknowledged."""
        removed = 0
        for path in self.tmp.iterdir():
            if path.is_file():
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def new_temp_path(self, suffix: str = ".part") -> Path:
        return self.tmp / f"{uuid.uuid4().hex}{suffix}"

    def instance_path(self, study_uid: str, series_uid: str, sop_uid: str, sha256: str) -> Path:
        # Re-checked here as well as at parse time: this is the line that turns UIDs into paths.
        study = checked_uid(study_uid, "StudyInstanceUID")
        series = checked_uid(series_uid, "SeriesInstanceUID")
        sop = checked_uid(sop_uid, "SOPInstanceUID")
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError("sha256 must be 64 lower-case hex digits")
        return self.instances / study / series / f"{sop}.{sha256[:16]}.dcm"

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def commit(self, temp: Path, target: Path) -> None:
        """Make ``temp`` durable under ``target``: fsync data, rename, fsync the directory."""
        os.chmod(temp, FILE_MODE)
        fsync_file(temp)
        _make_dirs(target.parent, self.instances)
        os.replace(temp, target)
        fsync_dir(target.parent)

    def commit_instance(self, temp: Path, target: Path) -> bool:
        """Like commit, for an already fsynced instance file; never replaces an existing one.
        True if this call put the file there; on an error nothing new is left at ``target``
        and ``temp`` is still in place.

        An existing file of that name holds the same bytes (the name is the content's hash):
        left by an earlier crash between rename and index, or a concurrent identical store.
        """
        _make_dirs(target.parent, self.instances)
        try:
            os.link(temp, target)
        except FileExistsError:
            temp.unlink(missing_ok=True)
            return False
        try:
            fsync_dir(target.parent)
        except OSError:
            target.unlink(missing_ok=True)
            raise
        temp.unlink(missing_ok=True)
        return True

    def quarantine(self, temp: Path | None, reason: str, details: dict[str, Any]) -> Path:
        """Keep refused bytes with a sidecar saying why; returns the sidecar path.

        All or nothing: on an OSError (disk full) no piece is left in quarantine/ and ``temp``
        is back where it was, for the caller to deal with.
        """
        stamp = datetime.now(UTC)
        name = f"{stamp:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"
        data_path = self.quarantine_dir / f"{name}.dcm"
        sidecar = self.quarantine_dir / f"{name}.json"
        has_data = temp is not None and temp.exists()
        record = {
            "reason": reason,
            "received_at": stamp.isoformat(),
            "bytes_received": temp.stat().st_size if temp is not None and has_data else 0,
            "file": data_path.name if has_data else None,
            **details,
        }
        # The sidecar is written first: it is the part that needs free space.
        tmp_sidecar = self.tmp / f"{name}.json.part"
        try:
            tmp_sidecar.write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
            fsync_file(tmp_sidecar)
            if temp is not None and has_data:
                self.commit(temp, data_path)
            self.commit(tmp_sidecar, sidecar)
        except OSError:
            tmp_sidecar.unlink(missing_ok=True)
            if temp is not None and data_path.exists():
                os.replace(data_path, temp)
            raise
        return sidecar

    def disk_usage(self) -> int:
        total = 0
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                try:
                    total += os.stat(os.path.join(dirpath, name)).st_size
                except FileNotFoundError:
                    continue
        return total
