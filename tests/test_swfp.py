"""SWFP behaves like an SB3 algorithm: learn, predict, save/load, envs, callbacks, logging, errors."""

import os
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.callbacks import CheckpointCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import IdentityEnvBox, SimpleMultiObsEnv
from stable_baselines3.common.logger import configure
from stable_baselines3.common.torch_layers import CombinedExtractor
from stable_baselines3.common.vec_env import VecNormalize

from sb3_swfp import SWFP, FlowPolicy
from sb3_swfp.common.fast_flow import TangentFlowSolver
from sb3_swfp.common.flow import FlowSolver
from sb3_swfp.common.losses import NonFiniteLossError
from sb3_swfp.swfp import swfp as swfp_module

from helpers import TINY

SOLVERS = [FlowSolver, TangentFlowSolver]


TORCH_BEFORE_2_4 = tuple(int(part) for part in th.__version__.split("+")[0].split(".")[:2]) < (2, 4)


def tiny(env="Pendulum-v1", **kwargs):
    return SWFP("FlowPolicy", env, **{**TINY, **kwargs})


def pendulum_obs(n=None):
    env = gym.make("Pendulum-v1")
    if n is None:
        return env.reset(seed=0)[0]
    return np.stack([env.reset(seed=i)[0] for i in range(n)])


def test_learn_and_predict_single_and_batch():
    model = tiny(seed=0).learn(150)
    action, state = model.predict(pendulum_obs(), deterministic=True)
    assert action.shape == (1,) and state is None
    actions, _ = model.predict(pendulum_obs(5), deterministic=False)
    assert actions.shape == (5, 1)
    assert np.all(actions >= -2.0) and np.all(actions <= 2.0)  # Pendulum bounds


def test_training_moves_actor_and_target_follows():
    model = tiny(seed=0, actor_tau=0.5, policy_delay=1)
    before = [p.clone() for p in model.actor.parameters()]
    model.learn(100)
    assert any(not th.equal(a, b) for a, b in zip(before, model.actor.parameters()))
    # behaviour and predict use the target actor, which lags behind the actor
    obs = th.as_tensor(pendulum_obs(4))
    with th.no_grad():
        behaviour = model.policy(obs, deterministic=True)
        assert th.equal(behaviour, model.actor_target(obs, deterministic=True))
        assert not th.allclose(behaviour, model.actor(obs, deterministic=True))
    # one update: the target moves actor_tau of the way to the updated actor (Alg. 1, line 15)
    target_old = [p.clone() for p in model.actor_target.parameters()]
    model.train(gradient_steps=1, batch_size=32)
    for old, new, actor in zip(target_old, model.actor_target.parameters(), model.actor.parameters()):
        assert th.allclose(new, 0.5 * old + 0.5 * actor, atol=1e-6)
    assert any(not th.equal(old, new) for old, new in zip(target_old, model.actor_target.parameters()))


def test_deterministic_prediction_is_repeatable_and_stochastic_is_not():
    model = tiny(seed=1).learn(60)
    obs = pendulum_obs()
    a1, _ = model.predict(obs, deterministic=True)
    a2, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(a1, a2)
    samples = np.array([model.predict(obs)[0] for _ in range(20)])
    assert samples.std() > 1e-3


def test_save_load_identical_actions_and_training_continues(tmp_path):
    model = tiny(seed=0).learn(120)
    obs = pendulum_obs(3)
    expected, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "model")
    model.save_replay_buffer(tmp_path / "buffer")
    loaded = SWFP.load(tmp_path / "model", env=make_vec_env("Pendulum-v1", n_envs=1))
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], expected)
    assert loaded.n_blocks == 3 and loaded.policy.actor.n_blocks == 3
    for key, value in model.actor.optimizer.state_dict()["state"].items():
        assert th.equal(value["exp_avg"], loaded.actor.optimizer.state_dict()["state"][key]["exp_avg"])
    loaded.load_replay_buffer(tmp_path / "buffer")
    assert loaded.replay_buffer.size() == model.replay_buffer.size() == 120
    n_updates = loaded._n_updates
    loaded.learn(60, reset_num_timesteps=False)
    assert loaded._n_updates == n_updates + 60 and loaded.num_timesteps == 180


def test_save_load_with_fixed_ent_coef_and_independent_blocks(tmp_path):
    model = tiny(seed=0, ent_coef=0.1, policy_kwargs=dict(net_arch=[16], share_velocity=False)).learn(80)
    assert len(model.actor.velocities) == 3
    model.save(tmp_path / "m")
    loaded = SWFP.load(tmp_path / "m")
    obs = pendulum_obs(2)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    assert loaded.ent_coef_tensor.item() == pytest.approx(0.1)


def test_set_env_and_multiple_envs_with_all_gradient_steps():
    model = tiny(seed=0, env=make_vec_env("Pendulum-v1", n_envs=2), gradient_steps=-1, train_freq=2)
    model.learn(200)
    # 2 envs x train_freq 2 = 4 transitions per rollout; -1 gradient steps = 4 updates per rollout,
    # for the rollouts ending at 52, 56, ..., 200 timesteps (after learning_starts=50): 38 rollouts
    assert model.num_timesteps == 200
    assert model._n_updates == 38 * 4
    new_env = make_vec_env("Pendulum-v1", n_envs=2)
    model.set_env(new_env)
    model.learn(40, reset_num_timesteps=False)
    assert model.get_env() is new_env and model._n_updates == (38 + 10) * 4


