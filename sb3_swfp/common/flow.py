"""The flow as the paper writes it: velocity field, flow blocks and their solver (Eq. 9-10), and the BC path (Eq. 7).

The policy pushes ``x_0 ~ N(0, I)`` through ``N`` flow blocks.  Block ``n`` (0-based here, ``n + 1``
in the paper) integrates the velocity field ``dx/dt = v_theta(s, x, t)`` over ``[n h, (n + 1) h]``,
``h = 1 / N``, with ``n_substeps`` steps of the midpoint or Euler method (Eq. 10); the log-density
of its output follows from the log-determinant of each block map (Eq. 9, :mod:`~sb3_swfp.common.log_prob`).

:class:`FlowSolver` is what :class:`~sb3_swfp.swfp.policies.FlowActor` integrates its blocks with,
and this module is its reference implementation: plain torch, Jacobians from autograd.  The policy
uses :class:`~sb3_swfp.common.fast_flow.TangentFlowSolver`, the same interface and the same numbers
up to float rounding, several times faster; the tests run every check on both.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch as th
from torch import nn

from sb3_swfp.common.checks import check_choice, check_int
from sb3_swfp.common.log_prob import block_jacobian, hutchinson_term, log_abs_det, rademacher_like, velocity_probe

ODE_SOLVERS = ("midpoint", "euler")
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
        check_choice("time_embedding", time_embedding, TIME_EMBEDDINGS)
        self.time_embed = SinusoidalTimeEmbedding(time_embed_dim) if time_embedding == "sinusoidal" else _LinearTimeEmbedding()
        self.features_dim = features_dim
        self.action_dim = action_dim
        sizes = [features_dim + action_dim + self.time_embed.embed_dim, *net_arch, action_dim]
        self.linears = nn.ModuleList(nn.Linear(n_in, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:]))
        self.norms = nn.ModuleList(nn.LayerNorm(n) for n in net_arch) if layer_norm else None
        self.activation = activation_fn()
        #: Every layer after the first as (its input's LayerNorm or None, linear): ``z <- linear(act(norm(z)))``
        self.later_layers = tuple(zip(self.norms if self.norms is not None else [None] * len(net_arch), self.linears[1:]))

    def forward(self, features: th.Tensor, x: th.Tensor, t: th.Tensor) -> th.Tensor:
        """``v_theta(s, x, t)``: (batch, features_dim), (batch, action_dim), (batch, 1) -> (batch, action_dim)."""
        z = self.linears[0](th.cat([features, x, self.time_embed(t)], dim=-1))
        for norm, linear in self.later_layers:
            z = linear(self.activation(z if norm is None else norm(z)))
        return z


class BlockOutput(NamedTuple):
    """Result of one flow block: the moved particles and, if requested, ``log|det dF/dx|`` of shape (batch,)."""

    x: th.Tensor
    log_det: th.Tensor | None


Velocity = Callable[[th.Tensor, Any], th.Tensor]  # v(x, t): (batch, d) and a float or (batch, 1) -> (batch, d)


def integrate(
    velocity: Velocity,
    x: th.Tensor,
    t0: float | th.Tensor,
    length: float,
    n_steps: int,
    ode_solver: str = "midpoint",
    log_prob_method: str | None = None,
) -> BlockOutput:
    """Integrate ``dx/dt = v(x, t)`` from ``t0`` over ``length`` in ``n_steps`` steps of ``dt`` (Eq. 10), and the log-determinant of the map.

    Euler: ``x' = x + dt v(x, t)``; midpoint: ``x' = x + dt v(x + dt/2 v(x, t), t + dt/2)``.
    The log-determinant is that of :mod:`~sb3_swfp.common.log_prob`: ``"exact"`` from the Jacobian of
    the whole map, ``"hutchinson"`` from one probe per step where the step takes its slope.

    :param t0: start time, a float for all samples or (batch, 1) per sample
    :return: particles at ``t0 + length`` and ``log|det dF/dx|`` (batch,) or None
    """
    dt = length / n_steps
    x_start, trace = x, 0.0
    for step in range(n_steps):
        t = t0 + step * dt
        # Where the step takes its slope: (x, t), or for the midpoint method half an Euler step on
        x_slope, t_slope = (x, t) if ode_solver == "euler" else (x + 0.5 * dt * velocity(x, t), t + 0.5 * dt)
        if log_prob_method == "hutchinson":
            eps = rademacher_like(x)
            slope, product = velocity_probe(lambda y: velocity(y, t_slope), x_slope, eps)
            trace = trace + dt * hutchinson_term(eps, product)
        else:
            slope = velocity(x_slope, t_slope)
        x = x + dt * slope
    if log_prob_method == "exact":
        jacobian = block_jacobian(lambda y: integrate(velocity, y, t0, length, n_steps, ode_solver).x, x_start)
        return BlockOutput(x, log_abs_det(jacobian))
    return BlockOutput(x, trace if log_prob_method == "hutchinson" else None)


class FlowSolver(nn.Module):
    """Integrates the flow blocks of a velocity network: the interface :class:`~sb3_swfp.swfp.policies.FlowActor`
    uses, and its reference implementation.

    A chain of blocks on the same states may share work between its blocks: ``conditioning`` computes
    it once (here: nothing), and the actor passes it, or its ``rows(idx)``, to every ``block``.

    :param n_blocks: N, the number of flow blocks; block ``n`` covers ``[n h, (n + 1) h]``, ``h = 1 / N``.
    :param n_substeps: Solver steps inside each block.
    :param ode_solver: ``"midpoint"`` or ``"euler"``.
    """

    def __init__(self, n_blocks: int, n_substeps: int = 1, ode_solver: str = "midpoint"):
        super().__init__()
        check_choice("ode_solver", ode_solver, ODE_SOLVERS)
        check_int("n_blocks", n_blocks, 1)
        check_int("n_substeps", n_substeps, 1)
        self.n_blocks = n_blocks
        self.n_substeps = n_substeps
        self.ode_solver = ode_solver
        self.h = 1.0 / n_blocks

    def velocity(self, net: VelocityMLP, features: th.Tensor, x: th.Tensor, t: th.Tensor) -> th.Tensor:
        """``v_theta(s, x, t)``: (batch, features_dim), (batch, d), (batch, 1) -> (batch, d)."""
        return net(features, x, t)

    def conditioning(self, net: VelocityMLP, features: th.Tensor) -> Any:
        """What every block of a chain of ``net`` on these states shares, or None."""
        return None

    def block(
        self,
        net: VelocityMLP,
        features: th.Tensor,
        x: th.Tensor,
        block: int | th.Tensor,
        log_prob_method: str | None = None,
        conditioning: Any = None,
    ) -> BlockOutput:
        """Block map ``F_block(x)`` (Eq. 10) and, with a ``log_prob_method``, ``log|det dF/dx|`` (batch,).

        :param features: (batch, features_dim)
        :param x: (batch, d) particles at the block's start
        :param block: 0-based block index, one for all samples or a (batch,) long tensor
        :param conditioning: ``self.conditioning(net, features)`` (or its rows), with one index for all samples
        """
        t0 = block * self.h if isinstance(block, int) else (block.to(x.dtype) * self.h).unsqueeze(-1)  # float or (batch, 1)
        return integrate(self._field(net, features), x, t0, self.h, self.n_substeps, self.ode_solver, log_prob_method)

    def flow(self, net: VelocityMLP, features: th.Tensor, x: th.Tensor) -> th.Tensor:
        """``x_0 -> x_N`` without log-density: one solve over [0, 1] with the blocks' ``N * n_substeps`` steps."""
        return integrate(self._field(net, features), x, 0.0, 1.0, self.n_blocks * self.n_substeps, self.ode_solver).x

    def _field(self, net: VelocityMLP, features: th.Tensor) -> Velocity:
        """``v(x, t)`` on these states, for a float ``t`` or one per sample."""

        def velocity(x: th.Tensor, t: float | th.Tensor) -> th.Tensor:
            return self.velocity(net, features, x, t if isinstance(t, th.Tensor) else x.new_full((x.shape[0], 1), t))

        return velocity


class PathSample(NamedTuple):
    """A point on the linear conditional flow-matching path and its target velocity (Eq. 7)."""

    x_t: th.Tensor
    u: th.Tensor


def linear_path_sample(x0: th.Tensor, actions: th.Tensor, t: th.Tensor) -> PathSample:
    """``x_t = (1 - t) x0 + t a`` and ``u = a - x0`` (Eq. 7). Shapes: (batch, d), (batch, d), (batch, 1)."""
    return PathSample(x_t=(1.0 - t) * x0 + t * actions, u=actions - x0)


__all__ = [
    "ODE_SOLVERS",
    "TIME_EMBEDDINGS",
    "BlockOutput",
    "FlowSolver",
    "PathSample",
    "SinusoidalTimeEmbedding",
    "VelocityMLP",
    "integrate",
    "linear_path_sample",
]
