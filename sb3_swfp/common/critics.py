"""Q networks with LayerNorm, for SWFP's critic and for the RLPD-style SAC baseline."""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.policies import ContinuousCritic
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import create_mlp
from torch import nn


class LayerNormContinuousCritic(ContinuousCritic):
    """SB3's ``ContinuousCritic`` with LayerNorm after every hidden linear layer, before the activation.

    LayerNorm bounds how far a critic extrapolates to actions it was not trained on (RLPD, Ball et
    al. 2023, arXiv 2302.02948, Sec. 3.2): the Q value is a linear read-out of a normalised feature
    vector.  Same parameters as ``ContinuousCritic``.
    """

    def __init__(self, observation_space: Any, action_space: Any, net_arch: list[int], features_extractor: Any, features_dim: int, activation_fn: type[nn.Module] = nn.ReLU, **kwargs: Any):
        super().__init__(observation_space, action_space, net_arch, features_extractor, features_dim, activation_fn, **kwargs)
        action_dim = get_action_dim(self.action_space)
        self.q_networks = []
        for idx in range(self.n_critics):
            q_net = nn.Sequential(*create_mlp(features_dim + action_dim, 1, net_arch, activation_fn, post_linear_modules=[nn.LayerNorm]))
            self.add_module(f"qf{idx}", q_net)  # replaces the plain network of the same name
            self.q_networks.append(q_net)


__all__ = ["LayerNormContinuousCritic"]
