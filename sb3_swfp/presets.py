"""The fine-tuning preset: one set of SWFP settings for behaviour cloning then online fine-tuning, on any task.

Chosen on seeds 0-2 of the project's seven benchmark tasks by rules written down before the runs
(the settings, then ten critics instead of two, then the policy selection, then the selection measured
by deterministic episodes, then by three of them, then a change kept only by a margin of one standard error),
and reported on fresh seeds (docs/robustness.md, docs/benchmarks.md).  What a task
may change is the env's business: its demonstrations, its budget, the network size, observation
normalisation; not these weights::

    from sb3_swfp import SWFP
    from sb3_swfp.presets import finetune_kwargs

    model = SWFP("FlowPolicy", env, **finetune_kwargs("demos.npz"))
    model.pretrain("demos.npz")          # PRETRAIN_KWARGS are pretrain's defaults
    model.learn(10_000)

The same values are the entries of ``zoo_hyperparams/swfp_o2o.yml`` (its ``default`` entry serves
any env) and ``examples/offline_to_online.py``; the tests keep them equal.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

from sb3_swfp.demos import Demonstrations, DemoReplayBuffer

#: ``SWFP(...)`` arguments of the preset (docs/robustness.md says why each one).
FINETUNE_KWARGS: dict[str, Any] = dict(
    # A density on the action box (Eq. 20's entropy term has a finite optimum there)
    squash="soft_clip",
    learning_rate=1e-3,  # the critic's: it must keep up with a policy that moves from the first step (C3)
    actor_learning_rate=1e-4,
    # The BC policy, not uniform noise, collects from the first step; the critic fits before the actor moves
    learning_starts=0,
    actor_learning_starts=1000,
    # Q divided by its batch mean |Q| in the JKO loss: one temperature and trust region for any reward scale
    q_normalization=True,
    ent_coef=0.01,
    critic_entropy=False,  # ent_coef is the actor's temperature of the normalised Q, not a reward bonus
    w2_coef=100.0,
    w2_prev_coef=0.0,  # only the trust region to the old block output
    bc_coef=10.0,  # flow-matching BC on the demonstrations in every actor step
    batch_size=256,
    # Ten critics and the minimum over all of them, in the target and in the actor's Q term (probe Q)
    policy_kwargs=dict(n_critics=10),
    # predict answers with the last copy of the actor whose 1000-step phase of the run's own episodes
    # returned at least as much as the kept one's; the learner trains as without it (probe S)
    selection_steps=1000,
    # each phase is measured by deterministic episodes, as evaluations act (probe SD); a task whose
    # evaluations sample (the toy's modes) sets False: how the user acts, not a weight
    selection_deterministic=True,
    # by the mean of three per env: one episode's return depends on its start state (probe SD3); with
    # sampled measures, at least three returned episodes per phase
    selection_episodes=3,
    # and keeps a copy only where that mean clears the kept one's by a standard error of the difference: three
    # episodes are a noisy measure, and a change they favour by less is as likely chance (probe M1)
    selection_margin=1.0,
)
#: The share of every critic batch drawn from the demonstrations (``DemoReplayBuffer``).
DEMO_RATIO = 0.25
#: Behaviour cloning: ``SWFP.pretrain`` and ``BCPretrainCallback`` take these as their defaults.
PRETRAIN_KWARGS: dict[str, Any] = dict(gradient_steps=10_000, batch_size=128, learning_rate=1e-3, final_learning_rate=1e-4, weight_decay=1e-6)


def finetune_kwargs(
    demonstrations: str | os.PathLike | Demonstrations, demo_ratio: float = DEMO_RATIO, **overrides: Any
) -> dict[str, Any]:
    """``SWFP(...)`` keyword arguments of the fine-tuning preset, with ``demonstrations`` in the replay buffer.

    :param demonstrations: What ``DemoReplayBuffer`` accepts: a :class:`Demonstrations` or an ``.npz`` path.
    :param demo_ratio: Share of every batch drawn from the demonstrations.
    :param overrides: ``SWFP`` arguments that replace or add to the preset's (``seed``, ...);
        ``policy_kwargs`` and ``replay_buffer_kwargs`` are merged key by key, so
        ``policy_kwargs=dict(net_arch=[64, 64])`` keeps the preset's critics and
        ``replay_buffer_kwargs=dict(clip_actions=True)`` the demonstrations.  ``policy`` and ``env`` are
        ``SWFP``'s positional arguments, not the preset's.
    :return: A new dict; the preset itself is not modified.
    """
    from sb3_swfp.swfp import SWFP

    taken = set(inspect.signature(SWFP.__init__).parameters) - {"self", "policy", "env"}
    unknown = sorted(set(overrides) - taken)
    if unknown:
        raise TypeError(f"finetune_kwargs: {', '.join(unknown)} {'is not an argument' if len(unknown) == 1 else 'are not arguments'} of SWFP's preset")
    buffer = dict(replay_buffer_class=DemoReplayBuffer, replay_buffer_kwargs=dict(demonstrations=demonstrations, demo_ratio=demo_ratio))
    return merge_kwargs({**FINETUNE_KWARGS, **buffer}, overrides)


def merge_kwargs(kwargs: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with ``overrides`` on top; ``policy_kwargs`` and ``replay_buffer_kwargs`` are merged key by
    key into new dicts (a network size keeps the preset's critics, a buffer setting the demonstrations, and
    the preset's own dicts are never handed out)."""
    merged = {**kwargs, **overrides}
    for name in ("policy_kwargs", "replay_buffer_kwargs"):
        if name in merged:
            merged[name] = {**(kwargs.get(name) or {}), **(overrides.get(name) or {})}
    return merged


__all__ = ["DEMO_RATIO", "FINETUNE_KWARGS", "PRETRAIN_KWARGS", "finetune_kwargs", "merge_kwargs"]
