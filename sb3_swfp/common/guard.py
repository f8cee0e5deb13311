"""The return guard (ours, beyond the paper): fine-tuning keeps an actor only where the online returns say it is
not worse than the one it replaces.

The actor alternates between two phases.  *Improve*: ``steps`` env steps of JKO updates.  *Test*: the actor is
frozen and acts deterministically (``x_0 = 0``, as ``predict(deterministic=True)``), the critic keeps learning,
until whole episodes begun in the test hold at least ``steps`` env steps.  The tested actor is kept if its mean
test return is at or above the last kept actor's; otherwise the last kept actor comes back, with its target
and its optimizer's state.  The first test is the starting (behaviour-cloned) actor's.  An improve phase starts
only while the budget left holds it and twice the last test; a test that the budget cuts short keeps the last
kept actor.  So the actor a run ends with is one whose own returns were measured.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch as th

#: Phases of the guard: ``test`` (actor frozen, deterministic actions), ``improve`` (actor updates), ``hold``
#: (actor frozen, the budget left cannot test another change)
PHASES = ("test", "improve", "hold")
#: A test in which no episode has ended after this many times ``steps``, the longest episode seen and the env's time
#: limit (the largest of them) is an error: the env's episodes do not end
MAX_TEST_FACTOR = 20


class ReturnGuard:
    """The guard's state; :class:`~sb3_swfp.SWFP` calls it after every env step and asks it whether the actor may move.

    :param steps: Env steps of each improve phase, and the least number of env steps (in whole episodes) of each test.
    :param n_envs: Number of envs stepping together.
    :param time_limit: The env's ``max_episode_steps``, where it has one.

    With several envs a test ends once the episodes that ended in it hold ``steps`` env steps; episodes still
    under way in other envs then are not counted.
    """

    def __init__(self, steps: int, n_envs: int, time_limit: int | None = None):
        self.steps = steps
        self.longest = time_limit or 0  # the longest episode seen, or the env's time limit
        self.quiet_steps = 0  # env steps since an episode last ended
        self.phase = "test"
        self.phase_steps = 0  # env steps (all envs) since the phase began
        self.fresh = np.ones(n_envs, dtype=bool)  # whether each env's episode began in this phase
        self.ended = np.zeros(n_envs, dtype=bool)  # whether each env's episode ended at the last step
        self.returns: list[float] = []
        self.lengths: list[int] = []
        self.reference: float | None = None  # mean test return of the kept actor
        self.last_test_steps = steps
        self.kept: dict[str, Any] | None = None
        self.n_kept = 0
        self.n_restored = 0

    @property
    def testing(self) -> bool:
        """Whether the actor acts deterministically now."""
        return self.phase == "test"

    @property
    def actor_may_move(self) -> bool:
        """Whether the actor may take a JKO step now."""
        return self.phase == "improve"

    def episodes_restarted(self, n_envs: int) -> None:
        """Every one of ``n_envs`` envs has just been reset: each episode begins now."""
        self.fresh = np.ones(n_envs, dtype=bool)
        self.ended = np.zeros(n_envs, dtype=bool)

    def observe(self, infos: list[dict[str, Any]], dones: np.ndarray) -> None:
        """Record the return of each episode that ends now and began in this phase (Monitor's ``info["episode"]``)."""
        self.ended = np.asarray(dones, dtype=bool).copy()
        for index, done in enumerate(dones):
            if not done:
                continue
            episode = infos[index].get("episode")
            self.quiet_steps = 0
            if episode is None:
                raise ValueError(
                    "guard_steps needs each episode's return: wrap the env in stable_baselines3.common.monitor.Monitor "
                    "(make_vec_env and SB3's own wrapping of a single env do)"
                )
            self.longest = max(self.longest, int(episode["l"]))
            if self.fresh[index] and self.phase == "test":
                self.returns.append(float(episode["r"]))
                self.lengths.append(int(episode["l"]))
            self.fresh[index] = True

    def step(self, model: Any, n_envs: int) -> None:
        """Advance by one env step of ``n_envs`` envs; change phase, keep or restore the actor where one ends."""
        self.phase_steps += n_envs
        self.quiet_steps += n_envs
        left = model._total_timesteps - model.num_timesteps
        if self.phase == "improve":
            if left <= n_envs:  # the budget ends before this change is tested
                self._restore(model)
                self._begin("hold")
            elif self.phase_steps >= self.steps:
                self._begin("test")
        elif self.phase == "test":
            if sum(self.lengths) >= self.steps:
                self._decide(model)
                self._begin("improve" if self.can_improve(left) else "hold")
            elif left <= n_envs and self.kept is not None:
                self._restore(model)
                self._begin("hold")
            elif self.quiet_steps > MAX_TEST_FACTOR * max(self.steps, self.longest):
                raise RuntimeError(
                    f"guard_steps={self.steps}: no episode ended within {self.quiet_steps} env steps of a test, so "
                    "no return measures the actor.  Give the env a time limit (gymnasium's TimeLimit), or guard_steps=0"
                )
        elif self.can_improve(left) and self.kept is not None:  # learn() was given more steps
            self._begin("improve")

    def _decide(self, model: Any) -> None:
        mean = float(np.mean(self.returns))
        self.last_test_steps = self.phase_steps
        if self.reference is None or mean >= self.reference:
            self.reference = mean
            self.kept = _state(model)
            self.n_kept += 1
        else:
            self._restore(model)

    def can_improve(self, left: int) -> bool:
        """Whether ``left`` env steps hold an improve phase and twice the last test."""
        return left >= self.steps + 2 * self.last_test_steps

    def end(self, model: Any) -> None:
        """``learn()`` ends (its budget, a callback, an error): an actor changed since the last kept one is not kept."""
        if self.phase != "hold" and self.kept is not None:
            self._restore(model)
            self._begin("hold")

    def _restore(self, model: Any) -> None:
        if self.kept is None:
            return
        model.actor.load_state_dict(self.kept["actor"])
        model.actor_target.load_state_dict(self.kept["actor_target"])
        model.actor.optimizer.load_state_dict(copy.deepcopy(self.kept["optimizer"]))
        self.n_restored += 1

    def _begin(self, phase: str) -> None:
        self.phase = phase
        self.phase_steps = 0
        self.returns, self.lengths = [], []
        self.fresh = self.ended.copy()  # an episode that ended at this step is followed by one begun in the new phase

    def record(self, logger: Any) -> None:
        """Log the phase, the kept actor's test return and the counts (``guard/`` keys)."""
        logger.record("guard/phase", PHASES.index(self.phase))
        if self.reference is not None:
            logger.record("guard/kept_return", self.reference)
        logger.record("guard/n_kept", self.n_kept)
        logger.record("guard/n_restored", self.n_restored)


def _state(model: Any) -> dict[str, Any]:
    """Copies of the actor's, its target's and its optimizer's states, on the CPU: a model saved with its guard on a
    GPU loads on a machine without one (``load_state_dict`` moves them back to the model's device)."""
    optimizer = model.actor.optimizer.state_dict()
    return {
        "actor": _on_cpu(model.actor.state_dict()),
        "actor_target": _on_cpu(model.actor_target.state_dict()),
        "optimizer": {**optimizer, "state": {key: _on_cpu(value) for key, value in optimizer["state"].items()}},
    }


def _on_cpu(state: dict[str, Any]) -> dict[str, Any]:
    return {key: value.detach().to("cpu", copy=True) if isinstance(value, th.Tensor) else copy.deepcopy(value) for key, value in state.items()}


__all__ = ["ReturnGuard"]
