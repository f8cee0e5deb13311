"""Replay buffers of demonstrations: the one place every consumer of demonstrations samples them from.

- :class:`DemonstrationBuffer`: the demonstrations in an SB3 replay buffer, full from the start and
  never written to again.  BC pretraining and the critic warm-up (``SWFP.pretrain``), the ``bc_coef``
  term of the actor loss, the demonstration share of :class:`DemoReplayBuffer`'s batches and Gaussian
  BC all draw their batches with its ``sample(batch_size, env=...)``, as SB3 draws replay batches.
- :class:`DemoReplayBuffer`: an SB3 ``ReplayBuffer`` for online transitions whose every batch holds a
  fixed share of demonstration transitions (RLPD-style symmetric sampling); ``replay_buffer_class``
  of SWFP, SAC or TD3.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import DictReplayBufferSamples, ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from sb3_swfp.demos.record import Demonstrations
from sb3_swfp.demos.replay import make_replay_buffer, truncate_last_transitions
from sb3_swfp.demos.sources import DemonstrationsLike, as_demonstrations
from sb3_swfp.demos.validation import check_env_id, check_rewards, vec_env_id

_defer_missing = contextvars.ContextVar("defer_missing_demonstrations", default=False)


def _observation_space_argument(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The ``observation_space`` among SB3's replay buffer arguments ``(buffer_size, observation_space, ...)``."""
    return args[1] if len(args) > 1 else kwargs.get("observation_space")


class DemonstrationBuffer(ReplayBuffer):
    """Demonstrations held in an SB3 replay buffer, sampled as SB3 samples replay.

    Build one with :meth:`from_demonstrations` (for ``Dict`` observations it is a
    :class:`DemonstrationDictBuffer`).  A batch is SB3's ``ReplayBufferSamples`` (or
    ``DictReplayBufferSamples``): actions scaled to [-1, 1], ``dones`` the terminations only (a
    truncated transition bootstraps), observations and rewards normalised with ``env`` when one is given.
    """

    def __new__(cls, *args: Any, **kwargs: Any):
        # Without arguments (unpickling) the class is the one that was pickled
        if cls is DemonstrationBuffer and isinstance(_observation_space_argument(args, kwargs), spaces.Dict):
            return super().__new__(DemonstrationDictBuffer)
        return super().__new__(cls)

    @classmethod
    def from_demonstrations(
        cls,
        demonstrations: Demonstrations,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        device: th.device | str = "auto",
        handle_timeout_termination: bool = True,
        clip_actions: bool = False,
    ) -> DemonstrationBuffer:
        """A buffer holding exactly ``demonstrations``, validated against the spaces (actions in the env's action space).

        :param demonstrations: The demonstrations.
        :param observation_space: Observation space of the environment.
        :param action_space: ``Box`` action space of the environment.
        :param device: Device of the sampled tensors.
        :param handle_timeout_termination: As SB3's ``ReplayBuffer``: a truncation is not a termination.
        :param clip_actions: Clip out-of-bounds actions instead of raising.
        """
        return make_replay_buffer(  # type: ignore[return-value]
            demonstrations,
            observation_space,
            action_space,
            device=device,
            handle_timeout_termination=handle_timeout_termination,
            clip_actions=clip_actions,
            buffer_class=cls,
        )

    def sample(  # type: ignore[override]
        self, batch_size: int, env: VecNormalize | None = None, rng: np.random.Generator | None = None
    ) -> ReplayBufferSamples | DictReplayBufferSamples:
        """``batch_size`` transitions drawn uniformly with replacement.

        :param batch_size: Number of transitions.
        :param env: Normalise observations and rewards with it (``VecNormalize``), as SB3's ``sample`` does.
        :param rng: Draw the indices from this generator, ``rng.integers(0, n, batch_size)``, instead of
            from the global ``np.random`` as SB3 does: pretraining draws its batches from a stream of its
            own, seeded by the model's seed, and leaves the global one to online training.
        """
        if rng is None:
            return super().sample(batch_size, env=env)
        return self._get_samples(rng.integers(0, self.size(), size=batch_size), env=env)

    #: n-step returns of the critic's batches (set by :class:`DemoReplayBuffer`); 1: one-step transitions
    n_steps: int = 1
    gamma: float = 0.99

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> Any:
        return _n_step_samples(self, batch_inds, env, super()._get_samples)


