"""Shared test settings: one torch thread (small networks are faster that way on few cores), and a quiet end."""

import gc

import pytest
import torch as th


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


# Small, fast SWFP settings used by many tests
TINY = dict(
    learning_starts=50,
    batch_size=32,
    buffer_size=2_000,
    n_blocks=3,
    policy_kwargs=dict(net_arch=[32, 32]),
)
