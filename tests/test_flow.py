"""Flow blocks and log-densities (Eq. 9-10) against closed forms and autograd, for the reference solver and the fast one."""

import copy
import functools
import math

import numpy as np
import pytest
import torch as th
from torch import nn

from sb3_swfp.common.fast_flow import (
    ChainConditioning,
    StageTerms,
    TangentFlowSolver,
    solver_weights,
    stage_terms,
    velocity_and_jvp,
    velocity_only,
)
from sb3_swfp.common.flow import FlowSolver, SinusoidalTimeEmbedding, VelocityMLP, linear_path_sample
from sb3_swfp.common.log_prob import FOLD_EPS, block_jacobian, log_abs_det, standard_normal_log_prob

SOLVERS = [FlowSolver, TangentFlowSolver]


def linear_velocity(matrix: th.Tensor, features_dim: int = 2) -> VelocityMLP:
    """A VelocityMLP with no hidden layer whose field is exactly v(s, x, t) = A x."""
    d = matrix.shape[0]
    net = VelocityMLP(features_dim, d, net_arch=[], time_embedding="linear").double()
    with th.no_grad():
        net.linears[0].weight.zero_()
        net.linears[0].bias.zero_()
        net.linears[0].weight[:, features_dim : features_dim + d] = matrix
    return net


def run_chain(solver_class, net, x0, n_blocks, n_substeps, ode_solver, method, features=None):
    solver = solver_class(n_blocks, n_substeps, ode_solver).double()
    features = th.zeros(x0.shape[0], net.features_dim, dtype=x0.dtype) if features is None else features
    x, log_det = x0, th.zeros(x0.shape[0], dtype=x0.dtype)
    for n in range(n_blocks):
        out = solver.block(net, features, x, n, method)
        x, log_det = out.x, log_det + out.log_det
    return x, log_det


def per_sample_blocks(batch: int, n_blocks: int = 5, seed: int = 0) -> th.Tensor:
    return th.randint(0, n_blocks, (batch,), generator=th.Generator().manual_seed(seed))


# ELU (alpha 1) has a closed-form derivative in fast_flow; ELU with another alpha must not take it
@pytest.mark.parametrize("activation", [nn.ReLU, nn.Tanh, nn.SiLU, nn.GELU, nn.ELU, pytest.param(functools.partial(nn.ELU, alpha=0.5), id="ELU_alpha_0.5")])
@pytest.mark.parametrize("layer_norm", [False, True])
def test_tangents_match_autograd_jacobian(activation, layer_norm):
    th.manual_seed(0)
    net = VelocityMLP(3, 2, [16, 16], activation, layer_norm=layer_norm).double()
    f, x, t = th.randn(6, 3).double(), th.randn(6, 2).double(), th.rand(6, 1).double()
    reference = th.func.vmap(th.func.jacrev(lambda xx, ff, tt: net(ff[None], xx[None], tt[None])[0]))(x, f, t)
    v, jac = velocity_and_jvp(net, x, stage_terms(net, f, t.unsqueeze(1)).summed()[0], th.eye(2).double().expand(6, 2, 2))
    assert th.allclose(jac, reference, atol=1e-10)
    assert th.allclose(v, net(f, x, t), atol=1e-12)


@pytest.mark.parametrize("solver_class", SOLVERS)
@pytest.mark.parametrize("activation", [nn.ReLU, nn.Tanh])
@pytest.mark.parametrize("layer_norm", [False, True])
def test_log_det_gradient_matches_autograd(solver_class, activation, layer_norm):
    """The actor loss back-propagates through log-determinants (the fast solver's hand-made tangents, some
    scaled in place): the gradient of log|det dF/dx| for the weights must be that of an autograd-only Jacobian."""
    th.manual_seed(0)
    net = VelocityMLP(3, 2, [16, 16], activation, layer_norm=layer_norm).double()
    f, x, block = th.randn(6, 3).double(), th.randn(6, 2).double(), per_sample_blocks(6)
    reference_solver, solver = FlowSolver(5).double(), solver_class(5).double()

    def block_map(xx, ff, bb):
        return reference_solver.block(net, ff[None], xx[None], bb[None]).x[0]

    reference = floored_log_abs_det(th.func.vmap(th.func.jacrev(block_map))(x, f, block)).sum()
    params = list(net.parameters())
    expected = th.autograd.grad(reference, params, allow_unused=True, materialize_grads=True)
    log_det = solver.block(net, f, x, block, "exact").log_det.sum()
    got = th.autograd.grad(log_det, params, allow_unused=True, materialize_grads=True)
    assert th.allclose(log_det, reference, atol=1e-10)
    assert max(e.abs().max().item() for e in expected) > 1e-3  # the log-det does depend on the weights
    for g, e in zip(got, expected):
        assert th.allclose(g, e, atol=1e-8)


