"""The paper's toy (Sec. 5.1, Fig. 3): demonstrations, BC flow, SWFP after fine-tuning, and a Gaussian BC actor.

Writes a 4-panel PNG over the reward landscape and prints the share of samples per mode::

    python examples/toy_figure.py --out docs/results/toy/toy_figure.png --overwrite   # this page's figure
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
import torch as th
from stable_baselines3 import SAC

from sb3_swfp import SWFP
from sb3_swfp.common.checks import require
from sb3_swfp.common.gaussian_bc import gaussian_behaviour_cloning
from sb3_swfp.envs.toy import (
    DEMO_MODES,
    HIGH_REWARD_MODES,
    TOY_BC_KWARGS,
    TOY_SWFP_KWARGS,
    ToyBanditEnv,
    high_reward_mode_share,
    mode_shares,
    toy_demonstrations,
    toy_reward,
)


def cpu_name() -> str:
    """The processor's model name (Linux's /proc/cpuinfo; elsewhere what platform says)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/toy_figure.png", help="the PNG; its numbers go to the same name with .json")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out (and its .json)")
    parser.add_argument("--online-steps", type=int, default=4000, help="SWFP fine-tuning steps after behaviour cloning")
    parser.add_argument("--samples", type=int, default=2000, help="samples drawn from each policy (its panel and shares)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the demonstrations and of every model")
    args = parser.parse_args()
    require(("matplotlib",), "examples/toy_figure.py", "examples")  # before the runs: the figure comes last
    out = Path(args.out)
    if out.suffix != ".png":
        parser.error(f"--out {args.out}: expected a .png file")
    if args.online_steps < 0 or args.samples < 1:
        parser.error(f"--online-steps must be >= 0 and --samples >= 1, got {args.online_steps} and {args.samples}")
    if not 0 <= args.seed < 2**32:  # numpy's seeds
        parser.error(f"--seed must be in [0, 2**32), got {args.seed}")
    existing = [str(path) for path in (out, out.with_suffix(".json")) if path.exists()]
    if existing and not args.overwrite:
        parser.error(f"--out: {' and '.join(existing)} already there: give another --out, or --overwrite to replace")
    th.set_num_threads(1)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a folder on the way that is a file, no permission
        parser.error(f"--out {args.out}: cannot make its folder ({error.strerror})")
    obs = np.zeros((args.samples, 1), np.float32)

    demos = toy_demonstrations(1000, seed=args.seed)
    # On the CPU wherever it runs: the page quotes this figure's numbers, and a GPU computes other last bits
    model = SWFP("FlowPolicy", ToyBanditEnv(), seed=args.seed, device="cpu", **TOY_SWFP_KWARGS)
    model.pretrain(demos, **TOY_BC_KWARGS)
    bc_samples = model.predict(obs)[0]
    model.learn(args.online_steps)
    swfp_samples = model.predict(obs)[0]
    gaussian = SAC("MlpPolicy", ToyBanditEnv(), seed=args.seed, device="cpu")
    gaussian_behaviour_cloning(gaussian, demos, gradient_steps=TOY_BC_KWARGS["gradient_steps"], seed=args.seed)
    gaussian_samples = gaussian.predict(obs)[0]

    panels = {
        "demonstrations": demos.actions,
        "BC flow (N=6)": bc_samples,
        f"SWFP after {args.online_steps} online steps": swfp_samples,
        "BC Gaussian actor (SAC policy)": gaussian_samples,
    }
    summary = {
        name: {"mode_shares": mode_shares(samples).round(3).tolist(), "high_reward_share": round(high_reward_mode_share(samples), 3)}
        for name, samples in panels.items()
    }
    for name, row in summary.items():
        print(f"{name:40s} high-reward share {row['high_reward_share']:.3f}  per mode {row['mode_shares']}")
    # The same command gives other numbers on another processor (its kernels compute other last bits): say which
    machine = {"torch": th.__version__, "cpu_capability": th.backends.cpu.get_cpu_capability(), "cpu": cpu_name()}
    out.with_suffix(".json").write_text(json.dumps({"args": vars(args), "summary": summary, "machine": machine}, indent=1))
    plot(out, panels)
    print(f"wrote {out}")


def plot(path: Path, panels: dict[str, np.ndarray]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(-1, 1, 200)
    xx, yy = np.meshgrid(grid, grid)
    reward = toy_reward(np.stack([xx, yy], axis=-1))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4))
    for ax, (name, samples) in zip(axes, panels.items()):
        ax.contourf(xx, yy, reward, levels=20, cmap="RdBu")
        ax.scatter(samples[:, 0], samples[:, 1], s=2, c="k", alpha=0.4)
        ax.scatter(*DEMO_MODES[list(HIGH_REWARD_MODES)].T, marker="*", s=120, c="gold", edgecolors="k")
        ax.set_title(name)
        ax.set_xlim(-1, 1)
        ax.set_ylim(-1, 1)
        ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


if __name__ == "__main__":
    main()
