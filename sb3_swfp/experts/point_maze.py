"""Scripted expert for gymnasium-robotics ``PointMaze_*`` envs: BFS waypoints and a velocity controller.

The maze is a grid of cells (``1`` = wall; ``0``, ``"g"``, ``"r"``, ``"c"`` = free) of side
``maze_size_scaling`` with cell ``(i, j)`` centred at
``x = (j + 0.5) * s - x_map_center``, ``y = y_map_center - (i + 0.5) * s``
(gymnasium-robotics ``Maze.cell_rowcol_to_xy``). Each step the expert:

1. runs (and caches per goal cell) a breadth-first search from the goal cell over free
   cells with 4-connectivity, giving every cell its number of moves to the goal;
2. walks down that distance field from the ball's cell: the centres of the cells on the
   way, then the goal itself, are the waypoints;
3. aims at the farthest waypoint it can reach in a straight line that keeps
   ``clearance`` away from every wall cell (line-of-sight shortcut), at the desired
   velocity ``max_speed * direction * min(1, distance / slow_radius)``;
4. returns the force ``velocity_gain * (v_desired - v)`` clipped to ``[-1, 1]^2``.

The ball (radius 0.1, mass ~4.2, actuator gear 100, velocity clipped to 5 by the env)
accelerates at up to ~24 m/s^2, so a velocity loop of gain 1-2 tracks well.

With mujoco 4.0.0, gymnasium-robotics 1.4.2's ``Fetch`` and ``Shadow hand`` envs fail in
``gymnasium_robotics.utils.mujoco_utils`` (``joint_type in (mjJNT_HINGE, mjJNT_SLIDE)`` is
false for a numpy int); the maze envs never call that code and run unchanged.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sb3_swfp.experts.base import ScriptedExpert

_WALL = 1


def make_maze_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gym.make`` a gymnasium-robotics env, registering gymnasium-robotics first.

    :raises ImportError: gymnasium-robotics is not installed.
    """
    try:
        import gymnasium_robotics
    except ImportError as error:
        raise ImportError(f"{env_id} needs gymnasium-robotics: pip install \"sb3-swfp[robotics]\" (gymnasium-robotics>=1.4)") from error
    gym.register_envs(gymnasium_robotics)
    return gym.make(env_id, **kwargs)


def bfs_distances(maze_map: np.ndarray, goal_cell: tuple[int, int]) -> np.ndarray:
    """Number of 4-connected moves from every free cell to ``goal_cell``; walls and unreachable cells get -1.

    :param maze_map: ``(rows, cols)`` bool array, True for walls.
    :param goal_cell: ``(row, col)`` of the goal.
    """
    rows, cols = maze_map.shape
    distances = np.full((rows, cols), -1, dtype=np.int64)
    if maze_map[goal_cell]:
        raise ValueError(f"goal cell {goal_cell} is a wall cell; expected a free cell of the maze")
    distances[goal_cell] = 0
    queue = deque([goal_cell])
    while queue:
        i, j = queue.popleft()
        for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            ni, nj = i + di, j + dj
            if 0 <= ni < rows and 0 <= nj < cols and not maze_map[ni, nj] and distances[ni, nj] < 0:
                distances[ni, nj] = distances[i, j] + 1
                queue.append((ni, nj))
    return distances


