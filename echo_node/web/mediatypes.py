"""Media types in HTTP headers: a Content-Type's parameters and an Accept header's ranges.

Both are lists whose separators (``;`` and ``,``) may also stand inside quoted values
(``type="application/dicom"; transfer-syntax=*``), so they are split outside quotes only.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request


def content_type_parameters(value: str) -> tuple[str, dict[str, str]]:
    """Split a Content-Type value into its lower-cased media type and parameters."""
    media_type, *params = _split_unquoted(value, ";")
    parameters: dict[str, str] = {}
    for param in params:
        name, equals, raw = param.partition("=")
        if not equals:
            continue
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = raw[1:-1]
        parameters[name.strip().lower()] = raw
    return media_type.strip().lower(), parameters


def _split_unquoted(value: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


@dataclass(frozen=True)
class Accepted:
    media_type: str  # for multipart/related: the type parameter
    multipart: bool
    transfer_syntax: str | None


def accepted(request: Request) -> list[Accepted]:
    """The Accept header's media ranges in order (q-values are not weighed, only listed)."""
    header = request.headers.get("accept", "") or "*/*"
    result = []
    for item in _split_unquoted(header, ","):
        if not item.strip():
            continue
        media_type, params = content_type_parameters(item)
        if media_type == "multipart/related":
            result.append(
                Accepted(params.get("type", "*/*").lower(), True, params.get("transfer-syntax"))
            )
        else:
            result.append(Accepted(media_type, False, params.get("transfer-syntax")))
    return result


def wants(accept: Accepted, media_type: str) -> bool:
    """Whether the range takes ``media_type`` (*/*, type/* or the type itself)."""
    kind = media_type.split("/")[0]
    return accept.media_type in ("*/*", f"{kind}/*", media_type)
