"""Gaussian BC of a SAC actor (the unimodal baseline): checked as SWFP.pretrain is, and under VecNormalize."""

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import SAC
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from sb3_swfp.common.gaussian_bc import gaussian_behaviour_cloning
from sb3_swfp.demos import collect_demonstrations
from sb3_swfp.experts import PendulumSwingUpExpert


@pytest.fixture(scope="module")
def demos():
    return collect_demonstrations("Pendulum-v1", PendulumSwingUpExpert(noise_std=0.3, seed=0), n_episodes=1, seed=0)


def sac(env="Pendulum-v1"):
    return SAC("MlpPolicy", env, seed=0, device="cpu", policy_kwargs=dict(net_arch=[16]))


def test_under_vec_normalize_bc_trains_on_normalised_observations_with_the_demonstrations_counted(demos):
    venv = VecNormalize(DummyVecEnv([lambda: gym.make("Pendulum-v1")]), norm_reward=False)
    model = sac(venv)
    seen = []
    forward = model.actor.get_action_dist_params
    model.actor.get_action_dist_params = lambda obs: (seen.append(obs.detach().clone()), forward(obs))[1]
    gaussian_behaviour_cloning(model, demos, gradient_steps=2, batch_size=8, seed=0)
    assert venv.obs_rms.count == pytest.approx(len(demos) + 1e-4)  # the statistics have seen the demonstrations
    normalised = venv.normalize_obs(demos.observations.astype(np.float32))
    for batch in seen:  # each row is a demonstration observation, normalised as the actor reads it online
        distances = np.abs(batch.numpy()[:, None, :] - normalised[None]).max(axis=2).min(axis=1)
        assert distances.max() < 1e-5


def test_arguments_and_demonstrations_are_checked_as_pretrain_checks_them(demos):
    model = sac()
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        gaussian_behaviour_cloning(model, demos, batch_size=0)
    with pytest.raises(ValueError, match="gradient_steps must be an integer >= 0, got -5"):
        gaussian_behaviour_cloning(model, demos, gradient_steps=-5)
    for learning_rate, message in ((0, "learning_rate must be > 0"), (-1e-3, "learning_rate must be > 0"), ("1e-3", "learning_rate must be a number")):
        with pytest.raises(ValueError, match=message):
            gaussian_behaviour_cloning(model, demos, learning_rate=learning_rate)
    other = dataclasses.replace(demos, metadata={**demos.metadata, "env_id": "MountainCarContinuous-v0"})
    with pytest.raises(ValueError, match="recorded on 'MountainCarContinuous-v0'"):
        gaussian_behaviour_cloning(model, other, gradient_steps=1)
    with pytest.warns(UserWarning, match="using them anyway"):
        gaussian_behaviour_cloning(model, other, gradient_steps=1, allow_env_mismatch=True)
    outside = dataclasses.replace(demos, actions=demos.actions * 10)
    with pytest.raises(ValueError, match="Pass clip_actions=True"):
        gaussian_behaviour_cloning(model, outside, gradient_steps=1)
    assert len(gaussian_behaviour_cloning(model, outside, gradient_steps=1, clip_actions=True)) == 1  # the advice works
