"""Demonstrations: one container, its ``.npz`` file format, validation, conversion and collection.

SWFP is pretrained by behaviour cloning (spec §5) and may keep a BC term while it is
fine-tuned (spec §4.5). Both read demonstrations through :class:`Demonstrations`: a flat
sequence of ``n`` transitions ``(s, a, r, s', terminated, truncated)``, stored in
environment order, so that an episode is a run of consecutive transitions closed by a
transition whose ``terminations`` or ``truncations`` flag is set.

Action convention
-----------------
``Demonstrations.actions`` live in the **environment's** action space: they are what was
passed to ``env.step``. SB3 keeps *scaled* actions in [-1, 1] in its replay buffers
(``BasePolicy.scale_action``), so :func:`add_to_replay_buffer` scales them on the way in,
:func:`from_replay_buffer` unscales them on the way out (``actions_are_scaled=True``), and
:func:`scaled_actions` gives the scaled actions that flow-matching pretraining regresses on.

File format (``.npz``, version 1)
---------------------------------
Written by :meth:`Demonstrations.save`, read by :func:`load_demonstrations`. Keys, with
``n`` the number of transitions:

- ``__format__``: 0-d string ``"sb3_swfp.demonstrations"``; ``__version__``: 0-d int ``1``.
- ``actions``: ``(n, *action_shape)``, environment action space (not scaled).
- ``rewards``: ``(n,)`` float32.
- ``terminations``, ``truncations``: ``(n,)`` bool.
- Array observations: ``observations`` and ``next_observations``, ``(n, *obs_shape)``.
- ``Dict`` observations: one array per key, ``observations/<key>`` and
  ``next_observations/<key>``, each ``(n, *obs_shape[key])``.
- ``metadata`` (optional): 0-d string holding a JSON object (env id, source, seed, ...).

Files are loaded with ``allow_pickle=False``. A file written by another tool loads if it
has the same keys (the two ``__`` keys are optional).

Optional dependencies
---------------------
:func:`from_minari` / :func:`to_minari` need ``minari`` (``pip install "minari[hdf5]"``).
:func:`from_imitation` does not import ``imitation``: it reads the ``obs`` / ``acts`` /
``rews`` / ``terminal`` attributes of its ``Trajectory`` and the ``obs`` / ``acts`` /
``next_obs`` / ``dones`` / ``rews`` attributes of its ``Transitions``.
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import DictReplayBufferSamples, ReplayBufferSamples
from stable_baselines3.common.vec_env import VecEnv

if TYPE_CHECKING:
    import minari

FORMAT_NAME = "sb3_swfp.demonstrations"
FORMAT_VERSION = 1
_OBS_FIELDS = ("observations", "next_observations")
_FLAT_FIELDS = ("actions", "rewards", "terminations", "truncations")

Observations = np.ndarray | dict[str, np.ndarray]
#: An SB3 model or policy (anything with ``.predict``), or a callable ``obs -> action``.
PolicyLike = Any | Callable[[Any], np.ndarray]


@dataclass(eq=False)
class Demonstrations:
    """A flat sequence of ``n`` transitions recorded in an environment.

    Arrays are converted with ``np.asarray`` (no copy when they already are arrays); use
    :func:`validate` to check them against the spaces of an environment and get a checked
    copy cast to the space dtypes.

    :param observations: ``(n, *obs_shape)`` array, or for a ``Dict`` observation space a
        dict of ``(n, *obs_shape[key])`` arrays.
    :param actions: ``(n, *action_shape)`` actions in the environment's action space.
    :param rewards: ``(n,)`` rewards.
    :param next_observations: Observations after each action, laid out like ``observations``.
    :param terminations: ``(n,)`` bools, the episode reached a terminal state.
    :param truncations: ``(n,)`` bools, the episode was cut (time limit, end of recording).
    :param metadata: JSON-serialisable information about the data (env id, source, seed).
    """

    observations: Observations
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: Observations
    terminations: np.ndarray
    truncations: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.observations = _as_observations(self.observations, "observations")
        self.next_observations = _as_observations(self.next_observations, "next_observations")
        self.actions = np.asarray(self.actions)
        self.rewards = np.asarray(self.rewards)
        self.terminations = np.asarray(self.terminations)
        self.truncations = np.asarray(self.truncations)
        self.metadata = dict(self.metadata)
        _check_structure(self)

    def __len__(self) -> int:
        return len(self.actions)

    def __repr__(self) -> str:
        return (
            f"Demonstrations(n={len(self)}, episodes={self.n_episodes}, "
            f"observations={_describe(self.observations)}, actions={_describe(self.actions)})"
        )

    @property
    def is_dict_obs(self) -> bool:
        """Whether observations are a dict of arrays (``Dict`` observation space)."""
        return isinstance(self.observations, dict)

    @property
    def dones(self) -> np.ndarray:
        """``(n,)`` bools: the transition ends an episode (terminated or truncated)."""
        return np.logical_or(self.terminations, self.truncations)

    @property
    def n_episodes(self) -> int:
        """Number of episodes that end inside the data (a trailing unfinished one is not counted)."""
        return int(self.dones.sum())

    def episode_bounds(self) -> list[tuple[int, int]]:
        """``[start, end)`` index pairs of the episodes, in order; a trailing unfinished episode is included."""
        ends = np.flatnonzero(self.dones) + 1
        if len(ends) == 0 or ends[-1] != len(self):
            ends = np.append(ends, len(self))
        starts = np.concatenate([[0], ends[:-1]])
        return [(int(s), int(e)) for s, e in zip(starts, ends) if e > s]

    def episode_returns(self) -> np.ndarray:
        """Undiscounted returns of the episodes that end inside the data, ``(n_episodes,)``."""
        dones = self.dones
        return np.array([self.rewards[s:e].sum() for s, e in self.episode_bounds() if dones[e - 1]], dtype=np.float64)

    def subset(self, indices: slice | Sequence[int] | np.ndarray) -> Demonstrations:
        """The transitions at ``indices`` (a slice, integer indices or a boolean mask), as a copy."""
        if isinstance(indices, slice):
            indices = np.arange(len(self))[indices]
        indices = np.asarray(indices)
        return Demonstrations(
            observations=_map_obs(self.observations, lambda a: a[indices]),
            actions=self.actions[indices],
            rewards=self.rewards[indices],
            next_observations=_map_obs(self.next_observations, lambda a: a[indices]),
            terminations=self.terminations[indices],
            truncations=self.truncations[indices],
            metadata=dict(self.metadata),
        )

    @classmethod
    def concatenate(cls, parts: Sequence[Demonstrations]) -> Demonstrations:
        """Join demonstration sets end to end; observations must have the same layout (same dict keys).

        The metadata of the first part is kept.
        """
        if len(parts) == 0:
            raise ValueError("Demonstrations.concatenate needs at least one demonstration set, got none")
        first = parts[0]
        for i, part in enumerate(parts[1:], start=1):
            if _obs_keys(part.observations) != _obs_keys(first.observations):
                raise ValueError(
                    f"cannot concatenate demonstrations: part {i} has observation keys "
                    f"{_obs_keys(part.observations)}, expected {_obs_keys(first.observations)} as in part 0"
                )

        def cat_obs(name: str) -> Observations:
            if first.is_dict_obs:
                return {key: np.concatenate([getattr(p, name)[key] for p in parts]) for key in first.observations}
            return np.concatenate([getattr(p, name) for p in parts])

        return cls(
            observations=cat_obs("observations"),
            actions=np.concatenate([p.actions for p in parts]),
            rewards=np.concatenate([p.rewards for p in parts]),
            next_observations=cat_obs("next_observations"),
            terminations=np.concatenate([p.terminations for p in parts]),
            truncations=np.concatenate([p.truncations for p in parts]),
            metadata=dict(first.metadata),
        )

    def save(self, path: str | os.PathLike, compressed: bool = True) -> Path:
        """Write the demonstrations to ``path`` in the ``.npz`` format of this module.

        :param path: Destination; ``.npz`` is appended when missing.
        :param compressed: Use ``np.savez_compressed``.
        :return: The path written.
        """
        return save_demonstrations(self, path, compressed=compressed)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Demonstrations:
        """Read demonstrations written by :meth:`save` (see :func:`load_demonstrations`)."""
        return load_demonstrations(path)


# ----------------------------------------------------------------------------------------
# Small helpers on the observation layout (array or dict of arrays)


def _as_observations(obs: Any, name: str) -> Observations:
    if isinstance(obs, Mapping):
        if len(obs) == 0:
            raise ValueError(f"demonstration {name} is an empty dict; expected one array per observation key")
        return {str(key): np.asarray(value) for key, value in obs.items()}
    return np.asarray(obs)


def _obs_keys(obs: Observations) -> list[str] | None:
    return sorted(obs) if isinstance(obs, dict) else None


def _map_obs(obs: Observations, fn: Callable[[np.ndarray], np.ndarray]) -> Observations:
    if isinstance(obs, dict):
        return {key: fn(value) for key, value in obs.items()}
    return fn(obs)


def _describe(obs: Observations) -> str:
    if isinstance(obs, dict):
        return "{" + ", ".join(f"{k}: {_describe(v)}" for k, v in obs.items()) + "}"
    return f"{tuple(obs.shape)} {obs.dtype}"


def _leading_len(array: np.ndarray, name: str) -> int:
    if array.ndim == 0:
        raise ValueError(f"demonstration {name} is a scalar of shape (); expected an array with one entry per transition")
    return array.shape[0]


def _check_structure(demos: Demonstrations) -> None:
    """Same layout for observations and next observations, and one entry per transition in every field."""
    if _obs_keys(demos.observations) != _obs_keys(demos.next_observations):
        raise ValueError(
            f"demonstration observations have keys {_obs_keys(demos.observations)} but next_observations have "
            f"{_obs_keys(demos.next_observations)}; expected the same layout (both arrays or dicts with the same keys)"
        )
    lengths: dict[str, int] = {}
    for name in _OBS_FIELDS:
        obs = getattr(demos, name)
        if isinstance(obs, dict):
            for key, value in obs.items():
                lengths[f"{name}[{key!r}]"] = _leading_len(value, f"{name}[{key!r}]")
        else:
            lengths[name] = _leading_len(obs, name)
    for name in _FLAT_FIELDS:
        lengths[name] = _leading_len(getattr(demos, name), name)
    if len(set(lengths.values())) > 1:
        listing = ", ".join(f"{name} {length}" for name, length in lengths.items())
        raise ValueError(f"demonstration fields have different lengths ({listing}); expected one entry per transition")


# ----------------------------------------------------------------------------------------
# File format


def save_demonstrations(demos: Demonstrations, path: str | os.PathLike, compressed: bool = True) -> Path:
    """Write ``demos`` to ``path`` in the ``.npz`` format described in the module docstring.

    The archive is written to a temporary file in the same folder, then moved over ``path`` in one
    step (``os.replace``): a save that fails or is killed midway leaves an existing file as it was.

    :param demos: Demonstrations to write.
    :param path: Destination; ``.npz`` is appended when missing.
    :param compressed: Use ``np.savez_compressed``.
    :return: The path written.
    """
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    try:
        metadata = json.dumps(demos.metadata)
    except TypeError as error:
        raise ValueError(f"demonstration metadata must be JSON-serialisable to be saved: {error}") from error
    arrays: dict[str, np.ndarray] = {
        "__format__": np.array(FORMAT_NAME),
        "__version__": np.array(FORMAT_VERSION),
        "metadata": np.array(metadata),
    }
    for name in _OBS_FIELDS:
        obs = getattr(demos, name)
        if isinstance(obs, dict):
            for key, value in obs.items():
                if "/" in key:
                    raise ValueError(f"observation key {key!r} contains '/', which the .npz format uses as separator")
                arrays[f"{name}/{key}"] = value
        else:
            arrays[name] = obs
    for name in _FLAT_FIELDS:
        arrays[name] = getattr(demos, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same folder, so that os.replace is a rename on one file system; O_EXCL: never another file
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # mode as open() gives, less the umask
    try:
        with os.fdopen(descriptor, "wb") as file:
            (np.savez_compressed if compressed else np.savez)(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def load_demonstrations(path: str | os.PathLike) -> Demonstrations:
    """Read demonstrations from an ``.npz`` file in the format of this module.

    :param path: File written by :meth:`Demonstrations.save`.
    :raises FileNotFoundError: ``path`` does not exist.
    :raises ValueError: the file is not an ``.npz`` archive, or lacks keys of the format.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no demonstrations file at {str(path)!r}")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:  # np.load raises ValueError, OSError or pickle errors depending on the content
        raise ValueError(f"{str(path)!r} is not a readable .npz demonstrations file: {error}") from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{str(path)!r} holds a single .npy array, expected an .npz archive of demonstration arrays")
    with archive:
        keys = set(archive.files)
        if "__format__" in keys and str(archive["__format__"]) != FORMAT_NAME:
            raise ValueError(f"{str(path)!r} has format {str(archive['__format__'])!r}, expected {FORMAT_NAME!r}")
        if "__version__" in keys and int(archive["__version__"]) > FORMAT_VERSION:
            raise ValueError(
                f"{str(path)!r} has format version {int(archive['__version__'])}, this sb3_swfp reads up to "
                f"version {FORMAT_VERSION}: upgrade sb3_swfp"
            )
        missing = [name for name in _FLAT_FIELDS if name not in keys]
        fields: dict[str, Any] = {}
        for name in _OBS_FIELDS:
            sub_keys = sorted(k[len(name) + 1 :] for k in keys if k.startswith(name + "/"))
            if name in keys:
                fields[name] = archive[name]
            elif sub_keys:
                fields[name] = {key: archive[f"{name}/{key}"] for key in sub_keys}
            else:
                missing.append(f"{name} (or {name}/<key>)")
        if missing:
            raise ValueError(
                f"{str(path)!r} is not an sb3_swfp demonstrations file: missing keys {missing}; expected "
                f"{list(_OBS_FIELDS) + list(_FLAT_FIELDS)} (see sb3_swfp.common.demos)"
            )
        for name in _FLAT_FIELDS:
            fields[name] = archive[name]
        metadata = json.loads(str(archive["metadata"])) if "metadata" in keys else {}
    return Demonstrations(**fields, metadata=metadata)


