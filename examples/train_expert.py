"""Train an SB3 expert with rl-zoo3's tuned hyperparameters, then record its demonstrations.

The zoo's ``ExperimentManager`` reads ``rl_zoo3/hyperparams/<algo>.yml`` (schedules,
``policy_kwargs``, action noise, ``normalize``, env wrappers), trains and saves the model
under ``--log-folder`` exactly as ``python -m rl_zoo3.train`` would. The trained model then
acts in a fresh env (with the zoo's env wrapper, if the entry has one) and
:func:`sb3_swfp.demos.collect_demonstrations` records it to our ``.npz`` format.
An env without an entry of its own (and without ``--hyperparams-from``) gets rl-zoo3's untuned
``default`` entry, as ``python -m rl_zoo3.train`` gives it (a budget of 1e6 steps unless
``--n-timesteps`` says otherwise).  The recording, and its checks, come after training: ``--out``,
``--episodes``, ``--noise`` and ``--minari-id`` are checked before it starts, and an existing
``--out`` is replaced only with ``--overwrite``.

Examples::

    python examples/train_expert.py --algo sac --env Pendulum-v1 --episodes 50 --out demos/pendulum_sac.npz
    # Hopper-v5 has no zoo entry: borrow the tuned Hopper-v4 one
    python examples/train_expert.py --algo sac --env Hopper-v5 --hyperparams-from Hopper-v4 \\
        --episodes 20 --noise 0.1 --out demos/hopper_sac_noisy.npz
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import tempfile

import gymnasium as gym
import numpy as np
import torch as th

try:
    import yaml
    from rl_zoo3.exp_manager import ExperimentManager
except ModuleNotFoundError as error:
    raise ModuleNotFoundError(
        f"examples/train_expert.py needs the zoo extra, {error.name!r} is missing: pip install \"sb3-swfp[zoo]\" "
        "(or pip install -e \".[zoo]\" in a checkout)",
        name=error.name,
    ) from error

from sb3_swfp.demos import check_new_demonstrations_file, check_recording_arguments, collect_demonstrations, to_minari
from sb3_swfp.experts import make_expert_env
from sb3_swfp.hyperparams import read_entries, rl_zoo3_file

ALGOS = ("sac", "td3", "tqc", "crossq")


def zoo_config(algo: str, env_id: str, hyperparams_from: str | None) -> str | None:
    """Path of a one-entry hyperparameter file giving ``env_id`` the zoo entry of ``hyperparams_from``.

    ``None`` (the zoo's own file) when ``hyperparams_from`` is not given.
    """
    if hyperparams_from is None:
        return None
    entries = read_entries(rl_zoo3_file(algo))  # resolves the ``<<: *mujoco-defaults`` merges
    if hyperparams_from not in entries:
        raise ValueError(f"rl-zoo3 has no {algo} hyperparameters for {hyperparams_from!r}")
    handle, path = tempfile.mkstemp(suffix=".yml", prefix=f"{algo}_{env_id}_")
    with os.fdopen(handle, "w") as f:
        yaml.safe_dump({env_id: entries[hyperparams_from]}, f)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=ALGOS, default="sac", help="rl-zoo3 algorithm")
    parser.add_argument("--env", default="Pendulum-v1", help="gymnasium env id")
    parser.add_argument("--hyperparams-from", default=None, help="use the zoo entry of this env id instead")
    parser.add_argument("--n-timesteps", type=int, default=0, help="training steps (0: the zoo's n_timesteps)")
    parser.add_argument("--log-folder", default="logs/experts", help="where the zoo saves the model")
    parser.add_argument("--eval-freq", type=int, default=-1, help="zoo evaluation frequency (-1: none)")
    parser.add_argument("--episodes", type=int, default=50, help="episodes of demonstrations to record")
    parser.add_argument("--noise", type=float, default=0.0, help="relative std of Gaussian noise on recorded actions")
    parser.add_argument("--stochastic", action="store_true", help="record the stochastic policy, not its mean action")
    parser.add_argument("--out", required=True, help="output .npz file")
    parser.add_argument("--minari-id", default=None, help="also write a local Minari dataset with this id")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    args = parser.parse_args()
    if args.n_timesteps < 0:  # rl-zoo3 takes any value <= 0 as its own budget
        parser.error(f"--n-timesteps must be >= 0 (0: the zoo's n_timesteps), got {args.n_timesteps}")
    if args.stochastic and args.algo == "td3":  # TD3's predict() ignores deterministic=False
        parser.error("--stochastic: td3's policy is deterministic, it would record the same actions; --noise adds noise to them")
    check_recording_arguments(parser, args)  # before training: the recording comes after it
    args.env_kwargs = None  # saved in args.yml, where the zoo's enjoy looks for it
    th.set_num_threads(1)

    # gymnasium-robotics ids (PointMaze_*) must be registered before the zoo makes the env
    try:
        recording_env = make_expert_env(args.env)
    except (gym.error.Error, ImportError) as error:
        parser.error(f"--env {args.env}: {error}")
    try:
        config = zoo_config(args.algo, args.env, args.hyperparams_from)
    except ValueError as error:
        parser.error(f"--hyperparams-from: {error}")
    exp_manager = ExperimentManager(
        args,
        args.algo,
        args.env,
        args.log_folder,
        n_timesteps=args.n_timesteps,
        eval_freq=args.eval_freq,
        seed=args.seed,
        log_interval=-1,  # the algorithm's default (0 would divide by zero in SB3)
        device="auto",
        config=config,
    )
    try:
        model, _ = exp_manager.setup_experiment()
    finally:
        if config is not None:
            os.remove(config)  # the zoo saved the hyperparameters it used next to the model
    # rl-zoo3's learn() swallows Ctrl-C (to save the model): note it, and record nothing from a half-trained expert
    interrupted = []

    def on_interrupt(signum, frame):
        interrupted.append(signum)
        raise KeyboardInterrupt

    # Only where Ctrl-C would interrupt anyway: a run started with SIGINT ignored (a background job) keeps ignoring it
    catch = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    previous_handler = signal.signal(signal.SIGINT, on_interrupt) if catch else None
    try:
        exp_manager.learn(model)
    finally:
        if catch:
            signal.signal(signal.SIGINT, previous_handler)
    exp_manager.save_trained_model(model)
    if interrupted:
        print(
            f"Training interrupted at {model.num_timesteps} of {exp_manager.n_timesteps} steps: the model is saved under "
            f"{exp_manager.save_path}; no demonstrations recorded ({args.out} untouched)",
            file=sys.stderr,
        )
        sys.exit(128 + signal.SIGINT)

    if exp_manager.env_wrapper is not None:
        recording_env = exp_manager.env_wrapper(recording_env)
    vec_normalize = model.get_vec_normalize_env()

    def policy(observation: np.ndarray) -> np.ndarray:
        """The trained model, fed normalised observations when the zoo used VecNormalize."""
        if vec_normalize is not None:
            observation = vec_normalize.normalize_obs(observation)
        action, _ = model.predict(observation, deterministic=not args.stochastic)
        return action

    demos = collect_demonstrations(
        recording_env, policy, n_episodes=args.episodes, action_noise_std=args.noise, seed=args.seed
    )
    # The command that made the file (shown by docs/benchmarks.md for shipped files); the model stays local
    demos.metadata.update(algo=args.algo, command=shlex.join(["python", "examples/train_expert.py", *sys.argv[1:]]))
    check_new_demonstrations_file(args.out, overwrite=args.overwrite)  # again: another run may have written it since
    path = demos.save(args.out)
    returns = demos.episode_returns()
    print(f"{len(demos)} transitions, {len(returns)} episodes, return {returns.mean():.1f} +- {returns.std():.1f} -> {path}")
    print(f"model saved under {exp_manager.save_path}")
    if args.minari_id:
        to_minari(demos, args.minari_id, env=recording_env, algorithm_name=f"rl-zoo3 {args.algo}")
        root = os.environ.get("MINARI_DATASETS_PATH", "~/.minari/datasets")
        print(f"Minari dataset {args.minari_id!r} written under {root}")


if __name__ == "__main__":
    main()
