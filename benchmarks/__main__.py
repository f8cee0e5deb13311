"""``python -m benchmarks --render``: re-render every benchmark page from the stored results (runs nothing).

The runs have their own command lines: ``python -m benchmarks.suite --help`` and ``python -m benchmarks.core --help``.
"""

from __future__ import annotations

import argparse

from benchmarks.render import render_all
from sb3_swfp.common.checks import require


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--render", action="store_true", help="re-render docs/benchmarks.md, docs/ablations.md and docs/core_benchmarks.md")
    args = parser.parse_args(argv)
    if not args.render:
        parser.print_help()
        return
    require(("matplotlib",), "rendering the benchmark pages", "zoo")
    render_all()


if __name__ == "__main__":
    main()
