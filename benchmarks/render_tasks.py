"""What the suite's pages share: reading the results, one task's section (table, verdict, curve,
commands), and the acceptance lines of one robustness run and of a set of them."""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import current_command, methods, read_result
from benchmarks.methods import LABELS, METHODS, is_swfp, variant_name
from benchmarks.tasks import TASKS, Task
from sb3_swfp.presets import merge_kwargs
from sb3_swfp.swfp.policies import FlowPolicy
from sb3_swfp.swfp.swfp import SWFP

#: The commit that ended release 0.1.0's settings (the density on the action box; q_on removed)
SETTINGS_0_1_END = "2928f9e"
#: SWFP arguments that committed runs used and a later commit removed, with the last commit that has each
#: (``q_on``: the one before SETTINGS_0_1_END; ``guard_steps``: probe G of robustness.md §21)
REMOVED_OPTIONS = {
    "q_on": "cd7e742", "guard_steps": "f238807", "bc_q_filter": "9397f30", "self_imitation": "68e0819", "advantage_weighted": "6ff360d",
    "target_critics": "7deef81",
}

#: Results folder of runs made with settings of earlier releases, kept for the record (docs/ablations.md)
ARCHIVE = "archive"


def load(results: Path, pattern: str) -> list[dict]:
    """The results matching ``pattern`` under ``results``, in path order; a file that is not JSON is named."""
    return [read_result(path) for path in sorted(results.glob(pattern))]


def _complete(group: list[dict]) -> list[dict]:
    """The runs of a method that the NaN guard did not stop (all of them, where it stopped every one): the
    runs its table columns and curve are made of."""
    return [r for r in group if not r.get("error")] or group


def by_task(runs: list[dict]) -> dict[str, list[dict]]:
    """Runs grouped by task, in the order of ``TASKS``."""
    grouped: dict[str, list[dict]] = defaultdict(list)
    for run in runs:
        grouped[run["task"]].append(run)
    return {task: grouped[task] for task in TASKS if task in grouped}


def link(path: Path, docs: Path) -> str:
    """``path`` as a page in ``docs`` links to it."""
    return Path(os.path.relpath(path, docs)).as_posix()


def _final(run: dict) -> tuple[float, float | None]:
    _, mean, _, success = run["curve"][-1]
    return mean, success


def _initial(run: dict) -> tuple[float, float | None]:
    _, mean, _, success = run["curve"][0]
    return mean, success


def mean_std(values: list[float], decimals: int = 1) -> str:
    """``mean ± std`` over seeds; one seed has no spread to show."""
    if len(values) == 1:
        return f"{values[0]:.{decimals}f}"
    return f"{np.mean(values):.{decimals}f} ± {np.std(values):.{decimals}f}" if values else "–"


def stale_arguments(run: dict, entry: dict[str, Any], demo_ratio: float | None = None) -> list[str]:
    """For an SWFP run: the arguments its stored hyperparameters disagree on with today's ``swfp_o2o.yml``
    entry of its task (``swfp_o2o_entry(env_id)[0]``, and its ``demo_ratio``, the entry's third item)
    and its variant's arguments, as ``"key ran X, entry now Y"``; empty for up-to-date runs."""
    expected = merge_kwargs(entry, run.get("swfp_kwargs") or {})  # as the suite built the model
    if demo_ratio is not None:  # the buffer's share of demonstrations, a variant's over the entry's (make_model)
        expected["demo_ratio"] = (expected.get("replay_buffer_kwargs") or {}).get("demo_ratio", demo_ratio)
    stored = run["hyperparams"]
    stale = [
        f"{key} ran {stored[key]}, entry now {expected[key]!r}"
        for key in sorted(expected.keys() & stored.keys() - {"policy_kwargs", "replay_buffer_class"})
        if stored[key] != repr(expected[key])
    ]
    # an entry's option the run did not record (older runs recorded fewer, a run before the option none):
    # made before the option, it ran as its default does, so the entry must ask for that default to be current
    unrecorded = expected.keys() - stored.keys() - (run.get("swfp_kwargs") or {}).keys()
    unrecorded -= {key for key, switch in _INERT_WHILE_OFF.items() if expected.get(switch) == 0}
    stale += [
        f"{key} not recorded (SWFP's default {_SWFP_DEFAULTS[key]!r} if its code had no such option), entry now {expected[key]!r}"
        for key in sorted(unrecorded & _SWFP_DEFAULTS.keys())
        if not isinstance(expected[key], dict) and expected[key] != _SWFP_DEFAULTS[key]
    ]
    # the stored policy_kwargs are the policy's repr: compare their scalar settings (n_critics,
    # critic_layer_norm, ...), a missing one at its default
    ran = _scalar_policy_kwargs(stored.get("policy_kwargs", "{}"))
    for key, value in sorted(expected.get("policy_kwargs", {}).items()):
        if isinstance(value, (bool, int, float, str)):
            was = ran.get(key, _POLICY_DEFAULTS.get(key))
            if was != value:
                stale.append(f"policy_kwargs {key} ran {was!r}, entry now {value!r}")
    return stale


