"""The methods' page, ``docs/benchmarks.md``: every task's table of methods, the robustness suite, the
shipped demonstrations, sensitivity and cost, from the suite's raw results."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchmarks import DOCS, RENDER_COMMAND, RESULTS, SUITE_COMMAND, current_command
from benchmarks.methods import variant_name
from benchmarks.render_core import speed_ratios
from benchmarks.render_tasks import by_task, link, load, render_task, robustness_table
from benchmarks.runner import ROBUSTNESS_SEEDS
from benchmarks.tasks import TASKS
from sb3_swfp.rlpd import RLPD_DEMO_RATIO, RLPD_UTD


def render_benchmarks(results: Path = RESULTS, docs: Path = DOCS) -> Path:
    """Write ``<docs>/benchmarks.md`` (and its figures, next to the results) from the results in ``results``."""
    lines = [
        "# Benchmarks: SWFP against SAC, TD3 and RLPD-style SAC, offline-to-online",
        "",
        f"Rendered by `{RENDER_COMMAND}` from the raw results in `docs/results/benchmarks/` (one JSON per",
        "run, with the command that made it); nothing here is typed by hand.  What the results say, and the",
        "machine they ran on: [results.md](results.md).  Scores are the mean deterministic episode return (the",
        "toy: the mean reward of stochastic samples; PointMaze: also the success rate) over the seeds, ± the",
        "std over seeds; one torch thread per run.  `bc` is the step-0 evaluation of the `swfp` runs.",
        "SWFP's variants and ablations are on [ablations.md](ablations.md).  RLPD-style SAC (`sb3_swfp.rlpd`)",
        f"gets the same demonstrations as {RLPD_DEMO_RATIO:.0%} of every batch, LayerNorm critics and {RLPD_UTD} updates per env step;",
        "it starts from scratch, with no behaviour cloning.  It is weaker than RLPD's published recipe in the",
        "ways `sb3_swfp/rlpd.py` lists: two critics (RLPD: ten, a random two in the target; SWFP's preset trains",
        "ten), 2 updates per env step (RLPD: 20), SB3's target entropy, rl-zoo3's SAC learning rates.",
        "*RLPD-style SAC from a BC actor* (`rlpd_bc`) is the same, with its Gaussian actor first cloned on the",
        "demonstrations (SWFP's BC budget for the task) and waiting, with its temperature, the preset's",
        "critic-only updates: its initial score is its own clone's.  Its rows were made on a later machine than",
        "the other rows of their tables (each result records its machine): robustness.md §19 compares it with",
        "the preset's runs on that machine.",
        "*RLPD, ten critics* (`rlpd_ensemble`, `sb3_swfp.rlpd.RLPD`; extra rows, on that later machine too) is",
        "RLPD-style SAC with the recipe's critics and update order: ten, the target's minimum over a random two,",
        "the actor's Q their mean, one actor step per env step, target entropy −dim(A)/2; its update ratio (2) and",
        "learning rates stay as above.",
        "",
        "Baselines' settings: rl-zoo3's entries where it has one for the env (its -v4 MuJoCo entries for the -v5",
        "envs, ours in `zoo_hyperparams/` where it has none: the PointMaze SAC entry is FetchReach's with",
        "[256, 256] networks), with `learning_starts` capped at the task's `learning_starts_cap` (1000; 2000 on MuJoCo)",
        "on these budgets; on the toy, which no entry covers, SB3's defaults (TD3 without action noise, SAC's",
        "temperature learned from 1.0).  On the PointMazes SAC and TD3 from scratch relabel goals with HER;",
        "every method with demonstrations (SWFP, RLPD-style SAC, SAC/TD3 + demos) uses the demonstration",
        "buffer instead, without HER.",
        "",
    ]
    for budget in ("cpu", "long", "full"):
        tasks = by_task(load(results, f"{budget}/*/*.json"))
        if not tasks:
            continue
        lines += [f"## Budget `{budget}`", ""]
        for task_name, runs in tasks.items():
            methods = [r for r in runs if variant_name(r["method"]) is None]
            if methods:
                lines += render_task(results, docs, budget, task_name, methods)
    lines += _robustness(results) + _shipped_demos() + _sensitivity(results, docs) + _cost(results)
    page = docs / "benchmarks.md"
    page.write_text("\n".join(lines) + "\n")
    return page


def _robustness(results: Path) -> list[str]:
    """The robustness suite: the preset on every task, fresh seeds, against the issue's acceptance lines."""
    runs = load(results, "robustness/*/*.json")
    lines = [
        "## Robustness: the fine-tuning preset on fresh seeds",
        "",
        f"Command: `{SUITE_COMMAND} --suite robustness --selection-evals --jobs 2` (every task, seeds "
        f"{', '.join(map(str, ROBUSTNESS_SEEDS))}: none of them played a part in choosing the preset or the density).  SWFP",
        "with `sb3_swfp.presets` (the `swfp_o2o.yml` entries), the budgets of the tables above.  *BC* is the",
        "step-0 evaluation (after BC); *lowest* the lowest evaluation after it; a dip is an evaluation below",
        "BC − 10% of |BC|.  Every evaluation of a run plays the same start states.  `--selection-evals` records each",
        "decision of the policy selection with an evaluation of the copy it measured, so other keep rules can be replayed",
        "on the same runs (robustness.md §34).",
        "",
    ]
    planned = len(TASKS) * len(ROBUSTNESS_SEEDS)
    if not runs:  # the section stays, so that links to it hold while the suite runs
        return lines + [f"No run of the suite's {planned} has finished yet.", ""]
    return lines + robustness_table(runs, planned) + [
        "What these numbers say and why the preset falls short where it does: [results.md](results.md#the-fine-tuning-preset-on-fresh-seeds).",
        "",
    ]


def _shipped_demos() -> list[str]:
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
    # The recording scripts refuse to replace an existing file: remaking a shipped one is on purpose
    return [*lines, "", "The commands write the shipped files themselves: add `--overwrite` to make one again.", ""]


def _sensitivity(results: Path, docs: Path) -> list[str]:
    runs = load(results, "sensitivity/*.json")
    if not runs:
        return []
    lines = [
        "## Sensitivity (paper Fig. 5): the toy, score vs N and vs W2 scale",
        "",
        f"Command: `{SUITE_COMMAND} --suite sensitivity --jobs 2`.  The toy's entry of `swfp_o2o.yml` (as it",
        "was when the runs were made: [results.md](results.md#sensitivity)) with `n_blocks` or `w2_coef` changed;",
        "share of 2000 stochastic samples in the high-reward modes after BC and after fine-tuning (mean ± std over seeds).",
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
    png = results / "sensitivity.png"
    fig.savefig(png, dpi=100)
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
    return [*lines, "", f"![sensitivity]({link(png, docs)})", ""]


def _cost(results: Path) -> list[str]:
    path = results / "cost.json"
    if not path.exists():
        return []
    cost = json.loads(path.read_text())
    speed = cost["speed"]
    sac = speed["sac"]
    lines = [
        "## Cost (paper Sec. 4.3)",
        "",
        f"Command: `{current_command(cost['command'])}` (device: {cost['device']}"
        + (f", {cost['cpu_count']} CPUs" if cost.get("cpu_count") else "")
        + (f", load average {cost['load_average']:.1f} when it started" if cost.get("load_average") else "")
        + "); Pendulum-v1, batch 256, one gradient step per",
        "env step, the models in one process taking turns.",
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
    return [*lines, ""]
