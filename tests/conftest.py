"""Shared test settings: one torch thread (small networks are faster that way on few cores)."""

import pytest
import torch as th


@pytest.fixture(autouse=True)
def _one_thread():
    th.set_num_threads(1)
    yield


# Small, fast SWFP settings used by many tests
TINY = dict(
    learning_starts=50,
    batch_size=32,
    buffer_size=2_000,
    n_blocks=3,
    policy_kwargs=dict(net_arch=[32, 32]),
)
