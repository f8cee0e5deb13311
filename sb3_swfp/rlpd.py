"""RLPD-style SAC: what a practitioner with demonstrations and an online budget would use instead of SWFP.

RLPD (Ball et al. 2023, "Efficient Online Reinforcement Learning with Offline Data", arXiv
2302.02948) is SAC with three changes: symmetric sampling (half of every batch from the offline
data), LayerNorm in the critics, and a large critic ensemble updated many times per env step.
Two forms, from the same arguments::

    from stable_baselines3 import SAC
    from sb3_swfp.rlpd import RLPD, rlpd_sac_kwargs

    model = SAC(env=env, **rlpd_sac_kwargs("demos.npz"))   # RLPD-style SAC: SB3's SAC (the ``rlpd`` rows)
    model = RLPD(env=env, **rlpd_sac_kwargs("demos.npz"))  # and RLPD's critic ensemble (``rlpd_ensemble``)
    model.learn(10_000)

(the policy class comes with the arguments).  ``SAC.load`` / ``RLPD.load`` read a saved model back; where
its demonstrations file is not found from the working directory, load it inside
``sb3_swfp.demos.defer_missing_demonstrations()`` (it then predicts, and asks for the demonstrations
before it trains), as ``SWFP.load`` does by itself.

What differs from RLPD's recipe (its reference code, ikostrikov/rlpd), and why:

- the critics (``SAC`` only): SB3's SAC takes the minimum over *all* its critics in the target, so the
  ensemble stays SB3's two (RLPD: ten, the target's minimum over a random two, the actor's Q their mean).
  A weaker baseline than the recipe in this respect: SWFP's fine-tuning preset trains ten critics.
  :class:`RLPD` follows the recipe here;
- the update-to-data ratio defaults to 2 (RLPD: 20), to keep runs within a CPU budget; SB3's SAC updates
  the actor and the temperature at every gradient step (:class:`RLPD`, as RLPD: once per env step, after
  the critics');
- the temperature's target entropy is SB3's ``-dim(A)`` for ``SAC`` (:class:`RLPD`'s ``"auto"``:
  RLPD's ``-dim(A)/2``), and nothing waits for random warm-up steps (RLPD: 5000): the demonstrations are
  in the buffer from the first step;
- SB3's losses: the critics' is half the *sum* of their squared errors (RLPD: the mean, so the logged
  ``train/critic_loss`` is about five times RLPD's with ten critics; Adam's steps are alike), and the
  temperature's gradient is taken through ``log alpha`` (RLPD: through ``alpha``);
- everything else (learning rates, network sizes, batch size) is what the caller gives: the benchmarks take
  rl-zoo3's SAC entry of the task (a learning rate of 1e-3 on Pendulum-v1 and the PointMazes, RLPD: 3e-4).
"""

from __future__ import annotations

import inspect
import numbers
import os
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.policies import ContinuousCritic
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor, FlattenExtractor, NatureCNN
from stable_baselines3.common.type_aliases import ReplayBufferSamples, RolloutReturn
from stable_baselines3.common.utils import polyak_update
from stable_baselines3.sac.policies import SACPolicy

from sb3_swfp.common.checks import check_choice, check_int
from sb3_swfp.common.critics import LayerNormContinuousCritic
from sb3_swfp.common.losses import Q_AGGREGATIONS, aggregate_q, check_finite, ent_coef_loss, soft_q_loss, soft_q_target
from sb3_swfp.demos import Demonstrations, DemoReplayBuffer
from sb3_swfp.demos.algorithm import DemonstrationsMixin
from sb3_swfp.presets import merge_kwargs

#: RLPD's share of offline data in every batch (symmetric sampling)
RLPD_DEMO_RATIO = 0.5
#: Gradient steps per env step (RLPD: 20); 2 fits a CPU budget
RLPD_UTD = 2


class LayerNormSACPolicy(SACPolicy):
    """SB3's ``SACPolicy`` whose critics have LayerNorm after every hidden linear layer (RLPD, Sec. 3.2).

    Same parameters as ``SACPolicy``; ``n_critics`` as there.  Dict observations get SB3's
    ``CombinedExtractor`` unless another extractor is given (``FlattenExtractor`` cannot read them).
    """

    def __init__(self, observation_space: spaces.Space, *args: Any, **kwargs: Any):
        if isinstance(observation_space, spaces.Dict) and kwargs.get("features_extractor_class", FlattenExtractor) is FlattenExtractor:
            kwargs["features_extractor_class"] = CombinedExtractor
        super().__init__(observation_space, *args, **kwargs)

    def make_critic(self, features_extractor: BaseFeaturesExtractor | None = None) -> ContinuousCritic:
        critic_kwargs = self._update_features_extractor(self.critic_kwargs, features_extractor)
        return LayerNormContinuousCritic(**critic_kwargs).to(self.device)


