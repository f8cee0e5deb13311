"""Moved to :mod:`sb3_swfp.demos`; this module re-exports its names so that older imports keep working."""

from typing import Any

from sb3_swfp.demos import (
    FORMAT_NAME,
    FORMAT_VERSION,
    Demonstrations,
    Observations,
    PolicyLike,
    add_to_replay_buffer,
    check_env_id,
    check_rewards,
    collect_demonstrations,
    from_imitation,
    from_minari,
    from_replay_buffer,
    load_demonstrations,
    make_replay_buffer,
    predict_action,
    save_demonstrations,
    scaled_actions,
    to_minari,
    unscaled_actions,
    validate,
)


def __getattr__(name: str) -> Any:
    if name == "sample_batch":
        raise ImportError(
            "sample_batch was removed: demonstrations are sampled from a buffer, "
            "sb3_swfp.demos.DemonstrationBuffer.from_demonstrations(demos, observation_space, action_space, device=model.device)"
            ".sample(batch_size, env=vec_normalize, rng=np.random.default_rng(seed))"
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Demonstrations",
    "Observations",
    "PolicyLike",
    "add_to_replay_buffer",
    "check_env_id",
    "check_rewards",
    "collect_demonstrations",
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
]
