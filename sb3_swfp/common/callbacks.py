"""Callbacks: behaviour-cloning pretraining (flow matching, Eq. 7) when online learning starts, and an
evaluation that counts the policy ``learn()`` starts from."""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.callbacks import BaseCallback, EvalCallback

from sb3_swfp.common.checks import check_pretrain_arguments
from sb3_swfp.demos import DemonstrationsLike, with_env_id


class BCPretrainCallback(BaseCallback):
    """Behaviour-clone demonstrations into the flow policy when ``learn()`` starts, then fine-tune online.

    Calls :meth:`SWFP.pretrain` at the start of ``learn()``, on the model's device, and logs
    ``pretrain/bc_loss`` to the model's logger (TensorBoard included).  The target actor is synced
    afterwards.  It clones only a model that has neither been behaviour-cloned (``model.n_bc_updates``)
    nor trained (gradient updates): both are saved with the model, so a loaded model that continues
    (rl-zoo3's ``-i``, ``SWFP.load`` + ``learn``, where ``num_timesteps`` starts again at 0) is not
    cloned again, and the demonstrations are then not read.  Usable from rl-zoo3 YAML::

        callback:
          - sb3_swfp.common.callbacks.BCPretrainCallback:
              demonstrations: demos/pendulum.npz
              gradient_steps: 5000

    :param demonstrations: :class:`Demonstrations`, the path of an ``.npz`` file, ``"minari:<dataset id>"``,
        an SB3 replay buffer or imitation trajectories (read when BC runs); ``{env_id}`` in a path is
        replaced by the env's id.
    :param gradient_steps: BC gradient steps.
    The defaults are those of :meth:`SWFP.pretrain`, the fine-tuning preset's
    (``sb3_swfp.presets.PRETRAIN_KWARGS``).

    :param batch_size: BC minibatch size (paper 128).
    :param learning_rate: Initial BC learning rate, cosine-decayed to ``final_learning_rate`` (paper 1e-4).
    :param final_learning_rate: Final BC learning rate, at most ``learning_rate`` (paper 1e-5; the preset's 1e-4).
    :param weight_decay: AdamW weight decay (paper 1e-6).
    :param critic_warmup_steps: Critic steps on demonstration transitions after BC (0: none).
    :param clip_actions: Clip out-of-bounds demonstration actions instead of raising.
    :param progress_bar: Show a progress bar for the BC steps.
    :param allow_env_mismatch: Use demonstrations recorded on another env id (with a warning).
    :param allow_missing_rewards: Let the critic warm-up train on reward-free demonstrations (with a warning).
    :param verbose: Verbosity level.
    """

    def __init__(
        self,
        demonstrations: DemonstrationsLike,
        gradient_steps: int = 10_000,
        batch_size: int = 128,
        learning_rate: float = 1e-3,
        final_learning_rate: float = 1e-4,
        weight_decay: float = 1e-6,
        critic_warmup_steps: int = 0,
        clip_actions: bool = False,
        progress_bar: bool = False,
        allow_env_mismatch: bool = False,
        allow_missing_rewards: bool = False,
        verbose: int = 0,
    ):
        super().__init__(verbose)
        # Checked here, not only when learn() starts and BC runs
        check_pretrain_arguments(gradient_steps, batch_size, learning_rate, final_learning_rate, weight_decay, critic_warmup_steps)
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
            allow_env_mismatch=allow_env_mismatch,
            allow_missing_rewards=allow_missing_rewards,
        )
        self.pretrained = False

    def _on_training_start(self) -> None:
        if not hasattr(self.model, "pretrain"):
            raise TypeError(f"BCPretrainCallback needs an SWFP model, got {type(self.model).__name__}")
        # The model says whether it was cloned or trained (not this callback: one instance may serve several models)
        if self.model.n_bc_updates > 0 or self.model._n_updates > 0:
            if self.verbose:
                print("BC pretraining skipped: the model has already been behaviour-cloned or trained")
            return
        demonstrations = with_env_id(self.demonstrations, self.training_env)
        if self.verbose:
            print(f"BC pretraining on {demonstrations!s} for {self.pretrain_kwargs['gradient_steps']} steps")
        self.model.pretrain(demonstrations, **self.pretrain_kwargs)
        self.pretrained = True

    def _on_step(self) -> bool:
        return True


class EvalFromStartCallback(EvalCallback):
    """SB3's ``EvalCallback``, which also evaluates the policy ``learn()`` starts from, before its first step.

    ``EvalCallback`` first evaluates after ``eval_freq`` steps, so its ``best_model.zip`` is the best of
    the policies met *during* training: never the behaviour-cloned policy that fine-tuning started
    from, even where every later one is worse.  With this callback the start is the first candidate,
    so ``best_model_save_path`` holds the best of the start and every later evaluation (the start
    itself, saved before any update, where nothing beat it), and ``evaluations.npz`` begins at
    the timestep ``learn()`` started at.  Put it after :class:`BCPretrainCallback` in a callback
    list, so that the start it evaluates is the cloned policy::

        model.learn(10_000, callback=[BCPretrainCallback("demos.npz"),
                                      EvalFromStartCallback(eval_env, eval_freq=2000, n_eval_episodes=20,
                                                            best_model_save_path="logs/")])

    "Best" is by this callback's evaluations, each over ``n_eval_episodes`` episodes from new start
    states: on MuJoCo tasks use 20 or more, since cloned policies that fit the demonstrations
    equally well already differ by several percent (docs/robustness.md).  The arguments are
    ``EvalCallback``'s; the start is evaluated in the first ``learn()`` the callback is given to.
    A ``callback_on_new_best`` that stops training (``StopTrainingOnRewardThreshold``) and is met
    by the start stops ``learn()`` at its first step.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._stop_at_first_step = False

    def _on_training_start(self) -> None:
        super()._on_training_start()
        # EvalCallback evaluates when n_calls % eval_freq == 0: true before the first step (n_calls is 0)
        if self.eval_freq > 0 and self.n_calls == 0:
            # A callback_on_new_best (StopTrainingOnRewardThreshold) may ask to stop: at the first step, then
            self._stop_at_first_step = not super()._on_step()

    def _on_step(self) -> bool:
        if self._stop_at_first_step:
            self._stop_at_first_step = False  # once: a later learn() goes on as EvalCallback's would
            return False
        return super()._on_step()
