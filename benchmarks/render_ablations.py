"""The ablation page, ``docs/ablations.md``: SWFP's variants next to SWFP, the choice of the fine-tuning
preset, the density suite and the runs of earlier settings, from the suite's raw results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import DOCS, RENDER_COMMAND, RESULTS, SUITE_COMMAND
from benchmarks.methods import variant_name
from benchmarks.render_tasks import (
    ARCHIVE,
    SETTINGS_0_1_END,
    by_task,
    load,
    render_task,
    robustness_row,
    robustness_table,
    toy_ok,
)
from benchmarks.studies import DENSITY_BC_TASKS, DENSITY_SQUASHES, DRIFT_CHECKPOINTS, HELD_OUT_LANDSCAPES
from benchmarks.tasks import TASKS

#: Candidates of the fine-tuning preset (variants ``preset_<name>``), chosen by the rule of docs/robustness.md
PRESET_PREFIX = "preset_"


def render_ablations(results: Path = RESULTS, docs: Path = DOCS) -> Path:
    """Write ``<docs>/ablations.md`` (and its figures, next to the results) from the results in ``results``."""
    lines = [
        "# Ablations: SWFP's variants, the density, and runs of earlier settings",
        "",
        f"Rendered by `{RENDER_COMMAND}` with [benchmarks.md](benchmarks.md), from the same raw results; nothing",
        "here is typed by hand (what the results say: [results.md](results.md)).  Each variant is the `swfp` entry of",
        "`swfp_o2o.yml` with the arguments shown; the SWFP row is the entry itself, for reference.  These rows are",
        "not part of the comparison of methods.",
        "",
    ]
    for budget in ("cpu", "long", "full"):
        tasks = by_task(load(results, f"{budget}/*/*.json"))
        variant_tasks = [t for t in tasks if any(variant_name(r["method"]) for r in tasks[t])]
        lines += [f"## Budget `{budget}`", ""] if variant_tasks else []
        for task_name in variant_tasks:
            swfp_runs = [r for r in tasks[task_name] if r["method"].startswith("swfp")]
            lines += render_task(results, docs, budget, task_name, swfp_runs, ablation=True)
    lines += _selection(results) + _density(results) + _archive(results, docs) + _archived_robustness(results)
    page = docs / "ablations.md"
    page.write_text("\n".join(lines) + "\n")
    return page


def preset_score(runs: list[dict]) -> tuple[int, float, dict[str, Any]]:
    """The rule of docs/robustness.md for one candidate's runs: the number of runs with final >= BC, plus
    those with no dip, plus the tasks whose mean final is above their mean BC, plus the toy seeds with >= 90%
    in the high-reward modes and every mode kept; ties by the mean over tasks of ``(final - BC) / |BC|``."""
    rows = [(run, robustness_row(run)) for run in runs]
    tasks = sorted({run["task"] for run in runs}, key=list(TASKS).index)
    per_task = {t: [row for run, row in rows if run["task"] == t] for t in tasks}
    tasks_up = [t for t, group in per_task.items() if np.mean([r["final"] for r in group]) > np.mean([r["bc"] for r in group])]
    toy = [toy_ok(run["toy_modes"]) for run, _ in rows if run["task"] == "toy"]
    counts = {
        "runs": len(rows),
        "final_ge_bc": sum(row["final_ge_bc"] for _, row in rows),
        "no_dip": sum(row["no_dip"] for _, row in rows),
        "tasks_up": len(tasks_up),
        "tasks": len(tasks),
        "toy_ok": sum(toy),
        "toy_runs": len(toy),
    }
    gain = float(
        np.mean([(np.mean([r["final"] for r in g]) - np.mean([r["bc"] for r in g])) / abs(np.mean([r["bc"] for r in g])) for g in per_task.values()])
    )
    return counts["final_ge_bc"] + counts["no_dip"] + counts["tasks_up"] + counts["toy_ok"], gain, counts


def preset_ranking(results: Path = RESULTS, tasks: list[str] | None = None) -> list[tuple[str, int, float, dict[str, Any]]]:
    """Candidates ``preset_*`` ranked by :func:`preset_score` on their runs of ``tasks`` (all when None), best first;
    only tasks that every candidate has runs for count."""
    runs = [r for r in load(results, "cpu/*/*.json") if (variant_name(r["method"]) or "").startswith(PRESET_PREFIX)]
    candidates = sorted({r["method"] for r in runs})
    common = set.intersection(*({r["task"] for r in runs if r["method"] == c} for c in candidates)) if candidates else set()
    chosen = [t for t in TASKS if t in common and (tasks is None or t in tasks)]
    scored = [(c, *preset_score([r for r in runs if r["method"] == c and r["task"] in chosen])) for c in candidates]
    return sorted(scored, key=lambda item: (item[1], item[2]), reverse=True)


def _selection(results: Path) -> list[str]:
    ranking = preset_ranking(results)
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


def _archive(results: Path, docs: Path) -> list[str]:
    """SWFP runs made with the settings of earlier releases (``<results>/archive/``)."""
    tasks = by_task(load(results, f"{ARCHIVE}/*/*.json"))
    if not tasks:
        return []
    lines = [
        "## Runs of earlier settings",
        "",
        "SWFP runs made with the settings of earlier releases, kept for the record (`docs/results/benchmarks/archive/`):",
        "each JSON says what it ran with, [results.md](results.md#runs-of-earlier-settings) what changed since.",
        f"Their commands are those of the code they ran on (release 0.1.0, before commit {SETTINGS_0_1_END}; a relabelled run's",
        "note says what it ran as): run today, a command runs today's settings into `cpu/`, or skips a run of that name there.",
        "",
    ]
    for task_name, runs in tasks.items():
        lines += render_task(results, docs, "cpu", task_name, runs, ablation=True, folder=ARCHIVE)
    return lines


#: The robustness suite's runs with earlier presets (``<results>/archive/<folder>/``): folder, title, what it was
ARCHIVED_ROBUSTNESS = (
    ("robustness", "two critics", "before it took ten critics, C3 of [robustness.md](robustness.md)", "the ten critics were"),
    (
        "robustness_ten_critics",
        "ten critics, no policy selection",
        "before it took the policy selection (`selection_steps`), probe S of [robustness.md](robustness.md)",
        "the selection was",
    ),
    (
        "robustness_sampled_selection",
        "the policy selection measured by sampled actions",
        "before its selection measured each phase by deterministic episodes (`selection_deterministic`), probe SD of [robustness.md](robustness.md)",
        "that change was",
    ),
    (
        "robustness_one_episode_selection",
        "the policy selection measured by one deterministic episode",
        "before each phase was measured by three deterministic episodes (`selection_episodes`), probe SD3 of [robustness.md](robustness.md)",
        "that change was",
    ),
    (
        "robustness_three_episode_selection",
        "a change kept at or above the kept copy's three episodes",
        "before it kept a change only by a margin of one standard error (`selection_margin`), probe M1 of [robustness.md](robustness.md)",
        "that change was",
    ),
)


def _archived_robustness(results: Path) -> list[str]:
    """The robustness suite as run with the presets before today's (``ARCHIVED_ROBUSTNESS``), one table each."""
    lines: list[str] = []
    for folder, title, which, change in ARCHIVED_ROBUSTNESS:
        runs = load(results, f"{ARCHIVE}/{folder}/*/*.json")
        if not runs:
            continue
        seeds = sorted({run["seed"] for run in runs})
        lines += [
            f"## The robustness suite with an earlier preset ({title})",
            "",
            f"The suite's runs of the preset {which} (seeds {', '.join(map(str, seeds))}; "
            f"`docs/results/benchmarks/{ARCHIVE}/{folder}/`), kept for the record: each JSON",
            f"has the command and arguments it ran with.  Their seeds were the suite's fresh seeds then; {change}",
            "chosen after them, so the suite now runs on other seeds ([benchmarks.md](benchmarks.md#robustness-the-fine-tuning-preset-on-fresh-seeds))",
            "and refuses these: their commands ran with the earlier preset's code.",
            "",
        ]
        lines += robustness_table(runs, len(TASKS) * len(seeds), check_stale=False)
    return lines


def _density(results: Path) -> list[str]:
    """The density suite (``--suite density``): clip, tanh and the soft clip, against the rule of docs/robustness.md."""
    runs = load(results, "density/*.json")
    if not runs:
        return []
    lines = [
        "## Where the density lives: clip, tanh, soft clip",
        "",
        f"Command: `{SUITE_COMMAND} --suite density --jobs 2`; the rule that decides is in",
        "[robustness.md](robustness.md).  Mean over seeds (per seed in brackets).",
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
