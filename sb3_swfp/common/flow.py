"""Velocity field and flow-block integrators (spec §1), with forward-mode Jacobian tangents.

A flow block integrates the velocity field ``v(s, x, t)`` over ``[t0, t0 + h]``.  The
log-density of the flow (spec §2) needs the Jacobian of each block map with respect to
``x``.  Instead of generic forward-mode AD (which costs several times a forward pass on
CPU), :class:`VelocityMLP` propagates tangents through its own layers by hand: a tangent
``T`` of shape ``(batch, action_dim, k)`` comes back as ``J_v T`` with the same shape.
With ``T = I`` this is the exact Jacobian; with a Rademacher probe ``T = eps`` it is the
Hutchinson product.  Everything is made of ordinary differentiable torch ops, so the
actor loss can back-propagate through log-determinants.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch as th
from torch import nn
from torch.nn import functional as F

ODE_SOLVERS = ("midpoint", "euler")
#: Floor inside the log of |det dF/dx|, as SB3's SAC adds 1e-6 inside its tanh correction: a block map
#: that folds (det -> 0) would otherwise give log pi = +inf and non-finite critic targets.
FOLD_EPS = 1e-6
LOG_PROB_METHODS = ("exact", "hutchinson")
TIME_EMBEDDINGS = ("sinusoidal", "linear")


class SinusoidalTimeEmbedding(nn.Module):
    """Fixed Fourier features of the flow time ``t`` in [0, 1].

    :param embed_dim: Output size (even). ``t`` of shape ``(..., 1)`` maps to ``(..., embed_dim)``.
    :param max_period: Longest period of the features, in units of ``t``.
    """

    def __init__(self, embed_dim: int = 16, max_period: float = 10.0):
        super().__init__()
        if embed_dim < 2 or embed_dim % 2:
            raise ValueError(f"time_embed_dim must be an even integer >= 2, got {embed_dim}")
        half = embed_dim // 2
        # Frequencies from 2*pi / max_period up to 2*pi * half (geometric)
        freqs = 2 * math.pi * th.exp(th.linspace(math.log(1.0 / max_period), math.log(float(half)), half))
        self.register_buffer("freqs", freqs, persistent=False)
        self.embed_dim = embed_dim

    def forward(self, t: th.Tensor) -> th.Tensor:
        angles = t * self.freqs  # (..., 1) * (half,) -> (..., half)
        return th.cat([th.sin(angles), th.cos(angles)], dim=-1)


class _LinearTimeEmbedding(nn.Module):
    """Identity embedding: the raw time as one input feature."""

    embed_dim = 1

    def forward(self, t: th.Tensor) -> th.Tensor:
        return t


def _activation_derivative(activation: nn.Module, z: th.Tensor, out: th.Tensor) -> th.Tensor:
    """Elementwise derivative ``act'(z)``; closed forms for common activations, forward AD otherwise
    (ReLU's is taken from its output in ``VelocityMLP.forward``)."""
    if isinstance(activation, nn.Tanh):
        return 1.0 - out * out
    if isinstance(activation, nn.SiLU):
        sig = th.sigmoid(z)
        return sig * (1.0 + z * (1.0 - sig))
    if isinstance(activation, nn.ELU) and activation.alpha == 1.0:
        return th.where(z > 0, th.ones_like(z), out + 1.0)
    # Any other elementwise activation: one forward-mode product with a tangent of ones
    return th.func.jvp(activation, (z,), (th.ones_like(z),))[1]


def _layer_norm_with_tangent(norm: nn.LayerNorm, z: th.Tensor, dz: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    """LayerNorm of ``z`` (batch, H) and its Jacobian applied to tangent rows ``dz`` (batch, k, H)."""
    mean = z.mean(dim=-1, keepdim=True)
    centred = z - mean
    std = th.sqrt(centred.pow(2).mean(dim=-1, keepdim=True) + norm.eps)
    normed = centred / std
    dz_c = dz - dz.mean(dim=-1, keepdim=True)
    # d(normed) = (dz_c - normed * mean(normed * dz_c)) / std
    normed_rows = normed.unsqueeze(1)  # (batch, 1, H)
    d_normed = (dz_c - normed_rows * (normed_rows * dz_c).mean(dim=-1, keepdim=True)) / std.unsqueeze(1)
    if norm.elementwise_affine:
        return normed * norm.weight + norm.bias, d_normed * norm.weight
    return normed, d_normed


class SolverWeights(NamedTuple):
    """What ``VelocityMLP.velocity`` reads: the transposed ``x`` columns of the first layer (d, H) and,
    for each later layer, its LayerNorm (or None), weight and bias."""

    x_weight_t: th.Tensor
    layers: tuple[tuple[nn.Module | None, th.Tensor, th.Tensor], ...]


class StageTerms:
    """The first layer's pre-activation without its ``x`` part at several solver stages, kept as its two
    summands: the state's ``W_s features + b`` (batch, H) and the time's ``W_t embed(t)``, (stages, 1, H)
    for times shared by all samples or (stages, batch, H) per sample.  Restricting to some samples then
    copies the (batch, H) state part only; the sum is taken when a block is integrated.
    """

    __slots__ = ("context", "time")

    def __init__(self, context: th.Tensor, time: th.Tensor):
        self.context = context
        self.time = time

    def __len__(self) -> int:
        return self.time.shape[0]

    def summed(self) -> tuple[th.Tensor, ...]:
        """The term of every stage, each (batch, H): one addition and one unbind, whatever the number of stages."""
        return (self.context + self.time).unbind(0)

    def stages(self, start: int, stop: int) -> StageTerms:
        """The terms of stages ``start .. stop - 1``."""
        return StageTerms(self.context, self.time[start:stop])

    def rows(self, idx: th.Tensor) -> StageTerms:
        """The terms of the samples ``idx`` only."""
        return StageTerms(self.context[idx], self.time if self.time.shape[1] == 1 else self.time[:, idx])


class VelocityMLP(nn.Module):
    """Velocity field ``v_theta(s, x, t)``: an MLP over ``[features(s), x, embed(t)]`` with output ``action_dim``.

    :param features_dim: Size of the observation features.
    :param action_dim: Size of the action (and of ``x``).
    :param net_arch: Hidden layer sizes.
    :param activation_fn: Activation class.
    :param time_embedding: ``"sinusoidal"`` (Fourier features of size ``time_embed_dim``) or ``"linear"`` (raw ``t``).
    :param time_embed_dim: Size of the sinusoidal embedding.
    :param layer_norm: Apply LayerNorm after every hidden linear layer (before the activation).
    """

    def __init__(
        self,
        features_dim: int,
        action_dim: int,
        net_arch: list[int],
        activation_fn: type[nn.Module] = nn.ReLU,
        time_embedding: str = "sinusoidal",
        time_embed_dim: int = 16,
        layer_norm: bool = False,
    ):
        super().__init__()
        if time_embedding not in TIME_EMBEDDINGS:
            raise ValueError(f"unknown time_embedding {time_embedding!r}, expected one of {TIME_EMBEDDINGS}")
        self.time_embed = SinusoidalTimeEmbedding(time_embed_dim) if time_embedding == "sinusoidal" else _LinearTimeEmbedding()
        self.features_dim = features_dim
        self.action_dim = action_dim
        sizes = [features_dim + action_dim + self.time_embed.embed_dim, *net_arch, action_dim]
        self.linears = nn.ModuleList(nn.Linear(n_in, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:]))
        self.norms = nn.ModuleList(nn.LayerNorm(n) for n in net_arch) if layer_norm else None
        self.activation = activation_fn()
        # Batch-1 layers cost little more than their Python overhead: a ReLU applied as a function skips
        # a module call per layer, and a plain tuple of (norm, linear) pairs after the first layer skips
        # the module-attribute lookups (it holds the modules, not copies)
        self._relu = isinstance(self.activation, nn.ReLU)
        self._later = tuple(zip(self.norms if self.norms is not None else [None] * len(net_arch), self.linears[1:]))

    def _activate(self, z: th.Tensor) -> th.Tensor:
        """The activation of a fresh pre-activation ``z``; ReLU in place (no autograd node saves ``z``)."""
        return th.relu_(z) if self._relu else self.activation(z)

    def solver_weights(self) -> SolverWeights:
        """The weights ``velocity`` reads, fetched once for the evaluations of one solve (at batch 1 the
        module-attribute lookups of every evaluation are a visible part of its cost)."""
        return SolverWeights(self.x_weight().t(), tuple((norm, linear.weight, linear.bias) for norm, linear in self._later))

    def x_weight(self) -> th.Tensor:
        """The columns of the first layer that see ``x``, (H, action_dim)."""
        return self.linears[0].weight[:, self.features_dim : self.features_dim + self.action_dim]

    def stage_terms(self, features: th.Tensor, t: th.Tensor) -> StageTerms:
        """The first layer's pre-activation without its ``x`` part, ``W_s features + W_t embed(t) + b``.

        It does not depend on ``x``: a chain of blocks on the same states computes it once for every
        solver stage.

        :param features: (batch, features_dim)
        :param t: (stages, 1) times shared by all samples, or (batch, stages, 1) per sample
        :return: the terms of ``stages`` solver stages, each (batch, H)
        """
        first = self.linears[0]
        context = F.linear(features, first.weight[:, : self.features_dim], first.bias)  # (batch, H)
        time = F.linear(self.time_embed(t), first.weight[:, self.features_dim + self.action_dim :])
        # (stages, H) -> (stages, 1, H), or (batch, stages, H) -> (stages, batch, H)
        time = time.unsqueeze(1) if t.dim() == 2 else time.transpose(0, 1)
        return StageTerms(context, time)

    def velocity(self, x: th.Tensor, stage_term: th.Tensor, weights: SolverWeights | None = None) -> th.Tensor:
        """The velocity alone, ``v(s, x, t)`` (batch, action_dim), from the term ``stage_term`` (batch, H) of
        ``self.stage_terms(s, t)``: ``forward`` without tangents, with fewer Python-level operations (the
        path of ``predict`` and of chains without log-densities).

        :param weights: ``self.solver_weights()``, when the caller evaluates the network several times
        """
        x_weight_t, layers = self.solver_weights() if weights is None else weights
        z = th.addmm(stage_term, x, x_weight_t)
        for norm, weight, bias in layers:
            if norm is not None:
                z = norm(z)
            z = F.linear(self._activate(z), weight, bias)
        return z

    def forward(
        self,
        features: th.Tensor | None,
        x: th.Tensor,
        t: th.Tensor | None,
        tangents: th.Tensor | None = None,
        stage_term: th.Tensor | None = None,
    ) -> tuple[th.Tensor, th.Tensor | None]:
        """
        The first layer acts on ``[features, x, embed(t)]``; it is applied as ``stage_term + W_x x``
        so that the part without ``x`` can be computed once for many calls (``stage_terms``).

        :param features: (batch, features_dim); not used when ``stage_term`` is given
        :param x: (batch, action_dim)
        :param t: (batch, 1) flow time; not used when ``stage_term`` is given
        :param tangents: (batch, action_dim, k) directions in ``x``, or None
        :param stage_term: ``self.stage_terms(features, t)`` of this call, (batch, H)
        :return: velocity (batch, action_dim) and ``J_v @ tangents`` (batch, action_dim, k) or None
        """
        if stage_term is None:
            stage_term = self.stage_terms(features, t.unsqueeze(1)).summed()[0]  # type: ignore[arg-type, union-attr]
        if tangents is None:
            return self.velocity(x, stage_term), None
        # Only the x columns of the first layer see x, and the tangent
        w_x = self.x_weight()
        z = th.addmm(stage_term, x, w_x.t())
        # Tangents travel as rows, (batch, k, width), and every layer is one 2-D GEMM over the batch * k
        # rows: a 3-D input makes torch expand the weight into a batched product and copy
        batch, dim, k = tangents.shape
        dh = th.mm(tangents.transpose(1, 2).reshape(batch * k, dim), w_x.t()).view(batch, k, -1)
        for norm, linear in self._later:
            if norm is not None:
                z, dh = _layer_norm_with_tangent(norm, z, dh)
            h = self._activate(z)
            if self._relu:
                # ReLU's derivative is the sign of its output (0 or 1, without gradient), cheaper than a
                # comparison and a cast; the fresh tangent rows are scaled in place
                dh = dh.mul_(th.sign(h.detach()).unsqueeze(1))
            else:
                dh = _activation_derivative(self.activation, z, h).unsqueeze(1) * dh
            dh = th.mm(dh.view(batch * k, -1), linear.weight.t()).view(batch, k, -1)
            z = F.linear(h, linear.weight, linear.bias)
        return z, dh.transpose(1, 2)


class BlockOutput(NamedTuple):
    """Result of one flow block: the moved particles and, if requested, ``log|det dF/dx|`` of shape (batch,)."""

    x: th.Tensor
    log_det: th.Tensor | None


def rademacher_like(x: th.Tensor) -> th.Tensor:
    """Random +-1 entries with the shape, dtype and device of ``x``."""
    return th.randint(0, 2, x.shape, device=x.device).to(x.dtype) * 2.0 - 1.0


def stage_offsets(h: float, n_substeps: int = 1, ode_solver: str = "midpoint") -> list[float]:
    """Times, from the start of a block of length ``h``, at which the solver evaluates the velocity.

    Midpoint: ``[0, dt/2, dt, 3 dt/2, ...]``; Euler: ``[0, dt, 2 dt, ...]``, with ``dt = h / n_substeps``.
    """
    dt = h / n_substeps
    stages = (0.0, 0.5) if ode_solver == "midpoint" else (0.0,)
    return [(step + stage) * dt for step in range(n_substeps) for stage in stages]


def integrate_block(
    velocity: VelocityMLP,
    features: th.Tensor,
    x: th.Tensor,
    t0: th.Tensor | float,
    h: float,
    n_substeps: int = 1,
    ode_solver: str = "midpoint",
    log_prob_method: str | None = None,
    stage_terms: StageTerms | None = None,
) -> BlockOutput:
    """Block map ``F(x)``: integrate ``dx/dt = v(s, x, t)`` from ``t0`` to ``t0 + h`` (spec §1).

    Midpoint step of size ``dt`` from ``(x, t)``: ``x' = x + dt * v(s, x + dt/2 * v(s, x, t), t + dt/2)``.

    The log-determinant (spec §2) is either

    - ``"exact"``: the Jacobian ``dF/dx`` of the discrete map (batch, d, d), propagated through every
      solver stage, then ``log(|det| + FOLD_EPS)`` — the exact density of the discrete flow, with a
      floor where the map folds; or
    - ``"hutchinson"``: ``sum_steps dt * eps^T J_v eps`` with one Rademacher probe per step, ``J_v``
      taken where the solver evaluates the slope (the midpoint for ``"midpoint"``) — an unbiased
      estimate of the continuous-time ``integral of div v``.

    :param velocity: Velocity network.
    :param features: (batch, features_dim); not used when ``stage_terms`` is given
    :param x: (batch, d) particles at ``t0``
    :param t0: start time of the block: one float for all samples, or (batch, 1) per sample
    :param h: Block length.
    :param n_substeps: Solver steps inside the block.
    :param ode_solver: ``"midpoint"`` or ``"euler"``.
    :param log_prob_method: None (no log-det), ``"exact"`` or ``"hutchinson"``.
    :param stage_terms: ``velocity.stage_terms`` at each of ``stage_offsets(h, n_substeps, ode_solver)``
        after ``t0``, when the caller computed them for several blocks at once
    :return: particles at ``t0 + h`` and ``log|det dF/dx|`` (batch,) or None
    """
    dt = h / n_substeps
    batch, dim = x.shape
    midpoint = ode_solver == "midpoint"
    exact = log_prob_method == "exact"
    hutchinson = log_prob_method == "hutchinson"
    if stage_terms is None:
        offsets = x.new_tensor(stage_offsets(h, n_substeps, ode_solver)).unsqueeze(-1)  # (stages, 1)
        stage_terms = velocity.stage_terms(features, t0 + offsets if isinstance(t0, float) else t0.unsqueeze(1) + offsets)
    terms = stage_terms.summed()
    # The velocity-only evaluations share one fetch of the weights
    weights = None if exact else velocity.solver_weights()
    jac = th.eye(dim, dtype=x.dtype, device=x.device).expand(batch, dim, dim) if exact else None
    trace = x.new_zeros(batch) if hutchinson else None
    for step in range(n_substeps):
        if not midpoint:
            stage_term = terms[step]
            if exact:
                v, jv = velocity(None, x, None, jac, stage_term)
                jac = jac + dt * jv
            elif hutchinson:
                eps = rademacher_like(x)
                v, jv = velocity(None, x, None, eps.unsqueeze(-1), stage_term)
                trace = trace + dt * (eps * jv.squeeze(-1)).sum(dim=-1)
            else:
                v = velocity.velocity(x, stage_term, weights)
            x = th.add(x, v, alpha=dt)
        else:
            stage_term_1, stage_term_2 = terms[2 * step], terms[2 * step + 1]
            if exact:
                v1, jv1 = velocity(None, x, None, jac, stage_term_1)
                v2, jv2 = velocity(None, th.add(x, v1, alpha=0.5 * dt), None, jac + 0.5 * dt * jv1, stage_term_2)
                jac = jac + dt * jv2
            elif hutchinson:
                v1 = velocity.velocity(x, stage_term_1, weights)
                eps = rademacher_like(x)
                v2, jv2 = velocity(None, th.add(x, v1, alpha=0.5 * dt), None, eps.unsqueeze(-1), stage_term_2)
                trace = trace + dt * (eps * jv2.squeeze(-1)).sum(dim=-1)
            else:
                v1 = velocity.velocity(x, stage_term_1, weights)
                v2 = velocity.velocity(th.add(x, v1, alpha=0.5 * dt), stage_term_2, weights)
            x = th.add(x, v2, alpha=dt)
    if exact:
        if dim == 1:
            return BlockOutput(x, th.log(th.abs(jac[:, 0, 0]) + FOLD_EPS))
        # log(|det| + FOLD_EPS), computed from slogdet without leaving log space
        return BlockOutput(x, th.logaddexp(th.linalg.slogdet(jac)[1], x.new_tensor(math.log(FOLD_EPS))))
    return BlockOutput(x, trace)


def standard_normal_log_prob(x0: th.Tensor) -> th.Tensor:
    """``log N(x0; 0, I)`` summed over the last dimension: (batch, d) -> (batch,)."""
    return -0.5 * (x0.pow(2).sum(dim=-1) + x0.shape[-1] * math.log(2 * math.pi))


class PathSample(NamedTuple):
    """A point on the linear conditional flow-matching path and its target velocity (spec §5)."""

    x_t: th.Tensor
    u: th.Tensor


def linear_path_sample(x0: th.Tensor, actions: th.Tensor, t: th.Tensor) -> PathSample:
    """``x_t = (1 - t) x0 + t a`` and ``u = a - x0`` (Eq. 7). Shapes: (batch, d), (batch, d), (batch, 1)."""
    return PathSample(x_t=(1.0 - t) * x0 + t * actions, u=actions - x0)


__all__ = [
    "LOG_PROB_METHODS",
    "ODE_SOLVERS",
    "TIME_EMBEDDINGS",
    "BlockOutput",
    "PathSample",
    "SinusoidalTimeEmbedding",
    "StageTerms",
    "VelocityMLP",
    "integrate_block",
    "linear_path_sample",
    "rademacher_like",
    "stage_offsets",
    "standard_normal_log_prob",
]
