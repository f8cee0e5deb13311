"""Argument checks with one message format, shared by the algorithm and the modules it builds (whole numbers
included); the action-space check; SWFP's own argument checks (:func:`check_swfp_arguments`) and the parsing of
a learned ``ent_coef``; :func:`require`, which names a missing optional package and its extra before any work."""

from __future__ import annotations

import math
import numbers
import sys
from typing import Any

import numpy as np
from gymnasium import spaces


def check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    """Raise ``ValueError("unknown <name> <value>, expected one of 'a', 'b'")`` unless ``value`` is in ``allowed``."""
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}, expected one of {', '.join(repr(a) for a in allowed)}")


def require(modules: tuple[str, ...] | list[str], needed_by: str, extra: str) -> None:
    """Raise ``ModuleNotFoundError`` naming the first of ``modules`` that is not installed, what needs it and the
    package extra that brings it, before any work is done (a bare import error after a run would lose the run)."""
    import importlib.util

    for module in modules:
        try:
            missing = importlib.util.find_spec(module) is None
        except ImportError:  # a missing parent package ("a" of "a.b")
            missing = True
        except ValueError:  # loaded without a spec (a stub put in sys.modules): there to import
            missing = module not in sys.modules
        if missing:
            raise ModuleNotFoundError(
                f"{needed_by} needs {module!r}, which is not installed: pip install \"sb3-swfp[{extra}]\" "
                f"(or pip install -e \".[{extra}]\" in a checkout)",
                name=module,
            )


