"""The squash onto the action box: its map, log-determinant and pre-image, and the policy's density on the box."""

import json
import zipfile

import numpy as np
import pytest
import torch as th

from sb3_swfp import SWFP
from sb3_swfp.common.fast_flow import TangentFlowSolver
from sb3_swfp.common.flow import FlowSolver
from sb3_swfp.common.log_prob import standard_normal_log_prob
from sb3_swfp.common.squash import BOUND_MARGIN, SOFT_CLIP_KNEE, Squash

from helpers import TINY

# Within a range where 1 - tanh^2 of the soft clip's tail is still resolved in float64
X = th.linspace(-2.0, 2.0, 161, dtype=th.float64).reshape(-1, 1)


@pytest.mark.parametrize("name", ["soft_clip", "tanh"])
def test_log_abs_det_is_the_log_derivative(name):
    squash = Squash(name)
    x = X.clone().requires_grad_(True)
    (derivative,) = th.autograd.grad(squash(x).sum(), x)
    assert th.allclose(squash.log_abs_det(X), th.log(derivative).squeeze(-1), atol=1e-6)


@pytest.mark.parametrize("name", ["soft_clip", "tanh"])
def test_inverse_undoes_the_squash_inside_the_margin(name):
    squash = Squash(name)
    a = squash(X)
    assert a.abs().max() < 1.0 and th.all(a[1:] > a[:-1])  # a bijection onto the open box (in float64)
    inner = a.abs().squeeze(-1) <= 1.0 - BOUND_MARGIN
    assert th.allclose(squash.inverse(a)[inner], X[inner], atol=1e-9)
    # actions on the bound get a finite pre-image, BOUND_MARGIN inside
    bound = squash.inverse(th.tensor([[1.0], [-1.0]], dtype=th.float64))
    assert th.allclose(squash(bound), th.tensor([[1.0 - BOUND_MARGIN], [-1.0 + BOUND_MARGIN]], dtype=th.float64))


def test_soft_clip_is_the_identity_inside_the_knee_and_its_bound_pre_image_is_short():
    squash = Squash("soft_clip")
    inside = X[X.abs().squeeze(-1) <= SOFT_CLIP_KNEE]
    assert th.equal(squash(inside), inside) and th.all(squash.log_abs_det(inside) == 0)
    # the pre-image of the bound: k + (1 - k) atanh(1 - margin / (1 - k)); tanh's is atanh(1 - margin)
    expected = SOFT_CLIP_KNEE + (1 - SOFT_CLIP_KNEE) * np.arctanh(1 - BOUND_MARGIN / (1 - SOFT_CLIP_KNEE))
    assert squash.inverse(th.ones(1, 1)).item() == pytest.approx(expected, rel=1e-5)
    assert expected < 1.3 < np.arctanh(1 - BOUND_MARGIN)


@pytest.mark.parametrize("dtype", [th.float32, th.float64])
def test_soft_clip_equals_its_piecewise_form_bit_for_bit(dtype):
    """The computed form must give the digits of ``sign(x) (k + (1 - k) tanh((|x| - k) / (1 - k)))``
    beyond the knee and ``x`` inside it, so that runs made before it reproduce."""
    k = SOFT_CLIP_KNEE
    x = th.cat([th.linspace(-40.0, 40.0, 200_001), th.randn(100_000, generator=th.Generator().manual_seed(0))])
    x = th.cat([x, th.tensor([k, -k, 0.0, -0.0, 1e-30, float("inf"), -float("inf")])]).to(dtype).reshape(-1, 2)
    tail = th.sign(x) * (k + (1.0 - k) * th.tanh((x.abs() - k) / (1.0 - k)))
    assert th.equal(Squash("soft_clip")(x), th.where(x.abs() <= k, x, tail))


def test_clip_has_no_density_correction():
    squash = Squash("clip")
    assert th.equal(squash(X), X.clamp(-1, 1)) and th.all(squash.log_abs_det(X) == 0)
    assert th.equal(squash.inverse(X.clamp(-1, 1)), X.clamp(-1, 1))


