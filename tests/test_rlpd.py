"""RLPD-style SAC: SB3's SAC with LayerNorm critics, symmetric sampling and several updates per env step."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import SAC
from torch import nn

from sb3_swfp.demos import collect_demonstrations
from sb3_swfp.experts import PendulumSwingUpExpert
from sb3_swfp.rlpd import RLPD, LayerNormSACPolicy, rlpd_sac_kwargs

from helpers import ACTION_SPACE, DICT_SPACE, episodic_demos


@pytest.fixture(scope="module")
def demos():
    return collect_demonstrations("Pendulum-v1", PendulumSwingUpExpert(seed=0), n_steps=200, seed=0)


def test_rlpd_sac_learns_with_layer_norm_critics_half_demo_batches_and_two_updates_per_step(demos, tmp_path):
    model = SAC(env="Pendulum-v1", seed=0, batch_size=32, policy_kwargs=dict(net_arch=[32]), **rlpd_sac_kwargs(demos))
    assert isinstance(model.policy, LayerNormSACPolicy)
    for critic in (model.critic, model.critic_target):
        layers = [type(module) for module in critic.qf0]
        assert layers == [nn.Linear, nn.LayerNorm, nn.ReLU, nn.Linear]  # hidden layer normalised, output not
    model.learn(60)
    assert model._n_updates == 2 * 60  # learning from the first step, two gradient steps per env step
    batch = model.replay_buffer.sample(32)
    assert model.replay_buffer.demo_ratio == 0.5 and len(batch.observations) == 32
    model.save(tmp_path / "rlpd")
    loaded = SAC.load(tmp_path / "rlpd", env=gym.make("Pendulum-v1"), replay_buffer_kwargs=dict(demonstrations=demos, demo_ratio=0.5))
    obs = np.zeros((1, 3), np.float32)
    assert isinstance(loaded.policy, LayerNormSACPolicy)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    with th.no_grad():
        assert th.equal(th.cat(loaded.critic(th.as_tensor(obs), th.zeros(1, 1))), th.cat(model.critic(th.as_tensor(obs), th.zeros(1, 1))))


def test_rlpd_kwargs_are_checked(demos):
    with pytest.raises(ValueError, match="utd must be an integer >= 1"):
        rlpd_sac_kwargs(demos, utd=0)
    with pytest.raises(TypeError, match="n_critic is not an argument of SAC"):
        rlpd_sac_kwargs(demos, n_critic=10)
    with pytest.raises(ValueError, match="utd must be an integer >= 1 .*got True"):
        rlpd_sac_kwargs(demos, utd=True)
    assert rlpd_sac_kwargs(demos, utd=np.int64(3))["gradient_steps"] == 3


def test_a_buffer_override_keeps_the_demonstrations_and_their_share(demos):
    kwargs = rlpd_sac_kwargs(demos, demo_ratio=0.25, replay_buffer_kwargs=dict(clip_actions=True))
    assert kwargs["replay_buffer_kwargs"] == dict(demonstrations=demos, demo_ratio=0.25, clip_actions=True)
    model = SAC(env="Pendulum-v1", batch_size=32, policy_kwargs=dict(net_arch=[32]), **kwargs)
    assert model.replay_buffer.demo_ratio == 0.25
    repeated = rlpd_sac_kwargs(demos, replay_buffer_kwargs=dict(demonstrations=demos, demo_ratio=0.3))  # as before the merge
    assert repeated["replay_buffer_kwargs"] == dict(demonstrations=demos, demo_ratio=0.3)


class DictEnv(gym.Env):
    """Dict observations of helpers.DICT_SPACE, helpers.ACTION_SPACE, 5-step episodes."""

    observation_space, action_space = DICT_SPACE, ACTION_SPACE

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self.t += 1
        return self.observation_space.sample(), 0.0, False, self.t >= 5, {}


def test_dict_observations_are_read_with_or_without_the_flag_and_a_box_with_it_is_refused(demos):
    from stable_baselines3.common.torch_layers import CombinedExtractor

    for flag in (False, True):
        kwargs = rlpd_sac_kwargs(episodic_demos(dict_obs=True), dict_observations=flag, replay_buffer_kwargs=dict(allow_env_mismatch=True))
        model = SAC(env=DictEnv(), batch_size=4, policy_kwargs=dict(net_arch=[8]), **kwargs)
        assert isinstance(model.policy.actor.features_extractor, CombinedExtractor)
        model.learn(4)
    with pytest.raises(ValueError, match="leave dict_observations False"):
        SAC(env="Pendulum-v1", **rlpd_sac_kwargs(demos, dict_observations=True))


def test_n_steps_and_gamma_reach_the_demonstration_buffer(demos):
    # SB3 ignores SAC's n_steps with a buffer class of one's own: the buffer takes it, with SAC's gamma
    model = SAC(env="Pendulum-v1", batch_size=8, policy_kwargs=dict(net_arch=[8]), **rlpd_sac_kwargs(demos, n_steps=3, gamma=0.9))
    assert (model.replay_buffer.n_steps, model.replay_buffer.gamma) == (3, 0.9)
    assert th.allclose(model.replay_buffer.sample(8).discounts, th.tensor(0.9**3))
    # the buffer's own n_steps discounts with SAC's gamma, not the buffer's default 0.99
    model = SAC(env="Pendulum-v1", batch_size=8, policy_kwargs=dict(net_arch=[8]), **rlpd_sac_kwargs(demos, gamma=0.9, replay_buffer_kwargs=dict(n_steps=3)))
    assert (model.replay_buffer.n_steps, model.replay_buffer.gamma) == (3, 0.9)
    with pytest.raises(ValueError, match="replay_buffer_kwargs gamma=0.99 but SAC's gamma=0.9"):
        rlpd_sac_kwargs(demos, gamma=0.9, replay_buffer_kwargs=dict(n_steps=3, gamma=0.99))
    with pytest.raises(ValueError, match="replay_buffer_kwargs n_steps=2 but SAC's n_steps=3"):
        rlpd_sac_kwargs(demos, n_steps=3, replay_buffer_kwargs=dict(n_steps=2))
    # given in the buffer's arguments only (as docs/demonstrations.md says for SAC), the buffer's gamma is SAC's too
    kwargs = rlpd_sac_kwargs(demos, replay_buffer_kwargs=dict(n_steps=3, gamma=0.98))
    assert kwargs["gamma"] == 0.98 and (kwargs["replay_buffer_kwargs"]["n_steps"], kwargs["replay_buffer_kwargs"]["gamma"]) == (3, 0.98)


def quiet(model):
    """``model`` with a logger that writes nothing, for ``train()`` outside ``learn()``."""
    from stable_baselines3.common.logger import configure

    model.set_logger(configure(None, []))
    return model


def constant_critics(critic, values):
    """Make critic j output values[j] everywhere: its read-out layer's weights zero, its bias the value."""
    with th.no_grad():
        for q_net, value in zip(critic.q_networks, values):
            q_net[-1].weight.zero_()
            q_net[-1].bias.fill_(float(value))


