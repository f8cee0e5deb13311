"""The test run itself: a worker of ``pytest -n`` ends without being interrupted."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("xdist")

# Cyclic garbage whose finalizers take 6 s in all, left for pytest's last garbage collection: as the
# suite leaves closed matplotlib figures, models and envs, collected slowly on a loaded machine
GARBAGE_TEST = '''
import time


class SlowToFinalize:
    def __init__(self):
        self.cycle = self

    def __del__(self):
        time.sleep(0.02)


def test_leaves_cyclic_garbage():
    for _ in range(300):
        SlowToFinalize()
'''


def test_a_worker_finishes_its_garbage_collection_before_it_reports_finished(tmp_path):
    """pytest-xdist's execnet sends a worker SIGINT when it has not ended 5 s after the controller asked
    it to; pytest's last garbage collection ran in that window, and the KeyboardInterrupt surfaced in a
    finalizer as an "Exception ignored in ..." traceback although every test passed."""
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_garbage.py").write_text(GARBAGE_TEST)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "1", "-p", "no:cacheprovider", "test_garbage.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "KeyboardInterrupt" not in output and "Exception ignored" not in output, output