def test_gradient_steps_all_counts_updates_exactly():
    model = tiny(seed=0, env=make_vec_env("Pendulum-v1", n_envs=2), gradient_steps=-1, train_freq=1, learning_starts=10)
    model.learn(40)
    # each rollout: 2 envs x 1 step -> 2 gradient steps, for every rollout after learning_starts
    rollouts_training = sum(1 for t in range(2, 41, 2) if t > 10)
    assert model._n_updates == 2 * rollouts_training


def test_train_freq_in_episodes():
    env = IdentityEnvBox(ep_length=10)
    model = tiny(env=env, seed=0, train_freq=(2, "episode"), gradient_steps=3, learning_starts=0)
    model.learn(60)
    # 60 steps = 6 episodes = 3 rollouts of 2 episodes, 3 gradient steps each
    assert model._n_updates == 9


def test_vec_normalize(tmp_path):
    """The buffer keeps raw observations, the updates see them normalised; the statistics and the policy reload."""
    env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=1), norm_reward=True)
    model = tiny(env=env, seed=0)
    actor_update, seen = model._actor_update, []

    def spy(observations, ent_coef):
        # every observation of the actor's batch is a stored one normalised with the statistics of the moment
        normalised = th.as_tensor(env.normalize_obs(model.replay_buffer.observations[: model.replay_buffer.size(), 0]))
        distances = th.cdist(observations, normalised, compute_mode="donot_use_mm_for_euclid_dist")
        seen.append(distances.min(dim=1).values.max().item())
        return actor_update(observations, ent_coef)

    model._actor_update = spy
    model.learn(100)
    assert len(seen) == 25 and max(seen) < 1e-5
    assert env.obs_rms.count > 100
    model.save(tmp_path / "m")
    env.save(str(tmp_path / "vn.pkl"))
    loaded_env = VecNormalize.load(str(tmp_path / "vn.pkl"), make_vec_env("Pendulum-v1", n_envs=1))
    loaded = SWFP.load(tmp_path / "m", env=loaded_env)
    assert loaded.get_vec_normalize_env() is loaded_env
    np.testing.assert_array_equal(loaded_env.obs_rms.mean, env.obs_rms.mean)
    obs = env.normalize_obs(pendulum_obs(3))
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])


def test_eval_and_checkpoint_callbacks(tmp_path):
    eval_cb = EvalCallback(gym.make("Pendulum-v1"), eval_freq=50, n_eval_episodes=1, log_path=str(tmp_path), best_model_save_path=str(tmp_path))
    ckpt_cb = CheckpointCallback(save_freq=60, save_path=str(tmp_path / "ckpt"), name_prefix="swfp")
    tiny(seed=0).learn(120, callback=[eval_cb, ckpt_cb])
    assert np.load(tmp_path / "evaluations.npz")["results"].shape == (2, 1)
    assert (tmp_path / "best_model.zip").exists()
    assert sorted(os.listdir(tmp_path / "ckpt")) == ["swfp_120_steps.zip", "swfp_60_steps.zip"]


def test_tensorboard_run_naming_and_every_loss_term_logged(tmp_path):
    model = tiny(seed=0, tensorboard_log=str(tmp_path), verbose=0)
    model.learn(80)
    model.learn(40, reset_num_timesteps=False)
    assert sorted(os.listdir(tmp_path)) == ["SWFP_1"]
    model.learn(40, tb_log_name="again")
    assert "again_1" in os.listdir(tmp_path)
    # every term of the losses is a separate scalar
    csv_model = tiny(env=IdentityEnvBox(ep_length=20), seed=0)
    csv_model.set_logger(configure(str(tmp_path / "csv"), ["csv"]))
    csv_model.learn(120, log_interval=1)
    header = (tmp_path / "csv" / "progress.csv").read_text().splitlines()[0].split(",")
    for key in ["critic_loss", "actor_loss", "actor_q_term", "actor_log_det", "w2_prev", "w2_old", "ent_coef", "ent_coef_loss", "entropy"]:
        assert f"train/{key}" in header


def test_identical_seeds_give_identical_results():
    def run():
        model = tiny(seed=123).learn(100)
        return model.predict(pendulum_obs(3), deterministic=True)[0], [p.detach().clone() for p in model.critic.parameters()]

    (a1, c1), (a2, c2) = run(), run()
    np.testing.assert_array_equal(a1, a2)
    assert all(th.equal(x, y) for x, y in zip(c1, c2))


def test_non_unit_action_bounds():
    env = IdentityEnvBox(-10, 10, ep_length=20)
    model = tiny(env=env, seed=0, learning_starts=20).learn(60)
    actions = np.array([model.predict(np.array([v], dtype=np.float32))[0] for v in np.linspace(-9, 9, 50)])
    assert np.all(np.abs(actions) <= 10.0)
    assert np.abs(actions).max() > 1.0  # actions are unscaled to [-10, 10], not left in [-1, 1]
    stored = model.replay_buffer.actions[: model.replay_buffer.size()]
    assert np.all(np.abs(stored) <= 1.0)  # the buffer keeps SB3's scaled actions