def test_rlpd_target_is_the_minimum_over_a_random_two_of_its_ten_critics(demos):
    model = RLPD(env="Pendulum-v1", seed=0, batch_size=8, policy_kwargs=dict(net_arch=[8]), **rlpd_sac_kwargs(demos))
    assert model.critic.n_critics == 10 and isinstance(model.policy, LayerNormSACPolicy)
    constant_critics(model.critic_target, range(10))
    obs, actions = th.zeros(4, 3), th.zeros(4, 1)
    draws = [model._target_q_values(obs, actions) for _ in range(2000)]
    assert all(q.shape == (4, 2) and q[0, 0] != q[0, 1] and th.equal(q[0], q[3]) for q in draws)  # two distinct critics per step
    minima = th.stack([q[0].min() for q in draws])
    # the minimum of a random pair of {0, ..., 9}: k with probability (9 - k) / 45, mean 120 / 45
    assert abs(minima.mean().item() - 120 / 45) < 0.15 and minima.max() <= 8
    assert len({tuple(sorted(q[0].tolist())) for q in draws}) == 45  # every pair is drawn
    model.target_critics = None  # SAC's target: all ten
    assert th.equal(model._target_q_values(obs, actions)[0], th.arange(10.0))


def test_rlpd_actor_maximises_the_critics_mean(demos):
    for actor_q, q in (("mean", 4.5), ("min", 0.0)):
        model = RLPD(env="Pendulum-v1", seed=0, actor_q=actor_q, batch_size=8, policy_kwargs=dict(net_arch=[8]), **rlpd_sac_kwargs(demos))
        constant_critics(model.critic, range(10))
        loss, log_prob = model._actor_update(th.zeros(16, 3), th.tensor(0.5))
        assert loss == pytest.approx(0.5 * log_prob.mean().item() - q, abs=1e-5)


