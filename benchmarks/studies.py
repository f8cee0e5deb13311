"""The studies of the suite: sensitivity to N and to the W2 scale (paper Fig. 5, the toy), where the
policy's density lives (clip, tanh, soft clip: the rule of docs/robustness.md), and how far more
behaviour cloning alone moves a cloned policy's evaluation (BC drift, docs/robustness.md §11).

Each run writes one JSON under ``<results>/sensitivity/``, ``<results>/density/`` or
``<results>/bc_drift/``; finished runs are skipped.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import RESULTS, SUITE_COMMAND, methods, provenance, shown, write_result
from benchmarks.methods import make_model
from benchmarks.runner import describe, evaluate, toy_scores
from benchmarks.tasks import TASKS, make_demonstrations, make_env

# --- Sensitivity (Fig. 5): the toy, score vs N and vs W2 scale --------------------------------------

SENSITIVITY_N = (1, 2, 3, 5, 8)
SENSITIVITY_W2 = (0.1, 0.4, 1.0, 5.0)


def sensitivity_jobs(seeds: list[int]) -> list[tuple[str, float, int]]:
    """The sensitivity suite's runs: each value of N and of the W2 scale, per seed."""
    grid = [("n_blocks", float(n)) for n in SENSITIVITY_N] + [("w2_coef", w) for w in SENSITIVITY_W2]
    return [(name, value, seed) for name, value in grid for seed in seeds]


def run_sensitivity(job: tuple[str, float, int], results: Path = RESULTS) -> str:
    """One toy fine-tuning run with ``n_blocks`` or ``w2_coef`` changed; scores 2000 stochastic samples."""
    name, value, seed = job
    out = results / "sensitivity" / f"{name}{value:g}_s{seed}.json"
    if out.exists():
        return f"skip {shown(out)}"
    import torch as th

    from sb3_swfp.envs.toy import high_reward_mode_share, toy_reward

    th.set_num_threads(1)
    task = TASKS["toy"]
    start = time.perf_counter()
    override = {"n_blocks": int(value)} if name == "n_blocks" else {"w2_coef": float(value)}
    model = make_model("swfp", task, make_demonstrations(task), seed, "cpu", "cpu", override)

    def score() -> dict[str, float]:
        actions, _ = model.predict(np.zeros((2000, 1), dtype=np.float32), deterministic=False)
        return {"mean_reward": float(toy_reward(actions).mean()), "high_reward_share": high_reward_mode_share(actions)}

    before = score()
    model.learn(task.cpu_steps)
    result = {
        "parameter": name, "value": value, "seed": seed, "bc": before, "final": score(), "wall_s": time.perf_counter() - start,
        # what the toy's entry was when the run was made (the page's table mixes nothing else)
        "hyperparams": {key: repr(v) for key, v in describe(model).items()},
        "command": f"{SUITE_COMMAND} --suite sensitivity --seeds {seed}", **provenance(),
    }  # fmt: skip
    write_result(out, result)
    return f"done {shown(out)}"


# --- Density: where the policy's density lives (clip, tanh, soft clip) -------------------------------

DENSITY_SQUASHES = ("clip", "tanh", "soft_clip")
#: Toy landscapes no setting was chosen on: other high-reward modes, narrower bumps
HELD_OUT_LANDSCAPES: dict[str, dict[str, Any]] = {
    "narrow": dict(high_reward_modes=(0, 3), high_reward_std=0.15),
    "shifted": dict(high_reward_modes=(2, 5, 7), high_reward_std=0.2),
}
#: Tasks whose behaviour cloning is compared under each squash (their demonstrations reach the bounds)
DENSITY_BC_TASKS = ("pendulum", "hopper", "walker", "halfcheetah")
DRIFT_CHECKPOINTS = (0, 100, 300, 1000)


