"""Demonstrations in and out of SB3 replay buffers, with the action scaling SB3 uses there.

SB3's off-policy algorithms store actions scaled to [-1, 1] (``BasePolicy.scale_action``);
:class:`~sb3_swfp.demos.record.Demonstrations` hold them in the environment's action space.
:func:`add_to_replay_buffer` and :func:`make_replay_buffer` scale them on the way in,
:func:`from_replay_buffer` unscales them on the way out (``actions_are_scaled=True``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer

from sb3_swfp.demos.record import Demonstrations, Observations, _map_obs
from sb3_swfp.demos.validation import validate


def _finite_box_bounds(action_space: spaces.Box) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(action_space, spaces.Box):
        raise TypeError(f"scaling actions needs a Box action space, got {action_space}")
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise ValueError(
            f"scaling actions needs finite action-space bounds, got low={action_space.low}, high={action_space.high}"
        )
    return action_space.low, action_space.high


def scaled_actions(demos: Demonstrations | np.ndarray, action_space: spaces.Box) -> np.ndarray:
    """Actions mapped from ``[low, high]`` to SB3's ``[-1, 1]``, as in ``BasePolicy.scale_action``.

    :param demos: Demonstrations, or an array of actions ``(..., *action_shape)`` in the env space.
    :param action_space: The environment's ``Box`` action space.
    :return: float32 array of the same shape.
    """
    actions = demos.actions if isinstance(demos, Demonstrations) else np.asarray(demos)
    low, high = _finite_box_bounds(action_space)
    return (2.0 * ((actions - low) / (high - low)) - 1.0).astype(np.float32)


def unscaled_actions(scaled: np.ndarray, action_space: spaces.Box) -> np.ndarray:
    """Inverse of :func:`scaled_actions`, as in ``BasePolicy.unscale_action``: ``[-1, 1]`` to ``[low, high]``."""
    low, high = _finite_box_bounds(action_space)
    return (low + 0.5 * (np.asarray(scaled) + 1.0) * (high - low)).astype(action_space.dtype)


def truncate_last_transitions(replay_buffer: ReplayBuffer, envs: np.ndarray | None = None) -> None:
    """End the episode running at the latest transition of each env in ``replay_buffer`` (only of the envs the
    boolean mask ``envs`` flags; all by default): the next transition stored there belongs to another episode, and no
    n-step return may run on into it.

    With ``handle_timeout_termination`` the transition becomes a time-limit truncation (done and timeout, as SB3
    stores one), and its one-step target still bootstraps.  Without, the buffer takes every truncation for a
    termination: a buffer of n-step returns (``n_steps`` > 1) marks it done, as SB3 ends an episode at a
    memory-optimised buffer's join; a one-step buffer is left as it is, its targets ending at no join.  An empty
    buffer, and a memory-optimised one (SB3's ``_setup_learn`` ends its episode at a reset, and
    :func:`add_to_replay_buffer` where demonstrations overwrite its next observation), are left alone too.
    """
    if replay_buffer.optimize_memory_usage or not (replay_buffer.full or replay_buffer.pos > 0):
        return
    last = (replay_buffer.pos - 1) % replay_buffer.buffer_size
    running = replay_buffer.dones[last] < 0.5
    if envs is not None:
        running &= envs
    if replay_buffer.handle_timeout_termination:
        replay_buffer.timeouts[last, running] = 1.0
    elif getattr(replay_buffer, "n_steps", 1) <= 1:
        return
    replay_buffer.dones[last, running] = 1.0


def truncate_last_n_step_transitions(replay_buffer: Any) -> None:
    """:func:`truncate_last_transitions` for a buffer of n-step returns (SB3's, or a
    :class:`~sb3_swfp.demos.buffers.DemoReplayBuffer` with ``n_steps`` > 1); others (one-step ones, HER's) are left
    as they are.  SWFP and RLPD call it where ``learn()`` resets the env and after ``load_replay_buffer``."""
    if getattr(replay_buffer, "n_steps", 1) > 1:
        truncate_last_transitions(replay_buffer)


def add_to_replay_buffer(
    demos: Demonstrations, replay_buffer: ReplayBuffer, clip_actions: bool = False
) -> int:
    """Add demonstrations to an SB3 ``ReplayBuffer`` / ``DictReplayBuffer``, with scaled actions.

    The demonstrations are validated against the buffer's spaces first. As in SB3's
    off-policy collection, ``dones`` is ``terminated or truncated`` and a truncation that is
    not also a termination is stored as a timeout (``handle_timeout_termination``), so the
    critic bootstraps through it. A buffer whose ``add`` is SB3's own (``ReplayBuffer``,
    ``DictReplayBuffer`` and subclasses that keep their ``add``, such as the demonstration buffers
    of :mod:`sb3_swfp.demos.buffers`), without ``optimize_memory_usage``, is filled with array
    writes; any other buffer gets one ``buffer.add`` call per transition.

    :param demos: Demonstrations, actions in the env's action space.
    :param replay_buffer: Buffer with ``n_envs=1`` and room for ``len(demos)`` transitions.
    :param clip_actions: Clip out-of-bounds actions instead of raising (see :func:`~sb3_swfp.demos.validation.validate`).
    :return: Number of transitions added.
    """
    if replay_buffer.n_envs != 1:
        raise ValueError(
            f"add_to_replay_buffer needs a buffer with n_envs=1, got n_envs={replay_buffer.n_envs}: demonstrations "
            "are one stream of transitions; create a separate ReplayBuffer(..., n_envs=1) for them"
        )
    demos = validate(demos, replay_buffer.observation_space, replay_buffer.action_space, clip_actions=clip_actions)
    n, size = len(demos), replay_buffer.buffer_size
    if n > size:
        raise ValueError(
            f"{n} demonstration transitions do not fit in a replay buffer of size {size}; "
            "the later ones would overwrite the earlier ones. Use a larger buffer_size"
        )
    actions = scaled_actions(demos, replay_buffer.action_space).reshape(n, replay_buffer.action_dim)
    dones = demos.dones.astype(np.float32)
    timeouts = (demos.truncations & ~demos.terminations).astype(np.float32)
    is_dict = isinstance(replay_buffer, DictReplayBuffer)

    def buffer_shaped(obs: Observations) -> Observations:
        # (n, *space_shape) -> (n, *buffer.obs_shape): SB3 keeps Discrete observations as (1,)
        if is_dict:
            return {key: value.reshape(n, *replay_buffer.obs_shape[key]) for key, value in obs.items()}
        return obs.reshape(n, *replay_buffer.obs_shape)

    obs, next_obs = buffer_shaped(demos.observations), buffer_shaped(demos.next_observations)
    if type(replay_buffer).add in (ReplayBuffer.add, DictReplayBuffer.add) and not replay_buffer.optimize_memory_usage:
        truncate_last_transitions(replay_buffer)  # each join ends an episode (n-step returns): the buffer's running one
        rows = (replay_buffer.pos + np.arange(n)) % size
        if is_dict:
            for key in obs:
                replay_buffer.observations[key][rows, 0] = obs[key]
                replay_buffer.next_observations[key][rows, 0] = next_obs[key]
        else:
            replay_buffer.observations[rows, 0] = obs
            replay_buffer.next_observations[rows, 0] = next_obs
        replay_buffer.actions[rows, 0] = actions
        replay_buffer.rewards[rows, 0] = demos.rewards
        replay_buffer.dones[rows, 0] = dones
        if replay_buffer.handle_timeout_termination:
            replay_buffer.timeouts[rows, 0] = timeouts
        if replay_buffer.pos + n >= size:
            replay_buffer.full = True
        replay_buffer.pos = (replay_buffer.pos + n) % size
        truncate_last_transitions(replay_buffer)  # and the demonstrations' last, before what is stored after them
        return n

    if replay_buffer.optimize_memory_usage and (replay_buffer.full or replay_buffer.pos > 0):
        # The running episode's next observation is the row at pos, which the demonstrations overwrite: unless they go
        # on from it, that episode ends there (done, as SB3's _setup_learn ends one: the observation is lost)
        # (Box observations: SB3's DictReplayBuffer has no memory-optimised variant)
        following = replay_buffer.observations[replay_buffer.pos]
        if not np.array_equal(following, np.asarray(obs[0:1]).astype(following.dtype)):
            replay_buffer.dones[(replay_buffer.pos - 1) % size] = 1.0
    for i in range(n):
        replay_buffer.add(
            _map_obs(obs, lambda a: a[i : i + 1]),
            _map_obs(next_obs, lambda a: a[i : i + 1]),
            actions[i : i + 1],
            demos.rewards[i : i + 1],
            dones[i : i + 1],
            [{"TimeLimit.truncated": bool(timeouts[i])}],
        )
    return n


def make_replay_buffer(
    demos: Demonstrations,
    observation_space: spaces.Space,
    action_space: spaces.Box,
    buffer_size: int | None = None,
    device: th.device | str = "auto",
    handle_timeout_termination: bool = True,
    clip_actions: bool = False,
    buffer_class: type[ReplayBuffer] | None = None,
) -> ReplayBuffer:
    """A new ``ReplayBuffer`` (``DictReplayBuffer`` for ``Dict`` observations) holding the demonstrations.

    :param demos: Demonstrations, actions in the env's action space.
    :param observation_space: Observation space of the environment.
    :param action_space: ``Box`` action space of the environment.
    :param buffer_size: Capacity; defaults to ``len(demos)``.
    :param device: Device of the sampled tensors.
    :param handle_timeout_termination: Passed to the buffer (see :func:`add_to_replay_buffer`).
    :param clip_actions: Clip out-of-bounds actions instead of raising.
    :param buffer_class: The class to build, called with SB3's replay buffer arguments
        (default: ``ReplayBuffer``, or ``DictReplayBuffer`` for ``Dict`` observations).
    """
    if buffer_class is None:
        buffer_class = DictReplayBuffer if isinstance(observation_space, spaces.Dict) else ReplayBuffer
    buffer = buffer_class(
        buffer_size or len(demos),
        observation_space,
        action_space,
        device=device,
        n_envs=1,
        handle_timeout_termination=handle_timeout_termination,
    )
    add_to_replay_buffer(demos, buffer, clip_actions=clip_actions)
    return buffer


def from_replay_buffer(replay_buffer: ReplayBuffer, actions_are_scaled: bool = True) -> Demonstrations:
    """The transitions stored in an SB3 ``ReplayBuffer`` / ``DictReplayBuffer``, oldest first.

    With several envs the transitions of env 0 come first, then env 1, ...; the last
    transition of every env but the last is marked truncated when it does not end an
    episode, so episodes never run across envs. ``terminations`` are the buffer's
    ``dones`` that are not timeouts and ``truncations`` its timeouts; a buffer created with
    ``handle_timeout_termination=False`` has no timeouts, so all its dones come back as
    terminations.

    :param replay_buffer: The buffer to read (it is not modified); of a ``DemoReplayBuffer``, its online
        transitions (its demonstrations are ``from_replay_buffer(buffer.demo_buffer)``).
    :param actions_are_scaled: The buffer holds actions scaled to [-1, 1] (what SB3's
        off-policy algorithms store for Box action spaces); they are unscaled to the
        buffer's action space. ``False`` takes the stored actions as they are.
    """
    size, pos = replay_buffer.buffer_size, replay_buffer.pos
    if replay_buffer.optimize_memory_usage:
        # next_obs of row i is obs of row i + 1; when full, row ``pos`` holds no valid transition
        rows = (pos + 1 + np.arange(size - 1)) % size if replay_buffer.full else np.arange(pos)
    else:
        rows = (pos + np.arange(size)) % size if replay_buffer.full else np.arange(pos)
    if len(rows) == 0:
        raise ValueError("the replay buffer is empty: there are no transitions to turn into demonstrations")
    obs_space = replay_buffer.observation_space
    n_envs, m = replay_buffer.n_envs, len(rows)

    def read(stored: np.ndarray, env: int, item_shape: tuple[int, ...], next_rows: bool = False) -> np.ndarray:
        index = (rows + 1) % size if next_rows else rows
        return stored[index, env].reshape(m, *item_shape)

    def read_obs(env: int, name: str) -> Observations:
        if isinstance(obs_space, spaces.Dict):
            return {
                key: read(getattr(replay_buffer, name)[key], env, obs_space[key].shape) for key in obs_space.spaces
            }
        if name == "next_observations" and replay_buffer.optimize_memory_usage:
            return read(replay_buffer.observations, env, obs_space.shape, next_rows=True)
        return read(getattr(replay_buffer, name), env, obs_space.shape)

    action_space = replay_buffer.action_space
    parts = []
    for env in range(n_envs):
        actions = read(replay_buffer.actions, env, action_space.shape)
        if actions_are_scaled:
            actions = unscaled_actions(actions, action_space)
        dones = read(replay_buffer.dones, env, ()) > 0.5
        timeouts = (read(replay_buffer.timeouts, env, ()) > 0.5) & dones
        parts.append(
            Demonstrations(
                observations=read_obs(env, "observations"),
                actions=actions,
                rewards=read(replay_buffer.rewards, env, ()).astype(np.float32),
                next_observations=read_obs(env, "next_observations"),
                terminations=dones & ~timeouts,
                truncations=timeouts,
                metadata={"source": "replay_buffer"},
            )
        )
    return Demonstrations.concatenate(parts)  # an env's episode still running ends at its join with the next env's


__all__ = ["add_to_replay_buffer", "from_replay_buffer", "make_replay_buffer", "scaled_actions", "truncate_last_n_step_transitions", "truncate_last_transitions", "unscaled_actions"]