class LayerNormMultiInputSACPolicy(LayerNormSACPolicy):
    """:class:`LayerNormSACPolicy` for Dict observations (``CombinedExtractor`` by default)."""

    def __init__(
        self, observation_space: spaces.Space, *args: Any, features_extractor_class: type[BaseFeaturesExtractor] = CombinedExtractor, **kwargs: Any
    ):
        if not isinstance(observation_space, spaces.Dict) and features_extractor_class is CombinedExtractor:
            raise ValueError(
                f"the multi-input policy (rlpd_sac_kwargs(..., dict_observations=True)) reads Dict observations, and this "
                f"env's are {observation_space}: leave dict_observations False"
            )
        super().__init__(observation_space, *args, features_extractor_class=features_extractor_class, **kwargs)


class LayerNormCnnSACPolicy(LayerNormSACPolicy):
    """:class:`LayerNormSACPolicy` for image observations (SB3's ``NatureCNN`` by default, as SAC's ``CnnPolicy``)."""

    def __init__(self, observation_space: spaces.Space, *args: Any, features_extractor_class: type[BaseFeaturesExtractor] = NatureCNN, **kwargs: Any):
        super().__init__(observation_space, *args, features_extractor_class=features_extractor_class, **kwargs)


class RLPD(DemonstrationsMixin, SAC):
    """SAC with RLPD's critic ensemble and update order (Ball et al. 2023, arXiv 2302.02948, Sec. 3-4).

    What changes from SB3's ``SAC`` (the rest, save/load and logging included, is SAC's):

    - ten LayerNorm critics by default (``policy_kwargs["n_critics"]``; the ``"MlpPolicy"``,
      ``"MultiInputPolicy"`` and ``"CnnPolicy"`` aliases are :class:`LayerNormSACPolicy` and its Dict and
      image forms);
    - the target's minimum is over ``target_critics`` of them, drawn at random at every gradient step
      (REDQ's M, Chen et al. 2021; RLPD: 2), not over all: a pessimistic target without the bias of a
      minimum over ten;
    - the actor's Q is the critics' mean (``actor_q="mean"``, RLPD's), not their minimum;
    - the actor and the temperature take one step per env step collected (a ``VecEnv`` step counts once,
      as in SB3's ``train_freq``), each on the last of its share of the ``gradient_steps`` critic batches,
      after those critics' updates, as RLPD's ``update`` does: with ``train_freq=1``, ``gradient_steps`` is the
      critics' update-to-data ratio; with ``train_freq=(1, "episode")`` and ``gradient_steps=-1``, one
      critic step then one actor step per env step of the episode (a direct ``train()`` call: one actor step);
    - ``target_entropy="auto"`` is RLPD's ``-dim(A)/2`` (SAC's: ``-dim(A)``).

    :param target_critics: Critics in the target's minimum, drawn at every gradient step; None: all of
        them (SAC's target).
    :param actor_q: ``"mean"`` (RLPD) or ``"min"`` (SAC) over the critics in the actor's loss.
    :param policy_kwargs: As SAC's; ``n_critics`` defaults to 10.
    :param target_entropy: As SAC's; ``"auto"`` is ``-dim(A)/2``.
    :param kwargs: SAC's other arguments (keywords only).
    """

    policy_aliases = {
        **SAC.policy_aliases,
        "MlpPolicy": LayerNormSACPolicy,
        "CnnPolicy": LayerNormCnnSACPolicy,
        "MultiInputPolicy": LayerNormMultiInputSACPolicy,
    }

    def __init__(
        self,
        policy: str | type[SACPolicy],
        env: Any,
        *,
        target_critics: int | None = 2,
        actor_q: str = "mean",
        policy_kwargs: dict[str, Any] | None = None,
        target_entropy: str | float = "auto",
        _init_setup_model: bool = True,
        **kwargs: Any,
    ):
        policy_kwargs = {"n_critics": 10, **(policy_kwargs or {})}
        super().__init__(policy, env, policy_kwargs=policy_kwargs, target_entropy=target_entropy, _init_setup_model=False, **kwargs)
        self.target_critics = target_critics
        self.actor_q = actor_q
        self._env_steps_to_train = 1  # env steps collected since the last train() (collect_rollouts)
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        # here, not in __init__: load() has no action space before its data, and may pass "auto" itself
        if isinstance(self.target_entropy, str) and self.target_entropy == "auto":
            self.target_entropy = -float(np.prod(self.action_space.shape)) / 2
        if self.target_critics is not None:  # here, so that load()'s kwargs and custom_objects are checked too
            check_int("target_critics", self.target_critics, 1)
        check_choice("actor_q", self.actor_q, Q_AGGREGATIONS)
        super()._setup_model()  # DemonstrationsMixin checks the demonstrations' env
        n_critics = self.critic.n_critics
        if self.target_critics is not None and self.target_critics > n_critics:
            raise ValueError(
                f"target_critics={self.target_critics} but the policy has {n_critics} critics "
                "(policy_kwargs n_critics): draw at most as many as there are"
            )

    def collect_rollouts(self, *args: Any, **kwargs: Any) -> RolloutReturn:
        rollout = super().collect_rollouts(*args, **kwargs)
        self._env_steps_to_train = max(1, rollout.episode_timesteps // self.n_envs)  # VecEnv steps, as train_freq counts
        return rollout

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_env_steps_to_train"]

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        if gradient_steps < 1:
            return
        env_steps, self._env_steps_to_train = self._env_steps_to_train, 1
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rate(optimizers)

        critic_losses, actor_losses, ent_coefs, temperature_losses = [], [], [], []
        # RLPD's update, once per env step collected: its share of the critic steps, then the actor and the
        # temperature once, on the last of those batches
        for steps in np.array_split(np.arange(gradient_steps), min(env_steps, gradient_steps)):
            ent_coef = th.exp(self.log_ent_coef.detach()) if self.ent_coef_optimizer is not None else self.ent_coef_tensor
            ent_coefs.append(ent_coef.item())
            for gradient_step in steps.tolist():
                replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
                critic_losses.append(self._critic_update(replay_data, ent_coef, self._n_updates + gradient_step))
                if gradient_step % self.target_update_interval == 0:
                    polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                    polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)  # running stats (SB3 #996)
            actor_loss, log_prob = self._actor_update(replay_data.observations, ent_coef)
            actor_losses.append(actor_loss)
            if self.ent_coef_optimizer is not None:
                temperature_loss = ent_coef_loss(log_ent_coef=self.log_ent_coef, log_prob=log_prob, target_entropy=self.target_entropy)
                self.ent_coef_optimizer.zero_grad()
                temperature_loss.backward()
                self.ent_coef_optimizer.step()
                temperature_losses.append(temperature_loss.item())
        self._n_updates += gradient_steps

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/ent_coef", float(np.mean(ent_coefs)))
        self.logger.record("train/actor_loss", float(np.mean(actor_losses)))
        self.logger.record("train/critic_loss", float(np.mean(critic_losses)))
        if temperature_losses:
            self.logger.record("train/ent_coef_loss", float(np.mean(temperature_losses)))

    def _target_q_values(self, observations: Any, actions: th.Tensor) -> th.Tensor:
        """(batch, target_critics): the target critics at (s', a'), a random ``target_critics`` of them (all if None)."""
        target = self.critic_target
        chosen = range(target.n_critics) if self.target_critics is None else th.randperm(target.n_critics)[: self.target_critics].tolist()
        features = target.extract_features(observations, target.features_extractor)
        q_input = th.cat([features, actions], dim=1)
        return th.cat([target.q_networks[index](q_input) for index in chosen], dim=1)

    def _critic_update(self, replay_data: ReplayBufferSamples, ent_coef: th.Tensor, update: int) -> float:
        """One critic step on the soft Bellman target (SAC's, with entropy backup); returns the loss."""
        if self.use_sde:  # SAC's: fresh noise at every gradient step
            self.actor.reset_noise()
        with th.no_grad():
            next_actions, next_log_prob = self.actor.action_log_prob(replay_data.next_observations)
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
            target_q = soft_q_target(
                rewards=replay_data.rewards, dones=replay_data.dones, discounts=discounts,
                next_q_values=self._target_q_values(replay_data.next_observations, next_actions),
                next_log_prob=next_log_prob, ent_coef=ent_coef, q_agg="min",
            )
        critic_loss = soft_q_loss(current_q_values=self.critic(replay_data.observations, replay_data.actions), target_q_values=target_q)
        loss = check_finite("critic_loss", critic_loss, update, "RLPD")
        self.critic.optimizer.zero_grad()
        critic_loss.backward()
        self.critic.optimizer.step()
        return loss

    def _actor_update(self, observations: Any, ent_coef: th.Tensor) -> tuple[float, th.Tensor]:
        """One actor step, ``E[alpha log pi(a|s) - Q(s, a)]`` with Q the critics' ``actor_q``; returns the loss
        and the batch's ``log pi`` (for the temperature)."""
        if self.use_sde:
            self.actor.reset_noise()
        actions_pi, log_prob = self.actor.action_log_prob(observations)
        q_values = aggregate_q(th.cat(self.critic(observations, actions_pi), dim=1), self.actor_q)
        actor_loss = (ent_coef * log_prob.reshape(-1, 1) - q_values).mean()
        loss = check_finite("actor_loss", actor_loss, self._n_updates, "RLPD")
        self.actor.optimizer.zero_grad()
        actor_loss.backward()
        self.actor.optimizer.step()
        return loss, log_prob.detach()


