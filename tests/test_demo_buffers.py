"""Demonstrations in SB3 replay buffers: action scaling, conversion both ways, the demonstration buffers (sb3_swfp.demos.replay, .buffers)."""

import pickle
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from sb3_swfp.demos import (
    DemonstrationBuffer,
    Demonstrations,
    DemoReplayBuffer,
    add_to_replay_buffer,
    collect_demonstrations,
    defer_missing_demonstrations,
    from_replay_buffer,
    make_replay_buffer,
    scaled_actions,
    unscaled_actions,
    validate,
)
from sb3_swfp.experts import PendulumSwingUpExpert
from sb3_swfp.swfp.pretrain import PretrainingNormalization, update_observation_statistics

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
    """A subclass with its own ``add``, so add_to_replay_buffer takes the per-transition ``add`` path."""

    def add(self, *args, **kwargs):
        super().add(*args, **kwargs)


@pytest.mark.parametrize("buffer_class, add_calls", [(ReplayBuffer, 0), (_SlowReplayBuffer, 15)])
def test_replay_buffer_holds_scaled_actions_and_round_trips(buffer_class, add_calls):
    demos = episodic_demos()
    buffer = buffer_class(100, OBS_SPACE, ACTION_SPACE, device="cpu")
    # count the instance's add calls; SB3's own class keeps SB3's add, so the array writes stay chosen
    count_calls, class_add = [], buffer.add
    buffer.add = lambda *args, **kwargs: (count_calls.append(1), class_add(*args, **kwargs))[1]
    assert add_to_replay_buffer(demos, buffer) == 15
    assert buffer.pos == 15 and not buffer.full
    assert len(count_calls) == add_calls
    np.testing.assert_allclose(buffer.actions[:15, 0], scaled_actions(demos, ACTION_SPACE), rtol=1e-6)
    np.testing.assert_array_equal(buffer.dones[:15, 0], demos.dones)
    np.testing.assert_array_equal(buffer.timeouts[:15, 0], demos.truncations)  # truncation, not termination
    assert_same(from_replay_buffer(buffer), validate(demos, OBS_SPACE, ACTION_SPACE))


def test_dict_replay_buffer_round_trip_and_samples():
    demos = episodic_demos(dict_obs=True)
    buffer = make_replay_buffer(demos, DICT_SPACE, ACTION_SPACE, device="cpu")
    assert isinstance(buffer, DictReplayBuffer) and buffer.full and buffer.pos == 0
    assert_same(from_replay_buffer(buffer), demos)
    samples = buffer._get_samples(np.arange(len(demos)))
    assert samples.actions.abs().max() <= 1.0
    # sampled dones are terminations only: the truncated last transition bootstraps
    np.testing.assert_array_equal(samples.dones[:, 0].numpy(), demos.terminations)
    assert demos.truncations[-1] and samples.dones[-1, 0] == 0


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


# ----------------------------------------------------------------------------------------
# The demonstration buffer: where every batch of demonstrations is drawn


@pytest.mark.parametrize("dict_obs", [False, True])
def test_demonstration_buffer_samples_scaled_transitions(dict_obs):
    demos = episodic_demos(dict_obs=dict_obs)
    buffer = DemonstrationBuffer.from_demonstrations(demos, DICT_SPACE if dict_obs else OBS_SPACE, ACTION_SPACE, device="cpu")
    assert isinstance(buffer, DictReplayBuffer) == dict_obs and buffer.full and buffer.size() == len(demos)
    batch = buffer.sample(32, rng=np.random.default_rng(0))
    assert batch.actions.shape == (32, 2) and batch.actions.abs().max() <= 1.0
    assert batch.rewards.shape == (32, 1) and batch.dones.shape == (32, 1)
    observations = batch.observations["observation"] if dict_obs else batch.observations
    assert observations.shape == (32, 4 if dict_obs else 3) and observations.dtype.is_floating_point
    # The generator's draws are the transitions' indices
    index = np.random.default_rng(0).integers(0, len(demos), size=32)
    np.testing.assert_allclose(scaled_actions(demos.actions[index], ACTION_SPACE), batch.actions.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(batch.dones.numpy()[:, 0], demos.terminations[index])  # truncations bootstrap


FLOAT64_SPACE = spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float64)


