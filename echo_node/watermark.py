"""Disk safety: below a free-space watermark the node takes no new data.

The data directory holds the instances, the database (SQLite by default) and tmp/, where data
being received is written. A disk that fills up mid-transfer fails every writer at once, the
database included; refusing new work while a margin is left lets what is already under way
finish. The watermark is the larger of ``disk_min_free_percent`` of the filesystem and
``disk_min_free_gb``; it is read from the filesystem at each decision (a statvfs call), so the
node accepts again by itself as soon as space comes back.

Who refuses, and how: the DIMSE listener rejects new associations (echo_node.dimse.space),
STOW-RS answers 507 (echo_node.web.health), /readyz reports not ready; associations already
established finish their transfers.
"""

from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from echo_node.settings import Settings

logger = logging.getLogger(__name__)

_GB = 1e9


@dataclass(frozen=True)
class DiskSpace:
    """The data directory's filesystem against the watermark, at one moment."""

    free: int  # bytes available to the node (statvfs f_bavail)
    total: int
    required: int  # the watermark: below this much free space the node refuses new data

    @property
    def ok(self) -> bool:
        return self.free >= self.required

    def describe(self) -> str:
        return (
            f"{self.free / _GB:.2f} GB free of {self.total / _GB:.2f} GB, "
            f"watermark {self.required / _GB:.2f} GB"
        )


def required_free(total: int, min_free_percent: float, min_free_gb: float) -> int:
    """The watermark in bytes for a filesystem of ``total`` bytes (0 = no watermark)."""
    return int(max(total * min_free_percent / 100.0, min_free_gb * _GB))


def disk_space(path: Path, settings: Settings) -> DiskSpace:
    usage = shutil.disk_usage(path)
    required = required_free(usage.total, settings.disk_min_free_percent, settings.disk_min_free_gb)
    return DiskSpace(usage.free, usage.total, required)


class Watermark:
    """The check one process makes before it takes new data; logs when refusing starts and
    ends, so the log says why the node stopped taking studies and when it started again."""

    def __init__(self, path: Path, settings: Settings) -> None:
        self.path = path
        self.settings = settings
        self._refusing = False
        self._lock = threading.Lock()

    def check(self) -> DiskSpace:
        space = disk_space(self.path, self.settings)
        with self._lock:
            changed = self._refusing == space.ok
            self._refusing = not space.ok
        if changed and not space.ok:
            logger.error(
                "free disk space below the watermark: new associations and STOW-RS requests "
                "are refused until space is freed",
                extra=_extra(self.path, space),
            )
        elif changed:
            logger.warning(
                "free disk space back above the watermark: accepting new data again",
                extra=_extra(self.path, space),
            )
        return space


def _extra(path: Path, space: DiskSpace) -> dict[str, object]:
    return {
        "data_dir": str(path),
        "free_bytes": space.free,
        "total_bytes": space.total,
        "watermark_bytes": space.required,
    }