@pytest.mark.parametrize("activation", [nn.ReLU, nn.Tanh])
@pytest.mark.parametrize("layer_norm", [False, True])
def test_velocity_only_path_equals_the_tangent_path_and_the_plain_network(activation, layer_norm):
    th.manual_seed(0)
    net = VelocityMLP(3, 2, [16, 16], activation, layer_norm=layer_norm)
    f, x, t = th.randn(6, 3), th.randn(6, 2), th.rand(6, 1)
    term = stage_terms(net, f, t.unsqueeze(1)).summed()[0]
    with_tangents, _ = velocity_and_jvp(net, x, term, th.eye(2).expand(6, 2, 2))
    assert th.allclose(velocity_only(x, term, solver_weights(net)), with_tangents, atol=1e-6)
    assert th.allclose(TangentFlowSolver(5).velocity(net, f, x, t), net(f, x, t), atol=1e-6)


@pytest.mark.parametrize("solver_class", SOLVERS)
def test_velocity_of_a_copy_uses_the_copy_weights(solver_class):
    # independent flow blocks are deep copies of one network; each must use its own layers
    th.manual_seed(0)
    net = VelocityMLP(3, 2, [16, 16])
    other = copy.deepcopy(net)
    with th.no_grad():
        other.linears[-1].weight.mul_(2.0)
        other.linears[-1].bias.zero_()
        net.linears[-1].bias.zero_()
    f, x, t = th.randn(6, 3), th.randn(6, 2), th.rand(6, 1)
    solver = solver_class(5)
    assert th.allclose(solver.velocity(other, f, x, t), 2.0 * solver.velocity(net, f, x, t), atol=1e-6)


@pytest.mark.parametrize("solver_class", SOLVERS)
@pytest.mark.parametrize("ode_solver", ["midpoint", "euler"])
def test_exact_log_det_matches_autograd_of_block_map(solver_class, ode_solver):
    th.manual_seed(1)
    net = VelocityMLP(3, 3, [16], nn.Tanh).double()
    f, x = th.randn(5, 3).double(), th.randn(5, 3).double()
    reference = FlowSolver(4, 2, ode_solver).double()

    def block_map(xx, ff):  # block 1 of 4, two solver steps
        return reference.block(net, ff[None], xx[None], 1).x[0]

    jac = th.func.vmap(th.func.jacrev(block_map))(x, f)
    out = solver_class(4, 2, ode_solver).double().block(net, f, x, 1, "exact")
    assert th.allclose(out.log_det, floored_log_abs_det(jac), atol=1e-10)


@pytest.mark.parametrize("d", [1, 3, 6])
def test_the_fold_floor_leaves_a_block_that_contracts_every_direction_alone(d):
    """A block contracting every direction by 1e-2 has log|det| = -4.6 d; one 1e-6 on the whole determinant
    floored it at -13.8 from d = 3 on, and cut the entropy term's gradient there."""
    scale = th.full((1,), 1e-2, dtype=th.float64, requires_grad=True)
    log_det = log_abs_det(th.eye(d, dtype=th.float64)[None] * scale)
    # log(s^d + FOLD_EPS s^(d-1)): the floor is FOLD_EPS per direction at the block's scale s
    assert log_det.item() == pytest.approx(d * math.log(1e-2) + math.log1p(FOLD_EPS / 1e-2), abs=1e-9)
    (gradient,) = th.autograd.grad(log_det.sum(), scale)
    assert gradient.item() == pytest.approx(d / (1e-2 + FOLD_EPS), rel=1e-9)  # the floor carries no gradient


@pytest.mark.parametrize("d", [2, 3, 6])
def test_a_block_that_folds_one_direction_in_float32_is_floored_with_bounded_gradients(d):
    """slogdet of a rank-deficient float32 Jacobian is rounding noise (about -25); a floor of FOLD_EPS ** d let it
    through with gradients of 1e12.  Folding one direction of unit scale gives log FOLD_EPS."""
    generator = th.Generator().manual_seed(0)
    jacobian = th.eye(d).repeat(4, 1, 1) + 1e-3 * th.randn(4, d, d, generator=generator)
    jacobian[:, 0] = 0.5 * jacobian[:, 1]  # rank d - 1
    jacobian.requires_grad_(True)
    log_det = log_abs_det(jacobian)
    log_det.sum().backward()
    assert th.all(log_det > math.log(FOLD_EPS) - 1) and th.all(log_det < math.log(FOLD_EPS) + 1), log_det
    assert jacobian.grad.norm() < 1e7