def _defaults(function: Any) -> dict[str, Any]:
    """The default of each parameter of ``function`` that has one."""
    return {name: param.default for name, param in inspect.signature(function).parameters.items() if param.default is not inspect.Parameter.empty}


#: Options that change nothing while another is 0 (off): unrecorded, they leave such a run current
_INERT_WHILE_OFF = {"selection_deterministic": "selection_steps", "selection_episodes": "selection_steps", "selection_margin": "selection_steps"}
#: SWFP's defaults, for the options a stored run does not list
_SWFP_DEFAULTS = _defaults(SWFP.__init__)
#: The flow policy's defaults, for policy_kwargs a stored run does not list
_POLICY_DEFAULTS = _defaults(FlowPolicy.__init__)


def _scalar_policy_kwargs(stored: str) -> dict[str, Any]:
    """The ``'key': scalar`` items of a stored policy_kwargs repr (nested values are skipped)."""
    items = {}
    for key, text in re.findall(r"'(\w+)': ([^,{}\[\]<>]+?)(?=,|\}$)", stored):
        try:
            items[key] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            continue
    return items


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


def _without_seeds(command: str) -> str:
    """``command`` without its ``--seeds`` values, and without ``--budget cpu`` (the default); any other
    budget stays, or the page would show a command that runs the 10k budget."""
    head, _, tail = command.rpartition(" --seeds ")
    if not head:
        return command
    rest = [arg for arg in tail.split(" ")[1:] if arg]
    if rest[:2] == ["--budget", "cpu"]:
        rest = rest[2:]
    return " ".join([head, *rest])


def command_lines(runs: list[dict]) -> list[str]:
    """The page's list of the commands behind ``runs``, each with the seeds it ran: once in the heading when
    every command ran the same seeds, else after each command (held-out seeds of a variant, say)."""
    seeds_of: dict[str, set[int]] = defaultdict(set)
    for run in runs:
        seeds_of[_without_seeds(current_command(run["command"]))].add(run["seed"])
    seed_sets = {tuple(sorted(seeds)) for seeds in seeds_of.values()}
    if len(seed_sets) == 1:
        (seeds,) = seed_sets
        return [f"Commands (each with `--seeds {' '.join(map(str, seeds))}`):", "", *[f"- `{c}`" for c in sorted(seeds_of)], ""]
    return ["Commands:", "", *[f"- `{c} --seeds {' '.join(map(str, sorted(s)))}`" for c, s in sorted(seeds_of.items())], ""]