def float64_demos() -> Demonstrations:
    """Float64 observations that float32 does not represent."""
    demos = episodic_demos(dict_obs=True)
    return Demonstrations(
        demos.observations["observation"], demos.actions, demos.rewards, demos.next_observations["observation"],
        demos.terminations, demos.truncations,
    )  # fmt: skip


class _SpaceEnv(gym.Env):
    """An env with the given observation space, for VecNormalize's statistics (never stepped)."""

    def __init__(self, observation_space):
        self.observation_space, self.action_space = observation_space, ACTION_SPACE

    def reset(self, seed=None, options=None):
        return self.observation_space.sample(), {}


def vec_normalize_with_statistics(observation_space) -> VecNormalize:
    """A VecNormalize whose observation and return statistics are far from their initial values."""
    env = VecNormalize(DummyVecEnv([lambda: _SpaceEnv(observation_space)]), norm_reward=True, clip_obs=3.0)
    rng = np.random.default_rng(1)
    for rms in env.obs_rms.values() if isinstance(env.obs_rms, dict) else [env.obs_rms]:
        rms.mean, rms.var = rng.normal(size=rms.mean.shape), rng.uniform(0.2, 3.0, size=rms.var.shape)
    env.ret_rms.var = np.array(7.0)
    return env


def reference_batch(demos, batch_size, rng, vec_normalize=None):
    """The batches pretraining drew before every batch came from a DemonstrationBuffer.

    ``sample_batch(demos, batch_size, action_space, device, rng)`` followed by ``SWFP._normalize_demo_obs``,
    as sb3-swfp 0.1.0 wrote them; kept here to check that the buffer draws the same numbers.
    """
    index = rng.integers(0, len(demos), size=batch_size)

    def to_tensor(array):
        if np.issubdtype(array.dtype, np.floating):
            array = array.astype(np.float32, copy=False)
        return th.as_tensor(array)

    def observations(obs):
        tensors = {key: to_tensor(value[index]) for key, value in obs.items()} if isinstance(obs, dict) else to_tensor(obs[index])
        if vec_normalize is None or not vec_normalize.norm_obs:
            return tensors
        if isinstance(tensors, dict):
            normalized = vec_normalize.normalize_obs({key: value.numpy() for key, value in tensors.items()})
            return {key: th.as_tensor(value) for key, value in normalized.items()}
        return th.as_tensor(vec_normalize.normalize_obs(tensors.numpy()))

    return dict(
        observations=observations(demos.observations),
        actions=to_tensor(scaled_actions(demos.actions[index], ACTION_SPACE)),
        next_observations=observations(demos.next_observations),
        dones=to_tensor(demos.terminations[index].astype(np.float32).reshape(-1, 1)),
        rewards=to_tensor(demos.rewards[index].astype(np.float32).reshape(-1, 1)),
    )


def assert_identical(a, b, name):
    """Same values, dtype and shape (bit for bit)."""
    if isinstance(a, dict):
        assert sorted(a) == sorted(b), name
        for key in a:
            assert_identical(a[key], b[key], f"{name}[{key!r}]")
        return
    assert a.dtype == b.dtype and a.shape == b.shape and th.equal(a, b), name


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("kind", ["float32", "float64", "dict"])
def test_pretraining_draws_the_batches_it_drew_before_the_buffer(kind, normalize):
    """Same generator, same batches, bit for bit: BC batches, then critic warm-up batches of another size,
    with and without VecNormalize (observation and return statistics set), float64 observations included."""
    demos, space = {"float32": (episodic_demos(), OBS_SPACE), "float64": (float64_demos(), FLOAT64_SPACE),
                    "dict": (episodic_demos(dict_obs=True), DICT_SPACE)}[kind]  # fmt: skip
    demos = validate(demos, space, ACTION_SPACE)  # pretraining validated before it sampled
    vec_normalize = vec_normalize_with_statistics(space) if normalize else None
    buffer = DemonstrationBuffer.from_demonstrations(demos, space, ACTION_SPACE, device="cpu")
    normalization = PretrainingNormalization(vec_normalize)
    old_rng, new_rng = np.random.default_rng(3), np.random.default_rng(3)
    global_stream = np.random.get_state()
    for batch_size in (32, 32, 7, 7):
        old = reference_batch(demos, batch_size, old_rng, vec_normalize)
        new = buffer.sample(batch_size, env=normalization, rng=new_rng)
        for name, value in old.items():
            assert_identical(getattr(new, name), value, name)
    # the global stream, which online training samples with, is left alone
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), global_stream))


