"""Scripted experts: Pendulum swing-up/balance and the PointMaze BFS-waypoint controller."""

import gymnasium as gym
import numpy as np
import pytest

from sb3_swfp.demos import collect_demonstrations, validate
from sb3_swfp.experts import PendulumSwingUpExpert, PointMazeExpert, bfs_distances, evaluate_expert, make_expert


def test_pendulum_expert_return():
    env = gym.make("Pendulum-v1")
    result = evaluate_expert(env, PendulumSwingUpExpert(env), n_episodes=5, seed=0)
    # -137.7 over seeds 0-19; a random policy scores about -1200
    assert result.mean_return > -200, result.returns


def test_pendulum_swings_up_from_rest_and_balances():
    env = gym.make("Pendulum-v1")
    expert = PendulumSwingUpExpert(env)
    obs, _ = env.reset(seed=0)
    env.unwrapped.state = np.array([np.pi, 0.0])  # hanging down at rest: needs the swing-up
    obs = env.unwrapped._get_obs()
    for _ in range(200):
        obs, *_ = env.step(expert(obs))
    theta = np.arctan2(obs[1], obs[0])
    assert abs(theta) < 0.05 and abs(obs[2]) < 0.1


def test_pendulum_lqr_is_stabilising_on_the_env_s_own_linearisation():
    """The expert's model (a, b, dt) is the env's step linearised at the top, and its gain stabilises it."""
    env = gym.make("Pendulum-v1").unwrapped
    env.reset(seed=0)

    def step(theta, theta_dot, torque):
        env.state = np.array([theta, theta_dot])
        env.step(np.array([torque], np.float32))
        return np.array(env.state, dtype=np.float64)

    # central differences of the env's step around the upright rest (theta = 0), in (theta, theta_dot)
    eps = 1e-3
    a_env = np.stack([(step(*(eps * e), 0.0) - step(*(-eps * e), 0.0)) / (2 * eps) for e in np.eye(2)], axis=1)
    b_env = ((step(0.0, 0.0, eps) - step(0.0, 0.0, -eps)) / (2 * eps))[:, None]
    expert = PendulumSwingUpExpert()
    dt, a, b = expert.dt, expert.a, expert.b
    np.testing.assert_allclose(a_env, [[1 + a * dt**2, dt], [a * dt, 1.0]], rtol=1e-3)
    np.testing.assert_allclose(b_env, [[b * dt**2], [b * dt]], rtol=1e-3)
    closed_loop = a_env - b_env @ expert.lqr_gain[None]
    assert np.max(np.abs(np.linalg.eigvals(closed_loop))) < 1.0


def test_expert_batches_noise_and_bounds():
    env = gym.make("Pendulum-v1")
    env.observation_space.seed(0)  # unseeded, ~1 draw in 150 saturated enough actions to hide the noise
    observations = np.stack([env.observation_space.sample() for _ in range(16)])
    expert = PendulumSwingUpExpert(env)
    batch = expert(observations)
    assert batch.shape == (16, 1) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch, np.stack([expert(o) for o in observations]))
    noisy = PendulumSwingUpExpert(env, noise_std=0.5, seed=0)
    noisy_batch = noisy(observations)
    assert np.abs(noisy_batch - batch).mean() > 0.1 and np.all(np.abs(noisy_batch) <= 2.0)
    np.testing.assert_array_equal(PendulumSwingUpExpert(env, noise_std=0.5, seed=0)(observations), noisy_batch)
    with pytest.raises(ValueError, match="noise_std must be a finite number >= 0, got -1.0"):
        PendulumSwingUpExpert(noise_std=-1.0)
    with pytest.raises(ValueError, match="noise_std must be a finite number >= 0, got nan"):
        PendulumSwingUpExpert(noise_std=float("nan"))  # it added no noise, silently


def test_bfs_distances():
    walls = np.array(
        [
            [1, 1, 1, 1, 1],
            [1, 0, 0, 0, 1],
            [1, 1, 1, 0, 1],
            [1, 0, 0, 0, 1],
            [1, 1, 1, 1, 1],
        ],
        dtype=bool,
    )
    distances = bfs_distances(walls, (3, 1))
    assert distances[1, 1] == 6 and distances[2, 3] == 3 and distances[3, 1] == 0
    assert np.all(distances[walls] == -1)
    with pytest.raises(ValueError, match="is a wall cell"):
        bfs_distances(walls, (0, 0))


