"""Flow policy for SWFP: a cascade of flow blocks (the actor), its target copy, and a soft-Q critic.

The flow blocks and the log-density are those of Eq. (9-10); actions live in SB3's scaled space
[-1, 1]^d, and ``predict`` unscales them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy, ContinuousCritic
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    NatureCNN,
    get_actor_critic_arch,
)
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from sb3_swfp.common.checks import check_choice
from sb3_swfp.common.critics import LayerNormContinuousCritic
from sb3_swfp.common.fast_flow import TangentFlowSolver
from sb3_swfp.common.flow import BlockOutput, FlowSolver, VelocityMLP, linear_path_sample
from sb3_swfp.common.log_prob import LOG_PROB_METHODS, standard_normal_log_prob
from sb3_swfp.common.losses import flow_matching_loss
from sb3_swfp.common.squash import Squash


def _route_by_block(
    block: th.Tensor, compute: Callable[[int, th.Tensor], tuple[th.Tensor | None, ...]]
) -> list[th.Tensor | None]:
    """Run ``compute(n, idx)`` on the samples ``idx`` of each block ``n`` and put the outputs back in batch order.

    :param block: (batch,) block index per sample
    :param compute: returns a tuple of (len(idx), ...) tensors (or Nones) for block ``n``'s samples
    :return: one (batch, ...) tensor (or None) per output, differentiable
    """
    outputs, indices = [], []
    for n in th.unique(block).tolist():
        idx = (block == n).nonzero(as_tuple=True)[0]
        outputs.append(compute(n, idx))
        indices.append(idx)
    inverse = th.argsort(th.cat(indices))  # position of sample i in the concatenated outputs
    return [None if parts[0] is None else th.cat(parts)[inverse] for parts in zip(*outputs)]


class Walk(NamedTuple):
    """Particles after a walk along the chain of blocks, those that entered its last block, and their log-density."""

    x: th.Tensor
    x_prev: th.Tensor
    log_prob: th.Tensor | None


class FlowActor(BasePolicy):
    """Flow-matching actor: ``x_0 ~ N(0, I)`` pushed through ``n_blocks`` flow blocks, action ``S(x_N)``.

    Block n (0-based here, ``n + 1`` in the paper) integrates the velocity field over
    ``[n h, (n + 1) h]`` with ``h = 1 / n_blocks`` (Eq. 10).  ``S`` is the squash onto the action box
    (:class:`~sb3_swfp.common.squash.Squash`); the log-density includes its log-determinant.  The
    blocks are integrated by ``self.solver``, the fast :class:`~sb3_swfp.common.fast_flow.TangentFlowSolver`
    (its reference, :class:`~sb3_swfp.common.flow.FlowSolver`, can take its place: same numbers up to
    float rounding); :meth:`walk` is the one place that goes along the chain, :meth:`block` applies one block.

    :param observation_space: Observation space.
    :param action_space: Action space (bounded Box).
    :param net_arch: Hidden sizes of the velocity network.
    :param features_extractor: Network to extract features.
    :param features_dim: Number of features.
    :param activation_fn: Activation of the velocity network.
    :param n_blocks: N, number of flow blocks.
    :param n_substeps: Solver steps per block.
    :param ode_solver: ``"midpoint"`` or ``"euler"``.
    :param log_prob_method: ``"exact"`` or ``"hutchinson"``.
    :param time_embedding: ``"sinusoidal"`` or ``"linear"``.
    :param time_embed_dim: Size of the sinusoidal time embedding.
    :param layer_norm: LayerNorm in the velocity network.
    :param share_velocity: One time-conditioned network for all blocks (True) or one network per block.
    :param squash: The map from ``x_N`` to the action box, one of ``SQUASHES``.
    :param normalize_images: Whether to normalize images (divide by 255).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: list[int],
        features_extractor: nn.Module,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        n_blocks: int = 5,
        n_substeps: int = 1,
        ode_solver: str = "midpoint",
        log_prob_method: str = "exact",
        time_embedding: str = "sinusoidal",
        time_embed_dim: int = 16,
        layer_norm: bool = False,
        share_velocity: bool = True,
        squash: str = "soft_clip",
        normalize_images: bool = True,
    ):
        super().__init__(
            observation_space,
            action_space,
            features_extractor=features_extractor,
            normalize_images=normalize_images,
            squash_output=True,
        )
        check_choice("log_prob_method", log_prob_method, LOG_PROB_METHODS)
        self.net_arch = net_arch
        self.features_dim = features_dim
        self.activation_fn = activation_fn
        self.n_blocks = n_blocks
        self.n_substeps = n_substeps
        self.ode_solver = ode_solver
        self.log_prob_method = log_prob_method
        self.time_embedding = time_embedding
        self.time_embed_dim = time_embed_dim
        self.layer_norm = layer_norm
        self.share_velocity = share_velocity
        self.squash = Squash(squash)
        self.action_dim = get_action_dim(action_space)
        self.h = 1.0 / n_blocks

        def make_velocity() -> VelocityMLP:
            return VelocityMLP(features_dim, self.action_dim, net_arch, activation_fn, time_embedding, time_embed_dim, layer_norm)

        # One shared network, or N independent ones (each a copy of the first, so that a
        # shared pretrained network can be loaded into all of them)
        first = make_velocity()
        self.velocities = nn.ModuleList([first] + [copy.deepcopy(first) for _ in range(0 if share_velocity else n_blocks - 1)])
        self.solver: FlowSolver = TangentFlowSolver(n_blocks, n_substeps, ode_solver)  # no parameters, nothing saved

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            dict(
                net_arch=self.net_arch,
                features_dim=self.features_dim,
                activation_fn=self.activation_fn,
                n_blocks=self.n_blocks,
                n_substeps=self.n_substeps,
                ode_solver=self.ode_solver,
                log_prob_method=self.log_prob_method,
                time_embedding=self.time_embedding,
                time_embed_dim=self.time_embed_dim,
                layer_norm=self.layer_norm,
                share_velocity=self.share_velocity,
                squash=self.squash.name,
                features_extractor=self.features_extractor,
            )
        )
        return data

    def velocity_net(self, block: int | th.Tensor) -> VelocityMLP:
        """The velocity network of block ``block`` (0-based; any block when the network is shared)."""
        return self.velocities[0 if self.share_velocity else block]

    def conditioning(self, features: th.Tensor) -> Any:
        """What every block of a chain on these states shares, computed once; None with independent blocks."""
        return self.solver.conditioning(self.velocities[0], features) if self.share_velocity else None

    def block(self, features: th.Tensor, x: th.Tensor, block: int | th.Tensor, log_prob_method: str | None = None) -> BlockOutput:
        """One flow block ``F_n(x)`` (Eq. 10) on its own and, with a ``log_prob_method``, ``log|det dF_n/dx|`` (batch,).

        :param features: (batch, features_dim)
        :param x: (batch, d) particles at the block's start
        :param block: 0-based index, one for all samples or a (batch,) long tensor (per-sample times)
        """
        if isinstance(block, th.Tensor) and not self.share_velocity:  # each sample to the network of its block
            x_out, log_det = _route_by_block(
                block, lambda n, idx: self.solver.block(self.velocities[n], features[idx], x[idx], block[idx], log_prob_method)
            )
            return BlockOutput(x_out, log_det)  # type: ignore[arg-type]
        return self.solver.block(self.velocity_net(block), features, x, block, log_prob_method)

    def walk(
        self,
        features: th.Tensor,
        x: th.Tensor,
        start: int | th.Tensor = 0,
        stop: int | th.Tensor | None = None,
        log_prob: th.Tensor | None = None,
    ) -> Walk:
        """Push particles through blocks ``start .. stop - 1`` (Eq. 10), and their log-density with them (Eq. 9).

        ``log p(x_n) = log p(x_{n-1}) - log|det dF_n/dx (x_{n-1})|``, with ``self.log_prob_method``.
        The blocks of the walk share the chain's conditioning (``self.conditioning``).

        :param features: (batch, features_dim)
        :param x: (batch, d) particles at the start of block ``start``
        :param start: first block (0-based), one for all samples or (batch,) per sample
        :param stop: one past the last block (default: the whole chain), one for all samples or (batch,) per sample
        :param log_prob: (batch,) log-density of ``x``, or None to skip log-densities
        :return: the particles after the walk, those that entered its last block and their log-density
        """
        stop = self.n_blocks if stop is None else stop
        method = None if log_prob is None else self.log_prob_method
        conditioning = self.conditioning(features)
        if isinstance(start, int) and isinstance(stop, int):  # the same blocks for all samples
            x_prev = x
            for n in range(start, stop):
                x_prev = x
                x, log_det = self.solver.block(self.velocity_net(n), features, x, n, method, conditioning)
                if log_prob is not None:
                    log_prob = log_prob - log_det
            return Walk(x, x_prev, log_prob)
        # Per-sample ranges: block n runs only on the samples whose range holds it (a walk from 0 to each
        # sample's own block costs (N + 1) / 2 blocks on average instead of N)
        x_prev = x
        first = start if isinstance(start, int) else int(start.min().item())
        last = stop if isinstance(stop, int) else int(stop.max().item())
        for n in range(first, last):
            inside = stop > n if isinstance(start, int) else (start <= n) & (stop > n)
            idx = inside.nonzero(as_tuple=True)[0]
            x_in = x[idx]
            rows = None if conditioning is None else conditioning.rows(idx)
            x_out, log_det = self.solver.block(self.velocity_net(n), features[idx], x_in, n, method, rows)
            x_prev, x = x_prev.index_copy(0, idx, x_in), x.index_copy(0, idx, x_out)
            if log_prob is not None:
                log_prob = log_prob.index_copy(0, idx, log_prob[idx] - log_det)
        return Walk(x, x_prev, log_prob)

    def sample_from_features(
        self, features: th.Tensor, deterministic: bool = False, with_log_prob: bool = False
    ) -> tuple[th.Tensor, th.Tensor | None]:
        """Run the whole chain. Returns actions ``S(x_N)`` (batch, d) and, if asked, their ``log pi(a|s)`` (batch,).

        ``log pi = log N(x_0; 0, I) - sum_n log|det dF_n/dx(x_{n-1})| - log|det dS/dx(x_N)|`` (Eq. 9–10 and
        the squash's change of variables).  Deterministic actions start from ``x_0 = 0``.
        """
        batch = features.shape[0]
        if deterministic:
            x0 = features.new_zeros(batch, self.action_dim)
        else:
            x0 = th.randn(batch, self.action_dim, device=features.device, dtype=features.dtype)
        if not with_log_prob and self.share_velocity:
            # Without log-densities the chain of one network is one solve over [0, 1] (predict's path)
            return self.squash(self.solver.flow(self.velocities[0], features, x0)), None
        walk = self.walk(features, x0, log_prob=standard_normal_log_prob(x0) if with_log_prob else None)
        log_prob = None if walk.log_prob is None else walk.log_prob - self.squash.log_abs_det(walk.x)
        return self.squash(walk.x), log_prob

    def action_log_prob(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor]:
        """Stochastic actions and their log-density, like SAC's ``Actor.action_log_prob``."""
        actions, log_prob = self.sample_from_features(self.extract_features(obs, self.features_extractor), with_log_prob=True)
        return actions, log_prob  # type: ignore[return-value]

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self.sample_from_features(self.extract_features(obs, self.features_extractor), deterministic)[0]

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self(observation, deterministic)

    def flow_matching_loss(self, obs: PyTorchObs, actions: th.Tensor) -> th.Tensor:
        """Behaviour-cloning loss of Eq. (7) on (scaled) demonstration actions (batch, d).

        The chain is regressed onto the actions' pre-images under the squash (``S^-1(a)``, so that
        ``S(x_N)`` reproduces them).  ``t ~ U(0, 1)``; with independent blocks each sample trains the
        block that contains its ``t``.
        """
        features = self.extract_features(obs, self.features_extractor)
        actions = self.squash.inverse(actions)
        x0 = th.randn_like(actions)
        t = th.rand(actions.shape[0], 1, device=actions.device, dtype=actions.dtype)
        path = linear_path_sample(x0, actions, t)
        if self.share_velocity:
            predicted = self.solver.velocity(self.velocities[0], features, path.x_t, t)
        else:
            block = th.clamp((t.squeeze(-1) * self.n_blocks).long(), max=self.n_blocks - 1)
            (predicted,) = _route_by_block(block, lambda n, idx: (self.solver.velocity(self.velocities[n], features[idx], path.x_t[idx], t[idx]),))
        return flow_matching_loss(predicted_velocity=predicted, target_velocity=path.u)


