"""The main job: demonstrations -> behaviour cloning -> SWFP online fine-tuning, against SAC from scratch.

On Pendulum-v1, in a few minutes on a laptop CPU:

1. record demonstrations with the shipped swing-up expert, made deliberately suboptimal by
   action noise;
2. behaviour-clone them into a flow policy (``SWFP.pretrain``, flow matching, Eq. 7 of the paper) and evaluate;
3. fine-tune online with SWFP (stepwise JKO updates, soft-Q critic) with the demonstrations
   mixed into each batch, evaluating every ``--eval-every`` steps (settings: ``FINETUNE_KWARGS``,
   the Pendulum-v1 entry of ``zoo_hyperparams/swfp_o2o.yml``);
4. train SAC from scratch (rl-zoo3 settings) on the same online budget, evaluated the same way
   (in a second process, alongside steps 1-3);
5. print a table and a one-line verdict, write a learning-curve PNG, ``results.json``, the
   demonstrations and TensorBoard logs (training and evaluations) under ``--out``.

Progress bars show BC, then SWFP's fine-tuning and SAC's training side by side.  One run is one
seed (``--seed``); the README's table is the mean of seeds 0-2.

Usage::

    python examples/offline_to_online.py                 # defaults: about 3.5 minutes on 2 free CPU cores, longer on busy ones
    python examples/offline_to_online.py --online-steps 20000 --out runs/o2o_long
    # one change to the fine-tuning settings, without the SAC baseline (the ablations of docs/offline_to_online.md)
    python examples/offline_to_online.py --swfp-kwargs '{"q_normalization": false}' --no-sac
    # the tables of docs/offline_to_online.md, from the results.json files copied under docs/results/offline_to_online/
    python examples/offline_to_online.py --render docs/results/offline_to_online
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from sb3_swfp import SWFP, presets
from sb3_swfp.common.checks import require
from sb3_swfp.demos import collect_demonstrations
from sb3_swfp.experts.pendulum import PendulumSwingUpExpert

ENV_ID = "Pendulum-v1"

#: SWFP's settings: the fine-tuning preset (sb3_swfp.presets; docs/robustness.md says how it was chosen)
FINETUNE_KWARGS = dict(presets.FINETUNE_KWARGS)
#: Behaviour cloning: the preset's, with the BC budget of the zoo's Pendulum-v1 entry
BC_KWARGS = {**presets.PRETRAIN_KWARGS, "gradient_steps": 3000}


class EvalCurve(BaseCallback):
    """Deterministic evaluation every ``eval_every`` env steps, kept as ``(step, mean, std)`` and logged to TensorBoard.

    The points already in ``curve`` when training starts (the step-0 evaluation) are logged first.
    ``on_eval(step, mean)`` is called after each evaluation (the progress display shows it).
    """

    def __init__(self, eval_env: gym.Env, eval_every: int, n_episodes: int, curve: list[tuple[int, float, float]], on_eval=None):
        super().__init__()
        self.eval_env, self.eval_every, self.n_episodes = eval_env, eval_every, n_episodes
        self.curve = curve  # appended to
        self.on_eval = on_eval

    def _on_training_start(self) -> None:
        for point in self.curve:
            self._log(*point)

    def _on_step(self) -> bool:
        if self.num_timesteps % self.eval_every == 0:
            self.curve.append((self.num_timesteps, *evaluate(self.model, self.eval_env, self.n_episodes)))
            self._log(*self.curve[-1])
        return True

    def _log(self, step: int, mean: float, std: float) -> None:
        self.logger.record("eval/mean_reward", mean)
        self.logger.record("eval/std_reward", std)
        self.logger.dump(step)
        if self.on_eval is not None:
            self.on_eval(step, mean)


class StepCounter(BaseCallback):
    """Writes ``num_timesteps`` into a shared ``multiprocessing.Value``: SAC's progress, read by the main process."""

    def __init__(self, counter):
        super().__init__()
        self.counter = counter

    def _on_step(self) -> bool:
        self.counter.value = self.num_timesteps
        return True


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def evaluate(model, env: gym.Env, n_episodes: int) -> tuple[float, float]:
    returns, _ = evaluate_policy(model, env, n_eval_episodes=n_episodes, deterministic=True, return_episode_rewards=True)
    return float(np.mean(returns)), float(np.std(returns))