class PointMazeExpert(ScriptedExpert):
    """Goal-reaching controller for ``PointMaze_*`` (Dict observations, force actions in ``[-1, 1]^2``).

    Reaches the goal in 20/20 episodes on PointMaze_UMaze-v3, PointMaze_Medium-v3 and
    PointMaze_Large-v3, and stays on it (the default tasks are continuing).

    :param maze: The env (its ``unwrapped.maze`` is read), a gymnasium-robotics ``Maze``, or a
        maze map (list of rows, ``1`` for walls) with ``maze_size_scaling`` 1 centred at 0.
    :param max_speed: Cruise speed (the env clips velocities at 5).
    :param slow_radius: Distance to the aimed waypoint under which the desired speed shrinks.
    :param velocity_gain: Gain of the velocity loop (action per unit of velocity error).
    :param clearance: Distance kept from wall cells on line-of-sight shortcuts (ball radius 0.1).
    :param noise_std: Relative std of the action noise (see :class:`ScriptedExpert`).
    :param seed: Seed of the noise.
    """

    def __init__(
        self,
        maze: gym.Env | Any,
        max_speed: float = 4.5,
        slow_radius: float = 0.6,
        velocity_gain: float = 1.5,
        clearance: float = 0.2,
        noise_std: float = 0.0,
        seed: int | None = None,
    ):
        if isinstance(maze, gym.Env):
            maze = maze.unwrapped.maze
        if hasattr(maze, "maze_map"):
            maze_map, scaling = maze.maze_map, float(maze.maze_size_scaling)
            x_center, y_center = float(maze.x_map_center), float(maze.y_map_center)
        else:
            maze_map, scaling = maze, 1.0
            x_center, y_center = len(maze[0]) / 2 * scaling, len(maze) / 2 * scaling
        self.walls = np.array([[cell == _WALL for cell in row] for row in maze_map], dtype=np.bool_)
        self.scaling, self.x_center, self.y_center = scaling, x_center, y_center
        self.max_speed, self.slow_radius = max_speed, slow_radius
        self.velocity_gain, self.clearance = velocity_gain, clearance
        self._distances: dict[tuple[int, int], np.ndarray] = {}
        box = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float64)
        observation_space = spaces.Dict(
            {
                "observation": spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float64),
                "achieved_goal": box,
                "desired_goal": box,
            }
        )
        action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        super().__init__(observation_space, action_space, noise_std=noise_std, seed=seed)

    def cell_of(self, xy: np.ndarray) -> tuple[int, int]:
        """``(row, col)`` of the cell containing the point ``xy`` (clamped to the map)."""
        i = int(np.floor((self.y_center - xy[1]) / self.scaling))
        j = int(np.floor((xy[0] + self.x_center) / self.scaling))
        return min(max(i, 0), self.walls.shape[0] - 1), min(max(j, 0), self.walls.shape[1] - 1)

    def cell_centre(self, cell: tuple[int, int]) -> np.ndarray:
        """``(x, y)`` centre of cell ``(row, col)``."""
        return np.array([(cell[1] + 0.5) * self.scaling - self.x_center, self.y_center - (cell[0] + 0.5) * self.scaling])

    def distances_to(self, goal_cell: tuple[int, int]) -> np.ndarray:
        """BFS distance field to ``goal_cell`` (cached)."""
        if goal_cell not in self._distances:
            self._distances[goal_cell] = bfs_distances(self.walls, goal_cell)
        return self._distances[goal_cell]

    def waypoints(self, position: np.ndarray, goal: np.ndarray) -> list[np.ndarray]:
        """Cell centres from the ball's cell (excluded) down the BFS field, then the goal ``(x, y)``."""
        goal_cell = self.cell_of(goal)
        distances = self.distances_to(goal_cell)
        cell = self.cell_of(position)
        if distances[cell] < 0:
            # The ball's centre can sit a hair inside a wall cell when pressed against it: use the nearest free cell.
            free = np.argwhere(distances >= 0)
            centres = np.stack([self.cell_centre(tuple(c)) for c in free])
            cell = tuple(free[np.argmin(np.linalg.norm(centres - position, axis=1))])
        points = []
        while distances[cell] > 0:
            i, j = cell
            for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                ni, nj = i + di, j + dj
                if 0 <= ni < distances.shape[0] and 0 <= nj < distances.shape[1] and distances[ni, nj] == distances[cell] - 1:
                    cell = (ni, nj)
                    break
            points.append(self.cell_centre(cell))
        if points:
            points[-1] = np.asarray(goal, dtype=np.float64)
        else:
            points.append(np.asarray(goal, dtype=np.float64))
        return points

    def _clear(self, start: np.ndarray, end: np.ndarray) -> bool:
        """The segment keeps ``clearance`` from every wall cell (checked every 0.05 * scaling)."""
        n_checks = max(2, int(np.ceil(np.linalg.norm(end - start) / (0.05 * self.scaling))) + 1)
        # (n_checks, 1, 2) + (4, 2) corner offsets of a square of half-side clearance -> (n_checks * 4, 2)
        points = np.linspace(start, end, n_checks)[:, None, :] + self.clearance * np.array(
            [[1, 1], [1, -1], [-1, 1], [-1, -1]]
        )
        return not any(self.walls[self.cell_of(p)] for p in points.reshape(-1, 2))

    def _action(self, position: np.ndarray, velocity: np.ndarray, goal: np.ndarray) -> np.ndarray:
        points = self.waypoints(position, goal)
        target = points[0]
        for point in reversed(points[1:]):  # farthest visible waypoint first
            if self._clear(position, point):
                target = point
                break
        offset = target - position
        distance = float(np.linalg.norm(offset))
        desired_velocity = self.max_speed * offset / max(self.slow_radius, distance)
        return np.clip(self.velocity_gain * (desired_velocity - velocity), -1.0, 1.0)

    def expert_action(self, observations: dict[str, np.ndarray]) -> np.ndarray:
        """Noiseless forces ``(batch, 2)`` for a batch of PointMaze Dict observations."""
        state = observations["observation"]  # (batch, 4): x, y, vx, vy
        goals = observations["desired_goal"]  # (batch, 2)
        return np.stack([self._action(s[:2], s[2:4], g) for s, g in zip(state, goals)])
