"""The benchmarks of sb3-swfp: runs that write raw JSON, and the docs pages rendered from it.

Not part of the installed package: run from the repository root, ``python -m benchmarks.suite ...``
(SWFP against SAC, TD3 and RLPD-style SAC offline-to-online; robustness, density, sensitivity,
cost), ``python -m benchmarks.core ...`` (learning from scratch on Pendulum-v1; speed) or
``python -m benchmarks --render`` (every page, from the stored results only).

- :mod:`benchmarks.tasks`: the task table (env, demonstrations, budgets, evaluation protocol).
- :mod:`benchmarks.methods`: each method's model for a task, from the zoo files; SWFP's variants.
- :mod:`benchmarks.runner`: one run (evaluations, checkpoints and resume, its JSON).
- :mod:`benchmarks.studies`: the sensitivity, density and BC drift suites (the toy; behaviour cloning).
- :mod:`benchmarks.cost`: speed and memory measurements (the suite's cost, the core's speed).
- :mod:`benchmarks.suite`, :mod:`benchmarks.core`: the command lines.
- :mod:`benchmarks.render_benchmarks`, :mod:`benchmarks.render_ablations`, :mod:`benchmarks.render_core`: the
  pages ``docs/benchmarks.md``, ``docs/ablations.md`` and ``docs/core_benchmarks.md``;
  :mod:`benchmarks.render_tasks` what the first two share; :mod:`benchmarks.render` all of them.

Every function that reads or writes results takes the folder as an argument; the defaults below
are the repository's.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: The suite's raw results (one JSON per run) and their figures
RESULTS = ROOT / "docs" / "results" / "benchmarks"
#: What the runs and pages import beyond the package's own requirements (the zoo extra has them all);
#: the tasks' envs need theirs too (``tasks.EXTRA_MODULES``), the pages matplotlib alone
BENCHMARK_MODULES = ("yaml", "rl_zoo3", "sb3_contrib", "matplotlib")
#: The core benchmarks' raw results and figure
CORE_RESULTS = ROOT / "docs" / "results" / "core"
#: Where the rendered pages go
DOCS = ROOT / "docs"
#: The zoo files the runs read their hyperparameters from
HYPERPARAMS = ROOT / "zoo_hyperparams"

#: The commands of the suite and of the core benchmarks, as the results record them
SUITE_COMMAND = "python -m benchmarks.suite"
CORE_COMMAND = "python -m benchmarks.core"
#: The command that re-renders every page
RENDER_COMMAND = "python -m benchmarks --render"
#: The scripts that made the older results, and the commands that replace them
LEGACY_COMMANDS = {"python examples/benchmark_suite.py": SUITE_COMMAND, "python examples/benchmark_core.py": CORE_COMMAND}


def shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (for messages)."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def write_result(out: Path, result: dict, indent: int | None = 1) -> None:
    """Write ``result`` as JSON to ``out`` (its folders made): through a temporary file replaced in one
    step, so that a run killed while writing leaves no truncated file that the suites' "finished runs
    are skipped" would take for a result."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=indent))
    os.replace(tmp, out)


def read_result(path: Path) -> dict:
    """One result file, or a ValueError that names it (a copy cut short, an edit gone wrong)."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not a readable result ({error}): restore it from git, or delete it to run it again") from error


def current_command(command: str) -> str:
    """A result's command in today's form: results made by the former scripts (``examples/benchmark_*.py``)
    record those; the pages show the command that makes the run now."""
    for legacy, current in LEGACY_COMMANDS.items():
        if command == legacy or command.startswith(legacy + " "):
            return current + command[len(legacy) :]
    return command


def machine() -> dict[str, str]:
    """What a run's numbers depend on besides the code and the seed: the CPU whose kernels torch and MKL
    choose (capability, model name, a digest of the flags) and the versions of the libraries that
    compute, and the GPU with its CUDA and cuDNN versions where there is one.  On a MuJoCo task a difference
    in the last bits becomes another BC start (docs/robustness.md §12).  ``cpu_flags`` is empty where there is
    no ``/proc/cpuinfo``."""
    import hashlib
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import torch as th

    def installed(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    model, flags = platform.processor() or platform.machine(), ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        fields = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in cpuinfo.read_text().splitlines())}
        model, flags = fields.get("model name", model), fields.get("flags", "")
    gpu = {}
    if th.cuda.is_available():  # a run on it computes other last bits again: which GPU, which CUDA
        try:
            gpu = {"gpu": th.cuda.get_device_name(), "cuda": str(th.version.cuda), "cudnn": str(th.backends.cudnn.version())}
        except (AssertionError, RuntimeError):  # visible but not usable by this torch build (a CPU build)
            gpu = {}
    return {
        **gpu,
        "torch": th.__version__,
        "cpu_capability": th.backends.cpu.get_cpu_capability(),
        "cpu": model,
        "cpu_flags": hashlib.sha256(" ".join(sorted(flags.split())).encode()).hexdigest()[:12] if flags else "",
        **{package: installed(package) for package in ("numpy", "mujoco", "gymnasium", "stable_baselines3")},
    }


def code_version() -> dict[str, Any] | None:
    """The commit the run's code is at and whether the package, the benchmarks or the zoo files differ from it
    (a run made with uncommitted changes cannot be made again from the commit alone); None outside a git checkout."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        modified = bool(git("status", "--porcelain", "--", "sb3_swfp", "benchmarks", "zoo_hyperparams"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "modified": modified}


def provenance() -> dict[str, Any]:
    """A result's ``machine`` (:func:`machine`) and ``code`` (:func:`code_version`): what it can be made again on."""
    return {"machine": machine(), "code": code_version()}


def flag(name: str) -> str:
    """The command-line flag of an argparse dest: ``eval_episodes`` -> ``--eval-episodes``."""
    return "--" + name.replace("_", "-")


def given_options(parser: argparse.ArgumentParser, args: argparse.Namespace, names: Iterable[str]) -> list[str]:
    """The flags among ``names`` (argparse dests) given with another value than their default."""
    return [flag(name) for name in names if getattr(args, name) != parser.get_default(name)]
