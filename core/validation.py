"""Checks of untrusted input at the edge: text that fits its column, e-mail addresses that cannot inject
headers, JSON that PostgreSQL can store (finite numbers, no NUL), durations. Each raises InvalidInput naming
the field, never quoting more of the value than is safe to show."""

from __future__ import annotations

import math
import re
from typing import Any

from core.errors import InvalidInput

# one address, no display name, no whitespace or control characters (CR/LF would inject headers), no list
_EMAIL = re.compile(r"[^@\s<>,;:\"()\[\]\\\x00-\x1f\x7f]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_BREAK = re.compile(r"[\r\n\x00]")
_DURATION = re.compile(r"\s*(\d+)\s*(us|ms|s|min|h|d)?\s*")


def check_text(value: Any, what: str, *, max_length: int, required: bool = True, multiline: bool = False) -> str:
    """`value` as a str of at most `max_length` characters (a column's length), without NUL or control
    characters (line breaks only when `multiline`)."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text")
    if required and not value.strip():
        raise InvalidInput(f"{what} must not be empty")
    if len(value) > max_length:
        raise InvalidInput(f"{what} is {len(value)} characters long; at most {max_length} fit")
    if _CONTROL.search(value) or (not multiline and _LINE_BREAK.search(value)):
        raise InvalidInput(f"{what} contains control characters (NUL, CR, LF, ...)")
    return value


def check_email(value: Any, what: str = "e-mail address") -> str:
    """One plain e-mail address (`user@host`, at most 255 characters): no display name, no list, no CR/LF."""
    if not isinstance(value, str) or len(value) > 255 or not _EMAIL.fullmatch(value):
        shown = value if isinstance(value, str) and len(value) <= 80 and not _CONTROL.search(value) else None
        shown = shown.replace("\r", "\\r").replace("\n", "\\n") if shown else None
        raise InvalidInput(f"{what} {'' if shown is None else repr(shown) + ' '}is not a plain e-mail address")
    return value


def check_json_value(value: Any, what: str, *, max_key_length: int = 255) -> Any:
    """`value` unchanged when PostgreSQL's jsonb can hold it: finite numbers only (no NaN/Infinity), no NUL in
    strings or keys, keys of at most `max_key_length` characters."""

    def walk(item: Any, path: str) -> None:
        if isinstance(item, float) and not math.isfinite(item):
            raise InvalidInput(f"{what}: {path or 'the value'} is {item}; only finite numbers are allowed")
        if isinstance(item, str) and "\x00" in item:
            raise InvalidInput(f"{what}: {path or 'the value'} contains a NUL character")
        if isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in key or len(key) > max_key_length:
                    raise InvalidInput(f"{what}: a key is longer than {max_key_length} characters or contains NUL")
                walk(child, f"{path}.{key}" if path else key)
        elif isinstance(item, list):
            for index, child in enumerate(item):
                walk(child, f"{path}[{index}]")

    walk(value, "")
    return value


def check_finite(value: float, what: str, *, minimum: float | None = None, maximum: float | None = None) -> float:
    """A finite number within [minimum, maximum]."""
    if not math.isfinite(value):
        raise InvalidInput(f"{what} must be a finite number, got {value}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f"from {minimum:g}" if maximum is None else f"from {minimum:g} to {maximum:g}"
        raise InvalidInput(f"{what} must be a number {bounds}, got {value:g}")
    return value


def check_duration(value: str, what: str) -> str:
    """A PostgreSQL duration setting such as `120s`, `500ms`, `2min` or `0` (returned normalised)."""
    match = _DURATION.fullmatch(value)
    if not match:
        raise InvalidInput(f"{what}: '{value[:40]}' is not a duration such as 120s, 500ms or 2min")
    return f"{match.group(1)}{match.group(2) or 'ms'}"
