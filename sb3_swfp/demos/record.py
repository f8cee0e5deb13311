"""The demonstration record: :class:`Demonstrations`, a flat sequence of transitions, and helpers on its layout.

SWFP is behaviour-cloned on demonstrations (flow matching, Eq. 7 of the paper) and may keep a BC
term while it is fine-tuned (``bc_coef``, ours: see docs/algorithm.md).  Both read them as
:class:`Demonstrations`: ``n`` transitions ``(s, a, r, s', terminated, truncated)`` in environment
order, so that an episode is a run of consecutive transitions closed by a transition whose
``terminations`` or ``truncations`` flag is set.

Action convention
-----------------
``Demonstrations.actions`` live in the **environment's** action space: they are what was passed to
``env.step``.  SB3 keeps *scaled* actions in [-1, 1] in its replay buffers
(``BasePolicy.scale_action``); :mod:`sb3_swfp.demos.replay` scales them on the way into a buffer and
unscales them on the way out.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

_OBS_FIELDS = ("observations", "next_observations")
_FLAT_FIELDS = ("actions", "rewards", "terminations", "truncations")

Observations = np.ndarray | dict[str, np.ndarray]


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

        The metadata of the first part is kept.  Each join ends an episode: where a part (but the last) leaves
        one running (its last transition neither terminated nor truncated), that transition is marked truncated
        in the result, so that no episode, and no n-step return, runs on into the next part's first transition.
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
            truncations=np.concatenate([_ended(p) for p in parts[:-1]] + [parts[-1].truncations]),
            metadata=dict(first.metadata),
        )

    def save(self, path: str | os.PathLike, compressed: bool = True) -> Path:
        """Write the demonstrations to ``path`` in the ``.npz`` format (:mod:`sb3_swfp.demos.npz`).

        :param path: Destination; ``.npz`` is appended when missing.
        :param compressed: Use ``np.savez_compressed``.
        :return: The path written.
        """
        from sb3_swfp.demos.npz import save_demonstrations  # the format module imports this one

        return save_demonstrations(self, path, compressed=compressed)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Demonstrations:
        """Read demonstrations written by :meth:`save` (see :func:`~sb3_swfp.demos.npz.load_demonstrations`)."""
        from sb3_swfp.demos.npz import load_demonstrations

        return load_demonstrations(path)


# ----------------------------------------------------------------------------------------
# Helpers on the observation layout (an array, or a dict of arrays), shared by the modules of sb3_swfp.demos


def _as_observations(obs: Any, name: str) -> Observations:
    if isinstance(obs, Mapping):
        if len(obs) == 0:
            raise ValueError(f"demonstration {name} is an empty dict; expected one array per observation key")
        return {str(key): np.asarray(value) for key, value in obs.items()}
    return np.asarray(obs)


def _ended(part: Demonstrations) -> np.ndarray:
    """``part``'s truncation flags, with its last transition marked truncated where it ends no episode."""
    truncations = np.array(part.truncations, dtype=bool)  # a copy: the part's own flags stay as they are
    if len(truncations) and not (truncations[-1] or bool(part.terminations[-1])):
        truncations[-1] = True
    return truncations


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


__all__ = ["Demonstrations", "Observations"]
