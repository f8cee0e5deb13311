"""The ``imitation`` package's trajectories and transitions as demonstrations, read by attribute.

``imitation`` is not imported (its releases pin old gymnasium/SB3 versions): :func:`from_imitation`
reads the ``obs`` / ``acts`` / ``rews`` / ``terminal`` attributes of its ``Trajectory`` and the
``obs`` / ``acts`` / ``next_obs`` / ``dones`` / ``rews`` attributes of its ``Transitions``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from sb3_swfp.demos.record import Demonstrations, Observations, _map_obs, _obs_items, _rows_equal


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
    with_rewards = sum(getattr(traj, "rews", None) is not None for traj in trajectories)
    has_rewards = with_rewards == len(trajectories)
    if 0 < with_rewards < len(trajectories):
        warnings.warn(
            f"{len(trajectories) - with_rewards} of {len(trajectories)} trajectories have no rewards (rews is None): every "
            "reward is stored as 0 and the set is marked reward-free (metadata has_rewards=False); give rewards for all "
            "of them to keep theirs",
            stacklevel=3,
        )
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


__all__ = ["from_imitation"]