# ----------------------------------------------------------------------------------------
# Validation


def check_env_id(metadata: Mapping[str, Any], env_id: str | None, allow_env_mismatch: bool = False) -> None:
    """Raise unless demonstrations with this ``metadata`` were recorded on ``env_id`` (``metadata["env_id"]``).

    Nothing is checked when either id is unknown (no ``env_id`` in the metadata, an env without a
    registered spec).  Spaces can match across envs (Hopper-v4 and Hopper-v5, two PointMaze mazes), so
    :func:`validate` alone does not catch a set recorded on another env.

    :param metadata: ``Demonstrations.metadata``.
    :param env_id: Id of the env they are used on.
    :param allow_env_mismatch: Warn instead of raising (data from a related env, on purpose).
    :raises ValueError: the ids differ and ``allow_env_mismatch`` is False.
    """
    recorded_on = metadata.get("env_id")
    if recorded_on is None or env_id is None or recorded_on == env_id:
        return
    message = f"the demonstrations were recorded on {recorded_on!r} (metadata['env_id']) but the env is {env_id!r}"
    if not allow_env_mismatch:
        raise ValueError(f"{message}; pass allow_env_mismatch=True to use them anyway")
    warnings.warn(f"{message}; using them anyway (allow_env_mismatch=True)", stacklevel=3)


