"""Benchmark suite: SWFP against SAC and TD3 on offline-to-online tasks, with cost and sensitivity.

Every method of a task sees the same demonstrations and the same online budget:

- ``bc``: the flow policy behaviour-cloned on the demonstrations, no online step (the step-0
  evaluation of the ``swfp`` runs: same demonstrations, same BC, same seeds);
- ``swfp``: BC, then SWFP fine-tuning (``zoo_hyperparams/swfp_o2o.yml``);
- ``sac`` / ``td3``: from scratch (rl-zoo3 settings: ``zoo_hyperparams/{sac,td3}.yml`` or rl-zoo3's own);
- ``sac_demos`` / ``td3_demos``: the same, with the demonstrations in the replay buffer
  (``DemoReplayBuffer``, the demo share of SWFP's entry) and learning from the first step;
- ``rlpd``: RLPD-style SAC (``sb3_swfp.rlpd``): rl-zoo3's SAC settings with LayerNorm critics, half of
  every batch from the demonstrations, learning from the first step and two updates per env step;
- ``tqc`` / ``crossq`` (sb3-contrib): extra rows, from scratch, where time allows;
- ``swfp-<name>``: a named SWFP variant, the ``swfp`` entry with ``--swfp-kwargs`` on top
  (``--variant <name>``), for the ablation page.

Raw results go to ``docs/results/benchmarks/<budget>/<task>/<method>_s<seed>.json`` (one file per
run; finished runs are skipped, so an interrupted suite resumes), and ``docs/benchmarks.md`` is
rendered from whatever results exist: nothing in it is typed by hand.

Usage::

    python examples/benchmark_suite.py --tasks toy pendulum --seeds 0 1 2 --jobs 2
    python examples/benchmark_suite.py --tasks hopper --methods swfp sac_demos --budget full
    python examples/benchmark_suite.py --tasks hopper --seeds 0 --variant actor_lr_1e-5 --swfp-kwargs '{"actor_learning_rate": 1e-5}'
    python examples/benchmark_suite.py --suite cost          # env-steps/s, predict latency vs N, one block vs whole chain
    python examples/benchmark_suite.py --suite sensitivity --jobs 2   # toy: score vs N and vs W2 scale
    python examples/benchmark_suite.py --render              # only re-render docs/benchmarks.md

The ``cpu`` budget keeps each run under ~30 minutes on one core of a laptop CPU; ``full`` is the
paper-scale budget (run it on a bigger machine: the code is the same, ``--device cuda`` moves the
networks to a GPU).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results" / "benchmarks"
PAGE = ROOT / "docs" / "benchmarks.md"
ABLATIONS = ROOT / "docs" / "ablations.md"
#: Results folder of runs made with settings of earlier releases, kept for the record (docs/ablations.md)
ARCHIVE = "archive"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmark_core import evaluate_zoo_strings, measure_speed, speed_ratios, zoo_hyperparams  # noqa: E402  (examples/ is not a package)

METHODS = ("bc", "swfp", "rlpd", "sac", "td3", "sac_demos", "td3_demos", "tqc", "crossq")
RUN_METHODS = tuple(m for m in METHODS if m != "bc")  # bc is read off the swfp runs
DEFAULT_METHODS = ("swfp", "rlpd", "sac", "td3", "sac_demos", "td3_demos")
LABELS = {
    "bc": "BC flow (no online step)",
    "swfp": "SWFP (BC + online)",
    "rlpd": "RLPD-style SAC (demos, UTD 2)",
    "sac": "SAC from scratch",
    "td3": "TD3 from scratch",
    "sac_demos": "SAC + demos in buffer",
    "td3_demos": "TD3 + demos in buffer",
    "tqc": "TQC from scratch",
    "crossq": "CrossQ from scratch",
}


@dataclass(frozen=True)
class Task:
    """One benchmark task: env, demonstrations, budgets and evaluation protocol.

    :param env_id: Gymnasium id.
    :param demos: How the demonstrations are made: ``"toy"``, ``"scripted:<noise>:<episodes>"``
        (the shipped scripted expert with relative action noise) or ``"file:<name>"`` (shipped in
        ``sb3_swfp/data/demos``).
    :param cpu_steps: Online env steps per run under the ``cpu`` budget.
    :param full_steps: Online env steps under the ``full`` budget.
    :param eval_every: Evaluate every this many env steps.
    :param eval_episodes: Episodes per evaluation.
    :param deterministic_eval: Deterministic actions (x0 = 0 for flows); the toy samples instead.
    :param learning_starts_cap: Under the ``cpu`` and ``long`` budgets, from-scratch methods start learning
        after at most this many steps (rl-zoo3's MuJoCo value of 10,000 would leave nothing of a short run).
    :param long_steps: Online env steps under the ``long`` budget (None: the task has none).
    """

    env_id: str
    demos: str
    cpu_steps: int
    full_steps: int
    eval_every: int
    eval_episodes: int
    deterministic_eval: bool = True
    learning_starts_cap: int = 1000
    long_steps: int | None = None

    def steps(self, budget: str) -> int:
        """Online env steps under ``budget``: ``cpu``, ``long`` (MuJoCo: whether fine-tuning keeps improving) or ``full``."""
        steps = {"cpu": self.cpu_steps, "long": self.long_steps, "full": self.full_steps}[budget]
        if steps is None:
            raise ValueError(f"{self.env_id} has no {budget!r} budget")
        return steps

    @property
    def decimals(self) -> int:
        """Decimals of the scores in the tables (the toy's rewards are below 1)."""
        return 3 if self.demos == "toy" else 1

    @property
    def success_metric(self) -> bool:
        """PointMaze: an episode succeeds when it collects any (sparse) reward, i.e. reaches the goal."""
        return self.env_id.startswith("PointMaze")


TASKS: dict[str, Task] = {
    "toy": Task("SWFPToyBandit-v0", "toy", 4000, 20_000, 500, 500, deterministic_eval=False),
    "pendulum": Task("Pendulum-v1", "scripted:0.6:10", 8000, 20_000, 1000, 10),
    "umaze": Task("PointMaze_UMaze-v3", "scripted:3.0:20", 10_000, 100_000, 2000, 10),
    "medium": Task("PointMaze_Medium-v3", "scripted:3.0:20", 15_000, 300_000, 3000, 10),
    "hopper": Task("Hopper-v5", "file:Hopper-v5", 10_000, 1_000_000, 2000, 5, learning_starts_cap=2000, long_steps=30_000),
    "walker": Task("Walker2d-v5", "file:Walker2d-v5", 10_000, 1_000_000, 2000, 5, learning_starts_cap=2000, long_steps=30_000),
    "halfcheetah": Task("HalfCheetah-v5", "file:HalfCheetah-v5", 10_000, 1_000_000, 2000, 5, learning_starts_cap=2000, long_steps=30_000),
}

#: Demonstration seed: every method and every seed of a task sees the same demonstrations
DEMO_SEED = 0


def make_env(env_id: str):
    """The env, with gymnasium-robotics registered for PointMaze and the toy registered by importing sb3_swfp."""
    import sb3_swfp.envs  # noqa: F401  (registers SWFPToyBandit-v0)
    from sb3_swfp.experts import make_expert_env

    return make_expert_env(env_id)


def make_demonstrations(task: Task):
    """The task's demonstrations (deterministic: the same for every method and seed)."""
    from sb3_swfp.demos import collect_demonstrations, load_demonstrations

    kind, _, spec = task.demos.partition(":")
    if kind == "toy":
        from sb3_swfp.envs.toy import toy_demonstrations

        return toy_demonstrations(1000, seed=DEMO_SEED)
    if kind == "scripted":
        from sb3_swfp.experts import make_expert

        noise, episodes = spec.split(":")
        env = make_env(task.env_id)
        expert = make_expert(env, noise_std=float(noise), seed=DEMO_SEED)
        return collect_demonstrations(env, expert, n_episodes=int(episodes), seed=DEMO_SEED)
    if kind == "file":
        from sb3_swfp.data import demo_path

        return load_demonstrations(demo_path(spec))
    raise ValueError(f"unknown demonstration source {task.demos!r}")


def swfp_o2o_entry(env_id: str) -> tuple[dict[str, Any], dict[str, Any], float | None]:
    """SWFP kwargs, BC kwargs and demo ratio (None: no demos in the buffer) from ``swfp_o2o.yml``."""
    import yaml

    entry = evaluate_zoo_strings(yaml.safe_load((ROOT / "zoo_hyperparams" / "swfp_o2o.yml").read_text())[env_id])
    ((_, bc_kwargs),) = entry.pop("callback")[0].items()
    bc_kwargs = {key: value for key, value in bc_kwargs.items() if key != "demonstrations"}
    demo_ratio = None
    if "replay_buffer_kwargs" in entry:  # the runner puts its own demonstrations in the buffer
        entry.pop("replay_buffer_class")
        demo_ratio = float(entry.pop("replay_buffer_kwargs")["demo_ratio"])
    for zoo_only in ("n_timesteps", "monitor_kwargs"):
        entry.pop(zoo_only, None)
    return entry, bc_kwargs, demo_ratio


def with_overrides(kwargs: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with a variant's arguments on top; ``policy_kwargs`` are merged key by key, so that a
    variant can add e.g. ``critic_layer_norm`` and keep the entry's network sizes."""
    merged = {**kwargs, **overrides}
    if "policy_kwargs" in overrides:
        merged["policy_kwargs"] = {**kwargs.get("policy_kwargs", {}), **overrides["policy_kwargs"]}
    return merged


#: What the RLPD-style helper sets in rl-zoo3's SAC entries (the policy class too)
RLPD_SETS = ("policy", "replay_buffer_class", "replay_buffer_kwargs", "learning_starts", "train_freq", "gradient_steps")


def baseline_kwargs(algo: str, task: Task, budget: str) -> dict[str, Any]:
    """rl-zoo3 settings of ``algo`` for the task (ours where we have an entry), SB3 defaults otherwise."""
    try:
        kwargs = zoo_hyperparams(algo, task.env_id)
    except KeyError:
        kwargs = {"policy": "MultiInputPolicy" if task.success_metric else "MlpPolicy"}
    kwargs.pop("monitor_kwargs", None)
    if budget in ("cpu", "long"):
        kwargs["learning_starts"] = min(kwargs.get("learning_starts", 100), task.learning_starts_cap)
    return kwargs


def make_model(method: str, task: Task, demos, seed: int, budget: str, device: str, overrides: dict[str, Any] | None = None):
    """The model of ``method`` for ``task`` (for ``swfp``, behaviour-cloned already)."""
    from stable_baselines3 import SAC, TD3

    from sb3_swfp import SWFP
    from sb3_swfp.demos import DemoReplayBuffer

    env = make_env(task.env_id)
    if method == "swfp":
        kwargs, bc_kwargs, demo_ratio = swfp_o2o_entry(task.env_id)
        kwargs = with_overrides(kwargs, overrides or {})
        policy = kwargs.pop("policy")
        if demo_ratio is not None:
            kwargs.update(replay_buffer_class=DemoReplayBuffer, replay_buffer_kwargs=dict(demonstrations=demos, demo_ratio=demo_ratio))
        model = SWFP(policy, env, seed=seed, device=device, **kwargs)
        model.pretrain(demos, **bc_kwargs)
        return model
    if method == "rlpd":
        from sb3_swfp.rlpd import rlpd_sac_kwargs

        # rl-zoo3's SAC settings for the task, made RLPD-style (its buffer, start and update ratio win)
        kwargs = {key: value for key, value in baseline_kwargs("sac", task, budget).items() if key not in RLPD_SETS}
        kwargs = rlpd_sac_kwargs(demos, dict_observations=task.success_metric, **kwargs, **(overrides or {}))
        return SAC(env=env, seed=seed, device=device, **kwargs)
    algo, _, with_demos = method.partition("_")
    if algo in ("tqc", "crossq"):
        from sb3_contrib import TQC, CrossQ

        cls = {"tqc": TQC, "crossq": CrossQ}[algo]
    else:
        cls = {"sac": SAC, "td3": TD3}[algo]
    kwargs = baseline_kwargs(algo, task, budget)
    if with_demos:
        _, _, demo_ratio = swfp_o2o_entry(task.env_id)
        for her_only in ("replay_buffer_class", "replay_buffer_kwargs"):
            kwargs.pop(her_only, None)
        kwargs.update(
            replay_buffer_class=DemoReplayBuffer,
            replay_buffer_kwargs=dict(demonstrations=demos, demo_ratio=demo_ratio or 0.25),
            learning_starts=0,  # the demonstrations are there from the first step, as for SWFP
        )
    kwargs.update(overrides or {})
    policy = kwargs.pop("policy")
    return cls(policy, env, seed=seed, device=device, **kwargs)


#: Evaluation episodes of run ``seed`` start from the states of ``env.reset(seed=EVAL_SEED + seed)``
EVAL_SEED = 10_000


#: Written into each result: older runs (without it) drew new start states at every evaluation
EVAL_PROTOCOL = "same start states at every evaluation"


def evaluate(model, env, task: Task, seed: int) -> tuple[float, float, float | None]:
    """Mean and std of the episode returns, and the success rate on PointMaze.

    The env is reseeded first, and a stochastic policy draws from torch's generator seeded the same way
    (forked: training's random numbers are not touched), so every evaluation of a run plays the same
    start states, goals and noise: two evaluations of a run differ by the policy only.
    """
    import torch as th
    from stable_baselines3.common.evaluation import evaluate_policy

    env.reset(seed=EVAL_SEED + seed)
    devices = [model.device.index or 0] if model.device.type == "cuda" else []
    with th.random.fork_rng(devices=devices):
        th.manual_seed(EVAL_SEED + seed)
        returns, _ = evaluate_policy(
            model, env, n_eval_episodes=task.eval_episodes, deterministic=task.deterministic_eval, return_episode_rewards=True
        )
    success = float(np.mean(np.asarray(returns) > 0)) if task.success_metric else None
    return float(np.mean(returns)), float(np.std(returns)), success


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def result_path(folder: str, task_name: str, method: str, seed: int) -> Path:
    """Where a run's JSON goes: ``folder`` is the budget's name, or ``robustness`` for that suite."""
    return RESULTS / folder / task_name / f"{method}_s{seed}.json"


#: Method names of SWFP variants are this prefix and the variant's name
VARIANT_PREFIX = "swfp-"


def variant_method(name: str) -> str:
    """The method name of the SWFP variant ``name`` (its result files and table row)."""
    if not name or not all(c.isalnum() or c in "._-" for c in name):
        raise ValueError(f"variant names use letters, digits, '.', '_' and '-' only, got {name!r}")
    return VARIANT_PREFIX + name


def variant_name(method: str) -> str | None:
    """The variant's name of a method name made by ``variant_method``; None for the methods of ``METHODS``."""
    return method[len(VARIANT_PREFIX) :] if method.startswith(VARIANT_PREFIX) else None


def run_one(job: tuple) -> str:
    """One (task, method, seed) run: evaluate at step 0 and every ``eval_every`` steps; write its JSON.

    ``job`` is ``(task, method, seed, budget, device)``, with a sixth item, the SWFP keyword
    arguments of a variant (``method`` then is ``variant_method(name)``) or None, and a seventh, the
    results folder when it is not the budget's (``"robustness"``).
    """
    task_name, method, seed, budget, device, *rest = job
    swfp_kwargs = rest[0] if rest else None
    folder = rest[1] if len(rest) > 1 and rest[1] else budget
    if (swfp_kwargs is not None) != (variant_name(method) is not None):
        raise ValueError(f"{method!r}: SWFP keyword arguments go with variants (swfp-<name>) only")
    out = result_path(folder, task_name, method, seed)
    if out.exists():
        return f"skip {_shown(out)}"
    import torch as th
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.monitor import Monitor

    th.set_num_threads(1)
    task = TASKS[task_name]
    steps = task.steps(budget)
    start = time.perf_counter()
    demos = make_demonstrations(task)
    eval_env = Monitor(make_env(task.env_id))
    checkpoint = Checkpoint(out.with_suffix(".checkpoint"))
    state = checkpoint.state()
    if state is None:
        model = make_model("swfp" if swfp_kwargs is not None else method, task, demos, seed, budget, device, swfp_kwargs)
        state = {"curve": [(0, *evaluate(model, eval_env, task, seed))], "online_wall_s": 0.0, "resumed_at": []}
    else:  # a run stopped before its end goes on from its last evaluation
        model = checkpoint.load_model(method, make_env(task.env_id), device)
        state["resumed_at"].append(model.num_timesteps)
    curve = state["curve"]

    class Evaluate(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % task.eval_every == 0:
                curve.append((self.num_timesteps, *evaluate(self.model, eval_env, task, seed)))
                checkpoint.save(self.model, {**state, "online_wall_s": state["online_wall_s"] + time.perf_counter() - online_start})
            return True

    error = None
    online_start = time.perf_counter()
    try:
        model.learn(steps - model.num_timesteps, callback=Evaluate(), reset_num_timesteps=not state["resumed_at"])
    except FloatingPointError as exc:  # SWFP's NaN guard: keep the run and report the divergence
        error = f"{type(exc).__name__} at env step {model.num_timesteps}: {exc}"
    result = {
        "task": task_name,
        "task_spec": asdict(task),
        "toy_modes": _toy_modes(model) if task.demos == "toy" else None,
        "method": method,
        "seed": seed,
        "budget": budget,
        "online_steps": steps,
        "curve": curve,
        "error": error,
        "wall_s": time.perf_counter() - start,
        "online_wall_s": state["online_wall_s"] + time.perf_counter() - online_start,
        # env steps at which a stopped run went on from its checkpoint (its random numbers differ from then on)
        "resumed_at": state["resumed_at"],
        "demos": {"transitions": len(demos), "episode_return_mean": _demo_return(demos)},
        "hyperparams": {key: repr(value) for key, value in _describe(model).items()},
        "swfp_kwargs": swfp_kwargs,
        "command": _command(task_name, method, seed, budget, swfp_kwargs, folder),
        "device": str(model.device),
        "torch_threads": th.get_num_threads(),
        "eval_protocol": EVAL_PROTOCOL,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    checkpoint.remove()
    return f"done {_shown(out)} in {result['wall_s']:.0f}s"


class Checkpoint:
    """A run's model, replay buffer and evaluations so far, saved at every evaluation, so that a run stopped
    before its end (the session ended, the machine went down) goes on from there.  ``state.json`` is
    written last, atomically: a checkpoint without it is incomplete and ignored."""

    def __init__(self, folder: Path):
        self.folder = folder

    def state(self) -> dict[str, Any] | None:
        path = self.folder / "state.json"
        return json.loads(path.read_text()) if path.exists() else None

    def save(self, model, state: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "state.json").unlink(missing_ok=True)
        model.save(self.folder / "model.zip")
        model.save_replay_buffer(self.folder / "replay_buffer.pkl")
        tmp = self.folder / "state.json.tmp"
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.folder / "state.json")

    def load_model(self, method: str, env, device: str):
        """The saved model, with its replay buffer, to train on in ``env``."""
        from stable_baselines3 import SAC, TD3

        from sb3_swfp import SWFP

        if method == "swfp" or variant_name(method) is not None:
            cls = SWFP
        elif method in ("tqc", "crossq"):
            from sb3_contrib import TQC, CrossQ

            cls = {"tqc": TQC, "crossq": CrossQ}[method]
        else:
            cls = {"sac": SAC, "td3": TD3, "rlpd": SAC}[method.partition("_")[0]]
        model = cls.load(self.folder / "model.zip", env=env, device=device)
        model.load_replay_buffer(self.folder / "replay_buffer.pkl")
        return model

    def remove(self) -> None:
        if self.folder.exists():
            shutil.rmtree(self.folder)


def _command(task_name: str, method: str, seed: int, budget: str, swfp_kwargs: dict | None, folder: str) -> str:
    """The command line that makes this run."""
    if folder == "robustness":
        return f"python examples/benchmark_suite.py --suite robustness --tasks {task_name} --seeds {seed}"
    if swfp_kwargs is None:
        return f"python examples/benchmark_suite.py --tasks {task_name} --methods {method} --seeds {seed} --budget {budget}"
    return (
        f"python examples/benchmark_suite.py --tasks {task_name} --variant {variant_name(method)} "
        f"--swfp-kwargs '{json.dumps(swfp_kwargs)}' --seeds {seed} --budget {budget}"
    )


def _toy_modes(model) -> dict[str, Any]:
    """Where 2000 samples of the final policy land on the toy: share in the high-reward modes, and how
    many of the high-reward modes hold at least 10% of those samples (the paper's no-collapse claim)."""
    from sb3_swfp.envs.toy import HIGH_REWARD_MODES, high_reward_mode_share, mode_shares

    actions, _ = model.predict(np.zeros((2000, 1), dtype=np.float32), deterministic=False)
    high_share = high_reward_mode_share(actions)
    shares = mode_shares(actions)[list(HIGH_REWARD_MODES)]
    kept = int(np.sum(shares >= 0.1 * max(high_share, 1e-12)))
    scores = _toy_scores(actions, HIGH_REWARD_MODES)
    return {**scores, "high_reward_modes_kept": kept, "n_high_reward_modes": len(HIGH_REWARD_MODES)}


def _demo_return(demos) -> float | None:
    returns = demos.episode_returns()
    return float(returns.mean()) if len(returns) else None


def _describe(model) -> dict[str, Any]:
    """The hyperparameters that tell runs apart (what SB3 saves, without the heavy objects)."""
    keys = (
        "learning_rate", "actor_learning_rate", "batch_size", "buffer_size", "learning_starts", "gamma", "tau",
        "train_freq", "gradient_steps", "policy_delay", "n_blocks", "ent_coef", "w2_coef", "jko_step_size",
        "q_normalization", "critic_entropy", "actor_learning_starts", "w2_prev_coef", "bc_coef", "squash",
        "policy_kwargs", "replay_buffer_class", "policy_class",
    )  # fmt: skip
    return {key: getattr(model, key) for key in keys if hasattr(model, key)}


# --- Sensitivity (Fig. 5): the toy, score vs N and vs W2 scale --------------------------------------

SENSITIVITY_N = (1, 2, 3, 5, 8)
SENSITIVITY_W2 = (0.1, 0.4, 1.0, 5.0)


def run_sensitivity(job: tuple[str, float, int]) -> str:
    """One toy fine-tuning run with ``n_blocks`` or ``w2_coef`` changed; scores 2000 stochastic samples."""
    name, value, seed = job
    out = RESULTS / "sensitivity" / f"{name}{value:g}_s{seed}.json"
    if out.exists():
        return f"skip {_shown(out)}"
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
    result = {"parameter": name, "value": value, "seed": seed, "bc": before, "final": score(), "wall_s": time.perf_counter() - start}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    return f"done {_shown(out)}"


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


def _toy_scores(actions: np.ndarray, high_reward_modes: tuple[int, ...]) -> dict[str, float]:
    """Where toy actions land: in a demonstration mode, in a high-reward one, near no mode, at the bounds."""
    from sb3_swfp.envs.toy import mode_shares

    shares = mode_shares(actions)
    high = shares[list(high_reward_modes)]
    return {
        "in_a_mode": float(shares.sum()),
        "high_reward_share": float(high.sum()),
        "min_high_mode_share": float(high.min() / max(high.sum(), 1e-12)),
        "off_mode": float(1.0 - mode_shares(actions, 0.25).sum()),
        "at_bounds": float(np.mean(np.abs(actions).max(axis=1) >= 0.99)),
    }


def run_density(job: tuple[str, str, str, int]) -> str:
    """One run of the density suite (see ``density_jobs``); writes ``density/<kind>_<name>_<squash>_s<seed>.json``."""
    kind, name, squash, seed = job
    out = RESULTS / "density" / f"{kind}_{name}_{squash}_s{seed}.json"
    if out.exists():
        return f"skip {_shown(out)}"
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
        model = SWFP("FlowPolicy", ToyBanditEnv(), seed=seed, squash=squash, **TOY_SWFP_KWARGS)
        model.pretrain(toy_demonstrations(1000, seed=0), **TOY_BC_KWARGS)
        n_critics = len(model.critic.q_networks)
        model.critic.forward = lambda observations, actions: tuple(actions.new_zeros(len(actions), 1) for _ in range(n_critics))
        batch, ent_coef = th.zeros(256, 1), model._current_ent_coef()
        checkpoints = {}
        for update in range(DRIFT_CHECKPOINTS[-1] + 1):
            if update in DRIFT_CHECKPOINTS:
                checkpoints[update] = _toy_scores(model.predict(obs, deterministic=False)[0], HIGH_REWARD_MODES)
            model._actor_update(batch, ent_coef)
            polyak_update(model.actor.parameters(), model.actor_target.parameters(), model.actor_tau)
        result["checkpoints"] = checkpoints
    elif kind == "landscape":
        landscape = HELD_OUT_LANDSCAPES[name]
        model = SWFP("FlowPolicy", ToyBanditEnv(**landscape), seed=seed, squash=squash, **TOY_SWFP_KWARGS)
        model.pretrain(toy_demonstrations(1000, seed=0, **landscape), **TOY_BC_KWARGS)
        result["bc"] = _toy_scores(model.predict(obs, deterministic=False)[0], landscape["high_reward_modes"])
        model.learn(TASKS["toy"].cpu_steps)
        result["final"] = _toy_scores(model.predict(obs, deterministic=False)[0], landscape["high_reward_modes"])
        result["landscape"] = landscape
    else:
        task = dataclasses.replace(TASKS[name], eval_episodes=10)
        model = make_model("swfp", task, make_demonstrations(task), seed, "cpu", "cpu", {"squash": squash})
        result["bc_return"], result["bc_return_std"], result["bc_success"] = evaluate(model, Monitor(make_env(task.env_id)), task, seed)
    result["wall_s"] = time.perf_counter() - start
    result["command"] = "python examples/benchmark_suite.py --suite density --jobs 2"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    return f"done {_shown(out)} in {result['wall_s']:.0f}s"


# --- Cost (Sec. 4.3) --------------------------------------------------------------------------------

COST_N = (1, 2, 5, 10, 20)
UPDATE_N = (5, 10, 20)


def run_cost(device: str) -> None:
    """Training env-steps/s (SWFP vs SAC vs TD3), predict latency vs N, and one-block vs whole-chain actor updates."""
    import gymnasium as gym
    import torch as th

    th.set_num_threads(1)
    obs = gym.make("Pendulum-v1").reset(seed=0)[0]
    speed = measure_speed({algo: dict(algo=algo) for algo in ("swfp", "sac", "td3")}, obs)
    configs = {f"swfp_N{n}": dict(algo="swfp", n_blocks=n) for n in COST_N} | {"sac": dict(algo="sac")}
    latency_rows = measure_speed(configs, obs, train=False)
    latency = {name: row["predict_ms_median"] for name, row in latency_rows.items()}
    updates = {n: actor_update_cost(n, device) for n in UPDATE_N}
    result = {
        "speed": speed,
        "predict_ms": latency,
        "predict_ratio": {name: row["predict_ratio_to_sac"] for name, row in latency_rows.items()},
        "actor_update": updates,
        "device": device,
        "command": "python examples/benchmark_suite.py --suite cost",
        "cpu_count": os.cpu_count(),
    }
    (RESULTS / "cost.json").parent.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cost.json").write_text(json.dumps(result, indent=1))


def actor_update_cost(n_blocks: int, device: str, batch_size: int = 256, repeats: int = 20, **swfp_kwargs: Any) -> dict[str, float]:
    """Median time and peak memory of SWFP's one-block JKO update vs back-propagating through the whole chain.

    ``swfp_kwargs`` are further ``SWFP`` arguments (``q_normalization``, ``bc_coef`` with a demonstration buffer, ...).

    The whole-chain update is what a flow policy trained end to end would do (``x_0 -> x_N`` with
    gradient through all N blocks, loss ``-Q(x_N)/alpha - sum_n log|det|``); it is the paper's
    point of comparison (Sec. 4.3), not part of SWFP.
    """
    import torch as th

    from sb3_swfp import SWFP
    from sb3_swfp.common.log_prob import standard_normal_log_prob

    model = SWFP(
        "FlowPolicy", "Pendulum-v1", n_blocks=n_blocks, learning_starts=0, batch_size=batch_size, device=device, seed=0, **swfp_kwargs
    )
    model.learn(batch_size + 1)  # a replay buffer to sample states from
    observations = model.replay_buffer.sample(batch_size).observations
    ent_coef = model._current_ent_coef()
    actor = model.actor

    def one_block() -> None:
        model._actor_update(observations, ent_coef)

    def whole_chain() -> None:
        features = actor.extract_features(observations, actor.features_extractor)
        x0 = th.randn(batch_size, actor.action_dim, device=model.device)
        walk = actor.walk(features, x0, log_prob=standard_normal_log_prob(x0))
        q = th.cat(model.critic(observations, actor.squash(walk.x)), dim=1).min(dim=1).values
        loss = (-q / ent_coef + walk.log_prob - actor.squash.log_abs_det(walk.x)).mean()
        actor.optimizer.zero_grad()
        loss.backward()
        actor.optimizer.step()

    result = {}
    for name, update in (("one_block", one_block), ("whole_chain", whole_chain)):
        for _ in range(3):
            update()  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            update()
            if model.device.type == "cuda":
                th.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        result[f"{name}_ms"] = 1e3 * float(np.median(times))
        result[f"{name}_peak_mib"] = _peak_memory_mib(update, model.device)
        result[f"{name}_saved_mib"] = _saved_for_backward_mib(update)
    return result


def _saved_for_backward_mib(update) -> float:
    """MiB of the activations autograd keeps for the backward pass of one call: each storage counted once,
    parameters (which are saved by reference) left out."""
    import torch as th

    storages: dict[int, int] = {}

    def pack(tensor):
        if not (tensor.is_leaf and tensor.requires_grad):
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with th.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        update()
    return sum(storages.values()) / 2**20


def _peak_memory_mib(update, device) -> float:
    """Peak memory of one call: CUDA ``max_memory_allocated``, or on CPU the running sum of the profiler's allocations."""
    import torch as th

    if device.type == "cuda":
        th.cuda.reset_peak_memory_stats()
        base = th.cuda.memory_allocated()
        update()
        return (th.cuda.max_memory_allocated() - base) / 2**20
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        update()
    # Each event's own allocations (positive) and frees (negative), in time order; the running sum's
    # maximum is the peak above what was allocated before the call
    events = sorted((e for e in prof.events() if e.self_cpu_memory_usage != 0), key=lambda e: e.time_range.start)
    running = peak = 0
    for event in events:
        running += event.self_cpu_memory_usage
        peak = max(peak, running)
    return peak / 2**20


# --- Rendering --------------------------------------------------------------------------------------


def _load(pattern: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(RESULTS.glob(pattern))]


def _final(run: dict) -> tuple[float, float | None]:
    _, mean, _, success = run["curve"][-1]
    return mean, success


def _initial(run: dict) -> tuple[float, float | None]:
    _, mean, _, success = run["curve"][0]
    return mean, success


def _mean_std(values: list[float], decimals: int = 1) -> str:
    """``mean ± std`` over seeds; one seed has no spread to show."""
    if len(values) == 1:
        return f"{values[0]:.{decimals}f}"
    return f"{np.mean(values):.{decimals}f} ± {np.std(values):.{decimals}f}" if values else "–"


def render() -> None:
    """Re-render docs/benchmarks.md (the methods), docs/ablations.md (SWFP's variants, the density suite,
    runs of earlier settings) and their PNGs from the raw results."""
    lines = [
        "# Benchmarks: SWFP against SAC and TD3, offline-to-online",
        "",
        "Rendered by `python examples/benchmark_suite.py --render` from the raw results in",
        "`docs/results/benchmarks/` (one JSON per run); nothing here is typed by hand.  Machine: 2-core",
        "CPU, one torch thread per run, runs two at a time.  Scores are the mean deterministic episode",
        "return (the toy: the mean reward of stochastic samples, where TD3's deterministic actor gives one",
        "action; PointMaze: also the success rate) over",
        "the seeds, ± the std over seeds.  `bc` is the step-0 evaluation of the `swfp` runs.  Wall times come",
        "from runs that shared the machine with others; the cost section measures speed properly.",
        "SWFP's variants and ablations are on [ablations.md](ablations.md).",
        "",
    ]
    ablations = [
        "# Ablations: SWFP's variants, the density, and runs of earlier settings",
        "",
        "Rendered by `python examples/benchmark_suite.py --render` with [benchmarks.md](benchmarks.md); nothing",
        "here is typed by hand.  Each variant is the `swfp` entry of `swfp_o2o.yml` with the arguments shown;",
        "the SWFP row is the entry itself, for reference.  These rows are not part of the comparison of methods.",
        "",
    ]
    for budget in ("cpu", "long", "full"):
        by_task = _by_task(_load(f"{budget}/*/*.json"))
        if not by_task:
            continue
        lines += [f"## Budget `{budget}`", ""]
        variant_tasks = [t for t in by_task if any(variant_name(r["method"]) for r in by_task[t])]
        ablations += [f"## Budget `{budget}`", ""] if variant_tasks else []
        for task_name in by_task:
            methods = [r for r in by_task[task_name] if variant_name(r["method"]) is None]
            if methods:
                lines += _render_task(budget, task_name, methods)
            if task_name in variant_tasks:
                ablations += _render_task(budget, task_name, [r for r in by_task[task_name] if r["method"].startswith("swfp")], ablation=True)
    lines += _render_robustness() + _render_shipped_demos() + _render_sensitivity() + _render_cost()
    PAGE.write_text("\n".join(lines) + "\n")
    ablations += _render_selection() + _render_density() + _render_archive()
    ABLATIONS.write_text("\n".join(ablations) + "\n")
    print(f"wrote {_shown(PAGE)} and {_shown(ABLATIONS)}")


def _by_task(runs: list[dict]) -> dict[str, list[dict]]:
    """Runs grouped by task, in the order of ``TASKS``."""
    grouped: dict[str, list[dict]] = defaultdict(list)
    for run in runs:
        grouped[run["task"]].append(run)
    return {task: grouped[task] for task in TASKS if task in grouped}


def _render_task(budget: str, task_name: str, runs: list[dict], ablation: bool = False, folder: str | None = None) -> list[str]:
    """One task's table, verdict, curve and commands.  ``ablation``: SWFP and its variants (no verdict);
    ``folder``: where the runs and the curve live, when not the budget's."""
    task = TASKS[task_name]
    folder = folder or budget
    demos = runs[0]["demos"]
    demo_return = demos["episode_return_mean"]
    lines = [
        f"### {task.env_id} ({runs[0]['online_steps']} online steps)",
        "",
        f"Demonstrations: {task.demos} ({demos['transitions']} transitions"
        + (f", mean episode return {demo_return:.1f})" if demo_return is not None else ")")
        + f"; evaluation every {task.eval_every} steps over {task.eval_episodes} episodes.",
        "",
        "| method | seeds | initial | final | best eval (mean over seeds) | mean of all evaluations | "
        + ("final success | " if task.success_metric else "")
        + ("per seed: share of samples in high-reward modes (modes holding ≥ 10% of them) | " if task.demos == "toy" else "")
        + "online wall time |",
        "|---|---|---|---|---|---|" + ("---|" if task.success_metric else "") + ("---|" if task.demos == "toy" else "") + "---|",
    ]
    methods: dict[str, list[dict]] = {}
    for run in runs:
        methods.setdefault(run["method"], []).append(run)
    if "swfp" in methods:
        methods["bc"] = methods["swfp"]
    finals: dict[str, float] = {}
    alongs: dict[str, float] = {}
    for method in _ordered(methods):
        group = methods[method]
        initial = [_initial(r)[0] for r in group]
        final = initial if method == "bc" else [_final(r)[0] for r in group]
        finals[method] = float(np.mean(final))
        curves = [np.array([c[1] for c in r["curve"]]) for r in group]
        n = min(len(c) for c in curves)
        best = initial if method == "bc" else [float(np.stack([c[:n] for c in curves]).mean(0).max())]
        # The area under the learning curve, per evaluation: how good the policy was along the way
        along = initial if method == "bc" else [float(c[:n].mean()) for c in curves]
        alongs[method] = float(np.mean(along))
        d = task.decimals
        row = (
            f"| {_label(method, group)} | {len(group)} | {_mean_std(initial, d)} | {_mean_std(final, d)} | {np.mean(best):.{d}f} | "
            f"{_mean_std(along, d)} | "
        )
        if task.success_metric:
            successes = [(_initial(r) if method == "bc" else _final(r))[1] for r in group]
            row += f"{np.mean(successes):.2f} | "
        if task.demos == "toy":
            kept = [r.get("toy_modes") for r in group]
            row += ("–" if method == "bc" or None in kept else ", ".join(f"{k['high_reward_share']:.2f} ({k['high_reward_modes_kept']}/{k['n_high_reward_modes']})" for k in kept)) + " | "
        wall = "–" if method == "bc" else f"{np.mean([r['online_wall_s'] for r in group]) / 60:.1f} min"
        errors = [r["error"] for r in group if r.get("error")]
        lines.append(row + wall + (f" ({len(errors)} stopped by the NaN guard)" if errors else "") + " |")
    lines.append("")
    if "swfp" in finals and not ablation:
        # SWFP's competitors: the other methods of METHODS, not BC (SWFP's start) nor SWFP's variants
        others = {m: v for m, v in finals.items() if variant_name(m) is None and m not in ("swfp", "bc")}
        if others:
            best_other = max(others, key=others.get)
            verdict = "ahead of" if finals["swfp"] >= others[best_other] else "behind"
            d = task.decimals
            lines.append(
                f"SWFP's final score is {verdict} the best other method here ({LABELS[best_other]}: "
                f"{others[best_other]:.{d}f} vs SWFP {finals['swfp']:.{d}f}); BC → SWFP: {finals['bc']:.{d}f} → {finals['swfp']:.{d}f}."
            )
            best_along = max(others, key=alongs.get)
            lines[-1] += (
                f"  Along the way (mean of all evaluations) SWFP is {'ahead of' if alongs['swfp'] >= alongs[best_along] else 'behind'} "
                f"the best other method ({LABELS[best_along]}: {alongs[best_along]:.{d}f} vs SWFP {alongs['swfp']:.{d}f})."
            )
            if finals["bc"] > finals["swfp"]:
                lines[-1] += (
                    f"  **Fine-tuning lost ground here**: the BC flow alone ({finals['bc']:.{d}f}) ends above SWFP "
                    f"({finals['swfp']:.{d}f})" + (" and above every online method." if finals["bc"] >= others[best_other] else ".")
                )
            lines.append("")
    png = RESULTS / folder / f"{task_name}{'_variants' if ablation else ''}.png"
    _plot_task(png, task, methods, demo_return)
    lines += [f"![{task.env_id}]({png.relative_to(PAGE.parent).as_posix()})", ""]
    lines += command_lines(runs)
    relabelled = sorted(f"{r['method']}_s{r['seed']}" for r in runs if r.get("relabelled"))
    if relabelled:
        lines += [
            f"Relabelled after `swfp_o2o.yml` changed (the runs are unchanged; the note in each JSON says what they "
            f"were run as): {', '.join(relabelled)}.",
            "",
        ]
    swfp_runs = [r for r in runs if r["method"] == "swfp" or variant_name(r["method"]) is not None]
    if folder == ARCHIVE:
        return lines  # made with earlier settings on purpose
    entry = swfp_o2o_entry(task.env_id)[0] if swfp_runs else {}  # read once for all the task's runs
    stale = [f"`{r['method']}_s{r['seed']}` ({'; '.join(diffs)})" for r in swfp_runs if (diffs := stale_arguments(r, entry))]
    if stale:
        lines += [
            "**Stale runs**: made with other SWFP arguments than `swfp_o2o.yml` (with the variant's arguments) gives "
            "now; delete their JSON and rerun: " + ", ".join(stale) + ".",
            "",
        ]
    return lines


#: Fresh seeds of the robustness suite: they played no part in choosing the preset (seeds 0-2)
ROBUSTNESS_SEEDS = (10, 11, 12, 13, 14)


def robustness_row(run: dict) -> dict[str, Any]:
    """What the robustness suite checks in one SWFP run: final >= BC start, and no evaluation below
    ``BC - 10% |BC|`` (the start is the step-0 evaluation, after BC)."""
    evaluations = [point[1] for point in run["curve"]]
    bc, final, lowest = evaluations[0], evaluations[-1], min(evaluations[1:])
    floor = bc - 0.1 * abs(bc)
    return {"bc": bc, "final": final, "lowest": lowest, "final_ge_bc": final >= bc, "no_dip": lowest >= floor}


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def _render_robustness() -> list[str]:
    """The robustness suite: the preset on every task, fresh seeds, against the issue's acceptance lines."""
    runs = _load("robustness/*/*.json")
    if not runs:
        return []
    by_task: dict[str, list[dict]] = defaultdict(list)
    for run in runs:
        by_task[run["task"]].append(run)
    lines = [
        "## Robustness: the fine-tuning preset on fresh seeds",
        "",
        "Command: `python examples/benchmark_suite.py --suite robustness --jobs 2` (every task, seeds "
        f"{', '.join(map(str, ROBUSTNESS_SEEDS))}: none of them played a part in choosing the preset or the density).  SWFP",
        "with `sb3_swfp.presets` (the `swfp_o2o.yml` entries), the budgets of the tables above.  *BC* is the",
        "step-0 evaluation (after BC); *lowest* the lowest evaluation after it; a dip is an evaluation below",
        "BC − 10% of |BC|.  Every evaluation of a run plays the same start states.",
        "",
        "| task | seeds | BC (mean) | final (mean) | final ≥ BC | no dip | per seed: BC → final (lowest) |",
        "|---|---|---|---|---|---|---|",
    ]
    total = final_ok = dip_ok = 0
    tasks_above: list[str] = []
    tasks_below: list[str] = []
    toy_lines: list[str] = []
    for task_name in [t for t in TASKS if t in by_task]:
        task, group = TASKS[task_name], sorted(by_task[task_name], key=lambda r: r["seed"])
        rows = [robustness_row(r) for r in group]
        d = task.decimals
        bc_mean, final_mean = np.mean([r["bc"] for r in rows]), np.mean([r["final"] for r in rows])
        n_final, n_dip = sum(r["final_ge_bc"] for r in rows), sum(r["no_dip"] for r in rows)
        total, final_ok, dip_ok = total + len(rows), final_ok + n_final, dip_ok + n_dip
        (tasks_above if final_mean > bc_mean else tasks_below).append(task.env_id)
        per_seed = "; ".join(f"s{r['seed']}: {row['bc']:.{d}f} → {row['final']:.{d}f} ({row['lowest']:.{d}f})" for r, row in zip(group, rows))
        lines.append(
            f"| {task.env_id} | {len(rows)} | {bc_mean:.{d}f} | {final_mean:.{d}f} | {n_final}/{len(rows)} | {n_dip}/{len(rows)} | {per_seed} |"
        )
        if task.demos == "toy":
            modes = [r["toy_modes"] for r in group]
            ok = [m["high_reward_share"] >= 0.9 and m["high_reward_modes_kept"] == m["n_high_reward_modes"] for m in modes]
            toy_lines.append(
                f"- Toy: ≥ 90% of the samples in the high-reward modes with each mode holding ≥ 10% of them in "
                f"{sum(ok)} of {len(ok)} seeds (" + ", ".join(f"{m['high_reward_share']:.2f} ({m['high_reward_modes_kept']}/{m['n_high_reward_modes']})" for m in modes)
                + f"): {_verdict(all(ok))}."
            )
    lines += ["", "Against the acceptance lines of the robust fine-tuning issue:", ""]
    quota = int(np.ceil(total * 30 / 35))
    lines += [
        f"- Final ≥ BC start in {final_ok} of {total} runs (goal ≥ {quota} of {total}): {_verdict(final_ok >= quota)}.",
        f"- No evaluation below BC − 10% of |BC| in {dip_ok} of {total} runs (goal ≥ {quota} of {total}): {_verdict(dip_ok >= quota)}.",
        f"- Mean final above the mean BC start on every task: {_verdict(not tasks_below)}"
        + (f" (below on {', '.join(tasks_below)})." if tasks_below else "."),
        *toy_lines,
        "",
    ]
    return lines


#: Candidates of the fine-tuning preset (variants ``preset_<name>``), chosen by the rule of docs/robustness.md
PRESET_PREFIX = "preset_"


def preset_score(runs: list[dict]) -> tuple[int, float, dict[str, Any]]:
    """The rule of docs/robustness.md for one candidate's runs: the number of runs with final >= BC, plus
    those with no dip, plus the tasks whose mean final is above their mean BC, plus the toy seeds with >= 90%
    in the high-reward modes and every mode kept; ties by the mean over tasks of ``(final - BC) / |BC|``."""
    rows = [(run, robustness_row(run)) for run in runs]
    tasks = sorted({run["task"] for run in runs}, key=list(TASKS).index)
    per_task = {t: [row for run, row in rows if run["task"] == t] for t in tasks}
    tasks_up = [t for t, group in per_task.items() if np.mean([r["final"] for r in group]) > np.mean([r["bc"] for r in group])]
    toy_ok = [
        run["toy_modes"]["high_reward_share"] >= 0.9 and run["toy_modes"]["high_reward_modes_kept"] == run["toy_modes"]["n_high_reward_modes"]
        for run, _ in rows
        if run["task"] == "toy"
    ]
    counts = {
        "runs": len(rows),
        "final_ge_bc": sum(row["final_ge_bc"] for _, row in rows),
        "no_dip": sum(row["no_dip"] for _, row in rows),
        "tasks_up": len(tasks_up),
        "tasks": len(tasks),
        "toy_ok": sum(toy_ok),
        "toy_runs": len(toy_ok),
    }
    gain = float(
        np.mean([(np.mean([r["final"] for r in g]) - np.mean([r["bc"] for r in g])) / abs(np.mean([r["bc"] for r in g])) for g in per_task.values()])
    )
    return counts["final_ge_bc"] + counts["no_dip"] + counts["tasks_up"] + counts["toy_ok"], gain, counts


def preset_ranking(tasks: list[str] | None = None) -> list[tuple[str, int, float, dict[str, Any]]]:
    """Candidates ``preset_*`` ranked by :func:`preset_score` on their runs of ``tasks`` (all when None), best first;
    only tasks that every candidate has runs for count."""
    runs = [r for r in _load("cpu/*/*.json") if (variant_name(r["method"]) or "").startswith(PRESET_PREFIX)]
    candidates = sorted({r["method"] for r in runs})
    common = set.intersection(*({r["task"] for r in runs if r["method"] == c} for c in candidates)) if candidates else set()
    chosen = [t for t in TASKS if t in common and (tasks is None or t in tasks)]
    scored = [(c, *preset_score([r for r in runs if r["method"] == c and r["task"] in chosen])) for c in candidates]
    return sorted(scored, key=lambda item: (item[1], item[2]), reverse=True)


def _render_selection() -> list[str]:
    ranking = preset_ranking()
    if not ranking:
        return []
    lines = [
        "## Choosing the fine-tuning preset",
        "",
        "The candidates of [robustness.md](robustness.md), seeds 0–2, scored by its rule on the tasks every candidate",
        "ran (their rows are in the tables above): runs whose final is ≥ their BC start, runs with no evaluation",
        "below BC − 10% of |BC|, tasks whose mean final is above their mean BC, toy seeds with ≥ 90% of the samples in",
        "the high-reward modes and each mode kept; ties by the mean relative gain over tasks.",
        "",
        "| candidate | tasks | final ≥ BC | no dip | tasks above BC | toy | score | mean relative gain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, score, gain, c in ranking:
        lines.append(
            f"| `{variant_name(name)}` | {c['tasks']} | {c['final_ge_bc']}/{c['runs']} | {c['no_dip']}/{c['runs']} | "
            f"{c['tasks_up']}/{c['tasks']} | {c['toy_ok']}/{c['toy_runs']} | {score} | {gain:+.3f} |"
        )
    return [*lines, ""]


def _render_archive() -> list[str]:
    """SWFP runs made with the settings of earlier releases (``docs/results/benchmarks/archive/``)."""
    by_task = _by_task(_load(f"{ARCHIVE}/*/*.json"))
    if not by_task:
        return []
    lines = [
        "## Runs of earlier settings",
        "",
        "SWFP before the density moved onto the action box and before the one fine-tuning preset: each",
        "task's own `swfp_o2o.yml` entry of that time and its variants, the action `clip(x_N, -1, 1)`",
        "with a density that ignored the clip, and evaluations that drew new start states each time.",
        "The code that made them is in the repository's history (release 0.1.0); each JSON says what it ran with.",
        "",
    ]
    for task_name, runs in by_task.items():
        lines += _render_task("cpu", task_name, runs, ablation=True, folder=ARCHIVE)
    return lines


def _render_density() -> list[str]:
    """The density suite (``--suite density``): clip, tanh and the soft clip, against the rule of docs/robustness.md."""
    runs = _load("density/*.json")
    if not runs:
        return []
    lines = [
        "## Where the density lives: clip, tanh, soft clip",
        "",
        "Command: `python examples/benchmark_suite.py --suite density --jobs 2`; the rule that decides is in",
        "[robustness.md](robustness.md) (fixed before these runs).  Mean over seeds (per seed in brackets).",
        "",
    ]

    def cell(values: list[float], decimals: int = 3) -> str:
        return f"{np.mean(values):.{decimals}f} ({', '.join(f'{v:.{decimals}f}' for v in values)})" if values else "–"

    def pick(kind: str, name: str, squash: str) -> list[dict]:
        return sorted((r for r in runs if (r["kind"], r["name"], r["squash"]) == (kind, name, squash)), key=lambda r: r["seed"])

    last = str(DRIFT_CHECKPOINTS[-1])
    lines += [
        f"**D1, zero-critic drift** (the toy, its own settings, critic fixed at 0, {last} actor updates; the target actor's",
        "samples):",
        "",
        f"| squash | in a mode after BC | in a mode after {last} | at the bounds after {last} |",
        "|---|---|---|---|",
    ]
    for squash in DENSITY_SQUASHES:
        group = pick("drift", "toy", squash)
        if group:
            lines.append(
                f"| `{squash}` | {cell([r['checkpoints']['0']['in_a_mode'] for r in group])} | "
                f"{cell([r['checkpoints'][last]['in_a_mode'] for r in group])} | {cell([r['checkpoints'][last]['at_bounds'] for r in group])} |"
            )
    lines += [
        "",
        "**D2, held-out toy landscapes** (the toy's own settings, 4000 online steps): share of the samples in the",
        "high-reward modes after BC and after fine-tuning, smallest high-reward mode's part of them, near no mode, at the bounds:",
        "",
        "| landscape | squash | after BC | after fine-tuning | smallest mode | near no mode | at the bounds |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, landscape in HELD_OUT_LANDSCAPES.items():
        for squash in DENSITY_SQUASHES:
            group = pick("landscape", name, squash)
            if group:
                lines.append(
                    f"| {name} (modes {', '.join(map(str, landscape['high_reward_modes']))}, std {landscape['high_reward_std']}) | `{squash}` | "
                    f"{cell([r['bc']['high_reward_share'] for r in group])} | {cell([r['final']['high_reward_share'] for r in group])} | "
                    f"{cell([r['final']['min_high_mode_share'] for r in group])} | {cell([r['final']['off_mode'] for r in group])} | "
                    f"{cell([r['final']['at_bounds'] for r in group])} |"
                )
    lines += [
        "",
        "**D3, behaviour cloning** (deterministic return, 10 episodes, the same start states for every squash):",
        "",
        "| task | " + " | ".join(f"`{s}`" for s in DENSITY_SQUASHES) + " |",
        "|---|" + "---|" * len(DENSITY_SQUASHES),
    ]
    for task_name in DENSITY_BC_TASKS:
        cells = [cell([r["bc_return"] for r in pick("bc", task_name, squash)], 1) for squash in DENSITY_SQUASHES]
        lines.append(f"| {TASKS[task_name].env_id} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def stale_arguments(run: dict, entry: dict[str, Any]) -> list[str]:
    """For an SWFP run: the arguments its stored hyperparameters disagree on with today's ``swfp_o2o.yml``
    entry of its task (``swfp_o2o_entry(env_id)[0]``) and its variant's arguments, as
    ``"key ran X, entry now Y"``; empty for up-to-date runs."""
    expected = {**entry, **(run.get("swfp_kwargs") or {})}
    stored = run["hyperparams"]
    return [
        f"{key} ran {stored[key]}, entry now {expected[key]!r}"
        for key in sorted(expected.keys() & stored.keys() - {"policy_kwargs", "replay_buffer_class"})
        if stored[key] != repr(expected[key])
    ]


def _ordered(methods: dict[str, list[dict]]) -> list[str]:
    """Table order: the methods of ``METHODS``, with the SWFP variants right after SWFP."""
    variants = sorted(m for m in methods if variant_name(m) is not None)
    order = [m for m in METHODS if m in methods]
    at = order.index("swfp") + 1 if "swfp" in order else len(order)
    return order[:at] + variants + order[at:]


def _label(method: str, runs: list[dict]) -> str:
    """Row label; a variant shows the keyword arguments it changes."""
    if method in LABELS:
        return LABELS[method]
    return f"SWFP variant `{variant_name(method)}`: `{json.dumps(runs[0]['swfp_kwargs'], sort_keys=True)}`"


def command_lines(runs: list[dict]) -> list[str]:
    """The page's list of the commands behind ``runs``, each with the seeds it ran: once in the heading when
    every command ran the same seeds, else after each command (held-out seeds of a variant, say)."""
    seeds_of: dict[str, set[int]] = defaultdict(set)
    for run in runs:
        seeds_of[run["command"].rsplit(" --seeds", 1)[0]].add(run["seed"])
    seed_sets = {tuple(sorted(seeds)) for seeds in seeds_of.values()}
    if len(seed_sets) == 1:
        (seeds,) = seed_sets
        return [f"Commands (each with `--seeds {' '.join(map(str, seeds))}`):", "", *[f"- `{c}`" for c in sorted(seeds_of)], ""]
    return ["Commands:", "", *[f"- `{c} --seeds {' '.join(map(str, sorted(s)))}`" for c, s in sorted(seeds_of.items())], ""]


def _plot_task(path: Path, task: Task, methods: dict[str, list[dict]], demo_return: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for color, method in enumerate(m for m in _ordered(methods) if m != "bc"):
        curves = [np.array([c[:2] for c in r["curve"]]) for r in methods[method]]
        n = min(len(c) for c in curves)
        steps, means = curves[0][:n, 0], np.stack([c[:n, 1] for c in curves])
        style = "-" if variant_name(method) is None else ":"
        label = _label(method, methods[method]).replace("`", "")  # markdown code marks mean nothing in a legend
        ax.plot(steps, means.mean(0), style, color=f"C{color}", label=f"{label} ({len(curves)})")
        ax.fill_between(steps, means.mean(0) - means.std(0), means.mean(0) + means.std(0), color=f"C{color}", alpha=0.15)
    if demo_return is not None:
        ax.axhline(demo_return, color="grey", linestyle="--", linewidth=1, label="demonstrations")
    ax.set_xlabel("online env steps")
    ax.set_ylabel("mean eval return")
    ax.set_title(f"{task.env_id} (mean ± std over seeds)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _render_shipped_demos() -> list[str]:
    """How the demonstration files shipped in ``sb3_swfp/data/demos`` were made (from their metadata) and their returns."""
    from sb3_swfp.data import demo_path, shipped_demonstrations
    from sb3_swfp.demos import load_demonstrations

    names = shipped_demonstrations()
    if not names:
        return []
    lines = [
        "## Shipped demonstrations (`sb3_swfp/data/demos/`)",
        "",
        "| file | transitions | episodes | mean return ± std | how it was made |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        demos = load_demonstrations(demo_path(name))
        returns = demos.episode_returns()
        how = demos.metadata.get("quality", "")
        command = demos.metadata.get("command")
        lines.append(
            f"| {name}.npz | {len(demos)} | {len(returns)} | {returns.mean():.1f} ± {returns.std():.1f} | "
            f"{how}{'; `' + command + '`' if command else ''} |"
        )
    return [*lines, ""]


def _render_sensitivity() -> list[str]:
    runs = _load("sensitivity/*.json")
    if not runs:
        return []
    lines = [
        "## Sensitivity (paper Fig. 5): the toy, score vs N and vs W2 scale",
        "",
        "Command: `python examples/benchmark_suite.py --suite sensitivity --jobs 2`.  The toy's fine-tuning settings",
        "(`swfp_o2o.yml`, N = 6, `w2_coef` = 2) with one of them changed; share of 2000 stochastic samples in the",
        "high-reward modes after BC and after fine-tuning (mean ± std over seeds).",
        "",
        "| parameter | value | seeds | after BC | after fine-tuning | mean reward after fine-tuning |",
        "|---|---|---|---|---|---|",
    ]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary: dict[str, list[tuple[float, float]]] = {}
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, name in zip(axes, ("n_blocks", "w2_coef")):
        values = sorted({r["value"] for r in runs if r["parameter"] == name})
        means, stds = [], []
        for value in values:
            group = [r for r in runs if r["parameter"] == name and r["value"] == value]
            bc = [r["bc"]["high_reward_share"] for r in group]
            final = [r["final"]["high_reward_share"] for r in group]
            reward = [r["final"]["mean_reward"] for r in group]
            means.append(np.mean(final))
            stds.append(np.std(final))
            lines.append(
                f"| {name} | {value:g} | {len(group)} | {np.mean(bc):.2f} ± {np.std(bc):.2f} | "
                f"{np.mean(final):.2f} ± {np.std(final):.2f} | {np.mean(reward):.3f} |"
            )
        summary[name] = list(zip(values, means))
        ax.errorbar(values, means, yerr=stds, marker="o", capsize=3)
        ax.set_xscale("log" if name == "w2_coef" else "linear")
        ax.set_xlabel("N (n_blocks)" if name == "n_blocks" else "W2 scale (w2_coef)")
        ax.set_ylabel("share in high-reward modes")
        ax.set_ylim(0, 1.05)
    fig.tight_layout()
    fig.savefig(RESULTS / "sensitivity.png", dpi=100)
    plt.close(fig)
    lines.append("")
    if len(summary.get("n_blocks", [])) > 1:
        points = summary["n_blocks"]
        rising = all(b >= a - 0.01 for (_, a), (_, b) in zip(points, points[1:]))
        lines.append(
            f"Against the paper's Fig. 5: the score {'rises with N' if rising else 'does not rise steadily with N'} "
            f"({', '.join(f'N={v:g}: {m:.2f}' for v, m in points)}); the paper sees it rise until a plateau."
        )
    if len(summary.get("w2_coef", [])) > 1:
        means = [m for _, m in summary["w2_coef"]]
        lines.append(
            f"Over W2 scales {', '.join(f'{v:g}' for v, _ in summary['w2_coef'])} the score spans "
            f"{min(means):.2f}–{max(means):.2f} (the paper: nearly the same result for every scale)."
        )
    return [*lines, "", "![sensitivity](results/benchmarks/sensitivity.png)", ""]


def _render_cost() -> list[str]:
    path = RESULTS / "cost.json"
    if not path.exists():
        return []
    cost = json.loads(path.read_text())
    speed = cost["speed"]
    sac = speed["sac"]
    lines = [
        "## Cost (paper Sec. 4.3)",
        "",
        f"Command: `{cost['command']}` (device: {cost['device']}); Pendulum-v1, batch 256, one gradient step per",
        "env step, the models in one process taking turns (quote the ratios: the machine is noisy).",
        "",
        "| algo | train env-steps/s | ratio to SAC | predict latency (ms, median) | ratio to SAC |",
        "|---|---|---|---|---|",
    ]
    for name, row in speed.items():
        train_cell, predict_cell = speed_ratios(row, sac)
        lines.append(f"| {name} | {row['train_steps_per_s']:.1f} | {train_cell} | {row['predict_ms_median']:.3f} | {predict_cell} |")
    lines += ["", "`predict` latency for one observation vs the number of blocks N (midpoint solver):", ""]
    lines += ["| policy | latency (ms, median) | ratio to SAC |", "|---|---|---|"]
    for name, ms in cost["predict_ms"].items():
        # the median of per-round ratios where the run recorded it, the ratio of the medians for older runs
        ratio = cost.get("predict_ratio", {}).get(name, ms / cost["predict_ms"]["sac"])
        lines.append(f"| {name} | {ms:.3f} | {ratio:.2f}× |")
    lines += [
        "",
        "Actor update, batch 256: SWFP's one-block JKO step vs back-propagating through the whole chain",
        "(time: median of 20; memory: peak of one update, " + ("CUDA `max_memory_allocated`" if cost["device"].startswith("cuda") else "CPU, from the profiler's allocation events") + "):",
        "",
        "| N | one block (ms) | whole chain (ms) | ratio | one block peak (MiB) | whole chain peak (MiB) | ratio | "
        "saved for backward, one block / whole chain (MiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, row in cost["actor_update"].items():
        lines.append(
            f"| {n} | {row['one_block_ms']:.1f} | {row['whole_chain_ms']:.1f} | {row['whole_chain_ms'] / row['one_block_ms']:.1f}× | "
            f"{row['one_block_peak_mib']:.1f} | {row['whole_chain_peak_mib']:.1f} | "
            f"{row['whole_chain_peak_mib'] / max(row['one_block_peak_mib'], 1e-9):.1f}× | "
            f"{row['one_block_saved_mib']:.1f} / {row['whole_chain_saved_mib']:.1f} |"
        )
    first, last = cost["actor_update"][str(UPDATE_N[0])], cost["actor_update"][str(UPDATE_N[-1])]
    lines += [
        "",
        f"The activations kept for the backward pass stay at {first['one_block_saved_mib']:.1f} MiB for one block whatever N",
        f"({last['one_block_saved_mib']:.1f} MiB at N = {UPDATE_N[-1]}), while the whole chain's grow with N "
        f"({first['whole_chain_saved_mib']:.1f} → {last['whole_chain_saved_mib']:.1f} MiB): the paper's claim holds for memory.",
        "What still grows with N in the one-block update is the target actor's no-gradient chain up to the sampled",
        "block (N/2 blocks on average) and the first-layer terms of its stages, computed once per chain.",
    ]
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=("runs", "robustness", "cost", "sensitivity", "density"), default="runs")
    parser.add_argument("--tasks", nargs="+", default=None, choices=list(TASKS), help="default: toy pendulum (robustness: all)")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), choices=RUN_METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help=f"default: 0 1 2 (robustness: {' '.join(map(str, ROBUSTNESS_SEEDS))})")
    parser.add_argument("--budget", choices=("cpu", "long", "full"), default="cpu")
    parser.add_argument("--device", default="cpu", help="torch device of every model ('cuda' on a GPU machine)")
    parser.add_argument("--jobs", type=int, default=1, help="independent processes, one torch thread each")
    parser.add_argument("--variant", default=None, help="run an SWFP variant under this name (with --swfp-kwargs)")
    parser.add_argument("--swfp-kwargs", default=None, help="JSON dict of SWFP arguments for --variant, e.g. '{\"bc_coef\": 1.0}'")
    parser.add_argument("--render", action="store_true", help="only re-render docs/benchmarks.md")
    args = parser.parse_args()
    robustness = args.suite == "robustness"
    args.tasks = args.tasks or (list(TASKS) if robustness else ["toy", "pendulum"])
    args.seeds = args.seeds or (list(ROBUSTNESS_SEEDS) if robustness else [0, 1, 2])
    if (args.variant is None) != (args.swfp_kwargs is None):
        parser.error("--variant and --swfp-kwargs go together")
    if args.variant is not None:
        try:
            variant = (variant_method(args.variant), json.loads(args.swfp_kwargs))
        except ValueError as exc:
            parser.error(f"--variant/--swfp-kwargs: {exc}")
        if not isinstance(variant[1], dict):
            parser.error(f"--swfp-kwargs must be a JSON object, got {args.swfp_kwargs!r}")
    if not args.render:
        if args.suite == "cost":
            run_cost(args.device)
        else:
            if args.suite == "runs":
                function = run_one
                if args.variant is not None:
                    jobs: list[Any] = [(t, variant[0], s, args.budget, args.device, variant[1]) for t in args.tasks for s in args.seeds]
                else:
                    jobs = [(t, m, s, args.budget, args.device) for t in args.tasks for m in args.methods for s in args.seeds]
            elif robustness:
                function = run_one
                jobs = [(t, "swfp", s, "cpu", args.device, None, "robustness") for t in args.tasks for s in args.seeds]
            elif args.suite == "density":
                function, jobs = run_density, density_jobs(args.seeds)
            else:
                function = run_sensitivity
                grid = [("n_blocks", float(n)) for n in SENSITIVITY_N] + [("w2_coef", w) for w in SENSITIVITY_W2]
                jobs = [(name, value, seed) for name, value in grid for seed in args.seeds]
            with mp.get_context("spawn").Pool(args.jobs) as pool:
                for message in pool.imap_unordered(function, jobs):
                    print(message, flush=True)
    render()


if __name__ == "__main__":
    main()