class _StrictBoxEnv(gym.Env):
    """Refuses any action outside its Box, as ``Box.contains`` decides (bounds whose float32 unscaling rounds up)."""

    observation_space = spaces.Box(-1, 1, (3,), np.float32)
    action_space = spaces.Box(np.float32(-0.4), np.float32(0.7), (2,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        assert self.action_space.contains(action), f"{action!r} outside {self.action_space}"
        return self.observation_space.sample(), 0.0, False, False, {}


def test_actions_on_the_bound_stay_inside_the_box():
    env = _StrictBoxEnv()
    model = tiny(env=env, seed=0, learning_starts=0)
    obs = np.stack([env.observation_space.sample() for _ in range(500)])
    actions, _ = model.predict(obs)  # about 10% of them saturate the soft clip at exactly +1
    assert actions.max() == env.action_space.high[0]
    assert all(env.action_space.contains(action) for action in actions)
    model.learn(40)  # the env's own check, on every behaviour action
    assert np.all(np.abs(model.replay_buffer.actions[: model.replay_buffer.size()]) <= 1.0)


def test_dict_observations(tmp_path):
    env = SimpleMultiObsEnv(random_start=False, discrete_actions=False)
    model = SWFP("MultiInputPolicy", env, **{**TINY, "seed": 0}).learn(80)
    assert isinstance(model.actor.features_extractor, CombinedExtractor)
    obs, _ = env.reset()
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == env.action_space.shape
    # each key reaches the policy, and the saved model acts the same
    for changed in ({**obs, "vec": obs["vec"] + 1.0}, {**obs, "img": 255 - obs["img"]}):
        assert not np.array_equal(model.predict(changed, deterministic=True)[0], action)
    model.save(tmp_path / "dict")
    np.testing.assert_array_equal(SWFP.load(tmp_path / "dict").predict(obs, deterministic=True)[0], action)


def test_flow_policy_on_dict_observations_is_refused_with_what_to_use_and_a_dict_extractor_is_taken():
    env = SimpleMultiObsEnv(random_start=False, discrete_actions=False)
    with pytest.raises(ValueError, match="FlowPolicy with FlattenExtractor takes Box observations.*use MultiInputPolicy"):
        SWFP("FlowPolicy", env, **TINY)  # FlattenExtractor: accepted before, then failed on the first observation
    model = SWFP("FlowPolicy", env, **{**TINY, "policy_kwargs": dict(features_extractor_class=CombinedExtractor)}).learn(20)
    assert isinstance(model.actor.features_extractor, CombinedExtractor)


def _euler_steps_differ_from_the_midpoint(model):
    assert model.actor.solver.ode_solver == model.actor_target.solver.ode_solver == "euler"
    midpoint = tiny(seed=0).actor  # the default solver, given this model's weights
    midpoint.load_state_dict(model.actor.state_dict())
    features = th.zeros(1, 3)
    with th.no_grad():
        euler_x = model.actor.sample_from_features(features, deterministic=True)[0]
        assert not th.allclose(euler_x, midpoint.sample_from_features(features, deterministic=True)[0])


def _one_block_per_actor_update(model):
    """per_batch: every sample of an actor batch goes through the same block, so only its velocity net learns."""
    assert len(model.actor.velocities) == model.n_blocks  # share_velocity=False: one net per block
    assert isinstance(model.critic.qf0[1], th.nn.LayerNorm)
    model.actor.optimizer.zero_grad()
    observations = th.as_tensor(pendulum_obs(16))
    logs = model._actor_update(observations, th.tensor(0.1))
    assert np.isfinite(logs["actor_loss"])
    moved = [any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters()) for net in model.actor.velocities]
    assert sum(moved) == 1


OPTIONS = {
    "euler": (dict(ode_solver="euler"), _euler_steps_differ_from_the_midpoint),
    "hutchinson": (
        dict(log_prob_method="hutchinson"),
        lambda model: model.actor.log_prob_method == model.actor_target.log_prob_method == "hutchinson",
    ),
    "network": (
        dict(policy_kwargs=dict(net_arch=dict(pi=[16], qf=[32]), layer_norm=True, time_embedding="linear")),
        lambda model: [layer.out_features for layer in model.actor.velocities[0].linears] == [16, 1]
        and len(model.actor.velocities[0].norms) == 1
        and type(model.actor.velocities[0].time_embed).__name__ == "_LinearTimeEmbedding"
        and model.critic.qf0[0].out_features == 32,
    ),
    "substeps": (
        dict(critic_entropy=False, ent_coef=0.5, q_agg="mean", n_substeps=2),
        lambda model: model.actor.solver.n_substeps == 2 and model.ent_coef_optimizer is None and model.q_agg == "mean",
    ),
    # the actor steps every second update; n-step returns come from SB3's n-step buffer
    "delay_and_n_steps": (
        dict(actor_batch_size=64, policy_delay=2, actor_learning_rate=1e-5, n_steps=3),
        lambda model: all(state["step"] == 25 for state in model.actor.optimizer.state.values())
        and model.actor.optimizer.param_groups[0]["lr"] == 1e-5
        and type(model.replay_buffer).__name__ == "NStepReplayBuffer"
        and model.replay_buffer.n_steps == 3,
    ),
    "tanh": (dict(squash="tanh", q_normalization=True, w2_prev_coef=0.0), lambda model: model.actor.squash.name == "tanh"),
    "per_batch_blocks": (
        dict(block_sampling="per_batch", policy_kwargs=dict(net_arch=[16], share_velocity=False, critic_layer_norm=True)),
        _one_block_per_actor_update,
    ),
}


@pytest.mark.parametrize("name", OPTIONS)
def test_options_train_and_do_what_they_say(name):
    kwargs, check = OPTIONS[name]
    model = tiny(seed=0, **kwargs).learn(100)
    assert model._n_updates == 50
    assert np.isfinite(model.predict(pendulum_obs(), deterministic=True)[0]).all()
    assert check(model) is not False


def test_actor_learning_rate_schedule_is_used():
    model = tiny(seed=0, learning_rate=1e-3, actor_learning_rate=lambda progress: 1e-5 * progress).learn(100)
    assert model.actor.optimizer.param_groups[0]["lr"] < 1e-5
    assert model.critic.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)


