"""Numbers from JSON and the command line: the one definition of a usable, finite number."""

from __future__ import annotations

import math
from typing import Any

from core.errors import InvalidInput


def finite_or_none(value: Any) -> float | None:
    """`value` as a float when it is a real, finite number (never a bool); otherwise None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def require_finite(value: Any, where: str) -> float:
    """`value` as a float, or InvalidInput naming `where` and the value."""
    number = finite_or_none(value)
    if number is None:
        raise InvalidInput(f"{where} must be a finite number, got {value!r}")
    return number
