"""Argument checks with one message format, shared by the algorithm and the modules it builds."""

from __future__ import annotations

from typing import Any

import numpy as np


def check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    """Raise ``ValueError("unknown <name> <value>, expected one of 'a', 'b'")`` unless ``value`` is in ``allowed``."""
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}, expected one of {', '.join(repr(a) for a in allowed)}")


def check_int(name: str, value: Any, minimum: int) -> None:
    """Raise ``ValueError("<name> must be an integer >= <minimum>, got <value>")`` unless it is one (bools are not)."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


__all__ = ["check_choice", "check_int"]