_sac_steps = None  # in the SAC process: the shared step counter (set by the pool's initializer)


def _share_sac_steps(counter) -> None:
    global _sac_steps
    _sac_steps = counter


def train_sac(online_steps: int, eval_every: int, eval_episodes: int, seed: int, tb_log: str) -> list[tuple[int, float, float]]:
    """SAC from scratch (rl-zoo3's Pendulum-v1 settings: learning_rate 1e-3), evaluated as SWFP is; its curve."""
    th.set_num_threads(1)
    eval_env = Monitor(gym.make(ENV_ID))
    eval_env.reset(seed=10_000 + seed)
    sac = SAC("MlpPolicy", ENV_ID, learning_rate=1e-3, tensorboard_log=tb_log, seed=seed)
    curve = [(0, *evaluate(sac, eval_env, eval_episodes))]
    callbacks = [EvalCurve(eval_env, eval_every, eval_episodes, curve)]
    if _sac_steps is not None:
        callbacks.append(StepCounter(_sac_steps))
    sac.learn(online_steps, callback=callbacks, tb_log_name="SAC_scratch")
    return curve


class OnlineProgress:
    """Progress bars of the online phase: SWFP's fine-tuning (this process) and SAC's training (the
    other process, through a shared step counter), each with its latest evaluation.  ``None`` bars: plain prints."""

    def __init__(self, online_steps: int, sac_steps=None, enabled: bool = True):
        self.online_steps, self.sac_steps = online_steps, sac_steps
        self.progress = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()
            )
            self.swfp_task = self.progress.add_task("SWFP fine-tuning", total=online_steps)
            if sac_steps is not None:
                self.sac_task = self.progress.add_task("SAC from scratch (other process)", total=online_steps)

    def __enter__(self) -> OnlineProgress:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self.progress is not None:
            self.refresh_sac()
            self.progress.stop()

    def swfp_step(self, step: int) -> None:
        if self.progress is not None:
            self.progress.update(self.swfp_task, completed=step)
            if step % 50 == 0:
                self.refresh_sac()

    def swfp_eval(self, step: int, mean: float) -> None:
        if self.progress is not None:
            self.progress.update(self.swfp_task, description=f"SWFP fine-tuning (eval {mean:7.1f} at {step})")

    def refresh_sac(self) -> None:
        if self.progress is not None and self.sac_steps is not None:
            self.progress.update(self.sac_task, completed=self.sac_steps.value)


class ProgressCallback(BaseCallback):
    """Advances :class:`OnlineProgress` with SWFP's env steps."""

    def __init__(self, display: OnlineProgress):
        super().__init__()
        self.display = display

    def _on_step(self) -> bool:
        self.display.swfp_step(self.num_timesteps)
        return True


def compare(a: tuple[float, float, int], b: tuple[float, float, int]) -> str:
    """``"above"``, ``"below"`` or ``"level with"``: ``a`` against ``b``, each ``(mean, std, n_episodes)``.

    Level when the means differ by less than two standard errors of their difference (the episode
    returns spread with the start state, so with 10 episodes a few tens of return points are noise).
    """
    (mean_a, std_a, n_a), (mean_b, std_b, n_b) = a, b
    noise = 2.0 * float(np.sqrt(std_a**2 / n_a + std_b**2 / n_b))
    if abs(mean_a - mean_b) <= noise:
        return "level with"
    return "above" if mean_a > mean_b else "below"


def verdict(seed: int, demos: tuple, bc: tuple, swfp: tuple, sac: tuple | None) -> str:
    """The run in one line: what fine-tuning did to the BC policy, and where SWFP ends against SAC and the demonstrations.

    Each result is ``(mean, std, n_episodes)``.
    """
    change = compare(swfp, bc)
    moved = {"above": "improved", "below": "made worse", "level with": "no clear change from"}[change]
    parts = [f"SWFP fine-tuning: {moved} the BC policy ({bc[0]:.0f} -> {swfp[0]:.0f})"]
    if sac is not None:
        parts.append(f"ends {compare(swfp, sac)} SAC from scratch ({sac[0]:.0f})")
    parts.append(f"{compare(swfp, demos)} the demonstrations it started from ({demos[0]:.0f})")
    level = f"; 'level'/'no clear change': within two standard errors of the {swfp[2]}-episode means"
    return f"Verdict (seed {seed}, one seed): " + ", ".join(parts) + level + "."


