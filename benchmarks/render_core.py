"""The page of the core benchmarks, ``docs/core_benchmarks.md``, and its figure, from the JSON in ``docs/results/core/``."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from benchmarks import CORE_COMMAND, CORE_RESULTS, DOCS, RENDER_COMMAND, ROOT, current_command, read_result, shown

ALGOS = ("swfp", "sac", "td3")
THRESHOLD = -200.0


def ratios_to_sac(row: dict, sac: dict) -> tuple[float, float]:
    """A row's training (env-steps/s) and predict (latency) ratios to SAC: the median of the per-round
    ratios where the run recorded them, the ratio of the totals for older runs."""
    train = row.get("train_ratio_to_sac", row["train_steps_per_s"] / sac["train_steps_per_s"])
    predict = row.get("predict_ratio_to_sac", row["predict_ms_median"] / sac["predict_ms_median"])
    return train, predict


def speed_ratios(row: dict, sac: dict) -> tuple[str, str]:
    """``ratios_to_sac`` as table cells, with the range over the rounds where the run recorded it."""

    def cell(key: str, value: float) -> str:
        spread = row.get(f"{key}_range")
        return f"{value:.2f}×" + (f" ({spread[0]:.2f}–{spread[1]:.2f})" if spread else "")

    train, predict = ratios_to_sac(row, sac)
    return cell("train_ratio", train), cell("predict_ratio", predict)


def goal_verdict(measured: float, goal: float, spread: list[float] | None, at_least: bool) -> str:
    """"met" or "not met" for a median ratio against a goal (``>= goal`` if ``at_least``, else ``<= goal``),
    saying so when the per-round ratios ``spread`` fall on both sides of the goal: then the median decides
    by a hair, and another run may decide the other way."""
    met = measured >= goal if at_least else measured <= goal
    verdict = "met" if met else "not met"
    if spread and spread[0] < goal < spread[1]:
        side = "by the median only, not with a margin" if met else "missed by the median, met in some rounds"
        verdict += f" (rounds {spread[0]:.2f}–{spread[1]:.2f}: on both sides of {goal:g}×, so {side})"
    return verdict


def strip_paths(line: str) -> str:
    """Profile line with file paths made relative (to the repository, or to site-packages)."""
    line = line.replace(str(ROOT) + os.sep, "")
    return re.sub(r"\S*site-packages" + re.escape(os.sep), "", line)


def _profile_share(profile: list[str], function: str, total_function: str = "(train)") -> float | None:
    """Cumulative time of ``function`` as a share of ``total_function`` in a cProfile listing."""

    def cumtime(name: str) -> float | None:
        for line in profile:
            if line.rstrip().endswith(name):
                return float(line.split()[3])
        return None

    part, total = cumtime(function), cumtime(total_function)
    return None if part is None or not total else part / total


#: The learning suite's budget and evaluation interval, the page's; runs with others are kept out of its table
LEARNING_STEPS, LEARNING_EVAL_EVERY = 20_000, 1_000


def render_core(results: Path = CORE_RESULTS, docs: Path = DOCS) -> None:
    """Re-render ``<docs>/core_benchmarks.md`` (and the PNG, next to the results) from the JSON files in ``results``."""
    page = docs / "core_benchmarks.md"
    loaded = [read_result(path) for path in sorted(results.glob("learning_*.json"))]
    # The table and its goal are about 20k steps evaluated every 1000: a shorter run would be read as one of them
    on_page = [(r["total_timesteps"], r.get("eval_every", LEARNING_EVAL_EVERY)) == (LEARNING_STEPS, LEARNING_EVAL_EVERY) for r in loaded]
    every_run = [r for r, shown_here in zip(loaded, on_page) if shown_here]
    runs = [run for run in every_run if not run.get("squash")]
    squash_runs = [run for run in every_run if run.get("squash")]
    lines = [
        "# Core benchmarks: SWFP vs SAC vs TD3",
        "",
        f"Rendered by `{RENDER_COMMAND}` from the raw results in `docs/results/core/`; nothing here is typed",
        "by hand.  What the results say, and the machine they ran on: [results.md](results.md).",
        "",
        "## Learning from scratch: Pendulum-v1, 20k env steps",
        "",
        f"Command: `{CORE_COMMAND} --suite learning --jobs 2`.  Deterministic evaluation (10 episodes) every",
        "1k steps, one torch thread per run.  SWFP: `zoo_hyperparams/swfp.yml`; SAC and TD3: rl-zoo3's entries.",
        "",
    ]
    apart = sorted(f"`{r['command']}`" for r, shown_here in zip(loaded, on_page) if not shown_here)
    if apart:
        lines += [f"Runs with another budget or evaluation interval, not in this section: {', '.join(apart)}.", ""]
    if runs:
        lines += ["| algo | seed | first eval >= -200 at step | best eval | final eval (mean ± std over 10 episodes) | wall time |", "|---|---|---|---|---|---|"]
        summary: dict[str, list[bool]] = {}
        for run in sorted(runs, key=lambda r: (ALGOS.index(r["algo"]), r["seed"])):
            curve = run["curve"]
            crossed = first_crossing(curve)
            # A run the NaN guard stopped is a miss, whatever it reached before, and has one row
            summary.setdefault(run["algo"], []).append(crossed is not None and not run.get("error"))
            if run.get("error"):
                lines.append(f"| {run['algo'].upper()} | {run['seed']} | stopped: {run['error'][:160]} | | | |")
                continue
            if not curve:
                continue
            final = curve[-1]
            lines.append(
                f"| {run['algo'].upper()} | {run['seed']} | {crossed if crossed is not None else 'never'} | "
                f"{max(m for _, m, _ in curve):.1f} | {final[1]:.1f} ± {final[2]:.1f} | {run['wall_s'] / 60:.1f} min |"
            )
        lines += ["", "Seeds that reach a mean deterministic return >= -200 within 20k steps:", ""]
        for algo, hits in summary.items():
            lines.append(f"- {algo.upper()}: {sum(hits)} of {len(hits)}")
        lines += relabelled_lines(runs)
        png = results / "pendulum_learning.png"
        lines += ["", f"![Pendulum-v1 learning curves]({Path(os.path.relpath(png, docs)).as_posix()})", ""]
        _plot(runs, png)
    lines += squash_lines(squash_runs)
    speed_file = results / "speed.json"
    if speed_file.exists():
        speed = json.loads(speed_file.read_text())
        rows = speed["rows"]
        sac = rows["sac"]
        lines += [
            "## Speed: training env-steps/s and predict latency",
            "",
            f"Command: `{current_command(speed['command'])}`"
            + (f" ({speed['cpu_count']} CPUs, {speed.get('torch_threads', 1)} torch thread)" if speed.get("cpu_count") else "")
            + (f"; load average {speed['load_average']:.1f} when it started" if speed.get("load_average") else "")
            + ".  Pendulum-v1, batch 256, one gradient step per env step,",
            f"all models in one process taking turns, {speed.get('rounds', 5)} rounds of {speed.get('train_chunk', 300)} training steps and "
            f"{speed.get('predict_calls', 200)} predictions each"
            + ("; each ratio is the median of the per-round ratios, with their range over the rounds." if "rounds" in speed else "."),
            "",
            "| config | train env-steps/s | ratio to SAC | predict latency (ms, median) | ratio to SAC |",
            "|---|---|---|---|---|",
        ]
        for name, row in rows.items():
            train_cell, predict_cell = speed_ratios(row, sac)
            lines.append(f"| {name} | {row['train_steps_per_s']:.1f} | {train_cell} | {row['predict_ms_median']:.3f} | {predict_cell} |")
        lines.append("")  # a paragraph right after a table would be read as one more row
        profile = [strip_paths(line) for line in speed["profile"]]
        critic = _profile_share(profile, "(_critic_update)")
        chain = _profile_share(profile, "(sample_from_features)")
        actor = _profile_share(profile, "(_actor_update)")
        if critic is not None and chain is not None and actor is not None:
            lines += [
                f"Shares of `train()` in the profile below: the critic step (`_critic_update`) {critic:.0%}, of which the",
                f"target actor's chain for the soft target's a' (`sample_from_features`) {chain:.0%}; the actor's one-block",
                f"JKO step (`_actor_update`) {actor:.0%}.",
                "",
            ]
        swfp = rows.get("swfp")
        if swfp is not None:
            train_ratio, predict_ratio = ratios_to_sac(swfp, sac)
            like_for_like = ""
            if "sac_foreach_adam" in rows and "train_ratio_to_sac" in rows["sac_foreach_adam"]:
                like_for_like = (
                    f" (against SAC with the same multi-tensor Adam as SWFP's default, about "
                    f"{train_ratio / rows['sac_foreach_adam']['train_ratio_to_sac']:.2f}×)"
                )

            lines += [
                f"Goals of the core issue: training env-steps/s ≥ 0.6× SAC — measured {train_ratio:.2f}×{like_for_like}, "
                f"{goal_verdict(train_ratio, 0.6, swfp.get('train_ratio_range'), at_least=True)}; `predict` latency ≤ 2× SAC — measured "
                f"{predict_ratio:.2f}×, {goal_verdict(predict_ratio, 2.0, swfp.get('predict_ratio_range'), at_least=False)}.",
                "",
            ]
        lines += ["Profile of 200 SWFP updates (cProfile, cumulative time, filtered):", "", "```", *profile, "```", ""]
    page.write_text("\n".join(lines) + "\n")
    print(f"wrote {shown(page)}")


def first_crossing(curve: list) -> int | None:
    """The first evaluated step whose mean return reaches ``THRESHOLD``; None if none does."""
    return next((step for step, mean, _ in curve if mean >= THRESHOLD), None)


def relabelled_lines(runs: list[dict]) -> list[str]:
    """What a run's ``relabelled`` note says, once per note, with the seeds it covers."""
    notes: dict[tuple[str, str], list[str]] = {}
    for run in runs:
        if run.get("relabelled"):
            notes.setdefault((run["relabelled"], run["algo"].upper()), []).append(str(run["seed"]))
    return ["", *[f"Relabelled, {algo} seeds {', '.join(seeds)}: {note}." for (note, algo), seeds in notes.items()]] if notes else []


