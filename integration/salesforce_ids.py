"""Salesforce record ids: the 15-character (case-sensitive) and 18-character (case-safe) forms
of one id, so the same record links to one account whichever form a system stores."""

from __future__ import annotations

import hmac
import re

_ID = re.compile(r"[a-zA-Z0-9]{15}(?:[a-zA-Z0-5]{3})?")
_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def _suffix(id15: str) -> str:
    """The 3 characters that encode which of the 15 characters are upper case."""
    return "".join(
        _SUFFIX_ALPHABET[
            sum(1 << i for i, ch in enumerate(id15[start : start + 5]) if ch.isupper())
        ]
        for start in (0, 5, 10)
    )


def _restore_case(id15: str, suffix: str) -> str:
    chars = []
    for chunk, code in enumerate(suffix):
        bits = _SUFFIX_ALPHABET.index(code)
        for i, ch in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            chars.append(ch.upper() if bits >> i & 1 else ch.lower())
    return "".join(chars)


def is_id(value: str) -> bool:
    return _ID.fullmatch(value.strip()) is not None


def id18(value: str) -> str:
    """The canonical 18-character form of a Salesforce id given as 15 characters (case
    sensitive) or 18 characters (in any case: the suffix restores it)."""
    value = value.strip()
    if not _ID.fullmatch(value):
        raise ValueError(f"{value!r} is not a 15- or 18-character Salesforce id")
    if len(value) == 15:
        return value + _suffix(value)
    suffix = value[15:].upper()
    return _restore_case(value[:15], suffix) + suffix


def same_id(a: str, b: str) -> bool:
    """Whether two Salesforce ids (15 or 18 characters) name the same record."""
    try:
        return hmac.compare_digest(id18(a), id18(b))
    except ValueError:
        return False
