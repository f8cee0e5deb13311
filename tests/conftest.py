"""Shared test settings: one torch thread (small networks are faster that way on few cores), and a quiet end.

Shared test data live in ``helpers.py`` next to this file; its folder is put on ``sys.path`` here, so that
test files ``import helpers`` under any pytest import mode.
"""

import gc
import sys
from pathlib import Path

import pytest
import torch as th

TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)


@pytest.fixture(autouse=True)
def _one_thread():
    th.set_num_threads(1)
    yield


def pytest_sessionfinish(session):
    """Collect the run's cyclic garbage while this process still counts as running, then freeze the rest.

    pytest runs a last full garbage collection when it unconfigures (to report exceptions raised in
    finalizers).  Under ``pytest -n`` that happens after the worker has reported "finished", and the
    controller's execnet gives a finishing worker 5 s before it sends it SIGINT: on a loaded machine,
    collecting half a million live objects and the finalizers of the closed figures, envs and models
    the tests leave took longer, and the KeyboardInterrupt surfaced inside a finalizer as an
    "Exception ignored in ..." traceback although every test had passed.  Here (inside xdist's
    session-finish wrapper, before it reports) the finalizers run under pytest's unraisable-exception
    hook as before, and the survivors are frozen, so that the last collection has almost nothing to look at.
    """
    gc.collect()
    gc.freeze()
