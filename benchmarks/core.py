"""Core benchmarks of SWFP against SB3's SAC and TD3: learning from scratch on Pendulum-v1, and speed.

Two suites, each writing raw JSON under ``docs/results/core/`` and re-rendering ``docs/core_benchmarks.md``
(plus a learning-curve PNG) from whatever results exist:

- ``learning``: SWFP, SAC and TD3 from scratch on Pendulum-v1, 20k env steps, 3 seeds, deterministic
  evaluation (10 episodes) every 1k steps.  SWFP uses ``zoo_hyperparams/swfp.yml``; SAC and TD3 use
  rl-zoo3's own Pendulum-v1 entries.  Finished runs are skipped (resumable); ``--jobs N`` runs N
  independent processes with one torch thread each.  ``--algos swfp --squash clip`` runs SWFP with
  another squash than the class default, into files of its own (the check a new default must pass;
  the clip's runs are the rows of the default before 0.2.0).
- ``speed``: in one process, the models taking turns (``measure_speed``): training env-steps/s (batch
  256, one gradient step per env step, after a warm-up) and ``predict`` latency for one observation,
  SWFP (N=5) vs SAC vs TD3, plus a cProfile summary of SWFP's ``train()``.

Usage (from the repository root)::

    python -m benchmarks.core --suite learning --jobs 2
    python -m benchmarks.core --suite speed
    python -m benchmarks.core --render   # only re-render the docs page
"""

from __future__ import annotations

import argparse
import cProfile
import inspect
import io
import os
import pstats
import time
from pathlib import Path

import numpy as np

from benchmarks import (
    BENCHMARK_MODULES,
    CORE_COMMAND,
    CORE_RESULTS,
    DOCS,
    HYPERPARAMS,
    given_options,
    provenance,
    write_result,
)
from benchmarks.cost import ENV_ID, SPEED_PREDICT_CALLS, SPEED_ROUNDS, SPEED_TRAIN_CHUNK, measure_speed, pendulum_model
from benchmarks.render_core import ALGOS, LEARNING_EVAL_EVERY, LEARNING_STEPS, render_core, strip_paths
from benchmarks.runner import run_jobs
from sb3_swfp.common.checks import require
from sb3_swfp.common.squash import SQUASHES
from sb3_swfp.swfp.swfp import SWFP

#: SWFP's class default squash: ``--squash`` names another one
DEFAULT_SQUASH = inspect.signature(SWFP.__init__).parameters["squash"].default


