"""Policy selection on the run's own returns (``selection_steps``): which actor acts, which answers, what is kept."""

import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback, ConvertCallback
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_swfp import SWFP
from sb3_swfp.common.selection import PolicySelection, keeps, time_limit
from sb3_swfp.demos import Demonstrations

from helpers import TINY


def _state(value: float) -> dict[str, th.Tensor]:
    return {"weight": th.full((2,), value)}


def _episode(ret: float) -> dict:
    return {"episode": {"r": ret, "l": 1}}


def test_phase_ends_at_the_first_episode_end_after_its_steps_and_keeps_only_a_return_at_or_above():
    selection = PolicySelection(steps=3, n_envs=1, start=_state(0.0))
    # Phase 1 (the start's): episodes of 2 steps returning 5 and 7; it ends at step 4, the first end after 3 steps
    for step, (done, ret) in enumerate([(False, 0), (True, 5.0), (False, 0), (True, 7.0)], start=1):
        selection.step([_episode(ret)], np.array([done]), lambda: _state(float(step)))
        assert selection.n_phases == (1 if step == 4 else 0)
    assert selection.reference == 6.0 and selection.kept["weight"][0] == 0.0  # the start, measured
    assert selection.candidate["weight"][0] == 4.0  # the learner when the phase ended
    # Phase 2: its actor returns 5 < 6: refused, the start stays kept; the learner of then acts next
    for step in range(5, 8):
        done = step == 7
        selection.step([_episode(5.0)], np.array([done]), lambda: _state(float(step)))
    assert selection.n_phases == 2 and selection.kept["weight"][0] == 0.0 and selection.reference == 6.0
    # Phase 3: a tie (6 == 6) is kept
    for step in range(8, 11):
        done = step == 10
        selection.step([_episode(6.0)], np.array([done]), lambda: _state(float(step)))
    assert selection.n_kept == 2 and selection.kept["weight"][0] == 7.0


def test_an_episode_begun_in_an_earlier_phase_is_not_counted():
    selection = PolicySelection(steps=2, n_envs=2, start=_state(0.0))
    # Env 0 ends episodes of 1 step; env 1 runs one long episode through the first phase's end
    selection.step([_episode(1.0), {}], np.array([True, False]), lambda: _state(1.0))  # 2 env steps: the phase ends (env 0's episode)
    assert selection.reference == 1.0
    selection.step([_episode(3.0), _episode(-100.0)], np.array([True, True]), lambda: _state(2.0))  # env 1's began in phase 1
    assert selection.n_phases == 2 and selection.reference == 3.0


def test_a_return_needs_monitor():
    selection = PolicySelection(steps=1, n_envs=1, start=_state(0.0))
    with pytest.raises(ValueError, match="Monitor"):
        selection.step([{}], np.array([True]), lambda: _state(1.0))


def test_a_phase_waits_for_an_episode_end_as_long_as_the_time_limit_allows():
    patient = PolicySelection(steps=1, n_envs=1, start=_state(0.0), time_limit=100)
    for _ in range(50):  # far past 20 x steps, within 20 x the time limit
        patient.step([{}], np.array([False]), lambda: _state(1.0))
    impatient = PolicySelection(steps=1, n_envs=1, start=_state(0.0))
    with pytest.raises(RuntimeError, match="no episode ended within 21 env steps"):
        for _ in range(21):
            impatient.step([{}], np.array([False]), lambda: _state(1.0))


def test_a_phase_ends_only_once_an_episode_it_counts_has_ended():
    selection = PolicySelection(steps=2, n_envs=2, start=_state(0.0))
    selection.step([_episode(1.0), {}], np.array([True, False]), lambda: _state(1.0))  # phase 1 ends; env 1's episode runs on
    # Past the phase's steps, only env 1's episode (begun in phase 1) ends: nothing measures phase 2's actor yet
    selection.step([{}, _episode(-100.0)], np.array([False, True]), lambda: _state(2.0))
    assert selection.n_phases == 1 and selection.returns == []
    selection.step([_episode(4.0), {}], np.array([True, False]), lambda: _state(3.0))
    assert selection.n_phases == 2 and selection.reference == 4.0 and selection.kept["weight"][0] == 1.0


