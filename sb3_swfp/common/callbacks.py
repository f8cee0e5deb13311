"""Callbacks: behaviour-cloning pretraining before online learning (spec §5)."""

from __future__ import annotations

import os
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from sb3_swfp.common.buffers import ENV_ID_FIELD, with_env_id
from sb3_swfp.common.demos import Demonstrations


def _check_exists(path: str | os.PathLike, how: str = "") -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(f"demonstrations file not found: {os.fspath(path)!r}{how} (expected a .npz file)")


class BCPretrainCallback(BaseCallback):
    """Behaviour-clone demonstrations into the flow policy when ``learn()`` starts, then fine-tune online.

    Calls :meth:`SWFP.pretrain` once, at the start of the first ``learn()`` (not again when training
    continues), on the model's device, and logs ``pretrain/bc_loss`` to the model's logger
    (TensorBoard included).  The target actor is synced afterwards.  Usable from rl-zoo3 YAML::

        callback:
          - sb3_swfp.common.callbacks.BCPretrainCallback:
              demonstrations: demos/pendulum.npz
              gradient_steps: 5000

    :param demonstrations: :class:`Demonstrations` or the path of an ``.npz`` file; ``{env_id}`` in the path
        is replaced by the env's id when training starts.
    :param gradient_steps: BC gradient steps.
    The defaults are those of :meth:`SWFP.pretrain`, the fine-tuning preset's
    (``sb3_swfp.presets.PRETRAIN_KWARGS``).

    :param batch_size: BC minibatch size (paper 128).
    :param learning_rate: Initial BC learning rate, cosine-decayed to ``final_learning_rate`` (paper 1e-4).
    :param final_learning_rate: Final BC learning rate (paper 1e-5).
    :param weight_decay: AdamW weight decay (paper 1e-6).
    :param critic_warmup_steps: Critic steps on demonstration transitions after BC (0: none).
    :param clip_actions: Clip out-of-bounds demonstration actions instead of raising.
    :param progress_bar: Show a progress bar for the BC steps.
    :param verbose: Verbosity level.
    """

    def __init__(
        self,
        demonstrations: str | os.PathLike | Demonstrations,
        gradient_steps: int = 10_000,
        batch_size: int = 128,
        learning_rate: float = 1e-3,
        final_learning_rate: float = 1e-4,
        weight_decay: float = 1e-6,
        critic_warmup_steps: int = 0,
        clip_actions: bool = False,
        progress_bar: bool = False,
        verbose: int = 0,
    ):
        super().__init__(verbose)
        if isinstance(demonstrations, (str, os.PathLike)) and ENV_ID_FIELD not in os.fspath(demonstrations):
            _check_exists(demonstrations)
        self.demonstrations = demonstrations
        self.pretrain_kwargs: dict[str, Any] = dict(
            gradient_steps=gradient_steps,
            batch_size=batch_size,
            learning_rate=learning_rate,
            final_learning_rate=final_learning_rate,
            weight_decay=weight_decay,
            critic_warmup_steps=critic_warmup_steps,
            clip_actions=clip_actions,
            progress_bar=progress_bar,
        )
        self.pretrained = False

    def _on_training_start(self) -> None:
        if self.pretrained or self.model.num_timesteps > 0:
            return
        if not hasattr(self.model, "pretrain"):
            raise TypeError(f"BCPretrainCallback needs an SWFP model, got {type(self.model).__name__}")
        demonstrations = with_env_id(self.demonstrations, self.training_env)
        if demonstrations is not self.demonstrations:
            _check_exists(demonstrations, f" ({os.fspath(self.demonstrations)!r} with the env's id)")
        if self.verbose:
            print(f"BC pretraining on {demonstrations!s} for {self.pretrain_kwargs['gradient_steps']} steps")
        self.model.pretrain(demonstrations, **self.pretrain_kwargs)
        self.pretrained = True

    def _on_step(self) -> bool:
        return True