def test_an_exactly_singular_jacobian_is_the_floor_with_zero_gradient():
    """A zero pivot (here a zero row; on some processors also the rank-deficient float32 Jacobians above) made
    slogdet's backward NaN for the whole batch; |det|'s subgradient at 0 is zero, the other samples keep theirs."""
    jacobian = th.eye(3, dtype=th.float64).repeat(2, 1, 1)
    jacobian[0, 0] = 0.0
    jacobian.requires_grad_(True)
    log_det = log_abs_det(jacobian)
    log_det.sum().backward()
    floor = math.log(FOLD_EPS) + 2 * 0.5 * math.log(2 / 3)  # FOLD_EPS r^(d-1), r = ||J||_F / sqrt(3)
    assert log_det[0].item() == pytest.approx(floor, abs=1e-12)
    assert th.all(jacobian.grad[0] == 0)
    # The regular sample: d log(1 + FOLD_EPS) / dJ = J^-T / (1 + FOLD_EPS)
    th.testing.assert_close(jacobian.grad[1], th.eye(3, dtype=th.float64) / (1 + FOLD_EPS))


def floored_log_abs_det(jacobian: th.Tensor) -> th.Tensor:
    """The floored log|det| of log_abs_det's docstring, from torch's det: (batch, d, d) -> (batch,)."""
    d = jacobian.shape[-1]
    rms = (jacobian.detach().pow(2).sum(dim=(-2, -1)) / d).sqrt().clamp_min(FOLD_EPS)
    return th.log(th.linalg.det(jacobian).abs() + FOLD_EPS * rms ** (d - 1))


@pytest.mark.parametrize("solver_class", SOLVERS)
def test_exact_density_equals_closed_form_on_linear_field(solver_class):
    """v = A x: each midpoint step is x <- M x with M = I + hA + (hA)^2 / 2, so x_N ~ N(0, P P^T), P = M^steps."""
    matrix = th.tensor([[0.3, -0.8], [0.5, -0.2]], dtype=th.float64)
    net = linear_velocity(matrix)
    n_blocks, n_substeps = 4, 3
    dt = 1.0 / (n_blocks * n_substeps)
    step = th.eye(2, dtype=th.float64) + dt * matrix + 0.5 * (dt * matrix) @ (dt * matrix)
    transform = th.linalg.matrix_power(step, n_blocks * n_substeps)
    x0 = th.randn(7, 2, dtype=th.float64)
    x_n, log_det = run_chain(solver_class, net, x0, n_blocks, n_substeps, "midpoint", "exact")
    assert th.allclose(x_n, x0 @ transform.T, atol=1e-12)
    log_prob = standard_normal_log_prob(x0) - log_det
    closed_form = th.distributions.MultivariateNormal(th.zeros(2, dtype=th.float64), transform @ transform.T).log_prob(x_n)
    # equal up to the fold floor: n_blocks * FOLD_EPS / |det| at most
    assert th.allclose(log_prob, closed_form, atol=n_blocks * 2 * FOLD_EPS)
    # and the discrete log-det converges to the continuous one, trace(A)
    _, fine = run_chain(solver_class, net, x0, 5, 50, "midpoint", "exact")
    assert th.allclose(fine, th.full_like(fine, matrix.trace().item()), atol=1e-5)


@pytest.mark.parametrize("solver_class", SOLVERS)
def test_hutchinson_is_exact_for_diagonal_linear_field(solver_class):
    matrix = th.diag(th.tensor([0.7, -1.3, 0.2], dtype=th.float64))
    _, log_det = run_chain(solver_class, linear_velocity(matrix), th.randn(9, 3, dtype=th.float64), 5, 1, "midpoint", "hutchinson")
    # eps^T A eps = trace(A) for every Rademacher probe when A is diagonal
    assert th.allclose(log_det, th.full_like(log_det, -0.4), atol=1e-12)


@pytest.mark.parametrize("solver_class", SOLVERS)
def test_hutchinson_is_unbiased_for_full_linear_field(solver_class):
    th.manual_seed(2)
    matrix = th.tensor([[0.3, -0.8, 0.1], [0.5, -0.2, 0.4], [-0.6, 0.2, 0.9]], dtype=th.float64)
    _, log_det = run_chain(solver_class, linear_velocity(matrix), th.zeros(20_000, 3, dtype=th.float64), 5, 1, "midpoint", "hutchinson")
    standard_error = log_det.std() / math.sqrt(log_det.numel())
    assert abs(log_det.mean().item() - matrix.trace().item()) < 4 * standard_error.item()
    assert log_det.std() > 0.1  # off-diagonal entries make single probes noisy: the test can tell


