"""Policy selection on the run's own returns (ours, beyond the paper): the policy ``predict`` returns is the last
copy of the learner whose episodes, played by that copy alone, returned at least as much as the kept one's.

The env is played in phases.  A phase's actor is a frozen copy of the learner's prior actor (Algorithm 1, line 15:
the actor SWFP acts with) taken when the phase begins; it collects with sampled actions, as SWFP always does, and
the learner (actor, prior, critics) trains on what it collects exactly as without selection: nothing the learner
learnt is ever put back.  A phase ends at the first episode end once it holds at least ``steps`` env steps; the
mean return of the episodes begun and ended in it measures its actor, which becomes the *kept* actor if that mean
is at or above the kept actor's (with a ``margin``, above it by at least ``margin`` standard errors of the difference
of the two means: :func:`keeps`).  The kept actor at first is the prior actor ``learn()`` started from, measured by
the first phase (so a behaviour-cloned start is measured before any change is kept).  ``predict`` answers with the
kept actor (evaluations see it), so a change whose own episodes returned less is never what the model answers with.

With ``deterministic`` the phase is measured as ``predict(..., deterministic=True)`` acts: its actor plays
``episodes`` whole episodes per env with deterministic actions first (their transitions are collected as any other),
their mean return measures it, and the phase then lasts at least ``steps`` env steps of sampled episodes.

:class:`PolicySelection` is the state (saved with the model); :class:`SelectionMixin` its hooks into SB3's off-policy
algorithm, mixed into ``SWFP``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback, ConvertCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import MaybeCallback
from stable_baselines3.common.vec_env import VecEnv, VecMonitor, is_vecenv_wrapped

#: No episode end for this many times ``steps`` or the longest episode (the env's time limit), whichever is
#: larger, is an error: the env's episodes do not end, so no return measures the phase's actor
MAX_PHASE_FACTOR = 20


class PolicySelection:
    """The selection's state, pickled with the model (``SWFP.save``): the two actors as CPU state dicts.

    :param steps: Least number of env steps (all envs together) of a phase.
    :param n_envs: Number of envs stepping together.
    :param start: State dict of the actor ``learn()`` starts from: the first phase's actor and the first kept one.
    :param time_limit: The env's ``max_episode_steps``, where it has one (how long a phase may wait for an episode end).
    :param deterministic: Measure each phase by ``episodes`` episodes per env played with deterministic actions (the
        rest of the phase, at least ``steps`` env steps, samples); otherwise by its sampled episodes.
    :param episodes: Deterministic episodes per env that measure a phase (with ``deterministic``); otherwise the least
        number of sampled episodes (all envs together) that must return before a phase can end.
    :param margin: Standard errors by which a phase's mean return must exceed the kept actor's for its actor to be
        kept (:func:`keeps`); 0: at or above it.

    With several envs a phase ends at the first episode end after ``steps`` env steps; episodes still under way in
    the other envs then are not counted (they began under another actor's phase or run on into the next).
    """

    def __init__(
        self,
        steps: int,
        n_envs: int,
        start: dict[str, th.Tensor],
        time_limit: int | None = None,
        deterministic: bool = False,
        episodes: int = 1,
        margin: float = 0.0,
    ):
        self.steps = steps
        self.deterministic = deterministic
        self.episodes = episodes
        self.margin = margin
        self.measuring = np.full(n_envs, deterministic)  # whether each env's running episode measures (deterministic actions)
        self.measured = np.zeros(n_envs, dtype=np.int64)  # how many measuring episodes of each env returned in this phase
        self.longest = time_limit or 0  # the longest episode seen, or the env's time limit
        self.phase_steps = 0
        self.quiet_steps = 0  # env steps since an episode last ended
        self.fresh = np.ones(n_envs, dtype=bool)  # whether each env's running episode began in this phase
        self.returns: list[float] = []
        self.candidate = _cpu(start)  # the phase's actor
        self.kept = self.candidate  # the actor predict answers with
        self.kept_returns: list[float] = []  # the returns that measured the kept actor (none before the first phase)
        self.n_phases = 0
        self.n_kept = 0
        self._modules: dict[str, tuple[dict[str, th.Tensor], th.nn.Module]] = {}  # built from which state

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_modules": {}}  # the modules are rebuilt from the state dicts

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        reference = self.__dict__.pop("reference", None)  # saved before kept_returns: the kept mean alone
        if "deterministic" not in state:  # saved before the option: sampled measures
            self.deterministic = False
            self.measuring = np.zeros(self.fresh.size, dtype=bool)
            self.measured = np.zeros(self.fresh.size, dtype=np.int64)
        elif "episodes" not in state:  # saved before the option: ``measured`` flagged a measuring episode begun
            self.measured = np.asarray(self.measured & ~self.measuring, dtype=np.int64)
        if "episodes" not in state:
            self.episodes = 1
        if "margin" not in state:  # saved before the option: kept at or above; its kept mean stands for its returns
            self.margin = 0.0
            self.kept_returns = [] if reference is None else [reference]

    def measure_deterministic(self, deterministic: bool) -> None:
        """Change how phases are measured (``load(..., selection_deterministic=...)``): the running phase's returns so far,
        measured the other way, are dropped, and each env's next episode measures."""
        if deterministic == self.deterministic:
            return
        self.deterministic = deterministic
        self.returns = []
        self.measuring = np.zeros(self.fresh.size, dtype=bool)
        self.measured = np.zeros(self.fresh.size, dtype=np.int64)

    def actor(self, which: str, like: th.nn.Module) -> th.nn.Module:
        """The ``"candidate"`` or ``"kept"`` actor as a module shaped as ``like`` (the model's prior actor), on its device."""
        state = getattr(self, which)
        cached = self._modules.get(which)
        if cached is None or cached[0] is not state:  # a new candidate, or a change kept, since it was built
            module = copy.deepcopy(like)
            module.load_state_dict(state)
            self._modules[which] = cached = (state, module)
        return cached[1]

    def episodes_restarted(self, n_envs: int) -> None:
        """Every one of ``n_envs`` envs has just been reset (``learn()`` with ``reset_num_timesteps``)."""
        self.fresh = np.ones(n_envs, dtype=bool)
        if self.measured.size != n_envs:
            self.measured = np.zeros(n_envs, dtype=np.int64)
        self.measuring = self.deterministic & (self.measured < self.episodes)  # a measuring episode cut short measures again

    def step(
        self, infos: list[dict[str, Any]], dones: np.ndarray, learner: Callable[[], dict[str, th.Tensor]], random: bool = False
    ) -> None:
        """Advance by one step of the envs, whose episodes that end now (``dones``) carry their return in Monitor's
        ``info["episode"]``; where the phase ends, decide and begin the next with the state ``learner()`` returns
        (read only then: this runs at every env step).  ``random``: the envs acted with uniform random actions
        (before ``learning_starts``), so the step measures no actor: it is not counted, nor the episodes it was part of."""
        dones = np.asarray(dones, dtype=bool)
        if random:
            self.fresh[:] = False
        elif self.deterministic:
            self.phase_steps += int(np.count_nonzero(~self.measuring))
        else:
            self.phase_steps += dones.size
        self.quiet_steps += dones.size
        self._observe(infos, dones)
        if self.phase_steps >= self.steps and np.any(dones) and len(self.returns) >= (1 if self.deterministic else self.episodes):
            self._decide()
            self.candidate = _cpu(learner())
            self.phase_steps = 0
            self.returns = []
            self.fresh = dones.copy()  # an env whose episode ended now begins one in this phase
            self.measuring = self.deterministic & dones  # and measures it; the others measure their next one
            self.measured = np.zeros(dones.size, dtype=np.int64)
        elif self.quiet_steps > MAX_PHASE_FACTOR * max(self.steps, self.longest):
            raise RuntimeError(
                f"selection_steps={self.steps}: no episode ended within {self.quiet_steps} env steps, so no return measures "
                "the actor.  Give the env a time limit (gymnasium's TimeLimit), or selection_steps=0"
            )

    def _observe(self, infos: list[dict[str, Any]], dones: np.ndarray) -> None:
        """Record the return of each episode that ends now, began in this phase and measures it; choose how each
        env's next episode acts."""
        for index in np.flatnonzero(dones):
            self.quiet_steps = 0
            episode = infos[index].get("episode")
            if episode is None:
                raise ValueError(
                    "selection_steps needs each episode's return: wrap the env in stable_baselines3.common.monitor.Monitor "
                    "(make_vec_env and SB3's own wrapping of a single env do)"
                )
            self.longest = max(self.longest, int(episode["l"]))
            if self.fresh[index] and (self.measuring[index] or not self.deterministic):
                self.returns.append(float(episode["r"]))
                self.measured[index] += self.measuring[index]
            self.fresh[index] = True
            # An env measures until ``episodes`` of its measuring episodes returned (one that began under the uniform
            # warm-up or in an earlier phase returns nothing)
            self.measuring[index] = self.deterministic and self.measured[index] < self.episodes

    def _decide(self) -> None:
        self.n_phases += 1
        if not self.kept_returns or keeps(self.returns, self.kept_returns, self.margin):
            self.kept, self.kept_returns = self.candidate, list(self.returns)
            self.n_kept += 1

    @property
    def reference(self) -> float | None:
        """Mean return of the kept actor's phase; None before the first phase has measured the start."""
        return float(np.mean(self.kept_returns)) if self.kept_returns else None

    def record(self, logger: Any) -> None:
        """Log the phases decided, the changes kept, the kept actor's mean return."""
        logger.record("selection/phases", self.n_phases)
        logger.record("selection/kept", self.n_kept)
        if self.reference is not None:
            logger.record("selection/kept_return", self.reference)


def keeps(returns: list[float], kept_returns: list[float], margin: float = 0.0) -> bool:
    """Whether a phase whose actor returned ``returns`` replaces the kept actor, measured by ``kept_returns``: its
    mean is at or above the kept one's by ``margin`` standard errors of the difference of the two means,
    ``sqrt(s_c**2 / n_c + s_k**2 / n_k)`` with ``s`` the sample standard deviation (a side of one return adds
    nothing: it has none).  ``margin=0``: at or above, however small the difference and however few the returns."""
    difference = float(np.mean(returns)) - float(np.mean(kept_returns))
    if margin == 0:
        return difference >= 0
    error = sum(float(np.var(side, ddof=1)) / len(side) for side in (returns, kept_returns) if len(side) > 1)
    return difference >= margin * float(np.sqrt(error))


class SelectionMixin:
    """The selection's hooks into SB3's off-policy algorithm, for one whose policy acts with ``policy.actor_target``
    (SWFP's prior actor) and which sets ``selection_steps`` (0: off), ``selection_deterministic``,
    ``selection_episodes``, ``selection_margin``, ``selection`` (None), ``_collecting`` and ``_random_actions`` (False) in its constructor.
    Put before the SB3 class: ``predict`` answers with the kept actor (the phase's actor while collecting), each env
    step advances the phase (before the user's callbacks of that step), and ``learn()`` restarts the phases'
    episodes where it resets the env."""

    def _setup_learn(self, total_timesteps: int, callback: Any = None, reset_num_timesteps: bool = True,
                     tb_log_name: str = "run", progress_bar: bool = False) -> tuple[int, Any]:  # fmt: skip
        restarts = reset_num_timesteps or self._last_obs is None  # read before SB3 resets the env
        total_timesteps, callback = super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)
        self._setup_selection(restarts)
        return total_timesteps, callback

    def _setup_selection(self, restarts: bool) -> None:
        if self.selection_steps == 0:
            self.selection = None  # load(..., selection_steps=0) ends a saved model's selection
            return
        check_monitored(self.env)
        if self.selection is None:  # made at the first env step: BCPretrainCallback clones after this
            return
        self.selection.steps = self.selection_steps  # load(..., selection_steps=...) changes the phases' length
        self.selection.measure_deterministic(self.selection_deterministic)
        self.selection.episodes = self.selection_episodes
        self.selection.margin = self.selection_margin
        if restarts or self.selection.fresh.size != self.n_envs:
            self.selection.episodes_restarted(self.n_envs)

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """As SB3's; with ``selection_steps`` the kept actor answers (the phase's actor while collecting)."""
        if not self._selecting:
            return super().predict(observation, state, episode_start, deterministic)
        actor = self.selection.actor("candidate" if self._collecting else "kept", self.policy.actor_target)
        prior = self.policy.actor_target
        self.policy.actor_target = actor  # the policy acts with its prior actor
        try:
            measuring = self.selection.measuring if self._collecting and self.selection.deterministic else None
            if measuring is None or not measuring.any():
                return super().predict(observation, state, episode_start, deterministic)
            if measuring.all():
                return super().predict(observation, state, episode_start, True)
            sampled, state = super().predict(observation, state, episode_start, deterministic)  # each env as it acts now
            measured, _ = super().predict(observation, None, episode_start, True)
            return np.where(measuring.reshape(-1, *([1] * (sampled.ndim - 1))), measured, sampled), state
        finally:
            self.policy.actor_target = prior

    @property
    def _selecting(self) -> bool:
        """Whether the selection's actors answer ``predict`` (not after ``load(..., selection_steps=0)``)."""
        return self.selection is not None and self.selection_steps > 0

    def selected_policy(self) -> BasePolicy:
        """A copy of the policy that answers as :meth:`predict` does: with ``selection_steps``, its prior actor is the
        kept one (``model.policy`` stays the learner).  For what takes a policy alone: ``policy.save``, an export."""
        policy = copy.deepcopy(self.policy)
        if self._selecting:
            policy.actor_target.load_state_dict(self.selection.kept)
        return policy

    def _sample_action(self, learning_starts: int, action_noise: ActionNoise | None = None, n_envs: int = 1) -> tuple[np.ndarray, np.ndarray]:
        if self.selection_steps > 0 and self.selection is None:  # the first phase: the actor learn() starts from
            self.selection = PolicySelection(
                self.selection_steps, self.n_envs, self.policy.actor_target.state_dict(), time_limit(self.env),
                self.selection_deterministic, self.selection_episodes, self.selection_margin,
            )
        self._collecting = True  # predict, called by SB3's _sample_action: the phase's actor acts
        self._random_actions = self.num_timesteps < learning_starts  # SB3 samples the action space then
        try:
            return super()._sample_action(learning_starts, action_noise, n_envs)
        finally:
            self._collecting = False

    def _init_callback(self, callback: MaybeCallback, progress_bar: bool = False) -> BaseCallback:
        # The phase advances before the user's callbacks: an evaluation at the step a phase ends answers with that
        # step's decision, as predict does once learn() returns
        if self.selection_steps > 0:
            if callback is not None and not isinstance(callback, (list, BaseCallback)):
                callback = ConvertCallback(callback)
            callback = [SelectionStep(), *(callback if isinstance(callback, list) else [] if callback is None else [callback])]
        return super()._init_callback(callback, progress_bar)