def test_pretraining_updates_every_normalised_key_of_dict_observations_with_the_demonstrations():
    demos = validate(episodic_demos(dict_obs=True), DICT_SPACE, ACTION_SPACE)
    env = VecNormalize(DummyVecEnv([lambda: _SpaceEnv(DICT_SPACE)]), norm_reward=False)
    counts = {key: env.obs_rms[key].count for key in env.norm_obs_keys}
    update_observation_statistics(env, DemonstrationBuffer.from_demonstrations(demos, DICT_SPACE, ACTION_SPACE, device="cpu"))
    for key in env.norm_obs_keys:
        assert env.obs_rms[key].count == pytest.approx(counts[key] + len(demos))
        np.testing.assert_allclose(env.obs_rms[key].mean, demos.observations[key].mean(axis=0), atol=1e-3)


@pytest.mark.parametrize("kind", ["float32", "float64"])
def test_gaussian_bc_reads_the_observations_it_read_before_the_buffer(kind):
    """Gaussian BC samples without normalisation; its networks read float32 (SB3's preprocess_obs), as before."""
    demos, space = {"float32": (episodic_demos(), OBS_SPACE), "float64": (float64_demos(), FLOAT64_SPACE)}[kind]
    demos = validate(demos, space, ACTION_SPACE)
    buffer = DemonstrationBuffer.from_demonstrations(demos, space, ACTION_SPACE, device="cpu")
    old_rng, new_rng = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(3):
        old, new = reference_batch(demos, 16, old_rng), buffer.sample(16, rng=new_rng)
        assert th.equal(new.observations.float(), old["observations"]) and th.equal(new.actions, old["actions"])


def test_without_a_generator_the_demonstration_buffer_samples_as_sb3_does():
    """The online path (DemoReplayBuffer's demonstration share, the bc_coef term): SB3's draws from np.random."""
    demos = episodic_demos(dict_obs=True)
    vec_normalize = vec_normalize_with_statistics(DICT_SPACE)
    buffer = DemonstrationBuffer.from_demonstrations(demos, DICT_SPACE, ACTION_SPACE, device="cpu")
    plain = make_replay_buffer(demos, DICT_SPACE, ACTION_SPACE, device="cpu")
    np.random.seed(0)
    new = buffer.sample(16, env=vec_normalize)
    np.random.seed(0)
    old = plain.sample(16, env=vec_normalize)
    for name in ("observations", "actions", "next_observations", "dones", "rewards"):
        assert_identical(getattr(new, name), getattr(old, name), name)


@pytest.mark.parametrize("observation_space", [OBS_SPACE, DICT_SPACE], ids=["box", "dict"])
def test_demonstration_buffers_pickle(observation_space):
    """save_replay_buffer / load_replay_buffer pickle the buffer: the class and the demonstrations come back."""
    demos = episodic_demos(dict_obs=isinstance(observation_space, spaces.Dict))
    buffer = DemoReplayBuffer(50, observation_space, ACTION_SPACE, device="cpu", demonstrations=demos, demo_ratio=0.5)
    loaded = pickle.loads(pickle.dumps(buffer))
    assert type(loaded) is type(buffer) and type(loaded.demo_buffer) is type(buffer.demo_buffer)
    assert loaded.n_demonstrations == len(demos)
    assert_same(from_replay_buffer(loaded.demo_buffer), from_replay_buffer(buffer.demo_buffer))
    assert loaded.sample(8).actions.shape == (8, 2)