def squash_lines(runs: list[dict]) -> list[str]:
    """The section of the learning runs made with another squash than the class default (``--squash``)."""
    if not runs:
        return []
    lines = [
        "## Learning from scratch with another squash",
        "",
        "SWFP's zoo entry with only the squash changed: the check a squash must pass to become the class default",
        "(rule 4 of [robustness.md](robustness.md): >= -200 within 20k steps in 3 of 3 seeds; its speed is the",
        "`swfp_<squash>` row of the speed table).  The soft clip passed it and is the class default since 0.2.0;",
        "the clip's runs are the SWFP rows of the releases before.",
        "",
        "| squash | seed | first eval >= -200 at step | best eval | final eval (mean ± std over 10 episodes) | wall time | command |",
        "|---|---|---|---|---|---|---|",
    ]
    hits: dict[str, list[bool]] = {}
    for run in sorted(runs, key=lambda r: (r["squash"], r["seed"])):
        curve = run["curve"]
        crossed = first_crossing(curve)
        hits.setdefault(run["squash"], []).append(crossed is not None)
        final = f"{curve[-1][1]:.1f} ± {curve[-1][2]:.1f}" if curve else (f"stopped: {run['error'][:160]}" if run.get("error") else "–")
        best = f"{max(m for _, m, _ in curve):.1f}" if curve else "–"
        lines.append(
            f"| `{run['squash']}` | {run['seed']} | {crossed if crossed is not None else 'never'} | {best} | {final} | "
            f"{run['wall_s'] / 60:.1f} min | `{run['command']}` |"
        )
    lines += ["", *[f"Seeds with `{squash}` that reach >= -200 within 20k steps: {sum(h)} of {len(h)}." for squash, h in hits.items()]]
    return lines + relabelled_lines(runs) + [""]


def _plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for color, algo in zip(("C0", "C1", "C2"), ALGOS):
        curves = [np.array(r["curve"]) for r in runs if r["algo"] == algo and r["curve"]]  # the NaN guard may leave none
        if not curves:
            continue
        n = min(len(c) for c in curves)
        steps = curves[0][:n, 0]
        means = np.stack([c[:n, 1] for c in curves])
        ax.plot(steps, means.mean(0), color=color, label=f"{algo.upper()} ({len(curves)} seeds)")
        ax.fill_between(steps, means.min(0), means.max(0), color=color, alpha=0.2)
    ax.axhline(THRESHOLD, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("env steps")
    ax.set_ylabel("deterministic eval return")
    ax.set_title("Pendulum-v1 from scratch (mean, min-max over seeds)")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