@pytest.mark.parametrize("solver_class", SOLVERS)
def test_exact_and_hutchinson_agree_on_a_nonlinear_flow(solver_class):
    th.manual_seed(3)
    net = VelocityMLP(2, 2, [32], nn.Tanh).double()
    features = th.randn(1, 2, dtype=th.float64).expand(4_000, 2)
    x0 = th.randn(1, 2, dtype=th.float64).expand(4_000, 2)
    # many substeps: the discrete exact log-det approaches the continuous integral that Hutchinson estimates
    _, exact = run_chain(solver_class, net, x0, 5, 10, "midpoint", "exact", features)
    _, hutchinson = run_chain(solver_class, net, x0, 5, 10, "midpoint", "hutchinson", features)
    standard_error = hutchinson.std() / math.sqrt(hutchinson.numel())
    assert abs(hutchinson.mean() - exact[0]) < 4 * standard_error + 1e-3


@pytest.mark.parametrize("ode_solver, n_substeps", [("midpoint", 1), ("midpoint", 2), ("euler", 3)])
@pytest.mark.parametrize("activation, layer_norm", [(nn.ReLU, False), (nn.Tanh, True)])
@pytest.mark.parametrize("method", [None, "exact", "hutchinson"])
def test_the_fast_solver_computes_what_the_reference_does(ode_solver, n_substeps, activation, layer_norm, method):
    """Blocks at one index or per-sample indices, their log-determinants (the same Hutchinson probes from the
    same seed) and the gradients of both for the weights; velocities; the one-solve flow."""
    th.manual_seed(0)
    net = VelocityMLP(3, 2, [16, 16], activation, layer_norm=layer_norm).double()
    reference, fast = FlowSolver(4, n_substeps, ode_solver).double(), TangentFlowSolver(4, n_substeps, ode_solver).double()
    f, x = th.randn(9, 3, dtype=th.float64), th.randn(9, 2, dtype=th.float64)
    params = list(net.parameters())
    for block in (2, per_sample_blocks(9, 4)):
        outputs = []
        for solver in (reference, fast):
            th.manual_seed(1)
            out = solver.block(net, f, x, block, method)
            loss = out.x.pow(2).sum() + (0.0 if out.log_det is None else out.log_det.sum())
            outputs.append((out, th.autograd.grad(loss, params, allow_unused=True, materialize_grads=True)))
        (expected, expected_grads), (got, grads) = outputs
        assert th.allclose(got.x, expected.x, atol=1e-12)
        assert (got.log_det is None) == (method is None)
        if method is not None:
            assert th.allclose(got.log_det, expected.log_det, atol=1e-10)
        for g, e in zip(grads, expected_grads):
            assert th.allclose(g, e, atol=1e-9)
    t = th.rand(9, 1, dtype=th.float64)
    assert th.allclose(fast.velocity(net, f, x, t), reference.velocity(net, f, x, t), atol=1e-12)
    assert th.allclose(fast.flow(net, f, x), reference.flow(net, f, x), atol=1e-12)


@pytest.mark.parametrize("solver_class", SOLVERS)
def test_per_sample_block_indices_equal_one_index_at_a_time(solver_class):
    th.manual_seed(0)
    net = VelocityMLP(3, 2, [16]).double()
    solver = solver_class(5, 2).double()
    f, x, block = th.randn(20, 3, dtype=th.float64), th.randn(20, 2, dtype=th.float64), per_sample_blocks(20)
    out = solver.block(net, f, x, block, "exact")
    for n in range(5):
        rows = block == n
        expected = solver.block(net, f[rows], x[rows], n, "exact")
        assert th.allclose(out.x[rows], expected.x, atol=1e-12) and th.allclose(out.log_det[rows], expected.log_det, atol=1e-12)


def test_sinusoidal_embedding_shape_and_validation():
    emb = SinusoidalTimeEmbedding(8)
    assert emb(th.rand(5, 1)).shape == (5, 8)
    with pytest.raises(ValueError, match="even"):
        SinusoidalTimeEmbedding(7)


