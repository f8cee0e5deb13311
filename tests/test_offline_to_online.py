"""Offline-to-online: BC pretraining, the BC callback and the demonstration buffer across logging, save/load and VecNormalize."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback, StopTrainingOnRewardThreshold
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecNormalize

from sb3_swfp import SWFP, BCPretrainCallback, DemoReplayBuffer, EvalFromStartCallback
from sb3_swfp.demos import Demonstrations, collect_demonstrations
from sb3_swfp.experts import PendulumSwingUpExpert
from sb3_swfp.swfp import swfp as swfp_module

from helpers import TINY

ENV_ID = "Pendulum-v1"
BC = dict(gradient_steps=5, batch_size=16)


@pytest.fixture(scope="module")
def demos():
    """One episode (200 transitions) of the noisy swing-up expert."""
    return collect_demonstrations(ENV_ID, PendulumSwingUpExpert(noise_std=0.3, seed=0), n_episodes=1, seed=0)


def tiny(env=ENV_ID, **kwargs):
    return SWFP("FlowPolicy", env, **{**TINY, **kwargs})


def actor_parameters(model):
    return [param.detach().clone() for param in model.actor.parameters()]


def same_parameters(a, b):
    return all(th.equal(x, y) for x, y in zip(a, b))


def test_one_bc_callback_clones_every_model_it_is_given(demos, capsys):
    """A seed loop with one callback instance: each model is cloned (the model, not the callback, says it was)."""
    callback = BCPretrainCallback(demos, verbose=1, **BC)
    models = [tiny(seed=seed, learning_starts=1_000) for seed in (0, 1)]
    for model in models:
        model.learn(5, callback=callback)
    assert [model.n_bc_updates for model in models] == [BC["gradient_steps"]] * 2
    models[0].learn(5, callback=callback, reset_num_timesteps=False)
    assert models[0].n_bc_updates == BC["gradient_steps"] and "BC pretraining skipped" in capsys.readouterr().out


def test_bc_callback_does_not_clone_again_when_a_loaded_model_continues(demos, tmp_path):
    # learning_starts above every budget here: no gradient update but BC's can move the actor
    model = tiny(seed=0, learning_starts=1_000)
    before = actor_parameters(model)
    model.learn(20, callback=BCPretrainCallback(demos, **BC))
    assert not same_parameters(before, actor_parameters(model))  # BC ran once
    model.save(tmp_path / "model")

    # rl-zoo3's -i, or load + learn with the same callback: num_timesteps starts again at 0
    loaded = SWFP.load(tmp_path / "model", env=gym.make(ENV_ID))
    assert loaded.n_bc_updates == BC["gradient_steps"]  # saved with the model
    after_load = actor_parameters(loaded)
    loaded.learn(20, callback=BCPretrainCallback(demos, **BC))
    assert same_parameters(after_load, actor_parameters(loaded))


def test_learn_after_pretrain_logs_under_its_own_tb_log_name(demos, tmp_path):
    model = tiny(seed=0, tensorboard_log=str(tmp_path))
    model.pretrain(demos, **BC)
    model.learn(20, tb_log_name="finetune")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["SWFP_pretrain_1", "finetune_1"]
    assert list((tmp_path / "finetune_1").glob("events.out.tfevents.*"))


def test_bc_under_vec_normalize_sees_demonstrations_inside_the_clipping_range(demos):
    env = VecNormalize(make_vec_env(ENV_ID, n_envs=1, seed=0), norm_reward=False)
    model = tiny(env=env, seed=0, learning_starts=1_000)
    # BC at the start of learn(): the running statistics have seen the first observation only
    model.learn(2, callback=BCPretrainCallback(demos, **BC))
    normalized = env.normalize_obs(demos.observations)
    assert np.mean(np.abs(normalized) >= env.clip_obs) == 0.0
    # the statistics are (almost all) those of the demonstration observations
    np.testing.assert_allclose(env.obs_rms.mean, demos.observations.mean(axis=0), atol=0.05)


def test_a_critic_warm_up_under_normalised_rewards_is_warned_about(demos, recwarn):
    """The warm-up's targets use the recorded rewards, learn()'s the normalised ones: two scales for one critic."""
    model = tiny(env=VecNormalize(make_vec_env(ENV_ID, n_envs=1, seed=0)), seed=0)
    with pytest.warns(UserWarning, match=r"critic warm-up trains on the demonstrations' rewards as recorded.*norm_reward=False"):
        model.pretrain(demos, critic_warmup_steps=2, **BC)
    recwarn.clear()
    tiny(env=VecNormalize(make_vec_env(ENV_ID, n_envs=1, seed=0), norm_reward=False), seed=0).pretrain(demos, critic_warmup_steps=2, **BC)
    model.pretrain(demos, **BC)  # no warm-up: nothing to warn about
    assert not [warning for warning in recwarn if "critic warm-up" in str(warning.message)]


def test_the_critic_warm_up_takes_the_online_buffers_n_step_returns(demos, monkeypatch, recwarn):
    """SB3 ignores n_steps beside a buffer class of one's own without n-step returns (its ReplayBuffer): the online
    targets are then one-step, and so are the warm-up's."""
    from stable_baselines3.common.buffers import ReplayBuffer

    seen = []
    real = swfp_module.soft_q_target
    monkeypatch.setattr(swfp_module, "soft_q_target", lambda **kwargs: seen.append(kwargs["discounts"]) or real(**kwargs))
    tiny(seed=0, n_steps=3, replay_buffer_class=ReplayBuffer).pretrain(demos, critic_warmup_steps=2, **BC)
    assert len(seen) == 2 and all(isinstance(discounts, float) for discounts in seen)  # gamma: one-step targets
    seen.clear()
    tiny(seed=0, n_steps=3).pretrain(demos, critic_warmup_steps=2, **BC)  # SB3's n-step buffer: per-sample discounts
    assert len(seen) == 2 and all(isinstance(discounts, th.Tensor) for discounts in seen)


