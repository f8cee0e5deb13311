"""Scripted experts: callables ``obs -> action`` that record demonstrations for SWFP.

- :class:`PendulumSwingUpExpert` for ``Pendulum-v1`` (energy swing-up + LQR balance).
- :class:`PointMazeExpert` for gymnasium-robotics ``PointMaze_*`` (BFS waypoints + velocity loop).

:func:`make_expert` picks the expert of an env; :func:`evaluate_expert` measures one.
"""

from sb3_swfp.experts.base import ExpertEvaluation, ScriptedExpert, evaluate_expert
from sb3_swfp.experts.factory import EXPERT_ENV_IDS, make_expert, make_expert_env
from sb3_swfp.experts.pendulum import PendulumSwingUpExpert
from sb3_swfp.experts.point_maze import PointMazeExpert, bfs_distances, make_maze_env

__all__ = [
    "EXPERT_ENV_IDS",
    "ExpertEvaluation",
    "PendulumSwingUpExpert",
    "PointMazeExpert",
    "ScriptedExpert",
    "bfs_distances",
    "evaluate_expert",
    "make_expert",
    "make_expert_env",
    "make_maze_env",
]