def test_rlpd_steps_its_critics_utd_times_and_its_actor_and_temperature_once_per_env_step(demos, tmp_path):
    model = RLPD(env="Pendulum-v1", seed=0, batch_size=16, policy_kwargs=dict(net_arch=[16]), **rlpd_sac_kwargs(demos, utd=3))
    assert model.target_entropy == -0.5  # RLPD's -dim(A)/2 (SAC's: -1)
    assert RLPD(env="Pendulum-v1", target_entropy=-2.0, **rlpd_sac_kwargs(demos)).target_entropy == -2.0
    model.learn(20)

    def adam_steps(optimizer):
        return int(optimizer.state_dict()["state"][0]["step"])

    assert model._n_updates == 60 and adam_steps(model.critic.optimizer) == 60
    assert adam_steps(model.actor.optimizer) == 20 and adam_steps(model.ent_coef_optimizer) == 20
    model.save(tmp_path / "rlpd")
    loaded = RLPD.load(tmp_path / "rlpd", env=gym.make("Pendulum-v1"), replay_buffer_kwargs=dict(demonstrations=demos, demo_ratio=0.5))
    assert (loaded.target_critics, loaded.actor_q, loaded.target_entropy, loaded.critic.n_critics) == (2, "mean", -0.5, 10)
    obs = np.zeros((1, 3), np.float32)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    loaded.learn(2)  # and it trains on


def test_rlpd_arguments_are_checked(demos):
    with pytest.raises(ValueError, match="target_critics must be an integer >= 1, got 0"):
        RLPD(env="Pendulum-v1", target_critics=0, **rlpd_sac_kwargs(demos))
    with pytest.raises(ValueError, match="target_critics=3 but the policy has 2 critics"):
        RLPD(env="Pendulum-v1", target_critics=3, **rlpd_sac_kwargs(demos, policy_kwargs=dict(n_critics=2)))
    with pytest.raises(ValueError, match="unknown actor_q 'max', expected one of 'min', 'mean'"):
        RLPD(env="Pendulum-v1", actor_q="max", **rlpd_sac_kwargs(demos))
    assert type(RLPD("MlpPolicy", "Pendulum-v1").policy) is LayerNormSACPolicy  # the aliases are the LayerNorm policies