class DemonstrationDictBuffer(DemonstrationBuffer, DictReplayBuffer):
    """:class:`DemonstrationBuffer` for ``Dict`` observations; ``DictReplayBuffer`` below it in the method resolution order."""


def _n_step_samples(buffer: ReplayBuffer, batch_inds: np.ndarray, env: VecNormalize | None, one_step: Any) -> Any:
    """SB3's ``NStepReplayBuffer`` sampling for ``buffer`` when its ``n_steps`` > 1 (returns summed up to
    the first termination or truncation, ``discounts`` gamma^k), ``one_step(batch_inds, env)`` otherwise."""
    if getattr(buffer, "n_steps", 1) == 1:  # buffers pickled before n_steps existed are one-step
        return one_step(batch_inds, env=env)
    return NStepReplayBuffer._get_samples(buffer, batch_inds, env=env)  # type: ignore[arg-type]


def _check_n_steps(n_steps: Any, dict_observations: bool, optimize_memory_usage: bool) -> None:
    """Raise unless ``n_steps`` is an integer >= 1 that SB3's ``NStepReplayBuffer`` rule can serve here."""
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps must be an integer >= 1 (the steps of each return), got {n_steps!r}")
    if n_steps > 1 and (dict_observations or optimize_memory_usage):
        raise ValueError(
            f"n_steps={n_steps} needs Box observations and optimize_memory_usage=False (as SB3's NStepReplayBuffer); "
            "use n_steps=1 here"
        )


def _concat_samples(online: Any, demo: Any) -> Any:
    """Concatenate two replay samples of the same kind along the batch dimension."""

    def cat(a: Any, b: Any) -> Any:
        if a is None or b is None:
            return None
        if isinstance(a, dict):
            return {key: th.cat([a[key], b[key]]) for key in a}
        return th.cat([a, b])

    return type(online)(**{name: cat(getattr(online, name), getattr(demo, name)) for name in online._fields})


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


class UnsavedDemonstrations:
    """What a saved SWFP model's ``replay_buffer_kwargs`` hold in place of demonstrations given as an object
    (:class:`Demonstrations`, an SB3 replay buffer, imitation trajectories): the model's file keeps the
    buffer's arguments, not the data (SB3 saves a replay buffer apart, with ``save_replay_buffer``).

    A demonstration buffer built from it is built without demonstrations inside
    :func:`defer_missing_demonstrations` (``SWFP.load``), as for a file that is not found, and refused
    elsewhere.
    """

    def __init__(self, given: Any):
        size = f" of {len(given)} transitions" if isinstance(given, Demonstrations) else ""
        self.description = given.description if isinstance(given, UnsavedDemonstrations) else f"a {type(given).__name__}{size}"

    @property
    def missing(self) -> str:
        """What is missing, in words (a buffer built from this says it when the model is loaded)."""
        return f"{self.description}, given as an object and not saved with the model"

    def __repr__(self) -> str:
        return f"<{self.missing}>"


def unsaved(demonstrations: Any) -> Any:
    """``demonstrations`` as a saved model keeps them: a path or None as it is, an object as :class:`UnsavedDemonstrations`."""
    if demonstrations is None or isinstance(demonstrations, (str, os.PathLike)):
        return demonstrations
    return UnsavedDemonstrations(demonstrations)


