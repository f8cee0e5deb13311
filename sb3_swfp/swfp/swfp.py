"""SWFP: Stepwise Flow Policy, as a Stable-Baselines3 off-policy algorithm."""

from __future__ import annotations

import inspect
import io
import os
import warnings
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, ReplayBufferSamples, Schedule
from stable_baselines3.common.utils import FloatSchedule, get_parameters_by_name, polyak_update, update_learning_rate

from sb3_swfp.common.checks import (
    POLICY_ARGS,
    check_action_space,
    check_policy_args_repeated,
    check_swfp_arguments,
    initial_ent_coef,
    require,
)
from sb3_swfp.common.losses import aggregate_q, check_finite, ent_coef_loss, jko_block_loss, soft_q_loss, soft_q_target
from sb3_swfp.common.selection import PolicySelection, SelectionMixin
from sb3_swfp.demos import (
    DemonstrationsLike,
    DemoReplayBuffer,
    check_demonstrations_loaded,
    defer_missing_demonstrations,
    with_env_id,
)
from sb3_swfp.demos.algorithm import DemonstrationsMixin
from sb3_swfp.demos.buffers import unsaved
from sb3_swfp.swfp.persistence import (
    check_flow_overrides,
    check_load_overrides,
    check_saved_policy,
    saved_data,
    with_added_arguments,
    with_saved_buffer_arguments,
)
from sb3_swfp.swfp.policies import CnnPolicy, FlowActor, FlowPolicy, MultiInputPolicy
from sb3_swfp.swfp.pretrain import pretrain

SelfSWFP = TypeVar("SelfSWFP", bound="SWFP")


