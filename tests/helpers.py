"""Data shared by several test files (imported as ``helpers``: conftest.py puts this folder on ``sys.path``)."""

import numpy as np
from gymnasium import spaces

from sb3_swfp.demos import Demonstrations

# Small, fast SWFP settings used by many tests
TINY = dict(
    learning_starts=50,
    batch_size=32,
    buffer_size=2_000,
    n_blocks=3,
    policy_kwargs=dict(net_arch=[32, 32]),
)

OBS_SPACE = spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float32)
ACTION_SPACE = spaces.Box(np.array([-2.0, 0.0], dtype=np.float32), np.array([2.0, 1.0], dtype=np.float32))
DICT_SPACE = spaces.Dict(
    {
        "observation": spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float64),
        "desired_goal": spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float64),
    }
)


def episodic_demos(n_episodes: int = 3, length: int = 5, seed: int = 0, dict_obs: bool = False) -> Demonstrations:
    """Contiguous episodes: next_observations[i] == observations[i + 1] inside an episode.

    Every episode but the last terminates, the last one is truncated.
    """
    rng = np.random.default_rng(seed)
    n = n_episodes * length
    states = rng.normal(size=(n_episodes, length + 1, 4))
    goals = np.repeat(rng.normal(size=(n_episodes, 1, 2)), length + 1, axis=1)

    def flat(array: np.ndarray, part: slice) -> np.ndarray:
        return array[:, part].reshape(n, *array.shape[2:])

    if dict_obs:
        obs = {"observation": flat(states, slice(0, -1)), "desired_goal": flat(goals, slice(0, -1))}
        next_obs = {"observation": flat(states, slice(1, None)), "desired_goal": flat(goals, slice(1, None))}
    else:
        obs = flat(states[..., :3], slice(0, -1)).astype(np.float32)
        next_obs = flat(states[..., :3], slice(1, None)).astype(np.float32)
    low, high = ACTION_SPACE.low, ACTION_SPACE.high
    terminations = np.zeros(n, dtype=bool)
    truncations = np.zeros(n, dtype=bool)
    terminations[length - 1 : -1 : length] = True
    truncations[-1] = True
    return Demonstrations(
        observations=obs,
        actions=(low + (high - low) * rng.random((n, 2))).astype(np.float32),
        rewards=rng.normal(size=n).astype(np.float32),
        next_observations=next_obs,
        terminations=terminations,
        truncations=truncations,
        metadata={"env_id": "Test-v0", "seed": seed},
    )


def assert_same(a: Demonstrations, b: Demonstrations) -> None:
    assert a.is_dict_obs == b.is_dict_obs
    for name in ("observations", "next_observations"):
        x, y = getattr(a, name), getattr(b, name)
        if a.is_dict_obs:
            assert sorted(x) == sorted(y)
            for key in x:
                np.testing.assert_array_equal(x[key], y[key])
        else:
            np.testing.assert_array_equal(x, y)
    for name in ("rewards", "terminations", "truncations"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_allclose(a.actions, b.actions, atol=1e-6)
