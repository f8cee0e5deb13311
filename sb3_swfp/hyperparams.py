"""The rl-zoo3 hyperparameter files, read one way: for :mod:`sb3_swfp.zoo` and for the benchmarks.

Our files live in ``zoo_hyperparams/`` (``swfp.yml``; ``sac.yml``/``td3.yml`` for the comparisons
rl-zoo3 has no entry for; ``swfp_o2o.yml`` for offline-to-online), rl-zoo3's in its package.  An
entry is a dict of an algorithm's keyword arguments with rl-zoo3's extras (``n_timesteps``,
``policy``, ``noise_type``/``noise_std``, ``callback``, ...); rl-zoo3's ``train`` ``eval``\\ s a few of
its strings (``policy_kwargs: "dict(net_arch=[256, 256])"``), and :func:`evaluate_strings` does the
same with the same names.  Paths in an entry are left as written: ``{env_id}`` in a demonstrations
path is resolved by whoever reads the demonstrations (``SWFP``'s demonstration buffer,
``BCPretrainCallback``), for the env it runs on.

Needs PyYAML (the ``zoo`` extra), imported on use.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sb3_swfp.common.checks import require

#: Environment variable naming the folder with our swfp.yml, sac.yml and td3.yml; overrides the lookup of hyperparams_folder()
HYPERPARAMS_ENV_VAR = "SB3_SWFP_HYPERPARAMS"
#: The keys whose string values rl-zoo3's ``train`` evaluates as Python (``rl_zoo3.exp_manager``)
EVALUATED_KEYS = ("policy_kwargs", "replay_buffer_class", "replay_buffer_kwargs", "monitor_kwargs")


def hyperparams_folder() -> Path | None:
    """
    The folder with our ``swfp.yml``/``sac.yml``/``td3.yml``, or None when there is none.

    Looked up in order: the folder named by the ``SB3_SWFP_HYPERPARAMS`` environment variable;
    ``sb3_swfp/zoo_hyperparams/`` inside the installed package (a non-editable install ships the
    repository's folder there as package data); ``zoo_hyperparams/`` at the repository root,
    next to ``sb3_swfp/`` (a checkout or an editable install).

    :raises NotADirectoryError: When the environment variable names no folder (an empty value counts as unset).
    """
    if os.environ.get(HYPERPARAMS_ENV_VAR):
        folder = Path(os.environ[HYPERPARAMS_ENV_VAR]).expanduser()
        if not folder.is_dir():
            raise NotADirectoryError(f"${HYPERPARAMS_ENV_VAR}={os.environ[HYPERPARAMS_ENV_VAR]!r} is not a folder")
        return folder
    package_dir = Path(__file__).resolve().parent
    for folder in (package_dir / "zoo_hyperparams", package_dir.parent / "zoo_hyperparams"):
        if folder.is_dir():
            return folder
    return None


def rl_zoo3_file(algo: str) -> Path:
    """rl-zoo3's own hyperparameter file of ``algo`` (``rl_zoo3/hyperparams/<algo>.yml``; it may not exist)."""
    require(("rl_zoo3",), "reading rl-zoo3's hyperparameters", "zoo")
    import rl_zoo3

    return Path(rl_zoo3.__file__).parent / "hyperparams" / f"{algo}.yml"


def read_entries(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The entries of a hyperparameter file by env id, YAML merges (``<<: *defaults``) resolved, strings as written;
    an empty dict for a missing or empty file."""
    require(("yaml",), "reading a hyperparameter file", "zoo")
    import yaml

    path = Path(path)
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def evaluation_namespace() -> dict[str, Any]:
    """The names an entry's evaluated strings may use: those of ``rl_zoo3.exp_manager`` that our files
    and rl-zoo3's use (``nn``, ``th``, ``HerReplayBuffer``), and ``sb3_swfp``, which
    :func:`sb3_swfp.zoo.register` adds there (``sb3_swfp.demos.DemoReplayBuffer``)."""
    import torch as th
    from stable_baselines3 import HerReplayBuffer
    from torch import nn

    import sb3_swfp
    import sb3_swfp.common.buffers  # noqa: F401  (the dotted name older files give the demonstration buffer)

    return {"nn": nn, "th": th, "HerReplayBuffer": HerReplayBuffer, "sb3_swfp": sb3_swfp}


def evaluate_strings(entry: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``entry`` with the string values of :data:`EVALUATED_KEYS` evaluated, as rl-zoo3's ``train`` does."""
    namespace = evaluation_namespace()
    return {key: eval(value, namespace) if key in EVALUATED_KEYS and isinstance(value, str) else value for key, value in entry.items()}


def read_entry(path: str | os.PathLike, env_id: str) -> dict[str, Any]:
    """The entry rl-zoo3's ``train`` uses for ``env_id`` in the file ``path`` (its own, else the file's
    ``default``), with its strings evaluated (:func:`evaluate_strings`).

    :raises FileNotFoundError: There is no file at ``path``.
    :raises KeyError: The file has neither.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"no hyperparameter file at {os.fspath(path)!r} (relative to the working directory {os.getcwd()!r})")
    entries = read_entries(path)
    key = env_id if env_id in entries else "default"
    if key not in entries:
        raise KeyError(f"no entry for {env_id!r} (nor a default one) in {path}")
    return evaluate_strings(entries[key])


def load_hyperparams(algo: str, env_id: str, folder: str | os.PathLike | None = None) -> dict[str, Any]:
    """The keyword arguments of ``algo`` for ``env_id`` from the zoo files, as SB3's constructors take them
    (``policy`` included): our entry (``<folder>/<algo>.yml``, by default :func:`hyperparams_folder`) where
    we have one, else rl-zoo3's own; for a ``-v5`` MuJoCo id without an entry, rl-zoo3's ``-v4`` one.

    ``n_timesteps`` is dropped, the evaluated strings are evaluated and ``noise_type: normal`` with
    ``noise_std`` becomes a ``NormalActionNoise`` over the env's action dimension, as rl-zoo3 does.
    What rl-zoo3 applies to the env rather than the model (``n_envs``, ``normalize``, ``env_wrapper``,
    ``frame_stack``, ``env_kwargs``, ``callback``, ``monitor_kwargs``) is returned as it is, and so are
    ``lin_<value>`` learning-rate schedules: pop or convert them before a constructor (the benchmarks pop
    ``monitor_kwargs``).  Unlike rl-zoo3's ``train``, no ``default`` entry serves an env without one.

    :raises KeyError: Neither file has an entry for ``env_id``.
    """
    import numpy as np

    folder = folder if folder is not None else hyperparams_folder()
    zoo = rl_zoo3_file(algo)
    candidates = [(zoo, env_id), (zoo, env_id.replace("-v5", "-v4"))]
    if folder is not None:
        candidates.insert(0, (Path(folder) / f"{algo}.yml", env_id))
    for path, key in candidates:
        entries = read_entries(path)
        if key in entries:
            entry = dict(entries[key])
            break
    else:
        raise KeyError(f"no {algo} hyperparameters for {env_id!r} in {' or '.join(str(path) for path, _ in candidates[:-1])}")
    entry.pop("n_timesteps", None)
    policy = entry.pop("policy")
    entry = evaluate_strings(entry)
    noise_type, noise_std = entry.pop("noise_type", None), entry.pop("noise_std", None)
    if noise_type is not None:
        from stable_baselines3.common.noise import NormalActionNoise

        from sb3_swfp.experts import make_expert_env

        if noise_type != "normal":
            raise ValueError(f"unsupported noise_type {noise_type!r} in the {algo} entry of {env_id}")
        env = make_expert_env(env_id)  # made for its action space alone (a MuJoCo env holds a simulator)
        n_actions = int(np.prod(env.action_space.shape))
        env.close()
        entry["action_noise"] = NormalActionNoise(np.zeros(n_actions), noise_std * np.ones(n_actions))
    return {"policy": policy, **entry}


__all__ = [
    "EVALUATED_KEYS",
    "HYPERPARAMS_ENV_VAR",
    "evaluate_strings",
    "evaluation_namespace",
    "hyperparams_folder",
    "load_hyperparams",
    "read_entries",
    "read_entry",
    "rl_zoo3_file",
]