@pytest.mark.skipif(not th.cuda.is_available(), reason="needs a GPU")
def test_cuda_device():
    model = tiny(seed=0, device="cuda").learn(80)
    assert next(model.actor.parameters()).is_cuda
    assert model.predict(pendulum_obs(), deterministic=True)[0].shape == (1,)


class DiscreteEnv(gym.Env):
    observation_space = spaces.Box(-1, 1, (2,))
    action_space = spaces.Discrete(3)


class UnboundedEnv(gym.Env):
    observation_space = spaces.Box(-1, 1, (2,))
    action_space = spaces.Box(-np.inf, np.inf, (2,))


class ConstantActionEnv(gym.Env):
    observation_space = spaces.Box(-1, 1, (2,))
    action_space = spaces.Box(np.array([0.0, 1.0], np.float32), np.array([1.0, 1.0], np.float32))


class NaNRewardPendulum(gym.Wrapper):
    def step(self, action):
        obs, _, terminated, truncated, info = self.env.step(action)
        return obs, float("nan"), terminated, truncated, info


@pytest.mark.parametrize(
    "env, kwargs, match",
    [
        (DiscreteEnv(), {}, "continuous gymnasium.spaces.Box action space, got Discrete"),
        (UnboundedEnv(), {}, "bounded Box action space.*TransformAction"),
        (ConstantActionEnv(), {}, "low < high in every action dimension"),
        ("Pendulum-v1", dict(n_blocks=0), "n_blocks must be an integer >= 1, got 0"),
        ("Pendulum-v1", dict(jko_step_size=0.0), "jko_step_size must be > 0"),
        ("Pendulum-v1", dict(ode_solver="rk4"), "unknown ode_solver 'rk4', expected one of 'midpoint', 'euler'"),
        ("Pendulum-v1", dict(log_prob_method="trace"), "expected one of 'auto', 'exact', 'hutchinson'"),
        ("Pendulum-v1", dict(block_sampling="random"), "expected one of 'per_sample', 'per_batch'"),
        ("Pendulum-v1", dict(ent_coef=-1.0), "ent_coef must be > 0"),
        ("Pendulum-v1", dict(squash="sigmoid"), "unknown squash 'sigmoid', expected one of 'soft_clip', 'tanh', 'clip'"),
        ("Pendulum-v1", dict(policy_kwargs=dict(squash="tanh")), "pass squash to SWFP"),
        ("Pendulum-v1", dict(ent_coef="learned"), "ent_coef must be a positive float, 'auto' or 'auto_<init>', got 'learned'"),
        ("Pendulum-v1", dict(w2_prev_coef=-0.5), "w2_prev_coef must be >= 0"),
        ("Pendulum-v1", dict(policy_kwargs=dict(n_blocks=3)), "pass n_blocks to SWFP"),
        # shared with SAC, which SB3 does not check
        ("Pendulum-v1", dict(target_update_interval=0), "target_update_interval must be a number >= 1 .*, got 0"),
        ("Pendulum-v1", dict(policy_kwargs=dict(n_critics=0)), "policy_kwargs n_critics must be an integer >= 1, got 0"),
        ("Pendulum-v1", dict(target_entropy="foo"), "target_entropy must be 'auto' .* or a finite number, got 'foo'"),
        ("Pendulum-v1", dict(target_entropy=float("nan")), "target_entropy must be 'auto' .* or a finite number, got nan"),
        ("Pendulum-v1", dict(batch_size=0), "batch_size must be an integer >= 1, got 0"),
        ("Pendulum-v1", dict(train_freq=(0, "step")), "train_freq must be an integer >= 1, got 0"),
        ("Pendulum-v1", dict(tau=2.0), r"tau must be in \[0, 1\]"),
        ("Pendulum-v1", dict(gamma=1.5), r"gamma must be in \[0, 1\]"),
    ],
)
def test_clear_errors(env, kwargs, match):
    with pytest.raises(ValueError, match=match):
        SWFP("FlowPolicy", env, **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [dict(target_entropy=np.float32(-1.0)), dict(target_entropy="-1"), dict(target_update_interval=2.0), dict(gamma=np.float32(0.98))],
)
def test_values_sac_takes_are_taken(kwargs):
    """The checks of the arguments SWFP shares with SAC refuse what would train wrongly, not numpy scalars or strings SAC reads."""
    model = SWFP("FlowPolicy", "Pendulum-v1", **TINY, **kwargs)
    ((name, value),) = kwargs.items()
    assert float(getattr(model, name)) == pytest.approx(float(value))


def test_the_critic_targets_follow_every_target_update_interval_updates():
    model = tiny(seed=0, learning_starts=0, target_update_interval=3)
    before = [param.detach().clone() for param in model.critic_target.parameters()]
    model.learn(2)  # updates 1 and 2: the targets stay
    assert all(th.equal(a, b) for a, b in zip(before, model.critic_target.parameters()))
    model.learn(1, reset_num_timesteps=False)  # update 3
    assert not all(th.equal(a, b) for a, b in zip(before, model.critic_target.parameters()))


def test_the_actor_waits_for_actor_learning_starts_critic_updates():
    model = tiny(seed=0, learning_starts=0, policy_delay=1, actor_learning_starts=20)
    actor, critic = ([param.detach().clone() for param in net.parameters()] for net in (model.actor, model.critic))
    model.learn(20)  # 20 critic updates, no actor update
    assert all(th.equal(a, b) for a, b in zip(actor, model.actor.parameters()))
    assert not all(th.equal(a, b) for a, b in zip(critic, model.critic.parameters()))
    model.learn(10, reset_num_timesteps=False)  # updates 21-30: the actor steps in each
    assert all(state["step"] == 10 for state in model.actor.optimizer.state.values())


