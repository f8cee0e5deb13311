"""Every rendered page from the stored results: ``python -m benchmarks --render``."""

from __future__ import annotations

from pathlib import Path

from benchmarks import CORE_RESULTS, DOCS, RESULTS, shown
from benchmarks.render_ablations import render_ablations
from benchmarks.render_benchmarks import render_benchmarks
from benchmarks.render_core import render_core


def render(results: Path = RESULTS, docs: Path = DOCS) -> None:
    """Re-render ``docs/benchmarks.md`` (the methods) and ``docs/ablations.md`` (SWFP's variants, the density
    suite, runs of earlier settings) and their PNGs from the suite's raw results."""
    pages = render_benchmarks(results, docs), render_ablations(results, docs)
    print(f"wrote {shown(pages[0])} and {shown(pages[1])}")


def render_all(results: Path = RESULTS, core_results: Path = CORE_RESULTS, docs: Path = DOCS) -> None:
    """Re-render every page of the benchmarks: the suite's two and the core benchmarks'."""
    render(results, docs)
    render_core(core_results, docs)
