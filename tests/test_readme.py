"""The module tables tell the truth: each row's line count is the file's (or the folder's, with its file count)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A row of a module table: | `path.py` | role | count |, or | `folder/` | role | count in files |
ROW = re.compile(r"^\| `([^`|]+\.py)` \| .* \| ([\d,]+) \|$", re.M)
FOLDER_ROW = re.compile(r"^\| `([^`|]+)/` \| .* \| ([\d,]+) in (\d+) \|$", re.M)


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_module_table_line_counts_are_the_files():
    rows = ROW.findall((ROOT / "README.md").read_text())
    assert len(rows) >= 15, "the README's module table was not found"
    stated_and_actual = {path: (int(count.replace(",", "")), _lines(ROOT / "sb3_swfp" / path)) for path, count in rows}
    wrong = {path: counts for path, counts in stated_and_actual.items() if counts[0] != counts[1]}
    assert not wrong, f"README.md's module table (path: (stated, actual) lines): {wrong}"


def test_module_table_folder_rows_count_their_files_and_lines():
    rows = FOLDER_ROW.findall((ROOT / "README.md").read_text())
    assert {"demos", "experts"} <= {folder for folder, _, _ in rows}, "the README's folder rows were not found"
    wrong = {}
    for folder, count, files in rows:
        modules = sorted((ROOT / "sb3_swfp" / folder).glob("*.py"))
        actual = (sum(_lines(path) for path in modules), len(modules))
        if (int(count.replace(",", "")), int(files)) != actual:
            wrong[folder] = ((int(count.replace(",", "")), int(files)), actual)
    assert not wrong, f"README.md's folder rows (folder: (stated, actual) (lines, files)): {wrong}"


def test_the_demonstrations_page_counts_its_modules_lines():
    rows = ROW.findall((ROOT / "docs" / "demonstrations.md").read_text())
    assert len(rows) >= 9, "docs/demonstrations.md's module table was not found"
    stated_and_actual = {path: (int(count.replace(",", "")), _lines(ROOT / "sb3_swfp" / "demos" / path)) for path, count in rows}
    wrong = {path: counts for path, counts in stated_and_actual.items() if counts[0] != counts[1]}
    assert not wrong, f"docs/demonstrations.md's module table (path: (stated, actual) lines): {wrong}"