class SWFP(SelectionMixin, DemonstrationsMixin, OffPolicyAlgorithm):
    """
    Stepwise Flow Policy (SWFP): online fine-tuning of a flow-matching policy by stepwise JKO updates.

    Paper: "Iterative Refinement of Flow Policies in Probability Space for Online Reinforcement
    Learning", arXiv 2510.15388.  The flow from noise to action is cut into ``n_blocks`` flow blocks;
    each block is trained as one Jordan–Kinderlehrer–Otto step towards ``pi* ∝ exp(Q/alpha)`` (Eq. 19–20),
    with a Wasserstein-2 trust region: in an actor update each sample back-propagates through one block
    only (a block drawn per sample by default; one for the whole batch with ``block_sampling="per_batch"``,
    Algorithm 1).  A twin soft-Q critic (Eq. 16–18) gives Q.  The behaviour policy and ``predict``
    use the polyak-averaged target ("prior") actor (Algorithm 1).

    Defaults marked (paper) are Table 2 of the paper; (ours) were chosen for learning from scratch
    and fine-tuning on the project's CPU benchmarks (see docs/).

    :param policy: ``"FlowPolicy"`` (alias ``"MlpPolicy"``), ``"CnnPolicy"`` (images), ``"MultiInputPolicy"`` (Dict
        observations) or a policy class.
    :param env: The environment to learn from (if registered in Gym, can be str).
    :param learning_rate: Adam learning rate of the critic (and entropy coefficient), or a schedule
        of the progress remaining (1 -> 0). (ours, 3e-4 as SAC)
    :param actor_learning_rate: Actor learning rate or schedule; None uses ``learning_rate``.
        The paper fine-tunes with 1e-5.
    :param buffer_size: Size of the replay buffer. (paper 1e6)
    :param learning_starts: Env steps to collect before learning starts.
    :param batch_size: Critic minibatch size. (paper 256)
    :param tau: Polyak coefficient of the critic targets.
    :param gamma: Discount factor. (paper 0.99)
    :param train_freq: Update every ``train_freq`` steps, or a tuple like ``(5, "step")``/``(2, "episode")``.
    :param gradient_steps: Gradient steps per rollout; -1 does as many as env steps collected.
    :param action_noise: Extra exploration noise added to the (scaled) actions.
    :param replay_buffer_class: Replay buffer class; None picks one as SB3 does.
    :param replay_buffer_kwargs: Keyword arguments for the replay buffer.
    :param optimize_memory_usage: Memory-efficient replay buffer variant.
    :param n_steps: n-step returns (uses ``replay_data.discounts``); SWFP gives it and ``gamma`` to a
        :class:`~sb3_swfp.demos.DemoReplayBuffer`, for online and demonstration transitions alike.
    :param n_blocks: N, the number of flow blocks, >= 1. (paper 5)
    :param n_substeps: Solver steps inside each block. (ours, 1)
    :param ode_solver: ``"midpoint"`` (paper) or ``"euler"``.
    :param log_prob_method: ``"exact"`` Jacobian log-determinant, ``"hutchinson"`` trace estimate,
        or ``"auto"`` (exact for action dimension <= 32, else Hutchinson).
    :param squash: The map from the chain's output to the action box, whose log-determinant the
        density includes: ``"soft_clip"`` (default; identity inside [-0.9, 0.9], tanh tail beyond),
        ``"tanh"`` or ``"clip"`` (0.1.0's rule, no density on the box; models saved before this option
        load with it).  The actor step evaluates Q at the squashed particles ``S(x_n)`` and adds
        ``log|det dS/dx|`` to the block's entropy term.  See docs/algorithm.md.
    :param jko_step_size: tau of the JKO step, > 0. (paper 0.1)
    :param w2_coef: epsilon, the scale of the W2 trust region, >= 0. (paper 0.4)
    :param ent_coef: alpha, a float, or ``"auto"``/``"auto_<init>"`` to learn it (as SAC) so that the
        behaviour policy's entropy tracks ``target_entropy``. (paper: fixed 4–5 on Robomimic; ours: "auto")
    :param target_entropy: Target entropy for ``ent_coef="auto"``; ``"auto"`` is ``-action_dim``.
    :param actor_batch_size: States per actor update; None reuses the critic batch. (paper 1024; ours None)
    :param policy_delay: One actor update every ``policy_delay`` critic updates. (ours, 2 as TD3: halves the
        cost of the actor step, which dominates on CPU)
    :param actor_learning_starts: Critic-only gradient updates before the first actor update, so that
        the critic fits before it moves a pretrained actor: the first actor update is the first critic
        update after this many whose count is a multiple of ``policy_delay`` (ours, 0: none).
    :param actor_tau: Polyak coefficient of the target actor (Algorithm 1, line 15). (ours, 0.005)
    :param block_sampling: ``"per_sample"`` block index (default, lower variance) or ``"per_batch"``
        (Algorithm 1, line 12).
    :param critic_entropy: Keep the ``-alpha log pi`` term in the critic target (Eq. 18).
    :param q_agg: ``"min"`` or ``"mean"`` over the critics, in the target and in the actor loss.
    :param q_normalization: Divide the Q term of the actor loss by the batch mean of ``|Q|`` (ours,
        as TD3+BC does; default False, the paper's loss).  Then ``ent_coef``, ``w2_coef`` and
        ``jko_step_size`` weigh a Q of order 1 whatever the env's reward scale, as on the paper's
        sparse-reward tasks, and the W2 trust region stays effective.  Recommended for fine-tuning.
    :param w2_prev_coef: Weight of the ``||x_n - x_{n-1}^old||^2`` term inside the W2 term (1: Eq. 20;
        0 keeps only the trust region to the old block output ``x_n^old``, ours).  Against a weak Q
        term that term pulls every block towards the identity map and undoes a pretrained flow.
    :param bc_coef: Weight of a flow-matching BC term on a demonstration batch in each actor update
        (ours, beyond the paper: see docs/algorithm.md; 0 by default).  Needs ``replay_buffer_class=DemoReplayBuffer``.
    :param selection_steps: Policy selection on the run's own returns (ours, beyond the paper; 0, the default, is
        off): the env is played in phases of at least ``selection_steps`` env steps (whole episodes), each by a
        frozen copy of the prior actor taken when it begins, and ``predict`` answers with the last copy whose
        phase's mean episode return was at or above the kept one's (at first the actor ``learn()`` started from; the
        uniform random steps before ``learning_starts``, and their episodes, measure nothing).
        The learner trains as without it and is never put back.  ``model.policy`` (its ``predict``, its
        weights) is the learner; ``model.predict``, and so SB3's and rl-zoo3's evaluations, the kept copy
        (:meth:`selected_policy` gives it as a policy of its own).  The phases' returns are of sampled actions
        (unless ``selection_deterministic``), so a kept copy can evaluate lower with ``deterministic=True``; a
        phase ends before the env step's callbacks, so an ``EvalCallback`` at that step sees its decision, as
        ``predict`` after ``learn()`` does.  The preset's is 1000.  See ``sb3_swfp/common/selection.py``.
    :param selection_deterministic: Measure each phase as ``predict(..., deterministic=True)`` acts (ours): its actor
        plays ``selection_episodes`` whole episodes per env with deterministic actions first (collected as any other),
        their returns are the phase's measure, and at least ``selection_steps`` sampled env steps follow.  Set it as
        your evaluations act (SB3's ``evaluate_policy`` and ``EvalCallback`` are deterministic by default); it costs
        the action noise of those episodes.
    :param selection_episodes: Deterministic episodes per env that measure a phase, their mean return its measure
        (with ``selection_deterministic``; 1 by default).  More average out returns that depend on the start state,
        at the cost of longer phases and more env steps without action noise.  With sampled measures, the least
        number of episodes a phase must return before it ends (it then lasts until they have).
    :param selection_margin: How far above the kept copy's a phase's mean return must be for its copy to be kept, in
        standard errors of the difference of the two means (``sqrt(s_c**2 / n_c + s_k**2 / n_k)``, from the
        returns that measured each; ours).  0, the default: at or above it, however small the difference.  A margin
        keeps fewer changes that the returns of a few episodes favour by chance (and fewer real ones); it needs
        ``selection_episodes >= 2``, so that each side has a spread.  The preset's is 1.0.
    :param target_update_interval: Update the critic targets every ``target_update_interval`` steps.
    :param stats_window_size: Window size for the rollout logging.
    :param tensorboard_log: The log location for tensorboard (if None, no logging).
    :param policy_kwargs: Arguments for the policy: ``net_arch`` (list or ``dict(pi=, qf=)``),
        ``activation_fn``, ``time_embedding``, ``time_embed_dim``, ``layer_norm``, ``share_velocity``,
        ``n_critics``, features extractor options.
    :param verbose: Verbosity level: 0 none, 1 info, 2 debug.
    :param seed: Seed for the pseudo random generators.
    :param device: Device (cpu, cuda, ...) on which the code should be run; ``"auto"`` picks the GPU if any.
    :param _init_setup_model: Whether or not to build the network at the creation of the instance.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "FlowPolicy": FlowPolicy,
        "MlpPolicy": FlowPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: FlowPolicy
    actor: FlowActor
    actor_target: FlowActor

    def __init__(
        self,
        policy: str | type[FlowPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 100,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        action_noise: ActionNoise | None = None,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        optimize_memory_usage: bool = False,
        n_steps: int = 1,
        n_blocks: int = 5,
        n_substeps: int = 1,
        ode_solver: str = "midpoint",
        log_prob_method: str = "auto",
        squash: str = "soft_clip",
        jko_step_size: float = 0.1,
        w2_coef: float = 0.4,
        ent_coef: str | float = "auto",
        target_entropy: str | float = "auto",
        actor_learning_rate: float | Schedule | None = None,
        actor_batch_size: int | None = None,
        policy_delay: int = 2,
        actor_learning_starts: int = 0,
        actor_tau: float = 0.005,
        block_sampling: str = "per_sample",
        critic_entropy: bool = True,
        q_agg: str = "min",
        q_normalization: bool = False,
        w2_prev_coef: float = 1.0,
        bc_coef: float = 0.0,
        selection_steps: int = 0,
        selection_deterministic: bool = False,
        selection_episodes: int = 1,
        selection_margin: float = 0.0,
        target_update_interval: int = 1,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ):
        check_swfp_arguments(
            ode_solver=ode_solver, log_prob_method=log_prob_method, block_sampling=block_sampling, q_agg=q_agg, squash=squash,
            n_blocks=n_blocks, n_substeps=n_substeps, policy_delay=policy_delay, actor_learning_starts=actor_learning_starts,
            actor_batch_size=actor_batch_size, jko_step_size=jko_step_size, bc_coef=bc_coef, w2_coef=w2_coef,
            w2_prev_coef=w2_prev_coef, actor_tau=actor_tau, ent_coef=ent_coef, policy_kwargs=policy_kwargs,
            batch_size=batch_size, tau=tau, gamma=gamma, train_freq=train_freq, target_update_interval=target_update_interval,
            target_entropy=target_entropy, actor_learning_rate=actor_learning_rate, selection_steps=selection_steps,
            selection_deterministic=selection_deterministic, selection_episodes=selection_episodes,
            selection_margin=selection_margin,
        )
        if getattr(env, "action_space", None) is not None:
            check_action_space(env.action_space)  # before SB3's own, less helpful, assertions
        if policy_kwargs and "use_sde" in policy_kwargs:  # SAC writes use_sde=False into the dict it is given
            if policy_kwargs["use_sde"]:
                raise ValueError("policy_kwargs has use_sde=True: SWFP has no gSDE exploration (its policy samples the flow's noise)")
            policy_kwargs = {key: value for key, value in policy_kwargs.items() if key != "use_sde"}
        super().__init__(
            policy, env, learning_rate, buffer_size, learning_starts, batch_size, tau, gamma, train_freq, gradient_steps, action_noise,
            replay_buffer_class=replay_buffer_class, replay_buffer_kwargs=replay_buffer_kwargs,
            optimize_memory_usage=optimize_memory_usage, n_steps=n_steps,
            # A copy: _setup_model adds the flow's arguments (n_blocks, ...) to it, and the caller's dict stays as it was
            policy_kwargs=dict(policy_kwargs) if policy_kwargs else None,
            stats_window_size=stats_window_size, tensorboard_log=tensorboard_log, verbose=verbose, device=device, seed=seed,
            use_sde=False,
            # Checked below with a message that says what is supported
            supported_action_spaces=None, support_multi_env=True, sde_support=False,
        )  # fmt: skip
        if getattr(self, "action_space", None) is not None:  # unset when loading without an env
            check_action_space(self.action_space)

        self.n_blocks = n_blocks
        self.n_substeps = n_substeps
        self.ode_solver = ode_solver
        self.log_prob_method = log_prob_method
        self.squash = squash
        self.jko_step_size = jko_step_size
        self.w2_coef = w2_coef
        self.ent_coef = ent_coef
        self.target_entropy = target_entropy
        self.actor_learning_rate = actor_learning_rate
        self.actor_batch_size = actor_batch_size
        self.policy_delay = policy_delay
        self.actor_learning_starts = actor_learning_starts
        self.actor_tau = actor_tau
        self.block_sampling = block_sampling
        self.critic_entropy = critic_entropy
        self.q_agg = q_agg
        self.q_normalization = q_normalization
        self.w2_prev_coef = w2_prev_coef
        self.bc_coef = bc_coef
        self.selection_steps = selection_steps
        self.selection_deterministic = selection_deterministic
        self.selection_episodes = selection_episodes
        self.selection_margin = float(selection_margin)
        self.selection: PolicySelection | None = None
        self._collecting = False  # _sample_action's predict: the selection's phase actor acts
        self._random_actions = False  # the env step just taken was SB3's uniform warm-up (learning_starts)
        self.target_update_interval = target_update_interval
        self.log_ent_coef: th.Tensor | None = None
        self.ent_coef_optimizer: th.optim.Adam | None = None
        # BC gradient steps done by pretrain(); saved with the model, so that BCPretrainCallback
        # does not clone again when a loaded model continues (learn() resets num_timesteps)
        self.n_bc_updates = 0

        # The user's policy_kwargs only (load() gives none here, and its overrides of n_blocks, ... are SB3's to apply)
        if self.policy_kwargs and getattr(self, "action_space", None) is not None:
            given = {name: getattr(self, name) for name in POLICY_ARGS}
            check_policy_args_repeated(self.policy_kwargs, given, self._policy_args())
        if _init_setup_model:
            self._setup_model()

    def _policy_args(self) -> dict[str, Any]:
        """The arguments SWFP forwards to its policy, ``log_prob_method`` resolved from ``"auto"``."""
        method = self.log_prob_method
        if method == "auto":  # the exact log-determinant up to 32 action dimensions, Hutchinson's estimate beyond
            method = "exact" if int(np.prod(self.action_space.shape)) <= 32 else "hutchinson"
        return dict(n_blocks=self.n_blocks, n_substeps=self.n_substeps, ode_solver=self.ode_solver, log_prob_method=method, squash=self.squash)

    def _setup_model(self) -> None:
        demonstrations = (self.replay_buffer_kwargs or {}).get("demonstrations")
        if demonstrations is not None and self.env is not None:  # the zoo's default entry names demos/{env_id}.npz
            self.replay_buffer_kwargs = {**self.replay_buffer_kwargs, "demonstrations": with_env_id(demonstrations, self.env)}
        demo_n_steps = self._demo_buffer_class()
        if demo_n_steps:
            _check_buffer_n_steps(self.replay_buffer_kwargs, self.n_steps, self.gamma)
        self.policy_kwargs.update(self._policy_args())
        with warnings.catch_warnings():
            if demo_n_steps:  # SB3 says n_steps is ignored with a custom buffer class: DemoReplayBuffer takes it below
                warnings.filterwarnings("ignore", message=r"`n_steps=\d+` is ignored")
            super()._setup_model()
        if isinstance(self.replay_buffer, DemoReplayBuffer):
            self.replay_buffer.use_n_steps(self.n_steps, self.gamma)
        self._create_aliases()
        self.actor_lr_schedule = self.lr_schedule if self.actor_learning_rate is None else FloatSchedule(self.actor_learning_rate)
        if self.bc_coef > 0 and not hasattr(self.replay_buffer, "sample_demonstrations"):
            raise ValueError(
                f"bc_coef={self.bc_coef} needs demonstrations in the replay buffer: pass "
                "replay_buffer_class=DemoReplayBuffer, replay_buffer_kwargs=dict(demonstrations='demos.npz')"
            )
        self.batch_norm_stats = get_parameters_by_name(self.critic, ["running_"])
        self.batch_norm_stats_target = get_parameters_by_name(self.critic_target, ["running_"])

        # Learn log(alpha) as SAC does (https://arxiv.org/abs/1812.05905), towards the target entropy ("auto": -action_dim)
        action_dim = int(np.prod(self.action_space.shape))
        self.target_entropy = float(-action_dim) if self.target_entropy == "auto" else float(self.target_entropy)
        init_value = initial_ent_coef(self.ent_coef)
        if init_value is not None:
            self.log_ent_coef = th.log(th.ones(1, device=self.device) * init_value).requires_grad_(True)
            self.ent_coef_optimizer = th.optim.Adam([self.log_ent_coef], lr=self.lr_schedule(1))
        else:
            self.ent_coef_tensor = th.tensor(float(self.ent_coef), device=self.device)

    def _create_aliases(self) -> None:
        self.actor = self.policy.actor
        self.actor_target = self.policy.actor_target
        self.critic = self.policy.critic
        self.critic_target = self.policy.critic_target

    def _current_ent_coef(self) -> th.Tensor:
        if self.log_ent_coef is not None:
            # Detached so that the other losses do not change it (softlearning#60)
            return th.exp(self.log_ent_coef.detach())
        return self.ent_coef_tensor

    def train(self, gradient_steps: int, batch_size: int = 256) -> None:
        self.policy.set_training_mode(True)
        optimizers: list[th.optim.Optimizer] = [self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rate(optimizers)
        actor_lr = self.actor_lr_schedule(self._current_progress_remaining)
        update_learning_rate(self.actor.optimizer, actor_lr)
        self.logger.record("train/actor_learning_rate", actor_lr)

        logs: dict[str, list[float]] = defaultdict(list)
        for _ in range(gradient_steps):
            self._n_updates += 1
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            ent_coef = self._current_ent_coef()
            logs["ent_coef"].append(ent_coef.item())

            # Soft-Q critic, Eq. (16-18)
            next_log_prob, critic_logs = self._critic_update(replay_data, ent_coef)
            _append(logs, critic_logs)

            # Temperature (beyond the paper, as SAC): the entropy of the behaviour (target) actor,
            # measured on the next states of the critic batch at no extra cost
            if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
                assert next_log_prob is not None and isinstance(self.target_entropy, float)
                loss = ent_coef_loss(log_ent_coef=self.log_ent_coef, log_prob=next_log_prob, target_entropy=self.target_entropy)
                logs["ent_coef_loss"].append(check_finite("ent_coef_loss", loss, self._n_updates))
                self.ent_coef_optimizer.zero_grad()
                loss.backward()
                self.ent_coef_optimizer.step()

            # One JKO step of one flow block, Eq. (19-20), then the target actor follows (Alg. 1, line 15)
            if self._n_updates % self.policy_delay == 0 and self._n_updates > self.actor_learning_starts:
                if self.actor_batch_size is None or self.actor_batch_size == batch_size:
                    actor_obs = replay_data.observations
                else:
                    actor_obs = self.replay_buffer.sample(self.actor_batch_size, env=self._vec_normalize_env).observations  # type: ignore[union-attr]
                _append(logs, self._actor_update(actor_obs, ent_coef))
                polyak_update(self.actor.parameters(), self.actor_target.parameters(), self.actor_tau)

            if self._n_updates % self.target_update_interval == 0:
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                # Copy running stats, see SB3 GH issue #996
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if self.selection is not None:
            self.selection.record(self.logger)
        for key, values in logs.items():
            self.logger.record(f"train/{key}", float(np.mean(values)))

    def _critic_update(
        self, replay_data: ReplayBufferSamples, ent_coef: th.Tensor, loss_name: str = "critic_loss", update: int | None = None
    ) -> tuple[th.Tensor | None, dict[str, float]]:
        """One critic step; returns the target actor's ``log pi(a'|s')`` (or None when not needed) and the logged terms.

        ``loss_name`` and ``update`` (default: ``_n_updates``) name the step in a non-finite loss's error (the
        critic warm-up of ``pretrain`` passes its own)."""
        need_log_prob = self.critic_entropy or self.ent_coef_optimizer is not None
        # a' and its density come from the target actor, without gradient; inference mode also skips the
        # autograd bookkeeping of its hundreds of operations (about 5% of the chain's time)
        with th.inference_mode():
            next_features = self.actor_target.extract_features(replay_data.next_observations, self.actor_target.features_extractor)
            next_actions, next_log_prob = self.actor_target.sample_from_features(next_features, with_log_prob=need_log_prob)
            next_q_values = th.cat(self.critic_target(replay_data.next_observations, next_actions), dim=1)
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
            target_q = soft_q_target(
                rewards=replay_data.rewards, dones=replay_data.dones, discounts=discounts, next_q_values=next_q_values,
                next_log_prob=next_log_prob if self.critic_entropy else None, ent_coef=ent_coef, q_agg=self.q_agg,
            )
        current_q_values = self.critic(replay_data.observations, replay_data.actions)
        # Inference tensors cannot be saved for backward: the loss gets a normal copy of the (batch, 1) targets
        critic_loss = soft_q_loss(current_q_values=current_q_values, target_q_values=target_q.clone())
        logs = {"critic_loss": check_finite(loss_name, critic_loss, self._n_updates if update is None else update)}
        if next_log_prob is not None:
            logs["entropy"] = -next_log_prob.mean().item()
        self.critic.optimizer.zero_grad()
        critic_loss.backward()
        self.critic.optimizer.step()
        return next_log_prob, logs

    def _actor_update(self, observations: Any, ent_coef: th.Tensor) -> dict[str, float]:
        """One JKO step of one flow block (Eq. 19-20); returns the logged terms."""
        actor, target = self.actor, self.actor_target
        with th.inference_mode():  # old particles come from the target actor and carry no gradient
            target_features = target.extract_features(observations, target.features_extractor)
            batch = target_features.shape[0]
            x0 = th.randn(batch, actor.action_dim, device=self.device, dtype=target_features.dtype)
            if self.block_sampling == "per_batch":
                block: int | th.Tensor = int(th.randint(0, self.n_blocks, ()).item())
            else:
                block = th.randint(0, self.n_blocks, (batch,), device=self.device)
            # x_{n-1}^old and x_n^old = F_n^old(x_{n-1}^old): the target chain from x_0 through each sample's block n
            old = target.walk(target_features, x0, stop=block + 1)
            x_prev_old, x_old = old.x_prev, old.x  # (batch, d) each
        # Inference tensors cannot be saved for backward: the actor's graph gets normal copies (small ones)
        x_prev_old, x_old = x_prev_old.clone(), x_old.clone()
        if isinstance(block, th.Tensor):
            block = block.clone()

        features = actor.extract_features(observations, actor.features_extractor)
        x_new, log_det = actor.block(features, x_prev_old, block, actor.log_prob_method)
        # The block's entropy term is that of the squashed particles S(x_n) (a density on the action box),
        # and Q is evaluated where the critic was trained: at S(x_n), inside the box
        log_det = log_det + actor.squash.log_abs_det(x_new)
        q_values = aggregate_q(th.cat(self.critic(observations, actor.squash(x_new)), dim=1), self.q_agg)
        q_scale = q_values.detach().abs().mean().clamp_min(1e-6) if self.q_normalization else 1.0
        # Per-block JKO objective, Eq. (20) with the parallel-block term of Eq. (19)
        actor_loss, terms = jko_block_loss(
            q_values=q_values, log_det=log_det, x_new=x_new, x_prev_old=x_prev_old, x_old=x_old, ent_coef=ent_coef,
            w2_coef=self.w2_coef, jko_step_size=self.jko_step_size, q_scale=q_scale, w2_prev_coef=self.w2_prev_coef,
        )
        logs: dict[str, float] = {}
        if self.bc_coef > 0:
            # Flow-matching BC on demonstrations keeps the policy near them (Eq. 7; ours, beyond the paper)
            demo = self.replay_buffer.sample_demonstrations(batch, env=self._vec_normalize_env)  # type: ignore[union-attr]
            bc_loss = actor.flow_matching_loss(demo.observations, demo.actions)
            logs["bc_loss"] = check_finite("bc_loss", bc_loss, self._n_updates)
            actor_loss = actor_loss + self.bc_coef * bc_loss
        logs["actor_loss"] = check_finite("actor_loss", actor_loss, self._n_updates)
        logs["actor_q_term"] = terms.q_term.item()
        logs["actor_log_det"] = terms.log_det.item()
        logs["w2_prev"] = terms.w2_prev.item()
        logs["w2_old"] = terms.w2_old.item()
        if self.q_normalization:
            logs["actor_q_scale"] = float(q_scale)
        self.actor.optimizer.zero_grad()
        # Gradients for the actor only: the critic's weight gradients of this loss would be two GEMMs per
        # critic layer that nothing uses (the critic's own step zeroes its gradients first)
        actor_loss.backward(inputs=[param for param in actor.parameters() if param.requires_grad])
        self.actor.optimizer.step()
        return logs

    def pretrain(
        self: SelfSWFP,
        demonstrations: DemonstrationsLike,
        gradient_steps: int = 10_000,
        batch_size: int = 128,
        learning_rate: float = 1e-3,
        final_learning_rate: float = 1e-4,
        weight_decay: float = 1e-6,
        critic_warmup_steps: int = 0,
        clip_actions: bool = False,
        progress_bar: bool = False,
        log_interval: int = 100,
        tb_log_name: str = "SWFP_pretrain",
        allow_env_mismatch: bool = False,
        allow_missing_rewards: bool = False,
    ) -> SelfSWFP:
        """Behaviour cloning: conditional flow matching on demonstrations (Eq. 7), then sync the target actor.

        Runs on the model's device (the GPU when the model is on one).  The defaults are the fine-tuning
        preset's (``sb3_swfp.presets.PRETRAIN_KWARGS``): AdamW, learning rate 1e-3 cosine-decayed to 1e-4,
        weight decay 1e-6, batch 128, 10k steps.  The paper's App. C uses 1e-4 decayed to 1e-5, for
        far longer runs than a CPU affords.  The batches come from one :class:`~sb3_swfp.demos.DemonstrationBuffer`
        (:mod:`sb3_swfp.swfp.pretrain`), drawn with a generator seeded by the model's ``seed``.
        The actor's own optimizer state is left untouched.

        Under ``VecNormalize`` (``norm_obs`` and ``training`` on), the running observation statistics
        are first updated with the demonstration observations, then BC trains on observations
        normalised with them: at the start of ``learn()`` the statistics have seen one observation,
        and almost every demonstration observation would be clipped at ``clip_obs``.  Frozen
        statistics (``training=False``) are used as they are.  Each call adds the demonstrations:
        a second call with the same ones counts them twice against the online observations to come.

        Logs go to the model's logger when it has one (inside ``learn()``: the run's), otherwise to a
        run of their own, ``tb_log_name``, closed at the end; the next ``learn()`` then starts its own.

        :param demonstrations: :class:`Demonstrations`, the path of an ``.npz`` file, ``"minari:<dataset id>"``,
            an SB3 replay buffer or imitation trajectories (see :func:`~sb3_swfp.demos.as_demonstrations`);
            validated against the model's spaces (actions in the env's action space, scaled to [-1, 1] here).
        :param gradient_steps: Number of BC gradient steps.
        :param batch_size: BC minibatch size.
        :param learning_rate: Initial learning rate.
        :param final_learning_rate: Learning rate at the end of the cosine schedule, at most ``learning_rate``.
        :param weight_decay: AdamW weight decay.
        :param critic_warmup_steps: Then this many soft-Q critic steps on demonstration transitions
            (next actions from the pretrained actor); 0 skips the warm-up.
        :param clip_actions: Clip demonstration actions outside the bounds instead of raising.
        :param progress_bar: Show a progress bar.
        :param log_interval: Record ``pretrain/bc_loss`` (mean) every ``log_interval`` steps.
        :param tb_log_name: TensorBoard run name when the model has no logger yet.
        :param allow_env_mismatch: Use demonstrations whose ``metadata["env_id"]`` is not the env's id
            (with a warning) instead of raising.
        :param allow_missing_rewards: With ``critic_warmup_steps``, use reward-free demonstrations
            (``metadata["has_rewards"]`` false) as zero rewards (with a warning) instead of raising.
        :return: the model, pretrained.
        """
        pretrain(
            self, demonstrations, gradient_steps=gradient_steps, batch_size=batch_size, learning_rate=learning_rate,
            final_learning_rate=final_learning_rate, weight_decay=weight_decay, critic_warmup_steps=critic_warmup_steps,
            clip_actions=clip_actions, progress_bar=progress_bar, log_interval=log_interval, tb_log_name=tb_log_name,
            allow_env_mismatch=allow_env_mismatch, allow_missing_rewards=allow_missing_rewards,
        )  # fmt: skip
        self.selection = None  # the cloned actor is a new start: the next collection measures it first
        return self

    def learn(
        self: SelfSWFP,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "SWFP",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfSWFP:
        check_demonstrations_loaded(self.replay_buffer)  # before any env step
        if progress_bar:  # SB3's message asks for all of stable-baselines3[extra]
            require(("tqdm", "rich"), "progress_bar=True", "examples")
        if self.tensorboard_log is not None and not self._custom_logger:  # SB3 makes its writer only then
            require(("tensorboard",), "tensorboard_log", "examples")
        return super().learn(
            total_timesteps=total_timesteps, callback=callback, log_interval=log_interval, tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps, progress_bar=progress_bar,
        )  # fmt: skip

    @classmethod
    def load(  # type: ignore[override]
        cls: type[SelfSWFP],
        path: str | os.PathLike | io.BufferedIOBase,
        env: GymEnv | None = None,
        device: th.device | str = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        **kwargs: Any,
    ) -> SelfSWFP:
        """Load as SB3 does; a model saved with a demonstration buffer loads without its demonstrations file,
        and a model saved before the ``squash`` option existed loads with the clip it was trained with.

        The replay buffer is rebuilt from its saved arguments; when they name demonstrations that
        cannot be found from here (a relative path, another machine), the buffer is built without
        them and a warning says so: the model predicts as saved, and ``learn()`` raises until the
        demonstrations are given again (``replay_buffer_kwargs=dict(demonstrations=...)`` here, or
        :meth:`load_replay_buffer`).  Unlike SB3's load, ``replay_buffer_kwargs`` given here are merged key
        by key over the saved ones (unless ``replay_buffer_class`` is given too), so the saved
        ``demo_ratio`` and the other buffer settings stay.  A file of another algorithm's model (SAC's) is refused
        with what to load it with; so is another ``n_blocks`` for a model with a velocity network per block, and
        another ``n_blocks``, ``ode_solver`` or ``squash`` otherwise loads with a warning that the flow acts
        otherwise than it was trained.  Arguments as ``BaseAlgorithm.load``.
        """
        data = saved_data(path)  # read once, for all: SB3's load reads the file again
        check_saved_policy(data, path, custom_objects)
        check_load_overrides(data, kwargs, {name: param.default for name, param in inspect.signature(cls.__init__).parameters.items()})
        check_flow_overrides(data, kwargs)
        kwargs = with_added_arguments(data, kwargs)  # the squash a model saved before the option was trained with
        kwargs = with_saved_buffer_arguments(data, kwargs, custom_objects)
        with defer_missing_demonstrations():
            model = super().load(path, env, device, custom_objects, print_system_info, force_reset, **kwargs)
        if "ent_coef" in kwargs and initial_ent_coef(kwargs["ent_coef"]) is None:
            # SB3's load restores the saved temperature after _setup_model has made the one given here
            model.ent_coef_tensor = th.tensor(float(kwargs["ent_coef"]), device=model.device)
        return model

    def save(
        self,
        path: str | os.PathLike | io.BufferedIOBase,
        exclude: Iterable[str] | None = None,
        include: Iterable[str] | None = None,
    ) -> None:
        """As SB3's.  Demonstrations given to the replay buffer as an object (not a path) are not written into
        the file, as SB3 keeps a replay buffer apart (:meth:`save_replay_buffer`): the saved arguments hold an
        :class:`~sb3_swfp.demos.UnsavedDemonstrations` in their place, and :meth:`load` then loads the model
        without them, as for a demonstrations file it cannot find."""
        kwargs = self.replay_buffer_kwargs
        given = (kwargs or {}).get("demonstrations")
        kept = unsaved(given)
        if kept is given:
            return super().save(path, exclude, include)
        self.replay_buffer_kwargs = {**kwargs, "demonstrations": kept}
        try:
            super().save(path, exclude, include)
        finally:
            self.replay_buffer_kwargs = kwargs

    def _check_restored_buffer(self, path: str | os.PathLike | io.BufferedIOBase) -> None:
        """A buffer without demonstrations is refused where the model's buffer class is a :class:`DemoReplayBuffer`
        (or ``bc_coef > 0``), and one whose demonstrations were recorded on another env as the constructor refuses
        them; a demonstration buffer then samples with this model's ``n_steps`` and ``gamma`` (one saved with other
        ones, or before n-step returns existed, would otherwise keep its own)."""
        if (self.bc_coef > 0 or self._demo_buffer_class()) and not isinstance(self.replay_buffer, DemoReplayBuffer):
            shown = os.fspath(path) if isinstance(path, (str, os.PathLike)) else "the file object"
            raise ValueError(
                f"the replay buffer in {shown!r} is a {type(self.replay_buffer).__name__} without demonstrations, and "
                "this model's buffer class is a DemoReplayBuffer (or bc_coef > 0): restore a buffer saved by a model "
                "with demonstrations, or give this one to a model built without them (the model keeps its own)"
            )
        super()._check_restored_buffer(path)
        if isinstance(self.replay_buffer, DemoReplayBuffer):
            self.replay_buffer.use_n_steps(self.n_steps, self.gamma)

    def _demo_buffer_class(self) -> bool:
        """Whether the replay buffer class is a :class:`DemoReplayBuffer`."""
        return self.replay_buffer_class is not None and issubclass(self.replay_buffer_class, DemoReplayBuffer)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "actor", "actor_target", "critic", "critic_target", "actor_lr_schedule"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = ["policy", "actor.optimizer", "critic.optimizer"]
        if self.ent_coef_optimizer is not None:
            state_dicts.append("ent_coef_optimizer")
            return state_dicts, ["log_ent_coef"]
        return state_dicts, ["ent_coef_tensor"]


def _check_buffer_n_steps(buffer_kwargs: dict[str, Any], n_steps: int, gamma: float) -> None:
    """Raise where a :class:`DemoReplayBuffer`'s own ``n_steps`` or ``gamma`` disagree with SWFP's, which it is given."""
    for key, value in (("n_steps", n_steps), ("gamma", gamma)):
        if key in buffer_kwargs and buffer_kwargs[key] != value:
            raise ValueError(
                f"replay_buffer_kwargs {key}={buffer_kwargs[key]!r} but SWFP's {key}={value!r}: give n_steps (and gamma) "
                "to SWFP only, which passes them to the DemoReplayBuffer"
            )


def _append(logs: dict[str, list[float]], terms: dict[str, float]) -> None:
    """Add one update's logged terms to the lists that ``train()`` averages."""
    for key, value in terms.items():
        logs[key].append(value)