def test_the_critic_warm_up_discounts_its_n_step_returns_with_the_models_gamma(demos, monkeypatch):
    seen = []
    real = swfp_module.soft_q_target
    monkeypatch.setattr(swfp_module, "soft_q_target", lambda **kwargs: seen.append(kwargs["discounts"]) or real(**kwargs))
    tiny(seed=0, n_steps=3, gamma=0.5).pretrain(demos, critic_warmup_steps=2, **BC)
    values = set(th.cat(seen).flatten().tolist())
    assert values <= {0.5, 0.25, 0.125} and 0.125 in values  # gamma^k of k-step returns, most of them 3-step


def test_the_critic_warm_up_weighs_the_entropy_term_with_the_models_temperature(demos, monkeypatch):
    seen = []
    real = swfp_module.soft_q_target
    monkeypatch.setattr(swfp_module, "soft_q_target", lambda **kwargs: seen.append(float(kwargs["ent_coef"])) or real(**kwargs))
    tiny(seed=0, ent_coef=0.7, critic_entropy=True).pretrain(demos, critic_warmup_steps=2, **BC)
    assert seen == pytest.approx([0.7, 0.7])


def test_the_same_seed_clones_the_same_actor_and_another_seed_another(demos):
    def cloned(seed):
        model = tiny(seed=seed)
        model.pretrain(demos, **BC)
        return th.cat([p.detach().flatten() for p in model.actor.parameters()])

    assert th.equal(cloned(0), cloned(0)) and not th.equal(cloned(0), cloned(1))


def test_bc_and_the_critic_warm_up_read_observations_normalised_as_the_env_gives_them(demos):
    env = VecNormalize(make_vec_env(ENV_ID, n_envs=1, seed=0), norm_reward=False, training=False, clip_obs=10.0)
    env.obs_rms.mean, env.obs_rms.var = np.full(3, 20.0), np.ones(3)  # every demonstration observation normalises to -10
    model = tiny(env=env, seed=0)
    seen = []
    bc_loss, critic = model.actor.flow_matching_loss, model.critic.forward
    model.actor.flow_matching_loss = lambda observations, actions: seen.append(observations) or bc_loss(observations, actions)
    model.critic.forward = lambda observations, actions: seen.append(observations) or critic(observations, actions)
    model.pretrain(demos, critic_warmup_steps=1, **BC)
    assert len(seen) == BC["gradient_steps"] + 1 and all(th.all(observations == -10.0) for observations in seen)


def test_bc_leaves_frozen_vec_normalize_statistics_alone(demos):
    env = VecNormalize(make_vec_env(ENV_ID, n_envs=1, seed=0), norm_reward=False, training=False)
    model = tiny(env=env, seed=0)
    mean, var = env.obs_rms.mean.copy(), env.obs_rms.var.copy()
    model.pretrain(demos, **BC)
    np.testing.assert_array_equal(env.obs_rms.mean, mean)
    np.testing.assert_array_equal(env.obs_rms.var, var)


def test_a_model_with_a_demonstration_buffer_loads_away_from_the_demonstrations_file(demos, tmp_path, monkeypatch):
    trained_in, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    trained_in.mkdir(), elsewhere.mkdir()
    monkeypatch.chdir(trained_in)
    demos.save("demos.npz")
    model = tiny(seed=0, replay_buffer_class=DemoReplayBuffer, replay_buffer_kwargs=dict(demonstrations="demos.npz", demo_ratio=0.25))
    model.learn(60)
    model.save("model")

    monkeypatch.chdir(elsewhere)
    with pytest.warns(UserWarning, match="'demos.npz'"):
        loaded = SWFP.load(trained_in / "model.zip", env=gym.make(ENV_ID))
    obs = np.stack([gym.make(ENV_ID).reset(seed=i)[0] for i in range(4)])
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    # Training needs the demonstrations: a clear error before the first step, and they can be given again
    with pytest.raises(FileNotFoundError, match="replay_buffer_kwargs"):
        loaded.learn(10)
    again = SWFP.load(trained_in / "model.zip", env=gym.make(ENV_ID), replay_buffer_kwargs=dict(demonstrations=trained_in / "demos.npz"))
    assert again.replay_buffer.n_demonstrations == len(demos)
    # merged over the saved arguments: the saved demo_ratio stays (replaced whole, it fell to the buffer's default 0.5)
    assert again.replay_buffer.demo_ratio == 0.25
    again.learn(10)
    given = dict(demonstrations=trained_in / "demos.npz", demo_ratio=0.75)
    assert SWFP.load(trained_in / "model.zip", replay_buffer_kwargs=given).replay_buffer.demo_ratio == 0.75  # what is given wins
    with pytest.warns(UserWarning, match="'demos.npz'"):  # None keeps the saved arguments, as if not given
        assert SWFP.load(trained_in / "model.zip", replay_buffer_kwargs=None).replay_buffer.demo_ratio == 0.25


