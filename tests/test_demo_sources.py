"""Sources of demonstrations: collection, Minari, imitation, the dispatch that reads any of them, shipped files."""

import os
import subprocess
import sys
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import SAC

from sb3_swfp.demos import (
    Demonstrations,
    as_demonstrations,
    collect_demonstrations,
    from_imitation,
    from_minari,
    load_demonstrations,
    make_replay_buffer,
    to_minari,
    validate,
)
from sb3_swfp.experts import PendulumSwingUpExpert

from helpers import ACTION_SPACE, DICT_SPACE, OBS_SPACE, assert_same, episodic_demos

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


def test_collect_records_the_observation_before_an_env_updates_it_in_place():
    class InPlace(gym.Env):
        """Returns its own state array and changes it in place at every step."""

        observation_space = gym.spaces.Box(-10, 10, (1,), np.float32)
        action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

        def reset(self, seed=None, options=None):
            self.state = np.zeros(1, np.float32)
            return self.state, {}

        def step(self, action):
            self.state += 1
            return self.state, 0.0, False, bool(self.state[0] >= 3), {}

    demos = collect_demonstrations(InPlace(), lambda obs: np.zeros(1), n_episodes=1)
    assert demos.observations[:, 0].tolist() == [0, 1, 2] and demos.next_observations[:, 0].tolist() == [1, 2, 3]


def test_collect_takes_a_callable_that_returns_a_torch_tensor():
    import torch as th

    demos = collect_demonstrations("Pendulum-v1", lambda obs: th.full((1,), 0.5, requires_grad=True), n_steps=5, seed=0)
    assert demos.actions.tolist() == [[0.5]] * 5  # a tensor with a graph (or on a GPU) is read through the host


def test_a_path_that_looks_like_a_minari_id_suggests_the_prefix():
    with pytest.raises(FileNotFoundError, match=r"if it is a Minari dataset id, write 'minari:mujoco/hopper/expert-v0'"):
        as_demonstrations("mujoco/hopper/expert-v0")
    with pytest.raises(FileNotFoundError) as info:
        as_demonstrations("no_such_file.npz")
    assert "minari" not in str(info.value)


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
    # a budget that is not a whole number would never be reached: the recording ran until memory ran out
    with pytest.raises(ValueError, match=r"n_steps must be a whole number >= 1, got 10.5"):
        collect_demonstrations(env, expert, n_steps=10.5)
    with pytest.raises(ValueError, match=r"n_episodes must be a whole number >= 1, got 1.5"):
        collect_demonstrations(env, expert, n_episodes=1.5)
    assert len(collect_demonstrations(env, expert, n_steps=5.0, seed=0)) == 5  # a whole float, as 1e4 is written


def test_collect_from_a_point_maze_id():
    """gym.make alone does not know PointMaze ids: gymnasium-robotics registers them when imported."""
    pytest.importorskip("gymnasium_robotics")
    demos = collect_demonstrations("PointMaze_UMaze-v3", lambda obs: np.zeros(2), n_steps=3, seed=0)
    assert len(demos) == 3 and demos.metadata["env_id"] == "PointMaze_UMaze-v3"


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


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_minari_episode_stored_unfinished_ends_where_it_stops(minari_root):
    minari = pytest.importorskip("minari")
    from minari.data_collector import EpisodeBuffer

    unflagged = [
        EpisodeBuffer(
            id=i, observations=np.arange(15, dtype=np.float32).reshape(5, 3) + 100 * i, actions=np.zeros((4, 2), np.float32),
            rewards=np.ones(4), terminations=np.zeros(4, bool), truncations=np.zeros(4, bool), infos={},
        )  # fmt: skip
        for i in range(2)
    ]
    minari.create_dataset_from_buffers("swfptest/unflagged-v0", buffer=unflagged, observation_space=OBS_SPACE, action_space=ACTION_SPACE)
    demos = from_minari("swfptest/unflagged-v0")
    assert demos.n_episodes == 2 and demos.episode_bounds() == [(0, 4), (4, 8)]  # not one episode of 8 steps
    np.testing.assert_array_equal(np.flatnonzero(demos.truncations), [3, 7])
    assert not demos.terminations.any()


def test_minari_errors(minari_root):
    with pytest.raises(FileNotFoundError, match="no local Minari dataset 'swfptest/absent-v0'"):
        from_minari("swfptest/absent-v0")
    shuffled = episodic_demos().subset([1, 0, 2, 3, 4])
    with pytest.raises(ValueError, match="transition 0 is not followed by its successor"):
        to_minari(shuffled, "swfptest/shuffled-v0", observation_space=OBS_SPACE, action_space=ACTION_SPACE)