@pytest.mark.parametrize("solver_class", [FlowSolver, TangentFlowSolver])
@pytest.mark.parametrize("name", ["soft_clip", "tanh"])
def test_log_prob_is_the_change_of_variables_of_the_whole_chain(name, solver_class):
    # In 1-D the density of a = S(F_N o ... o F_1(x_0)) is N(x_0) / |da/dx_0|, with autograd's derivative
    actor = SWFP("FlowPolicy", "Pendulum-v1", squash=name, seed=0, **{**TINY, "policy_kwargs": dict(net_arch=[16, 16])}).actor
    actor.solver = solver_class(actor.n_blocks, actor.n_substeps, actor.ode_solver)
    actor = actor.double()
    features = th.randn(50, 3, dtype=th.float64)
    x0 = th.randn(50, 1, dtype=th.float64).requires_grad_(True)
    x = x0
    for n in range(actor.n_blocks):
        x = actor.block(features, x, n)[0]
    actions = actor.squash(x)
    (derivative,) = th.autograd.grad(actions.sum(), x0)
    expected = standard_normal_log_prob(x0.detach()) - th.log(derivative.abs()).squeeze(-1)
    # the actor's own log-density: the same x_0 through its chain and the squash's log-det
    walk = actor.walk(features, x0.detach(), log_prob=standard_normal_log_prob(x0.detach()))
    x, log_prob = walk.x, walk.log_prob - actor.squash.log_abs_det(walk.x)
    resolved = th.isfinite(expected)  # far in the tail even float64 rounds the action to the bound
    assert resolved.sum() >= 40 and (x[resolved].abs() > 1.0).any()  # the squash's tail is exercised
    assert th.allclose(log_prob[resolved], expected[resolved], atol=1e-6)


@pytest.mark.parametrize("solver_class", [FlowSolver, TangentFlowSolver])
@pytest.mark.parametrize("name", ["soft_clip", "tanh", "clip"])
def test_sampled_log_prob_includes_the_squash(name, solver_class):
    actor = SWFP("FlowPolicy", "Pendulum-v1", squash=name, seed=0, **TINY).actor
    actor.solver = solver_class(actor.n_blocks, actor.n_substeps, actor.ode_solver)
    features = th.randn(64, 3)
    th.manual_seed(1)
    actions, log_prob = actor.sample_from_features(features, with_log_prob=True)
    th.manual_seed(1)
    x0 = th.randn(64, 1)
    x, expected = x0, standard_normal_log_prob(x0)
    for n in range(actor.n_blocks):
        x, log_det = actor.block(features, x, n, "exact")
        expected = expected - log_det
    assert th.allclose(actions, actor.squash(x), atol=1e-6)
    assert th.allclose(log_prob, expected - actor.squash.log_abs_det(x), atol=1e-5)


def test_behaviour_cloning_regresses_onto_the_pre_images():
    model = SWFP("FlowPolicy", "Pendulum-v1", squash="soft_clip", seed=0, **TINY)
    actor = model.actor
    obs, actions = th.zeros(8, 3), th.tensor([[1.0], [-1.0], [0.5], [0.95], [1.0], [-1.0], [0.0], [-0.3]])
    th.manual_seed(0)
    loss = actor.flow_matching_loss(obs, actions)
    th.manual_seed(0)
    actor.squash = Squash("clip")  # the same loss on explicitly transformed targets
    expected = actor.flow_matching_loss(obs, Squash("soft_clip").inverse(actions))
    assert th.isfinite(loss) and loss.item() == pytest.approx(expected.item())


def test_squash_is_saved_and_a_model_saved_before_it_loads_with_the_clip(tmp_path):
    model = SWFP("FlowPolicy", "Pendulum-v1", squash="tanh", seed=0, **TINY).learn(60)
    model.save(tmp_path / "tanh")
    loaded = SWFP.load(tmp_path / "tanh")
    assert loaded.squash == "tanh" and loaded.actor.squash.name == loaded.actor_target.squash.name == "tanh"
    obs = np.zeros((2, 3), np.float32)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    # The same file without the squash entry, as models were saved before the option existed
    with zipfile.ZipFile(tmp_path / "tanh.zip") as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(files["data"])
    del data["squash"]
    data["policy_kwargs"].pop("squash")
    files["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(tmp_path / "old.zip", "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    old = SWFP.load(tmp_path / "old")
    assert old.squash == "clip" and old.actor.squash.name == "clip"
    with pytest.warns(UserWarning, match=r"loading with squash='tanh' \(trained with 'clip'\)"):  # the clip it ran with
        SWFP.load(tmp_path / "old", squash="tanh")


def test_a_float64_actor_samples_in_float64():
    """Deterministic sampling took the features' dtype and stochastic sampling did not (float32 noise, which a
    float64 network refuses)."""
    actor = SWFP("FlowPolicy", "Pendulum-v1", seed=0, **TINY).actor.double()
    features = th.randn(8, 3, dtype=th.float64)
    for deterministic in (True, False):
        actions, log_prob = actor.sample_from_features(features, deterministic=deterministic, with_log_prob=True)
        assert actions.dtype == log_prob.dtype == th.float64
