"""One benchmark run: evaluations along the way, a checkpoint at each, and its JSON at the end.

A run is a :class:`Run` (task, method, seed, budget, ...); :func:`run_one` writes its result to
``<results>/<budget>/<task>/<method>_s<seed>.json`` (``robustness/`` for that suite).  Finished runs
are skipped, so an interrupted suite resumes; a run stopped before its end goes on from its last
evaluation (:class:`Checkpoint`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import multiprocessing as mp
import os
import shutil
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import RESULTS, SUITE_COMMAND, provenance, read_result, shown, write_result
from benchmarks.methods import is_swfp, make_model, model_class, variant_name
from benchmarks.tasks import TASKS, Task, make_demonstrations, make_env

#: Evaluation episodes of run ``seed`` start from the states of ``env.reset(seed=EVAL_SEED + seed)``
EVAL_SEED = 10_000

#: Written into each result: older runs (without it) drew new start states at every evaluation
EVAL_PROTOCOL = "same start states at every evaluation"

#: Fresh seeds of the robustness suite: they played no part in choosing the preset (seeds 0-2).  Seeds
#: 10-14 were the suite's until the preset took ten critics, 15-19 until it took the policy selection,
#: 20-24 until the selection was measured by deterministic episodes, 25-29 until by three of them: each
#: change was chosen after their runs were seen.
ROBUSTNESS_SEEDS = (35, 36, 37, 38, 39)


#: The robustness suite evaluates over at least this many episodes (MuJoCo's tables use 5)
ROBUSTNESS_EVAL_EPISODES = 10


@dataclass(frozen=True)
class Run:
    """One (task, method, seed) run of the suite.

    :param task: A key of ``TASKS``.
    :param method: A method of ``RUN_METHODS``, or ``variant_method(name)`` for an SWFP variant.
    :param seed: The run's seed.
    :param budget: ``cpu``, ``long`` or ``full`` (``Task.steps``).
    :param device: Torch device of the model.
    :param swfp_kwargs: The SWFP keyword arguments of a variant (with a variant's method only).
    :param folder: The results folder when it is not the budget's (``"robustness"``).
    :param stochastic_eval_episodes: Also evaluate every policy with sampled actions over this many
        episodes, into the result's ``curve_stochastic`` (the deterministic curve is unchanged; the
        run's ``online_wall_s`` includes these evaluations).
    :param selection_evals: SWFP with the policy selection only: at each of its decisions, also evaluate the copy
        its phase measured, into the result's ``selection_phases`` (:class:`SelectionRecord`); the curve is
        unchanged, and ``online_wall_s`` leaves these evaluations out (they are ``selection_evals_wall_s``).
    """

    task: str
    method: str
    seed: int
    budget: str = "cpu"
    device: str = "cpu"
    swfp_kwargs: dict[str, Any] | None = None
    folder: str | None = None
    stochastic_eval_episodes: int | None = None
    selection_evals: bool = False

    def __post_init__(self):
        if (self.swfp_kwargs is not None) != (variant_name(self.method) is not None):
            raise ValueError(f"{self.method!r}: SWFP keyword arguments go with variants (swfp-<name>) only")
        if self.stochastic_eval_episodes is not None and self.stochastic_eval_episodes < 1:
            raise ValueError(f"stochastic_eval_episodes is a positive count, got {self.stochastic_eval_episodes}")
        if self.selection_evals and not is_swfp(self.method):
            raise ValueError(f"selection_evals evaluates SWFP's policy selection: {self.method!r} has none")

    @property
    def results_folder(self) -> str:
        return self.folder or self.budget

    def command(self) -> str:
        """The command line that makes this run."""
        stochastic = "" if self.stochastic_eval_episodes is None else f" --stochastic-eval {self.stochastic_eval_episodes}"
        stochastic += " --selection-evals" if self.selection_evals else ""
        if self.folder == "robustness":
            return f"{SUITE_COMMAND} --suite robustness --tasks {self.task} --seeds {self.seed}{stochastic}"
        if self.swfp_kwargs is None:
            return f"{SUITE_COMMAND} --tasks {self.task} --methods {self.method} --seeds {self.seed} --budget {self.budget}{stochastic}"
        return (
            f"{SUITE_COMMAND} --tasks {self.task} --variant {variant_name(self.method)} "
            f"--swfp-kwargs '{json.dumps(self.swfp_kwargs)}' --seeds {self.seed} --budget {self.budget}{stochastic}"
        )


def _devices(model) -> list[int]:
    """The GPUs whose generators a fork of torch's must restore for ``model`` (none on the CPU)."""
    import torch as th

    # SB3's "auto"/"cuda" has no index: its tensors live on the current GPU
    return [th.cuda.current_device() if model.device.index is None else model.device.index] if model.device.type == "cuda" else []


def result_path(results: Path, folder: str, task_name: str, method: str, seed: int) -> Path:
    """Where a run's JSON goes: ``folder`` is the budget's name, or ``robustness`` for that suite."""
    return results / folder / task_name / f"{method}_s{seed}.json"


def evaluate(model, env, task: Task, seed: int) -> tuple[float, float, float | None]:
    """Mean and std of the episode returns, and the success rate on PointMaze.

    The env is reseeded first, and a stochastic policy draws from torch's generator seeded the same way
    (forked: training's random numbers are not touched), so every evaluation of a run plays the same
    start states, goals and noise: two evaluations of a run differ by the policy only.
    """
    import torch as th
    from stable_baselines3.common.evaluation import evaluate_policy

    env.reset(seed=EVAL_SEED + seed)
    with th.random.fork_rng(devices=_devices(model)):
        th.manual_seed(EVAL_SEED + seed)
        returns, _ = evaluate_policy(
            model, env, n_eval_episodes=task.eval_episodes, deterministic=task.deterministic_eval, return_episode_rewards=True
        )
    success = float(np.mean(np.asarray(returns) > 0)) if task.success_metric else None
    return float(np.mean(returns)), float(np.std(returns)), success


def run_one(run: Run, results: Path = RESULTS) -> str:
    """One run: evaluate at step 0 and every ``eval_every`` steps; write its JSON under ``results``.

    A run under way in another process (a rerun beside it, the same seed given twice) is skipped: two
    processes would train from one checkpoint and write one file in turn.
    """
    out = result_path(results, run.results_folder, run.task, run.method, run.seed)
    if out.exists():
        return f"skip {shown(out)}"
    if run.swfp_kwargs is not None:  # a variant's row averages its seeds: they must be one setting
        check_variant_settings(out.parent, run)
    out.parent.mkdir(parents=True, exist_ok=True)  # a folder it cannot write to fails here, before any training
    with _held(out.with_name(out.name + ".lock")) as held:
        if not held:
            return f"skip {shown(out)}: under way in another process"
        if out.exists():  # finished while this process waited for the lock
            return f"skip {shown(out)}"
        return _run(run, out)


@contextlib.contextmanager
def _held(path: Path) -> Iterator[bool]:
    """Whether this process holds ``path``'s lock (POSIX ``flock``, released by the kernel however the process ends)."""
    try:
        import fcntl
    except ImportError:  # no POSIX locks (Windows): runs are not guarded
        yield True
        return
    with open(path, "w") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held = False
        else:  # a file its holder unlinked after this process opened it is not the lock any more
            held = path.exists() and os.fstat(file.fileno()).st_ino == os.stat(path).st_ino
        try:
            yield held
        finally:
            if held:
                path.unlink(missing_ok=True)  # while still held: a later process locks a new file


def _run(run: Run, out: Path) -> str:
    import torch as th
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.monitor import Monitor

    th.set_num_threads(1)
    task = TASKS[run.task]
    if run.folder == "robustness":  # its dips are measured against BC: fewer evaluation episodes would measure noise
        task = dataclasses.replace(task, eval_episodes=max(task.eval_episodes, ROBUSTNESS_EVAL_EPISODES))
    steps = task.steps(run.budget)
    start = time.perf_counter()
    demos = make_demonstrations(task)
    eval_env = Monitor(make_env(task.env_id))
    checkpoint = Checkpoint(out.with_suffix(".checkpoint"))
    state = checkpoint.state()
    sampled_task = None
    if run.stochastic_eval_episodes is not None:
        sampled_task = dataclasses.replace(task, eval_episodes=run.stochastic_eval_episodes, deterministic_eval=False)

    def evaluations(model, step: int) -> None:
        state["curve"].append((step, *evaluate(model, eval_env, task, run.seed)))
        if sampled_task is not None:  # its own reseeding and forked generator: the deterministic curve is unchanged
            state["curve_stochastic"].append((step, *evaluate(model, eval_env, sampled_task, run.seed)))

    settings = run_settings(run, task)
    segment = provenance()
    if state is None:
        method = "swfp" if run.swfp_kwargs is not None else run.method
        model = make_model(method, task, demos, run.seed, run.budget, run.device, run.swfp_kwargs)
        state = {
            "curve": [], "curve_stochastic": [], "stochastic_eval_episodes": run.stochastic_eval_episodes,
            "online_wall_s": 0.0, "resumed_at": [], "settings": settings, "segments": [{"from_step": 0, **segment}],
        }  # fmt: skip
        evaluations(model, 0)
    else:  # a run stopped before its end goes on from its last evaluation
        check_resumable(checkpoint.folder, state, settings)
        state.setdefault("settings", settings)  # an older checkpoint: checked in full from its next resume on
        model = checkpoint.load_model(run.method, make_env(task.env_id), run.device)
        state["resumed_at"].append(model.num_timesteps)
        state.setdefault("segments", []).append({"from_step": model.num_timesteps, **segment})
    curve = state["curve"]
    record = SelectionRecord(model, state.setdefault("selection_phases", []), eval_env, task, run.seed) if run.selection_evals else None

    class Evaluate(BaseCallback):
        def _on_training_start(self) -> None:
            if record is not None:
                record.watch()

        def _on_step(self) -> bool:
            if record is not None:  # before the checkpoint of this step, which saves its phases
                record.step(self.num_timesteps)
            if self.num_timesteps % task.eval_every == 0:
                evaluations(self.model, self.num_timesteps)
                checkpoint.save(self.model, {**state, **wall_times()})
            return True

    def wall_times() -> dict[str, float]:
        recording = 0.0 if record is None else record.wall_s
        return {
            "online_wall_s": state["online_wall_s"] + time.perf_counter() - online_start - recording,
            **({} if record is None else {"selection_evals_wall_s": state.get("selection_evals_wall_s", 0.0) + recording}),
        }

    error = None
    online_start = time.perf_counter()
    try:
        model.learn(steps - model.num_timesteps, callback=Evaluate(), reset_num_timesteps=not state["resumed_at"])
    except FloatingPointError as exc:  # SWFP's NaN guard: keep the run and report the divergence
        error = f"{type(exc).__name__} at env step {model.num_timesteps}: {exc}"
    result = {
        "task": run.task,
        "task_spec": asdict(task),
        "toy_modes": toy_modes(model) if task.demos == "toy" else None,
        "method": run.method,
        "seed": run.seed,
        "budget": run.budget,
        "online_steps": steps,
        "curve": curve,
        **({} if sampled_task is None else {"curve_stochastic": state["curve_stochastic"], "eval_episodes_stochastic": run.stochastic_eval_episodes}),
        **({"selection_phases": state["selection_phases"]} if record is not None else {}),
        "error": error,
        "wall_s": time.perf_counter() - start,
        **wall_times(),
        # env steps at which a stopped run went on from its checkpoint (its random numbers differ from then on)
        "resumed_at": state["resumed_at"],
        "demos": {"transitions": len(demos), "episode_return_mean": _demo_return(demos)},
        "hyperparams": {key: repr(value) for key, value in describe(model).items()},
        "swfp_kwargs": run.swfp_kwargs,
        "command": run.command(),
        "device": str(model.device),
        "torch_threads": th.get_num_threads(),
        **segment,  # its machine: per-seed numbers reproduce on this kind of machine only (robustness.md §12)
        # the machine and code of each part of a resumed run (the first: where it started)
        **({"segments": state["segments"]} if state["resumed_at"] else {}),
        "eval_protocol": EVAL_PROTOCOL,
    }
    write_result(out, result)
    checkpoint.remove()
    return f"done {shown(out)} in {result['wall_s']:.0f}s"


class SelectionRecord:
    """Each decision of an SWFP model's policy selection, appended to ``phases`` at the env step it is made: that
    step, the returns that measured the phase's copy, whether it was kept, and that copy's evaluation by
    :func:`evaluate` (as the run's curve evaluates; on the toy also its :func:`toy_modes`).  Training does not depend
    on which copy is kept, so another keep rule's curve is read off these records (:func:`replayed`)."""

    def __init__(self, model, phases: list[dict[str, Any]], eval_env, task: Task, seed: int):
        if not getattr(model, "selection_steps", 0):
            raise ValueError("selection_evals: this run's SWFP has no policy selection (selection_steps=0)")
        self.model, self.phases, self.eval_env, self.task, self.seed = model, phases, eval_env, task, seed
        self.wall_s = 0.0  # spent evaluating, since this process took the run
        self.decided: int | None = None

    def watch(self) -> None:
        """Hold the phase's copy and its returns (a decision replaces both with new objects): at the start of
        ``learn()``, once it has set the selection up (a resumed model's phase under way), then at every step."""
        selection = self.model.selection
        if selection is None:  # made at the first env step, with the first phase
            self.decided, self.candidate, self.returns = 0, None, None
        else:
            self.decided, self.candidate, self.returns = selection.n_phases, selection.candidate, selection.returns

    def step(self, num_timesteps: int) -> None:
        """After the selection's step (its callback comes first): record a decision made at this env step."""
        import copy

        import torch as th

        selection = self.model.selection
        if selection is not None and selection.n_phases > self.decided:
            if self.candidate is None:
                raise RuntimeError("selection_evals: a phase ended at the first env step, before its copy could be held")
            start = time.perf_counter()
            policy = copy.deepcopy(self.model.policy)
            policy.actor_target.load_state_dict(self.candidate)
            mean, std, success = evaluate(policy, self.eval_env, self.task, self.seed)
            phase = {
                "step": num_timesteps, "returns": [float(value) for value in self.returns],
                "kept": selection.kept is self.candidate, "eval": [mean, std, success],
            }  # fmt: skip
            if self.task.demos == "toy":  # its line is on the final policy's modes
                with th.random.fork_rng(devices=_devices(self.model)):
                    th.manual_seed(EVAL_SEED + self.seed)
                    phase["toy_modes"] = toy_modes(policy)
            self.phases.append(phase)
            self.wall_s += time.perf_counter() - start
        self.watch()


def replay_selection(phases: list[dict[str, Any]], steps: list[int], keep: Callable[[list[float], list[float]], bool]) -> list[dict[str, Any] | None]:
    """The phase whose copy would answer at each of ``steps`` had the selection kept a phase's copy where ``keep(its
    returns, the kept copy's returns)`` holds; None before the first decision (the start answers).  The first phase
    measures the start and is kept whatever its returns, so its evaluation is the start's."""
    answers, kept = [], None
    decisions = iter(phases)
    phase = next(decisions, None)
    for step in steps:
        while phase is not None and phase["step"] <= step:
            if kept is None or keep(phase["returns"], kept["returns"]):
                kept = phase
            phase = next(decisions, None)
        answers.append(kept)
    return answers


def replayed(run: dict[str, Any], keep: Callable[[list[float], list[float]], bool]) -> dict[str, Any]:
    """``run`` (a result made with ``selection_evals``) as it would have been under the keep rule ``keep``: its
    curve, and on the toy the mode shares of the copy kept at the end (2000 other samples than the run's own)."""
    if "selection_phases" not in run:
        raise ValueError(f"{run['command']}: made without --selection-evals, so its decisions were not recorded")
    answers = replay_selection(run["selection_phases"], [point[0] for point in run["curve"]], keep)
    curve = [point if phase is None else [point[0], *phase["eval"]] for point, phase in zip(run["curve"], answers)]
    final = answers[-1]
    modes = run["toy_modes"] if final is None or "toy_modes" not in final else final["toy_modes"]
    return {**run, "curve": curve, "toy_modes": modes}


def check_variant_settings(folder: Path, run: Run) -> None:
    """Refuse a variant's run whose ``swfp_kwargs`` differ from those of the variant's runs already in ``folder``."""
    paths = [path for path in sorted(folder.glob(f"{run.method}_s*.json")) if path.stem.rpartition("_s")[0] == run.method]  # not swfp-lr_small's
    others = {path.stem.rpartition("_s")[2]: read_result(path).get("swfp_kwargs") for path in paths}
    differ = sorted(f"s{seed}" for seed, kwargs in others.items() if kwargs != run.swfp_kwargs)
    if differ:
        raise ValueError(
            f"variant {variant_name(run.method)!r} of {run.task} already has runs made with other settings ({', '.join(differ)}: "
            f"{json.dumps(others[differ[0][1:]])}, not {json.dumps(run.swfp_kwargs)}): its row would average them; give "
            "these settings another --variant name"
        )


def run_settings(run: Run, task: Task) -> dict[str, Any]:
    """What a run's checkpoint must have been made with to be resumed by ``run``: another value would finish, under
    this run's name and command, a run that began as another one."""
    return {
        "swfp_kwargs": run.swfp_kwargs, "budget": run.budget, "device": run.device,
        "stochastic_eval_episodes": run.stochastic_eval_episodes, "task_spec": json.loads(json.dumps(asdict(task))),
        **({"selection_evals": True} if run.selection_evals else {}),  # absent when off: older checkpoints resume
    }  # fmt: skip


def check_resumable(folder: Path, state: dict[str, Any], settings: dict[str, Any]) -> None:
    """Refuse to resume a checkpoint made with other settings than ``settings`` (:func:`run_settings`).

    Checkpoints written before the settings were recorded hold ``stochastic_eval_episodes`` alone: that is checked.
    """
    saved = state.get("settings") or {"stochastic_eval_episodes": state.get("stochastic_eval_episodes")}
    differ = [f"{key}: {saved[key]!r} there, {settings.get(key)!r} now" for key in saved if saved[key] != settings.get(key)]
    if settings.get("selection_evals") and not saved.get("selection_evals"):  # its decisions so far went unrecorded
        differ.append("selection_evals: off there, on now")
    if differ:
        raise ValueError(
            f"{folder} was made with other settings than this run ({'; '.join(differ)}): resume it with the same "
            "options, or delete the checkpoint to start the run again"
        )


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
        write_result(self.folder / "state.json", state, indent=None)

    def load_model(self, method: str, env, device: str):
        """The saved model, with its replay buffer, to train on in ``env``."""
        with warnings.catch_warnings():  # SWFP keeps demonstrations given as an object out of its file: the buffer has them
            warnings.filterwarnings("ignore", message="the demonstrations of this model's replay buffer are missing")
            model = model_class(method).load(self.folder / "model.zip", env=env, device=device)
        model.load_replay_buffer(self.folder / "replay_buffer.pkl")
        return model

    def remove(self) -> None:
        if self.folder.exists():
            shutil.rmtree(self.folder)


def run_jobs(function: Callable[..., str], jobs: Iterable[Any], n_jobs: int, **kwargs: Any) -> None:
    """``function(job, **kwargs)`` for every job, in ``n_jobs`` spawned processes (one torch thread each); prints their messages.

    A SIGTERM (``kill``, a job scheduler) ends the workers with the suite, as Ctrl-C does: without it
    they would go on and write results after the suite was stopped; a worker also exits when the suite's
    process is gone without a word (SIGKILL).  A worker that dies (the OOM killer) ends the suite with a
    message instead of leaving it waiting for a result that will not come.  Runs resume from their checkpoints.
    """
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    executor = ProcessPoolExecutor(n_jobs, mp_context=mp.get_context("spawn"), initializer=_end_with_the_suite)
    try:
        for done in as_completed([executor.submit(function, job, **kwargs) for job in jobs]):
            print(done.result(), flush=True)
    except BrokenProcessPool as error:  # a worker was killed (the OOM killer, kill -9): its runs would never come back
        raise SystemExit(
            "a worker process of the suite died (killed, or out of memory): run the same command again, and the runs "
            "under way go on from their checkpoints"
        ) from error
    finally:
        signal.signal(signal.SIGTERM, previous)
        for process in list((executor._processes or {}).values()):  # the runs under way end with the suite
            process.terminate()
        executor.shutdown(wait=True, cancel_futures=True)


def _end_with_the_suite() -> None:
    """In a worker: exit when the suite's process is gone, however it ended (SIGKILL leaves no time to end the workers)."""
    parent = mp.parent_process()
    if parent is not None:
        threading.Thread(target=lambda: (parent.join(), os._exit(1)), daemon=True).start()


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def toy_scores(actions: np.ndarray, high_reward_modes: tuple[int, ...]) -> dict[str, float]:
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


def toy_modes(model) -> dict[str, Any]:
    """Where 2000 samples of the final policy land on the toy: share in the high-reward modes, and how
    many of the high-reward modes hold at least 10% of those samples (the paper's no-collapse claim)."""
    from sb3_swfp.envs.toy import HIGH_REWARD_MODES, high_reward_mode_share, mode_shares

    actions, _ = model.predict(np.zeros((2000, 1), dtype=np.float32), deterministic=False)
    high_share = high_reward_mode_share(actions)
    shares = mode_shares(actions)[list(HIGH_REWARD_MODES)]
    kept = int(np.sum(shares >= 0.1 * max(high_share, 1e-12)))
    scores = toy_scores(actions, HIGH_REWARD_MODES)
    return {**scores, "high_reward_modes_kept": kept, "n_high_reward_modes": len(HIGH_REWARD_MODES)}


def _demo_return(demos) -> float | None:
    returns = demos.episode_returns()
    return float(returns.mean()) if len(returns) else None


#: Constructor arguments a result does not record: the env, objects, and what does not change learning
_NOT_DESCRIBED = frozenset(
    {"self", "policy", "env", "replay_buffer_kwargs", "tensorboard_log", "stats_window_size", "verbose", "seed", "device", "_init_setup_model"}
)


def describe(model) -> dict[str, Any]:
    """The hyperparameters that tell runs apart: every constructor argument of the model's class (SWFP's
    ``actor_tau``, ``q_agg``, ...; SAC's), the policy class and the buffer's share of demonstrations."""
    keys = [name for name in inspect.signature(type(model).__init__).parameters if name not in _NOT_DESCRIBED]
    # and what a method sets beyond its class's arguments (rlpd_bc: the actor's wait, its behaviour cloning)
    extra = ["policy_class", "actor_learning_starts", "behaviour_cloning"]
    described = {key: getattr(model, key) for key in [*keys, *extra] if hasattr(model, key)}
    if hasattr(model.replay_buffer, "demo_ratio"):  # the share of demonstrations in every batch
        described["demo_ratio"] = model.replay_buffer.demo_ratio
    return described