def run_learning(job: tuple[str, int, int, int, str | None], results: Path = CORE_RESULTS) -> str:
    """One learning run; writes ``learning_<algo>_s<seed>.json`` with the evaluation curve.

    With a ``squash`` (SWFP only) the run is SWFP's zoo entry with that squash instead of the class
    default, written to ``learning_swfp-<squash>_s<seed>.json``: the check a new default must pass.
    """
    algo, seed, total, eval_every, squash = job
    # Another budget or interval: its own file and command, left out of the page's 20k-step table
    other = "" if (total, eval_every) == (LEARNING_STEPS, LEARNING_EVAL_EVERY) else f"_{total}steps_every{eval_every}"
    out = results / f"learning_{algo}{f'-{squash}' if squash else ''}_s{seed}{other}.json"
    if out.exists():
        return f"skip {out.name}"
    import gymnasium as gym
    import torch as th
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    from sb3_swfp.hyperparams import load_hyperparams

    th.set_num_threads(1)
    eval_env = Monitor(gym.make(ENV_ID))
    eval_env.reset(seed=10_000 + seed)
    curve: list[tuple[int, float, float]] = []

    class Evaluate(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % eval_every == 0:
                returns, _ = evaluate_policy(self.model, eval_env, n_eval_episodes=10, deterministic=True, return_episode_rewards=True)
                curve.append((self.num_timesteps, float(np.mean(returns)), float(np.std(returns))))
            return True

    overrides = {"squash": squash} if squash else {}
    model = pendulum_model(algo, seed, **overrides)
    start = time.perf_counter()
    error = None
    try:
        model.learn(total, callback=Evaluate())
    except FloatingPointError as exc:  # SWFP's NaN guard: keep the run, report the divergence
        error = f"{type(exc).__name__} at env step {model.num_timesteps}: {exc}"
    result = {
        "error": error,
        "algo": algo,
        "env": ENV_ID,
        "seed": seed,
        "total_timesteps": total,
        "eval_every": eval_every,
        "wall_s": time.perf_counter() - start,
        "curve": curve,
        "squash": squash,
        "hyperparams": {k: repr(v) for k, v in {**load_hyperparams(algo, ENV_ID, HYPERPARAMS), **overrides}.items()},
        "command": f"{CORE_COMMAND} --suite learning --seeds {seed}"
        + (f" --algos {algo}" if squash or other else "")
        + (f" --squash {squash}" if squash else "")
        + (f" --timesteps {total} --eval-every {eval_every}" if other else ""),
        **provenance(),
    }
    write_result(out, result)
    return f"done {out.name} in {result['wall_s']:.0f}s"


def run_speed(results: Path = CORE_RESULTS) -> None:
    """Training env-steps/s and predict latency, SWFP vs SAC vs TD3, in this one process; writes ``speed.json``."""
    import gymnasium as gym
    import torch as th

    th.set_num_threads(1)
    load_average = os.getloadavg()[0]  # the ratios are in-process; the absolute rates are not
    obs = gym.make(ENV_ID).reset(seed=0)[0]
    configs = {
        "swfp": dict(algo="swfp", n_blocks=5),
        "swfp_policy_delay_1": dict(algo="swfp", n_blocks=5, policy_delay=1),
        "swfp_euler": dict(algo="swfp", n_blocks=5, ode_solver="euler"),
        # 0.1.0's rule and class default until 0.2.0, without a density on the box
        "swfp_clip": dict(algo="swfp", n_blocks=5, squash="clip"),
        "sac": dict(algo="sac"),
        # SWFP's policies step Adam with foreach=True; SAC with the same, for a like-for-like comparison
        "sac_foreach_adam": dict(algo="sac", policy_kwargs=dict(optimizer_kwargs=dict(foreach=True))),
        "td3": dict(algo="td3"),
    }
    rows = measure_speed(configs, obs)
    print(rows, flush=True)

    # What dominates SWFP's update
    model = pendulum_model("swfp", 0, batch_size=256, learning_starts=500, n_blocks=5)
    model.learn(600)
    profiler = cProfile.Profile()
    profiler.enable()
    model.train(gradient_steps=200, batch_size=256)
    profiler.disable()
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(r"sb3_swfp|linear|backward", 14)
    lines = [strip_paths(line) for line in stream.getvalue().splitlines() if "/" in line or "ncalls" in line]
    result = {
        "env": ENV_ID,
        "rows": rows,
        "profile": lines,
        "command": f"{CORE_COMMAND} --suite speed",
        "rounds": SPEED_ROUNDS,
        "train_chunk": SPEED_TRAIN_CHUNK,
        "predict_calls": SPEED_PREDICT_CALLS,
        "torch_threads": 1,
        "cpu_count": os.cpu_count(),
        "load_average": load_average,
        **provenance(),
    }
    write_result(results / "speed.json", result)


#: The options of the learning suite, which the speed suite does not read
SPEED_IGNORES = ("algos", "seeds", "timesteps", "eval_every", "squash", "jobs")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=CORE_COMMAND, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=("learning", "speed"), help="which benchmark to run")
    parser.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--timesteps", type=int, default=LEARNING_STEPS, help="runs with another budget stay out of the page")
    parser.add_argument("--eval-every", type=int, default=LEARNING_EVAL_EVERY)
    parser.add_argument("--squash", choices=SQUASHES, help="learning suite, SWFP only: this squash instead of the class default")
    parser.add_argument("--jobs", type=int, default=1, help="independent processes, one torch thread each")
    parser.add_argument("--render", action="store_true", help="only re-render the docs page")
    args = parser.parse_args(argv)
    # Before any run: a missing package would end a run in its worker, or the suite at its page
    require(("matplotlib",) if args.render else BENCHMARK_MODULES, "running the benchmarks", "zoo")
    if args.suite == "speed":  # its settings are fixed: an option here would be dropped silently
        given = given_options(parser, args, SPEED_IGNORES)
        if given:
            parser.error(f"--suite speed takes none of {', '.join(given)} (its rounds and chunks are fixed)")
    if args.squash and args.algos != ["swfp"]:
        parser.error("--squash is SWFP's: pass it with --algos swfp")
    if args.squash == DEFAULT_SQUASH:
        parser.error(f"--squash {args.squash} is the class default, whose runs are the SWFP rows: run without --squash")
    if args.suite == "learning":
        jobs = [(algo, seed, args.timesteps, args.eval_every, args.squash) for algo in args.algos for seed in args.seeds]
        run_jobs(run_learning, jobs, args.jobs, results=CORE_RESULTS)
    elif args.suite == "speed":
        run_speed(CORE_RESULTS)
    render_core(CORE_RESULTS, DOCS)


if __name__ == "__main__":
    main()