@pytest.mark.parametrize("ent_coef, critic_entropy", [("auto", False), ("auto", True), (0.2, True)])
def test_critic_entropy_decides_whether_the_soft_target_has_the_entropy_term(monkeypatch, ent_coef, critic_entropy):
    """critic_entropy=False drops the entropy bonus from the target also where ent_coef is learned (a log pi is computed then)."""
    seen = []
    real = swfp_module.soft_q_target

    def spy(**kwargs):
        seen.append(kwargs["next_log_prob"])
        return real(**kwargs)

    monkeypatch.setattr(swfp_module, "soft_q_target", spy)
    tiny(seed=0, learning_starts=0, ent_coef=ent_coef, critic_entropy=critic_entropy).learn(3)
    assert len(seen) == 3 and all((log_prob is not None) == critic_entropy for log_prob in seen)


@pytest.mark.parametrize("name", ["tau", "actor_tau", "jko_step_size", "w2_coef", "w2_prev_coef", "bc_coef"])
def test_a_yaml_float_read_as_a_string_is_refused_with_how_to_write_it(name):
    with pytest.raises(ValueError, match=rf"^{name} must be a number, got '5e-3' \(in YAML a float needs its dot"):
        SWFP("FlowPolicy", "Pendulum-v1", **{name: "5e-3"})  # before: a TypeError from a comparison, with no name


def test_cnn_policy_takes_images_with_sb3s_image_extractor(tmp_path):
    from stable_baselines3.common.envs import FakeImageEnv
    from stable_baselines3.common.torch_layers import NatureCNN

    env = FakeImageEnv(screen_height=36, screen_width=36, n_channels=1, discrete=False)
    model = SWFP("CnnPolicy", env, **{**TINY, "learning_starts": 10, "seed": 0}).learn(20)
    assert isinstance(model.actor.features_extractor, NatureCNN) and isinstance(model.critic.features_extractor, NatureCNN)
    obs, _ = env.reset(seed=0)
    action = model.predict(obs, deterministic=True)[0]
    assert action.shape == env.action_space.shape
    model.save(tmp_path / "cnn")
    np.testing.assert_array_equal(SWFP.load(tmp_path / "cnn").predict(obs, deterministic=True)[0], action)


def test_nan_guard_names_term_and_update():
    env = NaNRewardPendulum(gym.make("Pendulum-v1"))
    model = tiny(env=env, seed=0)
    with pytest.raises(NonFiniteLossError, match="'critic_loss' is nan at gradient update 1"):
        model.learn(100)


def use_solver(actor, solver_class):
    """The actor with its blocks integrated by ``solver_class`` (the reference or the fast solver)."""
    actor.solver = solver_class(actor.n_blocks, actor.n_substeps, actor.ode_solver)
    return actor


@pytest.mark.parametrize("solver_class", SOLVERS)
@pytest.mark.parametrize("ode_solver, n_substeps", [("midpoint", 1), ("midpoint", 2), ("euler", 3)])
def test_one_solve_chain_without_log_density_equals_the_block_chain(solver_class, ode_solver, n_substeps):
    # predict's path integrates [0, 1] in one call; it must take the same steps as the N blocks
    actor = use_solver(tiny(seed=0, n_blocks=3, n_substeps=n_substeps, ode_solver=ode_solver).actor, solver_class)
    features = th.randn(7, 3)
    with th.no_grad():
        blocks = th.clamp(actor.walk(features, th.zeros(7, 1)).x, -1.0, 1.0)
        one_solve, log_prob = actor.sample_from_features(features, deterministic=True)
        with_log_prob, _ = actor.sample_from_features(features, deterministic=True, with_log_prob=True)
    assert log_prob is None
    assert th.allclose(one_solve, blocks, atol=1e-6) and th.allclose(one_solve, with_log_prob, atol=1e-6)


@pytest.mark.parametrize("solver_class", SOLVERS)
@pytest.mark.parametrize("share_velocity", [True, False])
def test_walks_and_blocks_agree_with_the_full_chain(solver_class, share_velocity):
    actor = use_solver(tiny(seed=0, policy_kwargs=dict(net_arch=[16], share_velocity=share_velocity)).actor, solver_class)
    features, x0 = th.randn(40, 3), th.randn(40, 1)
    block = th.randint(0, actor.n_blocks, (40,))
    rows = th.arange(40)
    with th.no_grad():
        chain = th.stack([x0] + [actor.walk(features, x0, stop=n).x for n in range(1, actor.n_blocks + 1)])  # (N + 1, batch, d)
        # the walk to each sample's own block: the particles before and after it, with block n run on its samples only
        walk = actor.walk(features, x0, stop=block + 1)
        assert th.equal(walk.x_prev, chain[block, rows]) and th.equal(walk.x, chain[block + 1, rows])
        assert th.allclose(actor.block(features, walk.x_prev, block)[0], walk.x)
        # per-sample ranges, and log-densities along them, are those of the blocks one by one
        start = th.minimum(block, th.randint(0, actor.n_blocks, (40,)))
        log_prob = th.randn(40)
        ranged = actor.walk(features, chain[start, rows], start, block + 1, log_prob)
        expected_log_prob = log_prob.clone()
        for n in range(actor.n_blocks):
            inside = (start <= n) & (n <= block)
            expected_log_prob[inside] -= actor.block(features[inside], chain[n, rows][inside], n, "exact").log_det
        assert th.allclose(ranged.x, walk.x, atol=1e-6) and th.allclose(ranged.log_prob, expected_log_prob, atol=1e-5)
        # per-sample blocks (and their log-determinants) are those of each block applied on its own
        x_out, log_det = actor.block(features, walk.x_prev, block, "exact")
        for n in range(actor.n_blocks):
            x_n, log_det_n = actor.block(features[block == n], walk.x_prev[block == n], n, "exact")
            assert th.allclose(x_out[block == n], x_n, atol=1e-6) and th.allclose(log_det[block == n], log_det_n, atol=1e-6)


