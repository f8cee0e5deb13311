"""Argument checks with one message format, shared by the algorithm and the modules it builds, and the action-space check."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces


def check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    """Raise ``ValueError("unknown <name> <value>, expected one of 'a', 'b'")`` unless ``value`` is in ``allowed``."""
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}, expected one of {', '.join(repr(a) for a in allowed)}")


def check_int(name: str, value: Any, minimum: int) -> None:
    """Raise ``ValueError("<name> must be an integer >= <minimum>, got <value>")`` unless it is one (bools are not)."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_action_space(action_space: spaces.Space) -> None:
    """Raise a ValueError unless ``action_space`` is a bounded ``gymnasium.spaces.Box``."""
    if not isinstance(action_space, spaces.Box):
        raise ValueError(
            f"SWFP needs a continuous gymnasium.spaces.Box action space, got {action_space}. "
            "Flow policies generate real-valued actions; for discrete actions use e.g. SB3's DQN or PPO."
        )
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise ValueError(
            f"SWFP needs a bounded Box action space (finite low and high), got low={action_space.low}, "
            f"high={action_space.high}. Wrap the env with gymnasium.wrappers.RescaleAction or ClipAction."
        )


__all__ = ["check_action_space", "check_choice", "check_int"]