def test_a_phase_waits_as_long_as_the_longest_episode_seen_allows_and_ended_episodes_restart_the_wait():
    selection = PolicySelection(steps=1, n_envs=1, start=_state(0.0))  # no time limit: 20 x 1 step at first
    # a 15-step episode lets the next wait 20 x 15 steps; each end restarts the wait (640 steps in all, past 20 x 25)
    for length in (15, *[25] * 25):
        for step in range(1, length + 1):
            done = step == length
            selection.step([{"episode": {"r": 1.0, "l": length}}] if done else [{}], np.array([done]), lambda: _state(1.0))
    assert selection.n_phases == 26 and selection.longest == 25


def test_the_kept_actor_module_follows_a_kept_change_and_is_not_pickled():
    like = th.nn.Linear(2, 1)
    selection = PolicySelection(steps=1, n_envs=1, start={k: v.clone() for k, v in like.state_dict().items()})
    first = selection.actor("kept", like)
    changed = {k: v + 1.0 for k, v in like.state_dict().items()}
    for ret, state in ((1.0, changed), (2.0, changed)):  # phase 1 measures the start; phase 2 (the change) is kept
        selection.step([_episode(ret)], np.array([True]), lambda: state)
    assert selection.n_kept == 2
    kept = selection.actor("kept", like)
    assert kept is not first and th.equal(kept.weight, like.weight + 1.0)
    assert pickle.loads(pickle.dumps(selection))._modules == {}  # the model file holds the state dicts once


def test_the_env_time_limit_is_read_from_its_spec():
    assert time_limit(DummyVecEnv([lambda: gym.make("Pendulum-v1", max_episode_steps=50)])) == 50
    assert time_limit(DummyVecEnv([lambda: gym.make("Pendulum-v1", max_episode_steps=50), lambda: gym.make("Pendulum-v1")])) == 200
    assert time_limit(None) is None


def _model(**kwargs) -> SWFP:
    env = gym.make("Pendulum-v1", max_episode_steps=50)
    return SWFP("FlowPolicy", env, **{**TINY, "learning_starts": 0, **kwargs}, selection_steps=100, seed=0)


def _actions(model: SWFP, actor: th.nn.Module, obs: np.ndarray, seed: int) -> np.ndarray:
    """``predict``'s sampled actions had ``actor`` been the policy's prior actor."""
    prior = model.policy.actor_target
    model.policy.actor_target = actor
    try:
        th.manual_seed(seed)
        return model.policy.predict(obs, deterministic=False)[0]
    finally:
        model.policy.actor_target = prior