def test_a_restored_buffer_samples_its_demonstrations_on_the_models_device(tmp_path):
    """load_replay_buffer gives the buffer it unpickled the model's device: the demonstrations inside follow it."""
    env = gym.make("Pendulum-v1")
    demos = collect_demonstrations(env, PendulumSwingUpExpert(env), n_steps=20, seed=0)
    model = SAC("MlpPolicy", env, buffer_size=100, policy_kwargs=dict(net_arch=[8]), device="cpu",
                replay_buffer_class=DemoReplayBuffer, replay_buffer_kwargs=dict(demonstrations=demos))  # fmt: skip
    model.replay_buffer.demo_buffer.device = th.device("meta")  # saved by a model on another device (meta stands in for cuda)
    model.save_replay_buffer(tmp_path / "buffer")
    model.load_replay_buffer(tmp_path / "buffer")
    assert model.replay_buffer.demo_buffer.device == th.device("cpu")
    assert model.replay_buffer.sample(8).actions.device == model.replay_buffer.sample_demonstrations(4).actions.device == th.device("cpu")


def test_demo_replay_buffer_batches_mix_online_and_demonstrations_by_demo_ratio():
    """round(demo_ratio * batch) demonstrations after the online ones; only demonstrations while nothing online is stored."""
    demos = episodic_demos()
    buffer = DemoReplayBuffer(50, OBS_SPACE, ACTION_SPACE, device="cpu", demonstrations=demos, demo_ratio=0.25)
    np.random.seed(0)
    empty = buffer.sample(32)
    np.random.seed(0)
    assert th.equal(empty.actions, buffer.demo_buffer.sample(32).actions)
    for step in range(20):  # online actions (stored as given, as SB3 stores them) at 0.5, none of the demonstrations'
        obs = np.full((1, 3), step, np.float32)
        buffer.add(obs, obs + 1, np.full((1, 2), 0.5, np.float32), np.zeros(1), np.zeros(1), [{}])
    np.random.seed(1)
    mixed = buffer.sample(32)
    np.random.seed(1)
    demo = buffer.demo_buffer.sample(8)  # the demonstrations are drawn first
    online = ReplayBuffer.sample(buffer, 24)
    assert th.equal(mixed.actions, th.cat([online.actions, demo.actions])) and th.equal(mixed.observations[:24], online.observations)
    assert th.all(mixed.actions[:24] == 0.5) and not th.any(th.all(mixed.actions[24:] == 0.5, dim=1))


@pytest.mark.parametrize("demo_ratio", [-0.1, 1.5])
def test_demo_replay_buffer_refuses_a_demo_ratio_outside_zero_to_one(demo_ratio):
    with pytest.raises(ValueError, match=rf"demo_ratio must be in \[0, 1\] .*got {demo_ratio}"):
        DemoReplayBuffer(50, OBS_SPACE, ACTION_SPACE, device="cpu", demonstrations=episodic_demos(), demo_ratio=demo_ratio)


def test_demo_replay_buffer_clips_out_of_bounds_demonstration_actions_only_when_asked():
    demos = episodic_demos()
    demos.actions[0] = ACTION_SPACE.high + 1.0  # above both bounds
    with pytest.raises(ValueError, match="demonstration action values lie outside the action space bounds"):
        DemoReplayBuffer(50, OBS_SPACE, ACTION_SPACE, device="cpu", demonstrations=demos)
    buffer = DemoReplayBuffer(50, OBS_SPACE, ACTION_SPACE, device="cpu", demonstrations=demos, clip_actions=True)
    stored = buffer.demo_buffer.actions[: buffer.n_demonstrations, 0]  # SB3's scaled actions, in [-1, 1]
    np.testing.assert_array_equal(stored[0], np.ones(2, dtype=np.float32))
    np.testing.assert_allclose(stored[1:], scaled_actions(demos.subset(slice(1, None)), ACTION_SPACE), rtol=1e-6)


