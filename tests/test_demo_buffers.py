"""Demonstrations in SB3 replay buffers: action scaling, conversion both ways, the demonstration buffers (sb3_swfp.demos.replay, .buffers)."""

from types import SimpleNamespace

import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.policies import BasePolicy

from sb3_swfp.demos import (
    Demonstrations,
    add_to_replay_buffer,
    from_replay_buffer,
    make_replay_buffer,
    sample_batch,
    scaled_actions,
    unscaled_actions,
    validate,
)

from helpers import ACTION_SPACE, DICT_SPACE, OBS_SPACE, assert_same, episodic_demos

# ----------------------------------------------------------------------------------------
# Scaling, replay buffers, batches


def test_scaled_actions_match_sb3():
    demos = episodic_demos()
    policy_stub = SimpleNamespace(action_space=ACTION_SPACE)
    expected = BasePolicy.scale_action(policy_stub, demos.actions)
    np.testing.assert_allclose(scaled_actions(demos, ACTION_SPACE), expected, rtol=1e-6)
    assert scaled_actions(demos, ACTION_SPACE).min() >= -1 and scaled_actions(demos, ACTION_SPACE).max() <= 1
    np.testing.assert_allclose(unscaled_actions(scaled_actions(demos, ACTION_SPACE), ACTION_SPACE), demos.actions, atol=1e-6)
    with pytest.raises(ValueError, match="finite action-space bounds"):
        scaled_actions(demos, spaces.Box(-np.inf, np.inf, shape=(2,)))


class _SlowReplayBuffer(ReplayBuffer):
    """A subclass, so add_to_replay_buffer takes the per-transition ``add`` path."""


@pytest.mark.parametrize("buffer_class", [ReplayBuffer, _SlowReplayBuffer])
def test_replay_buffer_holds_scaled_actions_and_round_trips(buffer_class):
    demos = episodic_demos()
    buffer = buffer_class(100, OBS_SPACE, ACTION_SPACE, device="cpu")
    assert add_to_replay_buffer(demos, buffer) == 15
    assert buffer.pos == 15 and not buffer.full
    np.testing.assert_allclose(buffer.actions[:15, 0], scaled_actions(demos, ACTION_SPACE), rtol=1e-6)
    np.testing.assert_array_equal(buffer.dones[:15, 0], demos.dones)
    np.testing.assert_array_equal(buffer.timeouts[:15, 0], demos.truncations)  # truncation, not termination
    assert_same(from_replay_buffer(buffer), validate(demos, OBS_SPACE, ACTION_SPACE))


def test_dict_replay_buffer_round_trip_and_samples():
    demos = episodic_demos(dict_obs=True)
    buffer = make_replay_buffer(demos, DICT_SPACE, ACTION_SPACE, device="cpu")
    assert isinstance(buffer, DictReplayBuffer) and buffer.full and buffer.pos == 0
    assert_same(from_replay_buffer(buffer), demos)
    samples = buffer.sample(8)
    assert samples.actions.abs().max() <= 1.0
    # sampled dones are terminations only: the truncated last transition bootstraps
    assert samples.dones.sum() <= demos.terminations.sum() * 8


def test_replay_buffer_wraps_around_oldest_first():
    first, second = episodic_demos(seed=0), episodic_demos(seed=1)
    buffer = ReplayBuffer(20, OBS_SPACE, ACTION_SPACE, device="cpu")
    add_to_replay_buffer(first, buffer)
    add_to_replay_buffer(second, buffer)  # 30 transitions in a buffer of 20
    assert buffer.full and buffer.pos == 10
    expected = Demonstrations.concatenate([first.subset(slice(10, 15)), second])
    assert_same(from_replay_buffer(buffer), validate(expected, OBS_SPACE, ACTION_SPACE))


def test_replay_buffer_errors():
    demos = episodic_demos()
    with pytest.raises(ValueError, match="n_envs=1"):
        add_to_replay_buffer(demos, ReplayBuffer(100, OBS_SPACE, ACTION_SPACE, device="cpu", n_envs=2))
    with pytest.raises(ValueError, match="15 demonstration transitions do not fit in a replay buffer of size 10"):
        add_to_replay_buffer(demos, ReplayBuffer(10, OBS_SPACE, ACTION_SPACE, device="cpu"))
    with pytest.raises(ValueError, match="empty"):
        from_replay_buffer(ReplayBuffer(10, OBS_SPACE, ACTION_SPACE, device="cpu"))


def test_from_memory_optimised_buffer():
    demos = episodic_demos(n_episodes=1, length=12)
    demos.truncations[-1] = False  # SB3 keeps no timeouts with optimize_memory_usage
    buffer = ReplayBuffer(
        10, OBS_SPACE, ACTION_SPACE, device="cpu", optimize_memory_usage=True, handle_timeout_termination=False
    )
    add_to_replay_buffer(demos.subset(slice(0, 8)), buffer)
    add_to_replay_buffer(demos.subset(slice(8, 12)), buffer)  # wraps: the slot at ``pos`` is invalid
    out = from_replay_buffer(buffer)
    assert len(out) == 9
    assert_same(out, validate(demos.subset(slice(3, 12)), OBS_SPACE, ACTION_SPACE))


def test_from_multi_env_buffer_keeps_envs_apart():
    buffer = ReplayBuffer(8, OBS_SPACE, ACTION_SPACE, device="cpu", n_envs=2)
    rng = np.random.default_rng(0)
    for step in range(3):
        done = np.array([step == 2, False], dtype=np.float32)
        buffer.add(rng.normal(size=(2, 3)), rng.normal(size=(2, 3)), rng.uniform(-1, 1, (2, 2)), np.ones(2), done, [{}, {}])
    out = from_replay_buffer(buffer)
    assert len(out) == 6
    np.testing.assert_array_equal(out.terminations, [False, False, True, False, False, False])
    np.testing.assert_array_equal(out.truncations, [False] * 6)  # env 1 is last: its unfinished episode stays open
    np.testing.assert_allclose(out.observations[3:], buffer.observations[:3, 1])


@pytest.mark.parametrize("dict_obs", [False, True])
def test_sample_batch(dict_obs):
    demos = episodic_demos(dict_obs=dict_obs)
    batch = sample_batch(demos, 32, action_space=ACTION_SPACE, rng=np.random.default_rng(0))
    assert batch.actions.shape == (32, 2) and batch.actions.abs().max() <= 1.0
    assert batch.rewards.shape == (32, 1) and batch.dones.shape == (32, 1)
    observations = batch.observations["observation"] if dict_obs else batch.observations
    assert observations.shape == (32, 4 if dict_obs else 3) and observations.dtype.is_floating_point
    raw = sample_batch(demos, 32, rng=np.random.default_rng(0))
    np.testing.assert_allclose(scaled_actions(raw.actions.numpy(), ACTION_SPACE), batch.actions.numpy(), rtol=1e-6)
