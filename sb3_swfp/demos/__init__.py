"""Demonstrations: the record type, its file format and validation, the buffers they are sampled from, and their sources.

==========================  =====================================================================
module                      role
==========================  =====================================================================
``record``                  :class:`Demonstrations`, a flat sequence of transitions; action convention
``npz``                     the ``.npz`` file format (described there), save and load
``validation``              checks against an env's spaces, env id and rewards
``replay``                  to and from SB3 replay buffers, with SB3's action scaling
``buffers``                 :class:`DemonstrationBuffer` (every batch of demonstrations is drawn
                            from one), :class:`DemoReplayBuffer` (online + demonstration batches)
``sources``                 :func:`as_demonstrations`: any accepted source to :class:`Demonstrations`
``collection``              recording a policy in an env
``minari_datasets``         Minari datasets, both ways (``pip install "minari[hdf5]"``)
``imitation_data``          ``imitation`` trajectories and transitions (read by attribute)
==========================  =====================================================================

Every name below is importable from ``sb3_swfp.demos``.
"""

from sb3_swfp.demos.buffers import (
    DemoDictReplayBuffer,
    DemonstrationBuffer,
    DemonstrationDictBuffer,
    DemoReplayBuffer,
    UnsavedDemonstrations,
    check_demonstrations_env,
    check_demonstrations_loaded,
    defer_missing_demonstrations,
)
from sb3_swfp.demos.collection import PolicyLike, check_recording_arguments, collect_demonstrations, predict_action
from sb3_swfp.demos.imitation_data import from_imitation
from sb3_swfp.demos.minari_datasets import check_new_dataset_id, from_minari, to_minari
from sb3_swfp.demos.npz import (
    FORMAT_NAME,
    FORMAT_VERSION,
    check_new_demonstrations_file,
    demonstrations_path,
    load_demonstrations,
    save_demonstrations,
)
from sb3_swfp.demos.record import Demonstrations, Observations
from sb3_swfp.demos.replay import add_to_replay_buffer, from_replay_buffer, make_replay_buffer, scaled_actions, unscaled_actions
from sb3_swfp.demos.sources import ENV_ID_FIELD, MINARI_PREFIX, DemonstrationsLike, as_demonstrations, with_env_id
from sb3_swfp.demos.validation import check_env_id, check_rewards, validate, vec_env_id

__all__ = [
    "ENV_ID_FIELD",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MINARI_PREFIX",
    "DemoDictReplayBuffer",
    "DemoReplayBuffer",
    "DemonstrationBuffer",
    "DemonstrationDictBuffer",
    "Demonstrations",
    "DemonstrationsLike",
    "Observations",
    "PolicyLike",
    "UnsavedDemonstrations",
    "add_to_replay_buffer",
    "as_demonstrations",
    "check_demonstrations_env",
    "check_demonstrations_loaded",
    "check_env_id",
    "check_new_dataset_id",
    "check_new_demonstrations_file",
    "check_recording_arguments",
    "check_rewards",
    "collect_demonstrations",
    "defer_missing_demonstrations",
    "demonstrations_path",
    "from_imitation",
    "from_minari",
    "from_replay_buffer",
    "load_demonstrations",
    "make_replay_buffer",
    "predict_action",
    "save_demonstrations",
    "scaled_actions",
    "to_minari",
    "unscaled_actions",
    "validate",
    "vec_env_id",
    "with_env_id",
]