def plot_task(path: Path, task: Task, methods: dict[str, list[dict]], demo_return: float | None) -> None:
    """The learning curves of a task's methods (mean ± std over seeds), variants dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for color, method in enumerate(m for m in _ordered(methods) if m != "bc"):
        curves = [np.array([c[:2] for c in r["curve"]]) for r in _complete(methods[method])]
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


def render_task(
    results: Path, docs: Path, budget: str, task_name: str, runs: list[dict], ablation: bool = False, folder: str | None = None
) -> list[str]:
    """One task's table, verdict, curve and commands.  ``ablation``: SWFP and its variants (no verdict);
    ``folder``: where the runs and the curve live under ``results``, when not the budget's."""
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
    methods_runs: dict[str, list[dict]] = {}
    for run in runs:
        methods_runs.setdefault(run["method"], []).append(run)
    if "swfp" in methods_runs:
        methods_runs["bc"] = methods_runs["swfp"]
    finals: dict[str, float] = {}
    alongs: dict[str, float] = {}
    n_seeds: dict[str, int] = {}
    for method in _ordered(methods_runs):
        group = methods_runs[method]
        initial = [_initial(r)[0] for r in group]
        # Runs the NaN guard stopped stay out of the final, best and along-the-way columns (the row says so)
        stopped = [] if method == "bc" else [r for r in group if r.get("error")]
        complete = _complete(group)
        final = initial if method == "bc" else [_final(r)[0] for r in complete]
        finals[method] = float(np.mean(final))
        n_seeds[method] = len(complete)
        curves = [np.array([c[1] for c in r["curve"]]) for r in complete]
        n = min(len(c) for c in curves)
        best = initial if method == "bc" else [float(np.stack([c[:n] for c in curves]).mean(0).max())]
        # The area under the learning curve, per evaluation: how good the policy was along the way
        along = initial if method == "bc" else [float(c[:n].mean()) for c in curves]
        alongs[method] = float(np.mean(along))
        d = task.decimals
        row = (
            f"| {_label(method, group)} | {len(group)} | {mean_std(initial, d)} | {mean_std(final, d)} | {np.mean(best):.{d}f} | "
            f"{mean_std(along, d)} | "
        )
        if task.success_metric:
            successes = [(_initial(r) if method == "bc" else _final(r))[1] for r in (group if method == "bc" else complete)]
            row += f"{np.mean(successes):.2f} | "
        if task.demos == "toy":
            kept = [r.get("toy_modes") for r in group]
            # three decimals: the line is at 0.90, and 0.896 must not read as meeting it
            row += ("–" if method == "bc" or None in kept else ", ".join(f"{k['high_reward_share']:.3f} ({k['high_reward_modes_kept']}/{k['n_high_reward_modes']})" for k in kept)) + " | "
        wall = "–" if method == "bc" else f"{np.mean([r['online_wall_s'] for r in group]) / 60:.1f} min"
        note = ""
        if stopped:
            at = ", ".join(str(r["curve"][-1][0]) for r in stopped)
            left_out = "not in final, best or mean" if len(stopped) < len(group) else "every seed: the columns are their last evaluations"
            note = f" ({len(stopped)} stopped by the NaN guard, last evaluated at step {at}; {left_out})"
        lines.append(row + wall + note + " |")
    lines.append("")
    if "swfp" in finals and not ablation:
        lines += _verdict_lines(task, finals, alongs, n_seeds)
    png = results / folder / f"{task_name}{'_variants' if ablation else ''}.png"
    plot_task(png, task, methods_runs, demo_return)
    lines += [f"![{task.env_id}]({link(png, docs)})", ""]
    lines += command_lines(runs)
    relabelled = sorted(f"{r['method']}_s{r['seed']}" for r in runs if r.get("relabelled"))
    if relabelled:
        lines += [
            f"Relabelled after `swfp_o2o.yml` changed (the runs are unchanged; the note in each JSON says what they "
            f"were run as): {', '.join(relabelled)}.",
            "",
        ]
    replayed = sorted(f"{r['method']}_s{r['seed']}" for r in runs if r.get("replayed"))
    if replayed:
        lines += [
            "Replayed from a run's recorded decisions under today's keep rule (robustness.md §34; the note in each JSON names "
            f"its run): {', '.join(replayed)}.  Their training is that run's, and each evaluation is the recorded one of the "
            "copy the rule keeps, so their command makes the same curve; their wall times are that run's.",
            "",
        ]
    # A probe's runs made with code outside the package: its patch (under docs/results/probes/) and base commit
    patched: dict[tuple[str, str], list[str]] = {}
    for r in runs:
        if r.get("patch"):
            patched.setdefault((r["patch"]["file"], r["patch"]["commit"]), []).append(f"{r['method']}_s{r['seed']}")
    for (file, commit), names in sorted(patched.items()):
        lines += [f"Made with code that is not in the package (a probe's): {', '.join(sorted(names))}; apply `{file}` to commit {commit} to run their command.", ""]
    removed: dict[str, list[str]] = {}
    for r in runs:
        for option in sorted(set(r.get("swfp_kwargs") or {}) & set(REMOVED_OPTIONS)):
            removed.setdefault(option, []).append(f"{r['method']}_s{r['seed']}")
    for option, names in sorted(removed.items()):
        lines += [
            f"Made with `{option}`, an option the package no longer has: {', '.join(sorted(names))}; their command runs "
            f"on commit {REMOVED_OPTIONS[option]}, the last with it.",
            "",
        ]
    older = sorted({_label(r["method"], [r]) for r in runs if not r.get("eval_protocol")})
    if older:  # their best and mean-of-evaluations columns measure the start states as well as the policy
        lines += [
            "Evaluated with new start states at each evaluation (made before the suite played the same ones every "
            f"time): {', '.join(older)}.  Their evaluations differ by their start states as well as by the policy, so "
            "their best-evaluation column, the highest of them, leans high.",
            "",
        ]
    lines += machine_lines(runs)
    lines += mixed_variants(runs)
    swfp_runs = [r for r in runs if is_swfp(r["method"])]
    if folder == ARCHIVE:
        return lines  # made with earlier settings on purpose
    entry, _, demo_ratio = methods.swfp_o2o_entry(task.env_id) if swfp_runs else ({}, {}, None)  # read once for all the task's runs
    stale = [
        f"`{r['method']}_s{r['seed']}` ({'; '.join(diffs)})" for r in swfp_runs if (diffs := stale_arguments(r, entry, demo_ratio))
    ]
    if stale:
        lines += [
            "**Stale runs**: made with other SWFP arguments than `swfp_o2o.yml` (with the variant's arguments) gives "
            "now; delete their JSON and rerun: " + ", ".join(stale) + ".",
            "",
        ]
    return lines