def whole_number(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int if it is a whole number >= ``minimum`` (``1e4`` included), else a ValueError that says so."""
    real = not isinstance(value, bool) and isinstance(value, (numbers.Real, np.number)) and math.isfinite(value)
    if not real or value != int(value) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def check_int(name: str, value: Any, minimum: int) -> None:
    """Raise ``ValueError("<name> must be an integer >= <minimum>, got <value>")`` unless it is one (bools are not)."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_action_space(action_space: spaces.Space) -> None:
    """Raise a ValueError unless ``action_space`` is a bounded ``gymnasium.spaces.Box``."""
    if not isinstance(action_space, spaces.Box):
        raise ValueError(
            f"SWFP needs a continuous gymnasium.spaces.Box action space, got {action_space}. "
            "Flow policies generate real-valued actions; for discrete actions use e.g. SB3's DQN or PPO."
        )
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise ValueError(
            f"SWFP needs a bounded Box action space (finite low and high), got low={action_space.low}, "
            f"high={action_space.high}. Give the env finite action bounds (in its definition, or with "
            "gymnasium.wrappers.TransformAction(env, func, Box(low, high)) mapping bounded actions to the env's); "
            "RescaleAction refuses infinite bounds and ClipAction makes every bound infinite."
        )
    if np.any(action_space.high <= action_space.low):
        raise ValueError(
            f"SWFP needs low < high in every action dimension, got low={action_space.low}, high={action_space.high}: "
            "a dimension with low == high has no [-1, 1] scaling (SB3's scale_action divides by high - low, and every "
            "scaled action there is NaN). Remove the constant dimension from the action space."
        )


def _number(name: str, value: Any) -> float:
    """``value`` as a float, or a ValueError that says it is not a number, Python's or numpy's (YAML reads ``5e-3``
    as a string)."""
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be a number, got {value!r} (in YAML a float needs its dot: 5.0e-3, or !!float 5e-3)")
    try:  # numpy and torch scalars are numbers too; bools are not
        if isinstance(value, bool):
            raise TypeError
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def check_positive(name: str, value: Any, meaning: str) -> None:
    """Raise a ValueError unless ``value`` is a number > 0; ``meaning`` says in the message what it is."""
    if not _number(name, value) > 0:
        raise ValueError(f"{name} must be > 0 ({meaning}), got {value}")


def check_pretrain_arguments(
    gradient_steps: int, batch_size: int, learning_rate: float, final_learning_rate: float, weight_decay: float,
    critic_warmup_steps: int, log_interval: int = 1,
) -> None:
    """Raise a ValueError for the first of ``SWFP.pretrain``'s numeric arguments out of its range (a negative final
    learning rate, for one, would turn the cosine schedule into gradient ascent on the BC loss)."""
    check_int("gradient_steps", gradient_steps, 0)
    check_int("batch_size", batch_size, 1)
    check_int("critic_warmup_steps", critic_warmup_steps, 0)
    check_int("log_interval", log_interval, 1)
    check_positive("learning_rate", learning_rate, "BC's initial learning rate")
    if not 0 <= _number("final_learning_rate", final_learning_rate) <= learning_rate:
        raise ValueError(
            f"final_learning_rate must be >= 0 and <= learning_rate (where BC's cosine schedule ends, from "
            f"learning_rate down), got {final_learning_rate} with learning_rate={learning_rate}; with a lower "
            "learning_rate, pass a final_learning_rate at or below it too"
        )
    if not _number("weight_decay", weight_decay) >= 0:
        raise ValueError(f"weight_decay must be >= 0 (AdamW's), got {weight_decay}")


#: SWFP's ``block_sampling`` options
BLOCK_SAMPLING = ("per_sample", "per_batch")
#: Arguments that SWFP forwards to its policy; policy_kwargs may repeat them, not change them
POLICY_ARGS = ("n_blocks", "n_substeps", "ode_solver", "log_prob_method", "squash")


def initial_ent_coef(ent_coef: str | float) -> float | None:
    """The initial value of a learned ``ent_coef`` (``"auto"``, ``"auto_<init>"``), None for a fixed one; a ValueError otherwise."""
    if isinstance(ent_coef, str):
        if not ent_coef.startswith("auto"):
            raise ValueError(f"ent_coef must be a positive float, 'auto' or 'auto_<init>', got {ent_coef!r}")
        init_value = float(ent_coef.split("_")[1]) if "_" in ent_coef else 1.0
        if not init_value > 0:
            raise ValueError(f"the initial value of ent_coef must be > 0, got {init_value}")
        return init_value
    if not float(ent_coef) > 0:
        raise ValueError(f"ent_coef must be > 0 (the JKO loss divides Q by it), got {ent_coef}")
    return None


def check_swfp_arguments(
    *,
    ode_solver: str,
    log_prob_method: str,
    block_sampling: str,
    q_agg: str,
    squash: str,
    n_blocks: int,
    n_substeps: int,
    policy_delay: int,
    actor_learning_starts: int,
    actor_batch_size: int | None,
    jko_step_size: float,
    bc_coef: float,
    w2_coef: float,
    w2_prev_coef: float,
    actor_tau: float,
    ent_coef: str | float,
    policy_kwargs: dict[str, Any] | None,
    batch_size: int = 256,
    tau: float = 0.005,
    gamma: float = 0.99,
    train_freq: int | tuple[int, str] = 1,
    target_update_interval: int = 1,
    target_entropy: str | float = "auto",
    actor_learning_rate: Any = None,
    selection_steps: int = 0,
    selection_deterministic: bool = False,
    selection_episodes: int = 1,
    selection_margin: float = 0.0,
) -> None:
    """Raise a ValueError for the first of ``SWFP``'s arguments that is out of its range (see ``SWFP``'s docstring),
    its own and those it shares with SAC (which SB3 does not check: ``target_update_interval=0`` divides by zero
    in ``train()``, ``n_critics=0`` leaves the critics' optimizer without parameters)."""
    # Imported here: these modules check their own arguments with the helpers above
    from sb3_swfp.common.flow import ODE_SOLVERS
    from sb3_swfp.common.log_prob import LOG_PROB_METHODS
    from sb3_swfp.common.losses import Q_AGGREGATIONS
    from sb3_swfp.common.squash import SQUASHES

    check_choice("ode_solver", ode_solver, ODE_SOLVERS)
    check_choice("log_prob_method", log_prob_method, ("auto", *LOG_PROB_METHODS))
    check_choice("block_sampling", block_sampling, BLOCK_SAMPLING)
    check_choice("q_agg", q_agg, Q_AGGREGATIONS)
    check_choice("squash", squash, SQUASHES)
    check_int("n_blocks", n_blocks, 1)
    check_int("n_substeps", n_substeps, 1)
    check_int("policy_delay", policy_delay, 1)
    check_int("actor_learning_starts", actor_learning_starts, 0)
    check_int("selection_steps", selection_steps, 0)
    check_int("selection_episodes", selection_episodes, 1)
    if not 0 <= _number("selection_margin", selection_margin) < math.inf:
        raise ValueError(f"selection_margin must be a finite number >= 0 (standard errors; 0: at or above), got {selection_margin}")
    if selection_margin > 0 and selection_episodes < 2:
        raise ValueError(
            f"selection_margin={selection_margin} needs selection_episodes >= 2: a standard error needs at least two returns "
            f"per phase, and selection_episodes={selection_episodes} may give one (selection_margin=0 keeps a change at or above the "
            "kept one's without it)"
        )
    if not isinstance(selection_deterministic, (bool, np.bool_)):  # "False" from a config file would be true
        raise ValueError(f"selection_deterministic must be True or False, got {selection_deterministic!r}")
    if actor_batch_size is not None:
        check_int("actor_batch_size", actor_batch_size, 1)
    if actor_learning_rate is not None and not callable(actor_learning_rate):  # a schedule is SB3's to trust
        if not 0 <= _number("actor_learning_rate", actor_learning_rate) < math.inf:  # 0 freezes the actor, as in torch
            raise ValueError(f"actor_learning_rate must be a finite number >= 0 (or a schedule, or None: the critic's), got {actor_learning_rate}")
    check_positive("jko_step_size", jko_step_size, "it divides the W2 term of Eq. 20")
    if not _number("bc_coef", bc_coef) >= 0:
        raise ValueError(f"bc_coef must be >= 0, got {bc_coef}")
    if not _number("w2_coef", w2_coef) >= 0:
        raise ValueError(f"w2_coef must be >= 0, got {w2_coef}")
    if not _number("w2_prev_coef", w2_prev_coef) >= 0:
        raise ValueError(f"w2_prev_coef must be >= 0, got {w2_prev_coef}")
    if not 0 < _number("actor_tau", actor_tau) <= 1:
        raise ValueError(f"actor_tau must be in (0, 1], got {actor_tau}")
    initial_ent_coef(ent_coef)
    check_int("batch_size", batch_size, 1)
    if not _number("target_update_interval", target_update_interval) >= 1:
        raise ValueError(f"target_update_interval must be a number >= 1 (gradient steps between target updates), got {target_update_interval!r}")
    check_int("train_freq", train_freq[0] if isinstance(train_freq, (tuple, list)) else train_freq, 1)
    if not 0 <= _number("tau", tau) <= 1:
        raise ValueError(f"tau must be in [0, 1] (the critics' polyak coefficient), got {tau}")
    if not 0 <= _number("gamma", gamma) <= 1:
        raise ValueError(f"gamma must be in [0, 1] (the discount), got {gamma}")
    if target_entropy != "auto":
        try:
            finite = not isinstance(target_entropy, bool) and bool(np.isfinite(float(target_entropy)))  # SAC's float(...)
        except (TypeError, ValueError):
            finite = False
        if not finite:
            raise ValueError(f"target_entropy must be 'auto' (minus the action dimension) or a finite number, got {target_entropy!r}")
    if policy_kwargs and "n_critics" in policy_kwargs:
        check_int("policy_kwargs n_critics", policy_kwargs["n_critics"], 1)


def check_policy_args_repeated(policy_kwargs: dict[str, Any], given: dict[str, Any], forwarded: dict[str, Any]) -> None:
    """
    Raise a ValueError where the user's ``policy_kwargs`` give one of :data:`POLICY_ARGS` another value than SWFP's.

    SWFP writes them into its ``policy_kwargs`` (``log_prob_method`` resolved from ``"auto"``), so a
    model's ``policy_kwargs`` given to a new SWFP repeat them: repeating is fine, disagreeing is not.

    :param policy_kwargs: what the user gave as ``policy_kwargs``.
    :param given: SWFP's arguments of those names, as given.
    :param forwarded: the values SWFP forwards to its policy (``"auto"`` resolved).
    """
    for name in POLICY_ARGS:
        if name in policy_kwargs and policy_kwargs[name] not in (given[name], forwarded[name]):
            resolved = f" (here {forwarded[name]!r})" if forwarded[name] != given[name] else ""
            raise ValueError(
                f"policy_kwargs has {name}={policy_kwargs[name]!r} but SWFP(...) has {name}={given[name]!r}{resolved}: "
                f"pass {name} to SWFP(...) directly (policy_kwargs may only repeat its value)"
            )


__all__ = [
    "check_action_space",
    "check_choice",
    "check_int",
    "check_positive",
    "check_policy_args_repeated",
    "check_swfp_arguments",
    "initial_ent_coef",
    "require",
    "whole_number",
]
