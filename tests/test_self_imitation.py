"""Self-imitation (``SWFP(self_imitation=...)``): which online episodes are imitated, and what the bc_coef term's batch holds."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env

from sb3_swfp import SWFP, DemoReplayBuffer
from sb3_swfp.common.elite import MIN_EPISODES, EliteEpisodes
from sb3_swfp.demos import collect_demonstrations
from sb3_swfp.experts import PendulumSwingUpExpert

from helpers import TINY

ENV_ID = "Pendulum-v1"


def step_episodes(elite, lengths_and_rewards, env_count=1, start=0):
    """Feed one env's episodes (length, reward per step) to ``elite``, positions counting from ``start``."""
    position = start
    for length, reward in lengths_and_rewards:
        for step in range(length):
            elite.add(position % elite.buffer_size, np.full(env_count, reward), np.full(env_count, step == length - 1))
            position += 1
    return position


def test_the_top_quarter_of_the_completed_episodes_is_imitated_from_its_buffer_slots():
    elite = EliteEpisodes(n_envs=1, buffer_size=100)
    step_episodes(elite, [(2, 1.0), (3, 0.0), (4, 2.0)])  # returns 2, 0, 8
    assert len(elite.episodes) == MIN_EPISODES - 1 and elite.slots() is None
    step_episodes(elite, [(1, -1.0)], start=9)  # return -1: four episodes, 75th percentile of [2, 0, 8, -1] is 3.5
    positions, envs = elite.slots()
    assert positions.tolist() == [5, 6, 7, 8] and envs.tolist() == [0, 0, 0, 0]  # the third episode only


def test_an_episode_whose_slots_were_overwritten_is_forgotten_and_a_broken_episode_is_not_joined():
    elite = EliteEpisodes(n_envs=1, buffer_size=10)
    end = step_episodes(elite, [(3, 5.0), (2, 0.0), (2, 0.0), (2, 0.0)])  # the best episode at positions 0-2
    assert elite.slots()[0].tolist() == [0, 1, 2]
    elite.add(end % 10, np.ones(1), np.zeros(1))  # an episode under way when learn() resets the envs
    elite.break_episodes()
    end = step_episodes(elite, [(2, 0.0)], start=end + 1)  # 11 positions written: the best episode's first is gone
    assert elite.episodes[-1][3] == 2 and elite.episodes[-1][4] == 0.0  # the broken step joined nothing
    # The four episodes of return 0 are all that is left, the last one written over the best one's slots
    assert elite.slots()[0].tolist() == [3, 4, 5, 6, 7, 8, 0, 1] and len(elite.episodes) == 5


def test_two_envs_keep_their_episodes_apart():
    elite = EliteEpisodes(n_envs=2, buffer_size=50)
    # env 0: episodes of length 2 (reward 1 each step), env 1: length 3 (reward 2 each step)
    for t in range(12):
        elite.add(t, np.array([1.0, 2.0]), np.array([t % 2 == 1, t % 3 == 2]))
    returns = sorted((env, length, value) for env, _, _, length, value in elite.episodes)
    assert returns == [(0, 2, 2.0)] * 6 + [(1, 3, 6.0)] * 4
    positions, envs = elite.slots()  # the 75th percentile of six 2s and four 6s is 6: env 1's episodes
    assert set(envs.tolist()) == {1} and sorted(positions.tolist()) == list(range(12))


@pytest.fixture(scope="module")
def demos():
    return collect_demonstrations(ENV_ID, PendulumSwingUpExpert(noise_std=0.3, seed=0), n_episodes=1, seed=0)


def model_with(demos, **kwargs):
    env = make_vec_env(lambda: gym.wrappers.TimeLimit(gym.make(ENV_ID).unwrapped, max_episode_steps=10), n_envs=2, seed=0)
    return SWFP(
        "FlowPolicy", env, **{**TINY, "seed": 0, "learning_starts": 0, "bc_coef": 1.0, "replay_buffer_class": DemoReplayBuffer,
        "replay_buffer_kwargs": dict(demonstrations=demos, demo_ratio=0.5), **kwargs},
    )  # fmt: skip


def test_the_bc_batch_draws_its_share_from_the_elite_online_transitions(demos):
    model = model_with(demos, self_imitation=0.25)
    obs, actions = model._bc_batch(64)  # no episode yet: demonstrations only
    assert obs.shape == (64, 3)
    model.learn(60)  # 2 envs x 30 steps: six episodes of 10 steps
    assert len(model.elite_episodes.episodes) == 6
    obs, actions = model._bc_batch(64)
    positions, envs = model.elite_episodes.slots()
    buffer = model.replay_buffer
    elite_rows = {tuple(np.concatenate([buffer.observations[p, e], buffer.actions[p, e]]).round(5)) for p, e in zip(positions, envs)}
    drawn = np.concatenate([obs.numpy(), actions.numpy()], axis=1).round(5)
    assert all(tuple(row) in elite_rows for row in drawn[:16])  # round(0.25 * 64) from the elite episodes
    demo_rows = {tuple(row) for row in np.concatenate([demos.observations, demos.actions / 2.0], axis=1).round(5)}
    assert all(tuple(row) in demo_rows for row in drawn[16:])  # the rest from the demonstrations (actions scaled)
    returns = sorted(episode[4] for episode in model.elite_episodes.episodes)
    assert len(positions) == 10 * sum(value >= np.quantile(returns, 0.75) for value in returns)


def test_self_imitation_is_checked_and_survives_save_and_load(demos, tmp_path):
    with pytest.raises(ValueError, match="bc_coef > 0"):
        model_with(demos, self_imitation=0.5, bc_coef=0.0)
    with pytest.raises(ValueError, match=r"self_imitation must be in \[0, 1\)"):
        model_with(demos, self_imitation=1.0)
    model = model_with(demos, self_imitation=0.5)
    model.learn(40)
    model.save(tmp_path / "model")
    loaded = SWFP.load(tmp_path / "model", env=model.env, replay_buffer_kwargs=dict(demonstrations=demos))
    assert loaded.self_imitation == 0.5 and loaded.elite_episodes.episodes == []  # the tracker follows the buffer, not the file
    assert model_with(demos).elite_episodes is None  # off by default: nothing tracked
    loaded.learn(40)
    assert len(loaded.elite_episodes.episodes) == 4 and th.isfinite(loaded._bc_batch(8)[1]).all()
