"""Behaviour cloning into SB3's squashed-Gaussian SAC actor: the unimodal baseline the flow policy is compared with."""

from __future__ import annotations

import numpy as np
import torch as th
from stable_baselines3 import SAC

from sb3_swfp.demos import DemonstrationBuffer, DemonstrationsLike, as_demonstrations


def gaussian_behaviour_cloning(
    model: SAC,
    demonstrations: DemonstrationsLike,
    gradient_steps: int = 2000,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    seed: int | None = None,
) -> list[float]:
    """Maximum-likelihood BC of a SAC actor (tanh-squashed diagonal Gaussian) on demonstrations.

    Scaled demonstration actions are clipped to ``±(1 - 1e-6)`` so that ``atanh`` stays finite.

    :param model: A SAC model; its actor is trained in place (critics untouched).
    :param demonstrations: Anything :func:`~sb3_swfp.demos.as_demonstrations` reads (a
        :class:`~sb3_swfp.demos.Demonstrations`, an ``.npz`` path, ``"minari:<id>"``, an SB3 buffer, ...),
        validated against the model's spaces.
    :param gradient_steps: Adam steps.
    :param batch_size: Minibatch size.
    :param learning_rate: Adam learning rate.
    :param seed: Seed of the minibatch sampling.
    :return: The negative log-likelihood of each step.
    """
    demo_buffer = DemonstrationBuffer.from_demonstrations(
        as_demonstrations(demonstrations), model.observation_space, model.action_space, device=model.device  # type: ignore[arg-type]
    )
    actor = model.actor
    optimizer = th.optim.Adam(actor.parameters(), lr=learning_rate)
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(gradient_steps):
        batch = demo_buffer.sample(batch_size, rng=rng)
        mean_actions, log_std, kwargs = actor.get_action_dist_params(batch.observations)
        distribution = actor.action_dist.proba_distribution(mean_actions, log_std, **kwargs)
        loss = -distribution.log_prob(batch.actions.clamp(-1 + 1e-6, 1 - 1e-6)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
