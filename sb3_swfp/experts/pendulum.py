"""Scripted expert for ``Pendulum-v1``: energy-based swing-up, LQR balance near the top.

Pendulum-v1 integrates (semi-implicit Euler, step ``dt``, ``theta = 0`` upright)::

    theta_dot' = theta_dot + (3 g / (2 l) * sin(theta) + 3 / (m l^2) * u) * dt
    theta'     = theta + theta_dot' * dt

With ``a = 3 g / (2 l)`` and ``b = 3 / (m l^2)``, the energy-like quantity
``E = theta_dot^2 / 2 + a * (cos(theta) - 1)`` is 0 at rest upright, and
``dE/dt = b * u * theta_dot``. Away from the top the expert pumps energy towards 0 with
``u = k_E * (0 - E) * theta_dot`` (Astrom & Furuta, 2000); within ``balance_angle`` of the
top it applies the discrete-time LQR gain of the linearised step for the reward's cost
``theta^2 + 0.1 theta_dot^2 + 0.001 u^2``.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sb3_swfp.experts.base import ScriptedExpert


def discrete_lqr_gain(
    a_matrix: np.ndarray, b_matrix: np.ndarray, q_matrix: np.ndarray, r_matrix: np.ndarray, n_iterations: int = 5000
) -> np.ndarray:
    """Gain ``K`` of the infinite-horizon discrete LQR (``u = -K x``), by Riccati iteration.

    :param a_matrix: ``(n, n)`` state transition.
    :param b_matrix: ``(n, m)`` control matrix.
    :param q_matrix: ``(n, n)`` state cost.
    :param r_matrix: ``(m, m)`` control cost.
    :param n_iterations: Riccati iterations (converges long before for a stabilisable system).
    :return: ``(m, n)`` gain.
    """
    p_matrix = q_matrix.copy()
    for _ in range(n_iterations):
        gain = np.linalg.solve(r_matrix + b_matrix.T @ p_matrix @ b_matrix, b_matrix.T @ p_matrix @ a_matrix)
        p_matrix = q_matrix + a_matrix.T @ p_matrix @ (a_matrix - b_matrix @ gain)
    return np.linalg.solve(r_matrix + b_matrix.T @ p_matrix @ b_matrix, b_matrix.T @ p_matrix @ a_matrix)


class PendulumSwingUpExpert(ScriptedExpert):
    """Swing-up and balance controller for ``Pendulum-v1`` (observation ``[cos, sin, theta_dot]``).

    Mean return about -137 over 20 episodes (seeds 0-19), the level of a well-trained RL agent, so this
    is an expert.  Use ``noise_std`` for a suboptimal one.

    :param env: A Pendulum-v1 env to read ``g``, ``m``, ``l``, ``dt`` and ``max_torque``
        from (the gymnasium defaults when ``None``).
    :param energy_gain: ``k_E`` of the swing-up law.
    :param balance_angle: Angle (rad) from the top below which the LQR balances.
    :param noise_std: Relative std of the action noise (see :class:`ScriptedExpert`).
    :param seed: Seed of the noise.
    """

    def __init__(
        self,
        env: gym.Env | None = None,
        energy_gain: float = 1.0,
        balance_angle: float = 0.5,
        noise_std: float = 0.0,
        seed: int | None = None,
    ):
        pendulum = env.unwrapped if env is not None else None
        self.g = float(getattr(pendulum, "g", 10.0))
        self.m = float(getattr(pendulum, "m", 1.0))
        self.length = float(getattr(pendulum, "l", 1.0))
        self.dt = float(getattr(pendulum, "dt", 0.05))
        self.max_torque = float(getattr(pendulum, "max_torque", 2.0))
        observation_space = spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float32)
        action_space = spaces.Box(-self.max_torque, self.max_torque, shape=(1,), dtype=np.float32)
        super().__init__(observation_space, action_space, noise_std=noise_std, seed=seed)
        self.energy_gain = energy_gain
        self.balance_angle = balance_angle
        self.a = 3.0 * self.g / (2.0 * self.length)
        self.b = 3.0 / (self.m * self.length**2)
        dt = self.dt
        # Linearised semi-implicit Euler step around the top, state (theta, theta_dot)
        a_matrix = np.array([[1.0 + self.a * dt**2, dt], [self.a * dt, 1.0]])
        b_matrix = np.array([[self.b * dt**2], [self.b * dt]])
        self.lqr_gain = discrete_lqr_gain(a_matrix, b_matrix, np.diag([1.0, 0.1]), np.array([[0.001]]))[0]  # (2,)

    def expert_action(self, observations: np.ndarray) -> np.ndarray:
        """Noiseless torques ``(batch, 1)`` for observations ``(batch, 3)``."""
        theta = np.arctan2(observations[:, 1], observations[:, 0])
        theta_dot = observations[:, 2]
        energy = 0.5 * theta_dot**2 + self.a * (np.cos(theta) - 1.0)
        # At rest at the bottom theta_dot = 0 gives no swing-up torque: kick in +theta_dot direction.
        drive = np.where(np.abs(theta_dot) < 1e-3, 1.0, theta_dot)
        swing_up = self.energy_gain * (0.0 - energy) * drive
        balance = -(self.lqr_gain[0] * theta + self.lqr_gain[1] * theta_dot)
        torque = np.where(np.abs(theta) < self.balance_angle, balance, swing_up)
        return np.clip(torque, -self.max_torque, self.max_torque)[:, None]