def test_rlpd_loads_without_an_env_and_a_loaded_auto_target_entropy_is_rlpds(demos, tmp_path):
    model = RLPD(env="Pendulum-v1", seed=0, batch_size=8, policy_kwargs=dict(net_arch=[8]), **rlpd_sac_kwargs(demos))
    model.save(tmp_path / "rlpd")
    obs = np.zeros((1, 3), np.float32)
    for loaded in (RLPD.load(tmp_path / "rlpd"), RLPD.load(tmp_path / "rlpd", device="cpu", custom_objects=dict(learning_rate=1e-4))):
        assert loaded.target_entropy == -0.5 and loaded.env is None
        np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    assert RLPD.load(tmp_path / "rlpd", custom_objects=dict(target_entropy="auto")).target_entropy == -0.5  # RLPD's auto, not SAC's -1
    assert RLPD.load(tmp_path / "rlpd", target_entropy="auto").target_entropy == -0.5
    with pytest.raises(ValueError, match="target_critics must be an integer >= 1, got 1.5"):
        RLPD.load(tmp_path / "rlpd", target_critics=1.5)


def test_rlpd_critic_step_regresses_on_the_soft_target_of_the_drawn_minimum(demos, monkeypatch):
    from stable_baselines3.common.type_aliases import ReplayBufferSamples

    import sb3_swfp.rlpd as rlpd

    model = RLPD(env="Pendulum-v1", seed=0, gamma=0.9, target_critics=10, batch_size=4, policy_kwargs=dict(net_arch=[8]), **rlpd_sac_kwargs(demos))
    constant_critics(model.critic_target, range(1, 11))  # min 1, mean 5.5
    monkeypatch.setattr(model.actor, "action_log_prob", lambda obs: (th.zeros(len(obs), 1), th.full((len(obs),), -2.0)))
    targets, soft_q_loss = [], rlpd.soft_q_loss
    monkeypatch.setattr(rlpd, "soft_q_loss", lambda **kwargs: targets.append(kwargs["target_q_values"]) or soft_q_loss(**kwargs))
    zeros = th.zeros(4, 3)
    batch = ReplayBufferSamples(zeros, th.zeros(4, 1), zeros, th.tensor([[0.0], [1.0], [0.0], [0.0]]), th.tensor([[1.0], [2.0], [3.0], [4.0]]))
    model._critic_update(batch, th.tensor(0.5), 0)
    # r + gamma (1 - done) (min_j Qbar_j - alpha log pi) with entropy backup: 1 - 0.5 * -2 = 2
    assert th.allclose(targets[0].reshape(-1), th.tensor([1 + 0.9 * 2, 2.0, 3 + 0.9 * 2, 4 + 0.9 * 2]))


def test_rlpd_targets_follow_the_critics_every_target_update_interval_steps(demos):
    def trained(interval):
        model = quiet(RLPD(env="Pendulum-v1", seed=0, tau=1.0, target_update_interval=interval, batch_size=8, policy_kwargs=dict(net_arch=[8]), **rlpd_sac_kwargs(demos)))
        model.train(gradient_steps=3, batch_size=8)
        return all(th.equal(a, b) for a, b in zip(model.critic.parameters(), model.critic_target.parameters()))

    assert trained(1) and trained(2)  # copied at steps 0 and 2: the last critic step's weights
    assert not trained(3)  # copied at step 0 only


def test_rlpd_temperature_moves_towards_its_target_entropy_and_the_actor_takes_the_last_batch(demos):
    for target_entropy, rises in ((100.0, True), (-100.0, False)):
        model = quiet(RLPD(env="Pendulum-v1", seed=0, ent_coef="auto_0.5", target_entropy=target_entropy, batch_size=8, policy_kwargs=dict(net_arch=[8]), **rlpd_sac_kwargs(demos)))
        batches, actor_batches, actor_update = [], [], model._actor_update
        sample = model.replay_buffer.sample
        model.replay_buffer.sample = lambda *args, **kwargs: batches.append(sample(*args, **kwargs)) or batches[-1]
        model._actor_update = lambda obs, ent_coef: actor_batches.append(obs) or actor_update(obs, ent_coef)
        model.train(gradient_steps=3, batch_size=8)
        assert len(batches) == 3 and len(actor_batches) == 1 and actor_batches[0] is batches[-1].observations
        assert (model.log_ent_coef.item() > np.log(0.5)) == rises
        assert model.logger.name_to_value["train/ent_coef"] == pytest.approx(0.5)  # the alpha of this update, exp(log alpha)