def test_a_saved_demonstration_buffer_restores_the_demonstrations(demos, tmp_path):
    """What the error of a model loaded without its demonstrations offers: load_replay_buffer."""
    model = tiny(seed=0, replay_buffer_class=DemoReplayBuffer, replay_buffer_kwargs=dict(demonstrations=demos, demo_ratio=0.5))
    model.learn(60)
    model.save(tmp_path / "model")
    model.save_replay_buffer(tmp_path / "buffer")
    with pytest.warns(UserWarning, match="a Demonstrations of 200 transitions, given as an object and not saved"):
        loaded = SWFP.load(tmp_path / "model", env=gym.make(ENV_ID))
    with pytest.raises(FileNotFoundError, match="load_replay_buffer"):
        loaded.learn(10)
    loaded.load_replay_buffer(tmp_path / "buffer")
    assert type(loaded.replay_buffer) is DemoReplayBuffer and loaded.replay_buffer.n_demonstrations == len(demos)
    assert loaded.replay_buffer.size() == model.replay_buffer.size()
    loaded.learn(10)


def test_reward_free_demonstrations_train_no_critic_unless_asked(demos):
    reward_free = demos.subset(slice(None))
    reward_free.metadata["has_rewards"] = False  # as from_imitation marks trajectories without rews
    with pytest.raises(ValueError, match="no rewards.*allow_missing_rewards=True"):
        tiny(replay_buffer_class=DemoReplayBuffer, replay_buffer_kwargs=dict(demonstrations=reward_free))
    with pytest.warns(UserWarning, match="zero rewards"):
        tiny(replay_buffer_class=DemoReplayBuffer, replay_buffer_kwargs=dict(demonstrations=reward_free, allow_missing_rewards=True))
    model = tiny(seed=0)
    model.pretrain(reward_free, **BC)  # behaviour cloning reads no reward
    with pytest.raises(ValueError, match="no rewards"):
        model.pretrain(reward_free, critic_warmup_steps=2, **BC)
    with pytest.warns(UserWarning, match="zero rewards"):
        model.pretrain(reward_free, critic_warmup_steps=2, allow_missing_rewards=True, **BC)


def test_demonstrations_recorded_on_another_env_are_refused_unless_asked(demos, tmp_path):
    other = demos.subset(slice(None))
    other.metadata["env_id"] = "Pendulum-v0"  # same spaces, another env
    model = tiny(seed=0)
    with pytest.raises(ValueError, match=r"recorded on 'Pendulum-v0' .* the env is 'Pendulum-v1'; pass allow_env_mismatch=True"):
        model.pretrain(other, **BC)
    with pytest.warns(UserWarning, match="allow_env_mismatch=True") as warned:
        model.pretrain(other, allow_env_mismatch=True, **BC)
    assert [w.filename for w in warned if "allow_env_mismatch" in str(w.message)] == [__file__]  # it points at the user's line
    # another env's shapes too: the env is named first, not the shapes
    wider = Demonstrations(
        other.observations[:, :2], other.actions, other.rewards, other.next_observations[:, :2], other.terminations,
        other.truncations, metadata={"env_id": "MountainCarContinuous-v0"},
    )
    with pytest.raises(ValueError, match="recorded on 'MountainCarContinuous-v0'"):
        model.pretrain(wider, **BC)
    with pytest.raises(ValueError, match="recorded on 'Pendulum-v0'"):
        tiny(replay_buffer_class=DemoReplayBuffer, replay_buffer_kwargs=dict(demonstrations=other))
    with pytest.raises(ValueError, match="recorded on 'Pendulum-v0'"):
        tiny(learning_starts=1_000).learn(2, callback=BCPretrainCallback(other, **BC))
    other.save(tmp_path / "other.npz")  # a path: a saved model keeps it (an object it does not keep)
    with pytest.warns(UserWarning, match="allow_env_mismatch=True"):
        model = tiny(
            replay_buffer_class=DemoReplayBuffer,
            replay_buffer_kwargs=dict(demonstrations=tmp_path / "other.npz", allow_env_mismatch=True),
        )
    # the opt-in is saved with the model: it loads without asking again
    model.save(tmp_path / "model")
    with pytest.warns(UserWarning, match="allow_env_mismatch=True"):
        SWFP.load(tmp_path / "model", env=gym.make(ENV_ID))


def test_a_demonstration_buffer_is_saved_and_loaded_with_save_replay_buffer(demos, tmp_path):
    model = SWFP("FlowPolicy", "Pendulum-v1", seed=0, replay_buffer_class=DemoReplayBuffer,
                 replay_buffer_kwargs=dict(demonstrations=demos, demo_ratio=0.5), **TINY).learn(60)  # fmt: skip
    model.save_replay_buffer(tmp_path / "buffer")
    before = model.replay_buffer
    model.load_replay_buffer(tmp_path / "buffer")
    after = model.replay_buffer
    assert type(after) is DemoReplayBuffer and after is not before
    assert after.size() == before.size() == 60 and after.n_demonstrations == before.n_demonstrations == len(demos)
    np.testing.assert_array_equal(after.demo_buffer.actions, before.demo_buffer.actions)


