"""Replay buffers that mix demonstrations into every batch (RLPD-style balanced sampling)."""

from __future__ import annotations

import os
from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.vec_env import VecNormalize

from sb3_swfp.common.demos import Demonstrations, load_demonstrations, make_replay_buffer


def as_demonstrations(demonstrations: str | os.PathLike | Demonstrations | None) -> Demonstrations:
    """A :class:`Demonstrations` object from itself or from the path of an ``.npz`` file."""
    if demonstrations is None:
        raise ValueError("demonstrations are required: pass a Demonstrations object or the path of a .npz file")
    if isinstance(demonstrations, Demonstrations):
        return demonstrations
    return load_demonstrations(demonstrations)


#: A demonstrations path may contain this field; it is replaced by the env's gymnasium id
ENV_ID_FIELD = "{env_id}"


def with_env_id(demonstrations: Any, env: Any) -> Any:
    """``demonstrations`` with :data:`ENV_ID_FIELD` replaced by the id of ``env`` (an env or a VecEnv) when it is
    a path that contains it (``demos/{env_id}.npz``, as the zoo's default entry names them); otherwise unchanged.

    :raises ValueError: The path has the field and the env has no gymnasium id (``env.spec``).
    """
    if not isinstance(demonstrations, (str, os.PathLike)) or ENV_ID_FIELD not in os.fspath(demonstrations):
        return demonstrations
    spec = env.get_attr("spec", indices=[0])[0] if hasattr(env, "get_attr") else getattr(env, "spec", None)
    if spec is None:
        raise ValueError(
            f"the demonstrations path {os.fspath(demonstrations)!r} contains {ENV_ID_FIELD}, but the env has no "
            "gymnasium id (env.spec is None): make it with gymnasium.make, or give the path itself"
        )
    return os.fspath(demonstrations).replace(ENV_ID_FIELD, spec.id)


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

    demo_buffer: ReplayBuffer
    demo_ratio: float

    def _setup_demos(self, demonstrations: Any, demo_ratio: float, clip_actions: bool) -> None:
        if not 0.0 <= demo_ratio <= 1.0:
            raise ValueError(f"demo_ratio must be in [0, 1] (the share of each batch drawn from demonstrations), got {demo_ratio}")
        demos = as_demonstrations(demonstrations)
        self.demo_ratio = demo_ratio
        self.n_demonstrations = len(demos)
        self.demo_buffer = make_replay_buffer(
            demos,
            self.observation_space,  # type: ignore[attr-defined]
            self.action_space,  # type: ignore[attr-defined]
            device=self.device,  # type: ignore[attr-defined]
            handle_timeout_termination=self.handle_timeout_termination,  # type: ignore[attr-defined]
            clip_actions=clip_actions,
        )

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> Any:
        """``round(demo_ratio * batch_size)`` demonstration transitions, the rest online ones.

        Before any online transition exists, the whole batch comes from the demonstrations.
        """
        n_online_stored = self.size()  # type: ignore[attr-defined]
        n_demo = batch_size if n_online_stored == 0 else int(round(self.demo_ratio * batch_size))
        if n_demo == 0:
            return super().sample(batch_size, env=env)  # type: ignore[misc]
        demo = self.demo_buffer.sample(n_demo, env=env)
        if n_demo == batch_size:
            return demo
        online = super().sample(batch_size - n_demo, env=env)  # type: ignore[misc]
        return _concat_samples(online, demo)

    def sample_demonstrations(self, batch_size: int, env: VecNormalize | None = None) -> Any:
        """A batch of demonstration transitions only (for the ``bc_coef`` term)."""
        return self.demo_buffer.sample(batch_size, env=env)


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
    :param demonstrations: :class:`Demonstrations` or the path of an ``.npz`` file; validated
        against the spaces (actions in the env's action space).
    :param demo_ratio: Share of each batch drawn from the demonstrations, in [0, 1].
    :param clip_actions: Clip out-of-bounds demonstration actions instead of raising.
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
        demonstrations: str | os.PathLike | Demonstrations | None = None,
        demo_ratio: float = 0.5,
        clip_actions: bool = False,
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
        self._setup_demos(demonstrations, demo_ratio, clip_actions)


class DemoDictReplayBuffer(DemoReplayBuffer, DictReplayBuffer):
    """:class:`DemoReplayBuffer` for ``Dict`` observations (same parameters).

    The method resolution order puts ``DictReplayBuffer`` under :class:`DemoReplayBuffer`, so the
    shared ``__init__`` builds a dict buffer here.
    """


__all__ = ["ENV_ID_FIELD", "DemoDictReplayBuffer", "DemoReplayBuffer", "as_demonstrations", "with_env_id"]

