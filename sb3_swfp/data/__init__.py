"""Small demonstration files shipped with the package (see docs/benchmarks.md for how they were made).

``demo_path("Hopper-v5")`` is the path of ``sb3_swfp/data/demos/Hopper-v5.npz``; load it with
:func:`sb3_swfp.demos.load_demonstrations`.
"""

from __future__ import annotations

from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent / "demos"


def shipped_demonstrations() -> list[str]:
    """Names of the shipped demonstration files (without ``.npz``)."""
    return sorted(path.stem for path in DEMO_DIR.glob("*.npz"))


def demo_path(name: str) -> Path:
    """Path of the shipped demonstration file ``name`` (an env id such as ``"Hopper-v5"``).

    :raises FileNotFoundError: no such file; the message lists the shipped ones.
    """
    path = DEMO_DIR / f"{name}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"no shipped demonstrations named {name!r}; shipped: {shipped_demonstrations()}")
    return path


__all__ = ["DEMO_DIR", "demo_path", "shipped_demonstrations"]