class RecordActorAtStart(BaseCallback):
    """Keeps the actor's parameters as they are when learn() starts (after the callbacks before it)."""

    def _on_training_start(self) -> None:
        self.parameters = actor_parameters(self.model)

    def _on_step(self) -> bool:
        return True


@pytest.mark.parametrize("from_start", [True, False])
def test_eval_from_start_makes_the_cloned_policy_the_first_candidate_for_best_model(demos, tmp_path, from_start):
    model = tiny(seed=0, learning_starts=0)
    initial, at_start = actor_parameters(model), RecordActorAtStart()
    kind = EvalFromStartCallback if from_start else EvalCallback
    # eval_freq beyond the budget: the start is the only evaluation EvalFromStartCallback makes, SB3's makes none
    evaluate = kind(Monitor(gym.make(ENV_ID)), eval_freq=1_000, n_eval_episodes=1, best_model_save_path=str(tmp_path), log_path=str(tmp_path))
    model.learn(60, callback=[BCPretrainCallback(demos, **BC), at_start, evaluate])
    assert not same_parameters(initial, at_start.parameters)  # BC ran before the start was evaluated
    assert not same_parameters(at_start.parameters, actor_parameters(model))  # and training moved the actor
    if not from_start:
        assert not (tmp_path / "best_model.zip").exists()
        return
    assert np.load(tmp_path / "evaluations.npz")["timesteps"].tolist() == [0]
    assert evaluate.best_mean_reward == evaluate.last_mean_reward > -np.inf
    best = SWFP.load(tmp_path / "best_model", device="cpu")
    assert same_parameters(at_start.parameters, actor_parameters(best))  # the cloned policy, not the final one


def test_eval_from_start_stops_at_the_first_step_when_the_start_meets_a_stop_threshold(demos):
    model = tiny(seed=0, learning_starts=0)
    stop = StopTrainingOnRewardThreshold(reward_threshold=-1e9)  # any return meets it
    evaluate = EvalFromStartCallback(Monitor(gym.make(ENV_ID)), eval_freq=1_000, n_eval_episodes=1, callback_on_new_best=stop)
    model.learn(60, callback=evaluate)
    assert model.num_timesteps == 1
    # The stop was the start's: the same callback in a later learn() stops only on a new best
    model.learn(20, callback=evaluate, reset_num_timesteps=False)
    assert model.num_timesteps == 21


def test_eval_from_start_then_evaluates_on_eval_callbacks_schedule(demos, tmp_path):
    model = tiny(seed=0, learning_starts=0)
    evaluate = EvalFromStartCallback(Monitor(gym.make(ENV_ID)), eval_freq=20, n_eval_episodes=1, log_path=str(tmp_path))
    model.learn(60, callback=evaluate)
    assert np.load(tmp_path / "evaluations.npz")["timesteps"].tolist() == [0, 20, 40, 60]


def test_swfp_n_steps_reach_its_demonstration_buffer_and_its_critic_target(demos, tmp_path, monkeypatch, recwarn):
    """SB3 ignores n_steps beside a custom buffer class (with a warning); SWFP gives them to DemoReplayBuffer."""
    buffer_kwargs = dict(demonstrations=demos, demo_ratio=0.5)
    model = tiny(seed=0, n_steps=3, gamma=0.9, replay_buffer_class=DemoReplayBuffer, replay_buffer_kwargs=buffer_kwargs)
    assert (model.replay_buffer.n_steps, model.replay_buffer.gamma, model.replay_buffer.demo_buffer.n_steps) == (3, 0.9, 3)
    assert not [w for w in recwarn if "is ignored" in str(w.message)]
    assert model.replay_buffer_kwargs == buffer_kwargs  # what is saved is what was given: SWFP's n_steps go with SWFP
    seen = []
    target = swfp_module.soft_q_target
    monkeypatch.setattr(swfp_module, "soft_q_target", lambda **kw: seen.append(kw["discounts"]) or target(**kw))
    model.learn(60)
    # per-sample discounts 0.9^k, k <= 3 steps of the same episode (one-step targets get the float gamma)
    assert seen and all(isinstance(d, th.Tensor) for d in seen) and any(th.any(d < 0.9**2 + 1e-6) for d in seen)
    model.save(tmp_path / "model")
    assert SWFP.load(tmp_path / "model", env=gym.make(ENV_ID)).replay_buffer.n_steps == 3
    other = SWFP.load(tmp_path / "model", env=gym.make(ENV_ID), gamma=0.95, n_steps=2)  # overrides reach the buffer
    assert (other.replay_buffer.n_steps, other.replay_buffer.gamma) == (2, 0.95)
    model.save_replay_buffer(tmp_path / "buffer")
    one_step = tiny(replay_buffer_class=DemoReplayBuffer, replay_buffer_kwargs=buffer_kwargs)
    one_step.load_replay_buffer(tmp_path / "buffer")  # a 3-step buffer samples as the model it is loaded into
    assert (one_step.replay_buffer.n_steps, one_step.replay_buffer.demo_buffer.n_steps) == (1, 1)
    other.load_replay_buffer(tmp_path / "buffer")
    assert (other.replay_buffer.n_steps, other.replay_buffer.demo_buffer.gamma) == (2, 0.95)
    with pytest.raises(ValueError, match="give n_steps"):
        tiny(n_steps=3, replay_buffer_class=DemoReplayBuffer, replay_buffer_kwargs=dict(demonstrations=demos, gamma=0.5))
    with pytest.raises(ValueError, match="give n_steps"):  # SWFP's n_steps=1 would be recorded while the buffer sums 3
        tiny(replay_buffer_class=DemoReplayBuffer, replay_buffer_kwargs=dict(demonstrations=demos, n_steps=3))


