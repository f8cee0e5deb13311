"""The paper's toy (Sec. 5.1, Fig. 3): the BC flow is multimodal, SWFP moves mass into high-reward modes without collapse."""

import numpy as np
import pytest
from stable_baselines3 import SAC

from sb3_swfp import SWFP
from sb3_swfp.common.gaussian_bc import gaussian_behaviour_cloning
from sb3_swfp.envs.toy import (
    HIGH_REWARD_MODES,
    TOY_BC_KWARGS,
    TOY_SWFP_KWARGS,
    ToyBanditEnv,
    high_reward_mode_share,
    mode_shares,
    toy_demonstrations,
)

OBS = np.zeros((2000, 1), np.float32)


@pytest.fixture
def pretrained():
    """A freshly pretrained model per test: the tests consume random numbers, so none may share one."""
    demos = toy_demonstrations(1000, seed=0)
    model = SWFP("FlowPolicy", ToyBanditEnv(), seed=0, **TOY_SWFP_KWARGS)
    model.pretrain(demos, **TOY_BC_KWARGS)
    return model, demos


def test_bc_flow_covers_the_modes_and_a_gaussian_actor_does_not(pretrained):
    model, demos = pretrained
    flow_shares = mode_shares(model.predict(OBS)[0])
    assert (flow_shares >= 0.05).sum() >= 7, flow_shares
    gaussian = SAC("MlpPolicy", ToyBanditEnv(), seed=0)
    gaussian_behaviour_cloning(gaussian, demos, gradient_steps=TOY_BC_KWARGS["gradient_steps"], seed=0)
    gaussian_shares = mode_shares(gaussian.predict(OBS)[0])
    assert (gaussian_shares >= 0.05).sum() < 7, gaussian_shares


def test_finetuning_gathers_mass_in_every_high_reward_mode(pretrained):
    model, _ = pretrained
    before = high_reward_mode_share(model.predict(OBS)[0])
    model.learn(4000)
    actions = model.predict(OBS)[0]
    shares = mode_shares(actions)
    high = high_reward_mode_share(actions)
    assert before < 0.5 and high >= 0.9, (before, high, shares)
    # no collapse: each high-reward mode keeps >= 10% of the high-reward samples
    per_high_mode = shares[list(HIGH_REWARD_MODES)] / shares[list(HIGH_REWARD_MODES)].sum()
    assert per_high_mode.min() >= 0.1, per_high_mode
