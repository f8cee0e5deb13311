"""Record demonstrations from a shipped scripted expert (or the paper's toy mixture).

Examples::

    python examples/collect_demos.py --env Pendulum-v1 --episodes 50 --out demos/pendulum.npz
    python examples/collect_demos.py --env PointMaze_Medium-v3 --episodes 20 --noise 0.2 \\
        --out demos/pointmaze_medium_noisy.npz --minari-id swfp/pointmaze-medium/noisy-v0
    python examples/collect_demos.py --env SWFPToyBandit-v0 --episodes 1000 --out demos/toy.npz

``--noise`` is the expert's relative action noise (std as a fraction of the half-range of
the action space), which makes a deliberately suboptimal demonstrator. For the toy bandit
the demonstrations are the paper's 8-mode Gaussian mixture and ``--noise`` is ignored.
"""

from __future__ import annotations

import argparse
import os

import gymnasium as gym
import torch as th

from sb3_swfp.demos import check_new_demonstrations_file, check_recording_arguments, collect_demonstrations, to_minari
from sb3_swfp.envs import TOY_BANDIT_ID, toy_demonstrations  # importing sb3_swfp.envs registers the toy
from sb3_swfp.experts import EXPERT_ENV_IDS, make_expert, make_expert_env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    env_help = f"one of {[*EXPERT_ENV_IDS, TOY_BANDIT_ID]} or any PointMaze_* id"
    parser.add_argument("--env", default="Pendulum-v1", help=env_help)
    parser.add_argument("--episodes", type=int, default=50, help="number of episodes to record")
    parser.add_argument("--noise", type=float, default=0.0, help="relative std of the expert's Gaussian action noise")
    parser.add_argument("--out", required=True, help="output .npz file")
    parser.add_argument("--minari-id", default=None, help="also write a local Minari dataset with this id")
    parser.add_argument("--max-episode-steps", type=int, default=None, help="override the env's time limit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    args = parser.parse_args()
    check_recording_arguments(parser, args)
    if args.max_episode_steps is not None and args.max_episode_steps < 1:
        parser.error(f"--max-episode-steps must be >= 1, got {args.max_episode_steps}")
    th.set_num_threads(1)

    env_kwargs = {} if args.max_episode_steps is None else {"max_episode_steps": args.max_episode_steps}
    try:  # an unknown id, one without a scripted expert, a missing extra: a usage error, before any recording
        env = make_expert_env(args.env, **env_kwargs)
        expert = None if args.env == TOY_BANDIT_ID else make_expert(env, noise_std=args.noise, seed=args.seed)
    except (gym.error.Error, ValueError, ImportError) as error:
        parser.error(f"--env {args.env}: {error}")
    if expert is None:
        demos = toy_demonstrations(n=args.episodes, seed=args.seed)
    else:
        demos = collect_demonstrations(env, expert, n_episodes=args.episodes, seed=args.seed)
        demos.metadata.update(expert=type(expert).__name__, expert_noise_std=args.noise)
    check_new_demonstrations_file(args.out, overwrite=args.overwrite)  # again: another run may have written it since
    path = demos.save(args.out)
    returns = demos.episode_returns()
    print(f"{len(demos)} transitions, {len(returns)} episodes, return {returns.mean():.2f} +- {returns.std():.2f} -> {path}")
    if args.minari_id:
        to_minari(demos, args.minari_id, env=env, algorithm_name=demos.metadata.get("expert", demos.metadata["source"]))
        root = os.environ.get("MINARI_DATASETS_PATH", "~/.minari/datasets")
        print(f"Minari dataset {args.minari_id!r} written under {root}")


if __name__ == "__main__":
    main()
