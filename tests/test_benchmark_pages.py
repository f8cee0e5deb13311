"""The benchmark pages regenerate from the stored results: rendering ``docs/results/`` gives the committed pages byte for byte."""

import inspect
import json
import shutil

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("yaml")

from benchmarks import CORE_RESULTS, DOCS, RESULTS  # noqa: E402
from benchmarks.render import render_all  # noqa: E402
from benchmarks.render_tasks import REMOVED_OPTIONS  # noqa: E402
from sb3_swfp import SWFP  # noqa: E402

PAGES = ("benchmarks.md", "ablations.md", "core_benchmarks.md")


def stored_results():
    """The stored results' JSON files, not the state of a run under way (its ``*.checkpoint`` folder)."""
    return [path for path in RESULTS.rglob("*.json") if not any(part.endswith(".checkpoint") for part in path.parts)]


def test_pages_render_from_the_stored_results_as_committed(tmp_path):
    docs = tmp_path / "docs"
    # The stored results (JSON: the figures are drawn again; no checkpoints of runs under way) where they lie relative to the pages
    for source in (RESULTS, CORE_RESULTS):
        shutil.copytree(source, docs / source.relative_to(DOCS), ignore=shutil.ignore_patterns("*.png", "*.checkpoint"))
    render_all(docs / RESULTS.relative_to(DOCS), docs / CORE_RESULTS.relative_to(DOCS), docs)
    for page in PAGES:
        rendered, committed = (docs / page).read_text(), (DOCS / page).read_text()
        assert rendered == committed, f"docs/{page} is not what the stored results render: run python -m benchmarks --render"
    # and draws the figures that are committed, no more, no fewer
    drawn = {path.relative_to(docs) for path in docs.rglob("*.png")}
    assert drawn == {path.relative_to(DOCS) for source in (RESULTS, CORE_RESULTS) for path in source.rglob("*.png")}


def test_every_runs_swfp_arguments_exist_or_the_page_says_where_they_did():
    """A run's command is on its page: an SWFP argument the package does not take needs a probe's patch or a removal commit."""
    taken = set(inspect.signature(SWFP.__init__).parameters)
    unexplained = {}
    for path in stored_results():
        run = json.loads(path.read_text())
        if not isinstance(run, dict) or run.get("patch"):
            continue
        unknown = set(run.get("swfp_kwargs") or {}) - taken - set(REMOVED_OPTIONS)
        if unknown:
            unexplained[str(path.relative_to(RESULTS))] = sorted(unknown)
    assert not unexplained, f"runs whose SWFP arguments the package no longer takes, with no note on their page: {unexplained}"
    assert not set(REMOVED_OPTIONS) & taken, "an option said to be removed is an argument of SWFP again"


def test_every_run_with_recorded_decisions_replays_to_its_own_curve():
    """A run's ``selection_phases`` under its own keep rule give its curve (so a replayed row is what its command
    makes, and an original's records are whole); the preset's rows say they are replays."""
    from benchmarks.runner import replayed
    from sb3_swfp.common.selection import keeps
    from sb3_swfp.presets import FINETUNE_KWARGS

    checked = 0
    for path in stored_results():
        run = json.loads(path.read_text())
        if not isinstance(run, dict) or "selection_phases" not in run:
            continue
        margin = float((run.get("swfp_kwargs") or {}).get("selection_margin", run["hyperparams"].get("selection_margin", 0.0)))
        assert replayed(run, lambda c, k, m=margin: keeps(c, k, m))["curve"] == run["curve"], path
        kept, decisions = None, []
        for phase in run["selection_phases"]:  # each phase's record says what the run's rule decided
            decisions.append(kept is None or keeps(phase["returns"], kept["returns"], margin))
            kept = phase if decisions[-1] else kept
        assert decisions == [phase["kept"] for phase in run["selection_phases"]], path
        if run["method"] == "swfp" and path.parent.parent.name == "cpu":
            assert margin == FINETUNE_KWARGS["selection_margin"] and "replayed" in run, path
        checked += 1
    assert checked >= 21
