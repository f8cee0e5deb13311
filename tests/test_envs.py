"""The paper's 2-D toy (Sec. 5.1): bandit env, reward landscape, 8-mode demonstrations."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from sb3_swfp.demos import validate
from sb3_swfp.envs import TOY_BANDIT_ID, ToyBanditEnv, toy_demonstrations
from sb3_swfp.envs.toy import (
    DEMO_MODES,
    HIGH_REWARD_MODES,
    MODE_RADIUS,
    annulus_mode_share,
    high_reward_mode_share,
    mode_assignment,
    mode_shares,
    toy_reward,
)

LOW_REWARD_MODES = [k for k in range(8) if k not in HIGH_REWARD_MODES]


def test_registered_and_passes_env_checkers():
    env = gym.make(TOY_BANDIT_ID)
    assert isinstance(env.unwrapped, ToyBanditEnv)
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(ToyBanditEnv(), warn=True)


def test_one_step_episodes():
    env = gym.make(TOY_BANDIT_ID)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, np.zeros(1))
    high = DEMO_MODES[HIGH_REWARD_MODES[0]]
    next_obs, reward, terminated, truncated, info = env.step(high.astype(np.float32))
    assert terminated and not truncated
    np.testing.assert_array_equal(next_obs, np.zeros(1))
    assert reward == pytest.approx(float(toy_reward(high)))
    assert info["is_high_reward_mode"] and info["mode"] == HIGH_REWARD_MODES[0]
    _, _, _, _, info = env.step(DEMO_MODES[LOW_REWARD_MODES[0]].astype(np.float32))
    assert not info["is_high_reward_mode"]


def test_reward_landscape():
    rewards = toy_reward(DEMO_MODES)
    # high-reward modes sit at the top of a bump (1); the others in the annulus, on a bump's slope:
    # B = exp(-0.46^2 / (2 * 0.25^2)) = 0.18 at the chord 2 * 0.6 * sin(pi / 8) = 0.46, r = B - (1 - B)
    np.testing.assert_allclose(rewards[list(HIGH_REWARD_MODES)], 1.0, atol=1e-6)
    np.testing.assert_allclose(rewards[LOW_REWARD_MODES], -0.63, atol=0.01)
    # far from the circle the reward is small: the centre only sees the bumps' tails (exp(-0.6^2 / 0.125))
    assert abs(toy_reward(np.zeros(2))) < 0.06 and abs(toy_reward(np.array([0.95, 0.95]))) < 0.03
    # every annulus mode neighbours a high mode, and half-way there along the ring the reward is higher
    for k in LOW_REWARD_MODES:
        assert (k + 1) % 8 in HIGH_REWARD_MODES or (k - 1) % 8 in HIGH_REWARD_MODES
        angle = 2 * np.pi * k / 8
        step = np.pi / 4 * (1 if (k + 1) % 8 in HIGH_REWARD_MODES else -1)
        half_way = MODE_RADIUS * np.array([np.cos(angle + step / 2), np.sin(angle + step / 2)])
        assert toy_reward(DEMO_MODES[k]) < toy_reward(half_way) < 1.0


def test_mode_helpers():
    np.testing.assert_array_equal(mode_assignment(DEMO_MODES), np.arange(8))
    assert high_reward_mode_share(DEMO_MODES[list(HIGH_REWARD_MODES)]) == 1.0
    assert high_reward_mode_share(DEMO_MODES[LOW_REWARD_MODES]) == 0.0
    assert annulus_mode_share(DEMO_MODES[LOW_REWARD_MODES]) == 1.0
    assert mode_shares(np.zeros((4, 2))).sum() == 0.0  # the origin is far from every mode
    with pytest.raises(ValueError, match="no actions"):
        high_reward_mode_share(np.zeros((0, 2)))


def test_toy_demonstrations_are_an_8_mode_mixture():
    env = gym.make(TOY_BANDIT_ID)
    demos = toy_demonstrations(n=1000, seed=0)
    checked = validate(demos, env.observation_space, env.action_space)
    assert len(checked) == 1000 and checked.n_episodes == 1000 and checked.terminations.all()
    shares = mode_shares(demos.actions)
    assert shares.sum() > 0.99  # every sample lies within 4 std of its mode
    np.testing.assert_allclose(shares, 1 / 8, atol=0.04)
    assert high_reward_mode_share(demos.actions) == pytest.approx(3 / 8, abs=0.05)
    np.testing.assert_allclose(demos.rewards, toy_reward(demos.actions), atol=1e-6)
    # mass on high-reward modes earns more than mass on the annulus
    in_high = np.isin(mode_assignment(demos.actions), HIGH_REWARD_MODES)
    assert demos.rewards[in_high].mean() > 0.5 and demos.rewards[~in_high].mean() < -0.3


def test_toy_demonstrations_are_seeded():
    np.testing.assert_array_equal(toy_demonstrations(50, seed=1).actions, toy_demonstrations(50, seed=1).actions)
    assert not np.array_equal(toy_demonstrations(50, seed=1).actions, toy_demonstrations(50, seed=2).actions)
    with pytest.raises(ValueError, match="positive number"):
        toy_demonstrations(0)
    with pytest.raises(ValueError, match="high_reward_std must be > 0, got -0.25"):
        toy_demonstrations(50, high_reward_std=-0.25)  # the env refuses it too; its demonstrations did not


@pytest.mark.parametrize("modes", [(-1,), (9,), ()])
def test_demonstrations_and_rewards_refuse_modes_the_env_refuses(modes):
    for make in (lambda: toy_demonstrations(5, high_reward_modes=modes), lambda: ToyBanditEnv(high_reward_modes=modes)):
        with pytest.raises(ValueError, match=r"high_reward_modes must be indices of the 8 demonstration modes \(0..7\)"):
            make()


def test_mode_helpers_refuse_actions_that_are_not_pairs():
    actions = toy_demonstrations(8).actions
    for wrong in (actions.T, np.zeros((4, 3))):
        with pytest.raises(ValueError, match=r"expected toy actions of shape \(n, 2\), got \((2, 8|4, 3)\)"):
            mode_shares(wrong)


def test_the_toy_takes_the_human_render_mode_that_rl_zoo3s_enjoy_asks_for():
    env = gym.make(TOY_BANDIT_ID, render_mode="human")
    env.reset(seed=0)
    assert env.render() is None
    with pytest.raises(ValueError, match=r"render_mode must be None or one of \['human'\], got 'rgb_array'"):
        ToyBanditEnv(render_mode="rgb_array")
