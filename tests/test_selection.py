"""Policy selection on the run's own returns (``selection_steps``): which actor acts, which answers, what is kept."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_swfp import SWFP
from sb3_swfp.common.selection import PolicySelection
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
        selection.observe([_episode(ret)], np.array([done]))
        selection.step(1, np.array([done]), lambda: _state(float(step)))
        assert selection.n_phases == (1 if step == 4 else 0)
    assert selection.reference == 6.0 and selection.kept["weight"][0] == 0.0  # the start, measured
    assert selection.candidate["weight"][0] == 4.0  # the learner when the phase ended
    # Phase 2: its actor returns 5 < 6: refused, the start stays kept; the learner of then acts next
    for step in range(5, 8):
        done = step == 7
        selection.observe([_episode(5.0)], np.array([done]))
        selection.step(1, np.array([done]), lambda: _state(float(step)))
    assert selection.n_phases == 2 and selection.kept["weight"][0] == 0.0 and selection.reference == 6.0
    # Phase 3: a tie (6 == 6) is kept
    for step in range(8, 11):
        done = step == 10
        selection.observe([_episode(6.0)], np.array([done]))
        selection.step(1, np.array([done]), lambda: _state(float(step)))
    assert selection.n_kept == 2 and selection.kept["weight"][0] == 7.0


def test_an_episode_begun_in_an_earlier_phase_is_not_counted():
    selection = PolicySelection(steps=2, n_envs=2, start=_state(0.0))
    # Env 0 ends episodes of 1 step; env 1 runs one long episode through the first phase's end
    selection.observe([_episode(1.0), {}], np.array([True, False]))
    selection.step(2, np.array([True, False]), lambda: _state(1.0))  # 2 env steps: the phase ends (env 0's episode)
    assert selection.reference == 1.0
    selection.observe([_episode(3.0), _episode(-100.0)], np.array([True, True]))  # env 1's began in phase 1
    assert selection.returns == [3.0]


def test_a_return_needs_monitor():
    selection = PolicySelection(steps=1, n_envs=1, start=_state(0.0))
    with pytest.raises(ValueError, match="Monitor"):
        selection.observe([{}], np.array([True]))


def test_a_phase_waits_for_an_episode_end_as_long_as_the_time_limit_allows():
    patient = PolicySelection(steps=1, n_envs=1, start=_state(0.0), time_limit=100)
    for _ in range(50):  # far past 20 x steps, within 20 x the time limit
        patient.step(1, np.array([False]), lambda: _state(1.0))
    impatient = PolicySelection(steps=1, n_envs=1, start=_state(0.0))
    with pytest.raises(RuntimeError, match="no episode ended within 21 env steps"):
        for _ in range(21):
            impatient.step(1, np.array([False]), lambda: _state(1.0))


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


def test_an_env_without_monitor_is_refused():
    env = DummyVecEnv([lambda: gym.make("Pendulum-v1", max_episode_steps=50)])
    model = SWFP("FlowPolicy", env, **TINY, selection_steps=100)
    with pytest.raises(ValueError, match="selection_steps needs each episode's return"):
        model.learn(10)


def test_selection_steps_must_be_a_non_negative_int():
    with pytest.raises(ValueError, match="selection_steps"):
        SWFP("FlowPolicy", "Pendulum-v1", selection_steps=-1)