def machine_lines(runs: list[dict]) -> list[str]:
    """A line naming which rows ran on which processor, where a table's runs ran on more than one (or some record
    none): per-seed numbers are each machine's, so only means compare across them (results.md, "The machine").
    A row whose seeds ran on different processors names its seeds under each."""
    seeds: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))  # cpu -> row -> seeds
    for r in sorted(runs, key=lambda r: r["seed"]):
        seeds[(r.get("machine") or {}).get("cpu") or ""][_label(r["method"], [r])].append(r["seed"])
    if len(seeds) < 2:
        return []
    split = {row for cpu in seeds for row in seeds[cpu] if sum(row in other for other in seeds.values()) > 1}

    def rows(cpu: str) -> str:
        return ", ".join(f"{row} (seed{'s' * (len(s) > 1)} {', '.join(map(str, s))})" if row in split else row for row, s in sorted(seeds[cpu].items()))

    parts = [f"{cpu}: {rows(cpu)}" for cpu in sorted(seeds) if cpu]
    rest = "; the other rows' results predate the record" if "" in seeds else ""
    return [
        "Made on more than one machine (each result's `machine`; per-seed numbers are each machine's, so compare "
        f"means, not seeds, across them): {'; '.join(parts)}{rest}.",
        "",
    ]


def mixed_variants(runs: list[dict]) -> list[str]:
    """A line for each variant whose runs were made with different ``swfp_kwargs`` (its row would average them
    under the first run's label)."""
    kwargs: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        if variant_name(r["method"]) is not None:
            kwargs[r["method"]][json.dumps(r.get("swfp_kwargs"), sort_keys=True)].append(f"s{r['seed']}")
    lines = []
    for method, settings in sorted(kwargs.items()):
        if len(settings) > 1:
            described = "; ".join(f"{', '.join(seeds)}: `{setting}`" for setting, seeds in settings.items())
            lines += [f"**Mixed runs**: variant `{variant_name(method)}` holds runs of different settings ({described}): its row averages them; rename or delete the odd ones.", ""]
    return lines


def _verdict_lines(task: Task, finals: dict[str, float], alongs: dict[str, float], n_seeds: dict[str, int]) -> list[str]:
    """SWFP against the best other method at the end and along the way, and against its BC start; ``n_seeds``
    (seeds per method) adds a warning where SWFP's row has fewer seeds than a method it is compared with."""
    # SWFP's competitors: the other methods of METHODS, not BC (SWFP's start) nor SWFP's variants
    others = {m: v for m, v in finals.items() if variant_name(m) is None and m not in ("swfp", "bc")}
    if not others:
        return []
    best_other = max(others, key=others.get)
    verdict = "ahead of" if finals["swfp"] >= others[best_other] else "behind"
    d = task.decimals
    line = (
        f"SWFP's final score is {verdict} the best other method here ({LABELS[best_other]}: "
        f"{others[best_other]:.{d}f} vs SWFP {finals['swfp']:.{d}f}); BC → SWFP: {finals['bc']:.{d}f} → {finals['swfp']:.{d}f}."
    )
    best_along = max(others, key=alongs.get)
    line += (
        f"  Along the way (mean of all evaluations) SWFP is {'ahead of' if alongs['swfp'] >= alongs[best_along] else 'behind'} "
        f"the best other method ({LABELS[best_along]}: {alongs[best_along]:.{d}f} vs SWFP {alongs['swfp']:.{d}f})."
    )
    if finals["bc"] > finals["swfp"]:
        line += (
            f"  **Fine-tuning lost ground here**: the BC flow alone ({finals['bc']:.{d}f}) ends above SWFP "
            f"({finals['swfp']:.{d}f})" + (" and above every online method." if finals["bc"] >= others[best_other] else ".")
        )
    compared = {m: n_seeds[m] for m in {best_other, best_along} if n_seeds[m] > n_seeds["swfp"]}
    if compared:
        line += (
            f"  SWFP's row has {n_seeds['swfp']} seed{'s' if n_seeds['swfp'] != 1 else ''} so far against "
            + " and ".join(f"{LABELS[m]}'s {n}" for m, n in sorted(compared.items()))
            + ": the comparison is not yet like for like."
        )
    return [line, ""]


