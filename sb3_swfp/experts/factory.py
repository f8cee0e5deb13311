"""Which scripted expert goes with which environment."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from sb3_swfp.experts.base import ScriptedExpert
from sb3_swfp.experts.pendulum import PendulumSwingUpExpert
from sb3_swfp.experts.point_maze import PointMazeExpert, make_maze_env

#: Env ids with a shipped expert; any ``PointMaze_*`` id of gymnasium-robotics works too.
EXPERT_ENV_IDS = ("Pendulum-v1", "PointMaze_UMaze-v3", "PointMaze_Medium-v3", "PointMaze_Large-v3")


def make_expert_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gym.make`` the env, registering gymnasium-robotics first for ``PointMaze_*`` ids."""
    if env_id.startswith("PointMaze_"):
        return make_maze_env(env_id, **kwargs)
    return gym.make(env_id, **kwargs)


def make_expert(env: gym.Env, noise_std: float = 0.0, seed: int | None = None) -> ScriptedExpert:
    """The scripted expert of ``env`` (chosen by ``env.spec.id``).

    :param env: A ``Pendulum-*`` or ``PointMaze_*`` env (see :data:`EXPERT_ENV_IDS`).
    :param noise_std: Relative std of the expert's action noise.
    :param seed: Seed of that noise.
    :raises ValueError: no expert for this env.
    """
    env_id = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    if env_id.startswith("Pendulum"):
        return PendulumSwingUpExpert(env, noise_std=noise_std, seed=seed)
    if env_id.startswith("PointMaze_"):
        return PointMazeExpert(env, noise_std=noise_std, seed=seed)
    raise ValueError(f"no scripted expert for {env_id!r}; experts exist for {list(EXPERT_ENV_IDS)} (and any PointMaze_* id)")