def json_object(text: str) -> dict:
    """``--swfp-kwargs``: a JSON object (SWFP's argument names to values), or a clear argparse error."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text!r}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"w2_coef\": 1.0}}', got {text!r}")
    return value


def count(least: int) -> Callable[[str], int]:
    """An argparse type: an integer ``>= least``, or a clear usage error before any work starts."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from exc
        if value < least:
            raise argparse.ArgumentTypeError(f"expected an integer >= {least}, got {value}")
        return value

    return parse


#: What this script writes under --out; a second run there would replace a first one's
OUTPUTS = ("results.json", "demos.npz", "learning_curve.png", "tb")
#: SWFP arguments this script sets from its own flags
SET_BY_FLAGS = {"seed": "--seed", "tensorboard_log": "--out", "policy": "(FlowPolicy)", "env": "(Pendulum-v1)"}


def main_parser() -> argparse.ArgumentParser:
    """The script's command line (also what --render compares runs' arguments with)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/offline_to_online", help="folder for the demonstrations, PNG, JSON and TensorBoard logs")
    parser.add_argument("--overwrite", action="store_true", help="replace the results of an earlier run in --out")
    parser.add_argument("--demo-episodes", type=count(1), default=10)
    parser.add_argument("--demo-noise", type=float, default=0.6, help="relative action-noise std of the expert")
    parser.add_argument("--bc-steps", type=count(0), default=BC_KWARGS["gradient_steps"])
    parser.add_argument("--online-steps", type=count(1), default=8000)
    parser.add_argument("--eval-every", type=count(1), default=1000, help="env steps between evaluations; divides --online-steps")
    parser.add_argument("--eval-episodes", type=count(2), default=10, help="at least 2: the verdict needs their standard error")
    parser.add_argument("--swfp-kwargs", type=json_object, default={}, help="JSON dict of SWFP arguments that replace FINETUNE_KWARGS'")
    parser.add_argument("--no-sac", action="store_true", help="skip the SAC-from-scratch baseline")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (for log files)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--render", metavar="FOLDER", help="only print the Markdown tables of the results.json files in FOLDER")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = main_parser()
    args = parser.parse_args(argv)
    if args.render is not None:
        if not any(Path(args.render).glob("*.json")):
            parser.error(f"--render {args.render}: no results (*.json written by this script) in that folder")
        print(render(Path(args.render)))
        return
    # Before any work: a missing one would end the run after its demonstrations were written (or after training)
    require(("tensorboard", "matplotlib", *(() if args.no_progress else ("tqdm", "rich"))), "examples/offline_to_online.py", "examples")
    if args.online_steps % args.eval_every:
        parser.error(f"--eval-every {args.eval_every} must divide --online-steps {args.online_steps}: the last evaluation is the final policy's")
    if not (math.isfinite(args.demo_noise) and args.demo_noise >= 0):  # nan would be the noiseless expert, silently
        parser.error(f"--demo-noise is a standard deviation, a finite number >= 0, got {args.demo_noise}")
    set_by_flags = sorted(set(args.swfp_kwargs) & set(SET_BY_FLAGS))
    if set_by_flags:
        parser.error(f"--swfp-kwargs: {', '.join(f'{name} is set by {SET_BY_FLAGS[name]}' for name in set_by_flags)}")
    swfp_kwargs = presets.merge_kwargs(FINETUNE_KWARGS, args.swfp_kwargs)  # policy_kwargs key by key, as the model gets them
    try:
        presets.finetune_kwargs("unused.npz", **args.swfp_kwargs)  # the names, checked before any work
        # and the values: a model built without demonstrations or a buffer, before anything is written
        values = {k: v for k, v in swfp_kwargs.items() if k not in ("replay_buffer_class", "replay_buffer_kwargs")}
        SWFP("FlowPolicy", ENV_ID, **{**values, "bc_coef": 0.0, "buffer_size": 1, "device": "cpu"})
    except (TypeError, ValueError) as exc:
        parser.error(f"--swfp-kwargs: {exc}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        parser.error(f"--out {args.out} is a file, expected a folder")
    earlier = [name for name in OUTPUTS if (out / name).exists()]
    if earlier and not args.overwrite:
        parser.error(f"--out {args.out} holds an earlier run's {', '.join(earlier)}: give another --out (one per seed), or --overwrite")
    if args.overwrite:
        shutil.rmtree(out / "tb", ignore_errors=True)  # an earlier run's logs would sit beside this one's
    th.set_num_threads(1)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a parent that is a file, no permission
        parser.error(f"--out {args.out}: cannot make the folder ({exc.strerror})")
    eval_env = Monitor(gym.make(ENV_ID))
    eval_env.reset(seed=10_000 + args.seed)
    start = time.perf_counter()
    print(
        f"{ENV_ID}, seed {args.seed}: {args.demo_episodes} noisy expert episodes -> {args.bc_steps} BC steps -> "
        f"{args.online_steps} online steps of SWFP" + ("" if args.no_sac else f", against SAC from scratch ({args.online_steps} steps)")
    )

    # 4. (started first) SAC from scratch on the same online budget, in a second process: two cores, half the wait
    context = mp.get_context("spawn")
    sac_steps = None if args.no_sac else context.Value("i", 0)
    pool = context.Pool(1, initializer=_share_sac_steps, initargs=(sac_steps,)) if not args.no_sac else None
    sac_job = None
    if pool is not None:
        sac_args = (args.online_steps, args.eval_every, args.eval_episodes, args.seed, str(out / "tb"))
        sac_job = pool.apply_async(train_sac, sac_args)

    previous_handler = signal.signal(signal.SIGTERM, _exit_on_sigterm)  # a kill unwinds as Ctrl-C does
    try:
        # 1. Suboptimal demonstrations from the scripted expert
        expert = PendulumSwingUpExpert(noise_std=args.demo_noise, seed=args.seed)
        demos = collect_demonstrations(ENV_ID, expert, n_episodes=args.demo_episodes, seed=args.seed)
        demos_path = demos.save(out / "demos.npz")
        demo_returns = demos.episode_returns()
        demo_score = (float(np.mean(demo_returns)), float(np.std(demo_returns)), len(demo_returns))
        print(f"[{time.perf_counter() - start:5.0f}s] {len(demos)} demonstration transitions ({demos_path}), mean return {demo_score[0]:.1f}")

        # 2. Behaviour cloning into the flow policy
        # The preset, with the demonstrations as a quarter of every batch
        model = SWFP("FlowPolicy", ENV_ID, **presets.finetune_kwargs(demos, tensorboard_log=str(out / "tb"), seed=args.seed, **swfp_kwargs))
        model.pretrain(demos, **{**BC_KWARGS, "gradient_steps": args.bc_steps}, progress_bar=not args.no_progress)
        bc_score = evaluate(model, eval_env, args.eval_episodes)
        print(f"[{time.perf_counter() - start:5.0f}s] BC flow policy: {bc_score[0]:.1f} ± {bc_score[1]:.1f}")

        # 3. Online fine-tuning with SWFP, then wait for SAC, with their progress side by side
        swfp_curve = [(0, *bc_score)]
        with OnlineProgress(args.online_steps, sac_steps, enabled=not args.no_progress) as display:
            callbacks = [EvalCurve(eval_env, args.eval_every, args.eval_episodes, swfp_curve, on_eval=display.swfp_eval), ProgressCallback(display)]
            model.learn(args.online_steps, callback=callbacks, tb_log_name="SWFP_finetune")
            print(f"[{time.perf_counter() - start:5.0f}s] SWFP fine-tuned: {swfp_curve[-1][1]:.1f}")
            sac_curve: list[tuple[int, float, float]] = []
            if sac_job is not None:
                while not sac_job.ready():
                    display.refresh_sac()
                    sac_job.wait(0.5)
                sac_curve = sac_job.get()
                print(f"[{time.perf_counter() - start:5.0f}s] SAC from scratch: {sac_curve[-1][1]:.1f}")
    except BaseException:
        if pool is not None:
            pool.terminate()  # Ctrl-C or a kill: SAC stops with the demo instead of training on, orphaned
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        if pool is not None:
            pool.close()
            pool.join()

    # 5. Table, verdict, curve, raw numbers
    n_eval = args.eval_episodes
    rows = [
        ("demonstrations (noisy expert)", demo_score[0], demo_score[1]),
        ("BC flow policy (before online)", bc_score[0], bc_score[1]),
        (f"SWFP after {args.online_steps} online steps", swfp_curve[-1][1], swfp_curve[-1][2]),
    ]
    if sac_curve:
        rows.append((f"SAC from scratch, {args.online_steps} steps", sac_curve[-1][1], sac_curve[-1][2]))
    print(f"\n{ENV_ID}, seed {args.seed}\n\n| policy | mean return | std |\n|---|---|---|")
    for name, mean, std in rows:
        print(f"| {name} | {mean:.1f} | {std:.1f} |")
    print(
        f"\nstd: the spread of the episode returns ({n_eval} deterministic evaluation episodes from different start "
        f"states; the demonstrations' own {demo_score[2]} episodes), not an uncertainty of the mean.  One seed: the "
        "README's table is the mean of seeds 0-2."
    )
    line = verdict(
        args.seed,
        demo_score,
        (bc_score[0], bc_score[1], n_eval),
        (swfp_curve[-1][1], swfp_curve[-1][2], n_eval),
        (sac_curve[-1][1], sac_curve[-1][2], n_eval) if sac_curve else None,
    )
    print(line)
    first_actor_step = _first_actor_step({"swfp_kwargs": swfp_kwargs})
    result = {
        "args": vars(args),
        "seed": args.seed,
        "swfp_kwargs": swfp_kwargs,
        "bc_kwargs": {**BC_KWARGS, "gradient_steps": args.bc_steps},
        "rows": rows,
        "verdict": line,
        "first_actor_step": first_actor_step,
        "swfp_curve": swfp_curve,
        "sac_curve": sac_curve,
        "wall_s": time.perf_counter() - start,
    }
    partial = out / "results.json.tmp"  # replaced in one step: --render never reads half a file
    partial.write_text(json.dumps(result, indent=1))
    partial.replace(out / "results.json")
    plot(out / "learning_curve.png", swfp_curve, sac_curve, demo_score[0], first_actor_step, args.seed)
    print(
        f"\nwrote {out / 'learning_curve.png'}, {out / 'results.json'}, {demos_path.name} and TensorBoard logs "
        f"(training and evaluations) in {out / 'tb'} ({time.perf_counter() - start:.0f}s in all)"
    )


#: Arguments that do not change what SWFP's columns measure: runs that differ only in these share a row of --render
NOT_SETTINGS = ("seed", "out", "overwrite", "no_progress", "render", "no_sac")


def render(folder: Path) -> str:
    """Markdown tables of the runs in ``folder`` (``*.json`` written by this script), one row per setting (every argument
    but :data:`NOT_SETTINGS`; rows are labelled by ``--swfp-kwargs``, with the other arguments where they differ from
    the defaults).  Other JSON files are named and left out."""
    runs, foreign = [], []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and {"args", "swfp_curve", "sac_curve"} <= set(data):
            runs.append(data | {"file": path.name})
        else:
            foreign.append({"file": path.name})
    defaults = {key: value for key, value in vars(main_parser().parse_args([])).items() if key not in NOT_SETTINGS}
    groups: dict[str, list[dict]] = {}
    for run in runs:  # an argument a run's file predates had its default
        setting = {**defaults, **{key: value for key, value in run["args"].items() if key not in NOT_SETTINGS}}
        groups.setdefault(json.dumps(setting, sort_keys=True), []).append(run)
    lines = [
        "| SWFP settings | seeds | BC, before online | SWFP after fine-tuning | lowest eval once the actor moves | SAC from scratch |",
        "|---|---|---|---|---|---|",
    ]
    plain = json.dumps(defaults, sort_keys=True)
    for key, group in sorted(groups.items(), key=lambda item: (item[0] != plain, item[0])):
        group.sort(key=lambda run: run["args"]["seed"])
        setting = json.loads(key)

        def values(column: list[float]) -> str:
            return f"{np.mean(column):.1f} ({', '.join(f'{value:.0f}' for value in column)})"

        bc = [run["swfp_curve"][0][1] for run in group]
        final = [run["swfp_curve"][-1][1] for run in group]
        # A run shorter than the actor's first step has no such evaluation: its start stands in
        lowest = [min((mean for step, mean, _ in run["swfp_curve"] if step > _first_actor_step(run)), default=run["swfp_curve"][0][1]) for run in group]
        sac = [run["sac_curve"][-1][1] for run in group if run["sac_curve"]]
        swfp = json.dumps(setting["swfp_kwargs"], sort_keys=True)
        name = "`FINETUNE_KWARGS`" if swfp == "{}" else f"`FINETUNE_KWARGS` with `{swfp}`"
        flags = [f"--{k.replace('_', '-')} {v}" for k, v in setting.items() if k != "swfp_kwargs" and v != defaults[k]]
        name += "".join(f", `{flag}`" for flag in flags)
        seeds = ", ".join(str(run["args"]["seed"]) for run in group)
        lines.append(f"| {name} | {seeds} | {values(bc)} | {values(final)} | {values(lowest)} | {values(sac) if sac else '–'} |")
    if foreign:
        lines += ["", f"Not this script's results, left out: {', '.join(item['file'] for item in foreign)}."]
    return "\n".join(lines)


def _first_actor_step(run: dict) -> int:
    """Env step of the first actor update (one gradient step per env step after ``learning_starts``)."""
    kwargs = run["swfp_kwargs"]
    return kwargs.get("learning_starts", 100) + kwargs.get("actor_learning_starts", 0)


def y_range(swfp_curve: list, sac_curve: list, demo_return: float) -> tuple[float, float]:
    """The plot's y-range: every SWFP point (with its std band) and the demonstrations, plus SAC's points
    from where SWFP's range starts (SAC's first evaluations, near -1500 on Pendulum, would squash the rest)."""
    swfp = np.array([(mean - std, mean + std) for _, mean, std in swfp_curve])
    low, high = min(swfp[:, 0].min(), demo_return), max(swfp[:, 1].max(), demo_return)
    if sac_curve:
        high = max(high, max(mean + std for _, mean, std in sac_curve))
    margin = 0.08 * (high - low)
    return low - margin, high + margin


def plot(path: Path, swfp_curve: list, sac_curve: list, demo_return: float, first_actor_step: int | None = None, seed: int | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    bottom, top = y_range(swfp_curve, sac_curve, demo_return)
    for curve, label in ((swfp_curve, "SWFP (BC + online)"), (sac_curve, "SAC from scratch")):
        if not curve:
            continue
        steps, means, stds = (np.array(column) for column in zip(*curve))
        below = means < bottom
        if below.any():  # say where the points below the axis are
            label += f" (below the axis at step {', '.join(str(int(step)) for step in steps[below])}: min {means.min():.0f})"
        ax.plot(steps, means, marker="o", label=label)
        ax.fill_between(steps, means - stds, means + stds, alpha=0.2)
    ax.axhline(demo_return, color="grey", linestyle="--", label="demonstrations")
    if first_actor_step is not None and first_actor_step < swfp_curve[-1][0]:
        ax.axvline(first_actor_step, color="black", linestyle=":", label=f"SWFP's actor starts updating (step {first_actor_step})")
    ax.set_ylim(bottom, top)
    ax.set_xlabel("online env steps")
    ax.set_ylabel("deterministic eval return (mean ± std)")
    ax.set_title(f"{ENV_ID}: offline-to-online" + ("" if seed is None else f", seed {seed}"))
    ax.legend(fontsize="small", loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