def test_demonstrations_given_as_an_object_stay_out_of_the_saved_model(demos, tmp_path):
    import json
    import zipfile

    def saved_buffer_kwargs(path):
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("data"))["replay_buffer_kwargs"]

    demos.save(tmp_path / "demos.npz")
    sizes = {}
    for name, given in (("object", demos), ("path", tmp_path / "demos.npz")):
        model = tiny(seed=0, replay_buffer_class=DemoReplayBuffer, replay_buffer_kwargs=dict(demonstrations=given, demo_ratio=0.5))
        model.save(tmp_path / name)
        assert model.replay_buffer_kwargs["demonstrations"] is given  # the model in memory keeps what it was given
        sizes[name] = len(json.dumps(saved_buffer_kwargs(tmp_path / f"{name}.zip")))
    # the 200 transitions pickled would be ~10 kB of arguments (before, they were; an SB3 buffer at full capacity)
    assert sizes["object"] < 1_500 and sizes["path"] < 1_500
    with pytest.warns(UserWarning, match="a Demonstrations of 200 transitions, given as an object"):
        loaded = SWFP.load(tmp_path / "object", env=gym.make(ENV_ID))
    loaded.save(tmp_path / "again")  # saved again, it still says what was given
    with pytest.warns(UserWarning, match="a Demonstrations of 200 transitions, given as an object"):
        SWFP.load(tmp_path / "again", env=gym.make(ENV_ID))


def register_other_pendulum():
    """Pendulum under another id: the same spaces, another env for the demonstrations' check."""
    if "OtherPendulum-v0" not in gym.registry:
        gym.register("OtherPendulum-v0", entry_point="gymnasium.envs.classic_control.pendulum:PendulumEnv", max_episode_steps=200)


def test_set_env_checks_the_demonstrations_against_the_new_env(demos):
    register_other_pendulum()
    model = tiny(seed=0, replay_buffer_class=DemoReplayBuffer, replay_buffer_kwargs=dict(demonstrations=demos))
    env = model.env
    with pytest.raises(ValueError, match="recorded on 'Pendulum-v1'.*the env is 'OtherPendulum-v0'"):
        model.set_env(make_vec_env("OtherPendulum-v0", n_envs=1))  # same spaces, another env
    assert model.env is env  # the model keeps its env
    model.set_env(gym.make(ENV_ID))  # an env or a VecEnv of the demonstrations' id
    assert model.env is not env


def test_a_buffer_without_demonstrations_is_refused_where_the_model_trains_from_them(demos, tmp_path):
    tiny(seed=0).learn(60).save_replay_buffer(tmp_path / "plain")
    model = tiny(seed=0, replay_buffer_class=DemoReplayBuffer, replay_buffer_kwargs=dict(demonstrations=demos))
    buffer = model.replay_buffer
    with pytest.raises(ValueError, match="is a ReplayBuffer without demonstrations"):
        model.load_replay_buffer(tmp_path / "plain")
    assert model.replay_buffer is buffer
    tiny(seed=0).load_replay_buffer(tmp_path / "plain")  # a model without demonstrations takes it
    # demonstrations recorded on another env with the same spaces: refused as the constructor refuses them
    register_other_pendulum()
    other = demos.subset(slice(None))
    other.metadata["env_id"] = "OtherPendulum-v0"
    tiny(env="OtherPendulum-v0", replay_buffer_class=DemoReplayBuffer, replay_buffer_kwargs=dict(demonstrations=other)).save_replay_buffer(
        tmp_path / "other"
    )
    with pytest.raises(ValueError, match="recorded on 'OtherPendulum-v0'"):
        model.load_replay_buffer(tmp_path / "other")
    assert model.replay_buffer is buffer


def test_load_checks_the_arguments_it_overrides(tmp_path):
    tiny(seed=0).save(tmp_path / "learned")  # ent_coef "auto"
    with pytest.raises(ValueError, match="policy_delay must be an integer >= 1, got 0"):
        SWFP.load(tmp_path / "learned", policy_delay=0)  # before: a ZeroDivisionError in learn()
    with pytest.raises(ValueError, match=r"saved with ent_coef='auto' \(learned\) and cannot load with ent_coef=0.1 \(fixed\)"):
        SWFP.load(tmp_path / "learned", ent_coef=0.1)  # before: an AttributeError from SB3's load
    assert SWFP.load(tmp_path / "learned", ent_coef="auto_0.5", policy_delay=3).policy_delay == 3
    tiny(seed=0, ent_coef=0.1).save(tmp_path / "fixed")
    assert SWFP.load(tmp_path / "fixed")._current_ent_coef().item() == pytest.approx(0.1)
    # a fixed temperature given to load is the one used (SB3's load restored the saved one over it)
    assert SWFP.load(tmp_path / "fixed", ent_coef=0.5)._current_ent_coef().item() == pytest.approx(0.5)


