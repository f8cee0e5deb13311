"""Loading SWFP models saved by earlier versions: what a saved model's data holds, and what is missing from it."""

from __future__ import annotations

import io
import json
import os
import zipfile
from typing import Any

#: Arguments added after a release, with the value that models saved before them were trained with
#: (``squash``: those models clipped their actions, with a density that ignored the clip)
ADDED_ARGUMENTS = {"squash": "clip"}


def _saved_data(path: str | os.PathLike | io.BufferedIOBase) -> dict[str, Any] | None:
    """The ``data`` entry of a saved model (a zip file, as SB3 writes it), None where it cannot be read."""
    if isinstance(path, (str, os.PathLike)) and not os.path.exists(path) and os.path.exists(f"{os.fspath(path)}.zip"):
        path = f"{os.fspath(path)}.zip"  # SB3's load adds the suffix too
    position = path.tell() if isinstance(path, io.BufferedIOBase) else None
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("data"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None  # not ours to judge: SB3's load reports what is wrong with the file
    finally:
        if position is not None:
            path.seek(position)  # type: ignore[union-attr]


def saved_data_has(path: str | os.PathLike | io.BufferedIOBase, key: str) -> bool:
    """Whether the ``data`` entry of a saved model has the top-level ``key`` (True where it cannot be read)."""
    data = _saved_data(path)
    return data is None or key in data


def saved_data_value(path: str | os.PathLike | io.BufferedIOBase, key: str) -> Any:
    """The value of the top-level ``key`` of a saved model's ``data`` when it is plain JSON (a string, a number),
    otherwise None (missing, an object SB3 serialised, a file that cannot be read)."""
    value = (_saved_data(path) or {}).get(key)
    return value if isinstance(value, (str, int, float)) else None


def with_added_arguments(path: str | os.PathLike | io.BufferedIOBase, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``load``'s keyword arguments, with the value of each argument of :data:`ADDED_ARGUMENTS` that the saved
    model predates (and that ``kwargs`` do not set) as that model was trained with it."""
    missing = {key: value for key, value in ADDED_ARGUMENTS.items() if key not in kwargs and not saved_data_has(path, key)}
    return {**kwargs, **missing}


__all__ = ["ADDED_ARGUMENTS", "saved_data_has", "saved_data_value", "with_added_arguments"]