@pytest.mark.parametrize("kwargs", [dict(), dict(log_prob_method="hutchinson", squash="soft_clip", policy_kwargs=dict(net_arch=[16], share_velocity=False))])
def test_training_with_the_reference_solver_matches_the_fast_one(kwargs):
    """The solver the policy uses is a faster implementation of the reference maths: the same training run
    with either gives the same losses and weights, up to float rounding."""
    models = []
    for solver_class in SOLVERS:
        model = tiny(seed=0, **kwargs)
        use_solver(model.actor, solver_class), use_solver(model.actor_target, solver_class)
        model.set_logger(configure(None, []))
        models.append(model.learn(80))
    reference, fast = models
    for part in ("actor", "critic"):
        for expected, got in zip(getattr(reference, part).parameters(), getattr(fast, part).parameters()):
            assert th.allclose(got, expected, atol=1e-5)
    assert fast._n_updates == 30


@pytest.mark.parametrize(
    "policy_kwargs, expected",
    [
        (dict(), {"foreach": True}),
        (dict(optimizer_kwargs=dict(eps=1e-5)), {"foreach": True, "eps": 1e-5}),
        (dict(optimizer_kwargs=dict(foreach=False)), {"foreach": False}),
        (dict(optimizer_class=th.optim.SGD), {"foreach": None}),  # other optimizers: torch's own default
        pytest.param(
            dict(optimizer_kwargs=dict(fused=True)), {"foreach": None, "fused": True},  # torch refuses both at once
            marks=pytest.mark.skipif(TORCH_BEFORE_2_4, reason="fused Adam on the CPU needs torch 2.4"),
        ),
    ],
)
def test_adam_steps_all_parameters_at_once_unless_told_otherwise(policy_kwargs, expected):
    model = tiny(policy_kwargs=dict(net_arch=[16], **policy_kwargs))
    for optimizer in (model.policy.actor.optimizer, model.policy.critic.optimizer):
        for key, value in expected.items():
            assert optimizer.param_groups[0][key] == value
    model.learn(60)  # the optimizers step (learning_starts 50)


def test_a_models_policy_kwargs_build_the_same_policy():
    """SWFP writes n_blocks, squash, ... into its policy_kwargs; giving them back repeats them, which is allowed."""
    model = tiny(n_blocks=2, squash="tanh")
    again = tiny(n_blocks=2, squash="tanh", policy_kwargs=model.policy_kwargs)
    assert again.policy_kwargs == model.policy_kwargs
    with pytest.raises(ValueError, match="policy_kwargs has n_blocks=2 but SWFP.* has n_blocks=3: pass n_blocks to SWFP"):
        tiny(squash="tanh", policy_kwargs=model.policy_kwargs)
    with pytest.raises(ValueError, match=r"log_prob_method='hutchinson' but SWFP\(...\) has log_prob_method='auto' \(here 'exact'\)"):
        tiny(policy_kwargs=dict(log_prob_method="hutchinson"))


def test_load_overrides_the_flows_arguments(tmp_path):
    """As SB3's load does for any argument (rl-zoo3's -i passes the YAML entry's): the saved policy_kwargs do not stop it;
    one that makes the saved flow act otherwise is warned about."""
    tiny(n_substeps=1).save(tmp_path / "model")
    with pytest.warns(UserWarning, match=r"loading with ode_solver='euler' \(trained with 'midpoint'\): the saved flow maps noise to other actions"):
        loaded = SWFP.load(tmp_path / "model", n_substeps=2, ode_solver="euler")
    assert loaded.n_substeps == 2 and loaded.policy_kwargs["n_substeps"] == 2 and loaded.policy_kwargs["ode_solver"] == "euler"
    assert loaded.actor.solver.n_substeps == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        SWFP.load(tmp_path / "model", n_substeps=3)  # a finer integration of the same flow: no warning


def test_load_refuses_another_n_blocks_for_independent_blocks_and_a_file_of_another_algorithm(tmp_path):
    from stable_baselines3 import SAC

    tiny(policy_kwargs=dict(share_velocity=False)).save(tmp_path / "independent")
    with pytest.raises(ValueError, match=r"has 3 flow blocks with a velocity network each \(share_velocity=False\): it cannot load with n_blocks=4"):
        SWFP.load(tmp_path / "independent", n_blocks=4)
    SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[8])).save(tmp_path / "sac")
    with pytest.raises(ValueError, match=r"holds a SACPolicy model \(stable_baselines3.sac.policies\), not an SWFP flow policy: load it"):
        SWFP.load(tmp_path / "sac")