def rlpd_sac_kwargs(
    demonstrations: str | os.PathLike | Demonstrations,
    dict_observations: bool = False,
    utd: int = RLPD_UTD,
    demo_ratio: float = RLPD_DEMO_RATIO,
    **overrides: Any,
) -> dict[str, Any]:
    """Keyword arguments for SB3's ``SAC(policy, env, **kwargs)`` that make it RLPD-style.

    The result holds ``policy`` too (the LayerNorm policy class): ``SAC(env=env, **kwargs)``.

    :param demonstrations: What ``DemoReplayBuffer`` accepts (a :class:`Demonstrations`, an ``.npz`` path, ...).
    :param dict_observations: The env has ``Dict`` observations (PointMaze): the multi-input policy (the
        default policy reads them too, with the same extractor; a Box env with this flag is refused).
    :param utd: Gradient steps per env step (``train_freq=1``, ``gradient_steps=utd``); SB3 counts a step of
        a ``VecEnv`` as one, so with ``n_envs`` envs it is ``utd / n_envs`` per env's step.
    :param demo_ratio: Share of every batch drawn from the demonstrations.
    :param overrides: Other ``SAC`` arguments, which win (``learning_rate``, ``policy_kwargs``, ``seed``, ...);
        ``replay_buffer_kwargs`` is merged key by key (``clip_actions=True`` keeps the demonstrations and
        ``demo_ratio``); ``n_steps`` goes to the buffer, with ``gamma``, which SAC and the buffer then share (SB3
        ignores ``n_steps`` with a buffer class of one's own): give each once, as a SAC argument or in
        ``replay_buffer_kwargs``.  SAC does not check where the demonstrations were recorded, as SWFP does: give
        this env's.
    """
    from stable_baselines3 import SAC

    if isinstance(utd, bool) or not isinstance(utd, numbers.Integral) or utd < 1:
        raise ValueError(f"utd must be an integer >= 1 (gradient steps per env step), got {utd!r}")
    sac_parameters = inspect.signature(SAC.__init__).parameters
    unknown = sorted(set(overrides) - set(sac_parameters) - {"self"})
    if unknown:
        raise TypeError(f"rlpd_sac_kwargs: {', '.join(unknown)} {'is not an argument' if len(unknown) == 1 else 'are not arguments'} of SAC")
    # SB3 ignores SAC's n_steps with a buffer class of one's own, and DemoReplayBuffer's gamma would default to
    # 0.99 whatever SAC's is: both go to the buffer, which computes the n-step returns and their discounts
    overrides = dict(overrides)
    n_steps = overrides.pop("n_steps", None)
    buffer_overrides = overrides.get("replay_buffer_kwargs") or {}
    if "gamma" not in overrides and "gamma" in buffer_overrides:
        overrides["gamma"] = buffer_overrides["gamma"]  # the buffer's discount is SAC's too: one gamma, as given
    gamma = overrides.get("gamma", sac_parameters["gamma"].default)
    for key, value in (("n_steps", n_steps), ("gamma", gamma)):
        if value is not None and key in buffer_overrides and buffer_overrides[key] != value:
            raise ValueError(
                f"rlpd_sac_kwargs: replay_buffer_kwargs {key}={buffer_overrides[key]!r} but SAC's {key}={value!r}: give "
                "each once (as a SAC argument or in replay_buffer_kwargs); rlpd_sac_kwargs gives SAC's to the DemoReplayBuffer"
            )
    buffer_kwargs: dict[str, Any] = dict(demonstrations=demonstrations, demo_ratio=demo_ratio)
    if n_steps is not None or "n_steps" in buffer_overrides:
        buffer_kwargs.update(gamma=gamma, **({} if n_steps is None else {"n_steps": n_steps}))
    rlpd = {
        "policy": LayerNormMultiInputSACPolicy if dict_observations else LayerNormSACPolicy,
        "replay_buffer_class": DemoReplayBuffer,
        "replay_buffer_kwargs": buffer_kwargs,
        "learning_starts": 0,  # the demonstrations are there from the first step
        "train_freq": 1,
        "gradient_steps": int(utd),
    }
    return merge_kwargs(rlpd, overrides)  # the preset's merge: replay_buffer_kwargs key by key


__all__ = ["RLPD", "RLPD_DEMO_RATIO", "RLPD_UTD", "LayerNormCnnSACPolicy", "LayerNormMultiInputSACPolicy", "LayerNormSACPolicy", "rlpd_sac_kwargs"]
