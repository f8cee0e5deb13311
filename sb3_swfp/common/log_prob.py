"""The log-density of the flow policy, Eq. (9): its source, and the log-determinant of a block, exact or by Hutchinson.

``log pi(x_N | s) = log N(x_0; 0, I) - sum_n log|det dF_n/dx (x_{n-1})|``, with one term per flow
block ``F_n`` (Eq. 10).  A block's term is either

- ``"exact"``: ``log|det J|`` of the Jacobian ``J = dF_n/dx`` (batch, d, d) of the discrete block map,
  the exact density of the discrete flow, with a floor where the map folds (:func:`log_abs_det`); or
- ``"hutchinson"``: ``sum_steps dt * eps^T J_v eps``, one Rademacher probe ``eps`` per solver step,
  ``J_v = dv/dx`` taken where the solver evaluates the slope (the midpoint for ``"midpoint"``): an
  unbiased estimate of the continuous-time ``integral of div v`` over the block.

The functions here take Jacobians and Jacobian-vector products however they were computed: the
reference solver (:class:`~sb3_swfp.common.flow.FlowSolver`) gets them from autograd
(:func:`block_jacobian`, :func:`velocity_probe`), the fast one
(:class:`~sb3_swfp.common.fast_flow.TangentFlowSolver`) from tangents carried through the network.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch as th

LOG_PROB_METHODS = ("exact", "hutchinson")
#: Floor of one direction of a block map that folds (det -> 0), which would otherwise give log pi = +inf,
#: non-finite critic targets and unbounded gradients; SB3's SAC adds 1e-6 inside each dimension's tanh
#: correction for the same reason.  See :func:`log_abs_det` for how it applies to d dimensions.
FOLD_EPS = 1e-6


def standard_normal_log_prob(x0: th.Tensor) -> th.Tensor:
    """``log N(x0; 0, I)`` summed over the last dimension: (batch, d) -> (batch,)."""
    return -0.5 * (x0.pow(2).sum(dim=-1) + x0.shape[-1] * math.log(2 * math.pi))


def log_abs_det(jacobian: th.Tensor) -> th.Tensor:
    """``log(|det J| + FOLD_EPS * r ** (d - 1))`` of Jacobians (batch, d, d) -> (batch,), differentiable.

    ``r = ||J||_F / sqrt(d)`` (no gradient, at least FOLD_EPS) is the block's root-mean-square singular
    value: a map that folds one direction and keeps the others at scale ``r`` has ``|det J| ~ s_min r^(d-1)``,
    and the floor gives that direction FOLD_EPS, as SAC's per-dimension floor does; a map that contracts
    every direction by ``s`` is floored only where ``s`` < FOLD_EPS (docs/algorithm.md says why this form).
    """
    if jacobian.shape[-1] == 1:
        return th.log(th.abs(jacobian[:, 0, 0]) + FOLD_EPS)
    d = jacobian.shape[-1]
    log_rms = 0.5 * th.log(jacobian.detach().pow(2).sum(dim=(-2, -1)) / d)  # (batch,) log r
    floor = math.log(FOLD_EPS) + (d - 1) * log_rms.clamp_min(math.log(FOLD_EPS))
    sign, log_det = th.linalg.slogdet(jacobian)
    singular = sign == 0
    if singular.any():  # det exactly 0 (LAPACK found a zero pivot): slogdet's backward would give NaN there
        # Identity in their place, then log|det| = -inf: the floor alone, and |det|'s subgradient at 0, zero
        safe = th.where(singular[:, None, None], th.eye(d, dtype=jacobian.dtype, device=jacobian.device), jacobian)
        log_det = th.linalg.slogdet(safe)[1].masked_fill(singular, -math.inf)
    # log(|det| + floor), computed from slogdet without leaving log space
    return th.logaddexp(log_det, floor)


def rademacher_like(x: th.Tensor) -> th.Tensor:
    """Random +-1 entries with the shape, dtype and device of ``x``: a Hutchinson probe."""
    return th.randint(0, 2, x.shape, device=x.device).to(x.dtype) * 2.0 - 1.0


def hutchinson_term(eps: th.Tensor, product: th.Tensor) -> th.Tensor:
    """``eps^T (J eps)``, an unbiased estimate of ``trace J``, from ``J eps`` (or ``J^T eps``): (batch, d) each -> (batch,)."""
    return (eps * product).sum(dim=-1)


def block_jacobian(block_map: Callable[[th.Tensor], th.Tensor], x: th.Tensor) -> th.Tensor:
    """``dF/dx`` of a map that acts on every sample on its own, (batch, d) -> (batch, d, d), by autograd.

    Row ``k`` of every sample's Jacobian is the vector-Jacobian product with the ``k``-th unit vector,
    one backward pass for the whole batch.  Reverse mode, not forward mode: the actor loss
    back-propagates through log-determinants, and torch's backward through a forward-mode tangent of
    ``layer_norm`` misses the dependence on the parameters before it (torch 2.x).
    """
    _, vjp = th.func.vjp(block_map, x)
    rows = [vjp(direction.expand_as(x))[0] for direction in th.eye(x.shape[-1], dtype=x.dtype, device=x.device)]
    return th.stack(rows, dim=-2)


def velocity_probe(velocity: Callable[[th.Tensor], th.Tensor], x: th.Tensor, eps: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    """``v(x)`` and ``J_v(x)^T eps`` (batch, d) each, by autograd: ``eps^T J_v^T eps = eps^T J_v eps``, so
    :func:`hutchinson_term` takes either product (reverse mode, for the reason of :func:`block_jacobian`)."""
    v, vjp = th.func.vjp(velocity, x)
    return v, vjp(eps)[0]


__all__ = [
    "FOLD_EPS",
    "LOG_PROB_METHODS",
    "block_jacobian",
    "hutchinson_term",
    "log_abs_det",
    "rademacher_like",
    "standard_normal_log_prob",
    "velocity_probe",
]
