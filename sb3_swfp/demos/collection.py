"""Recording demonstrations: the transitions of a policy (an SB3 model or a callable) acting in an environment."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv

from sb3_swfp.common.checks import whole_number
from sb3_swfp.demos.minari_datasets import check_new_dataset_id
from sb3_swfp.demos.npz import check_new_demonstrations_file
from sb3_swfp.demos.record import Demonstrations, Observations

#: An SB3 model or policy (anything with ``.predict``), or a callable ``obs -> action``.
PolicyLike = Any | Callable[[Any], np.ndarray]


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
        action = policy(observation)
        if hasattr(action, "detach"):  # a torch tensor, maybe on a GPU: numpy reads host memory only
            action = action.detach().cpu().numpy()
        return np.asarray(action)
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

    :param env: A single (non-vectorised) gymnasium environment, or an env id to make (``gym.make``, with
        gymnasium-robotics registered first for PointMaze ids); an env made here is closed at the end.
    :param policy: SB3 model/policy (``.predict``) or callable ``obs -> action`` in the env's
        action space (e.g. an expert from :mod:`sb3_swfp.experts`).  It sees the env's raw
        observations: for a model trained under ``VecNormalize``, give a callable that normalises
        them with its statistics first (``examples/train_expert.py`` does).
    :param n_episodes: Number of whole episodes to record (exactly one of ``n_episodes``
        and ``n_steps``).
    :param n_steps: Number of transitions to record.
    :param action_noise_std: Relative std of the Gaussian action noise (0: none).
    :param deterministic: Passed to ``policy.predict``.
    :param seed: Seed of the resets and of the noise (and of a scripted expert's noise, where it has none of its own).
    :param env_kwargs: Keyword arguments of ``gym.make`` when ``env`` is an id.
    """
    if (n_episodes is None) == (n_steps is None):
        raise ValueError(f"pass exactly one of n_episodes and n_steps, got n_episodes={n_episodes}, n_steps={n_steps}")
    # The loop ends when the recorded count equals the budget: 10.5 would never be reached (1e4 is taken)
    if n_episodes is not None:
        n_episodes = whole_number("n_episodes", n_episodes, 1)
    else:
        n_steps = whole_number("n_steps", n_steps, 1)
    if action_noise_std < 0:
        raise ValueError(f"action_noise_std must be >= 0, got {action_noise_std}")
    if isinstance(env, VecEnv):
        raise TypeError("collect_demonstrations needs a single gymnasium.Env, got a VecEnv; pass one unwrapped env")
    owns_env = isinstance(env, str)
    if owns_env:
        from sb3_swfp.experts import make_expert_env  # here: the experts import this module's predict_action

        env = make_expert_env(env, **(env_kwargs or {}))  # gym.make, registering gymnasium-robotics for PointMaze ids
    action_space = env.action_space
    if not isinstance(action_space, spaces.Box):
        raise TypeError(f"collect_demonstrations needs a Box action space, got {action_space}")
    bounded = bool(np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high)))
    noise_scale = action_noise_std * ((action_space.high - action_space.low) / 2.0 if bounded else 1.0)
    rng = np.random.default_rng(seed)
    from sb3_swfp.experts.base import seed_unseeded  # here: the experts import this module's predict_action

    seed_unseeded(policy, seed)

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
            observations.append(_copy_obs(obs))  # before the step: an env may update the array it returned in place
            next_obs, reward, terminated, truncated, _ = env.step(action)
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


def check_recording_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A recording script's ``--episodes``, ``--noise``, ``--seed``, ``--out`` (with ``--overwrite``) and
    ``--minari-id``: refuse, before any recording (or training), what would fail or overwrite at the end."""
    if args.episodes < 1:
        parser.error(f"--episodes must be >= 1, got {args.episodes}")
    if not (math.isfinite(args.noise) and args.noise >= 0):
        parser.error(f"--noise is a relative standard deviation, a finite number >= 0, got {args.noise}")
    if not 0 <= args.seed < 2**32:  # numpy and SB3's set_random_seed refuse others, with a traceback
        parser.error(f"--seed must be in [0, 2**32), got {args.seed}")
    try:
        check_new_demonstrations_file(args.out, overwrite=args.overwrite)
    except FileExistsError as error:
        parser.error(f"--out: {error} (--overwrite)")
    except ValueError as error:
        parser.error(f"--out: {error}")
    if args.minari_id:
        try:
            check_new_dataset_id(args.minari_id)
        except (ImportError, ValueError) as error:
            parser.error(f"--minari-id: {error}")


__all__ = ["PolicyLike", "check_recording_arguments", "collect_demonstrations", "predict_action"]