def test_rlpd_takes_one_actor_step_per_env_step_whatever_train_freq(demos):
    def adam_steps(optimizer):
        return int(optimizer.state_dict()["state"][0]["step"])

    kwargs = dict(seed=0, batch_size=8, policy_kwargs=dict(net_arch=[8]))
    model = RLPD(env="Pendulum-v1", **kwargs, **rlpd_sac_kwargs(demos, train_freq=(1, "episode"), gradient_steps=-1))
    model.learn(400)  # two 200-step episodes, one critic step per env step (SB3's gradient_steps=-1)
    assert (adam_steps(model.critic.optimizer), adam_steps(model.actor.optimizer), adam_steps(model.ent_coef_optimizer)) == (400, 400, 400)
    model = RLPD(env="Pendulum-v1", **kwargs, **rlpd_sac_kwargs(demos, train_freq=4, gradient_steps=8))
    model.learn(20)  # update-to-data ratio 2: two critic steps, then one actor step, per env step
    assert (adam_steps(model.critic.optimizer), adam_steps(model.actor.optimizer)) == (40, 20)


def test_rlpd_resamples_the_sde_noise_at_every_critic_step(demos, monkeypatch):
    model = quiet(RLPD(env="Pendulum-v1", seed=0, use_sde=True, batch_size=8, policy_kwargs=dict(net_arch=[8]), **rlpd_sac_kwargs(demos)))
    resets, reset = [], model.actor.reset_noise
    monkeypatch.setattr(model.actor, "reset_noise", lambda *args: resets.append(args) or reset(*args))
    model.train(gradient_steps=3, batch_size=8)
    assert len(resets) == 4  # as SAC: before each of the three critic targets' next actions, and the actor's


def test_rlpd_cnn_policy_has_layer_norm_critics():
    from gymnasium import spaces

    class ImageEnv(gym.Env):
        observation_space, action_space = spaces.Box(0, 255, (36, 36, 3), np.uint8), spaces.Box(-1, 1, (2,), np.float32)

        def reset(self, seed=None, options=None):
            return self.observation_space.sample(), {}

        def step(self, action):
            return self.observation_space.sample(), 0.0, False, False, {}

    model = RLPD("CnnPolicy", ImageEnv(), buffer_size=16, batch_size=4, learning_starts=0, policy_kwargs=dict(net_arch=[8]))
    assert isinstance(model.policy, LayerNormSACPolicy) and nn.LayerNorm in [type(module) for module in model.critic.qf0]
    model.learn(3)


def only_transition_4(buffer, gamma):
    """The n-step return sampled at transition 4, the last of an episode that ends there: r4 alone, discount
    gamma^1, bootstrapping from its own next observation."""
    batch = buffer._get_samples(np.array([4]))
    np.testing.assert_allclose(batch.rewards.item(), buffer.rewards[4, 0], rtol=1e-6)
    assert batch.discounts.item() == pytest.approx(gamma) and batch.dones.item() == 0
    np.testing.assert_array_equal(batch.next_observations[0].numpy(), buffer.next_observations[4, 0])


def test_rlpd_n_step_returns_stop_where_learn_resets_the_env_and_where_a_restored_buffer_ends(demos, tmp_path):
    """As SWFP's: the episode running when learn() resets the env (or load_replay_buffer restores a buffer) ends
    there; an n-step return at its last transition is r4 alone, discount gamma^1, bootstrapping from its own next obs."""
    gamma = 0.5
    kwargs = dict(learning_starts=1_000, buffer_size=100, policy_kwargs=dict(net_arch=[8], n_critics=2))

    model = RLPD(env="Pendulum-v1", seed=0, **{**rlpd_sac_kwargs(demos, n_steps=3, gamma=gamma), **kwargs})
    model.learn(5)
    model.save_replay_buffer(tmp_path / "buffer")
    model.learn(5)  # reset_num_timesteps=True: a new episode starts at transition 5
    only_transition_4(model.replay_buffer, gamma)
    restored = RLPD(env="Pendulum-v1", seed=1, **{**rlpd_sac_kwargs(demos, n_steps=3, gamma=gamma), **kwargs})
    restored.learn(2)
    restored.load_replay_buffer(tmp_path / "buffer")
    restored.learn(3, reset_num_timesteps=False)
    only_transition_4(restored.replay_buffer, gamma)