def test_n_step_returns_stop_at_the_end_of_each_episode_for_demonstrations_and_online_data():
    """n_steps=3: rewards summed over up to 3 steps of the same episode, discounts gamma^k, the last step's next
    observation; a termination ends the return without bootstrapping, a truncation ends it and bootstraps."""
    demos = episodic_demos(n_episodes=2, length=4)  # episode 0 terminates at index 3, episode 1 is truncated at 7
    gamma = 0.5
    buffer = DemoReplayBuffer(50, OBS_SPACE, ACTION_SPACE, device="cpu", demonstrations=demos, demo_ratio=0.5, n_steps=3, gamma=gamma)
    r = demos.rewards
    batch = buffer.demo_buffer._get_samples(np.arange(8))
    expected = [r[0] + gamma * r[1] + gamma**2 * r[2], r[2] + gamma * r[3], r[3], r[6] + gamma * r[7]]
    np.testing.assert_allclose(batch.rewards[[0, 2, 3, 6], 0].numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(batch.discounts[[0, 2, 3, 6], 0].numpy(), [gamma**3, gamma**2, gamma, gamma**2])
    np.testing.assert_array_equal(batch.dones[[0, 2, 3, 6], 0].numpy(), [0, 1, 1, 0])  # the truncation bootstraps
    np.testing.assert_allclose(batch.next_observations[0].numpy(), demos.next_observations[2], rtol=1e-6)
    one_step = DemoReplayBuffer(50, OBS_SPACE, ACTION_SPACE, device="cpu", demonstrations=demos, demo_ratio=0.5)
    assert one_step.demo_buffer._get_samples(np.arange(8)).discounts is None
    for step in range(6):  # online: rewards 0..5, an episode ends at step 1; the latest transition ends the returns near it
        obs = np.full((1, 3), step, np.float32)
        buffer.add(obs, obs + 1, np.zeros((1, 2), np.float32), np.array([float(step)]), np.array([step == 1]), [{}])
    online = buffer._get_samples(np.array([0, 2, 4, 5]))
    np.testing.assert_allclose(online.rewards[:, 0].numpy(), [0 + 1 * gamma, 2 + 3 * gamma + 4 * gamma**2, 4 + 5 * gamma, 5])
    np.testing.assert_array_equal(online.dones[:, 0].numpy(), [1, 0, 0, 0])
    mixed = buffer.sample(8)
    assert mixed.discounts.shape == (8, 1) and mixed.rewards.shape == (8, 1)


@pytest.mark.parametrize("n_steps", [0, True, 2.0])
def test_n_step_demo_buffer_arguments_are_checked(n_steps):
    with pytest.raises(ValueError, match=rf"n_steps must be an integer >= 1 .*got {n_steps!r}"):
        DemoReplayBuffer(50, OBS_SPACE, ACTION_SPACE, device="cpu", demonstrations=episodic_demos(), n_steps=n_steps)
    with pytest.raises(ValueError, match="needs Box observations and optimize_memory_usage=False"):
        DemoReplayBuffer(50, DICT_SPACE, ACTION_SPACE, device="cpu", demonstrations=episodic_demos(dict_obs=True), n_steps=3)
    with pytest.raises(ValueError, match="needs Box observations and optimize_memory_usage=False"):
        DemoReplayBuffer(50, OBS_SPACE, ACTION_SPACE, device="cpu", demonstrations=episodic_demos(), n_steps=3, optimize_memory_usage=True)
    dict_buffer = DemoReplayBuffer(50, DICT_SPACE, ACTION_SPACE, device="cpu", demonstrations=episodic_demos(dict_obs=True))
    with pytest.raises(ValueError, match="needs Box observations"):
        dict_buffer.use_n_steps(3, 0.9)  # what SWFP calls when a loaded model's n_steps change
    assert dict_buffer.n_steps == dict_buffer.demo_buffer.n_steps == 1


def test_both_shares_of_a_batch_are_normalised_with_the_env_given():
    env = VecNormalize(DummyVecEnv([lambda: _SpaceEnv(OBS_SPACE)]), norm_reward=False, clip_obs=10.0)
    env.obs_rms.mean, env.obs_rms.var = np.full(3, 50.0), np.ones(3)  # every observation normalises to -10
    buffer = DemoReplayBuffer(50, OBS_SPACE, ACTION_SPACE, device="cpu", demonstrations=episodic_demos(), demo_ratio=0.5)
    for step in range(5):
        obs = np.full((1, 3), step, np.float32)
        buffer.add(obs, obs + 1, np.zeros((1, 2), np.float32), np.zeros(1), np.zeros(1), [{}])
    batch = buffer.sample(16, env=env)
    assert th.all(batch.observations == -10.0) and th.all(batch.next_observations == -10.0)


def test_a_buffer_loaded_without_its_demonstrations_refuses_to_sample(tmp_path):
    with defer_missing_demonstrations(), pytest.warns(UserWarning, match="the model is loaded without them"):
        buffer = DemoReplayBuffer(50, OBS_SPACE, ACTION_SPACE, device="cpu", demonstrations=str(tmp_path / "gone.npz"))
    obs = np.zeros((1, 3), np.float32)
    buffer.add(obs, obs, np.zeros((1, 2), np.float32), np.zeros(1), np.zeros(1), [{}])
    for sample in (lambda: buffer.sample(4), lambda: buffer.sample_demonstrations(4)):
        with pytest.raises(FileNotFoundError, match="loaded without its demonstrations"):
            sample()


def test_n_step_returns_do_not_run_across_the_joins_of_added_demonstrations():
    """add_to_replay_buffer into SB3's NStepReplayBuffer: the online episode running when the demonstrations are added
    ends there, and so does a last demonstration episode left running, before the online transitions added after it:
    no n-step return sums rewards of two episodes (r_k alone, discount gamma^1, at each join)."""
    from stable_baselines3.common.buffers import NStepReplayBuffer

    gamma = 0.5
    buffer = NStepReplayBuffer(50, OBS_SPACE, ACTION_SPACE, device="cpu", n_steps=3, gamma=gamma)

    def add_online(n):
        for _ in range(n):
            obs = np.full((1, 3), 100 + buffer.pos, np.float32)
            buffer.add(obs, obs + 1, np.zeros((1, 2), np.float32), np.array([100.0 + buffer.pos]), np.zeros(1), [{}])

    add_online(3)  # transitions 0..2, an episode still running
    demos = episodic_demos(n_episodes=1, length=4)
    demos.truncations[-1] = False  # the demonstrations' last episode left running (as from_replay_buffer gives one)
    add_to_replay_buffer(demos, buffer)  # transitions 3..6
    add_online(2)  # 7..8
    batch = buffer._get_samples(np.array([2, 6]))
    np.testing.assert_allclose(batch.rewards[:, 0].numpy(), [102.0, demos.rewards[-1]], rtol=1e-6)
    np.testing.assert_allclose(batch.discounts[:, 0].numpy(), [gamma, gamma])
    np.testing.assert_array_equal(batch.dones[:, 0].numpy(), [0, 0])  # truncations: they bootstrap
    np.testing.assert_array_equal(batch.next_observations.numpy(), [buffer.next_observations[2, 0], demos.next_observations[-1]])
    inside = buffer._get_samples(np.array([3]))  # inside the demonstrations, returns still sum 3 steps
    np.testing.assert_allclose(inside.rewards.item(), demos.rewards[0] + gamma * demos.rewards[1] + gamma**2 * demos.rewards[2], rtol=1e-6)


def test_a_memory_optimised_buffer_ends_the_running_episode_where_added_demonstrations_overwrite_its_next_observation():
    """optimize_memory_usage keeps a transition's next observation in the next row, which add_to_replay_buffer
    overwrites: the online episode running there ends (done, as SB3 ends one at learn()'s reset), and does not
    bootstrap from the demonstrations' first observation.  Demonstrations that go on from it stay one episode."""
    buffer = ReplayBuffer(50, OBS_SPACE, ACTION_SPACE, device="cpu", optimize_memory_usage=True, handle_timeout_termination=False)
    for t in range(3):  # an online episode, still running
        obs = np.full((1, 3), float(t), np.float32)
        buffer.add(obs, obs + 1, np.zeros((1, 2), np.float32), np.zeros(1), np.zeros(1), [{}])
    add_to_replay_buffer(episodic_demos(n_episodes=1, length=4), buffer)
    assert buffer._get_samples(np.array([2])).dones.item() == 1.0
    demos = episodic_demos(n_episodes=1, length=8)  # continuous episode split across two adds: no join
    demos.truncations[-1] = False
    buffer = ReplayBuffer(50, OBS_SPACE, ACTION_SPACE, device="cpu", optimize_memory_usage=True, handle_timeout_termination=False)
    add_to_replay_buffer(demos.subset(slice(0, 4)), buffer)
    add_to_replay_buffer(demos.subset(slice(4, 8)), buffer)
    assert buffer.dones[:8, 0].tolist() == [0.0] * 8
