"""The ``.npz`` file format of demonstrations (version 1): the one description of it.

Written by :meth:`Demonstrations.save <sb3_swfp.demos.Demonstrations.save>` (:func:`save_demonstrations`),
read by :func:`load_demonstrations`.  Keys, with ``n`` the number of transitions:

- ``__format__``: 0-d string ``"sb3_swfp.demonstrations"``; ``__version__``: 0-d int ``1``.
- ``actions``: ``(n, *action_shape)``, in the environment's action space (not scaled).
- ``rewards``: ``(n,)`` float (float32 in a set that ``validate`` returned; ``save`` writes the dtype it is given).
- ``terminations``, ``truncations``: ``(n,)`` bool (as above).
- Array observations: ``observations`` and ``next_observations``, ``(n, *obs_shape)``.
- ``Dict`` observations: one array per key, ``observations/<key>`` and
  ``next_observations/<key>``, each ``(n, *obs_shape[key])``.
- ``metadata`` (optional): 0-d string holding a JSON object (env id, source, seed, ...).

Files are loaded with ``allow_pickle=False``.  A file written by another tool loads if it has the
same keys (the two ``__`` keys are optional).  A save writes a temporary file next to the
destination and moves it over it in one step (``os.replace``): a save that fails or is killed
midway leaves an existing file as it was.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from sb3_swfp.demos.record import _FLAT_FIELDS, _OBS_FIELDS, Demonstrations

FORMAT_NAME = "sb3_swfp.demonstrations"
FORMAT_VERSION = 1


def demonstrations_path(path: str | os.PathLike) -> Path:
    """The file :func:`save_demonstrations` writes for ``path``: ``.npz`` appended when missing."""
    path = Path(path)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def check_new_demonstrations_file(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """The file :func:`save_demonstrations` would write for ``path``: what a recording script checks before it records.

    :raises FileExistsError: the file exists and ``overwrite`` is False.
    :raises ValueError: the path is a folder, or a folder on its way is a file.
    """
    path = demonstrations_path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder, expected a file")
    blocking = [parent for parent in path.parents if parent.exists() and not parent.is_dir()]
    if blocking:
        raise ValueError(f"{path}: {blocking[0]} is a file, expected a folder")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists: give another path, or overwrite it on purpose")
    return path


def save_demonstrations(demos: Demonstrations, path: str | os.PathLike, compressed: bool = True) -> Path:
    """Write ``demos`` to ``path`` in the ``.npz`` format described in the module docstring.

    The archive is written to a temporary file in the same folder, then moved over ``path`` in one
    step (``os.replace``): a save that fails or is killed midway leaves an existing file as it was.

    :param demos: Demonstrations to write.
    :param path: Destination; ``.npz`` is appended when missing.
    :param compressed: Use ``np.savez_compressed``.
    :return: The path written.
    """
    path = demonstrations_path(path)
    try:
        metadata = json.dumps(demos.metadata)
    except TypeError as error:
        raise ValueError(f"demonstration metadata must be JSON-serialisable to be saved: {error}") from error
    arrays: dict[str, np.ndarray] = {
        "__format__": np.array(FORMAT_NAME),
        "__version__": np.array(FORMAT_VERSION),
        "metadata": np.array(metadata),
    }
    for name in _OBS_FIELDS:
        obs = getattr(demos, name)
        if isinstance(obs, dict):
            for key, value in obs.items():
                if "/" in key:
                    raise ValueError(f"observation key {key!r} contains '/', which the .npz format uses as separator")
                arrays[f"{name}/{key}"] = value
        else:
            arrays[name] = obs
    for name in _FLAT_FIELDS:
        arrays[name] = getattr(demos, name)
    for key, value in arrays.items():  # np.savez would pickle them, and load reads no pickle: refused before writing
        if np.asarray(value).dtype == object:
            raise ValueError(f"demonstration {key} hold Python objects (None, mixed types); expected a numeric array to save")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same folder, so that os.replace is a rename on one file system; O_EXCL: never another file
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # mode as open() gives, less the umask
    try:
        with os.fdopen(descriptor, "wb") as file:
            (np.savez_compressed if compressed else np.savez)(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def load_demonstrations(path: str | os.PathLike) -> Demonstrations:
    """Read demonstrations from an ``.npz`` file in the format of this module.

    :param path: File written by :meth:`Demonstrations.save`; ``.npz`` is appended when ``path`` is not a file
        and that is one (``save`` appends it too, as SB3's ``load`` appends ``.zip``).
    :raises FileNotFoundError: ``path`` does not exist.
    :raises ValueError: the file is not an ``.npz`` archive, or lacks keys of the format.
    """
    path = Path(path)
    if not path.is_file() and path.name and path.with_name(path.name + ".npz").is_file():
        path = path.with_name(path.name + ".npz")
    if not path.is_file():
        relative = "" if path.is_absolute() else f" (relative to the working directory {os.getcwd()!r})"
        raise FileNotFoundError(f"no demonstrations file at {str(path)!r}{relative}")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:  # np.load raises ValueError, OSError or pickle errors depending on the content
        raise ValueError(f"{str(path)!r} is not a readable .npz demonstrations file: {error}") from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{str(path)!r} holds a single .npy array, expected an .npz archive of demonstration arrays")
    with archive:
        keys = set(archive.files)

        def read(key: str) -> np.ndarray:
            try:
                return archive[key]
            except ValueError as error:
                if "allow_pickle" in str(error):  # NumPy's refusal of an object array
                    raise ValueError(f"{str(path)!r}: {key!r} holds Python objects; expected a numeric array") from error
                raise ValueError(f"{str(path)!r}: {key!r} cannot be read ({error})") from error

        if "__format__" in keys and (found := str(read("__format__"))) != FORMAT_NAME:
            raise ValueError(f"{str(path)!r} has format {found!r}, expected {FORMAT_NAME!r}")
        if "__version__" in keys and (version := int(read("__version__"))) > FORMAT_VERSION:
            raise ValueError(
                f"{str(path)!r} has format version {version}, this sb3_swfp reads up to "
                f"version {FORMAT_VERSION}: upgrade sb3_swfp"
            )
        missing = [name for name in _FLAT_FIELDS if name not in keys]
        fields: dict[str, Any] = {}
        for name in _OBS_FIELDS:
            sub_keys = sorted(k[len(name) + 1 :] for k in keys if k.startswith(name + "/"))
            if name in keys and sub_keys:
                raise ValueError(
                    f"{str(path)!r} has both {name!r} and {name}/<key> arrays {sub_keys}: expected one of the two "
                    "(an array for Box observations, one array per key for Dict observations)"
                )
            if name in keys:
                fields[name] = read(name)
            elif sub_keys:
                fields[name] = {key: read(f"{name}/{key}") for key in sub_keys}
            else:
                missing.append(f"{name} (or {name}/<key>)")
        if missing:
            raise ValueError(
                f"{str(path)!r} is not an sb3_swfp demonstrations file: missing keys {missing}; expected "
                f"{list(_OBS_FIELDS) + list(_FLAT_FIELDS)} (see sb3_swfp.demos.npz)"
            )
        for name in _FLAT_FIELDS:
            fields[name] = read(name)
        metadata = _metadata(str(read("metadata")), path) if "metadata" in keys else {}
    return Demonstrations(**fields, metadata=metadata)


def _metadata(text: str, path: Path) -> dict[str, Any]:
    try:
        metadata = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{str(path)!r}: its metadata is not JSON ({error}): {text[:80]!r}") from error
    if not isinstance(metadata, dict):
        raise ValueError(f"{str(path)!r}: its metadata is a JSON {type(metadata).__name__}, expected an object (a dict)")
    return metadata


__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "check_new_demonstrations_file", "demonstrations_path", "load_demonstrations", "save_demonstrations"]