def test_a_dataset_id_is_checked_before_anything_is_written(minari_root):
    """Minari read "mydata" with a TypeError after creating its folder, which then broke every listing."""
    from sb3_swfp.demos import check_new_dataset_id

    demos = episodic_demos()
    with pytest.raises(ValueError, match=r"'mydata' is not a Minari dataset id: expected \(namespace/\)name-v<version>"):
        to_minari(demos, "mydata", observation_space=OBS_SPACE, action_space=ACTION_SPACE)
    assert not minari_root.exists() or not any(minari_root.iterdir())
    check_new_dataset_id("swfptest/kept-v0")  # free: nothing raised
    to_minari(demos, "swfptest/kept-v0", observation_space=OBS_SPACE, action_space=ACTION_SPACE)
    with pytest.raises(ValueError, match=r"a local Minari dataset 'swfptest/kept-v0' exists"):
        check_new_dataset_id("swfptest/kept-v0")
    (minari_root / "broken" / "data").mkdir(parents=True)  # what a failed write of Minari's leaves
    with pytest.raises(ValueError, match=r"Minari cannot list the local datasets under .*: a folder there is not a dataset"):
        check_new_dataset_id("swfptest/other-v0")


def test_to_minari_makes_a_point_maze_id_it_is_given(minari_root, tmp_path):
    """In a fresh process gym.make alone does not know PointMaze ids (gymnasium-robotics registers them when imported)."""
    pytest.importorskip("gymnasium_robotics")
    collect_demonstrations("PointMaze_UMaze-v3", lambda obs: np.zeros(2), n_steps=3, seed=0).save(tmp_path / "umaze.npz")
    code = (
        "from sb3_swfp.demos import load_demonstrations, to_minari; "
        f"to_minari(load_demonstrations({str(tmp_path / 'umaze.npz')!r}), 'swfptest/umaze-v0', env='PointMaze_UMaze-v3')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "MINARI_DATASETS_PATH": str(minari_root)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(from_minari("swfptest/umaze-v0")) == 3


def test_new_demonstrations_files_are_checked_before_recording(tmp_path):
    from sb3_swfp.demos import check_new_demonstrations_file

    assert check_new_demonstrations_file(tmp_path / "new" / "demos") == tmp_path / "new" / "demos.npz"  # save makes the folder
    (tmp_path / "kept.npz").write_text("mine")
    with pytest.raises(FileExistsError, match="kept.npz exists"):
        check_new_demonstrations_file(tmp_path / "kept")
    assert check_new_demonstrations_file(tmp_path / "kept", overwrite=True) == tmp_path / "kept.npz"
    with pytest.raises(ValueError, match=r"kept.npz is a file, expected a folder"):
        check_new_demonstrations_file(tmp_path / "kept.npz" / "inner.npz", overwrite=True)
    (tmp_path / "folder.npz").mkdir()
    with pytest.raises(ValueError, match=r"folder.npz is a folder, expected a file"):
        check_new_demonstrations_file(tmp_path / "folder.npz", overwrite=True)


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
    from sb3_swfp.demos import as_demonstrations

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
        try:
            assert_same(loaded, demos)
        except AssertionError as error:
            raise AssertionError(f"from a {name}: {error}") from error
    assert len(as_demonstrations(_trajectories())) == 7  # imitation trajectories
    with pytest.raises(TypeError, match="cannot read demonstrations from a dict; expected .*'minari:<dataset id>'"):
        as_demonstrations({"observations": []})

    # The places that take demonstrations go through it
    model = SWFP("FlowPolicy", "Pendulum-v1", learning_starts=1_000, batch_size=16, n_blocks=2, policy_kwargs=dict(net_arch=[16]))
    model.pretrain(sources["SB3 replay buffer"], gradient_steps=2, batch_size=8)
    buffer = DemoReplayBuffer(100, env.observation_space, env.action_space, demonstrations="minari:swfptest/pendulum/sources-v0")
    assert buffer.n_demonstrations == len(demos)
    # A DemoReplayBuffer holds two sets: taking one of them silently would lose the other
    with pytest.raises(ValueError, match=r"keeps its demonstrations apart .* from_replay_buffer\(buffer.demo_buffer\)"):
        as_demonstrations(buffer)
    assert_same(as_demonstrations(buffer.demo_buffer), demos)  # what the message proposes
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
    mixed = [_trajectories()[0], _trajectories(with_rewards=False)[1]]
    with pytest.warns(UserWarning, match=r"1 of 2 trajectories have no rewards \(rews is None\): every reward is stored as 0"):
        partly = from_imitation(mixed)
    assert not partly.metadata["has_rewards"] and not partly.rewards.any()


@pytest.mark.parametrize("dict_obs", [True, False], ids=["dict", "box"])
def test_from_imitation_trajectories_and_transitions_agree(dict_obs):
    trajectories = _trajectories(dict_obs=dict_obs)
    demos = from_imitation(trajectories)
    assert demos.is_dict_obs == dict_obs
    if dict_obs:
        assert demos.observations["desired_goal"].shape == (7, 2)

    # imitation's flatten_trajectories: obs[:-1] / obs[1:], dones only on terminal ends
    def cat(part):
        if not dict_obs:
            return np.concatenate([t.obs[part] for t in trajectories])
        return _DictObsStandIn({k: np.concatenate([t.obs.unwrap()[k][part] for t in trajectories]) for k in ("observation", "desired_goal")})

    transitions = SimpleNamespace(
        obs=cat(slice(0, -1)),
        acts=np.concatenate([t.acts for t in trajectories]),
        next_obs=cat(slice(1, None)),
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
