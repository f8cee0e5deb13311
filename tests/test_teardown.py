"""The test run itself: a worker of ``pytest -n`` ends without being interrupted."""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("xdist")

# Cyclic garbage whose finalizers take 6 s in all, left for pytest's last garbage collection: as the
# suite leaves closed matplotlib figures, models and envs, collected slowly on a loaded machine
GARBAGE_TEST = '''
import gc
import time


class SlowToFinalize:
    def __init__(self):
        self.cycle = self

    def __del__(self):
        time.sleep(0.02)


def test_leaves_cyclic_garbage():
    gc.disable()  # the garbage waits for the end of the run, not for an automatic collection on the way
    for _ in range(300):
        SlowToFinalize()
'''


def run_in(folder: Path, conftest: str) -> subprocess.Popen:
    (folder / "conftest.py").write_text(conftest)
    (folder / "test_garbage.py").write_text(GARBAGE_TEST)
    command = [sys.executable, "-m", "pytest", "-q", "-n", "1", "-p", "no:cacheprovider", "test_garbage.py"]
    return subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_worker_finishes_its_garbage_collection_before_it_reports_finished(tmp_path):
    """pytest-xdist's execnet sends a worker SIGINT when it has not ended 5 s after the controller asked
    it to; pytest's last garbage collection ran in that window, and the KeyboardInterrupt surfaced in a
    finalizer as an "Exception ignored in ..." traceback although every test passed."""
    (tmp_path / "ours").mkdir()
    (tmp_path / "without").mkdir()
    # the same run with an empty conftest shows the interruption, so the check below can fail
    ours, without = run_in(tmp_path / "ours", Path(__file__).with_name("conftest.py").read_text()), run_in(tmp_path / "without", "")
    output, control = ours.communicate(timeout=120)[0], without.communicate(timeout=120)[0]
    assert ours.returncode == 0, output
    assert "KeyboardInterrupt" not in output and "Exception ignored" not in output, output
    # The control depends on timing (the 5 s start when the controller asks, some time after the collection
    # began; on a loaded machine the collection can end first): tried three times, and where it never shows
    # the interruption, this machine cannot tell our conftest from none, so the test says so instead of passing
    for _ in range(2):
        if "KeyboardInterrupt" in control or "Exception ignored" in control:
            break
        control = run_in(tmp_path / "without", "").communicate(timeout=120)[0]
    if "KeyboardInterrupt" not in control and "Exception ignored" not in control:
        pytest.skip(f"the run without our conftest was not interrupted in three tries on this machine:\n{control}")
