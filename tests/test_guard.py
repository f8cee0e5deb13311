"""The return guard: its phases in closed form, what it keeps and restores, and SWFP with it (frozen, deterministic
tests; save/load; the errors of an env it cannot measure)."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback, StopTrainingOnMaxEpisodes
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

from sb3_swfp import SWFP
from sb3_swfp.common.guard import ReturnGuard

from helpers import TINY


class StubModel:
    """What the guard touches of SWFP: an actor, its target and optimizer, and the step counts."""

    def __init__(self, total: int):
        self.actor = th.nn.Linear(2, 2)
        self.actor_target = th.nn.Linear(2, 2)
        self.actor.optimizer = th.optim.Adam(self.actor.parameters(), lr=0.1)
        self._total_timesteps = total
        self.num_timesteps = 0


def drive(guard, model, episode_length, episode_return, move=None):
    """Step one env until the budget ends; episodes return ``episode_return(model)`` at their end; ``move(model)``
    changes the actor at every step the guard lets it.  Returns the (step, phase) at each change of phase."""
    phases, step_in_episode = [], 0
    while model.num_timesteps < model._total_timesteps:
        model.num_timesteps += 1
        step_in_episode += 1
        done = step_in_episode == episode_length(model)
        infos = [{"episode": {"r": episode_return(model), "l": step_in_episode}} if done else {}]
        step_in_episode = 0 if done else step_in_episode
        before = guard.phase
        guard.observe(infos, np.array([done]))
        guard.step(model, 1)
        if guard.phase != before:
            phases.append((model.num_timesteps, guard.phase))
        if guard.actor_may_move and move is not None:
            move(model)
    return phases


def bias(model):
    return float(model.actor.bias.detach().sum())


def test_phases_in_closed_form():
    """Episodes of 10 steps, 20-step phases, a budget of 200: each test holds the two episodes begun in it; an improve
    phase starts while 20 + 2 x 20 steps are left."""
    guard, model = ReturnGuard(20, 1), StubModel(200)
    phases = drive(guard, model, lambda model: 10, bias)
    assert phases == [(20, "improve"), (40, "test"), (60, "improve"), (80, "test"), (100, "improve"), (120, "test"),
                      (140, "improve"), (160, "test"), (180, "hold")]  # fmt: skip
    assert guard.n_kept == 5 and guard.n_restored == 0  # an unchanged actor ties its own return: kept


def test_a_test_waits_for_the_episodes_begun_in_it():
    """Episodes of 15 steps: the first test holds two (30 steps); the one begun at step 50 skips the episode under way (46-60) and ends after two more."""
    guard, model = ReturnGuard(20, 1), StubModel(150)
    phases = drive(guard, model, lambda model: 15, bias)
    assert phases == [(30, "improve"), (50, "test"), (90, "hold")]  # then 60 steps left: not 20 + 2 x 40
    assert guard.last_test_steps == 40


def test_a_better_actor_is_kept_and_a_worse_one_replaced_by_the_kept_one_exactly():
    """Episodes return the actor's bias: Adam steps up it are kept; steps down are undone, weights and optimizer state."""
    guard, model = ReturnGuard(20, 1), StubModel(200)
    direction = {"sign": 1.0}

    def move(model):
        model.actor.optimizer.zero_grad()
        (-direction["sign"] * model.actor.bias.sum()).backward()
        model.actor.optimizer.step()

    drive(guard, model, lambda model: 10, bias, move)
    assert guard.n_kept == 5 and guard.n_restored == 0 and guard.phase == "hold"
    kept = {key: value.clone() for key, value in model.actor.state_dict().items()}
    kept_adam_steps = float(model.actor.optimizer.state_dict()["state"][1]["step"])
    assert kept_adam_steps == 80 and guard.reference == pytest.approx(bias(model))

    model._total_timesteps += 200  # learn() given more steps: the guard improves again, now downhill
    direction["sign"] = -1.0
    drive(guard, model, lambda model: 10, bias, move)
    assert guard.n_kept == 5 and guard.n_restored == 4
    assert all(th.equal(value, kept[key]) for key, value in model.actor.state_dict().items())
    assert float(model.actor.optimizer.state_dict()["state"][1]["step"]) == kept_adam_steps
    assert guard.reference == pytest.approx(bias(model))


def test_a_test_the_budget_cuts_short_gives_back_the_kept_actor_before_the_last_step():
    """After step 20 episodes last 100 steps: the test begun at step 40 cannot finish within the budget of 100."""
    guard, model = ReturnGuard(20, 1), StubModel(100)

    def move(model):
        with th.no_grad():
            model.actor.bias += 0.01

    start = bias(model)
    phases = drive(guard, model, lambda model: 10 if model.num_timesteps <= 20 else 100, bias, move)
    assert phases == [(20, "improve"), (40, "test"), (99, "hold")]
    assert bias(model) == pytest.approx(start) and guard.n_restored == 1


def test_an_env_whose_episodes_do_not_end_is_an_error():
    guard, model = ReturnGuard(5, 1), StubModel(1000)
    with pytest.raises(RuntimeError, match="no episode ended within 101 env steps of a test.*TimeLimit"):
        drive(guard, model, lambda model: 10_000, bias)


def test_an_episode_without_monitors_return_is_an_error():
    guard = ReturnGuard(5, 1)
    with pytest.raises(ValueError, match="wrap the env in stable_baselines3.common.monitor.Monitor"):
        guard.observe([{}], np.array([True]))


