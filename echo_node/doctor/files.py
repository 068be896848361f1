"""The file store against the index: orphan files, missing or damaged files, tmp/, quarantine.

An orphan is a file linked into instances/ whose row never committed (a crash between the two,
ingest.py): never acknowledged, so the sender still has it. ``--fix`` moves orphans to
quarantine (reason "orphan") instead of deleting them, and removes old files from tmp/, which
hold only data never acknowledged. Files younger than ``doctor_in_flight_s`` are left alone:
they may belong to a transfer or commit still under way; an unindexed one is still reported.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from echo_node.doctor.report import Check
from storage.files import FileStore, digest_file
from storage.models import Instance

ORPHAN_REASON = "orphan"


@dataclass(frozen=True)
class IndexedFile:
    sop_instance_uid: str
    version: int
    path: str  # relative to the data directory
    size: int
    sha256: str

    @property
    def label(self) -> str:
        return f"SOP {self.sop_instance_uid} v{self.version} ({self.path})"


def indexed_files(sessions: sessionmaker[Session]) -> list[IndexedFile]:
    """Every instance row, read in one short session (no lock held while files are hashed)."""
    query = select(
        Instance.sop_instance_uid, Instance.version, Instance.path, Instance.size, Instance.sha256
    )
    with sessions() as session:
        return [IndexedFile(*row) for row in session.execute(query)]


def _age_s(path: Path, *, linked: bool = False) -> float:
    """Seconds since the file was last written (``linked``: or linked into place)."""
    status = path.stat()
    # ctime moves when ingest links a received file into instances/; a file still being
    # received in tmp/ has its mtime moved by every write.
    touched = max(status.st_mtime, status.st_ctime) if linked else status.st_mtime
    return time.time() - touched


def _files(directory: Path) -> Iterator[Path]:
    for dirpath, _dirs, names in os.walk(directory):
        for name in sorted(names):
            yield Path(dirpath) / name


def check_orphans(
    store: FileStore,
    indexed: list[IndexedFile],
    sessions: sessionmaker[Session],
    in_flight_s: float,
    fix: bool,
) -> Check:
    """A file younger than ``in_flight_s`` may be a commit still under way, so ``--fix``
    leaves it; but it is never reported OK: a commit takes milliseconds, and a failed one
    (disk full) or a crash leaves just such a fresh orphan."""
    known = {item.path for item in indexed}
    orphans: list[str] = []
    recent: list[str] = []
    for path in _files(store.instances):
        relative = store.relative(path)
        if relative in known:
            continue
        try:
            young = _age_s(path, linked=True) < in_flight_s
        except FileNotFoundError:
            continue
        (recent if young else orphans).append(relative)
    note = (
        f"; {len(recent)} newer than doctor_in_flight_s, left alone (a commit may be under "
        "way; run doctor again)"
        if recent
        else ""
    )
    if not orphans and not recent:
        return Check("orphan files", "OK", "every file in instances/ is indexed")
    if not fix or not orphans:
        return Check(
            "orphan files",
            "WARN",
            f"{len(orphans) + len(recent)} file(s) in instances/ with no index row, never "
            f"acknowledged (`doctor --fix` moves those older than doctor_in_flight_s to "
            f"quarantine){note}",
            tuple(orphans + recent),
        )
    moved = [relative for relative in orphans if _quarantine_orphan(store, sessions, relative)]
    return Check(
        "orphan files",
        "OK" if len(moved) == len(orphans) and not recent else "WARN",
        f"moved {len(moved)} of {len(orphans)} unindexed file(s) to quarantine (reason "
        f"{ORPHAN_REASON}){note}",
        tuple(moved),
    )


def _quarantine_orphan(store: FileStore, sessions: sessionmaker[Session], relative: str) -> bool:
    with sessions() as session:  # indexed meanwhile (a slow commit): not an orphan after all
        if session.scalar(select(Instance.id).where(Instance.path == relative)) is not None:
            return False
    path = store.root / relative
    if not path.is_file():
        return False
    store.quarantine(path, ORPHAN_REASON, {"original_path": relative})
    return True


def check_indexed(store: FileStore, indexed: list[IndexedFile], verify: bool) -> list[Check]:
    """Rows whose file is missing, or whose size, name or (with ``verify``) sha256 differ."""
    missing, damaged = [], []
    for item in indexed:
        path = store.root / item.path
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            missing.append(item.label)
            continue
        if not path.name.endswith(f".{item.sha256[:16]}.dcm"):
            damaged.append(f"{item.label}: the name does not carry the indexed sha256")
        elif size != item.size:
            damaged.append(f"{item.label}: {size} bytes, {item.size} indexed")
        elif verify and digest_file(path).sha256 != item.sha256:
            damaged.append(f"{item.label}: sha256 differs from the index")
    how = "sizes, names and sha256" if verify else "sizes and names (--verify-files: sha256)"
    missing_check = (
        Check(
            "missing files",
            "FAIL",
            f"{len(missing)} indexed instance(s) have no file",
            tuple(missing),
        )
        if missing
        else Check("missing files", "OK", f"all {len(indexed)} indexed instances have a file")
    )
    damaged_check = (
        Check(
            "damaged files", "FAIL", f"{len(damaged)} file(s) differ from the index", tuple(damaged)
        )
        if damaged
        else Check("damaged files", "OK", f"{how} match the index")
    )
    return [missing_check, damaged_check]


def check_tmp(store: FileStore, in_flight_s: float, fix: bool) -> Check:
    stale, recent = [], 0
    for path in _files(store.tmp):
        try:
            if _age_s(path) < in_flight_s:
                recent += 1
                continue
        except FileNotFoundError:
            continue
        stale.append(path)
    note = f" ({recent} newer file(s) in transfer)" if recent else ""
    names = tuple(store.relative(path) for path in stale)
    if not stale:
        return Check("stale tmp files", "OK", f"nothing left in tmp/ by aborted transfers{note}")
    if fix:
        for path in stale:
            path.unlink(missing_ok=True)  # never acknowledged: the sender still has the data
        return Check("stale tmp files", "OK", f"removed {len(stale)} stale file(s){note}", names)
    return Check(
        "stale tmp files",
        "WARN",
        f"{len(stale)} file(s) in tmp/ older than doctor_in_flight_s, left by aborted "
        f"transfers or a crash (`doctor --fix` removes them){note}",
        names,
    )


def check_quarantine(store: FileStore) -> Check:
    reasons: Counter[str] = Counter()
    for sidecar in sorted(store.quarantine_dir.glob("*.json")):
        try:
            reason = str(json.loads(sidecar.read_text(encoding="utf-8")).get("reason", "?"))
        except (OSError, ValueError, AttributeError):
            reason = "unreadable sidecar"
        # Only the kind of reason (its text before a colon): the rest may quote the data.
        reasons[reason.split(":", 1)[0][:60]] += 1
    total = sum(reasons.values())
    if not total:
        return Check("quarantine", "OK", "empty")
    summary = ", ".join(f"{count} {reason}" for reason, count in reasons.most_common())
    return Check(
        "quarantine",
        "WARN",
        f"{total} refused file(s) in quarantine/ ({summary}); each .json says why, remove them "
        "once dealt with",
    )