def test_a_policy_class_that_cannot_be_imported_any_more_loads_through_custom_objects(tmp_path, monkeypatch):
    import importlib
    import sys

    (tmp_path / "gone_policies.py").write_text("from sb3_swfp import FlowPolicy\n\nclass MyFlowPolicy(FlowPolicy):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("gone_policies")
    SWFP(module.MyFlowPolicy, "Pendulum-v1", **TINY).save(tmp_path / "model")
    (tmp_path / "gone_policies.py").unlink()
    monkeypatch.delitem(sys.modules, "gone_policies")
    assert isinstance(SWFP.load(tmp_path / "model", custom_objects={"policy_class": FlowPolicy}).policy, FlowPolicy)


def test_policy_kwargs_that_went_through_sac_are_taken_and_gsde_is_refused():
    from stable_baselines3 import SAC

    shared = dict(net_arch=[8])
    SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=shared)  # writes use_sde=False into the dict
    assert shared == {"net_arch": [8], "use_sde": False}
    assert "use_sde" not in tiny(policy_kwargs=shared).policy_kwargs
    with pytest.raises(ValueError, match="use_sde=True: SWFP has no gSDE"):
        tiny(policy_kwargs=dict(use_sde=True))


@pytest.mark.parametrize("value", [-1e-3, float("inf")])
def test_a_negative_or_infinite_actor_learning_rate_is_refused(value):
    with pytest.raises(ValueError, match=rf"actor_learning_rate must be a finite number >= 0 \(or a schedule, or None: the critic's\), got {value}"):
        tiny(actor_learning_rate=value)
    assert tiny(actor_learning_rate=0.0).actor_learning_rate == 0.0  # freezes the actor, as torch's lr 0


@pytest.mark.parametrize(
    "policy_kwargs, match",
    [
        (dict(time_embedding="fourier"), "unknown time_embedding 'fourier', expected one of 'sinusoidal', 'linear'"),
        (dict(time_embed_dim=7), "time_embed_dim must be an even integer >= 2, got 7"),
    ],
)
def test_policy_options_are_checked_with_the_same_messages(policy_kwargs, match):
    with pytest.raises(ValueError, match=match):
        SWFP("FlowPolicy", "Pendulum-v1", policy_kwargs=policy_kwargs)
    # and so are the policy's own arguments when it is built on its own
    env = gym.make("Pendulum-v1")
    with pytest.raises(ValueError, match="unknown ode_solver 'rk4', expected one of 'midpoint', 'euler'"):
        FlowPolicy(env.observation_space, env.action_space, lambda _: 1e-3, ode_solver="rk4")


def test_the_actor_step_takes_q_at_the_squashed_particles_from_the_targets_old_ones(monkeypatch):
    """One JKO step: x_{n-1}^old is the target chain's, x_n^old the target's block n of it, x_n the actor's; Q is
    aggregated with q_agg at S(x_n), and the entropy term's log-det includes the squash's."""
    model = tiny(seed=0, squash="tanh", q_agg="mean", q_normalization=True)
    with th.no_grad():  # an actor apart from its target, as after training
        for param in model.actor.parameters():
            param.add_(0.1 * th.randn_like(param))
    actor, target = model.actor, model.actor_target
    seen, losses, critic_actions = {}, [], []
    real_block, real_loss = actor.block, swfp_module.jko_block_loss

    def block_spy(features, x, block, method):
        out = real_block(features, x, block, method)
        seen.update(x=x.detach().clone(), block=block, x_new=out.x.detach().clone(), log_det=out.log_det.detach().clone())
        return out

    def critic(observations, actions):  # two critics that say 1 and 2 everywhere
        critic_actions.append(actions.detach().clone())
        return actions.new_full((len(actions), 1), 1.0), actions.new_full((len(actions), 1), 2.0)

    monkeypatch.setattr(actor, "block", block_spy)
    monkeypatch.setattr(model.critic, "forward", critic)
    monkeypatch.setattr(swfp_module, "jko_block_loss", lambda **kwargs: losses.append(kwargs) or real_loss(**kwargs))
    observations = th.as_tensor(pendulum_obs(16))
    th.manual_seed(5)
    logs = model._actor_update(observations, th.tensor(0.1))
    th.manual_seed(5)
    x0 = th.randn(16, 1)
    (kwargs,) = losses
    assert logs["actor_q_scale"] == pytest.approx(1.5)  # q_agg="mean" of 1 and 2 (the minimum would be 1)
    assert th.allclose(critic_actions[0], th.tanh(seen["x_new"]))  # Q at S(x_n), inside the box
    assert th.allclose(kwargs["log_det"].detach(), seen["log_det"] + actor.squash.log_abs_det(seen["x_new"]))
    with th.no_grad():
        x_prev_old = target.walk(observations, x0, stop=seen["block"]).x  # the target's first n blocks
        x_old = target.block(observations, x_prev_old, seen["block"]).x
    assert th.allclose(seen["x"], x_prev_old, atol=1e-6) and th.allclose(kwargs["x_prev_old"], x_prev_old, atol=1e-6)
    assert th.allclose(kwargs["x_old"], x_old, atol=1e-6)
    assert not th.allclose(x_old, seen["x_new"], atol=1e-3)  # the actor's block differs from the target's here


def test_per_sample_blocks_train_every_block():
    """block_sampling="per_sample": a batch's samples go through all N blocks, so every block's network gets a gradient."""
    model = tiny(seed=0, policy_kwargs=dict(net_arch=[16], share_velocity=False))
    model.actor.optimizer.zero_grad()
    model._actor_update(th.as_tensor(pendulum_obs(64)), th.tensor(0.1))
    assert all(any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters()) for net in model.actor.velocities)


@pytest.mark.parametrize("target_entropy, direction", [(-10.0, -1), (10.0, 1)])
def test_the_learned_temperature_moves_towards_the_target_entropy(target_entropy, direction):
    """Entropy above the target lowers alpha, below it raises alpha; the alpha used is exp(log_ent_coef)."""
    model = tiny(seed=0, learning_starts=0, target_entropy=target_entropy).learn(30)
    assert np.sign(model.log_ent_coef.item()) == direction  # ent_coef "auto" starts at alpha = 1
    assert model._current_ent_coef().item() == pytest.approx(np.exp(model.log_ent_coef.item()))