def robustness_row(run: dict) -> dict[str, Any]:
    """What the robustness suite checks in one SWFP run: final >= BC start, and no evaluation below
    ``BC - 10% |BC|`` (the start is the step-0 evaluation, after BC)."""
    evaluations = [point[1] for point in run["curve"]]
    # A run the NaN guard stopped before its first evaluation after the start has only the start
    bc, final, lowest = evaluations[0], evaluations[-1], min(evaluations[1:], default=evaluations[0])
    floor = bc - 0.1 * abs(bc)
    diverged = bool(run.get("error"))  # stopped by the NaN guard: neither line holds, whatever it evaluated before
    return {"bc": bc, "final": final, "lowest": lowest, "final_ge_bc": final >= bc and not diverged, "no_dip": lowest >= floor and not diverged}


def selection_lines(runs: list[dict]) -> list[str]:
    """Runs with the policy selection (``selection_steps`` > 0) answer every evaluation with the kept actor, and
    every evaluation plays the same start states deterministically: the evaluation changes only where a change was
    kept.  How often such a change raised it and how often lowered it, per task (the selection judges by the
    returns of sampled actions, the evaluation acts deterministically)."""
    counts: dict[str, list[int]] = {}
    selecting = [run for run in runs if (run.get("hyperparams") or {}).get("selection_steps")]
    unchanged = 0  # runs whose every evaluation is the start's: no change was kept before the last evaluation
    for run in selecting:
        values = [point[1] for point in run["curve"]]
        unchanged += len(set(values)) == 1
        up_down = counts.setdefault(TASKS[run["task"]].env_id, [0, 0])
        for before, after in zip(values, values[1:]):
            if after != before:
                up_down[after < before] += 1
    if not counts:
        return []
    ups, downs = sum(u for u, _ in counts.values()), sum(d for _, d in counts.values())
    per_task = "; ".join(f"{env_id} {u} up, {d} down" for env_id, (u, d) in counts.items())
    return [
        "With the policy selection, an evaluation differs from the one before only where a change was kept (the "
        f"kept actor answers, on the same start states): it rose {ups} times and fell {downs} ({per_task}); "
        f"{unchanged} of the {len(selecting)} runs "
        "show no change: every evaluation is the start's.",
        "",
    ]


