"""The main job: demonstrations -> behaviour cloning -> SWFP online fine-tuning, against SAC from scratch.

On Pendulum-v1, in a few minutes on a laptop CPU:

1. record demonstrations with the shipped swing-up expert, made deliberately suboptimal by
   action noise;
2. behaviour-clone them into a flow policy (``SWFP.pretrain``, flow matching, spec §5) and evaluate;
3. fine-tune online with SWFP (stepwise JKO updates, soft-Q critic) with the demonstrations
   mixed into each batch, evaluating every ``--eval-every`` steps (settings: ``FINETUNE_KWARGS``,
   the Pendulum-v1 entry of ``zoo_hyperparams/swfp_o2o.yml``);
4. train SAC from scratch (rl-zoo3 settings) on the same online budget, evaluated the same way
   (in a second process, alongside steps 1-3);
5. print a table, write a learning-curve PNG and TensorBoard logs under ``--out``.

Usage::

    python examples/offline_to_online.py                 # defaults: about 3.5 minutes on 2 free CPU cores
    python examples/offline_to_online.py --online-steps 20000 --out runs/o2o_long
    # one change to the fine-tuning settings, without the SAC baseline (the ablations of docs/offline_to_online.md)
    python examples/offline_to_online.py --swfp-kwargs '{"q_normalization": false}' --no-sac
    # the tables of docs/offline_to_online.md, from the results.json files copied under docs/results/offline_to_online/
    python examples/offline_to_online.py --render docs/results/offline_to_online
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from sb3_swfp import SWFP
from sb3_swfp.common.buffers import DemoReplayBuffer
from sb3_swfp.common.demos import collect_demonstrations
from sb3_swfp.experts.pendulum import PendulumSwingUpExpert

ENV_ID = "Pendulum-v1"

#: SWFP fine-tuning settings (the Pendulum-v1 entry of zoo_hyperparams/swfp_o2o.yml); see
#: docs/offline_to_online.md for what each one does to the result.
FINETUNE_KWARGS = dict(
    learning_rate=1e-3,  # critic (rl-zoo3's SAC setting for Pendulum-v1)
    actor_learning_rate=1e-4,
    # Data from the BC policy from the first step (SB3 would act uniformly at random before learning_starts)
    learning_starts=0,
    # The critic fits for 3000 updates before the first JKO step moves the pretrained flow
    actor_learning_starts=3000,
    # Divide Q by the batch mean of |Q| in the JKO loss: ent_coef and w2_coef then weigh a Q of order 1
    # (Pendulum's Q is in the hundreds), and the W2 trust region is not swamped by the Q term
    q_normalization=True,
    ent_coef=0.01,
    w2_coef=10.0,
    # ent_coef is a temperature for the normalised Q: keep it out of the critic's (unnormalised) target
    critic_entropy=False,
)
#: Behaviour cloning (spec §5), with a higher learning rate than the paper's 1e-4 for a short run
BC_KWARGS = dict(gradient_steps=3000, batch_size=128, learning_rate=1e-3, final_learning_rate=1e-4)


class EvalCurve(BaseCallback):
    """Deterministic evaluation every ``eval_every`` env steps, kept as ``(step, mean, std)``."""

    def __init__(self, eval_env: gym.Env, eval_every: int, n_episodes: int, curve: list[tuple[int, float, float]]):
        super().__init__()
        self.eval_env, self.eval_every, self.n_episodes = eval_env, eval_every, n_episodes
        self.curve = curve  # appended to

    def _on_step(self) -> bool:
        if self.num_timesteps % self.eval_every == 0:
            self.curve.append((self.num_timesteps, *evaluate(self.model, self.eval_env, self.n_episodes)))
        return True


def evaluate(model, env: gym.Env, n_episodes: int) -> tuple[float, float]:
    returns, _ = evaluate_policy(model, env, n_eval_episodes=n_episodes, deterministic=True, return_episode_rewards=True)
    return float(np.mean(returns)), float(np.std(returns))


def train_sac(online_steps: int, eval_every: int, eval_episodes: int, seed: int, tb_log: str) -> list[tuple[int, float, float]]:
    """SAC from scratch (rl-zoo3's Pendulum-v1 settings: learning_rate 1e-3), evaluated as SWFP is; its curve."""
    th.set_num_threads(1)
    eval_env = Monitor(gym.make(ENV_ID))
    eval_env.reset(seed=10_000 + seed)
    sac = SAC("MlpPolicy", ENV_ID, learning_rate=1e-3, tensorboard_log=tb_log, seed=seed)
    curve = [(0, *evaluate(sac, eval_env, eval_episodes))]
    sac.learn(online_steps, callback=EvalCurve(eval_env, eval_every, eval_episodes, curve), tb_log_name="SAC_scratch")
    return curve


def json_object(text: str) -> dict:
    """``--swfp-kwargs``: a JSON object (SWFP's argument names to values), or a clear argparse error."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text!r}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"w2_coef\": 1.0}}', got {text!r}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/offline_to_online", help="folder for the PNG, JSON and TensorBoard logs")
    parser.add_argument("--demo-episodes", type=int, default=10)
    parser.add_argument("--demo-noise", type=float, default=0.6, help="relative action-noise std of the expert")
    parser.add_argument("--bc-steps", type=int, default=BC_KWARGS["gradient_steps"])
    parser.add_argument("--online-steps", type=int, default=8000)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--swfp-kwargs", type=json_object, default={}, help="JSON dict of SWFP arguments that replace FINETUNE_KWARGS'")
    parser.add_argument("--no-sac", action="store_true", help="skip the SAC-from-scratch baseline")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--render", metavar="FOLDER", help="only print the Markdown tables of the results.json files in FOLDER")
    args = parser.parse_args()
    if args.render:
        print(render(Path(args.render)))
        return
    th.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    eval_env = Monitor(gym.make(ENV_ID))
    eval_env.reset(seed=10_000 + args.seed)
    start = time.perf_counter()
    # 4. (started first) SAC from scratch on the same online budget, in a second process: two cores, half the wait
    pool = mp.get_context("spawn").Pool(1)
    sac_job = None
    if not args.no_sac:
        sac_args = (args.online_steps, args.eval_every, args.eval_episodes, args.seed, str(out / "tb"))
        sac_job = pool.apply_async(train_sac, sac_args)

    # 1. Suboptimal demonstrations from the scripted expert
    expert = PendulumSwingUpExpert(noise_std=args.demo_noise, seed=args.seed)
    demos = collect_demonstrations(ENV_ID, expert, n_episodes=args.demo_episodes, seed=args.seed)
    demos.save(out / "demos.npz")
    demo_return = float(np.mean(demos.episode_returns()))
    print(f"[{time.perf_counter() - start:5.0f}s] {len(demos)} demonstration transitions, mean return {demo_return:.1f}")

    # 2. Behaviour cloning into the flow policy
    swfp_kwargs = {**FINETUNE_KWARGS, **args.swfp_kwargs}
    model = SWFP(
        "FlowPolicy",
        ENV_ID,
        replay_buffer_class=DemoReplayBuffer,  # a quarter of every batch from the demonstrations
        replay_buffer_kwargs=dict(demonstrations=demos, demo_ratio=0.25),
        tensorboard_log=str(out / "tb"),
        seed=args.seed,
        **swfp_kwargs,
    )
    model.pretrain(demos, **{**BC_KWARGS, "gradient_steps": args.bc_steps})
    bc_score = evaluate(model, eval_env, args.eval_episodes)
    print(f"[{time.perf_counter() - start:5.0f}s] BC flow policy: {bc_score[0]:.1f} ± {bc_score[1]:.1f}")

    # 3. Online fine-tuning with SWFP
    swfp_curve = [(0, *bc_score)]
    model.learn(args.online_steps, callback=EvalCurve(eval_env, args.eval_every, args.eval_episodes, swfp_curve), tb_log_name="SWFP_finetune")
    print(f"[{time.perf_counter() - start:5.0f}s] SWFP fine-tuned: {swfp_curve[-1][1]:.1f}")

    sac_curve: list[tuple[int, float, float]] = []
    if sac_job is not None:
        sac_curve = sac_job.get()
        print(f"[{time.perf_counter() - start:5.0f}s] SAC from scratch: {sac_curve[-1][1]:.1f}")
    pool.close()

    # 5. Table, curve, raw numbers
    rows = [
        ("demonstrations (noisy expert)", demo_return, None),
        ("BC flow policy (before online)", bc_score[0], bc_score[1]),
        (f"SWFP after {args.online_steps} online steps", swfp_curve[-1][1], swfp_curve[-1][2]),
    ]
    if sac_curve:
        rows.append((f"SAC from scratch, {args.online_steps} steps", sac_curve[-1][1], sac_curve[-1][2]))
    print("\n| policy | mean return | std |\n|---|---|---|")
    for name, mean, std in rows:
        print(f"| {name} | {mean:.1f} | {'' if std is None else f'{std:.1f}'} |")
    result = {
        "args": vars(args),
        "swfp_kwargs": swfp_kwargs,
        "bc_kwargs": {**BC_KWARGS, "gradient_steps": args.bc_steps},
        "rows": rows,
        "swfp_curve": swfp_curve,
        "sac_curve": sac_curve,
        "wall_s": time.perf_counter() - start,
    }
    (out / "results.json").write_text(json.dumps(result, indent=1))
    plot(out / "learning_curve.png", swfp_curve, sac_curve, demo_return)
    print(f"\nwrote {out / 'learning_curve.png'}, {out / 'results.json'} and TensorBoard logs in {out / 'tb'} "
          f"({time.perf_counter() - start:.0f}s in all)")


def render(folder: Path) -> str:
    """Markdown tables of the runs in ``folder`` (``*.json`` written by this script), grouped by ``--swfp-kwargs``."""
    runs = [json.loads(path.read_text()) | {"file": path.name} for path in sorted(folder.glob("*.json"))]
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(json.dumps(run["args"]["swfp_kwargs"], sort_keys=True), []).append(run)
    lines = [
        "| SWFP settings | seeds | BC, before online | SWFP after fine-tuning | lowest eval once the actor moves | SAC from scratch |",
        "|---|---|---|---|---|---|",
    ]
    for key, group in sorted(groups.items(), key=lambda item: (item[0] != "{}", item[0])):
        group.sort(key=lambda run: run["args"]["seed"])

        def values(column: list[float]) -> str:
            return f"{np.mean(column):.1f} ({', '.join(f'{value:.0f}' for value in column)})"

        bc = [run["swfp_curve"][0][1] for run in group]
        final = [run["swfp_curve"][-1][1] for run in group]
        lowest = [min(mean for step, mean, _ in run["swfp_curve"] if step > _first_actor_step(run)) for run in group]
        sac = [run["sac_curve"][-1][1] for run in group if run["sac_curve"]]
        name = "`FINETUNE_KWARGS`" if key == "{}" else f"`FINETUNE_KWARGS` with `{key}`"
        seeds = ", ".join(str(run["args"]["seed"]) for run in group)
        lines.append(f"| {name} | {seeds} | {values(bc)} | {values(final)} | {values(lowest)} | {values(sac) if sac else '–'} |")
    return "\n".join(lines)


def _first_actor_step(run: dict) -> int:
    """Env step of the first actor update (one gradient step per env step after ``learning_starts``)."""
    kwargs = run["swfp_kwargs"]
    return kwargs.get("learning_starts", 100) + kwargs.get("actor_learning_starts", 0)


def plot(path: Path, swfp_curve: list, sac_curve: list, demo_return: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for curve, label in ((swfp_curve, "SWFP (BC + online)"), (sac_curve, "SAC from scratch")):
        if not curve:
            continue
        steps, means, stds = (np.array(column) for column in zip(*curve))
        ax.plot(steps, means, marker="o", label=label)
        ax.fill_between(steps, means - stds, means + stds, alpha=0.2)
    ax.axhline(demo_return, color="grey", linestyle="--", label="demonstrations")
    ax.set_xlabel("online env steps")
    ax.set_ylabel("deterministic eval return")
    ax.set_title(f"{ENV_ID}: offline-to-online")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
