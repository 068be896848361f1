"""Identifiers go to a log record's ``extra=`` fields, never into its message
(docs/ARCHITECTURE.md, "Logs"): a collector can index, filter or drop them, and a message
stays one text per event."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}


def _uid_in_message(call: ast.Call) -> bool:
    """A positional argument (the message or its %-arguments) that names a UID."""
    return any(
        "uid" in ast.unparse(argument).lower()
        for argument in call.args
        if not isinstance(argument, ast.Constant)  # the message's own words may say "UID"
    )


def test_no_log_call_puts_a_uid_in_its_message() -> None:
    offenders = []
    for package in ("ai", "echo_node", "storage"):
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in _LEVELS
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "logger"
                    and _uid_in_message(node)
                ):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == []
