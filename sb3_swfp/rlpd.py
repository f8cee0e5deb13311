"""RLPD-style SAC: what a practitioner with demonstrations and an online budget would use instead of SWFP.

RLPD (Ball et al. 2023, "Efficient Online Reinforcement Learning with Offline Data", arXiv
2302.02948) is SAC with three changes: symmetric sampling (half of every batch from the offline
data), LayerNorm in the critics, and a large critic ensemble updated many times per env step.
Here it is SB3's own SAC with::

    from stable_baselines3 import SAC
    from sb3_swfp.rlpd import rlpd_sac_kwargs

    model = SAC(env=env, **rlpd_sac_kwargs("demos.npz"))  # the policy class comes with the arguments
    model.learn(10_000)

``SAC.load`` reads a saved model back; where its demonstrations file is not found from the working
directory, load it inside ``sb3_swfp.demos.defer_missing_demonstrations()`` (it then predicts, and
asks for the demonstrations before it trains), as ``SWFP.load`` does by itself.

What differs from RLPD's recipe (its reference code, ikostrikov/rlpd), and why:

- the critics: SB3's SAC takes the minimum over *all* its critics in the target, so the ensemble stays
  SB3's two (RLPD: ten, the target's minimum over a random two, the actor's Q their mean).  A weaker
  baseline than the recipe in this respect: SWFP's fine-tuning preset trains ten critics;
- the update-to-data ratio defaults to 2 (RLPD: 20), to keep runs within a CPU budget; SB3 updates the
  actor and the temperature at every gradient step (RLPD: once per env step, after the critics');
- the temperature's target entropy is SB3's ``-dim(A)`` (RLPD: ``-dim(A)/2``), and nothing waits for
  random warm-up steps (RLPD: 5000): the demonstrations are in the buffer from the first step;
- everything else (learning rates, network sizes) is what the caller gives: the benchmarks take
  rl-zoo3's SAC entry of the task (a learning rate of 1e-3 on Pendulum-v1 and the PointMazes, RLPD: 3e-4).
"""

from __future__ import annotations

import inspect
import numbers
import os
from typing import Any

from gymnasium import spaces
from stable_baselines3.common.policies import ContinuousCritic
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor, FlattenExtractor
from stable_baselines3.sac.policies import SACPolicy

from sb3_swfp.common.critics import LayerNormContinuousCritic
from sb3_swfp.demos import Demonstrations, DemoReplayBuffer
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


__all__ = ["RLPD_DEMO_RATIO", "RLPD_UTD", "LayerNormMultiInputSACPolicy", "LayerNormSACPolicy", "rlpd_sac_kwargs"]