def density_jobs(seeds: list[int]) -> list[tuple]:
    """The density suite's runs: zero-critic drift, held-out toy landscapes, behaviour cloning; per squash and seed."""
    jobs: list[tuple] = [("drift", "toy", squash, seed) for squash in DENSITY_SQUASHES for seed in seeds]
    jobs += [("landscape", name, squash, seed) for name in HELD_OUT_LANDSCAPES for squash in DENSITY_SQUASHES for seed in seeds]
    jobs += [("bc", task, squash, seed) for task in DENSITY_BC_TASKS for squash in DENSITY_SQUASHES for seed in seeds]
    return jobs


def run_density(job: tuple[str, str, str, int], results: Path = RESULTS) -> str:
    """One run of the density suite (see ``density_jobs``); writes ``density/<kind>_<name>_<squash>_s<seed>.json``."""
    kind, name, squash, seed = job
    out = results / "density" / f"{kind}_{name}_{squash}_s{seed}.json"
    if out.exists():
        return f"skip {shown(out)}"
    import dataclasses

    import torch as th
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.utils import polyak_update

    from sb3_swfp import SWFP
    from sb3_swfp.envs.toy import HIGH_REWARD_MODES, TOY_BC_KWARGS, TOY_SWFP_KWARGS, ToyBanditEnv, toy_demonstrations

    th.set_num_threads(1)
    start = time.perf_counter()
    obs = np.zeros((2000, 1), dtype=np.float32)
    result: dict[str, Any] = {"kind": kind, "name": name, "squash": squash, "seed": seed}
    if kind == "drift":
        # The toy's own settings; then a critic that says nothing (Q = 0) and actor updates only
        model = SWFP("FlowPolicy", ToyBanditEnv(), seed=seed, squash=squash, device="cpu", **TOY_SWFP_KWARGS)
        model.pretrain(toy_demonstrations(1000, seed=0), **TOY_BC_KWARGS)
        n_critics = len(model.critic.q_networks)
        model.critic.forward = lambda observations, actions: tuple(actions.new_zeros(len(actions), 1) for _ in range(n_critics))
        batch, ent_coef = th.zeros(256, 1), model._current_ent_coef()
        checkpoints = {}
        for update in range(DRIFT_CHECKPOINTS[-1] + 1):
            if update in DRIFT_CHECKPOINTS:
                checkpoints[update] = toy_scores(model.predict(obs, deterministic=False)[0], HIGH_REWARD_MODES)
            # The actor's JKO step alone (train() would also step the critic and the temperature), then the
            # target actor follows, as in train()
            model._actor_update(batch, ent_coef)
            polyak_update(model.actor.parameters(), model.actor_target.parameters(), model.actor_tau)
        result["checkpoints"] = checkpoints
    elif kind == "landscape":
        landscape = HELD_OUT_LANDSCAPES[name]
        model = SWFP("FlowPolicy", ToyBanditEnv(**landscape), seed=seed, squash=squash, device="cpu", **TOY_SWFP_KWARGS)
        model.pretrain(toy_demonstrations(1000, seed=0, **landscape), **TOY_BC_KWARGS)
        result["bc"] = toy_scores(model.predict(obs, deterministic=False)[0], landscape["high_reward_modes"])
        model.learn(TASKS["toy"].cpu_steps)
        result["final"] = toy_scores(model.predict(obs, deterministic=False)[0], landscape["high_reward_modes"])
        result["landscape"] = landscape
    else:
        task = dataclasses.replace(TASKS[name], eval_episodes=10)
        model = make_model("swfp", task, make_demonstrations(task), seed, "cpu", "cpu", {"squash": squash})
        result["bc_return"], result["bc_return_std"], result["bc_success"] = evaluate(model, Monitor(make_env(task.env_id)), task, seed)
    result["wall_s"] = time.perf_counter() - start
    result["command"] = f"{SUITE_COMMAND} --suite density --jobs 2"
    result.update(provenance())
    write_result(out, result)
    return f"done {shown(out)} in {result['wall_s']:.0f}s"


