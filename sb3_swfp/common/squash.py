"""The last map of the flow policy: from the chain's output ``x_N`` in R^d to an action in the box [-1, 1]^d.

The entropy term of the JKO loss (Eq. 20) and the soft value of the critic (Eq. 18) need the
density of the *action*.  A clip maps all of R^d onto the box but has no density there (the
mass beyond the box lands on its faces): a density computed before the clip lives on R^d, where
the entropy term has no finite optimum and pushes particles outwards without limit.  A smooth
bijection ``S: R -> (-1, 1)``, applied per dimension, puts the density on the box,
``log pi(a) = log pi_x(x) - sum_i log S'(x_i)``, and the entropy term's optimum becomes finite
(the uniform law on the box).  See docs/algorithm.md, "Where the density lives".

- ``"soft_clip"`` (default): the identity on ``[-k, k]`` (``k = SOFT_CLIP_KNEE``), a tanh tail
  ``k + (1 - k) tanh((|x| - k) / (1 - k))`` beyond it.  Inside the knee the flow's straight
  flow-matching paths and its actions are those of a clip; an action on the bound has the
  pre-image ``k + (1 - k) atanh(u)``, about 1.16, instead of tanh's 3.8.
- ``"tanh"``: ``a = tanh(x)``, as SAC squashes its Gaussian.
- ``"clip"``: ``a = clip(x, -1, 1)`` with no density correction; the rule before the density
  moved to the box, kept so that models saved with it load and behave as before.
"""

from __future__ import annotations

import math

import torch as th
from torch.nn import functional as F

from sb3_swfp.common.checks import check_choice

SQUASHES = ("soft_clip", "tanh", "clip")
#: The identity part of ``"soft_clip"``: ``[-SOFT_CLIP_KNEE, SOFT_CLIP_KNEE]``.
SOFT_CLIP_KNEE = 0.9
#: Behaviour-cloning targets stay this far inside the open box, so that their pre-images are finite.
BOUND_MARGIN = 1e-3


def _log_sech2(z: th.Tensor) -> th.Tensor:
    """``log(1 - tanh(z)^2)`` for ``z >= 0``, without cancellation: ``2 (log 2 - z - softplus(-2 z))``."""
    return 2.0 * (math.log(2.0) - z - F.softplus(-2.0 * z))


class Squash:
    """A per-dimension map ``S`` from R^d to the action box, with ``log|det dS/dx|`` and a pre-image.

    :param name: one of :data:`SQUASHES`.
    """

    def __init__(self, name: str):
        check_choice("squash", name, SQUASHES)
        self.name = name

    def __repr__(self) -> str:
        return f"Squash({self.name!r})"

    def __call__(self, x: th.Tensor) -> th.Tensor:
        """The action ``S(x)``: (batch, d) -> (batch, d) in [-1, 1]^d."""
        if self.name == "clip":
            return th.clamp(x, -1.0, 1.0)
        if self.name == "tanh":
            return th.tanh(x)
        k = SOFT_CLIP_KNEE
        # clamp(x) + tail: bit for bit the module docstring's piecewise form, in half the tensor ops
        # (``predict`` on one observation pays per op)
        inner = th.clamp(x, -k, k)
        return inner + (1.0 - k) * th.tanh((x - inner) / (1.0 - k))

    def log_abs_det(self, x: th.Tensor) -> th.Tensor:
        """``sum_i log S'(x_i)``: (batch, d) -> (batch,); zero for ``"clip"``, which has no density on the box."""
        if self.name == "clip":
            return x.new_zeros(x.shape[0])
        if self.name == "tanh":
            return _log_sech2(x.abs()).sum(dim=-1)
        k = SOFT_CLIP_KNEE
        return _log_sech2((x.abs() - k).clamp_min(0.0) / (1.0 - k)).sum(dim=-1)

    def inverse(self, actions: th.Tensor) -> th.Tensor:
        """The pre-image of actions in [-1, 1]^d, each first moved :data:`BOUND_MARGIN` inside the open box
        (the targets of flow-matching behaviour cloning).  ``"clip"`` returns the actions as they are."""
        if self.name == "clip":
            return actions
        a = actions.clamp(-1.0 + BOUND_MARGIN, 1.0 - BOUND_MARGIN)
        if self.name == "tanh":
            return th.atanh(a)
        k = SOFT_CLIP_KNEE
        tail = th.sign(a) * (k + (1.0 - k) * th.atanh((a.abs() - k).clamp_min(0.0) / (1.0 - k)))
        return th.where(a.abs() <= k, a, tail)


__all__ = ["BOUND_MARGIN", "SOFT_CLIP_KNEE", "SQUASHES", "Squash"]