def test_predict_answers_with_the_kept_actor_and_collection_with_the_phase_actor(tmp_path):
    model = _model()
    model.learn(350)
    selection = model.selection
    assert selection is not None and selection.n_phases == 3  # phases end at 100, 200, 300 (50-step episodes)
    obs = np.stack([model.observation_space.sample() for _ in range(4)])
    kept = selection.actor("kept", model.actor_target)
    candidate = selection.actor("candidate", model.actor_target)
    th.manual_seed(1)
    answered = model.predict(obs, deterministic=False)[0]
    np.testing.assert_allclose(answered, _actions(model, kept, obs, 1))
    assert not np.allclose(answered, _actions(model, model.actor_target, obs, 1))  # the learner has moved on
    model._last_obs = obs[:1]
    th.manual_seed(2)
    collected = model._sample_action(0, None, 1)[0]
    np.testing.assert_allclose(collected, _actions(model, candidate, obs[:1], 2))
    # As a policy of its own, for what takes a policy alone; model.policy stays the learner
    selected = model.selected_policy()
    np.testing.assert_array_equal(selected.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    assert selected is not model.policy and not np.array_equal(selected.predict(obs, deterministic=True)[0], model.policy.predict(obs, deterministic=True)[0])
    # Saved and loaded, it answers as it did, and the phases go on where they were
    model.save(tmp_path / "model.zip")
    loaded = SWFP.load(tmp_path / "model.zip", env=model.get_env())
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    assert loaded.selection.reference == selection.reference and loaded.selection.n_phases == 3
    # Loaded with selection_steps=0, the prior actor answers from the start
    unselected = SWFP.load(tmp_path / "model.zip", env=model.get_env(), selection_steps=0)
    th.manual_seed(4)
    answered = unselected.predict(obs, deterministic=False)[0]
    np.testing.assert_allclose(answered, _actions(unselected, unselected.actor_target, obs, 4))


def test_learn_again_restarts_the_episodes_it_resets_and_load_changes_the_phase_length(tmp_path):
    model = _model()
    model.learn(120)  # mid-episode (50-step episodes): env 0's running episode began in this phase
    model.selection.fresh[:] = False
    model.learn(1, reset_num_timesteps=False)  # goes on with the same episode
    assert not model.selection.fresh.any()
    model.learn(1, reset_num_timesteps=True)  # SB3 resets the env: a new episode, begun in this phase
    assert model.selection.fresh.all()
    model.save(tmp_path / "model.zip")
    loaded = SWFP.load(tmp_path / "model.zip", env=model.get_env(), selection_steps=500)
    loaded.learn(1, reset_num_timesteps=False)
    assert loaded.selection.steps == 500 and loaded.selection.n_phases == model.selection.n_phases


def test_several_envs_play_the_phases_together():
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(lambda: gym.make("Pendulum-v1", max_episode_steps=30), n_envs=2, seed=0)
    model = SWFP("FlowPolicy", env, **{**TINY, "learning_starts": 0}, selection_steps=50, seed=0)
    model.learn(200)  # 100 steps of two envs: episodes end together every 30 steps (60 env steps)
    selection = model.selection
    assert selection.fresh.shape == (2,) and selection.n_phases == 3  # ends at 60, 120 and 180 env steps
    assert selection.n_kept >= 1 and selection.reference is not None


def test_the_first_phase_measures_the_actor_a_training_start_callback_made():
    """BCPretrainCallback clones in on_training_start, after learn() has set up: the start is taken after it."""

    class Clone(BaseCallback):
        def _on_training_start(self) -> None:
            for parameter in self.model.actor.parameters():
                parameter.data.add_(1.0)
            self.model.policy.sync_target_actor()
            self.cloned = {key: value.clone() for key, value in self.model.actor_target.state_dict().items()}

        def _on_step(self) -> bool:
            return True

    model, clone = _model(), Clone()
    model.learn(10, callback=clone)
    assert all(th.equal(model.selection.kept[key], value.cpu()) for key, value in clone.cloned.items())


@pytest.mark.parametrize("form", ["callback", "list", "function"])
def test_a_callback_at_the_step_a_phase_ends_sees_its_decision(form):
    """The phase advances before the user's callbacks of its env step: an evaluation at the step a phase ends answers
    with that step's decision, as predict does once learn() returns; whatever form the user's callbacks take."""
    seen = {}

    def look(local_vars, global_vars) -> bool:
        model = local_vars["self"]
        if model.num_timesteps in (99, 100):
            seen[model.num_timesteps] = (model.selection.n_phases, model.selection.reference is not None)
        return True

    class Look(BaseCallback):
        def _on_step(self) -> bool:
            return look({"self": self.model}, {})

    callback = {"callback": Look(), "list": [Look()], "function": look}[form]
    model = _model()
    model.learn(100, callback=callback)
    assert seen == {99: (0, False), 100: (1, True)}  # the first phase ends at step 100 (two 50-step episodes)


def test_the_selection_advances_once_per_env_step():
    """With no callback and with a list of them alike, each env step counts once: phases end at steps 100 and 200."""
    plain, listed = _model(), _model()
    plain.learn(250)
    listed.learn(250, callback=[ConvertCallback(lambda *_: True), ConvertCallback(lambda *_: True)])
    assert plain.selection.n_phases == listed.selection.n_phases == 2
    assert plain.selection.phase_steps == listed.selection.phase_steps == 50


def test_pretrain_makes_a_new_start(tmp_path):
    model = _model()
    model.learn(150)
    assert model.selection.n_phases == 1
    env = model.get_env()
    obs = np.stack([env.observation_space.sample() for _ in range(40)])
    actions = np.stack([env.action_space.sample() for _ in range(40)])
    n = len(obs)
    demos = Demonstrations(
        observations=obs, actions=actions, rewards=np.zeros(n, dtype=np.float32), next_observations=obs,
        terminations=np.zeros(n, dtype=bool), truncations=np.arange(n) == n - 1, metadata={"env_id": "Pendulum-v1"},
    )  # fmt: skip
    model.pretrain(demos, gradient_steps=2, batch_size=8)
    assert model.selection is None


def test_selection_off_answers_with_the_prior_actor():
    model = _model()
    model.learn(200)
    obs = np.stack([model.observation_space.sample() for _ in range(4)])
    model.selection_steps = 0
    model.learn(1, reset_num_timesteps=False)
    assert model.selection is None
    th.manual_seed(3)
    np.testing.assert_allclose(model.predict(obs, deterministic=False)[0], _actions(model, model.actor_target, obs, 3))
    np.testing.assert_array_equal(model.selected_policy().predict(obs, deterministic=True)[0], model.policy.predict(obs, deterministic=True)[0])


def test_an_env_without_monitor_is_refused():
    env = DummyVecEnv([lambda: gym.make("Pendulum-v1", max_episode_steps=50)])
    model = SWFP("FlowPolicy", env, **TINY, selection_steps=100)
    with pytest.raises(ValueError, match="selection_steps needs each episode's return"):
        model.learn(10)


def test_selection_steps_must_be_a_non_negative_int():
    with pytest.raises(ValueError, match="selection_steps"):
        SWFP("FlowPolicy", "Pendulum-v1", selection_steps=-1)


def test_a_deterministic_measure_plays_one_episode_per_phase_deterministically_and_counts_only_it():
    selection = PolicySelection(steps=3, n_envs=1, start=_state(0.0), deterministic=True)
    # Phase 1: a measuring episode of 2 steps (returns 4), then sampled episodes of 2 steps returning 100
    plan = [(False, 0.0), (True, 4.0), (False, 0.0), (True, 100.0), (False, 0.0), (True, 100.0)]
    modes = []
    for step, (done, ret) in enumerate(plan, start=1):
        modes.append(bool(selection.measuring[0]))
        selection.step([_episode(ret)], np.array([done]), lambda: _state(float(step)))
    # Measuring steps do not count: the phase ends at the first episode end after 3 sampled steps (step 6, not 4)
    assert modes == [True, True, False, False, False, False]
    assert selection.n_phases == 1 and selection.reference == 4.0
    assert selection.measuring[0] and selection.measured[0] == 0  # phase 2 begins with a measuring episode


def test_a_deterministic_measure_waits_for_a_measuring_episode_and_measures_again_if_none_returned():
    selection = PolicySelection(steps=1, n_envs=2, start=_state(0.0), deterministic=True)
    selection.step([_episode(1.0), {}], np.array([True, False]), lambda: _state(1.0))  # env 0's measure; no sampled step yet
    assert selection.n_phases == 0 and selection.returns == [1.0] and not selection.measuring[0] and selection.measuring[1]
    selection.step([_episode(50.0), {}], np.array([True, False]), lambda: _state(2.0))  # a sampled episode of env 0 ends
    assert selection.n_phases == 1 and selection.reference == 1.0  # measured by env 0's deterministic episode alone
    # Phase 2: env 0 measures its new episode; env 1's running one (begun before) does not count, its next one measures
    assert list(selection.measuring) == [True, False]
    selection.step([{}, _episode(-7.0)], np.array([False, True]), lambda: _state(3.0))
    assert selection.returns == [] and list(selection.measuring) == [True, True]
    # Cut short (learn() resets the envs) before any measure returned: both envs measure their new episodes
    selection.episodes_restarted(2)
    assert list(selection.measuring) == [True, True]


def test_a_deterministic_measure_collects_with_deterministic_actions_while_measuring(tmp_path):
    model = _model(selection_deterministic=True)
    model.learn(60)  # a 50-step measuring episode, then sampled steps
    selection = model.selection
    assert selection.deterministic and selection.n_phases == 0 and len(selection.returns) == 1 and not selection.measuring[0]
    measure = selection.returns[0]
    obs = model.observation_space.sample()[None]
    model._last_obs = obs
    candidate = selection.actor("candidate", model.actor_target)
    th.manual_seed(2)
    np.testing.assert_allclose(model._sample_action(0, None, 1)[0], _actions(model, candidate, obs, 2))
    selection.measuring[0] = True  # as while a measuring episode runs
    measured = model._sample_action(0, None, 1)[0]
    selection.measuring[0] = False
    prior, model.policy.actor_target = model.policy.actor_target, candidate
    try:
        np.testing.assert_allclose(measured, model.policy.predict(obs, deterministic=True)[0])
    finally:
        model.policy.actor_target = prior
    model.learn(100, reset_num_timesteps=False)  # to step 160: 100 sampled steps after the measure end at step 150
    assert selection.n_phases == 1 and selection.reference == measure
    # Saved and loaded it goes on measuring deterministically; loaded with False the phase's measures start over
    model.save(tmp_path / "model.zip")
    assert SWFP.load(tmp_path / "model.zip", env=model.get_env()).selection.deterministic
    loaded = SWFP.load(tmp_path / "model.zip", env=model.get_env(), selection_deterministic=False)
    loaded.learn(1, reset_num_timesteps=False)
    assert not loaded.selection.deterministic and not loaded.selection.measuring.any()


def test_a_model_saved_before_the_deterministic_measure_loads_with_sampled_measures():
    selection = PolicySelection(steps=1, n_envs=1, start=_state(0.0))
    state = selection.__getstate__()
    for key in ("deterministic", "measuring", "measured"):
        del state[key]
    old = PolicySelection.__new__(PolicySelection)
    old.__setstate__(state)
    old.step([_episode(3.0)], np.array([True]), lambda: _state(1.0))
    assert not old.deterministic and old.reference == 3.0


def test_a_phase_measured_by_several_deterministic_episodes_takes_their_mean():
    selection = PolicySelection(steps=2, n_envs=1, start=_state(0.0), deterministic=True, episodes=3)
    for ret in (1.0, 2.0, 6.0):  # three measuring episodes; no sampled step yet, so the phase goes on
        assert selection.measuring[0]
        selection.step([_episode(ret)], np.array([True]), lambda: _state(1.0))
    assert selection.n_phases == 0 and selection.returns == [1.0, 2.0, 6.0] and not selection.measuring[0]
    selection.step([{}], np.array([False]), lambda: _state(1.0))
    selection.step([_episode(50.0)], np.array([True]), lambda: _state(2.0))  # two sampled steps, an episode end: the phase ends
    assert selection.n_phases == 1 and selection.reference == 3.0  # the sampled episode's 50 is not counted
    assert selection.measuring[0] and selection.measured[0] == 0  # the next phase's first measuring episode runs


def test_only_measuring_episodes_that_returned_count_towards_the_episodes():
    selection = PolicySelection(steps=1, n_envs=1, start=_state(0.0), deterministic=True, episodes=2)
    selection.step([_episode(-9.0)], np.array([True]), lambda: _state(1.0), random=True)  # the uniform warm-up's episode
    selection.step([_episode(4.0)], np.array([True]), lambda: _state(1.0))
    assert selection.returns == [4.0] and selection.measuring[0]  # one of two returned
    selection.episodes_restarted(1)  # learn() cuts the second short: it measures again
    assert selection.measuring[0] and selection.measured[0] == 1
    selection.step([_episode(6.0)], np.array([True]), lambda: _state(1.0))
    assert selection.returns == [4.0, 6.0] and not selection.measuring[0]


def test_selection_episodes_collects_that_many_deterministic_episodes_and_changes_on_load(tmp_path):
    model = _model(selection_deterministic=True, selection_episodes=2)
    model.learn(120)  # two 50-step measuring episodes, then sampled steps
    assert len(model.selection.returns) == 2 and not model.selection.measuring[0] and model.selection.n_phases == 0
    model.save(tmp_path / "model.zip")
    assert SWFP.load(tmp_path / "model.zip").selection_episodes == 2
    loaded = SWFP.load(tmp_path / "model.zip", env=model.get_env(), selection_episodes=3)
    loaded.learn(100, reset_num_timesteps=False)  # the running phase measures a third episode, steps 150-200
    assert loaded.selection.episodes == 3 and loaded.selection.n_phases == 0 and len(loaded.selection.returns) == 3
    loaded.learn(100, reset_num_timesteps=False)  # 100 sampled steps at step 230: the phase ends at 250
    assert loaded.selection.n_phases == 1 and len(loaded.selection.returns) == 1 and loaded.selection.measuring[0]


def test_selection_episodes_is_a_positive_count():
    with pytest.raises(ValueError, match="selection_episodes must be an integer >= 1, got 0"):
        _model(selection_deterministic=True, selection_episodes=0)


def test_with_sampled_measures_a_phase_lasts_until_selection_episodes_returned():
    selection = PolicySelection(steps=1, n_envs=1, start=_state(0.0), episodes=3)
    for step, ret in enumerate((1.0, 2.0, 6.0), start=1):  # every step ends an episode; past 1 step, 3 must return
        selection.step([_episode(ret)], np.array([True]), lambda: _state(1.0))
        assert selection.n_phases == (1 if step == 3 else 0) and not selection.measuring[0]
    assert selection.reference == 3.0


def test_a_model_saved_before_several_measuring_episodes_loads_with_one():
    selection = PolicySelection(steps=1, n_envs=1, start=_state(0.0), deterministic=True)
    state = selection.__getstate__()
    del state["episodes"]
    state["measured"] = np.array([True])  # a flag per env then, set when its measuring episode began (it runs)
    old = PolicySelection.__new__(PolicySelection)
    old.__setstate__(state)
    assert old.episodes == 1
    old.episodes = 2  # load(..., selection_episodes=2): the running episode and the next measure, then sampled steps
    for ret, measuring in ((3.0, True), (5.0, False), (50.0, True)):
        old.step([_episode(ret)], np.array([True]), lambda: _state(2.0))
        assert old.measuring[0] == measuring
    assert old.n_phases == 1 and old.reference == 4.0


def test_selection_deterministic_must_be_a_bool():
    with pytest.raises(ValueError, match="selection_deterministic must be True or False, got 'False'"):
        SWFP("FlowPolicy", "Pendulum-v1", selection_deterministic="False")


def test_the_uniform_warm_up_measures_no_actor():
    """Before ``learning_starts`` SB3 acts with uniform random actions: those steps, and every episode they were part
    of, do not measure the start."""
    model = _model(learning_starts=60)
    model.learn(199)  # 50-step episodes; steps 1-60 random, so episodes 1 and 2 are not counted
    assert model.selection.n_phases == 0
    model.learn(1, reset_num_timesteps=False)  # 100 counted steps at step 160: the phase ends at the episode end of 200
    returns = [info["r"] for info in model.ep_info_buffer]
    assert len(returns) == 4 and model.selection.n_phases == 1
    assert model.selection.reference == pytest.approx(np.mean(returns[2:]))


def test_keeps_asks_a_margin_in_standard_errors_of_the_difference_of_the_means():
    kept = [0.0, 2.0, 4.0]  # mean 2, sample variance 4
    phase = [3.0, 5.0, 7.0]  # mean 5, sample variance 4: the standard error of the difference is sqrt(4/3 + 4/3)
    error = np.sqrt(8 / 3)  # 1.633: the difference, 3, is 1.84 of them
    assert keeps(phase, kept) and keeps([2.0, 2.0], kept) and not keeps([1.9, 2.0], kept)  # margin 0: at or above
    assert keeps(phase, kept, margin=1.0) and keeps(phase, kept, margin=3 / error) and not keeps(phase, kept, margin=3 / error + 1e-6)
    assert not keeps(phase, kept, margin=2.0)
    assert keeps([2.5], kept, margin=0.25) and not keeps([2.5], kept, margin=0.5)  # one return adds no spread: sqrt(4/3)


def test_a_margin_keeps_a_phase_only_where_its_mean_clears_it():
    selection = PolicySelection(steps=1, n_envs=1, start=_state(0.0), episodes=2, margin=1.0)
    for phase, rets in enumerate(([0.0, 2.0], [1.5, 2.5], [4.0, 6.0]), start=1):  # the start's, then +1 (0.89 SE), then +4 (2.8)
        for ret in rets:
            selection.step([_episode(ret)], np.array([True]), lambda: _state(float(phase)))
    assert selection.n_phases == 3 and selection.n_kept == 2  # the start, then the third phase's actor
    assert selection.kept["weight"][0] == 2.0 and selection.kept_returns == [4.0, 6.0] and selection.reference == 5.0
    without = PolicySelection(steps=1, n_envs=1, start=_state(0.0), episodes=2)
    for phase, rets in enumerate(([0.0, 2.0], [1.5, 2.5]), start=1):
        for ret in rets:
            without.step([_episode(ret)], np.array([True]), lambda: _state(float(phase)))
    assert without.n_kept == 2 and without.kept["weight"][0] == 1.0  # at or above: the second phase's actor is kept


def test_selection_margin_is_a_non_negative_number_that_needs_two_episodes():
    with pytest.raises(ValueError, match=r"selection_margin must be a finite number >= 0 \(standard errors; 0: at or above\), got -1"):
        _model(selection_margin=-1)
    with pytest.raises(ValueError, match="selection_margin=1.0 needs selection_episodes >= 2"):
        _model(selection_margin=1.0)
    with pytest.raises(ValueError, match="selection_margin must be a number, got '1'"):
        _model(selection_margin="1", selection_episodes=2)


def test_selection_margin_reaches_the_selection_and_changes_on_load(tmp_path):
    model = _model(selection_deterministic=True, selection_episodes=2, selection_margin=1.0)
    model.learn(120)
    assert model.selection.margin == 1.0
    model.save(tmp_path / "model.zip")
    assert SWFP.load(tmp_path / "model.zip").selection_margin == 1.0
    loaded = SWFP.load(tmp_path / "model.zip", env=model.get_env(), selection_margin=0.0)
    loaded.learn(10, reset_num_timesteps=False)
    assert loaded.selection.margin == 0.0
    with pytest.raises(ValueError, match="needs selection_episodes >= 2"):
        SWFP.load(tmp_path / "model.zip", selection_margin=1.0, selection_episodes=1)
    assert SWFP.load(tmp_path / "model.zip", selection_margin=2.0).selection_margin == 2.0  # the saved two episodes
    with pytest.raises(ValueError, match="selection_margin=1.0 needs selection_episodes >= 2"):
        SWFP.load(tmp_path / "model.zip", selection_episodes=1)  # against the saved margin


def test_a_selection_saved_before_the_margin_keeps_at_or_above():
    selection = PolicySelection(steps=1, n_envs=1, start=_state(0.0))
    selection.step([_episode(4.0)], np.array([True]), lambda: _state(1.0))
    state = selection.__getstate__()
    del state["margin"], state["kept_returns"]
    state["reference"] = 4.0  # what it held then: the kept actor's mean, not its returns
    old = PolicySelection.__new__(PolicySelection)
    old.__setstate__(state)
    assert old.margin == 0.0 and old.kept_returns == [4.0]
    old.step([_episode(4.0)], np.array([True]), lambda: _state(2.0))
    assert old.n_kept == 2