class Watch(BaseCallback):
    """Per env step, before SWFP's own step: the phase the action was taken in, whether the action was the
    deterministic one, and a copy of the actor's weights."""

    def _init_callback(self):
        self.seen = []

    def _on_step(self):
        guard = self.model.guard
        deterministic, _ = self.model.predict(self.model._last_obs, deterministic=True)
        weights = th.cat([p.detach().flatten() for p in self.model.actor.parameters()]).clone()
        self.seen.append((guard.phase, np.allclose(self.locals["actions"], deterministic), weights))
        return True


def short_pendulum(n_envs=1):
    return make_vec_env("Pendulum-v1", n_envs=n_envs, env_kwargs=dict(max_episode_steps=10), seed=0)


def test_swfp_tests_with_a_frozen_deterministic_actor_and_ends_with_the_kept_one():
    model = SWFP("FlowPolicy", short_pendulum(), **{**TINY, "learning_starts": 0}, policy_delay=1, guard_steps=20, seed=0)
    watch = Watch()
    model.learn(200, callback=watch)
    phases = [phase for phase, _, _ in watch.seen]
    assert phases[:20] == ["test"] * 20 and "improve" in phases and phases[-1] == "hold"
    assert all(deterministic for phase, deterministic, _ in watch.seen if phase == "test")
    assert not all(deterministic for phase, deterministic, _ in watch.seen if phase == "improve")  # sampled there
    # the actor moves in improve phases only; a test ends with its decision (kept, or the kept actor back)
    for (phase, _, weights), (following_phase, _, following) in zip(watch.seen, watch.seen[1:]):
        if phase == following_phase == "test":
            assert th.equal(weights, following)
    moved = [not th.equal(w, f) for (phase, _, w), (_, _, f) in zip(watch.seen, watch.seen[1:]) if phase == "improve"]
    assert any(moved)
    kept = model.guard.kept["actor"]
    assert all(th.equal(value, kept[key]) for key, value in model.actor.state_dict().items())


def test_swfp_guard_counts_episodes_of_every_env():
    model = SWFP("FlowPolicy", short_pendulum(n_envs=2), **{**TINY, "learning_starts": 0}, guard_steps=20, seed=0)
    watch = Watch()
    model.learn(40, callback=watch)  # 2 envs, 10-step episodes: the first test ends with one episode of each (20 steps)
    phases = [phase for phase, _, _ in watch.seen]
    assert phases == ["test"] * 10 + ["hold"] * 10 and model.guard.n_kept == 1 and model.guard.last_test_steps == 20


def test_guard_survives_save_and_load(tmp_path):
    model = SWFP("FlowPolicy", short_pendulum(), **{**TINY, "learning_starts": 0}, guard_steps=20, seed=0).learn(90)
    model.save(tmp_path / "model")
    loaded = SWFP.load(tmp_path / "model", env=short_pendulum())
    for name in ("phase", "reference", "n_kept", "n_restored", "last_test_steps"):
        assert getattr(loaded.guard, name) == getattr(model.guard, name), name
    assert all(th.equal(value, model.guard.kept["actor"][key]) for key, value in loaded.guard.kept["actor"].items())
    loaded.learn(100, reset_num_timesteps=False)  # hold until 20 + 2 x 20 steps are left
    assert loaded.guard.n_kept + loaded.guard.n_restored > model.guard.n_kept + model.guard.n_restored
    assert SWFP.load(tmp_path / "model", env=short_pendulum(), guard_steps=0).learn(10).guard is None


def test_a_callback_that_stops_learning_leaves_the_kept_actor():
    model = SWFP("FlowPolicy", short_pendulum(), **{**TINY, "learning_starts": 0}, guard_steps=20, seed=0)
    model.learn(1000, callback=StopTrainingOnMaxEpisodes(5))  # stops at step 50, in the test of a changed actor
    assert model.num_timesteps == 50 and model.guard.phase == "hold"
    kept = model.guard.kept["actor"]
    assert all(th.equal(value, kept[key]) for key, value in model.actor.state_dict().items())


def test_a_learn_call_too_short_to_test_a_change_says_so():
    model = SWFP("FlowPolicy", short_pendulum(), **{**TINY, "learning_starts": 0}, guard_steps=20, seed=0).learn(30)
    with pytest.warns(UserWarning, match="this learn\\(\\) call's 30 steps cannot hold a change of the actor and its test"):
        model.learn(30, reset_num_timesteps=False)
    assert model.guard.n_kept == 1 and model.guard.phase == "hold"


def test_long_episodes_are_waited_for_and_vec_monitor_counts():
    """200-step episodes and guard_steps=5: a test begun mid-episode waits up to two episodes, no error."""
    env = VecMonitor(DummyVecEnv([lambda: gym.make("Pendulum-v1", max_episode_steps=200)]))
    model = SWFP("FlowPolicy", env, **{**TINY, "learning_starts": 0}, guard_steps=5, seed=0).learn(700)
    assert model.guard.n_kept + model.guard.n_restored == 2 and model.guard.longest == 200  # decided at steps 200 and 600


def test_swfp_guard_needs_monitored_envs_and_a_count():
    env = DummyVecEnv([lambda: gym.make("Pendulum-v1", max_episode_steps=10)])
    with pytest.raises(ValueError, match="guard_steps needs each episode's return: wrap every env in .*Monitor"):
        SWFP("FlowPolicy", env, **TINY, guard_steps=20).learn(10)
    with pytest.raises(ValueError, match="guard_steps must be an integer >= 0, got -1"):
        SWFP("FlowPolicy", "Pendulum-v1", **TINY, guard_steps=-1)
    assert SWFP("FlowPolicy", "Pendulum-v1", **TINY).learn(10).guard is None  # off by default
