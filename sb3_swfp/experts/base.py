"""Common parts of the scripted experts: the callable interface, action noise, evaluation."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.utils import is_vectorized_observation

from sb3_swfp.demos import PolicyLike, predict_action


class ScriptedExpert(ABC):
    """A hand-written controller used as a callable ``obs -> action`` in the env's action space.

    Calls accept one observation or a batch (leading dimension), as SB3's ``predict`` does,
    and return one action or a batch. ``noise_std > 0`` makes the expert deliberately
    suboptimal: Gaussian noise of std ``noise_std * (high - low) / 2`` is added to every
    action before clipping to the bounds.

    :param observation_space: Observation space the expert reads.
    :param action_space: ``Box`` action space it acts in (finite bounds).
    :param noise_std: Relative std of the action noise (0: the noiseless expert).
    :param seed: Seed of the noise.  An expert made without one is seeded by ``collect_demonstrations`` and
        ``evaluate_expert`` from their ``seed``, so that a seeded recording repeats.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        noise_std: float = 0.0,
        seed: int | None = None,
    ):
        if not (math.isfinite(noise_std) and noise_std >= 0):  # NaN would add no noise, silently
            raise ValueError(f"noise_std must be a finite number >= 0, got {noise_std}")
        if not isinstance(action_space, spaces.Box):
            raise TypeError(f"scripted experts act in a Box action space, got {action_space}")
        self.observation_space = observation_space
        self.action_space = action_space
        self.noise_std = noise_std
        self.seed(seed)

    def seed(self, seed: int | None) -> None:
        """Reset the noise generator."""
        self.rng = np.random.default_rng(seed)
        self.seeded = seed is not None

    @abstractmethod
    def expert_action(self, observations: Any) -> np.ndarray:
        """Noiseless actions for a batch of observations (leading dimension ``batch``).

        :param observations: ``(batch, *obs_shape)`` array, or a dict of such arrays.
        :return: ``(batch, *action_shape)`` actions (clipping happens in ``__call__``).
        """

    def __call__(self, observation: Any) -> np.ndarray:
        """Action(s) for one observation or a batch; noisy when ``noise_std > 0``, always inside the bounds."""
        batched = is_vectorized_observation(observation, self.observation_space)
        if isinstance(observation, dict):
            obs = {key: np.asarray(value, dtype=np.float64) for key, value in observation.items()}
            if not batched:
                obs = {key: value[None] for key, value in obs.items()}
        else:
            obs = np.asarray(observation, dtype=np.float64)
            if not batched:
                obs = obs[None]
        actions = np.asarray(self.expert_action(obs), dtype=np.float64)
        if self.noise_std > 0:
            half_range = (self.action_space.high - self.action_space.low) / 2.0
            actions = actions + self.noise_std * half_range * self.rng.standard_normal(actions.shape)
        actions = np.clip(actions, self.action_space.low, self.action_space.high).astype(self.action_space.dtype)
        return actions if batched else actions[0]


def seed_unseeded(policy: Any, seed: int | None) -> None:
    """Seed a :class:`ScriptedExpert` made without a seed from a recording's ``seed`` (a stream apart from the env's)."""
    if seed is not None and isinstance(policy, ScriptedExpert) and not getattr(policy, "seeded", True):
        policy.rng = np.random.default_rng([seed, 1])  # not policy.seed(): the next recording reseeds it again


@dataclass
class ExpertEvaluation:
    """Per-episode results of :func:`evaluate_expert`.

    :param returns: ``(n_episodes,)`` undiscounted returns.
    :param lengths: ``(n_episodes,)`` episode lengths.
    :param successes: ``(n_episodes,)`` bools, ``info["success"]`` (or ``"is_success"``) was
        true at some step of the episode.
    """

    returns: np.ndarray
    lengths: np.ndarray
    successes: np.ndarray

    @property
    def mean_return(self) -> float:
        """Mean episode return."""
        return float(np.mean(self.returns))

    @property
    def success_count(self) -> int:
        """Number of episodes that reached success at some step."""
        return int(np.sum(self.successes))


def evaluate_expert(
    env: gym.Env,
    policy: PolicyLike,
    n_episodes: int = 20,
    seed: int = 0,
    deterministic: bool = True,
) -> ExpertEvaluation:
    """Run ``n_episodes`` episodes of a policy; episode ``i`` is reset with ``seed + i``.

    :param env: A single gymnasium environment.
    :param policy: Scripted expert, callable ``obs -> action`` or SB3 model/policy.
    :param n_episodes: Number of episodes.
    :param seed: Seed of the first episode (and of a scripted expert's noise, where it has none of its own).
    :param deterministic: Passed to ``policy.predict`` for SB3 models.
    """
    seed_unseeded(policy, seed)
    returns, lengths, successes = [], [], []
    for episode in range(n_episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, steps, success, done = 0.0, 0, False, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(predict_action(policy, obs, deterministic=deterministic))
            total += float(reward)
            steps += 1
            success = success or bool(info.get("success", info.get("is_success", False)))
            done = terminated or truncated
        returns.append(total)
        lengths.append(steps)
        successes.append(success)
    return ExpertEvaluation(np.array(returns), np.array(lengths), np.array(successes, dtype=np.bool_))