def test_point_maze_waypoints_follow_the_corridor():
    expert = PointMazeExpert([[1, 1, 1, 1, 1], [1, 0, 0, 0, 1], [1, 1, 1, 0, 1], [1, 0, 0, 0, 1], [1, 1, 1, 1, 1]])
    start, goal = expert.cell_centre((1, 1)), expert.cell_centre((3, 1)) + np.array([0.1, -0.05])
    points = expert.waypoints(start, goal)
    cells = [expert.cell_of(p) for p in points]
    assert cells == [(1, 2), (1, 3), (2, 3), (3, 3), (3, 2), (3, 1)]
    np.testing.assert_allclose(points[-1], goal)
    action = expert({"observation": np.r_[start, 0.0, 0.0], "achieved_goal": start, "desired_goal": goal})
    assert action.shape == (2,) and action[0] > 0.5 and abs(action[1]) < 1e-6  # heads east along the top corridor


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("env_id, n_episodes", [("PointMaze_UMaze-v3", 3), ("PointMaze_Large-v3", 1)])
def test_point_maze_expert_reaches_goal(env_id, n_episodes):
    pytest.importorskip("gymnasium_robotics")
    from sb3_swfp.experts import make_expert_env

    env = make_expert_env(env_id)
    result = evaluate_expert(env, make_expert(env), n_episodes=n_episodes, seed=0)
    assert result.success_count == n_episodes, result


@pytest.mark.filterwarnings("ignore")
def test_point_maze_demonstrations_validate():
    pytest.importorskip("gymnasium_robotics")
    from sb3_swfp.experts import make_expert_env

    env = make_expert_env("PointMaze_UMaze-v3", max_episode_steps=40)
    demos = collect_demonstrations(env, make_expert(env, noise_std=0.2, seed=0), n_episodes=2, seed=0)
    checked = validate(demos, env.observation_space, env.action_space)
    assert len(checked) == 80 and checked.is_dict_obs and np.all(np.abs(checked.actions) <= 1.0)


def test_make_expert_unknown_env():
    with pytest.raises(ValueError, match="no scripted expert for 'CartPole-v1'"):
        make_expert(gym.make("CartPole-v1"))


def test_a_recording_with_a_seed_repeats_with_an_expert_made_without_one():
    """The README's recipe: the expert's noise is seeded from the recording's seed when it has none of its own."""
    from sb3_swfp.demos import collect_demonstrations
    from sb3_swfp.experts import PendulumSwingUpExpert, evaluate_expert

    expert = PendulumSwingUpExpert(noise_std=0.6)  # one expert, reused: each recording reseeds it
    first, second = (collect_demonstrations("Pendulum-v1", expert, n_episodes=1, seed=0) for _ in range(2))
    np.testing.assert_array_equal(first.actions, second.actions)
    np.testing.assert_array_equal(first.actions, collect_demonstrations("Pendulum-v1", PendulumSwingUpExpert(noise_std=0.6), n_episodes=1, seed=0).actions)
    other = collect_demonstrations("Pendulum-v1", PendulumSwingUpExpert(noise_std=0.6), n_episodes=1, seed=1)
    assert not np.array_equal(first.actions[:50], other.actions[:50])
    env = gym.make("Pendulum-v1")
    assert evaluate_expert(env, expert, n_episodes=1).mean_return == evaluate_expert(env, expert, n_episodes=1).mean_return
    # an expert seeded by its maker keeps its own stream, whatever the recording's seed
    seeded, twin = PendulumSwingUpExpert(noise_std=0.6, seed=5), PendulumSwingUpExpert(noise_std=0.6, seed=5)
    collect_demonstrations("Pendulum-v1", seeded, n_steps=1, seed=0)
    collect_demonstrations("Pendulum-v1", twin, n_steps=1, seed=1)
    assert seeded.rng.bit_generator.state == twin.rng.bit_generator.state
