"""Moved to :mod:`sb3_swfp.demos`; this module re-exports its names so that older imports, saved models and
rl-zoo3 files that name ``sb3_swfp.common.buffers.DemoReplayBuffer`` keep working."""

from sb3_swfp.demos import (
    ENV_ID_FIELD,
    MINARI_PREFIX,
    DemoDictReplayBuffer,
    DemonstrationsLike,
    DemoReplayBuffer,
    as_demonstrations,
    check_demonstrations_loaded,
    defer_missing_demonstrations,
    with_env_id,
)

__all__ = [
    "ENV_ID_FIELD",
    "MINARI_PREFIX",
    "DemoDictReplayBuffer",
    "DemoReplayBuffer",
    "DemonstrationsLike",
    "as_demonstrations",
    "check_demonstrations_loaded",
    "defer_missing_demonstrations",
    "with_env_id",
]
