"""Where demonstrations come from: :func:`as_demonstrations` reads every source that SWFP accepts.

The sources live in their own modules: ``.npz`` files (:mod:`sb3_swfp.demos.npz`), Minari datasets
(:mod:`sb3_swfp.demos.minari_datasets`), ``imitation`` data (:mod:`sb3_swfp.demos.imitation_data`),
SB3 replay buffers (:mod:`sb3_swfp.demos.replay`) and recordings of a policy
(:mod:`sb3_swfp.demos.collection`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from stable_baselines3.common.buffers import ReplayBuffer

from sb3_swfp.demos.imitation_data import from_imitation
from sb3_swfp.demos.minari_datasets import from_minari
from sb3_swfp.demos.npz import load_demonstrations
from sb3_swfp.demos.record import Demonstrations
from sb3_swfp.demos.replay import from_replay_buffer

#: Prefix of a Minari dataset id where demonstrations are accepted: ``"minari:mujoco/hopper/expert-v0"``
MINARI_PREFIX = "minari:"
#: What :func:`as_demonstrations` accepts: a Demonstrations object, a path, "minari:<id>", an SB3 replay
#: buffer, a Minari dataset, imitation data (duck-typed, hence Any)
DemonstrationsLike = Any
#: A demonstrations path may contain this field; it is replaced by the env's gymnasium id
ENV_ID_FIELD = "{env_id}"


def as_demonstrations(demonstrations: DemonstrationsLike) -> Demonstrations:
    """A :class:`Demonstrations` object from any source that SWFP accepts demonstrations from.

    - a :class:`Demonstrations` object, as it is;
    - ``"minari:<dataset id>"``: a local Minari dataset (:func:`~sb3_swfp.demos.minari_datasets.from_minari`);
    - the path of an ``.npz`` file (:func:`~sb3_swfp.demos.npz.load_demonstrations`), or of a
      Minari dataset folder;
    - an SB3 ``ReplayBuffer`` / ``DictReplayBuffer`` holding scaled actions, as SB3's off-policy
      algorithms store them (``model.replay_buffer``; :func:`~sb3_swfp.demos.replay.from_replay_buffer`),
      but not a ``DemoReplayBuffer``, whose online transitions and demonstrations are apart (a ValueError
      says how to take either or both);
    - a Minari dataset object, or imitation ``Trajectory`` / ``Transitions`` objects
      (:func:`~sb3_swfp.demos.imitation_data.from_imitation`).

    :raises TypeError: anything else; the message lists what is accepted.
    :raises ValueError: None (demonstrations are required where this is called).
    :raises FileNotFoundError: a path that does not exist (with the ``minari:`` prefix to use if it looks like a
        Minari dataset id).
    """
    if demonstrations is None:
        raise ValueError(
            "demonstrations are required: pass a Demonstrations object, the path of a .npz file, "
            "'minari:<dataset id>' or an SB3 replay buffer"
        )
    if isinstance(demonstrations, Demonstrations):
        return demonstrations
    if isinstance(demonstrations, str) and demonstrations.startswith(MINARI_PREFIX):
        return from_minari(demonstrations[len(MINARI_PREFIX) :])
    if isinstance(demonstrations, (str, os.PathLike)):
        if Path(demonstrations).is_dir():
            return from_minari(demonstrations)
        try:
            return load_demonstrations(demonstrations)
        except FileNotFoundError as error:
            if isinstance(demonstrations, str) and re.fullmatch(r"[\w.-]+(/[\w.-]+)*-v\d+", demonstrations):  # a Minari id's shape
                raise FileNotFoundError(f"{error}; if it is a Minari dataset id, write 'minari:{demonstrations}'") from error
            raise
    if isinstance(demonstrations, ReplayBuffer):
        if hasattr(demonstrations, "demo_buffer"):  # a DemoReplayBuffer (not imported: it imports this module)
            raise ValueError(
                "a DemoReplayBuffer keeps its demonstrations apart from its online transitions, so which of them to "
                "take is yours to say: from_replay_buffer(buffer) for the online transitions, "
                "from_replay_buffer(buffer.demo_buffer) for the demonstrations, Demonstrations.concatenate([...]) for both"
            )
        return from_replay_buffer(demonstrations)
    if hasattr(demonstrations, "iterate_episodes"):  # a minari.MinariDataset, without importing minari
        return from_minari(demonstrations)
    if hasattr(demonstrations, "acts") or (isinstance(demonstrations, (list, tuple)) and demonstrations and hasattr(demonstrations[0], "acts")):
        return from_imitation(demonstrations)
    raise TypeError(
        f"cannot read demonstrations from a {type(demonstrations).__name__}; expected a Demonstrations object, the "
        "path of a .npz file, 'minari:<dataset id>', a Minari dataset, an SB3 ReplayBuffer or imitation trajectories"
    )


def with_env_id(demonstrations: Any, env: Any) -> Any:
    """``demonstrations`` with :data:`ENV_ID_FIELD` replaced by the id of ``env`` (an env or a VecEnv) when it is
    a path that contains it (``demos/{env_id}.npz``, as the zoo's default entry names them); otherwise unchanged.

    :raises ValueError: The path has the field and the env has no gymnasium id (``env.spec``).
    """
    if not isinstance(demonstrations, (str, os.PathLike)) or ENV_ID_FIELD not in os.fspath(demonstrations):
        return demonstrations
    spec = env.get_attr("spec", indices=[0])[0] if hasattr(env, "get_attr") else getattr(env, "spec", None)
    if spec is None:
        raise ValueError(
            f"the demonstrations path {os.fspath(demonstrations)!r} contains {ENV_ID_FIELD}, but the env has no "
            "gymnasium id (env.spec is None): make it with gymnasium.make, or give the path itself"
        )
    return os.fspath(demonstrations).replace(ENV_ID_FIELD, spec.id)


__all__ = ["ENV_ID_FIELD", "MINARI_PREFIX", "DemonstrationsLike", "as_demonstrations", "with_env_id"]
