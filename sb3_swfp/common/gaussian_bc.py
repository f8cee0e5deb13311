"""Behaviour cloning into SB3's squashed-Gaussian SAC actor: the unimodal baseline the flow policy is compared with."""

from __future__ import annotations

import numpy as np
import torch as th
from stable_baselines3 import SAC

from sb3_swfp.common.checks import check_int, check_positive
from sb3_swfp.demos import DemonstrationBuffer, DemonstrationsLike, as_demonstrations, check_env_id, vec_env_id


def gaussian_behaviour_cloning(
    model: SAC,
    demonstrations: DemonstrationsLike,
    gradient_steps: int = 2000,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    seed: int | None = None,
    clip_actions: bool = False,
    allow_env_mismatch: bool = False,
) -> list[float]:
    """Maximum-likelihood BC of a SAC actor (tanh-squashed diagonal Gaussian) on demonstrations.

    Scaled demonstration actions are clipped to ``±(1 - 1e-6)`` so that ``atanh`` stays finite.
    Under ``VecNormalize`` the observations are handled as :meth:`SWFP.pretrain` handles them: the
    running statistics (``norm_obs`` and ``training`` on) are first updated with the demonstrations,
    and BC trains on observations normalised with them, as the actor will read them online.

    :param model: A SAC model; its actor is trained in place (critics untouched).
    :param demonstrations: Anything :func:`~sb3_swfp.demos.as_demonstrations` reads (a
        :class:`~sb3_swfp.demos.Demonstrations`, an ``.npz`` path, ``"minari:<id>"``, an SB3 buffer, ...),
        validated against the model's spaces and its env's id.
    :param gradient_steps: Adam steps.
    :param batch_size: Minibatch size.
    :param learning_rate: Adam learning rate.
    :param seed: Seed of the minibatch sampling.
    :param clip_actions: Clip out-of-bounds demonstration actions instead of raising.
    :param allow_env_mismatch: Use demonstrations recorded on another env id (with a warning).
    :return: The negative log-likelihood of each step.
    """
    from sb3_swfp.swfp.pretrain import PretrainingNormalization, update_observation_statistics

    check_int("gradient_steps", gradient_steps, 0)
    check_int("batch_size", batch_size, 1)
    check_positive("learning_rate", learning_rate, "Adam's")
    demos = as_demonstrations(demonstrations)
    check_env_id(demos.metadata, vec_env_id(model.env), allow_env_mismatch)
    demo_buffer = DemonstrationBuffer.from_demonstrations(
        demos, model.observation_space, model.action_space, device=model.device, clip_actions=clip_actions  # type: ignore[arg-type]
    )
    vec_normalize = model.get_vec_normalize_env()
    update_observation_statistics(vec_normalize, demo_buffer)
    normalization = PretrainingNormalization(vec_normalize)
    actor = model.actor
    optimizer = th.optim.Adam(actor.parameters(), lr=learning_rate)
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(gradient_steps):
        batch = demo_buffer.sample(batch_size, env=normalization, rng=rng)  # type: ignore[arg-type]
        mean_actions, log_std, kwargs = actor.get_action_dist_params(batch.observations)
        distribution = actor.action_dist.proba_distribution(mean_actions, log_std, **kwargs)
        loss = -distribution.log_prob(batch.actions.clamp(-1 + 1e-6, 1 - 1e-6)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
