"""Benchmark suite: SWFP against SAC, TD3 and RLPD-style SAC on offline-to-online tasks, with cost and sensitivity.

Every method of a task sees the same demonstrations and the same online budget (the methods:
:mod:`benchmarks.methods`; the tasks: :mod:`benchmarks.tasks`).  Raw results go to
``docs/results/benchmarks/<budget>/<task>/<method>_s<seed>.json`` (one file per run; finished runs are
skipped, so an interrupted suite resumes), and ``docs/benchmarks.md`` and ``docs/ablations.md`` are
rendered from whatever results exist.

Usage (from the repository root)::

    python -m benchmarks.suite --tasks toy pendulum --seeds 0 1 2 --jobs 2
    python -m benchmarks.suite --tasks hopper --methods swfp sac_demos --budget full
    python -m benchmarks.suite --tasks hopper --seeds 0 --variant actor_lr_1e-5 --swfp-kwargs '{"actor_learning_rate": 1e-5}'
    python -m benchmarks.suite --tasks hopper --seeds 0 --stochastic-eval 10   # also evaluate sampled actions
    python -m benchmarks.suite --tasks pendulum --methods swfp --seeds 0 --selection-evals   # also evaluate each copy the selection measured
    python -m benchmarks.suite --suite cost          # env-steps/s, predict latency vs N, one block vs whole chain
    python -m benchmarks.suite --suite sensitivity --jobs 2   # toy: score vs N and vs W2 scale
    python -m benchmarks.suite --suite bc_drift      # a cloned policy's return under more BC alone
    python -m benchmarks.suite --suite bc_drift --eval-episodes 40   # ... also over 40 episodes each time
    python -m benchmarks.suite --render              # only re-render docs/benchmarks.md and docs/ablations.md

The ``cpu`` budget keeps each run under ~30 minutes on one core of a laptop CPU; ``full`` is the
paper-scale budget (run it on a bigger machine: the code is the same, ``--device cuda`` moves the
networks to a GPU).
"""

from __future__ import annotations

import argparse
import inspect
import json
from typing import Any

from benchmarks import BENCHMARK_MODULES, DOCS, RESULTS, SUITE_COMMAND, flag, given_options
from benchmarks.cost import run_cost
from benchmarks.methods import DEFAULT_METHODS, RUN_METHODS, variant_method
from benchmarks.render import render
from benchmarks.runner import ROBUSTNESS_SEEDS, Run, run_jobs, run_one
from benchmarks.studies import (
    BC_DRIFT_TASKS,
    bc_drift_jobs,
    density_jobs,
    run_bc_drift,
    run_density,
    run_sensitivity,
    sensitivity_jobs,
)
from benchmarks.tasks import EXTRA_MODULES, TASKS
from sb3_swfp.common.checks import require

#: The options each suite reads (besides --suite and --render); it refuses the others'
SUITE_OPTIONS = {
    "runs": ("tasks", "methods", "seeds", "budget", "device", "jobs", "variant", "swfp_kwargs", "stochastic_eval", "selection_evals"),
    "robustness": ("tasks", "seeds", "device", "jobs", "stochastic_eval", "selection_evals"),
    "cost": ("device",),
    "sensitivity": ("seeds", "jobs"),
    "density": ("seeds", "jobs"),
    "bc_drift": ("tasks", "seeds", "jobs", "eval_episodes"),
}
OPTIONS = tuple(dict.fromkeys(option for used in SUITE_OPTIONS.values() for option in used))