def check_rewards(demos: Demonstrations, allow_missing_rewards: bool, used_by: str) -> None:
    """Raise when ``demos`` carry no rewards (``metadata["has_rewards"]`` false) and ``used_by`` needs them.

    Converters that get no rewards (:func:`from_imitation` without ``rews``) store zeros and mark the
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
            key: _validate_array(obs[key], sub_space.shape, sub_space.dtype, f"{name}[{key!r}]", n, "observation space")
            for key, sub_space in space.spaces.items()
        }
    if isinstance(obs, dict):
        raise ValueError(
            f"demonstration {name} is a dict with keys {sorted(obs)}, expected an array of shape "
            f"(n, {', '.join(map(str, space.shape))}) for the {type(space).__name__} observation space"
        )
    if space.shape is None or space.dtype is None:
        raise TypeError(f"observation space {space} has no fixed shape and dtype; demonstrations need one")
    return _validate_array(obs, space.shape, space.dtype, name, n, "observation space")


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
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_) or not np.can_cast(
        array.dtype, dtype, casting="same_kind"
    ):
        raise ValueError(f"demonstration {name} have dtype {array.dtype}, which cannot be cast safely to {np.dtype(dtype)}")
    if np.issubdtype(array.dtype, np.inexact):
        bad = ~np.isfinite(array)
        if bad.any():
            first = np.unravel_index(int(np.flatnonzero(bad)[0]), array.shape)
            where = f"transition {first[0]}" + (f", element {tuple(int(i) for i in first[1:])}" if len(first) > 1 else "")
            raise ValueError(
                f"demonstration {name} contain {int(bad.sum())} non-finite values (NaN or inf); "
                f"the first is at {where}: {array[first]}"
            )
    return np.array(array, dtype=dtype, copy=True)


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


# ----------------------------------------------------------------------------------------
# Scaled actions, replay buffers, torch batches


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


def add_to_replay_buffer(
    demos: Demonstrations, replay_buffer: ReplayBuffer, clip_actions: bool = False
) -> int:
    """Add demonstrations to an SB3 ``ReplayBuffer`` / ``DictReplayBuffer``, with scaled actions.

    The demonstrations are validated against the buffer's spaces first. As in SB3's
    off-policy collection, ``dones`` is ``terminated or truncated`` and a truncation that is
    not also a termination is stored as a timeout (``handle_timeout_termination``), so the
    critic bootstraps through it. Plain ``ReplayBuffer`` / ``DictReplayBuffer`` without
    ``optimize_memory_usage`` are filled with array writes; any other buffer class gets one
    ``buffer.add`` call per transition.

    :param demos: Demonstrations, actions in the env's action space.
    :param replay_buffer: Buffer with ``n_envs=1`` and room for ``len(demos)`` transitions.
    :param clip_actions: Clip out-of-bounds actions instead of raising (see :func:`validate`).
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
    if type(replay_buffer) in (ReplayBuffer, DictReplayBuffer) and not replay_buffer.optimize_memory_usage:
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
        return n

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
) -> ReplayBuffer:
    """A new ``ReplayBuffer`` (``DictReplayBuffer`` for ``Dict`` observations) holding the demonstrations.

    :param demos: Demonstrations, actions in the env's action space.
    :param observation_space: Observation space of the environment.
    :param action_space: ``Box`` action space of the environment.
    :param buffer_size: Capacity; defaults to ``len(demos)``.
    :param device: Device of the sampled tensors.
    :param handle_timeout_termination: Passed to the buffer (see :func:`add_to_replay_buffer`).
    :param clip_actions: Clip out-of-bounds actions instead of raising.
    """
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

    :param replay_buffer: The buffer to read (it is not modified).
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
        truncations = timeouts.copy()
        if env < n_envs - 1 and not dones[-1]:
            truncations[-1] = True
        parts.append(
            Demonstrations(
                observations=read_obs(env, "observations"),
                actions=actions,
                rewards=read(replay_buffer.rewards, env, ()).astype(np.float32),
                next_observations=read_obs(env, "next_observations"),
                terminations=dones & ~timeouts,
                truncations=truncations,
                metadata={"source": "replay_buffer"},
            )
        )
    return Demonstrations.concatenate(parts)


