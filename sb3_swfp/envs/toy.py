"""The 2-D toy of the paper (Sec. 5.1, Fig. 3): a one-step bandit and its 8-mode demonstrations.

The behaviour data is an 8-component Gaussian mixture of actions: 8 modes evenly spaced on
a circle of radius :data:`MODE_RADIUS` (0.6), std :data:`MODE_STD` (0.05). The reward puts a
low-reward annulus (a ring of penalty) on that same circle and 3 high-reward Gaussian bumps
on 3 of the 8 modes (:data:`HIGH_REWARD_MODES`)::

    B(a) = max_{k in HIGH_REWARD_MODES} exp(-|a - mu_k|^2 / (2 * 0.25^2))
    r(a) = B(a) - (1 - B(a)) * exp(-(|a| - 0.6)^2 / (2 * 0.08^2))

So a demonstration mode scores +1 when it is a high-reward mode and about -0.63 when it
lies only in the annulus; away from the circle the reward is about 0.  The bumps are broad
enough (std 0.25 against 0.46 between neighbouring modes) that every annulus mode lies on
the slope of a high-reward basin, and the penalty fades inside the bumps so each
high-reward centre is the peak of its basin. A behaviour-cloned
policy puts about 3/8 of its in-mode mass in high-reward modes; fine-tuning on this reward should move
the mass of the 5 annulus modes into the 3 high-reward ones (the paper, Sec. 5.1, Fig. 3).

Actions live in ``Box(-1, 1, (2,))``, which is also SB3's scaled action space, so scaled
and environment actions coincide. The observation is a constant ``zeros((1,))`` in
``Box(-1, 1, (1,))``; every episode is one step and ends with ``terminated=True``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sb3_swfp.demos import Demonstrations

N_MODES = 8
MODE_RADIUS = 0.6
MODE_STD = 0.05
#: Indices (into :data:`DEMO_MODES`) of the demonstration modes that carry a reward bump.
HIGH_REWARD_MODES = (1, 4, 6)
HIGH_REWARD_HEIGHT = 1.0
HIGH_REWARD_STD = 0.25
ANNULUS_DEPTH = 1.0
ANNULUS_STD = 0.08
#: Distance to a mode centre within which an action counts as "in" that mode (4 mode stds).
MODE_MATCH_RADIUS = 4 * MODE_STD

#: ``(8, 2)`` centres of the demonstration modes, mode ``k`` at angle ``2 pi k / 8``.
DEMO_MODES = MODE_RADIUS * np.stack(
    [np.cos(2 * np.pi * np.arange(N_MODES) / N_MODES), np.sin(2 * np.pi * np.arange(N_MODES) / N_MODES)], axis=1
)
#: ``(3, 2)`` centres of the high-reward bumps.
HIGH_REWARD_CENTRES = DEMO_MODES[list(HIGH_REWARD_MODES)]


def toy_reward(
    actions: np.ndarray, high_reward_modes: tuple[int, ...] = HIGH_REWARD_MODES, high_reward_std: float = HIGH_REWARD_STD
) -> np.ndarray:
    """Reward of the toy bandit for actions ``(..., 2)``; returns ``(...)`` float64.

    :param actions: Actions in ``[-1, 1]^2`` (not clipped here).
    :param high_reward_modes: The demonstration modes that carry a bump (another landscape than the paper's).
    :param high_reward_std: Width of the bumps, > 0.
    """
    check_landscape(high_reward_modes, high_reward_std)  # the demonstrations' rewards as well as the env's
    actions = _pairs(actions, keep_shape=True)
    # (..., 1, 2) - (n_high, 2) -> (..., n_high) squared distances to the bump centres
    sq_dist = np.sum((actions[..., None, :] - DEMO_MODES[list(high_reward_modes)]) ** 2, axis=-1)
    bump = np.exp(-sq_dist / (2 * high_reward_std**2)).max(axis=-1)  # in [0, 1], 1 at a high-reward centre
    radius = np.linalg.norm(actions, axis=-1)
    annulus = np.exp(-((radius - MODE_RADIUS) ** 2) / (2 * ANNULUS_STD**2))
    # The annulus penalty fades inside the bumps, so each high-reward centre is the peak of its basin
    return HIGH_REWARD_HEIGHT * bump - ANNULUS_DEPTH * (1.0 - bump) * annulus


def check_landscape(high_reward_modes: tuple[int, ...], high_reward_std: float) -> None:
    """Raise a ValueError unless the modes are indices of the demonstration modes and the width is > 0."""
    if not len(high_reward_modes) or not all(isinstance(k, (int, np.integer)) and 0 <= k < N_MODES for k in high_reward_modes):
        raise ValueError(f"high_reward_modes must be indices of the {N_MODES} demonstration modes (0..{N_MODES - 1}), got {high_reward_modes}")
    if not high_reward_std > 0:
        raise ValueError(f"high_reward_std must be > 0, got {high_reward_std}")


def _pairs(actions: np.ndarray, keep_shape: bool = False) -> np.ndarray:
    """``actions`` as float64 ``(n, 2)`` (or ``(..., 2)`` with ``keep_shape``): a last axis of another size is refused, not
    reshaped into pairs of other actions' coordinates."""
    actions = np.asarray(actions, dtype=np.float64)
    if actions.ndim == 0 or actions.shape[-1] != 2:
        raise ValueError(f"expected toy actions of shape (n, 2), got {actions.shape}")
    return actions if keep_shape else actions.reshape(-1, 2)


def mode_assignment(actions: np.ndarray) -> np.ndarray:
    """Index of the nearest demonstration mode for actions ``(n, 2)``; returns ``(n,)`` int."""
    actions = _pairs(actions)
    # (n, 1, 2) - (8, 2) -> (n, 8)
    sq_dist = np.sum((actions[:, None, :] - DEMO_MODES) ** 2, axis=-1)
    return np.argmin(sq_dist, axis=1)


def _in_mode(actions: np.ndarray, max_distance: float) -> tuple[np.ndarray, np.ndarray]:
    actions = _pairs(actions)
    if len(actions) == 0:
        raise ValueError("got no actions; expected an (n, 2) array with n >= 1")
    modes = mode_assignment(actions)
    close = np.linalg.norm(actions - DEMO_MODES[modes], axis=1) <= max_distance
    return modes, close


def mode_shares(actions: np.ndarray, max_distance: float = MODE_MATCH_RADIUS) -> np.ndarray:
    """Fraction of the actions ``(n, 2)`` within ``max_distance`` of each demonstration mode; ``(8,)``.

    The shares sum to at most 1; the rest of the actions are away from every mode.
    """
    modes, close = _in_mode(actions, max_distance)
    return np.bincount(modes[close], minlength=N_MODES) / len(modes)


def high_reward_mode_share(
    actions: np.ndarray, max_distance: float = MODE_MATCH_RADIUS, high_reward_modes: tuple[int, ...] = HIGH_REWARD_MODES
) -> float:
    """Fraction of the actions ``(n, 2)`` within ``max_distance`` of a high-reward mode.

    About 3/8 for the demonstrations; fine-tuning should raise it.
    """
    return float(mode_shares(actions, max_distance)[list(high_reward_modes)].sum())


def annulus_mode_share(actions: np.ndarray, max_distance: float = MODE_MATCH_RADIUS) -> float:
    """Fraction of the actions ``(n, 2)`` within ``max_distance`` of a low-reward (annulus-only) mode.

    About 5/8 for the demonstrations; fine-tuning should lower it.
    """
    low = [k for k in range(N_MODES) if k not in HIGH_REWARD_MODES]
    return float(mode_shares(actions, max_distance)[low].sum())


def toy_demonstrations(n: int = 1000, seed: int | None = 0, std: float = MODE_STD, **landscape: Any) -> Demonstrations:
    """``n`` one-step demonstrations whose actions follow the 8-mode Gaussian mixture.

    Each transition picks a mode uniformly and adds isotropic Gaussian noise of std
    ``std``; rewards are :func:`toy_reward` of the (clipped) actions.

    :param n: Number of transitions (the paper uses 1,000).
    :param seed: Seed of the sampling.
    :param std: Std of each mixture component.
    :param landscape: ``high_reward_modes`` / ``high_reward_std`` of :func:`toy_reward`.
    """
    if n < 1:
        raise ValueError(f"n must be a positive number of demonstrations, got {n}")
    rng = np.random.default_rng(seed)
    modes = rng.integers(0, N_MODES, size=n)
    actions = np.clip(DEMO_MODES[modes] + std * rng.standard_normal((n, 2)), -1.0, 1.0).astype(np.float32)
    observations = np.zeros((n, 1), dtype=np.float32)
    return Demonstrations(
        observations=observations,
        actions=actions,
        rewards=toy_reward(actions, **landscape).astype(np.float32),
        next_observations=observations.copy(),
        terminations=np.ones(n, dtype=np.bool_),
        truncations=np.zeros(n, dtype=np.bool_),
        metadata={"source": "toy_demonstrations", "env_id": "SWFPToyBandit-v0", "seed": seed, "std": std, **landscape},
    )


class ToyBanditEnv(gym.Env):
    """One-step 2-D bandit with a low-reward annulus and 3 high-reward modes (paper Sec. 5.1).

    The reward is :func:`toy_reward` of the action clipped to ``[-1, 1]^2``. ``info`` holds
    ``mode`` (nearest demonstration mode) and ``is_high_reward_mode`` (the action lies
    within :data:`MODE_MATCH_RADIUS` of a high-reward mode).

    :param high_reward_modes: The demonstration modes that carry a reward bump (the paper's toy: 1, 4, 6).
    :param high_reward_std: Width of the bumps (the paper's toy: 0.25).
    """

    #: "human" draws nothing (a bandit has no state to show): rl-zoo3's enjoy asks for it unless --no-render
    metadata = {"render_modes": ["human"], "render_fps": 1}

    def __init__(
        self, high_reward_modes: tuple[int, ...] = HIGH_REWARD_MODES, high_reward_std: float = HIGH_REWARD_STD, render_mode: str | None = None
    ) -> None:
        super().__init__()
        check_landscape(high_reward_modes, high_reward_std)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode
        self.high_reward_modes = tuple(int(k) for k in high_reward_modes)
        self.high_reward_std = float(high_reward_std)
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._observation = np.zeros((1,), dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return self._observation.copy(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        mode = int(mode_assignment(action[None])[0])
        info = {
            "mode": mode,
            "is_high_reward_mode": bool(
                mode in self.high_reward_modes and np.linalg.norm(action - DEMO_MODES[mode]) <= MODE_MATCH_RADIUS
            ),
        }
        reward = toy_reward(action, self.high_reward_modes, self.high_reward_std)
        return self._observation.copy(), float(reward), True, False, info

    def render(self) -> None:
        """Nothing to draw ("human"): the toy's state is a constant; its actions are what the figures plot."""
        return None


#: SWFP settings for the toy (N = 6 blocks as in the paper), shared by the test, the figure
#: script and the density study.  ``learning_starts`` uniform random actions let
#: the critic see the whole square; ``actor_learning_starts`` critic-only updates fit the reward
#: before the pretrained flow moves.  With the paper's ``w2_coef=0.4`` the particles gathered
#: as fast but one high-reward mode lost its mass (seed 0); ``w2_coef=2`` keeps all three.
TOY_SWFP_KWARGS: dict[str, Any] = dict(
    n_blocks=6,
    ent_coef=0.05,
    w2_coef=2.0,
    learning_rate=1e-3,
    actor_learning_rate=1e-4,
    policy_delay=1,
    batch_size=256,
    learning_starts=1000,
    actor_learning_starts=1000,
    policy_kwargs=dict(net_arch=dict(pi=[128, 128], qf=[256, 256])),
    # 0.1.0's rule, which docs/toy.md's figure was made with (the preset's toy runs are the benchmark's)
    squash="clip",
)
#: Behaviour-cloning settings for the toy (``SWFP.pretrain`` keyword arguments).
TOY_BC_KWARGS: dict[str, Any] = dict(gradient_steps=3000, batch_size=128, learning_rate=1e-3, final_learning_rate=1e-4)