def test_sinusoidal_embedding_is_sin_and_cos_of_geometric_frequencies():
    """Frequencies from 2 pi / max_period up to 2 pi * half, geometric: the slowest feature's period is max_period."""
    emb, t = SinusoidalTimeEmbedding(8, max_period=10.0), th.tensor([[0.3], [0.7]], dtype=th.float64)
    freqs = 2 * math.pi * 0.1 * 40.0 ** (th.arange(4, dtype=th.float64) / 3)  # 2 pi / 10 up to 2 pi * 4, ratio 40^(1/3)
    assert th.allclose(emb.freqs.double(), freqs, rtol=1e-6)
    assert emb.freqs[0].item() == pytest.approx(2 * math.pi / 10.0) and emb.freqs[-1].item() == pytest.approx(2 * math.pi * 4)
    assert th.allclose(emb(t).double(), th.cat([th.sin(t * freqs), th.cos(t * freqs)], dim=-1), atol=1e-6)


@pytest.mark.parametrize("kwargs, match", [(dict(n_blocks=0), "n_blocks"), (dict(n_blocks=2, n_substeps=0), "n_substeps")])
def test_solvers_refuse_a_chain_without_steps(kwargs, match):
    for solver_class in SOLVERS:
        with pytest.raises(ValueError, match=match):
            solver_class(**kwargs)


def test_block_jacobian_rows_are_the_outputs_derivatives():
    """Row k of dF/dx is the gradient of output k (a non-symmetric map, so a transposed Jacobian shows)."""
    matrix = th.tensor([[1.0, 2.0], [-3.0, 0.5]], dtype=th.float64)
    x = th.randn(4, 2, dtype=th.float64)
    jacobian = block_jacobian(lambda y: y @ matrix.T + y.pow(2), x)
    expected = matrix + th.diag_embed(2 * x)
    assert th.allclose(jacobian, expected, atol=1e-12)


def test_linear_path_endpoints():
    x0, a = th.randn(4, 2), th.randn(4, 2)
    start = linear_path_sample(x0, a, th.zeros(4, 1))
    end = linear_path_sample(x0, a, th.ones(4, 1))
    assert th.allclose(start.x_t, x0) and th.allclose(end.x_t, a) and th.allclose(end.u, a - x0)


def test_standard_normal_log_prob_matches_torch():
    x = th.randn(10, 3)
    expected = th.distributions.Normal(0.0, 1.0).log_prob(x).sum(-1)
    assert np.allclose(standard_normal_log_prob(x).numpy(), expected.numpy(), atol=1e-6)


@pytest.mark.parametrize("solver_class", SOLVERS)
@pytest.mark.parametrize("dim", [1, 2])
def test_folding_block_map_gives_a_finite_log_det(solver_class, dim):
    """An Euler step with h A = -I maps everything to 0 (det = 0, every direction folded): the log-det is floored at
    d log(FOLD_EPS), not -inf."""
    net = linear_velocity(-5.0 * th.eye(dim, dtype=th.float64))
    out = solver_class(5, 1, "euler").double().block(net, th.zeros(3, 2, dtype=th.float64), th.randn(3, dim, dtype=th.float64), 0, "exact")
    assert th.allclose(out.x, th.zeros_like(out.x))
    assert th.allclose(out.log_det, th.full((3,), dim * math.log(FOLD_EPS), dtype=th.float64))


@pytest.mark.parametrize("per_sample", [False, True])
def test_chain_conditioning_rows_compose(per_sample):
    # 3 blocks x 2 stages, batch 5, width 4; times shared by all samples or one per sample
    context, time = th.randn(5, 4), th.randn(6, 5 if per_sample else 1, 4)
    terms = context + time  # (6, 5, 4): the stage terms summed
    full = ChainConditioning(StageTerms(context, time), n_blocks=3)
    outer, inner = th.tensor([4, 1, 3]), th.tensor([2, 0])
    block_1 = full.rows(outer).block_terms(1)
    assert len(block_1) == 2
    assert all(th.equal(term, terms[2 + stage, outer]) for stage, term in enumerate(block_1.summed()))
    # restricting twice picks samples of the restricted set: outer[inner] = [3, 4]
    block_2 = full.rows(outer).rows(inner).block_terms(2)
    assert all(th.equal(term, terms[4 + stage, th.tensor([3, 4])]) for stage, term in enumerate(block_2.summed()))


def test_stage_terms_sum_to_the_first_layer_without_x():
    th.manual_seed(0)
    net = VelocityMLP(3, 2, [8])
    f, x, t = th.randn(5, 3), th.zeros(5, 2), th.rand(4, 1)
    terms = stage_terms(net, f, t).summed()
    assert len(terms) == 4
    for stage, term in enumerate(terms):  # the first layer at x = 0 is W_s f + W_t embed(t) + b
        inputs = th.cat([f, x, net.time_embed(t[stage].expand(5, 1))], dim=1)
        assert th.allclose(term, net.linears[0](inputs), atol=1e-6)
