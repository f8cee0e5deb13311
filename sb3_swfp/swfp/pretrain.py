"""Pretraining of an SWFP model on demonstrations: behaviour cloning by flow matching (Eq. 7), then a critic warm-up.

:meth:`SWFP.pretrain <sb3_swfp.SWFP.pretrain>` calls :func:`pretrain`.  Both phases draw their
batches from one :class:`~sb3_swfp.demos.DemonstrationBuffer`, with ``sample(batch_size, env=..., rng=...)``.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import torch as th
from stable_baselines3.common.utils import configure_logger, polyak_update
from stable_baselines3.common.vec_env import VecNormalize

from sb3_swfp.common.checks import check_pretrain_arguments, require
from sb3_swfp.common.losses import check_finite
from sb3_swfp.demos import DemonstrationBuffer, DemonstrationsLike, as_demonstrations, check_env_id, check_rewards, vec_env_id

if TYPE_CHECKING:
    from sb3_swfp.swfp.swfp import SWFP


class PretrainingNormalization:
    """What pretraining normalises its demonstration batches with: the ``env`` of ``DemonstrationBuffer.sample``.

    Observations: float ones are rounded to float32 (what the networks read), then normalised with the
    model's ``VecNormalize`` statistics, if any, which have first been updated with the demonstrations
    (see :func:`update_observation_statistics`).  Online batches normalise the stored values instead;
    for float64 observation spaces under ``VecNormalize`` the two differ in the last bits, and pretraining
    keeps the numbers it has always given.  Rewards stay as recorded: ``VecNormalize``'s return statistics
    are those of online returns, and before ``learn()`` they have seen none.

    :param vec_normalize: The model's ``VecNormalize`` wrapper, or None.
    """

    def __init__(self, vec_normalize: VecNormalize | None):
        self.vec_normalize = vec_normalize

    def normalize_obs(self, obs: np.ndarray | dict[str, np.ndarray]) -> np.ndarray | dict[str, np.ndarray]:
        obs = {key: _float32(value) for key, value in obs.items()} if isinstance(obs, dict) else _float32(obs)
        return obs if self.vec_normalize is None else self.vec_normalize.normalize_obs(obs)

    def normalize_reward(self, reward: np.ndarray) -> np.ndarray:
        return reward


def _float32(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float32, copy=False) if np.issubdtype(array.dtype, np.floating) else array


def update_observation_statistics(vec_normalize: VecNormalize | None, demo_buffer: DemonstrationBuffer) -> None:
    """Update the running observation statistics of ``vec_normalize`` (if any, and in training mode) with the demonstrations'.

    At the start of ``learn()`` the statistics have seen one observation, and almost every demonstration
    observation would be clipped at ``clip_obs``.
    """
    if vec_normalize is None or not vec_normalize.norm_obs or not vec_normalize.training:
        return
    # (n, n_envs=1, *obs_shape) -> (n, *obs_shape)
    if isinstance(demo_buffer.observations, dict):
        for key in vec_normalize.norm_obs_keys:
            vec_normalize.obs_rms[key].update(demo_buffer.observations[key][:, 0])  # type: ignore[index]
    else:
        vec_normalize.obs_rms.update(demo_buffer.observations[:, 0])  # type: ignore[union-attr]


def pretrain(
    model: SWFP,
    demonstrations: DemonstrationsLike,
    gradient_steps: int,
    batch_size: int,
    learning_rate: float,
    final_learning_rate: float,
    weight_decay: float,
    critic_warmup_steps: int,
    clip_actions: bool,
    progress_bar: bool,
    log_interval: int,
    tb_log_name: str,
    allow_env_mismatch: bool,
    allow_missing_rewards: bool,
) -> None:
    """Behaviour-clone ``demonstrations`` into ``model``'s actor, sync the target actor, then warm the critic up.

    The arguments are those of :meth:`SWFP.pretrain <sb3_swfp.SWFP.pretrain>`, which documents them.
    """
    check_pretrain_arguments(
        gradient_steps, batch_size, learning_rate, final_learning_rate, weight_decay, critic_warmup_steps, log_interval
    )
    # Before any work: the observation statistics below would count the demonstrations twice on a retry
    if progress_bar:
        require(("tqdm", "rich"), "progress_bar=True", "examples")
    if model.tensorboard_log is not None and not hasattr(model, "_logger"):  # the logger pretraining makes writes there
        require(("tensorboard",), "tensorboard_log", "examples")
    demos = as_demonstrations(demonstrations)
    # Demonstrations of another env are named as such before their shapes are compared
    check_env_id(demos.metadata, vec_env_id(model.env), allow_env_mismatch, stacklevel=4)  # the line that called SWFP.pretrain
    # Validated against the model's spaces, actions scaled to [-1, 1]
    # Truncations end the targets or bootstrap as in the online buffer (handle_timeout_termination)
    demo_buffer = DemonstrationBuffer.from_demonstrations(
        demos, model.observation_space, model.action_space, device=model.device, clip_actions=clip_actions,  # type: ignore[arg-type]
        handle_timeout_termination=getattr(model.replay_buffer, "handle_timeout_termination", True),
    )
    # The critic warm-up's targets, as online: the buffer's n-step returns (SB3 ignores n_steps with a buffer class
    # of one's own that has none, and the online targets are then one-step)
    demo_buffer.n_steps = getattr(model.replay_buffer, "n_steps", 1)
    demo_buffer.gamma = model.gamma
    if critic_warmup_steps > 0:
        check_rewards(demos, allow_missing_rewards, "the critic warm-up (critic_warmup_steps > 0)")
        if model._vec_normalize_env is not None and model._vec_normalize_env.norm_reward:
            warnings.warn(
                "the critic warm-up trains on the demonstrations' rewards as recorded (VecNormalize's return "
                "statistics have seen no online return yet), while learn() trains on normalised rewards: the critics "
                "would learn two reward scales. Use VecNormalize(norm_reward=False) or critic_warmup_steps=0",
                stacklevel=3,
            )
    update_observation_statistics(model._vec_normalize_env, demo_buffer)
    # Passed as sample()'s env: SB3's sampling calls only its normalize_obs and normalize_reward
    normalization: Any = PretrainingNormalization(model._vec_normalize_env)
    # Not set_logger(): that would mark the logger as the user's, and learn() would keep it (and its run name)
    own_logger = not hasattr(model, "_logger")
    logger = configure_logger(model.verbose, model.tensorboard_log, tb_log_name) if own_logger else model.logger
    # Pretraining draws its batches from a stream of its own, seeded by the model's seed
    rng = np.random.default_rng(model.seed)

    # Behaviour cloning: conditional flow matching, Eq. (7)
    actor = model.actor
    optimizer = th.optim.AdamW(actor.parameters(), lr=learning_rate, weight_decay=weight_decay, foreach=True)
    scheduler = th.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(gradient_steps, 1), eta_min=final_learning_rate)
    actor.set_training_mode(True)
    losses: list[float] = []
    for step in _progress(range(1, gradient_steps + 1), progress_bar, "BC pretraining"):
        batch = demo_buffer.sample(batch_size, env=normalization, rng=rng)
        loss = actor.flow_matching_loss(batch.observations, batch.actions)
        losses.append(check_finite("pretrain/bc_loss", loss, step))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        model.n_bc_updates += 1
        if step % log_interval == 0 or step == gradient_steps:
            logger.record("pretrain/bc_loss", float(np.mean(losses)))
            logger.record("pretrain/learning_rate", scheduler.get_last_lr()[0])
            logger.dump(step=step)
            losses = []
    model.policy.sync_target_actor()  # the behaviour (target) actor starts as the pretrained actor

    # Critic warm-up: soft-Q steps (Eq. 16-18) on demonstration transitions, a' from the pretrained actor
    critic_losses: list[float] = []
    ent_coef = model._current_ent_coef()
    for step in range(1, critic_warmup_steps + 1):
        batch = demo_buffer.sample(model.batch_size, env=normalization, rng=rng)
        _, logs = model._critic_update(batch, ent_coef, loss_name="pretrain/critic_loss", update=step)  # type: ignore[arg-type]
        critic_losses.append(logs["critic_loss"])
        polyak_update(model.critic.parameters(), model.critic_target.parameters(), model.tau)
        if step % log_interval == 0 or step == critic_warmup_steps:
            logger.record("pretrain/critic_loss", float(np.mean(critic_losses)))
            critic_losses = []
            logger.dump(step=gradient_steps + step)
    if own_logger:
        logger.close()


def _progress(iterable: Any, enabled: bool, description: str) -> Any:
    """Wrap ``iterable`` in tqdm's rich progress bar if ``enabled``."""
    if not enabled:
        return iterable
    from tqdm.rich import tqdm  # installed: pretrain checked

    return tqdm(iterable, desc=description)


__all__ = ["PretrainingNormalization", "pretrain", "update_observation_statistics"]
