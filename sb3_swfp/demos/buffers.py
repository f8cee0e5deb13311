"""Replay buffers that mix demonstrations into every batch (RLPD-style balanced sampling)."""

from __future__ import annotations

import contextlib
import contextvars
import os
import warnings
from collections.abc import Iterator
from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.vec_env import VecNormalize

from sb3_swfp.demos.replay import make_replay_buffer
from sb3_swfp.demos.sources import DemonstrationsLike, as_demonstrations
from sb3_swfp.demos.validation import check_env_id, check_rewards

_defer_missing = contextvars.ContextVar("defer_missing_demonstrations", default=False)


@contextlib.contextmanager
def defer_missing_demonstrations() -> Iterator[None]:
    """Inside this block, a demonstration buffer whose demonstrations cannot be found is built without them.

    :meth:`SWFP.load <sb3_swfp.SWFP.load>` loads inside it, so that a model saved with a
    :class:`DemoReplayBuffer` loads (and predicts) on another machine or from another folder
    than its demonstrations file; a warning says so, and training asks for the demonstrations.
    For SAC or TD3 with a demonstration buffer: ``with defer_missing_demonstrations(): SAC.load(path)``.
    """
    token = _defer_missing.set(True)
    try:
        yield
    finally:
        _defer_missing.reset(token)


def check_demonstrations_loaded(replay_buffer: Any) -> None:
    """Raise a FileNotFoundError when ``replay_buffer`` is a demonstration buffer loaded without its demonstrations."""
    missing = getattr(replay_buffer, "missing_demonstrations", None)
    if missing is not None:
        raise FileNotFoundError(
            f"this model's demonstration buffer was loaded without its demonstrations ({missing!r} not found), and "
            "training draws from them: load the model with replay_buffer_kwargs=dict(demonstrations=<path>, "
            "demo_ratio=...), or restore a buffer saved with save_replay_buffer() with load_replay_buffer()"
        )


def _concat_samples(online: Any, demo: Any) -> Any:
    """Concatenate two replay samples of the same kind along the batch dimension (one-step buffers)."""

    def cat(a: Any, b: Any) -> Any:
        if a is None or b is None:
            return None
        if isinstance(a, dict):
            return {key: th.cat([a[key], b[key]]) for key in a}
        return th.cat([a, b])

    return type(online)(**{name: cat(getattr(online, name), getattr(demo, name)) for name in online._fields})


class _DemoMixin:
    """Shared logic of :class:`DemoReplayBuffer` and :class:`DemoDictReplayBuffer`."""

    demo_buffer: ReplayBuffer | None
    demo_ratio: float

    def _setup_demos(
        self, demonstrations: Any, demo_ratio: float, clip_actions: bool, allow_env_mismatch: bool, allow_missing_rewards: bool
    ) -> None:
        if not 0.0 <= demo_ratio <= 1.0:
            raise ValueError(f"demo_ratio must be in [0, 1] (the share of each batch drawn from demonstrations), got {demo_ratio}")
        self.demo_ratio = demo_ratio
        self.allow_env_mismatch = allow_env_mismatch
        # The source whose demonstrations could not be found while a model was loaded (see defer_missing_demonstrations)
        self.missing_demonstrations: str | None = None
        try:
            demos = as_demonstrations(demonstrations)
        except FileNotFoundError:
            if not _defer_missing.get():
                raise
            self.missing_demonstrations = os.fspath(demonstrations)
            self.demo_buffer, self.n_demonstrations, self.demonstrations_env_id = None, 0, None
            warnings.warn(
                f"the demonstrations {self.missing_demonstrations!r} of this model's replay buffer are not found (from "
                f"{os.getcwd()!r}): the model is loaded without them. It predicts as saved; to train it, load it with "
                "replay_buffer_kwargs=dict(demonstrations=<path>, demo_ratio=...)",
                stacklevel=2,
            )
            return
        check_rewards(demos, allow_missing_rewards, "a demonstration replay buffer")
        self.n_demonstrations = len(demos)
        # Checked against the env by SWFP, which knows it (the buffer gets only the spaces)
        self.demonstrations_env_id: str | None = demos.metadata.get("env_id")
        self.demo_buffer = make_replay_buffer(
            demos,
            self.observation_space,  # type: ignore[attr-defined]
            self.action_space,  # type: ignore[attr-defined]
            device=self.device,  # type: ignore[attr-defined]
            handle_timeout_termination=self.handle_timeout_termination,  # type: ignore[attr-defined]
            clip_actions=clip_actions,
        )

    def check_env(self, env_id: str | None) -> None:
        """Raise unless the demonstrations were recorded on ``env_id`` (or ``allow_env_mismatch`` was given)."""
        if self.demo_buffer is not None:
            check_env_id({"env_id": self.demonstrations_env_id}, env_id, self.allow_env_mismatch)

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> Any:
        """``round(demo_ratio * batch_size)`` demonstration transitions, the rest online ones.

        Before any online transition exists, the whole batch comes from the demonstrations.
        """
        check_demonstrations_loaded(self)
        n_online_stored = self.size()  # type: ignore[attr-defined]
        n_demo = batch_size if n_online_stored == 0 else int(round(self.demo_ratio * batch_size))
        if n_demo == 0:
            return super().sample(batch_size, env=env)  # type: ignore[misc]
        demo = self.demo_buffer.sample(n_demo, env=env)  # type: ignore[union-attr]
        if n_demo == batch_size:
            return demo
        online = super().sample(batch_size - n_demo, env=env)  # type: ignore[misc]
        return _concat_samples(online, demo)

    def sample_demonstrations(self, batch_size: int, env: VecNormalize | None = None) -> Any:
        """A batch of demonstration transitions only (for the ``bc_coef`` term)."""
        check_demonstrations_loaded(self)
        return self.demo_buffer.sample(batch_size, env=env)  # type: ignore[union-attr]


