"""The README's module table tells the truth: each single-file row's line count is the file's."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A row of the `sb3_swfp/` module table: | `path.py` | role | count |
ROW = re.compile(r"^\| `([^`|]+\.py)` \| .* \| ([\d,]+) \|$", re.M)


def test_module_table_line_counts_are_the_files():
    rows = ROW.findall((ROOT / "README.md").read_text())
    assert len(rows) >= 15, "the README's module table was not found"
    stated_and_actual = {
        path: (int(count.replace(",", "")), len((ROOT / "sb3_swfp" / path).read_text().splitlines())) for path, count in rows
    }
    wrong = {path: counts for path, counts in stated_and_actual.items() if counts[0] != counts[1]}
    assert not wrong, f"README.md's module table (path: (stated, actual) lines): {wrong}"
