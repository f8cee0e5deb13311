"""The benchmark pages regenerate from the stored results: rendering ``docs/results/`` gives the committed pages byte for byte."""

import shutil

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("yaml")

from benchmarks import CORE_RESULTS, DOCS, RESULTS  # noqa: E402
from benchmarks.render import render_all  # noqa: E402

PAGES = ("benchmarks.md", "ablations.md", "core_benchmarks.md")


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
