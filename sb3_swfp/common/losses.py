"""The losses of SWFP, one pure function per equation of the paper (arXiv 2510.15388).

``SWFP.train()`` only orchestrates these; each returns the loss and, where useful, the
terms it logs.  Shapes: ``batch`` samples, ``d`` action dimensions, ``n_critics`` Q heads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch as th
from torch.nn import functional as F

from sb3_swfp.common.checks import check_choice

Q_AGGREGATIONS = ("min", "mean")


def aggregate_q(q_values: th.Tensor, q_agg: str = "min") -> th.Tensor:
    """Reduce critic outputs (batch, n_critics) to (batch, 1) with ``min`` (clipped double Q) or ``mean``."""
    check_choice("q_agg", q_agg, Q_AGGREGATIONS)
    return q_values.min(dim=1, keepdim=True).values if q_agg == "min" else q_values.mean(dim=1, keepdim=True)


def soft_q_target(
    *,
    rewards: th.Tensor,
    dones: th.Tensor,
    discounts: th.Tensor | float,
    next_q_values: th.Tensor,
    next_log_prob: th.Tensor | None,
    ent_coef: th.Tensor | float,
    q_agg: str = "min",
) -> th.Tensor:
    """Soft Bellman target, Eq. (17–18) in the SAC form::

        y = r + gamma * (1 - done) * [agg_j Qbar_j(s', a') - alpha * log pi_thetabar(a'|s')]

    :param rewards: (batch, 1)
    :param dones: (batch, 1) termination flags (truncations are not dones in SB3's buffers)
    :param discounts: gamma, or (batch, 1) per-sample discounts of an n-step buffer
    :param next_q_values: (batch, n_critics) target critics at (s', a')
    :param next_log_prob: (batch,) or (batch, 1) log-density of a' under the target actor;
        None drops the entropy term (``critic_entropy=False``)
    :param ent_coef: alpha
    :param q_agg: ``"min"`` or ``"mean"`` over the critics
    :return: (batch, 1) targets, without gradient
    """
    next_v = aggregate_q(next_q_values, q_agg)
    if next_log_prob is not None:
        next_v = next_v - ent_coef * next_log_prob.reshape(-1, 1)
    return (rewards + (1.0 - dones) * discounts * next_v).detach()


def soft_q_loss(*, current_q_values: Sequence[th.Tensor], target_q_values: th.Tensor) -> th.Tensor:
    """Critic loss, Eq. (16): ``1/2 * sum_j MSE(Q_j(s, a), y)``; each q is (batch, 1)."""
    return 0.5 * sum(F.mse_loss(q, target_q_values) for q in current_q_values)  # type: ignore[return-value]


def w2_cost(x: th.Tensor, y: th.Tensor) -> th.Tensor:
    """Squared transport distance of paired particles, ``||x - y||^2``: (batch, d) -> (batch,)."""
    return (x - y).pow(2).sum(dim=-1)


class JKOTerms(NamedTuple):
    """The separately logged parts of the block JKO loss (all detached scalars)."""

    q_term: th.Tensor
    log_det: th.Tensor
    w2_prev: th.Tensor
    w2_old: th.Tensor


def jko_block_loss(
    *,
    q_values: th.Tensor,
    log_det: th.Tensor,
    x_new: th.Tensor,
    x_prev_old: th.Tensor,
    x_old: th.Tensor,
    ent_coef: th.Tensor | float,
    w2_coef: float,
    jko_step_size: float,
    q_scale: th.Tensor | float = 1.0,
    w2_prev_coef: float = 1.0,
) -> tuple[th.Tensor, JKOTerms]:
    """One JKO step for flow block n, Eq. (20) with the parallel-block term of Eq. (19)::

        L = mean[ -Q(s, S(x_n)) / (alpha * q_scale) - log|det dF_n/dx (x_{n-1}^old)| - log|det dS(x_n)| ]
            + (eps / 2 tau) * mean[ ||x_n - x_{n-1}^old||^2 + ||x_n - x_n^old||^2 ]

    with ``S`` the policy's squash (identity in the paper's Eq. 20, which has no action box).  The
    function takes Q and the log-determinant as the caller computed them: ``SWFP`` passes Q at the
    squashed particles and the block's log-determinant plus the squash's, and the W2 terms are
    measured on the particles before the squash, where the chain's blocks act.

    ``q_scale = 1`` is the paper's loss; ``SWFP(q_normalization=True)`` passes the batch mean of
    ``|Q|`` (detached), so that alpha, eps and tau weigh a Q of order 1 whatever the reward scale.

    :param q_values: (batch, 1) aggregated critic value at the new particles (``SWFP``: at ``S(x_n)``)
    :param log_det: (batch,) log-determinant of the online block map at ``x_{n-1}^old`` (``SWFP``: plus
        the squash's at ``x_n``, so that the entropy term is the squashed particles')
    :param x_new: (batch, d) ``x_n = F_n^theta(x_{n-1}^old)``, with gradient
    :param x_prev_old: (batch, d) ``x_{n-1}^old`` from the target actor
    :param x_old: (batch, d) ``x_n^old = F_n^thetabar(x_{n-1}^old)`` from the target actor
    :param ent_coef: alpha (> 0)
    :param w2_coef: eps, the W2 scale
    :param jko_step_size: tau, the JKO step size (> 0)
    :param q_scale: divides Q (> 0, no gradient)
    :param w2_prev_coef: weight of the ``||x_n - x_{n-1}^old||^2`` term (1 in Eq. 20)
    :return: scalar loss and its terms
    """
    q_term = -(q_values.reshape(-1) / (ent_coef * q_scale)).mean()
    entropy_term = -log_det.mean()
    w2_prev = w2_cost(x_new, x_prev_old).mean()
    w2_old = w2_cost(x_new, x_old).mean()
    loss = q_term + entropy_term + (w2_coef / (2.0 * jko_step_size)) * (w2_prev_coef * w2_prev + w2_old)
    terms = JKOTerms(q_term.detach(), log_det.mean().detach(), w2_prev.detach(), w2_old.detach())
    return loss, terms


def ent_coef_loss(*, log_ent_coef: th.Tensor, log_prob: th.Tensor, target_entropy: float) -> th.Tensor:
    """Temperature loss (SAC, arXiv 1812.05905): ``-log alpha * (log pi + H_target)``; log_prob is detached."""
    return -(log_ent_coef * (log_prob.reshape(-1) + target_entropy).detach()).mean()


def flow_matching_loss(*, predicted_velocity: th.Tensor, target_velocity: th.Tensor) -> th.Tensor:
    """Conditional flow-matching loss, Eq. (7): ``mean ||v_theta(s, x_t, t) - (a - x0)||^2`` over samples."""
    return (predicted_velocity - target_velocity).pow(2).sum(dim=-1).mean()


class NonFiniteLossError(FloatingPointError, ValueError):
    """Raised when a training loss is NaN or infinite, before any weight is updated with it.

    Also a ``ValueError``: a diverging run is a bad value, as SAC's NaN is (torch raises a
    ``ValueError`` for a NaN Gaussian mean).  Code that treats divergence as a failed run, such as
    rl-zoo3's hyperparameter search (it prunes trials that raise ``AssertionError``/``ValueError``),
    then handles SWFP's the same way; ``FloatingPointError`` stays a base for older callers.
    """


def check_finite(name: str, value: th.Tensor, update: int, algorithm: str = "SWFP") -> float:
    """Return ``value`` as a float, or raise :class:`NonFiniteLossError` naming the term and update number."""
    number = float(value.item())
    if not math.isfinite(number):
        jko = ", or an ent_coef close to 0 (the JKO loss divides Q by ent_coef)" if algorithm == "SWFP" else ""
        raise NonFiniteLossError(
            f"{algorithm}: the loss term '{name}' is {number} at gradient update {update}; training stopped before "
            "writing non-finite weights. Common causes: rewards or observations with NaN/inf, a learning rate "
            f"that is too high{jko}."
        )
    return number