class DemoReplayBuffer(_DemoMixin, ReplayBuffer):
    """SB3 ``ReplayBuffer`` whose batches hold a fixed share of demonstration transitions.

    Online transitions are stored as usual; demonstrations live in a separate buffer and are
    never overwritten.  Each ``sample(batch_size)`` draws ``demo_ratio * batch_size`` transitions
    from the demonstrations and the rest from online data (symmetric sampling, RLPD,
    arXiv 2302.02948).  For ``Dict`` observations this class builds a :class:`DemoDictReplayBuffer`.

    Use it with any SB3 off-policy algorithm (SWFP, SAC, TD3)::

        SWFP("FlowPolicy", env, replay_buffer_class=DemoReplayBuffer,
             replay_buffer_kwargs=dict(demonstrations="demos.npz", demo_ratio=0.5))

    :param buffer_size: Capacity for online transitions.
    :param observation_space: Observation space.
    :param action_space: Action space.
    :param device: PyTorch device.
    :param n_envs: Number of parallel environments.
    :param optimize_memory_usage: As SB3's ``ReplayBuffer``.
    :param handle_timeout_termination: As SB3's ``ReplayBuffer``.
    :param demonstrations: :class:`Demonstrations`, the path of an ``.npz`` file, ``"minari:<dataset id>"``,
        an SB3 replay buffer or imitation trajectories (see :func:`as_demonstrations`); validated
        against the spaces (actions in the env's action space).  A path is read when the buffer is
        built; inside :func:`defer_missing_demonstrations` (``SWFP.load``) a missing file is not an error.
    :param demo_ratio: Share of each batch drawn from the demonstrations, in [0, 1].
    :param clip_actions: Clip out-of-bounds demonstration actions instead of raising.
    :param allow_env_mismatch: Use demonstrations recorded on another env id (``metadata["env_id"]``,
        checked by SWFP) with a warning instead of raising.
    :param allow_missing_rewards: Use reward-free demonstrations (``metadata["has_rewards"]`` false) as
        zero rewards for the critic, with a warning, instead of raising.
    """

    def __new__(cls, buffer_size: int, observation_space: spaces.Space, *args: Any, **kwargs: Any):
        if cls is DemoReplayBuffer and isinstance(observation_space, spaces.Dict):
            return super().__new__(DemoDictReplayBuffer)
        return super().__new__(cls)

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        demonstrations: DemonstrationsLike = None,
        demo_ratio: float = 0.5,
        clip_actions: bool = False,
        allow_env_mismatch: bool = False,
        allow_missing_rewards: bool = False,
    ):
        super().__init__(
            buffer_size,
            observation_space,
            action_space,
            device=device,
            n_envs=n_envs,
            optimize_memory_usage=optimize_memory_usage,
            handle_timeout_termination=handle_timeout_termination,
        )
        self._setup_demos(demonstrations, demo_ratio, clip_actions, allow_env_mismatch, allow_missing_rewards)


class DemoDictReplayBuffer(DemoReplayBuffer, DictReplayBuffer):
    """:class:`DemoReplayBuffer` for ``Dict`` observations (same parameters).

    The method resolution order puts ``DictReplayBuffer`` under :class:`DemoReplayBuffer`, so the
    shared ``__init__`` builds a dict buffer here.
    """


__all__ = [
    "DemoDictReplayBuffer",
    "DemoReplayBuffer",
    "check_demonstrations_loaded",
    "defer_missing_demonstrations",
]