@pytest.mark.parametrize(
    "option, message",
    [
        (dict(final_learning_rate=-0.01), "final_learning_rate must be >= 0"),
        # a final rate above the first would make the cosine schedule rise (by 5000x here)
        (dict(learning_rate=1e-4, final_learning_rate=0.5), r"final_learning_rate must be >= 0 and <= learning_rate .*got 0.5 with learning_rate=0.0001"),
        (dict(learning_rate="1e-3"), r"learning_rate must be a number, got '1e-3' \(in YAML"),
        (dict(final_learning_rate="1e-4"), r"final_learning_rate must be a number, got '1e-4'"),
        (dict(learning_rate=0.0), "learning_rate must be > 0"),
        (dict(weight_decay=-1e-6), "weight_decay must be >= 0"),
        (dict(critic_warmup_steps=-3), "critic_warmup_steps must be an integer >= 0"),
    ],
)
def test_pretrain_and_its_callback_refuse_numbers_out_of_range(demos, option, message):
    model = tiny(seed=0)
    before = actor_parameters(model)
    with pytest.raises(ValueError, match=message):
        model.pretrain(demos, **{**BC, **option})
    assert same_parameters(actor_parameters(model), before)  # refused before any step
    with pytest.raises(ValueError, match=message):
        BCPretrainCallback(demos, **{**BC, **option})  # at construction, not when learn() starts
    with pytest.raises(ValueError, match="log_interval must be an integer >= 1"):
        model.pretrain(demos, log_interval=0, **BC)


@pytest.mark.parametrize("log_prob_method", ["exact", "hutchinson"])
def test_the_actor_step_weighs_its_terms_with_the_models_coefficients(demos, monkeypatch, log_prob_method):
    """The logged actor loss is the JKO terms and the BC term weighed as the model says (each coefficient a value
    no default has), Q is divided by the batch's mean |Q|, the actor batch has actor_batch_size states, and the
    block's log-determinant is computed as log_prob_method says."""
    model = tiny(
        seed=0, learning_starts=0, ent_coef=0.5, w2_coef=3.0, jko_step_size=0.2, w2_prev_coef=0.7, bc_coef=2.0,
        q_normalization=True, log_prob_method=log_prob_method, actor_batch_size=24,
        replay_buffer_class=DemoReplayBuffer, replay_buffer_kwargs=dict(demonstrations=demos, demo_ratio=0.5),
    )
    losses, methods, updates = [], [], []
    real_loss, real_block, real_update = swfp_module.jko_block_loss, model.actor.block, model._actor_update

    def loss_spy(**kwargs):
        losses.append(kwargs)
        return real_loss(**kwargs)

    def block_spy(features, x, block, method):
        methods.append(method)
        return real_block(features, x, block, method)

    def update_spy(observations, ent_coef):
        updates.append((len(observations), real_update(observations, ent_coef)))
        return updates[-1][1]

    monkeypatch.setattr(swfp_module, "jko_block_loss", loss_spy)
    monkeypatch.setattr(model.actor, "block", block_spy)
    monkeypatch.setattr(model, "_actor_update", update_spy)
    model.learn(10)  # policy_delay 2: five actor steps
    assert len(updates) == len(losses) == 5 and methods == [log_prob_method] * 5
    for (batch, logs), kwargs in zip(updates, losses):
        q = kwargs["q_values"].detach()
        assert batch == 24 and kwargs["w2_prev_coef"] == 0.7 and float(kwargs["ent_coef"]) == 0.5
        assert float(kwargs["q_scale"]) == pytest.approx(q.abs().mean().item())
        assert logs["actor_q_term"] == pytest.approx(-(q / (0.5 * q.abs().mean())).mean().item(), rel=1e-5)
        w2 = 3.0 / (2 * 0.2) * (0.7 * logs["w2_prev"] + logs["w2_old"])
        expected = logs["actor_q_term"] - logs["actor_log_det"] + w2 + 2.0 * logs["bc_loss"]
        assert logs["actor_loss"] == pytest.approx(expected, rel=1e-5)


class _RecordingLogger(Logger):
    """A logger that keeps every recorded value, in order."""

    def __init__(self):
        super().__init__(folder=None, output_formats=[])
        self.values: dict[str, list[float]] = {}

    def record(self, key, value, exclude=None):
        self.values.setdefault(key, []).append(value)
        super().record(key, value, exclude)


