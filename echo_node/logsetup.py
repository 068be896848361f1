"""Structured logs: ``key=value`` text for people or one JSON object a line for collectors.

Log calls pass identifiers through ``extra=``; only UIDs, AE titles, addresses and counts go
there, never patient names, IDs or birth dates.

Libraries do not follow that rule: pydicom's validation warnings quote the offending value
(``Invalid value for VR UI: '<a patient's name>'``), as a log line and as a ``UserWarning``
printed on stderr, and exception messages quote whatever they like. So the node (1) turns
pydicom's value validation on reading off (it stores bytes as received and checks what it
needs itself), (2) routes Python warnings and threads' uncaught exceptions into logging
instead of stderr, and (3) removes every quoted text from each record's message and
traceback before it is written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from datetime import UTC, datetime
from typing import Any

from pydicom import config as pydicom_config

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


# Quoted text as repr() and f-strings write it ('...', "...", b'...'), escapes included.
_QUOTED = re.compile(r"b?'(?:[^'\\\n]|\\.)*'" r'|b?"(?:[^"\\\n]|\\.)*"')
REDACTED = "'<redacted>'"


def redact(text: str) -> str:
    return _QUOTED.sub(REDACTED, text)


class RedactValues(logging.Filter):
    """Strips quoted values from a record's message and exception text (see above)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        return f"{text} {extra}" if extra else text


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    logging.getLogger("threading").error(
        "uncaught exception in a thread",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),  # type: ignore[arg-type]
        extra={"thread": args.thread.name if args.thread else None},
    )


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactValues())
    pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
    logging.captureWarnings(True)
    # A thread's uncaught exception (pynetdicom's reader threads have them) goes through
    # logging and its filter, not straight to stderr.
    threading.excepthook = _log_thread_exception
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # pynetdicom logs every PDU at INFO and dumps datasets at DEBUG (patient data included).
    logging.getLogger("pynetdicom").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
