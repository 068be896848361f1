"""DICOM UID checks applied before a UID is trusted as a path component (PS3.5 §9.1)."""

from __future__ import annotations

import re

# Components are digits without leading zeros (a lone 0 is allowed), separated by single dots.
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
MAX_UID_LENGTH = 64


class InvalidUID(ValueError):
    """A UID is missing or not of the DICOM UID grammar; names the attribute."""


def checked_uid(value: object, attribute: str) -> str:
    """Return ``value`` as a UID string, or raise InvalidUID naming ``attribute``.

    Trailing NUL padding (allowed on the wire) is removed; anything else, including the
    characters that could escape the store ("/", ".."), fails the grammar.
    """
    if value is None:
        raise InvalidUID(f"{attribute} is missing")
    text = str(value).rstrip("\x00").strip()
    if not text:
        raise InvalidUID(f"{attribute} is empty")
    if len(text) > MAX_UID_LENGTH:
        raise InvalidUID(f"{attribute} is {len(text)} characters long (at most 64)")
    if not _UID.fullmatch(text):
        # Not the value itself: a damaged length can make it the bytes of the next elements
        # (the patient's name among them), and this message is logged.
        bad = next((i for i, c in enumerate(text) if c not in "0123456789."), None)
        where = "misplaced dots or zeros" if bad is None else f"not a digit or dot at {bad + 1}"
        raise InvalidUID(f"{attribute} is not a valid DICOM UID ({where})")
    return text