def test_pretrain_logs_the_mean_loss_of_each_log_interval(demos, monkeypatch):
    from sb3_swfp.swfp import pretrain as pretrain_module

    model = tiny(seed=0)
    model.set_logger(logger := _RecordingLogger())
    bc_losses, critic_losses = [], []
    check_finite, critic_update = pretrain_module.check_finite, model._critic_update
    monkeypatch.setattr(pretrain_module, "check_finite", lambda *args: bc_losses.append(check_finite(*args)) or bc_losses[-1])

    def recorded_critic_update(*args, **kwargs):
        result = critic_update(*args, **kwargs)
        critic_losses.append(result[1]["critic_loss"])
        return result

    model._critic_update = recorded_critic_update
    model.pretrain(demos, gradient_steps=5, batch_size=16, critic_warmup_steps=3, log_interval=2)
    # windows of two steps, the last one shorter
    assert logger.values["pretrain/bc_loss"] == pytest.approx([np.mean(bc_losses[0:2]), np.mean(bc_losses[2:4]), bc_losses[4]])
    assert logger.values["pretrain/critic_loss"] == pytest.approx([np.mean(critic_losses[0:2]), critic_losses[2]])


def test_pretrain_decays_to_its_final_rate_with_weight_decay_then_warms_the_critics_up(demos, monkeypatch):
    model = tiny(seed=0)
    model.set_logger(logger := _RecordingLogger())
    optimizers = []
    real_adamw = th.optim.AdamW

    def adamw(*args, **kwargs):
        optimizers.append(kwargs)
        return real_adamw(*args, **kwargs)

    monkeypatch.setattr(th.optim, "AdamW", adamw)
    critic, target = ([param.detach().clone() for param in net.parameters()] for net in (model.critic, model.critic_target))
    actor = actor_parameters(model)
    model.pretrain(demos, gradient_steps=6, batch_size=16, learning_rate=2e-3, final_learning_rate=3e-5, weight_decay=0.01, critic_warmup_steps=3, log_interval=1)
    assert [kwargs["weight_decay"] for kwargs in optimizers] == [0.01] and optimizers[0]["lr"] == 2e-3
    assert logger.values["pretrain/learning_rate"][-1] == pytest.approx(3e-5)  # the cosine schedule's end
    assert len(logger.values["pretrain/critic_loss"]) == 3 and model.n_bc_updates == 6
    assert not same_parameters(actor, actor_parameters(model))
    # the warm-up moved the critics and their targets
    assert not all(th.equal(a, b) for a, b in zip(critic, model.critic.parameters()))
    assert not all(th.equal(a, b) for a, b in zip(target, model.critic_target.parameters()))


def test_the_callback_hands_its_arguments_to_pretrain_and_leaves_a_trained_model_alone(demos, monkeypatch):
    options = dict(
        gradient_steps=7, batch_size=9, learning_rate=2e-3, final_learning_rate=1e-5, weight_decay=1e-3, critic_warmup_steps=2,
        clip_actions=True, progress_bar=False, allow_env_mismatch=True, allow_missing_rewards=True,
    )
    model, calls = tiny(seed=0, learning_starts=1_000), []
    monkeypatch.setattr(model, "pretrain", lambda demonstrations, **kwargs: calls.append(kwargs))
    model.learn(2, callback=BCPretrainCallback(demos, **options))
    assert calls == [options]
    # a model that has trained (no BC) is not cloned over when learn() goes on with the callback
    trained = tiny(seed=0, learning_starts=0).learn(10)
    trained.learn(5, callback=BCPretrainCallback(demos, **BC), reset_num_timesteps=False)
    assert trained.n_bc_updates == 0
    from stable_baselines3 import SAC

    with pytest.raises(TypeError, match="BCPretrainCallback needs an SWFP model, got SAC"):
        SAC("MlpPolicy", ENV_ID, learning_starts=1_000).learn(2, callback=BCPretrainCallback(demos, **BC))


def test_a_progress_bar_without_tqdm_is_refused_before_any_work_with_what_to_install(demos, monkeypatch):
    """pretrain updated the VecNormalize statistics with the demonstrations, then failed: a retry counted them twice."""
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "tqdm" else real_find_spec(name, *args))
    env = VecNormalize(make_vec_env(ENV_ID, n_envs=1, seed=0), norm_reward=False)
    model = tiny(env=env, seed=0)
    count, before = env.obs_rms.count, actor_parameters(model)
    message = r"progress_bar=True needs 'tqdm', which is not installed: pip install \"sb3-swfp\[examples\]\""
    with pytest.raises(ModuleNotFoundError, match=message):
        model.pretrain(demos, progress_bar=True, **BC)
    assert env.obs_rms.count == count and same_parameters(before, actor_parameters(model))
    with pytest.raises(ModuleNotFoundError, match=message):
        model.learn(10, progress_bar=True)
    assert model.num_timesteps == 0


def test_a_tensorboard_log_without_tensorboard_is_refused_before_any_work(demos, monkeypatch, tmp_path):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "tensorboard" else real_find_spec(name, *args))
    env = VecNormalize(make_vec_env(ENV_ID, n_envs=1, seed=0), norm_reward=False)
    model = tiny(env=env, seed=0, tensorboard_log=str(tmp_path))
    count = env.obs_rms.count
    message = r"tensorboard_log needs 'tensorboard', which is not installed: pip install \"sb3-swfp\[examples\]\""
    with pytest.raises(ModuleNotFoundError, match=message):
        model.pretrain(demos, **BC)
    assert env.obs_rms.count == count and model.n_bc_updates == 0
    with pytest.raises(ModuleNotFoundError, match=message):
        model.learn(10)
    assert model.num_timesteps == 0
    # a logger of one's own: SB3 makes no writer then, and nothing is asked for
    model.set_logger(Logger(folder=None, output_formats=[]))
    model.learn(10)
    assert model.num_timesteps == 10