def test_auto_target_entropy_and_log_prob_method_follow_the_action_dimension():
    assert tiny().target_entropy == -1.0  # "auto": -dim(A), as SAC

    class WideEnv(gym.Env):
        observation_space = spaces.Box(-1, 1, (2,))
        action_space = spaces.Box(-1, 1, (33,))

    wide, narrow = (SWFP("FlowPolicy", env, **{**TINY, "policy_kwargs": dict(net_arch=[8])}) for env in (WideEnv(), "Pendulum-v1"))
    assert wide.target_entropy == -33.0 and wide.actor.log_prob_method == "hutchinson"  # beyond 32 dimensions
    assert narrow.actor.log_prob_method == "exact"


def test_independent_blocks_each_use_their_own_network():
    """share_velocity=False: block n is integrated with network n only, in a block on its own, a walk and BC."""
    actor = tiny(seed=0, policy_kwargs=dict(net_arch=[16], share_velocity=False)).actor
    features, x = th.as_tensor(pendulum_obs(8)), th.randn(8, 1)
    with th.no_grad():
        before = [actor.block(features, x, n).x for n in range(3)]
        actor.velocities[1].linears[-1].bias.add_(1.0)  # network 1 only
        after = [actor.block(features, x, n).x for n in range(3)]
    assert th.equal(after[0], before[0]) and th.equal(after[2], before[2])
    assert not th.allclose(after[1], before[1], atol=1e-2)
    # predict's path walks the three networks too (only a shared network is one solve over [0, 1])
    with th.no_grad():
        walked = actor.squash(actor.walk(features, th.zeros(8, 1)).x)
        assert th.allclose(actor.sample_from_features(features, deterministic=True)[0], walked, atol=1e-6)
    # behaviour cloning: each sample trains the block of its t, so every network gets a gradient
    actor.flow_matching_loss(th.as_tensor(pendulum_obs(64)), th.zeros(64, 1)).backward()
    assert all(net.linears[0].weight.grad is not None and net.linears[0].weight.grad.abs().sum() > 0 for net in actor.velocities)


def test_load_helpers_leave_the_file_where_it_was_and_give_way_to_what_load_is_given(tmp_path):
    from stable_baselines3 import SAC
    from stable_baselines3.common.buffers import ReplayBuffer

    from sb3_swfp.swfp.persistence import check_saved_policy, saved_data, with_added_arguments, with_saved_buffer_arguments

    tiny(seed=0, replay_buffer_kwargs=dict(handle_timeout_termination=False)).save(tmp_path / "model.zip")
    with open(tmp_path / "model.zip", "rb") as file:
        file.seek(3)
        data = saved_data(file)
        assert file.tell() == 3  # SB3's load reads the file object from where it was given
    # An argument the saved model predates takes the value it was trained with, unless load is given one
    old = {key: value for key, value in data.items() if key != "squash"}
    assert with_added_arguments(old, {}) == {"squash": "clip"}
    assert with_added_arguments(old, {"squash": "tanh"}) == {"squash": "tanh"}
    assert with_added_arguments(data, {}) == {}
    # Buffer arguments merge over the saved ones only for the saved buffer class
    given = {"replay_buffer_kwargs": {"optimize_memory_usage": False}}
    merged = with_saved_buffer_arguments(data, given, None)["replay_buffer_kwargs"]
    assert merged == {"handle_timeout_termination": False, "optimize_memory_usage": False}
    other_class = {**given, "replay_buffer_class": ReplayBuffer}
    assert with_saved_buffer_arguments(data, other_class, None) == other_class
    assert with_saved_buffer_arguments(data, given, {"replay_buffer_class": ReplayBuffer}) == given
    # Another algorithm's file is refused; a policy class given in custom_objects is SB3's load's to judge
    sac_model = SAC("MlpPolicy", "Pendulum-v1", buffer_size=100, policy_kwargs=dict(net_arch=[8]))
    sac_model.save(tmp_path / "sac.zip")
    sac = saved_data(tmp_path / "sac.zip")
    with pytest.raises(ValueError, match="not an SWFP flow policy"):
        check_saved_policy(sac, tmp_path / "sac.zip")
    check_saved_policy(sac, tmp_path / "sac.zip", {"policy_class": type(sac_model.policy)})


def test_a_shared_features_extractor_is_trained_by_the_actor_only():
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from torch import nn

    class LinearExtractor(BaseFeaturesExtractor):
        def __init__(self, observation_space):
            super().__init__(observation_space, features_dim=4)
            self.linear = nn.Linear(3, 4)

        def forward(self, observations):
            return self.linear(observations)

    def optimized(optimizer):
        return {id(param) for group in optimizer.param_groups for param in group["params"]}

    for shared in (True, False):
        model = tiny(seed=0, policy_kwargs=dict(features_extractor_class=LinearExtractor, share_features_extractor=shared))
        extractor = {id(param) for param in model.critic.features_extractor.parameters()}
        assert (model.critic.features_extractor is model.actor.features_extractor) == shared
        # as SAC: the critic loss does not move a shared extractor; its own one it does
        assert (extractor <= optimized(model.critic.optimizer)) != shared and extractor.isdisjoint(optimized(model.critic.optimizer)) == shared
        assert {id(param) for param in model.actor.features_extractor.parameters()} <= optimized(model.actor.optimizer)
