"""Self-imitation: the model's own best online episodes, found by their slots in the replay buffer.

``SWFP(self_imitation=...)`` draws part of the ``bc_coef`` term's batch from the online episodes whose
return is in the top quarter of those completed so far (as filtered behaviour cloning does with
its demonstrations): the flow is then regressed onto what it did in its better episodes as well
as onto the demonstrations.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Episodes at or above this quantile of the completed episodes' returns are imitated
ELITE_QUANTILE = 0.75
#: Completed episodes needed before any is imitated (below it the quantile says little)
MIN_EPISODES = 4


class EliteEpisodes:
    """The slots ``(position, env index)`` of each completed online episode in the replay buffer, with its return.

    :param n_envs: Number of parallel environments (the buffer's second axis).
    :param buffer_size: The buffer's positions per env: an episode whose first transition has been
        overwritten is forgotten.
    """

    def __init__(self, n_envs: int, buffer_size: int):
        self.buffer_size = buffer_size
        self.n_stored = 0  # positions written so far, per env (every env writes one per step)
        self.first = np.zeros(n_envs, dtype=np.int64)  # n_stored at the first transition of each env's running episode
        self.first_position = np.zeros(n_envs, dtype=np.int64)
        self.running_return = np.zeros(n_envs)
        self.episodes: list[tuple[int, int, int, int, float]] = []  # (env, first, first position, length, return)
        self._slots: tuple[np.ndarray, np.ndarray] | None = None

    def add(self, position: int, rewards: np.ndarray, dones: np.ndarray) -> None:
        """One step of every env, written at ``position`` of the buffer, with its (unnormalised) rewards and dones."""
        starting = self.first == self.n_stored
        self.first_position[starting] = position
        self.running_return += np.asarray(rewards, dtype=np.float64).reshape(-1)
        self.n_stored += 1
        for env in np.flatnonzero(np.asarray(dones).reshape(-1)):
            length = self.n_stored - int(self.first[env])
            self.episodes.append((int(env), int(self.first[env]), int(self.first_position[env]), length, float(self.running_return[env])))
            self.first[env], self.running_return[env] = self.n_stored, 0.0
            self._slots = None

    def break_episodes(self) -> None:
        """Forget the running episodes (``learn()`` reset the envs): what they collected joins no episode."""
        self.first[:] = self.n_stored
        self.running_return[:] = 0.0

    def slots(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(positions, env indices) of every transition of the elite episodes still in the buffer; None while
        fewer than :data:`MIN_EPISODES` episodes are."""
        if self._slots is None:
            kept = [episode for episode in self.episodes if episode[1] >= self.n_stored - self.buffer_size]
            if len(kept) < MIN_EPISODES:
                return None
            returns = np.array([episode[4] for episode in kept])
            threshold = np.quantile(returns, ELITE_QUANTILE)
            elite = [episode for episode, value in zip(kept, returns) if value >= threshold]
            positions = np.concatenate([(first_position + np.arange(length)) % self.buffer_size for _, _, first_position, length, _ in elite])
            envs = np.concatenate([np.full(length, env) for env, _, _, length, _ in elite])
            self._slots = (positions, envs)
        return self._slots

    def sample(self, buffer: Any, batch_size: int, env: Any = None) -> tuple[Any, Any] | None:
        """``batch_size`` (observations, actions) drawn uniformly from the elite transitions of ``buffer`` (an SB3
        replay buffer, observations normalised as its samples are), as tensors; None while there are none."""
        slots = self.slots()
        if slots is None:
            return None
        draw = np.random.randint(0, len(slots[0]), size=batch_size)
        positions, envs = slots[0][draw], slots[1][draw]
        if isinstance(buffer.observations, dict):
            observations = {key: value[positions, envs] for key, value in buffer.observations.items()}
            normalized = buffer._normalize_obs(observations, env)
            obs = {key: buffer.to_torch(value) for key, value in normalized.items()}
        else:
            obs = buffer.to_torch(buffer._normalize_obs(buffer.observations[positions, envs], env))
        return obs, buffer.to_torch(buffer.actions[positions, envs])
