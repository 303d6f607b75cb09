"""Argument checks shared across the package, with errors that name the argument and the value received."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["positive_finite"]


def positive_finite(name: str, value: Any) -> float:
    """``value`` as a float, or ``ValueError`` naming ``name`` unless it is a positive finite number."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v
