"""The fine-tuning preset on the toy with a fixed critic: an uninformative critic leaves the BC flow where it is,
the true reward moves it into the high-reward modes and keeps every one of them."""

import copy

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.utils import polyak_update

from sb3_swfp import SWFP
from sb3_swfp.envs.toy import (
    ANNULUS_DEPTH,
    ANNULUS_STD,
    HIGH_REWARD_CENTRES,
    HIGH_REWARD_HEIGHT,
    HIGH_REWARD_MODES,
    HIGH_REWARD_STD,
    MODE_RADIUS,
    TOY_BC_KWARGS,
    ToyBanditEnv,
    high_reward_mode_share,
    mode_shares,
    toy_demonstrations,
    toy_reward,
)
from sb3_swfp.presets import FINETUNE_KWARGS, PRETRAIN_KWARGS, finetune_kwargs

OBS = np.zeros((2000, 1), np.float32)


def toy_reward_torch(actions: th.Tensor) -> th.Tensor:
    """:func:`toy_reward` in torch, differentiable: (batch, 2) -> (batch, 1)."""
    centres = th.as_tensor(HIGH_REWARD_CENTRES, dtype=actions.dtype)
    bump = th.exp(-((actions[:, None, :] - centres) ** 2).sum(-1) / (2 * HIGH_REWARD_STD**2)).max(dim=1).values
    annulus = th.exp(-((actions.norm(dim=-1) - MODE_RADIUS) ** 2) / (2 * ANNULUS_STD**2))
    return (HIGH_REWARD_HEIGHT * bump - ANNULUS_DEPTH * (1.0 - bump) * annulus).unsqueeze(-1)


def test_torch_reward_is_the_toy_reward():
    actions = np.random.default_rng(0).uniform(-1, 1, (100, 2))
    np.testing.assert_allclose(toy_reward_torch(th.as_tensor(actions)).squeeze(-1).numpy(), toy_reward(actions), atol=1e-12)


@pytest.fixture(scope="module")
def cloned():
    """The toy's demonstrations behaviour-cloned with the preset (the toy's BC budget), once per module."""
    demos = toy_demonstrations(1000, seed=0)
    model = SWFP("FlowPolicy", ToyBanditEnv(), seed=0, **finetune_kwargs(demos))
    model.pretrain(demos, gradient_steps=TOY_BC_KWARGS["gradient_steps"])
    return model


@pytest.fixture
def bc_flow(cloned):
    """A copy of the BC flow for one test, with torch's generator reset: each test draws its own numbers."""
    th.manual_seed(0)
    return copy.deepcopy(cloned)


def fix_critic(model: SWFP, q_function) -> None:
    n_critics = len(model.critic.q_networks)
    model.critic.forward = lambda observations, actions: tuple(q_function(actions) for _ in range(n_critics))


def actor_updates(model: SWFP, n: int) -> None:
    """``n`` actor (JKO) steps of the preset, each followed by the target actor's polyak step, as in ``train``."""
    states, ent_coef = th.zeros(model.batch_size, 1), model._current_ent_coef()
    for _ in range(n):
        model._actor_update(states, ent_coef)
        polyak_update(model.actor.parameters(), model.actor_target.parameters(), model.actor_tau)


def samples(model: SWFP, actor) -> np.ndarray:
    with th.no_grad():
        return actor(th.zeros(len(OBS), 1)).numpy()


def test_pretrain_and_the_bc_callback_default_to_the_preset():
    import inspect

    from sb3_swfp import BCPretrainCallback

    for function in (SWFP.pretrain, BCPretrainCallback.__init__):
        defaults = {name: p.default for name, p in inspect.signature(function).parameters.items()}
        assert {key: defaults[key] for key in PRETRAIN_KWARGS} == PRETRAIN_KWARGS, function


def test_an_uninformative_critic_leaves_the_bc_flow_in_its_modes(bc_flow):
    fix_critic(bc_flow, lambda actions: actions.new_zeros(len(actions), 1))
    before = mode_shares(bc_flow.predict(OBS, deterministic=False)[0]).sum()
    actor_updates(bc_flow, 1000)
    for actor in (bc_flow.actor_target, bc_flow.actor):  # the behaviour policy, and the actor it follows
        actions = samples(bc_flow, actor)
        assert np.abs(actions).max() <= 1.0
        assert np.mean(np.abs(actions).max(axis=1) >= 0.99) <= 0.02  # nothing piles up at the bounds
        assert abs(mode_shares(actions).sum() - before) <= 0.10, (mode_shares(actions).sum(), before)


def test_the_true_reward_moves_mass_into_every_high_reward_mode(bc_flow):
    fix_critic(bc_flow, toy_reward_torch)
    before = high_reward_mode_share(bc_flow.predict(OBS, deterministic=False)[0])
    actor_updates(bc_flow, 300)  # 93% in the high-reward modes (1000 updates took 20 s more)
    actions = bc_flow.predict(OBS, deterministic=False)[0]
    shares = mode_shares(actions)[list(HIGH_REWARD_MODES)]
    assert before < 0.5 and shares.sum() >= 0.8, (before, shares)
    assert (shares / shares.sum()).min() >= 0.1, shares  # no high-reward mode is lost


def test_finetune_kwargs_put_the_demonstrations_in_the_buffer_and_take_overrides():
    kwargs = finetune_kwargs("demos.npz", demo_ratio=0.5, seed=3)
    assert kwargs["replay_buffer_kwargs"] == dict(demonstrations="demos.npz", demo_ratio=0.5) and kwargs["seed"] == 3
    assert {key: kwargs[key] for key in FINETUNE_KWARGS} == FINETUNE_KWARGS
    with pytest.raises(TypeError, match="n_block is not an argument of SWFP"):
        finetune_kwargs("demos.npz", n_block=3)

    # policy_kwargs merge key by key: a network size keeps the preset's ten critics; the preset is not modified
    merged = finetune_kwargs("demos.npz", policy_kwargs=dict(net_arch=[16]))["policy_kwargs"]
    assert merged == {"n_critics": 10, "net_arch": [16]} and FINETUNE_KWARGS["policy_kwargs"] == {"n_critics": 10}
    assert finetune_kwargs("demos.npz", policy_kwargs=dict(n_critics=2))["policy_kwargs"] == {"n_critics": 2}
    # and so do the buffer's: a buffer setting keeps the demonstrations (replaced whole, they were lost)
    buffer = finetune_kwargs("demos.npz", replay_buffer_kwargs=dict(n_steps=3))["replay_buffer_kwargs"]
    assert buffer == dict(demonstrations="demos.npz", demo_ratio=0.25, n_steps=3)
    with pytest.raises(TypeError, match="policy is not an argument of SWFP's preset"):  # SWFP's first argument
        finetune_kwargs("demos.npz", policy="MlpPolicy")


def test_the_preset_builds_ten_critics_and_takes_their_minimum(bc_flow):
    assert len(bc_flow.critic.q_networks) == len(bc_flow.critic_target.q_networks) == 10
    # critic k says k + 1 everywhere: the actor's Q term sees 1, the minimum (the mean would be 5.5),
    # read off the Q normalisation's scale, the batch mean of |Q|
    bc_flow.critic.forward = lambda observations, actions: tuple(actions.new_full((len(actions), 1), k + 1.0) for k in range(10))
    logs = bc_flow._actor_update(th.zeros(bc_flow.batch_size, 1), bc_flow._current_ent_coef())
    assert logs["actor_q_scale"] == 1.0
