"""Validation of demonstrations against an environment's spaces, and the checks beyond the spaces (env id, rewards)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from sb3_swfp.demos.record import Demonstrations, Observations, _check_structure


def vec_env_id(env: Any) -> str | None:
    """The id of a VecEnv's spec (its first env's), or of an env's, what demonstrations are checked against; None
    without an env, for an env that is not a ``gymnasium.Env``, or without a registered spec."""
    if env is None:
        return None
    if not hasattr(env, "get_attr"):  # an env, not a VecEnv (SWFP.set_env takes both)
        return getattr(getattr(env, "spec", None), "id", None)
    try:
        spec = env.get_attr("spec", indices=[0])[0]
    except AttributeError:  # an env that is not a gymnasium.Env
        return None
    return getattr(spec, "id", None)


def check_env_id(metadata: Mapping[str, Any], env_id: str | None, allow_env_mismatch: bool = False, stacklevel: int = 3) -> None:
    """Raise unless demonstrations with this ``metadata`` were recorded on ``env_id`` (``metadata["env_id"]``).

    Nothing is checked when either id is unknown (no ``env_id`` in the metadata, an env without a
    registered spec).  Spaces can match across envs (Hopper-v4 and Hopper-v5, two PointMaze mazes), so
    :func:`validate` alone does not catch a set recorded on another env.

    :param metadata: ``Demonstrations.metadata``.
    :param env_id: Id of the env they are used on.
    :param allow_env_mismatch: Warn instead of raising (data from a related env, on purpose).
    :param stacklevel: The warning's, so that it points at the user's line (3: the caller's caller).
    :raises ValueError: the ids differ and ``allow_env_mismatch`` is False.
    """
    recorded_on = metadata.get("env_id")
    if recorded_on is None or env_id is None or recorded_on == env_id:
        return
    message = f"the demonstrations were recorded on {recorded_on!r} (metadata['env_id']) but the env is {env_id!r}"
    if not allow_env_mismatch:
        raise ValueError(f"{message}; pass allow_env_mismatch=True to use them anyway")
    warnings.warn(f"{message}; using them anyway (allow_env_mismatch=True)", stacklevel=stacklevel)


def check_rewards(demos: Demonstrations, allow_missing_rewards: bool, used_by: str) -> None:
    """Raise when ``demos`` carry no rewards (``metadata["has_rewards"]`` false) and ``used_by`` needs them.

    Converters that get no rewards (:func:`~sb3_swfp.demos.imitation_data.from_imitation` without ``rews``) store zeros and mark the
    set; behaviour cloning does not read rewards, the critic does.

    :param demos: Demonstrations.
    :param allow_missing_rewards: Warn and use the zeros instead of raising.
    :param used_by: What would train on the rewards, for the message.
    :raises ValueError: reward-free demonstrations and ``allow_missing_rewards`` is False.
    """
    if demos.metadata.get("has_rewards", True):
        return
    message = (
        f"the demonstrations have no rewards (metadata['has_rewards'] is false; they are stored as zeros), "
        f"and {used_by} trains the critic on them"
    )
    if not allow_missing_rewards:
        raise ValueError(
            f"{message}: give demonstrations with rewards, or pass allow_missing_rewards=True to train on zero rewards"
        )
    warnings.warn(f"{message}: training on zero rewards (allow_missing_rewards=True)", stacklevel=3)


def validate(
    demos: Demonstrations,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    clip_actions: bool = False,
) -> Demonstrations:
    """Check demonstrations against the spaces of an environment and return a checked copy.

    The copy has observations cast to the observation space dtypes, actions cast to the
    action space dtype, float32 rewards and bool flags. The caller's arrays are never
    modified. Observation values are not checked against the observation-space bounds
    (many environments leave their declared bounds); action values are.

    :param demos: Demonstrations to check.
    :param observation_space: Observation space of the environment (``Dict`` spaces are flat).
    :param action_space: ``Box`` action space of the environment.
    :param clip_actions: Clip actions that lie outside the action-space bounds (in the copy)
        instead of raising.
    :return: A validated copy.
    :raises TypeError: the action space is not a ``Box``.
    :raises ValueError: empty set, lengths that differ, wrong shapes, missing or extra
        dict keys, dtypes that cannot be cast, NaN/inf values, actions out of bounds,
        flags that are not booleans. The message names the field, what was found and
        what was expected.
    """
    if not isinstance(action_space, spaces.Box):
        raise TypeError(f"demonstrations for SWFP need a Box action space, got {action_space}")
    _check_structure(demos)
    n = len(demos)
    if n == 0:
        raise ValueError("demonstrations are empty (0 transitions); expected at least one transition")

    observations = _validate_observations(demos.observations, observation_space, "observations", n)
    next_observations = _validate_observations(demos.next_observations, observation_space, "next_observations", n)
    actions = _validate_array(demos.actions, action_space.shape, action_space.dtype, "actions", n, "action space")
    actions = _check_action_bounds(actions, action_space, clip_actions)
    rewards = _validate_array(demos.rewards, (), np.dtype(np.float32), "rewards", n, "reward")
    terminations = _validate_flags(demos.terminations, "terminations", n)
    truncations = _validate_flags(demos.truncations, "truncations", n)
    return Demonstrations(
        observations=observations,
        actions=actions,
        rewards=rewards,
        next_observations=next_observations,
        terminations=terminations,
        truncations=truncations,
        metadata=dict(demos.metadata),
    )


def _validate_observations(obs: Observations, space: spaces.Space, name: str, n: int) -> Observations:
    if isinstance(space, spaces.Dict):
        if not isinstance(obs, dict):
            raise ValueError(
                f"demonstration {name} is an array of shape {obs.shape}, expected a dict with keys "
                f"{sorted(space.spaces)} for the Dict observation space"
            )
        missing = sorted(set(space.spaces) - set(obs))
        extra = sorted(set(obs) - set(space.spaces))
        if missing:
            raise ValueError(
                f"demonstration {name} are missing keys {missing} of the Dict observation space; "
                f"got keys {sorted(obs)}, expected {sorted(space.spaces)}"
            )
        if extra:
            raise ValueError(
                f"demonstration {name} have keys {extra} that the Dict observation space does not have; "
                f"expected keys {sorted(space.spaces)}"
            )
        for key, sub_space in space.spaces.items():
            if isinstance(sub_space, (spaces.Dict, spaces.Tuple)):
                raise ValueError(
                    f"observation key {key!r} is a nested {type(sub_space).__name__} space; SB3 needs flat Dict spaces"
                )
        return {
            key: _validate_array(_channels_first(obs[key], sub_space, f"{name}[{key!r}]"), sub_space.shape, sub_space.dtype, f"{name}[{key!r}]", n, "observation space")
            for key, sub_space in space.spaces.items()
        }
    if isinstance(obs, dict):
        raise ValueError(
            f"demonstration {name} is a dict with keys {sorted(obs)}, expected an array of shape "
            f"(n, {', '.join(map(str, space.shape))}) for the {type(space).__name__} observation space"
        )
    if space.shape is None or space.dtype is None:
        raise TypeError(f"observation space {space} has no fixed shape and dtype; demonstrations need one")
    return _validate_array(_channels_first(obs, space, name), space.shape, space.dtype, name, n, "observation space")


def _channels_first(array: np.ndarray, space: spaces.Space, name: str) -> np.ndarray:
    """``array`` (n, H, W, C) as (n, C, H, W) where ``space`` is a channel-first image space (C, H, W) and the array is
    not already of its shape: SB3 wraps an env with channel-last images in ``VecTransposeImage`` for its CNN
    policies, so the model's space is the transpose of the env's, and demonstrations recorded on the env need the
    same transposition (with a warning that says so); anything else is returned as it is, for the shape check."""
    from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first

    if not isinstance(space, spaces.Box) or not is_image_space(space) or not is_image_space_channels_first(space):
        return array
    channels, height, width = space.shape
    if not isinstance(array, np.ndarray) or array.ndim != 4 or array.shape[1:] != (height, width, channels) or array.shape[1:] == space.shape:
        return array
    warnings.warn(  # one message for observations and next_observations: shown once
        f"demonstration {name.replace('next_observations', 'observations')} are channel-last images {array.shape[1:]} and the observation space is channel-first "
        f"{space.shape} (SB3's VecTransposeImage transposes an env's images for CNN policies): they are transposed the same way",
        stacklevel=5,
    )
    return np.transpose(array, (0, 3, 1, 2))  # (n, H, W, C) -> (n, C, H, W)


def _validate_array(
    array: np.ndarray, item_shape: tuple[int, ...], dtype: np.dtype, name: str, n: int, what: str
) -> np.ndarray:
    """Shape ``(n, *item_shape)``, a dtype castable to ``dtype``, finite values; returns a cast copy."""
    expected = (n, *item_shape)
    if array.shape != expected:
        raise ValueError(
            f"demonstration {name} have shape {array.shape}, expected {expected} "
            f"(n={n} transitions of the {what} shape {tuple(item_shape)})"
        )
    # Any integer into any integer type (signed into unsigned too: np.asarray of Python ints is int64): the range
    # check below refuses the values the cast would change
    integers = np.issubdtype(array.dtype, np.integer) and np.issubdtype(dtype, np.integer)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_) or not (
        integers or np.can_cast(array.dtype, dtype, casting="same_kind")
    ):
        raise ValueError(f"demonstration {name} have dtype {array.dtype}, which cannot be cast safely to {np.dtype(dtype)}")
    # Checked after the cast, which can make them: float64 beyond float32's range becomes inf, uint16 300 wraps to 44
    with np.errstate(over="ignore", invalid="ignore"):
        cast = np.array(array, dtype=dtype, copy=True)
    if np.issubdtype(cast.dtype, np.inexact):
        bad = ~np.isfinite(cast)
        problem = f"non-finite values (NaN or inf, or beyond {cast.dtype}'s range)"
    elif np.can_cast(array.dtype, cast.dtype, casting="safe"):
        return cast  # no value can change (uint8 images into a uint8 space): no mask as large as the array
    elif np.issubdtype(cast.dtype, np.integer):
        info = np.iinfo(cast.dtype)
        if array.size == 0 or (array.min() >= info.min and array.max() <= info.max):
            return cast
        bad = (array < info.min) | (array > info.max)
        problem = f"values outside {cast.dtype}'s range [{info.min}, {info.max}]"
    else:
        bad = cast != array
        problem = f"values that {cast.dtype} cannot hold"
    if bad.any():
        first = np.unravel_index(int(np.flatnonzero(bad)[0]), array.shape)
        where = f"transition {first[0]}" + (f", element {tuple(int(i) for i in first[1:])}" if len(first) > 1 else "")
        raise ValueError(f"demonstration {name} contain {int(bad.sum())} {problem}; the first is at {where}: {array[first]}")
    return cast


def _check_action_bounds(actions: np.ndarray, action_space: spaces.Box, clip_actions: bool) -> np.ndarray:
    low = np.broadcast_to(action_space.low, action_space.shape).astype(np.float64)
    high = np.broadcast_to(action_space.high, action_space.shape).astype(np.float64)
    # Tolerate float32 rounding at the bounds; those values are clipped silently.
    tolerance = 1e-6 * np.maximum(1.0, np.maximum(np.abs(low), np.abs(high)))
    values = actions.astype(np.float64)
    outside = (values < low - tolerance) | (values > high + tolerance)
    if outside.any() and not clip_actions:
        first = np.unravel_index(int(np.flatnonzero(outside)[0]), actions.shape)
        dim = first[1:]
        raise ValueError(
            f"{int(outside.sum())} demonstration action values lie outside the action space bounds; the first is at "
            f"transition {first[0]}, dimension {tuple(int(i) for i in dim)}: {values[first]:.6g} not in "
            f"[{low[dim]:.6g}, {high[dim]:.6g}]. Pass clip_actions=True to clip them into the bounds (in a copy)"
        )
    return np.clip(actions, action_space.low, action_space.high).astype(action_space.dtype)


def _validate_flags(flags: np.ndarray, name: str, n: int) -> np.ndarray:
    if flags.shape != (n,):
        raise ValueError(f"demonstration {name} have shape {flags.shape}, expected ({n},) (one flag per transition)")
    if flags.dtype != np.bool_:
        if not np.issubdtype(flags.dtype, np.number):
            raise ValueError(f"demonstration {name} have dtype {flags.dtype}, expected bool (or 0/1 numbers)")
        bad = (flags != 0) & (flags != 1)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"demonstration {name} must be booleans (or 0/1), found {int(bad.sum())} other values; "
                f"the first is {flags[first]} at transition {first}"
            )
    return flags.astype(np.bool_)


__all__ = ["check_env_id", "check_rewards", "validate", "vec_env_id"]
