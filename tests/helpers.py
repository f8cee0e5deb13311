"""Data shared by several test files (imported as ``helpers``: conftest.py puts this folder on ``sys.path``)."""

# Small, fast SWFP settings used by many tests
TINY = dict(
    learning_starts=50,
    batch_size=32,
    buffer_size=2_000,
    n_blocks=3,
    policy_kwargs=dict(net_arch=[32, 32]),
)