@pytest.mark.parametrize("algo", ["SAC", "TD3"])
def test_sb3_n_step_returns_stop_where_a_second_learn_resets_the_env(demos, algo):
    """SB3's SAC and TD3 end no episode where learn() resets the env; the demonstration buffer sees the join (the
    new observation is not the running transition's next one) and ends it there, as RLPD and SWFP do."""
    import stable_baselines3

    gamma = 0.5
    kwargs = rlpd_sac_kwargs(demos, n_steps=3, gamma=gamma, learning_starts=1_000, buffer_size=100)
    kwargs.pop("policy")  # the LayerNorm policy is SAC's; TD3 takes its own
    model = getattr(stable_baselines3, algo)("MlpPolicy", "Pendulum-v1", seed=0, policy_kwargs=dict(net_arch=[8]), **kwargs)
    model.learn(5)
    model.learn(5)  # reset_num_timesteps=True: a new episode starts at transition 5
    buffer = model.replay_buffer
    assert buffer.dones[:10, 0].tolist() == [0] * 4 + [1] + [0] * 5 and buffer.timeouts[4, 0] == 1  # nothing else ends
    only_transition_4(buffer, gamma)
    batch = buffer._get_samples(np.array([2]))  # r2 + gamma r3 + gamma^2 r4: the episode's own three steps
    expected = buffer.rewards[2, 0] + gamma * buffer.rewards[3, 0] + gamma**2 * buffer.rewards[4, 0]
    np.testing.assert_allclose(batch.rewards.item(), expected, rtol=1e-5)


def test_layer_norm_critics_take_the_policys_activation():
    model = SAC(LayerNormSACPolicy, "Pendulum-v1", buffer_size=100, policy_kwargs=dict(net_arch=[8], activation_fn=nn.Tanh))
    assert [type(module) for module in model.critic.qf0] == [nn.Linear, nn.LayerNorm, nn.Tanh, nn.Linear]


def test_rlpd_refuses_demonstrations_recorded_on_another_env(demos):
    import dataclasses

    from sb3_swfp.demos import DemoReplayBuffer

    class Renamed(gym.Wrapper):
        @property
        def spec(self):
            return dataclasses.replace(self.env.spec, id="OtherPendulum-v0")

    assert demos.metadata["env_id"] == "Pendulum-v1"
    kwargs = dict(buffer_size=100, replay_buffer_class=DemoReplayBuffer, replay_buffer_kwargs=dict(demonstrations=demos))
    with pytest.raises(ValueError, match="recorded on 'Pendulum-v1' .* but the env is 'OtherPendulum-v0'"):
        RLPD("MlpPolicy", Renamed(gym.make("Pendulum-v1")), **kwargs)
    model = RLPD("MlpPolicy", "Pendulum-v1", **kwargs)
    with pytest.raises(ValueError, match="but the env is 'OtherPendulum-v0'"):
        model.set_env(Renamed(gym.make("Pendulum-v1")))
    # on purpose: a warning, and the model trains
    mismatch = dict(kwargs, replay_buffer_kwargs=dict(demonstrations=demos, allow_env_mismatch=True))
    with pytest.warns(UserWarning, match="using them anyway"):
        RLPD("MlpPolicy", Renamed(gym.make("Pendulum-v1")), **mismatch)