def test_require_takes_a_missing_parent_package_as_missing(monkeypatch):
    from sb3_swfp.common.checks import require

    require(("numpy", "torch.nn"), "this test", "tests")  # installed: nothing raised
    with pytest.raises(ModuleNotFoundError, match=r"this test needs 'no_such_package.sub', which is not installed"):
        require(("no_such_package.sub",), "this test", "tests")
    import sys
    import types

    stub = types.ModuleType("a_stub_without_a_spec")  # as a test or a plugin puts one in sys.modules
    monkeypatch.setitem(sys.modules, "a_stub_without_a_spec", stub)
    require(("a_stub_without_a_spec",), "this test", "tests")  # there to import: nothing raised


def test_a_non_finite_critic_warm_up_loss_names_the_warm_up_and_its_step(demos):
    from sb3_swfp.common.losses import NonFiniteLossError

    huge = Demonstrations(**{**demos.__dict__, "rewards": np.full_like(demos.rewards, 1e30)})
    with pytest.raises(NonFiniteLossError, match=r"'pretrain/critic_loss' is inf at gradient update 1;"):
        tiny().pretrain(huge, gradient_steps=1, batch_size=8, critic_warmup_steps=2)


@pytest.mark.parametrize("demo_buffer", [False, True], ids=["sb3_n_step_buffer", "demo_replay_buffer"])
def test_n_step_returns_stop_where_learn_resets_the_env_and_where_a_restored_buffer_ends(demos, tmp_path, demo_buffer):
    """learn() with reset_num_timesteps=True resets the env: the episode left running in the buffer ends there, and
    no n-step return may run on into the next episode's transitions (reward r4 only, discount gamma^1, bootstrapping
    from transition 4's own next observation).  So does the last episode of a buffer restored with
    load_replay_buffer(truncate_last_traj=True), SB3's default."""
    kwargs = dict(replay_buffer_class=DemoReplayBuffer, replay_buffer_kwargs=dict(demonstrations=demos)) if demo_buffer else {}
    gamma = 0.5
    model = tiny(seed=0, learning_starts=1_000, n_steps=3, gamma=gamma, **kwargs)

    def only_transition_4(buffer):
        batch = buffer._get_samples(np.array([4]))  # the online transitions of the first learn() call: 0..4
        np.testing.assert_allclose(batch.rewards.item(), buffer.rewards[4, 0], rtol=1e-6)
        assert batch.discounts.item() == pytest.approx(gamma) and batch.dones.item() == 0  # a truncation: bootstraps
        np.testing.assert_array_equal(batch.next_observations[0].numpy(), buffer.next_observations[4, 0])
        # one-step targets are unchanged: the transition bootstraps, as before
        assert buffer.dones[4, 0] * (1 - buffer.timeouts[4, 0]) == 0

    model.learn(5)
    model.save_replay_buffer(tmp_path / "buffer")
    model.learn(5)  # reset_num_timesteps=True: a new episode starts at transition 5
    assert not np.array_equal(model.replay_buffer.next_observations[4, 0], model.replay_buffer.observations[5, 0])
    only_transition_4(model.replay_buffer)

    restored = tiny(seed=1, learning_starts=1_000, n_steps=3, gamma=gamma, **kwargs)
    restored.learn(2)  # an env of its own, its episode running
    restored.load_replay_buffer(tmp_path / "buffer")  # truncate_last_traj=True: the saved episode was finished
    restored.learn(3, reset_num_timesteps=False)  # continues its own episode (no reset), after the restored transitions
    only_transition_4(restored.replay_buffer)


@pytest.mark.parametrize("handle_timeout_termination", [True, False])
def test_the_critic_warm_up_takes_truncations_as_the_online_buffer_does(demos, monkeypatch, handle_timeout_termination):
    """A buffer made with handle_timeout_termination=False (as optimize_memory_usage=True needs) ends its targets at a
    truncation, online transitions and demonstrations alike: so do the warm-up's targets on the same demonstrations."""
    truncated = demos.subset(slice(len(demos) - 1, len(demos)))  # the episode's last transition: a time-limit truncation
    assert truncated.truncations.all() and not truncated.terminations.any()
    online = tiny(seed=0, replay_buffer_class=DemoReplayBuffer,
                  replay_buffer_kwargs=dict(demonstrations=truncated, handle_timeout_termination=handle_timeout_termination))  # fmt: skip
    expected = 0.0 if handle_timeout_termination else 1.0
    assert th.all(online.replay_buffer.sample(8).dones == expected)  # what learn() trains on
    seen = []
    real = swfp_module.soft_q_target
    monkeypatch.setattr(swfp_module, "soft_q_target", lambda **kwargs: seen.append(kwargs["dones"]) or real(**kwargs))
    model = tiny(seed=0, replay_buffer_kwargs=dict(handle_timeout_termination=handle_timeout_termination))
    model.pretrain(truncated, critic_warmup_steps=2, **BC)
    assert len(seen) == 2 and all(th.all(dones == expected) for dones in seen)