def swfp_kwargs_problem(swfp_kwargs: dict[str, Any]) -> str | None:
    """What is wrong with a variant's SWFP arguments (one the suite sets itself, a name SWFP or its policy does not
    take), or None."""
    from sb3_swfp import SWFP
    from sb3_swfp.common.checks import POLICY_ARGS
    from sb3_swfp.swfp.policies import FlowPolicy

    set_by_the_suite = {"policy", "env", "seed", "device", "verbose", "tensorboard_log", "_init_setup_model"} & set(swfp_kwargs)
    if set_by_the_suite:
        return f"{', '.join(sorted(set_by_the_suite))} set by the suite itself (--seeds, --device), not a variant's"
    unknown = sorted(set(swfp_kwargs) - set(inspect.signature(SWFP.__init__).parameters))
    if unknown:
        return f"SWFP takes no argument {', '.join(unknown)}"
    policy_kwargs = swfp_kwargs.get("policy_kwargs") or {}
    if not isinstance(policy_kwargs, dict):
        return f"policy_kwargs must be a JSON object, got {policy_kwargs!r}"
    # SWFP passes the spaces and the schedule itself, and takes the flow's arguments as its own
    taken = set(inspect.signature(FlowPolicy.__init__).parameters) - {"self", "observation_space", "action_space", "lr_schedule", *POLICY_ARGS}
    unknown = sorted(set(policy_kwargs) - taken)
    if unknown:
        return f"policy_kwargs: {', '.join(unknown)} not FlowPolicy's to take here (n_blocks, squash, ...: give them to SWFP)"
    if "demonstrations" in (swfp_kwargs.get("replay_buffer_kwargs") or {}):
        return "replay_buffer_kwargs: the task gives the demonstrations"
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=SUITE_COMMAND, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=("runs", "robustness", "cost", "sensitivity", "density", "bc_drift"), default="runs")
    parser.add_argument("--tasks", nargs="+", default=None, choices=list(TASKS), help="default: toy pendulum (robustness: all; bc_drift: hopper walker)")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), choices=RUN_METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help=f"default: 0 1 2 (robustness: {' '.join(map(str, ROBUSTNESS_SEEDS))})")
    parser.add_argument("--budget", choices=("cpu", "long", "full"), default="cpu")
    parser.add_argument("--device", default="cpu", help="torch device of every model ('cuda' on a GPU machine)")
    parser.add_argument("--jobs", type=int, default=1, help="independent processes, one torch thread each")
    parser.add_argument("--variant", default=None, help="run an SWFP variant under this name (with --swfp-kwargs)")
    parser.add_argument("--swfp-kwargs", default=None, help="JSON dict of SWFP arguments for --variant, e.g. '{\"bc_coef\": 1.0}'")
    parser.add_argument(
        "--eval-episodes", type=int, default=None, help="bc_drift only: also evaluate every policy over this many episodes"
    )
    parser.add_argument(
        "--stochastic-eval",
        type=int,
        default=None,
        metavar="EPISODES",
        help="runs and robustness: also evaluate every policy with sampled actions over this many episodes (curve_stochastic)",
    )
    parser.add_argument(
        "--selection-evals",
        action="store_true",
        help="runs and robustness, SWFP only: also evaluate the copy each decision of the policy selection measured (selection_phases)",
    )
    parser.add_argument("--render", action="store_true", help="only re-render docs/benchmarks.md and docs/ablations.md")
    args = parser.parse_args(argv)
    # Before any run: a missing package would end a run in its worker, or the suite at its page
    require(("matplotlib",) if args.render else BENCHMARK_MODULES, "running the benchmarks", "zoo")
    if not args.render:
        # An option a suite does not read would be dropped silently (a variant run as the preset, a GPU run on the CPU)
        used = SUITE_OPTIONS[args.suite]
        ignored = given_options(parser, args, [option for option in OPTIONS if option not in used])
        if ignored:
            parser.error(f"--suite {args.suite} does not use {', '.join(ignored)} (it uses {' '.join(map(flag, used))})")
    robustness = args.suite == "robustness"
    args.tasks = args.tasks or {"robustness": list(TASKS), "bc_drift": list(BC_DRIFT_TASKS)}.get(args.suite, ["toy", "pendulum"])
    args.seeds = args.seeds or (list(ROBUSTNESS_SEEDS) if robustness else [0, 1, 2])
    for task in dict.fromkeys(args.tasks) if not args.render else ():
        if TASKS[task].extra is not None:
            require(EXTRA_MODULES[TASKS[task].extra], f"the {task} task", TASKS[task].extra)
    if (args.variant is None) != (args.swfp_kwargs is None):
        parser.error("--variant and --swfp-kwargs go together")
    if args.variant is not None and args.methods != parser.get_default("methods"):
        parser.error(f"--variant runs SWFP with --swfp-kwargs; it does not run --methods {' '.join(args.methods)}: run those separately")
    if args.selection_evals and args.variant is None and args.suite == "runs" and set(args.methods) != {"swfp"}:
        parser.error(f"--selection-evals evaluates SWFP's policy selection: run it with --methods swfp, not {' '.join(args.methods)}")
    for option in ("eval_episodes", "stochastic_eval"):
        if getattr(args, option) is not None and getattr(args, option) < 1:
            parser.error(f"{flag(option)} is a positive count of episodes, got {getattr(args, option)}")
    if args.variant is not None:
        try:
            variant = (variant_method(args.variant), json.loads(args.swfp_kwargs))
        except ValueError as exc:
            parser.error(f"--variant/--swfp-kwargs: {exc}")
        if not isinstance(variant[1], dict):
            parser.error(f"--swfp-kwargs must be a JSON object, got {args.swfp_kwargs!r}")
        if problem := swfp_kwargs_problem(variant[1]):
            parser.error(f"--swfp-kwargs: {problem}")
    # Caught here, before any run starts, rather than in a worker after another run's training
    if args.jobs < 1:
        parser.error(f"--jobs is a number of processes, at least 1, got {args.jobs}")
    if any(not 0 <= seed < 2**32 for seed in args.seeds):
        parser.error(f"--seeds must be in [0, 2**32 - 1] (numpy's), got {' '.join(map(str, args.seeds))}")
    # The same run twice would train twice from one checkpoint
    args.seeds, args.tasks, args.methods = (list(dict.fromkeys(values)) for values in (args.seeds, args.tasks, args.methods))
    if robustness and not set(args.seeds) <= set(ROBUSTNESS_SEEDS):
        parser.error(
            f"--suite robustness runs the fresh seeds {' '.join(map(str, ROBUSTNESS_SEEDS))}, which played no part in "
            f"choosing the preset; its table would count seeds {' '.join(map(str, sorted(set(args.seeds) - set(ROBUSTNESS_SEEDS))))} as fresh"
        )
    if args.suite == "runs":
        for task in args.tasks:
            try:
                TASKS[task].steps(args.budget)
            except ValueError as exc:
                parser.error(f"--budget {args.budget}: {exc}")
    if not args.render:
        if args.suite == "cost":
            run_cost(args.device, RESULTS)
        else:
            if args.suite == "runs":
                function = run_one
                if args.variant is not None:
                    jobs: list[Any] = [
                        Run(
                            t, variant[0], s, args.budget, args.device, variant[1],
                            stochastic_eval_episodes=args.stochastic_eval, selection_evals=args.selection_evals,
                        )  # fmt: skip
                        for t in args.tasks
                        for s in args.seeds
                    ]
                else:
                    jobs = [
                        Run(t, m, s, args.budget, args.device, stochastic_eval_episodes=args.stochastic_eval, selection_evals=args.selection_evals)
                        for t in args.tasks
                        for m in args.methods
                        for s in args.seeds
                    ]
            elif robustness:
                function = run_one
                jobs = [
                    Run(
                        t, "swfp", s, "cpu", args.device, folder="robustness",
                        stochastic_eval_episodes=args.stochastic_eval, selection_evals=args.selection_evals,
                    )  # fmt: skip
                    for t in args.tasks
                    for s in args.seeds
                ]
            elif args.suite == "density":
                function, jobs = run_density, density_jobs(args.seeds)
            elif args.suite == "bc_drift":
                function, jobs = run_bc_drift, bc_drift_jobs(args.tasks, args.seeds, args.eval_episodes)
            else:
                function, jobs = run_sensitivity, sensitivity_jobs(args.seeds)
            run_jobs(function, jobs, args.jobs, results=RESULTS)
    render(RESULTS, DOCS)


if __name__ == "__main__":
    main()