# --- BC drift: the evaluation of a cloned policy under more behaviour cloning, no online step --------

#: Rounds of more BC after the preset's cloning, each of this many steps at the schedule's final rate
BC_DRIFT_ROUNDS, BC_DRIFT_STEPS = 8, 250
BC_DRIFT_TASKS = ("hopper", "walker")


def bc_drift_jobs(tasks: list[str], seeds: list[int], eval_episodes: int | None = None) -> list[tuple[str, int, int | None]]:
    """The BC drift suite's runs: one per task and seed (``eval_episodes``: see :func:`run_bc_drift`)."""
    return [(task, seed, eval_episodes) for task in tasks for seed in seeds]


def run_bc_drift(job: tuple[str, int, int | None], results: Path = RESULTS) -> str:
    """Clone as the suite's SWFP runs do (the same BC start per seed), then evaluate after every round of more BC.

    The evaluation is the runs' (``evaluate``: the same start states each time), so the spread of the
    curve is what a change of the policy that fits the demonstrations as well moves the return by,
    with no critic and no online step.  Each round is one ``pretrain`` call: a new AdamW, and batches
    drawn by a generator seeded with the model's seed (every round sees the same 250 batches).
    Writes ``bc_drift/<task>_s<seed>.json``; with ``eval_episodes`` (the job's third item) every
    evaluation is also made over that many episodes, in ``curve_wide``, so that the two spreads can be
    compared on the same policies (``bc_drift/<task>_s<seed>_e<eval_episodes>.json``).
    """
    name, seed, eval_episodes = job
    wide = f"_e{eval_episodes}" if eval_episodes else ""
    out = results / "bc_drift" / f"{name}_s{seed}{wide}.json"
    if out.exists():
        return f"skip {shown(out)}"
    import dataclasses

    import torch as th
    from stable_baselines3.common.monitor import Monitor

    from sb3_swfp.presets import PRETRAIN_KWARGS

    th.set_num_threads(1)
    start = time.perf_counter()
    task = TASKS[name]
    wide_task = dataclasses.replace(task, eval_episodes=eval_episodes) if eval_episodes else None
    demos = make_demonstrations(task)
    model = make_model("swfp", task, demos, seed, "cpu", "cpu")
    env = Monitor(make_env(task.env_id))
    curve: list[tuple[int, float]] = []
    curve_wide: list[tuple[int, float]] = []

    def evaluate_at(steps: int) -> None:
        curve.append((steps, evaluate(model, env, task, seed)[0]))
        if wide_task is not None:
            curve_wide.append((steps, evaluate(model, env, wide_task, seed)[0]))

    evaluate_at(0)
    # The rounds clone as make_model's cloning did (the task's entry over pretrain's defaults), at its final rate
    bc_kwargs = {**PRETRAIN_KWARGS, **methods.swfp_o2o_entry(task.env_id)[1]}  # looked up at call time, as make_model does
    rate = bc_kwargs["final_learning_rate"]
    bc_kwargs.update(gradient_steps=BC_DRIFT_STEPS, learning_rate=rate)
    for round_ in range(1, BC_DRIFT_ROUNDS + 1):
        model.pretrain(demos, **bc_kwargs)
        evaluate_at(round_ * BC_DRIFT_STEPS)
    command = f"{SUITE_COMMAND} --suite bc_drift --tasks {name} --seeds {seed}"
    result = {
        "task": name, "seed": seed, "curve": curve, "learning_rate": rate, "wall_s": time.perf_counter() - start,
        "command": command + (f" --eval-episodes {eval_episodes}" if eval_episodes else ""), **provenance(),
    }  # fmt: skip
    if wide_task is not None:
        result.update(eval_episodes=task.eval_episodes, eval_episodes_wide=eval_episodes, curve_wide=curve_wide)
    write_result(out, result)
    return f"done {shown(out)} in {result['wall_s']:.0f}s"
