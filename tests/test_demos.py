"""Demonstrations: file format, validation, scaling, replay buffers, collection, Minari and imitation."""

import sys
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.policies import BasePolicy

from sb3_swfp.common.demos import (
    Demonstrations,
    add_to_replay_buffer,
    collect_demonstrations,
    from_imitation,
    from_minari,
    from_replay_buffer,
    load_demonstrations,
    make_replay_buffer,
    sample_batch,
    scaled_actions,
    to_minari,
    unscaled_actions,
    validate,
)
from sb3_swfp.experts import PendulumSwingUpExpert

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


# ----------------------------------------------------------------------------------------
# Container and file format


def test_episode_structure():
    demos = episodic_demos(n_episodes=3, length=5)
    assert len(demos) == 15
    assert demos.n_episodes == 3
    assert demos.episode_bounds() == [(0, 5), (5, 10), (10, 15)]
    np.testing.assert_allclose(demos.episode_returns(), demos.rewards.reshape(3, 5).sum(axis=1), rtol=1e-6)
    part = demos.subset(slice(0, 7))
    assert len(part) == 7 and part.n_episodes == 1 and part.episode_bounds() == [(0, 5), (5, 7)]
    joined = Demonstrations.concatenate([demos.subset(slice(0, 5)), demos.subset(slice(5, 15))])
    assert_same(joined, demos)


@pytest.mark.parametrize("dict_obs", [False, True])
@pytest.mark.parametrize("compressed", [False, True])
def test_save_load_round_trip(tmp_path, dict_obs, compressed):
    demos = episodic_demos(dict_obs=dict_obs)
    path = demos.save(tmp_path / "demos", compressed=compressed)
    assert path.name == "demos.npz" and path.is_file()
    loaded = load_demonstrations(path)
    assert_same(loaded, demos)
    assert loaded.actions.dtype == demos.actions.dtype
    assert loaded.metadata == demos.metadata
    assert_same(Demonstrations.load(path), demos)