def toy_ok(toy_modes: dict[str, Any]) -> bool:
    """The toy's acceptance line: >= 90% of the samples in the high-reward modes, each mode holding >= 10% of them."""
    return toy_modes["high_reward_share"] >= 0.9 and toy_modes["high_reward_modes_kept"] == toy_modes["n_high_reward_modes"]


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def robustness_table(runs: list[dict], planned: int, check_stale: bool = True) -> list[str]:
    """The table of robustness runs (per task: BC, final, dips) and the issue's acceptance lines, the goals
    scaled to the runs that have finished out of ``planned``.  ``check_stale``: name the runs made with other
    arguments than today's ``swfp_o2o.yml`` entry (the suite skips finished runs: a changed preset would keep
    them); off for the archived suite of an earlier preset."""
    tasks: dict[str, list[dict]] = defaultdict(list)
    for run in runs:
        tasks[run["task"]].append(run)
    lines = [
        "| task | seeds | BC (mean) | final (mean) | final ≥ BC | no dip | per seed: BC → final (lowest) |",
        "|---|---|---|---|---|---|---|",
    ]
    total = final_ok = dip_ok = 0
    tasks_above: list[str] = []
    tasks_below: list[str] = []
    toy_lines: list[str] = []
    success_lines: list[str] = []
    # final >= BC, split by whether BC started above the demonstrations' mean return (the toy's score is not a return)
    versus_demos: dict[bool, list[bool]] = {True: [], False: []}
    for task_name in [t for t in TASKS if t in tasks]:
        task, group = TASKS[task_name], sorted(tasks[task_name], key=lambda r: r["seed"])
        rows = [robustness_row(r) for r in group]
        d = task.decimals
        bc_mean, final_mean = np.mean([r["bc"] for r in rows]), np.mean([r["final"] for r in rows])
        n_final, n_dip = sum(r["final_ge_bc"] for r in rows), sum(r["no_dip"] for r in rows)
        total, final_ok, dip_ok = total + len(rows), final_ok + n_final, dip_ok + n_dip
        # A task with a run the NaN guard stopped does not count as improving, whatever its mean
        diverged = [r for r in group if r.get("error")]
        (tasks_above if final_mean > bc_mean and not diverged else tasks_below).append(task.env_id)
        per_seed = "; ".join(
            f"s{r['seed']}: {row['bc']:.{d}f} → {row['final']:.{d}f} ({row['lowest']:.{d}f})"
            + (f", stopped by the NaN guard after step {r['curve'][-1][0]}" if r.get("error") else "")
            for r, row in zip(group, rows)
        )
        lines.append(
            f"| {task.env_id} | {len(rows)} | {bc_mean:.{d}f} | {final_mean:.{d}f} | {n_final}/{len(rows)} | {n_dip}/{len(rows)} | {per_seed} |"
        )
        successes = [(r["curve"][0][3], r["curve"][-1][3]) for r in group]
        if all(start is not None and end is not None for start, end in successes):
            success_lines.append(
                f"- {task.env_id}: success rate {np.mean([s for s, _ in successes]):.2f} at the BC start, "
                f"{np.mean([e for _, e in successes]):.2f} at the end (mean over seeds)."
            )
        if task.demos == "toy":
            modes = [r["toy_modes"] for r in group]
            ok = [toy_ok(m) and not r.get("error") for m, r in zip(modes, group)]
            toy_lines.append(
                f"- Toy: ≥ 90% of the samples in the high-reward modes with each mode holding ≥ 10% of them in "
                f"{sum(ok)} of {len(ok)} seeds (" + ", ".join(f"{m['high_reward_share']:.3f} ({m['high_reward_modes_kept']}/{m['n_high_reward_modes']})" for m in modes)
                + f"): {_verdict(all(ok))}."
            )
        else:
            for run, row in zip(group, rows):
                demos_return = (run.get("demos") or {}).get("episode_return_mean")
                if demos_return is not None:
                    versus_demos[row["bc"] > demos_return].append(row["final_ge_bc"])
    lines += ["", "Against the acceptance lines of the robust fine-tuning issue:", ""]
    if total < planned:
        lines += [f"- **{total} of the suite's {planned} runs have finished** (the command resumes where it stopped); the goals are scaled to them."]
    quota = int(np.ceil(total * 30 / planned))
    lines += [
        f"- Final ≥ BC start in {final_ok} of {total} runs (goal ≥ {quota} of {total}): {_verdict(final_ok >= quota)}.",
        f"- No evaluation below BC − 10% of |BC| in {dip_ok} of {total} runs (goal ≥ {quota} of {total}): {_verdict(dip_ok >= quota)}.",
        f"- Mean final above the mean BC start on every task: {_verdict(not tasks_below)}"
        + (f" (not above it on {', '.join(tasks_below)}: level or below)." if tasks_below else "."),
        *toy_lines,
        "",
    ]
    if check_stale:
        stale = []
        for task_name in [t for t in TASKS if t in tasks]:
            entry, _, demo_ratio = methods.swfp_o2o_entry(TASKS[task_name].env_id)
            stale += [
                f"`{task_name}` s{r['seed']} ({'; '.join(d)})"
                for r in tasks[task_name]
                if "hyperparams" in r and (d := stale_arguments(r, entry, demo_ratio))
            ]
        if stale:
            lines += [
                "**Stale runs**: made with other SWFP arguments than `swfp_o2o.yml` gives now, so not the preset these "
                "lines are about; delete their JSON and rerun: " + ", ".join(stale) + ".",
                "",
            ]
    if success_lines:  # not an acceptance line: the mazes' returns also count how soon the goal is reached
        lines += ["Beside the returns, where the task reports success:", "", *success_lines, ""]
    lines += selection_lines([r for task_name in TASKS for r in tasks.get(task_name, [])])
    if versus_demos[True] and versus_demos[False]:
        above, below = versus_demos[True], versus_demos[False]
        lines += [
            f"Final ≥ BC start where BC started above the demonstrations' mean return: {sum(above)} of {len(above)} runs; "
            f"where it started at or below it: {sum(below)} of {len(below)} (every task but the toy).",
            "",
        ]
    return lines