class FlowPolicy(BasePolicy):
    """Policy class for SWFP: flow actor, target ("prior") actor, twin soft-Q critics and their targets.

    The behaviour policy and ``predict`` use the target actor (Algorithm 1, line 4).

    The layout is that of SB3's ``TD3Policy``, but not built on it: its ``_build`` hands a shared
    features extractor to the critic's optimizer and to the target critic (here, as in SAC, the
    critic's step leaves it out and the target critic has its own), and ``TD3Policy.__init__``
    builds the networks before a subclass can add the flow's arguments.  With ``_build``,
    ``_predict``, ``make_actor`` and ``make_critic`` overridden, only ``set_training_mode`` would
    be inherited.

    :param observation_space: Observation space.
    :param action_space: Action space (bounded Box).
    :param lr_schedule: Initial learning rate schedule (the algorithm sets the actor's and critic's rates at each update).
    :param net_arch: Hidden sizes, a list for both or ``dict(pi=[...], qf=[...])`` as in SAC;
        ``pi`` sizes the velocity network, ``qf`` the critics.
    :param activation_fn: Activation function.
    :param n_blocks: N, number of flow blocks (set by the algorithm).
    :param n_substeps: Solver steps per block (set by the algorithm).
    :param ode_solver: ``"midpoint"`` or ``"euler"`` (set by the algorithm).
    :param log_prob_method: ``"exact"`` or ``"hutchinson"`` (set by the algorithm).
    :param time_embedding: ``"sinusoidal"`` or ``"linear"``.
    :param time_embed_dim: Size of the sinusoidal time embedding.
    :param layer_norm: LayerNorm in the velocity network.
    :param share_velocity: One network for all blocks (default) or one per block.
    :param squash: The map from the chain's output to the action box (set by the algorithm).
    :param critic_layer_norm: LayerNorm in the critics' hidden layers (:class:`LayerNormContinuousCritic`).
    :param features_extractor_class: Features extractor to use.
    :param features_extractor_kwargs: Keyword arguments for the features extractor.
    :param normalize_images: Whether to normalize images (divide by 255).
    :param optimizer_class: The optimizer to use, ``th.optim.Adam`` by default.
    :param optimizer_kwargs: Additional keyword arguments, excluding the learning rate, for the optimizer.
        Adam and AdamW get ``foreach=True`` unless these set ``foreach`` or ``fused``: one multi-tensor step instead of a
        Python loop over the parameters (torch chooses it by itself on GPUs only; the result is the same).
    :param n_critics: Number of critic networks.
    :param share_features_extractor: Share the features extractor between actor and critic.
    """

    actor: FlowActor
    actor_target: FlowActor
    critic: ContinuousCritic
    critic_target: ContinuousCritic

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        n_blocks: int = 5,
        n_substeps: int = 1,
        ode_solver: str = "midpoint",
        log_prob_method: str = "exact",
        time_embedding: str = "sinusoidal",
        time_embed_dim: int = 16,
        layer_norm: bool = False,
        share_velocity: bool = True,
        squash: str = "soft_clip",
        critic_layer_norm: bool = False,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        n_critics: int = 2,
        share_features_extractor: bool = False,
    ):
        if isinstance(observation_space, spaces.Dict) and features_extractor_class is FlattenExtractor:
            # FlattenExtractor accepts a Dict space here, then fails on the first observation
            raise ValueError(
                f"{type(self).__name__} with FlattenExtractor takes Box observations; this env's are a Dict (keys "
                f"{list(observation_space.spaces)}): use "
                "MultiInputPolicy (SWFP('MultiInputPolicy', env); in the zoo, policy: 'MultiInputPolicy' in the env's entry or "
                "-params policy:\"'MultiInputPolicy'\"), "
                "or a features_extractor_class that takes a Dict (CombinedExtractor)"
            )
        if optimizer_class in (th.optim.Adam, th.optim.AdamW) and "fused" not in (optimizer_kwargs or {}):
            optimizer_kwargs = {"foreach": True, **(optimizer_kwargs or {})}  # torch refuses fused with foreach
        super().__init__(
            observation_space,
            action_space,
            features_extractor_class,
            features_extractor_kwargs,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            squash_output=True,
            normalize_images=normalize_images,
        )
        if net_arch is None:
            net_arch = [256, 256]
        actor_arch, critic_arch = get_actor_critic_arch(net_arch)
        self.net_arch = net_arch
        self.activation_fn = activation_fn
        self.share_features_extractor = share_features_extractor
        self.critic_layer_norm = critic_layer_norm
        self.actor_kwargs = {
            "observation_space": self.observation_space,
            "action_space": self.action_space,
            "net_arch": actor_arch,
            "activation_fn": activation_fn,
            "normalize_images": normalize_images,
            "n_blocks": n_blocks,
            "n_substeps": n_substeps,
            "ode_solver": ode_solver,
            "log_prob_method": log_prob_method,
            "time_embedding": time_embedding,
            "time_embed_dim": time_embed_dim,
            "layer_norm": layer_norm,
            "share_velocity": share_velocity,
            "squash": squash,
        }
        self.critic_kwargs = {
            "observation_space": self.observation_space,
            "action_space": self.action_space,
            "net_arch": critic_arch,
            "activation_fn": activation_fn,
            "normalize_images": normalize_images,
            "n_critics": n_critics,
            "share_features_extractor": share_features_extractor,
        }
        self._build(lr_schedule)

    def _build(self, lr_schedule: Schedule) -> None:
        self.actor = self.make_actor()
        self.actor.optimizer = self.optimizer_class(self.actor.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)
        # The target ("prior") actor: the behaviour policy, polyak-averaged towards the actor
        self.actor_target = self.make_actor()
        self.actor_target.load_state_dict(self.actor.state_dict())
        self.actor_target.set_training_mode(False)
        self.actor_target.requires_grad_(False)

        if self.share_features_extractor:
            self.critic = self.make_critic(features_extractor=self.actor.features_extractor)
            # Do not optimize the shared features extractor with the critic loss (as SAC)
            critic_parameters = [param for name, param in self.critic.named_parameters() if "features_extractor" not in name]
        else:
            self.critic = self.make_critic(features_extractor=None)
            critic_parameters = list(self.critic.parameters())
        self.critic_target = self.make_critic(features_extractor=None)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.set_training_mode(False)
        self.critic_target.requires_grad_(False)
        self.critic.optimizer = self.optimizer_class(critic_parameters, lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        actor_kwargs = self.actor_kwargs
        data.update(
            dict(
                net_arch=self.net_arch,
                activation_fn=self.activation_fn,
                n_blocks=actor_kwargs["n_blocks"],
                n_substeps=actor_kwargs["n_substeps"],
                ode_solver=actor_kwargs["ode_solver"],
                log_prob_method=actor_kwargs["log_prob_method"],
                time_embedding=actor_kwargs["time_embedding"],
                time_embed_dim=actor_kwargs["time_embed_dim"],
                layer_norm=actor_kwargs["layer_norm"],
                share_velocity=actor_kwargs["share_velocity"],
                squash=actor_kwargs["squash"],
                critic_layer_norm=self.critic_layer_norm,
                n_critics=self.critic_kwargs["n_critics"],
                share_features_extractor=self.share_features_extractor,
                lr_schedule=self._dummy_schedule,
                optimizer_class=self.optimizer_class,
                optimizer_kwargs=self.optimizer_kwargs,
                features_extractor_class=self.features_extractor_class,
                features_extractor_kwargs=self.features_extractor_kwargs,
            )
        )
        return data

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> FlowActor:
        actor_kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        return FlowActor(**actor_kwargs).to(self.device)

    def make_critic(self, features_extractor: BaseFeaturesExtractor | None = None) -> ContinuousCritic:
        critic_kwargs = self._update_features_extractor(self.critic_kwargs, features_extractor)
        critic_class = LayerNormContinuousCritic if self.critic_layer_norm else ContinuousCritic
        return critic_class(**critic_kwargs).to(self.device)

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self.actor_target(obs, deterministic)

    def unscale_action(self, scaled_action: np.ndarray) -> np.ndarray:
        """As SB3's, then clipped to ``[low, high]``: the squash saturates to exactly +-1 in float32 (the soft clip
        beyond |x| ~ 1.73), and ``low + (a + 1) / 2 * (high - low)`` rounds one ulp above ``high`` for some bounds
        (``Box(-0.4, 0.7)``).  ``predict`` and the behaviour policy's env actions both go through here."""
        low, high = self.action_space.low, self.action_space.high  # type: ignore[union-attr]
        return np.clip(super().unscale_action(scaled_action), low, high)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        # predict() only: no autograd bookkeeping at all (cheaper per op than SB3's no_grad on small batches)
        with th.inference_mode():
            return self.actor_target(observation, deterministic)

    def sync_target_actor(self) -> None:
        """Set the target actor equal to the actor (after behaviour cloning, Eq. 7)."""
        self.actor_target.load_state_dict(self.actor.state_dict())

    def set_training_mode(self, mode: bool) -> None:
        self.actor.set_training_mode(mode)
        self.critic.set_training_mode(mode)
        self.training = mode


MlpPolicy = FlowPolicy


class MultiInputPolicy(FlowPolicy):
    """:class:`FlowPolicy` for Dict observations (``CombinedExtractor`` by default); same parameters."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        *args: Any,
        features_extractor_class: type[BaseFeaturesExtractor] = CombinedExtractor,
        **kwargs: Any,
    ):
        super().__init__(observation_space, action_space, lr_schedule, *args, features_extractor_class=features_extractor_class, **kwargs)


class CnnPolicy(FlowPolicy):
    """:class:`FlowPolicy` for image observations (``NatureCNN`` by default, as SB3's SAC ``CnnPolicy``); same parameters."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        *args: Any,
        features_extractor_class: type[BaseFeaturesExtractor] = NatureCNN,
        **kwargs: Any,
    ):
        super().__init__(observation_space, action_space, lr_schedule, *args, features_extractor_class=features_extractor_class, **kwargs)