def test_a_save_that_fails_midway_leaves_the_existing_file_intact(tmp_path, monkeypatch):
    path = episodic_demos(seed=0).save(tmp_path / "demos.npz")
    before = path.read_bytes()

    def killed_midway(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")  # what a kill during the write leaves
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        episodic_demos(seed=1).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["demos.npz"]  # no temporary file left behind
    monkeypatch.undo()
    episodic_demos(seed=1).save(path)  # a save that completes replaces the file
    assert_same(load_demonstrations(path), episodic_demos(seed=1))


def test_load_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "demos.npz"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_demonstrations(missing)


def test_load_foreign_npz_names_missing_keys(tmp_path):
    path = tmp_path / "foreign.npz"
    np.savez(path, observations=np.zeros((3, 2)), acts=np.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"missing keys \['actions', 'rewards', 'terminations', 'truncations', 'next_obs"):
        load_demonstrations(path)


def test_load_non_npz_file(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("these are not arrays")
    with pytest.raises(ValueError, match="not a readable .npz"):
        load_demonstrations(path)


def test_construction_rejects_mismatched_lengths():
    demos = episodic_demos()
    with pytest.raises(ValueError, match=r"different lengths \(observations 15, next_observations 15, actions 14"):
        Demonstrations(
            demos.observations, demos.actions[:-1], demos.rewards, demos.next_observations,
            demos.terminations, demos.truncations,
        )


# ----------------------------------------------------------------------------------------
# Validation


def test_validate_returns_cast_copy():
    demos = episodic_demos()
    demos.observations = demos.observations.astype(np.float64)
    demos.terminations = demos.terminations.astype(np.int64)
    checked = validate(demos, OBS_SPACE, ACTION_SPACE)
    assert checked.observations.dtype == np.float32 and checked.terminations.dtype == np.bool_
    assert checked.rewards.dtype == np.float32
    checked.actions[:] = 0.0
    assert not np.all(demos.actions == 0.0)  # the caller's arrays are untouched


def test_validate_wrong_action_shape():
    demos = episodic_demos()
    demos.actions = np.zeros((15, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"actions have shape \(15, 3\), expected \(15, 2\)"):
        validate(demos, OBS_SPACE, ACTION_SPACE)


def test_validate_wrong_observation_shape():
    demos = episodic_demos()
    with pytest.raises(ValueError, match=r"observations have shape \(15, 3\), expected \(15, 5\)"):
        validate(demos, spaces.Box(-1, 1, shape=(5,)), ACTION_SPACE)


def test_validate_missing_and_extra_dict_keys():
    demos = episodic_demos(dict_obs=True)
    space = spaces.Dict({**DICT_SPACE.spaces, "achieved_goal": spaces.Box(-np.inf, np.inf, shape=(2,))})
    with pytest.raises(ValueError, match=r"missing keys \['achieved_goal'\]"):
        validate(demos, space, ACTION_SPACE)
    with pytest.raises(ValueError, match=r"keys \['desired_goal'\] that the Dict observation space does not have"):
        validate(demos, spaces.Dict({"observation": DICT_SPACE["observation"]}), ACTION_SPACE)
    with pytest.raises(ValueError, match="is a dict with keys"):
        validate(demos, OBS_SPACE, ACTION_SPACE)


def test_validate_reports_non_finite_values():
    demos = episodic_demos(dict_obs=True)
    demos.observations["observation"][3, 2] = np.nan
    demos.observations["observation"][7, 0] = np.inf
    message = r"observations\['observation'\] contain 2 non-finite .* transition 3, element \(2,\): nan"
    with pytest.raises(ValueError, match=message):
        validate(demos, DICT_SPACE, ACTION_SPACE)


def test_validate_actions_out_of_bounds_and_opt_in_clipping():
    demos = episodic_demos()
    demos.actions[4, 1] = 1.5  # dimension 1 lives in [0, 1]
    demos.actions[9, 0] = -3.0
    original = demos.actions.copy()
    message = r"2 demonstration action values .* transition 4, dimension \(1,\): 1.5 not in \[0, 1\]"
    with pytest.raises(ValueError, match=message):
        validate(demos, OBS_SPACE, ACTION_SPACE)
    clipped = validate(demos, OBS_SPACE, ACTION_SPACE, clip_actions=True)
    assert clipped.actions[4, 1] == 1.0 and clipped.actions[9, 0] == -2.0
    np.testing.assert_array_equal(demos.actions, original)


def test_validate_empty_and_bad_flags():
    demos = episodic_demos()
    with pytest.raises(ValueError, match="empty"):
        validate(demos.subset(slice(0, 0)), OBS_SPACE, ACTION_SPACE)
    demos.truncations = np.full(15, 2)
    with pytest.raises(ValueError, match="truncations must be booleans .* the first is 2 at transition 0"):
        validate(demos, OBS_SPACE, ACTION_SPACE)


def test_validate_rejects_non_box_action_space():
    with pytest.raises(TypeError, match="Box action space"):
        validate(episodic_demos(), OBS_SPACE, spaces.Discrete(3))


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


# ----------------------------------------------------------------------------------------
# Collection


def test_collect_episodes_from_callable():
    env = gym.make("Pendulum-v1")
    expert = PendulumSwingUpExpert(env)
    demos = collect_demonstrations(env, expert, n_episodes=2, seed=3)
    assert len(demos) == 400 and demos.n_episodes == 2
    np.testing.assert_array_equal(np.flatnonzero(demos.truncations), [199, 399])
    assert not demos.terminations.any()
    # inside an episode the next observation is the following observation
    np.testing.assert_array_equal(demos.next_observations[:199], demos.observations[1:200])
    assert demos.episode_returns().mean() > -400
    again = collect_demonstrations(env, expert, n_episodes=2, seed=3)
    assert_same(again, demos)
    validate(demos, env.observation_space, env.action_space)


def test_collect_with_noise_and_step_budget():
    env = gym.make("Pendulum-v1")
    expert = PendulumSwingUpExpert(env)
    clean = collect_demonstrations(env, expert, n_steps=50, seed=0)
    noisy = collect_demonstrations(env, expert, n_steps=50, action_noise_std=0.5, seed=0)
    assert len(noisy) == 50 and noisy.truncations[-1]  # the step budget cut the episode
    assert np.abs(noisy.actions - np.array([expert(o) for o in noisy.observations])).mean() > 0.1
    assert np.abs(clean.actions - np.array([expert(o) for o in clean.observations])).max() < 1e-6
    assert np.all(np.abs(noisy.actions) <= 2.0)
    with pytest.raises(ValueError, match="exactly one of n_episodes and n_steps"):
        collect_demonstrations(env, expert, n_episodes=1, n_steps=5)


def test_collect_from_sb3_model():
    model = SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[8]), seed=0, device="cpu")
    demos = collect_demonstrations("Pendulum-v1", model, n_steps=20, seed=0)
    expected, _ = model.predict(demos.observations, deterministic=True)
    np.testing.assert_allclose(demos.actions, expected, atol=1e-5)
    assert demos.metadata["policy"] == "SAC" and demos.metadata["env_id"] == "Pendulum-v1"


# ----------------------------------------------------------------------------------------
# Minari


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    pytest.importorskip("minari")
    pytest.importorskip("h5py")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("dict_obs", [False, True])
def test_minari_round_trip(minari_root, dict_obs):
    demos = validate(episodic_demos(dict_obs=dict_obs), DICT_SPACE if dict_obs else OBS_SPACE, ACTION_SPACE)
    space = DICT_SPACE if dict_obs else OBS_SPACE
    dataset = to_minari(demos, "swfptest/toy/demo-v0", observation_space=space, action_space=ACTION_SPACE)
    assert dataset.total_episodes == 3 and dataset.total_steps == 15
    by_id = from_minari("swfptest/toy/demo-v0")
    assert_same(by_id, demos)
    assert by_id.metadata["dataset_id"] == "swfptest/toy/demo-v0"
    assert_same(from_minari(minari_root / "swfptest" / "toy" / "demo-v0"), demos)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_minari_from_collected_env_data(minari_root):
    env = gym.make("Pendulum-v1", max_episode_steps=20)
    demos = collect_demonstrations(env, PendulumSwingUpExpert(env), n_episodes=2, seed=0)
    to_minari(demos, "swfptest/pendulum/expert-v0", env=env)
    loaded = from_minari("swfptest/pendulum/expert-v0")
    assert_same(loaded, demos)
    assert loaded.metadata["env_id"] == "Pendulum-v1"


def test_minari_errors(minari_root):
    with pytest.raises(FileNotFoundError, match="no local Minari dataset 'swfptest/absent-v0'"):
        from_minari("swfptest/absent-v0")
    shuffled = episodic_demos().subset([1, 0, 2, 3, 4])
    with pytest.raises(ValueError, match="transition 0 is not followed by its successor"):
        to_minari(shuffled, "swfptest/shuffled-v0", observation_space=OBS_SPACE, action_space=ACTION_SPACE)


def test_to_minari_refuses_demonstrations_that_do_not_fit_the_env(minari_root):
    env = gym.make("Pendulum-v1", max_episode_steps=20)
    demos = collect_demonstrations(env, PendulumSwingUpExpert(env), n_episodes=1, seed=0)
    wider = Demonstrations(
        observations=np.concatenate([demos.observations, np.zeros((len(demos), 1), np.float32)], axis=1),
        actions=demos.actions,
        rewards=demos.rewards,
        next_observations=np.concatenate([demos.next_observations, np.zeros((len(demos), 1), np.float32)], axis=1),
        terminations=demos.terminations,
        truncations=demos.truncations,
    )
    with pytest.raises(ValueError, match=r"observations have shape \(20, 4\), expected \(20, 3\)"):
        to_minari(wider, "swfptest/pendulum/wider-v0", env=env)
    with pytest.raises(ValueError, match=r"observations have shape \(20, 4\), expected \(20, 3\)"):
        to_minari(wider, "swfptest/pendulum/wider-v0", env="Pendulum-v1")
    assert not (minari_root / "swfptest").exists()  # nothing written


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_every_demonstration_source_is_read_wherever_demonstrations_are_taken(minari_root, tmp_path):
    from sb3_swfp import SWFP, BCPretrainCallback, DemoReplayBuffer
    from sb3_swfp.common.buffers import as_demonstrations

    env = gym.make("Pendulum-v1", max_episode_steps=20)
    demos = collect_demonstrations(env, PendulumSwingUpExpert(env), n_episodes=2, seed=0)
    dataset = to_minari(demos, "swfptest/pendulum/sources-v0", env=env)
    sources = {
        "path": demos.save(tmp_path / "demos.npz"),
        "path string": str(tmp_path / "demos.npz"),
        "minari id": "minari:swfptest/pendulum/sources-v0",
        "minari folder": minari_root / "swfptest" / "pendulum" / "sources-v0",
        "minari dataset": dataset,
        "SB3 replay buffer": make_replay_buffer(demos, env.observation_space, env.action_space),
    }
    for name, source in sources.items():
        loaded = as_demonstrations(source)
        assert_same(loaded, demos), name
    assert len(as_demonstrations(_trajectories())) == 7  # imitation trajectories
    with pytest.raises(TypeError, match="cannot read demonstrations from a dict; expected .*'minari:<dataset id>'"):
        as_demonstrations({"observations": []})

    # The places that take demonstrations go through it
    model = SWFP("FlowPolicy", "Pendulum-v1", learning_starts=1_000, batch_size=16, n_blocks=2, policy_kwargs=dict(net_arch=[16]))
    model.pretrain(sources["SB3 replay buffer"], gradient_steps=2, batch_size=8)
    buffer = DemoReplayBuffer(100, env.observation_space, env.action_space, demonstrations="minari:swfptest/pendulum/sources-v0")
    assert buffer.n_demonstrations == len(demos)
    fresh = SWFP("FlowPolicy", "Pendulum-v1", learning_starts=1_000, batch_size=16, n_blocks=2, policy_kwargs=dict(net_arch=[16]))
    fresh.learn(2, callback=BCPretrainCallback("minari:swfptest/pendulum/sources-v0", gradient_steps=2, batch_size=8))
    assert fresh.n_bc_updates == 2


def test_missing_minari_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "minari", None)  # makes ``import minari`` raise ImportError
    with pytest.raises(ImportError, match="pip install"):
        from_minari("anything-v0")