def sample_batch(
    demos: Demonstrations,
    batch_size: int,
    action_space: spaces.Box | None = None,
    device: th.device | str = "cpu",
    rng: np.random.Generator | None = None,
) -> ReplayBufferSamples | DictReplayBufferSamples:
    """A uniform minibatch of transitions as torch tensors, laid out like SB3's replay samples.

    Floating-point arrays become float32 tensors; ``rewards`` and ``dones`` have shape
    ``(batch_size, 1)`` and ``dones`` holds the terminations only (truncated transitions
    bootstrap), as in ``ReplayBuffer.sample``.

    :param demos: Demonstrations to sample (validate them first to get the space dtypes).
    :param batch_size: Number of transitions, drawn with replacement.
    :param action_space: When given, actions are scaled to [-1, 1] with it (the policy's
        action space); otherwise they are returned as stored.
    :param device: Device of the tensors.
    :param rng: Random generator (``np.random.default_rng()`` when ``None``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    if len(demos) == 0:
        raise ValueError("cannot sample from empty demonstrations (0 transitions)")
    rng = np.random.default_rng() if rng is None else rng
    index = rng.integers(0, len(demos), size=batch_size)

    def to_tensor(array: np.ndarray) -> th.Tensor:
        if np.issubdtype(array.dtype, np.floating):
            array = array.astype(np.float32, copy=False)
        return th.as_tensor(array, device=device)

    actions = demos.actions[index] if action_space is None else scaled_actions(demos.actions[index], action_space)
    samples = dict(
        observations=_map_obs(demos.observations, lambda a: to_tensor(a[index])),
        actions=to_tensor(actions),
        next_observations=_map_obs(demos.next_observations, lambda a: to_tensor(a[index])),
        dones=to_tensor(demos.terminations[index].astype(np.float32).reshape(-1, 1)),
        rewards=to_tensor(demos.rewards[index].astype(np.float32).reshape(-1, 1)),
    )
    return DictReplayBufferSamples(**samples) if demos.is_dict_obs else ReplayBufferSamples(**samples)


# ----------------------------------------------------------------------------------------
# Collection


def predict_action(policy: PolicyLike, observation: Any, deterministic: bool = True) -> np.ndarray:
    """The action of an SB3 model/policy (``.predict``) or of a callable ``obs -> action``.

    :param policy: An object with ``predict(obs, deterministic=...)`` (SB3 ``BaseAlgorithm``
        or ``BasePolicy``), else a callable.
    :param observation: One observation (array or dict of arrays).
    :param deterministic: Passed to ``predict``; callables are called as they are.
    """
    if hasattr(policy, "predict"):
        action, _ = policy.predict(observation, deterministic=deterministic)
        return np.asarray(action)
    if callable(policy):
        return np.asarray(policy(observation))
    raise TypeError(
        f"policy must be an SB3 model or policy (with .predict) or a callable obs -> action, got {type(policy).__name__}"
    )


def _copy_obs(obs: Any) -> Any:
    if isinstance(obs, Mapping):
        return {key: np.array(value, copy=True) for key, value in obs.items()}
    return np.array(obs, copy=True)


def _stack_obs(observations: list[Any]) -> Observations:
    if isinstance(observations[0], dict):
        return {key: np.stack([obs[key] for obs in observations]) for key in observations[0]}
    return np.stack(observations)


def collect_demonstrations(
    env: gym.Env | str,
    policy: PolicyLike,
    n_episodes: int | None = None,
    n_steps: int | None = None,
    action_noise_std: float = 0.0,
    deterministic: bool = True,
    seed: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> Demonstrations:
    """Record the transitions of ``policy`` acting in ``env``.

    Each step the policy's action gets Gaussian noise of standard deviation
    ``action_noise_std * (high - low) / 2`` (relative to the half-range of a bounded action
    space, absolute otherwise), is clipped to the action-space bounds, and that executed
    action is recorded. Episode ``i`` is reset with ``seed + i`` when ``seed`` is given.
    With ``n_steps``, a last episode that is cut by the step budget is marked truncated.

    :param env: A single (non-vectorised) gymnasium environment, or an env id to ``gym.make``
        (the env made here is closed at the end).
    :param policy: SB3 model/policy (``.predict``) or callable ``obs -> action`` in the env's
        action space (e.g. an expert from :mod:`sb3_swfp.experts`).
    :param n_episodes: Number of whole episodes to record (exactly one of ``n_episodes``
        and ``n_steps``).
    :param n_steps: Number of transitions to record.
    :param action_noise_std: Relative std of the Gaussian action noise (0: none).
    :param deterministic: Passed to ``policy.predict``.
    :param seed: Seed of the resets and of the noise.
    :param env_kwargs: Keyword arguments of ``gym.make`` when ``env`` is an id.
    """
    if (n_episodes is None) == (n_steps is None):
        raise ValueError(f"pass exactly one of n_episodes and n_steps, got n_episodes={n_episodes}, n_steps={n_steps}")
    budget = n_episodes if n_episodes is not None else n_steps
    if budget < 1:
        raise ValueError(f"n_episodes / n_steps must be a positive integer, got {budget}")
    if action_noise_std < 0:
        raise ValueError(f"action_noise_std must be >= 0, got {action_noise_std}")
    if isinstance(env, VecEnv):
        raise TypeError("collect_demonstrations needs a single gymnasium.Env, got a VecEnv; pass one unwrapped env")
    owns_env = isinstance(env, str)
    if owns_env:
        env = gym.make(env, **(env_kwargs or {}))
    action_space = env.action_space
    if not isinstance(action_space, spaces.Box):
        raise TypeError(f"collect_demonstrations needs a Box action space, got {action_space}")
    bounded = bool(np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high)))
    noise_scale = action_noise_std * ((action_space.high - action_space.low) / 2.0 if bounded else 1.0)
    rng = np.random.default_rng(seed)

    observations, next_observations, actions, rewards, terminations, truncations = [], [], [], [], [], []
    episode = 0
    obs, _ = env.reset(seed=seed)
    try:
        while True:
            action = predict_action(policy, obs, deterministic=deterministic)
            if action.size != int(np.prod(action_space.shape)):
                raise ValueError(f"policy returned an action of shape {action.shape}, expected {action_space.shape}")
            action = action.reshape(action_space.shape).astype(np.float64)
            if action_noise_std > 0:
                action = action + noise_scale * rng.standard_normal(action_space.shape)
            action = np.clip(action, action_space.low, action_space.high).astype(action_space.dtype)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            observations.append(_copy_obs(obs))
            next_observations.append(_copy_obs(next_obs))
            actions.append(action)
            rewards.append(float(reward))
            terminations.append(bool(terminated))
            truncations.append(bool(truncated))
            if n_steps is not None and len(actions) == n_steps:
                if not (terminated or truncated):
                    truncations[-1] = True  # the recording cut the episode
                break
            if terminated or truncated:
                episode += 1
                if n_episodes is not None and episode == n_episodes:
                    break
                obs, _ = env.reset(seed=None if seed is None else seed + episode)
            else:
                obs = next_obs
    finally:
        if owns_env:
            env.close()
    metadata = {
        "source": "collect_demonstrations",
        "env_id": env.spec.id if env.spec is not None else None,
        "policy": type(policy).__name__,
        "action_noise_std": float(action_noise_std),
        "seed": seed,
    }
    return Demonstrations(
        observations=_stack_obs(observations),
        actions=np.stack(actions),
        rewards=np.asarray(rewards, dtype=np.float32),
        next_observations=_stack_obs(next_observations),
        terminations=np.asarray(terminations, dtype=np.bool_),
        truncations=np.asarray(truncations, dtype=np.bool_),
        metadata=metadata,
    )


# ----------------------------------------------------------------------------------------
# Other libraries: Minari, imitation


def _import_minari() -> Any:
    try:
        import minari
    except ImportError as error:
        raise ImportError(
            "Minari datasets need the minari package with a storage backend: pip install \"minari[hdf5]\" "
            "(or pip install \"sb3-swfp[demos]\")"
        ) from error
    return minari


def from_minari(dataset: str | os.PathLike | minari.MinariDataset) -> Demonstrations:
    """Demonstrations from a local Minari dataset (nothing is downloaded).

    Each episode of ``T`` steps stores ``T + 1`` observations; they become ``T``
    transitions with ``observations = obs[:-1]`` and ``next_observations = obs[1:]``.

    :param dataset: A ``minari.MinariDataset``, the id of a dataset under
        ``MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``), or the path of a
        dataset directory (the one holding ``data/``, or ``data/`` itself).
    :raises FileNotFoundError: no local dataset with that id or path.
    """
    minari = _import_minari()
    if isinstance(dataset, minari.MinariDataset):
        ds = dataset
    elif Path(dataset).is_dir():
        path = Path(dataset)
        ds = minari.MinariDataset(path / "data" if (path / "data").is_dir() else path)
    else:
        try:
            ds = minari.load_dataset(str(dataset))
        except FileNotFoundError as error:
            root = os.environ.get("MINARI_DATASETS_PATH", str(Path.home() / ".minari" / "datasets"))
            raise FileNotFoundError(
                f"no local Minari dataset {str(dataset)!r} under {root!r} (set MINARI_DATASETS_PATH, pass a dataset "
                f"directory, or download it first with `minari download {dataset}`)"
            ) from error

    parts = []
    for episode in ds.iterate_episodes():
        obs = episode.observations
        if isinstance(obs, tuple) or (isinstance(obs, dict) and any(isinstance(v, (dict, tuple)) for v in obs.values())):
            raise ValueError(
                "Minari episodes with Tuple or nested Dict observations are not supported; expected flat arrays or a flat dict"
            )
        obs = _as_observations(obs, "observations")
        steps = len(episode.rewards)
        parts.append(
            Demonstrations(
                observations=_map_obs(obs, lambda a: a[:steps]),
                actions=np.asarray(episode.actions),
                rewards=np.asarray(episode.rewards, dtype=np.float32),
                next_observations=_map_obs(obs, lambda a: a[1 : steps + 1]),
                terminations=np.asarray(episode.terminations, dtype=np.bool_),
                truncations=np.asarray(episode.truncations, dtype=np.bool_),
            )
        )
    if not parts:
        raise ValueError(f"the Minari dataset {ds.spec.dataset_id!r} has no episodes")
    demos = Demonstrations.concatenate(parts)
    env_spec = ds.spec.env_spec
    demos.metadata = {
        "source": "minari",
        "dataset_id": ds.spec.dataset_id,
        "env_id": env_spec.id if env_spec is not None else None,
    }
    return demos


def to_minari(
    demos: Demonstrations,
    dataset_id: str,
    env: str | gym.Env | None = None,
    observation_space: spaces.Space | None = None,
    action_space: spaces.Space | None = None,
    algorithm_name: str | None = None,
    author: str | None = None,
    description: str | None = None,
    data_format: str | None = None,
) -> minari.MinariDataset:
    """Write demonstrations as a local Minari dataset under ``MINARI_DATASETS_PATH``.

    Minari stores whole episodes, so within an episode every transition must be followed
    by its successor (``next_observations[i] == observations[i + 1]``). To record a policy
    straight into Minari, call :func:`collect_demonstrations` first.

    :param demos: Demonstrations in episode order.
    :param dataset_id: Minari id, ``(namespace/)(env_name/)dataset_name-v<version>``.
    :param env: Environment (or id) the data comes from; gives the spaces and the env spec
        stored with the dataset.
    :param observation_space: Observation space, when ``env`` is not given.
    :param action_space: Action space, when ``env`` is not given.
    :param algorithm_name: Stored in the dataset metadata.
    :param author: Stored in the dataset metadata.
    :param description: Stored in the dataset metadata.
    :param data_format: Minari storage format (``"hdf5"`` or ``"arrow"``; Minari's default when ``None``).
    :return: The new ``minari.MinariDataset``.
    :raises ValueError: the demonstrations do not fit the spaces (given, else the env's): shapes,
        dict keys, dtypes, non-finite values, actions out of bounds (see :func:`validate`); nothing
        is written then.
    """
    minari = _import_minari()
    from minari.data_collector import EpisodeBuffer

    if env is None and (observation_space is None or action_space is None):
        raise ValueError("to_minari needs env, or both observation_space and action_space, to describe the dataset")
    if len(demos) == 0:
        raise ValueError("demonstrations are empty (0 transitions); expected at least one transition")
    if observation_space is None or action_space is None:
        env_spaces = gym.make(env) if isinstance(env, str) else env
        observation_space = observation_space or env_spaces.observation_space  # type: ignore[union-attr]
        action_space = action_space or env_spaces.action_space  # type: ignore[union-attr]
        if isinstance(env, str):
            env_spaces.close()  # type: ignore[union-attr]
    # The dataset names its env (or spaces): what it stores must fit them, cast to their dtypes
    demos = validate(demos, observation_space, action_space)
    episodes = []
    for episode_id, (start, end) in enumerate(demos.episode_bounds()):
        obs = _map_obs(demos.observations, lambda a: a[start:end])
        next_obs = _map_obs(demos.next_observations, lambda a: a[start:end])
        for key, current, following in _obs_items(obs, next_obs):
            broken = np.flatnonzero(~_rows_equal(current[1:], following[:-1]))
            if len(broken):
                raise ValueError(
                    f"transition {start + int(broken[0])} is not followed by its successor (next_observations{key} "
                    f"differs from the next transition's observations{key}) although the episode did not end; "
                    "Minari stores whole episodes, so demonstrations must be in episode order"
                )
        full_obs = _map_obs_pair(obs, next_obs, lambda a, b: np.concatenate([a, b[-1:]]))
        episodes.append(
            EpisodeBuffer(
                id=episode_id,
                observations=full_obs,
                actions=demos.actions[start:end],
                rewards=demos.rewards[start:end].astype(np.float64),
                terminations=demos.terminations[start:end].astype(np.bool_),
                truncations=demos.truncations[start:end].astype(np.bool_),
                infos={},
            )
        )
    return minari.create_dataset_from_buffers(
        dataset_id=dataset_id,
        buffer=episodes,
        env=env,
        observation_space=observation_space,
        action_space=action_space,
        algorithm_name=algorithm_name,
        author=author,
        description=description,
        data_format=data_format,
    )


def _rows_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(m,)`` bools: row ``i`` of ``a`` equals row ``i`` of ``b`` in every element."""
    # (m, *shape) -> (m, prod(shape)); explicit sizes so that m = 0 works
    return np.all((a == b).reshape(a.shape[0], int(np.prod(a.shape[1:]))), axis=1)


def _obs_items(obs: Observations, other: Observations) -> Iterable[tuple[str, np.ndarray, np.ndarray]]:
    if isinstance(obs, dict):
        return [(f"[{key!r}]", obs[key], other[key]) for key in obs]
    return [("", obs, other)]


def _map_obs_pair(obs: Observations, other: Observations, fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Observations:
    if isinstance(obs, dict):
        return {key: fn(obs[key], other[key]) for key in obs}
    return fn(obs, other)


def _imitation_obs(obs: Any) -> Observations:
    # imitation's DictObs wraps a dict of arrays; unwrap() returns it
    if hasattr(obs, "unwrap") and hasattr(obs, "items"):
        obs = obs.unwrap()
    if isinstance(obs, Mapping):
        return {str(key): np.asarray(value) for key, value in obs.items()}
    return np.asarray(obs)


def from_imitation(data: Any) -> Demonstrations:
    """Demonstrations from the ``imitation`` package's data types, read by attribute.

    ``imitation`` is not imported: any object with the same attributes works.

    - A ``Trajectory`` / ``TrajectoryWithRew``, or a sequence of them: ``obs`` with
      ``T + 1`` entries, ``acts`` ``(T, ...)``, ``terminal`` (bool) and, for the ``WithRew``
      kind, ``rews`` ``(T,)``. The last step of a trajectory is a termination when
      ``terminal`` is true and a truncation otherwise.
    - ``Transitions`` / ``TransitionsWithRew``: ``obs``, ``acts``, ``next_obs``, ``dones``
      and optionally ``rews``. ``dones`` become terminations. ``imitation`` does not mark
      where a non-terminal trajectory ended, so a transition whose ``next_obs`` differs from
      the following ``obs`` is marked truncated, and so is the last one when not done.

    Without ``rews`` the rewards are zeros and ``metadata["has_rewards"]`` is ``False``
    (behaviour cloning does not read rewards). ``DictObs`` observations become dicts.

    :param data: Trajectories or transitions.
    """
    if hasattr(data, "acts") and hasattr(data, "next_obs") and hasattr(data, "dones"):
        return _from_imitation_transitions(data)
    if hasattr(data, "acts") and not hasattr(data, "terminal"):
        raise ValueError(
            f"{type(data).__name__} has acts but neither next_obs/dones (Transitions) nor terminal (Trajectory); "
            "demonstrations need next observations: pass Transitions or Trajectory objects"
        )
    trajectories = [data] if hasattr(data, "terminal") else list(data)
    if len(trajectories) == 0:
        raise ValueError("from_imitation got no trajectories; expected at least one")
    has_rewards = all(getattr(traj, "rews", None) is not None for traj in trajectories)
    parts = []
    for i, traj in enumerate(trajectories):
        if not (hasattr(traj, "obs") and hasattr(traj, "acts") and hasattr(traj, "terminal")):
            raise TypeError(
                f"item {i} ({type(traj).__name__}) is not a Trajectory: expected obs, acts and terminal attributes"
            )
        obs = _imitation_obs(traj.obs)
        acts = np.asarray(traj.acts)
        steps = len(acts)
        n_obs = len(next(iter(obs.values()))) if isinstance(obs, dict) else len(obs)
        if steps == 0 or n_obs != steps + 1:
            raise ValueError(
                f"trajectory {i} has {n_obs} observations and {steps} actions; "
                "expected T + 1 observations for T >= 1 actions"
            )
        terminations = np.zeros(steps, dtype=np.bool_)
        truncations = np.zeros(steps, dtype=np.bool_)
        (terminations if bool(traj.terminal) else truncations)[-1] = True
        parts.append(
            Demonstrations(
                observations=_map_obs(obs, lambda a: a[:steps]),
                actions=acts,
                rewards=np.asarray(traj.rews, dtype=np.float32) if has_rewards else np.zeros(steps, dtype=np.float32),
                next_observations=_map_obs(obs, lambda a: a[1:]),
                terminations=terminations,
                truncations=truncations,
            )
        )
    demos = Demonstrations.concatenate(parts)
    demos.metadata = {"source": "imitation", "has_rewards": has_rewards}
    return demos


def _from_imitation_transitions(data: Any) -> Demonstrations:
    obs, next_obs = _imitation_obs(data.obs), _imitation_obs(data.next_obs)
    acts = np.asarray(data.acts)
    n = len(acts)
    if n == 0:
        raise ValueError("from_imitation got empty Transitions (0 transitions); expected at least one")
    dones = np.asarray(data.dones).astype(np.bool_).reshape(n)
    rews = getattr(data, "rews", None)
    # A non-terminal trajectory end leaves no flag in Transitions: find it where next_obs[i] != obs[i + 1].
    continues = np.ones(n - 1, dtype=np.bool_)
    for _, current, following in _obs_items(next_obs, obs):
        continues &= _rows_equal(current[:-1], following[1:])
    truncations = np.zeros(n, dtype=np.bool_)
    truncations[:-1] = ~continues & ~dones[:-1]
    truncations[-1] = not dones[-1]  # imitation flattens whole trajectories: the last one ends here
    return Demonstrations(
        observations=obs,
        actions=acts,
        rewards=np.zeros(n, dtype=np.float32) if rews is None else np.asarray(rews, dtype=np.float32),
        next_observations=next_obs,
        terminations=dones,
        truncations=truncations,
        metadata={"source": "imitation", "has_rewards": rews is not None},
    )