class SelectionStep(BaseCallback):
    """Advances the model's selection by the env step SB3 has just taken (its ``infos`` and ``dones``); the first of
    the callbacks ``learn()`` calls, put there by :class:`SelectionMixin`."""

    def _on_step(self) -> bool:
        if self.model.selection is not None:
            self.model.selection.step(
                self.locals["infos"], self.locals["dones"], self.model.policy.actor_target.state_dict, random=self.model._random_actions
            )
        return True


def check_monitored(env: VecEnv | None) -> None:
    """Raise where ``env``'s episodes carry no return (``info["episode"]``): neither every env in ``Monitor`` nor
    the VecEnv in ``VecMonitor``."""
    if env is None or all(env.env_is_wrapped(Monitor)) or is_vecenv_wrapped(env, VecMonitor):
        return
    raise ValueError(
        "selection_steps needs each episode's return: wrap every env in stable_baselines3.common.monitor.Monitor "
        "(make_vec_env does) or the VecEnv in VecMonitor, or selection_steps=0"
    )


def time_limit(env: VecEnv | None) -> int | None:
    """The longest ``max_episode_steps`` of the envs' specs, where they have one."""
    try:
        specs = env.get_attr("spec") if env is not None else []
    except AttributeError:
        return None
    limits = [spec.max_episode_steps for spec in specs if spec is not None and spec.max_episode_steps]
    return max(limits) if limits else None


def _cpu(state: dict[str, th.Tensor]) -> dict[str, th.Tensor]:
    return {key: value.detach().to("cpu", copy=True) for key, value in state.items()}
