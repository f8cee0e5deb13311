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
#: A test without a whole episode after this many times ``steps`` env steps is an error: the env's episodes do not end
MAX_TEST_FACTOR = 20


class ReturnGuard:
    """The guard's state; :class:`~sb3_swfp.SWFP` calls it after every env step and asks it whether the actor may move.

    :param steps: Env steps of each improve phase, and the least number of env steps (in whole episodes) of each test.
    :param n_envs: Number of envs stepping together.
    """

    def __init__(self, steps: int, n_envs: int):
        self.steps = steps
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
            if episode is None:
                raise ValueError(
                    "guard_steps needs each episode's return: wrap the env in stable_baselines3.common.monitor.Monitor "
                    "(make_vec_env and SB3's own wrapping of a single env do)"
                )
            if self.fresh[index] and self.phase == "test":
                self.returns.append(float(episode["r"]))
                self.lengths.append(int(episode["l"]))
            self.fresh[index] = True

    def step(self, model: Any, n_envs: int) -> None:
        """Advance by one env step of ``n_envs`` envs; change phase, keep or restore the actor where one ends."""
        self.phase_steps += n_envs
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
                self._begin("improve" if left >= self.steps + 2 * self.last_test_steps else "hold")
            elif left <= n_envs and self.kept is not None:
                self._restore(model)
                self._begin("hold")
            elif self.phase_steps > MAX_TEST_FACTOR * self.steps and not self.lengths:
                raise RuntimeError(
                    f"guard_steps={self.steps}: no episode ended within {self.phase_steps} env steps of a test, so "
                    "no return measures the actor.  Give the env a time limit (gymnasium's TimeLimit), or guard_steps=0"
                )
        elif left >= self.steps + 2 * self.last_test_steps and self.kept is not None:  # learn() was given more steps
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
    """Copies of the actor's, its target's and its optimizer's states."""
    clone = lambda state: {key: value.detach().clone() if isinstance(value, th.Tensor) else value for key, value in state.items()}  # noqa: E731
    return {
        "actor": clone(model.actor.state_dict()),
        "actor_target": clone(model.actor_target.state_dict()),
        "optimizer": copy.deepcopy(model.actor.optimizer.state_dict()),
    }


__all__ = ["ReturnGuard"]