def check_demonstrations_loaded(replay_buffer: Any) -> None:
    """Raise a FileNotFoundError when ``replay_buffer`` is a demonstration buffer loaded without its demonstrations."""
    missing = getattr(replay_buffer, "missing_demonstrations", None)
    if missing is not None:
        raise FileNotFoundError(
            f"this model's demonstration buffer was loaded without its demonstrations ({missing}), and "
            "training draws from them: load the model with replay_buffer_kwargs=dict(demonstrations=<path>) (SWFP "
            "keeps the saved demo_ratio; SAC and TD3 need it again), or restore a buffer saved with save_replay_buffer() "
            "with load_replay_buffer()"
        )


def check_demonstrations_env(replay_buffer: Any, env: Any) -> None:
    """Raise where ``replay_buffer``'s demonstrations were recorded on another env than ``env``'s id (what SWFP and
    RLPD check when they are built, given an env, or given a buffer)."""
    if hasattr(replay_buffer, "check_env"):
        replay_buffer.check_env(vec_env_id(env))


class DemoReplayBuffer(ReplayBuffer):
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
    :param n_steps: n-step returns for online and demonstration transitions alike (SB3's
        ``NStepReplayBuffer`` rule: rewards summed up to the first termination or truncation, batches
        carry ``discounts``); 1: one-step transitions.  ``SWFP(n_steps=...)`` sets it and ``gamma``;
        for SAC and TD3 pass both here, as for SB3's ``NStepReplayBuffer``.  Box observations only.
    :param gamma: Discount of the n-step returns (the algorithm's).
    """

    demo_buffer: DemonstrationBuffer | None

    def __new__(cls, *args: Any, **kwargs: Any):
        # Without arguments (unpickling: load_replay_buffer) the class is the one that was pickled
        if cls is DemoReplayBuffer and isinstance(_observation_space_argument(args, kwargs), spaces.Dict):
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
        n_steps: int = 1,
        gamma: float = 0.99,
    ):
        _check_n_steps(n_steps, isinstance(observation_space, spaces.Dict), optimize_memory_usage)
        self.n_steps, self.gamma = int(n_steps), gamma
        super().__init__(
            buffer_size,
            observation_space,
            action_space,
            device=device,
            n_envs=n_envs,
            optimize_memory_usage=optimize_memory_usage,
            handle_timeout_termination=handle_timeout_termination,
        )
        if not 0.0 <= demo_ratio <= 1.0:
            raise ValueError(f"demo_ratio must be in [0, 1] (the share of each batch drawn from demonstrations), got {demo_ratio}")
        self.demo_ratio = demo_ratio
        self.allow_env_mismatch = allow_env_mismatch
        # What was missing when a model was loaded without its demonstrations, in words (see defer_missing_demonstrations)
        self.missing_demonstrations: str | None = None
        try:
            if isinstance(demonstrations, UnsavedDemonstrations):
                raise FileNotFoundError(f"{demonstrations.missing}: give the demonstrations again")
            demos = as_demonstrations(demonstrations)
        except FileNotFoundError:
            if not _defer_missing.get():
                raise
            if isinstance(demonstrations, UnsavedDemonstrations):
                self.missing_demonstrations = demonstrations.missing
            else:
                self.missing_demonstrations = f"{os.fspath(demonstrations)!r} not found from {os.getcwd()!r}"
            self.demo_buffer, self.n_demonstrations, self.demonstrations_env_id = None, 0, None
            warnings.warn(
                f"the demonstrations of this model's replay buffer are missing ({self.missing_demonstrations}): the "
                "model is loaded without them. It predicts as saved; to train it, load it with "
                "replay_buffer_kwargs=dict(demonstrations=<path>) (SWFP keeps the saved demo_ratio), or call load_replay_buffer()",
                stacklevel=2,
            )
            return
        check_rewards(demos, allow_missing_rewards, "a demonstration replay buffer")
        self.n_demonstrations = len(demos)
        # Checked against the env by SWFP, which knows it (the buffer gets only the spaces)
        self.demonstrations_env_id: str | None = demos.metadata.get("env_id")
        self.demo_buffer = DemonstrationBuffer.from_demonstrations(
            demos,
            self.observation_space,
            self.action_space,  # type: ignore[arg-type]
            device=self.device,
            handle_timeout_termination=self.handle_timeout_termination,
            clip_actions=clip_actions,
        )
        self.use_n_steps(self.n_steps, self.gamma)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        # SB3's load_replay_buffer sets the device of the buffer it unpickled: the demonstrations follow it
        if name == "device" and getattr(self, "demo_buffer", None) is not None:
            self.demo_buffer.device = value

    def check_env(self, env_id: str | None) -> None:
        """Raise unless the demonstrations were recorded on ``env_id`` (or ``allow_env_mismatch`` was given)."""
        if self.demo_buffer is not None:
            check_env_id({"env_id": self.demonstrations_env_id}, env_id, self.allow_env_mismatch)

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> Any:
        """``round(demo_ratio * batch_size)`` demonstration transitions, the rest online ones.

        Before any online transition exists, the whole batch comes from the demonstrations.
        """
        check_demonstrations_loaded(self)
        n_online_stored = self.size()
        n_demo = batch_size if n_online_stored == 0 else int(round(self.demo_ratio * batch_size))
        if n_demo == 0:
            return super().sample(batch_size, env=env)
        demo = self.demo_buffer.sample(n_demo, env=env)  # type: ignore[union-attr]
        if n_demo == batch_size:
            return demo
        online = super().sample(batch_size - n_demo, env=env)
        return _concat_samples(online, demo)

    def use_n_steps(self, n_steps: int, gamma: float) -> None:
        """Sample n-step returns with ``n_steps`` and ``gamma`` from now on, online and demonstration
        transitions alike (SWFP passes its own when it builds or restores the buffer)."""
        _check_n_steps(n_steps, isinstance(self.observation_space, spaces.Dict), self.optimize_memory_usage)
        for buffer in (self, self.demo_buffer):
            if buffer is not None:
                buffer.n_steps, buffer.gamma = int(n_steps), gamma

    def add(self, obs: Any, next_obs: Any, action: np.ndarray, reward: np.ndarray, done: np.ndarray, infos: list[dict[str, Any]]) -> None:
        """As SB3's; with ``n_steps`` > 1 an env whose ``obs`` is not the next observation of its running episode's
        latest transition (the env was reset in between: SAC's or TD3's second ``learn()``) ends that episode first,
        so that no n-step return runs on across the reset (:func:`~sb3_swfp.demos.replay.truncate_last_transitions`)."""
        if self.n_steps > 1 and (self.full or self.pos > 0):
            last = (self.pos - 1) % self.buffer_size
            given = np.asarray(obs, dtype=self.next_observations.dtype).reshape(self.next_observations[last].shape)
            joined = np.any((self.next_observations[last] != given).reshape(self.n_envs, -1), axis=1)
            if joined.any():
                truncate_last_transitions(self, envs=joined)
        super().add(obs, next_obs, action, reward, done, infos)

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> Any:
        return _n_step_samples(self, batch_inds, env, super()._get_samples)

    def sample_demonstrations(self, batch_size: int, env: VecNormalize | None = None) -> Any:
        """A batch of demonstration transitions only (for the ``bc_coef`` term)."""
        check_demonstrations_loaded(self)
        return self.demo_buffer.sample(batch_size, env=env)  # type: ignore[union-attr]


class DemoDictReplayBuffer(DemoReplayBuffer, DictReplayBuffer):
    """:class:`DemoReplayBuffer` for ``Dict`` observations (same parameters).

    The method resolution order puts ``DictReplayBuffer`` under :class:`DemoReplayBuffer`, so the
    shared ``__init__`` builds a dict buffer here.
    """


__all__ = [
    "DemoDictReplayBuffer",
    "DemoReplayBuffer",
    "DemonstrationBuffer",
    "DemonstrationDictBuffer",
    "UnsavedDemonstrations",
    "check_demonstrations_env",
    "check_demonstrations_loaded",
    "defer_missing_demonstrations",
    "unsaved",
]
