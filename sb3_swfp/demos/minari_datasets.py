"""Minari datasets as demonstrations, and demonstrations as a Minari dataset (``pip install "minari[hdf5]"``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sb3_swfp.demos.record import Demonstrations, _as_observations, _map_obs, _map_obs_pair, _obs_items, _rows_equal
from sb3_swfp.demos.validation import validate

if TYPE_CHECKING:
    import minari


def _import_minari() -> Any:
    try:
        import minari
    except ImportError as error:
        raise ImportError(
            "Minari datasets need the minari package with a storage backend: pip install \"minari[hdf5]\" "
            "(or pip install \"sb3-swfp[demos]\")"
        ) from error
    return minari


def check_new_dataset_id(dataset_id: str) -> None:
    """Raise before any recording where :func:`to_minari` could not write ``dataset_id``: Minari is not installed
    (ImportError, with what to install), the id is not one Minari reads, or a local dataset has it (ValueError;
    Minari does not overwrite)."""
    minari = _import_minari()
    from minari.dataset.minari_dataset import parse_dataset_id

    try:  # Minari's own reading of an id; "mydata" gets a TypeError from it, after which its writer leaves a folder
        parse_dataset_id(dataset_id)
    except (TypeError, ValueError):
        raise ValueError(
            f"{dataset_id!r} is not a Minari dataset id: expected (namespace/)name-v<version>, e.g. swfp/pointmaze-umaze/noisy-v0"
        ) from None
    root = os.environ.get("MINARI_DATASETS_PATH", "~/.minari/datasets")
    try:
        local = minari.list_local_datasets()
    except Exception as error:  # a folder Minari cannot read (one a failed write left) breaks every listing
        raise ValueError(f"Minari cannot list the local datasets under {root} ({type(error).__name__}: {error}): a folder there is not a dataset") from error
    if dataset_id in local:
        raise ValueError(f"a local Minari dataset {dataset_id!r} exists (under {root}): give another id, or delete it first")


def from_minari(dataset: str | os.PathLike | minari.MinariDataset) -> Demonstrations:
    """Demonstrations from a local Minari dataset (nothing is downloaded).

    Each episode of ``T`` steps stores ``T + 1`` observations; they become ``T``
    transitions with ``observations = obs[:-1]`` and ``next_observations = obs[1:]``.  An
    episode whose last step has neither flag (stored unfinished) is marked truncated there.

    :param dataset: A ``minari.MinariDataset``, the id of a dataset under
        ``MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``), or the path of a
        dataset directory (the one holding ``data/``, or ``data/`` itself).
    :raises FileNotFoundError: no local dataset with that id or path.
    """
    minari = _import_minari()
    if isinstance(dataset, minari.MinariDataset):
        ds = dataset
    elif Path(dataset).is_dir():
        path = Path(dataset)
        ds = minari.MinariDataset(path / "data" if (path / "data").is_dir() else path)
    else:
        try:
            ds = minari.load_dataset(str(dataset))
        except FileNotFoundError as error:
            root = os.environ.get("MINARI_DATASETS_PATH", str(Path.home() / ".minari" / "datasets"))
            raise FileNotFoundError(
                f"no local Minari dataset {str(dataset)!r} under {root!r} (set MINARI_DATASETS_PATH, pass a dataset "
                f"directory, or download it first with `minari download {dataset}`)"
            ) from error

    parts = []
    for episode in ds.iterate_episodes():
        obs = episode.observations
        if isinstance(obs, tuple) or (isinstance(obs, dict) and any(isinstance(v, (dict, tuple)) for v in obs.values())):
            raise ValueError(
                "Minari episodes with Tuple or nested Dict observations are not supported; expected flat arrays or a flat dict"
            )
        obs = _as_observations(obs, "observations")
        steps = len(episode.rewards)
        terminations = np.asarray(episode.terminations, dtype=np.bool_)
        truncations = np.array(episode.truncations, dtype=np.bool_)
        if steps and not (terminations[-1] or truncations[-1]):
            truncations[-1] = True  # an episode stored unfinished still ends here: never joined to the next one
        parts.append(
            Demonstrations(
                observations=_map_obs(obs, lambda a: a[:steps]),
                actions=np.asarray(episode.actions),
                rewards=np.asarray(episode.rewards, dtype=np.float32),
                next_observations=_map_obs(obs, lambda a: a[1 : steps + 1]),
                terminations=terminations,
                truncations=truncations,
            )
        )
    if not parts:
        raise ValueError(f"the Minari dataset {ds.spec.dataset_id!r} has no episodes")
    demos = Demonstrations.concatenate(parts)
    env_spec = ds.spec.env_spec
    demos.metadata = {
        "source": "minari",
        "dataset_id": ds.spec.dataset_id,
        "env_id": env_spec.id if env_spec is not None else None,
    }
    return demos


def to_minari(
    demos: Demonstrations,
    dataset_id: str,
    env: str | gym.Env | None = None,
    observation_space: spaces.Space | None = None,
    action_space: spaces.Space | None = None,
    algorithm_name: str | None = None,
    author: str | None = None,
    description: str | None = None,
    data_format: str | None = None,
) -> minari.MinariDataset:
    """Write demonstrations as a local Minari dataset under ``MINARI_DATASETS_PATH``.

    Minari stores whole episodes, so within an episode every transition must be followed
    by its successor (``next_observations[i] == observations[i + 1]``). To record a policy
    straight into Minari, call :func:`~sb3_swfp.demos.collection.collect_demonstrations` first.

    :param demos: Demonstrations in episode order.
    :param dataset_id: Minari id, ``(namespace/)(env_name/)dataset_name-v<version>``.
    :param env: Environment (or id) the data comes from; gives the spaces and the env spec
        stored with the dataset.
    :param observation_space: Observation space, when ``env`` is not given.
    :param action_space: Action space, when ``env`` is not given.
    :param algorithm_name: Stored in the dataset metadata.
    :param author: Stored in the dataset metadata.
    :param description: Stored in the dataset metadata.
    :param data_format: Minari storage format (``"hdf5"`` or ``"arrow"``; Minari's default when ``None``).
    :return: The new ``minari.MinariDataset``.
    :raises ValueError: the demonstrations do not fit the spaces (given, else the env's): shapes,
        dict keys, dtypes, non-finite values, actions out of bounds (see :func:`~sb3_swfp.demos.validation.validate`); nothing
        is written then.
    """
    minari = _import_minari()
    from minari.data_collector import EpisodeBuffer

    check_new_dataset_id(dataset_id)  # before Minari writes anything: a malformed id left a folder that broke every listing

    if env is None and (observation_space is None or action_space is None):
        raise ValueError("to_minari needs env, or both observation_space and action_space, to describe the dataset")
    if len(demos) == 0:
        raise ValueError("demonstrations are empty (0 transitions); expected at least one transition")
    if observation_space is None or action_space is None:
        from sb3_swfp.experts import make_expert_env  # here: the experts import the demos package

        env_spaces = make_expert_env(env) if isinstance(env, str) else env  # registers gymnasium-robotics for PointMaze ids
        observation_space = observation_space or env_spaces.observation_space  # type: ignore[union-attr]
        action_space = action_space or env_spaces.action_space  # type: ignore[union-attr]
        if isinstance(env, str):
            env_spaces.close()  # type: ignore[union-attr]
    # The dataset names its env (or spaces): what it stores must fit them, cast to their dtypes
    demos = validate(demos, observation_space, action_space)
    episodes = []
    for episode_id, (start, end) in enumerate(demos.episode_bounds()):
        obs = _map_obs(demos.observations, lambda a: a[start:end])
        next_obs = _map_obs(demos.next_observations, lambda a: a[start:end])
        for key, current, following in _obs_items(obs, next_obs):
            broken = np.flatnonzero(~_rows_equal(current[1:], following[:-1]))
            if len(broken):
                raise ValueError(
                    f"transition {start + int(broken[0])} is not followed by its successor (next_observations{key} "
                    f"differs from the next transition's observations{key}) although the episode did not end; "
                    "Minari stores whole episodes, so demonstrations must be in episode order"
                )
        full_obs = _map_obs_pair(obs, next_obs, lambda a, b: np.concatenate([a, b[-1:]]))
        episodes.append(
            EpisodeBuffer(
                id=episode_id,
                observations=full_obs,
                actions=demos.actions[start:end],
                rewards=demos.rewards[start:end].astype(np.float64),
                terminations=demos.terminations[start:end].astype(np.bool_),
                truncations=demos.truncations[start:end].astype(np.bool_),
                infos={},
            )
        )
    return minari.create_dataset_from_buffers(
        dataset_id=dataset_id,
        buffer=episodes,
        env=env,
        observation_space=observation_space,
        action_space=action_space,
        algorithm_name=algorithm_name,
        author=author,
        description=description,
        data_format=data_format,
    )


__all__ = ["check_new_dataset_id", "from_minari", "to_minari"]