# ----------------------------------------------------------------------------------------
# imitation (duck-typed: stand-ins with the attributes of imitation's data types)


class _DictObsStandIn:
    """Like imitation's ``DictObs``: ``unwrap()`` gives the dict of arrays."""

    def __init__(self, d):
        self._d = d

    def unwrap(self):
        return dict(self._d)

    def items(self):
        return self._d.items()


def _trajectories(dict_obs: bool = False, with_rewards: bool = True):
    rng = np.random.default_rng(0)
    trajectories = []
    for i, length in enumerate([4, 3]):
        obs = rng.normal(size=(length + 1, 3))
        if dict_obs:
            obs = _DictObsStandIn({"observation": obs, "desired_goal": rng.normal(size=(length + 1, 2))})
        rews = rng.normal(size=length) if with_rewards else None
        acts = rng.normal(size=(length, 2))
        trajectories.append(SimpleNamespace(obs=obs, acts=acts, infos=None, terminal=i == 0, rews=rews))
    return trajectories


def test_from_imitation_trajectories():
    trajectories = _trajectories()
    demos = from_imitation(trajectories)
    assert len(demos) == 7
    np.testing.assert_array_equal(demos.terminations, [0, 0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(demos.truncations, [0, 0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(demos.observations[4:], trajectories[1].obs[:-1])
    np.testing.assert_array_equal(demos.next_observations[4:], trajectories[1].obs[1:])
    np.testing.assert_allclose(demos.rewards[:4], trajectories[0].rews, rtol=1e-6)
    assert demos.metadata["has_rewards"]
    unrewarded = from_imitation(_trajectories(with_rewards=False))
    assert not unrewarded.metadata["has_rewards"] and not unrewarded.rewards.any()


def test_from_imitation_dict_obs_and_transitions_agree():
    trajectories = _trajectories(dict_obs=True)
    demos = from_imitation(trajectories)
    assert demos.is_dict_obs and demos.observations["desired_goal"].shape == (7, 2)
    # imitation's flatten_trajectories: obs[:-1] / obs[1:], dones only on terminal ends
    def cat(name, part):
        return {k: np.concatenate([t.obs.unwrap()[k][part] for t in trajectories]) for k in ("observation", "desired_goal")}
    transitions = SimpleNamespace(
        obs=_DictObsStandIn(cat("obs", slice(0, -1))),
        acts=np.concatenate([t.acts for t in trajectories]),
        next_obs=_DictObsStandIn(cat("next_obs", slice(1, None))),
        dones=np.array([0, 0, 0, 1, 0, 0, 0], dtype=bool),
        infos=np.array([{}] * 7),
        rews=np.concatenate([t.rews for t in trajectories]),
    )
    assert_same(from_imitation(transitions), demos)


def test_from_imitation_real_types():
    types = pytest.importorskip("imitation.data.types")
    rollout = pytest.importorskip("imitation.data.rollout")
    rng = np.random.default_rng(0)
    trajectories = [
        types.TrajectoryWithRew(
            obs=rng.normal(size=(5, 3)), acts=rng.normal(size=(4, 2)), infos=None, terminal=terminal, rews=rng.normal(size=4)
        )
        for terminal in (True, False)
    ]
    assert_same(from_imitation(rollout.flatten_trajectories_with_rew(trajectories)), from_imitation(trajectories))


def test_from_imitation_errors():
    with pytest.raises(ValueError, match="no trajectories"):
        from_imitation([])
    with pytest.raises(ValueError, match="neither next_obs/dones"):
        from_imitation(SimpleNamespace(obs=np.zeros((2, 1)), acts=np.zeros((2, 1)), infos=None))
    bad = SimpleNamespace(obs=np.zeros((3, 1)), acts=np.zeros((3, 1)), infos=None, terminal=True, rews=None)
    with pytest.raises(ValueError, match="trajectory 0 has 3 observations and 3 actions"):
        from_imitation([bad])


def test_shipped_demonstrations_load_and_fit_their_env():
    from sb3_swfp.data import demo_path, shipped_demonstrations

    with pytest.raises(FileNotFoundError, match="no shipped demonstrations named 'Nope-v0'; shipped: "):
        demo_path("Nope-v0")
    for name in shipped_demonstrations():
        demos = load_demonstrations(demo_path(name))
        env = gym.make(name)
        validate(demos, env.observation_space, env.action_space)
        assert len(demos.episode_returns()) >= 5
