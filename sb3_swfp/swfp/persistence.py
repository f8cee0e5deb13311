"""Loading SWFP models: what a saved model's data holds, what earlier versions' models are missing from it,
and the checks of the arguments ``load`` is given to override."""

from __future__ import annotations

import inspect
import io
import json
import os
import warnings
import zipfile
from typing import Any

from sb3_swfp.common.checks import check_swfp_arguments, initial_ent_coef

#: Arguments added after a release, with the value that models saved before them were trained with
#: (``squash``: those models clipped their actions, with a density that ignored the clip)
ADDED_ARGUMENTS = {"squash": "clip"}


def saved_data(path: str | os.PathLike | io.BufferedIOBase) -> dict[str, Any] | None:
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


def with_added_arguments(data: dict[str, Any] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``load``'s keyword arguments, with the value of each argument of :data:`ADDED_ARGUMENTS` that the saved
    model (its :func:`saved_data`) predates, and that ``kwargs`` do not set, as that model was trained with it."""
    missing = {key: value for key, value in ADDED_ARGUMENTS.items() if key not in kwargs and data is not None and key not in data}
    return {**kwargs, **missing}


def with_saved_buffer_arguments(data: dict[str, Any] | None, kwargs: dict[str, Any], custom_objects: dict[str, Any] | None) -> dict[str, Any]:
    """``load``'s keyword arguments, with a ``replay_buffer_kwargs`` override merged key by key over the saved model's
    (its :func:`saved_data`) when the buffer's class stays the saved one: giving the demonstrations again keeps the
    saved ``demo_ratio`` and checks instead of dropping them to the buffer's defaults (SB3's load replaces the
    whole dict; ``None`` keeps the saved ones)."""
    if "replay_buffer_kwargs" not in kwargs or not (data or {}).get("replay_buffer_kwargs"):
        return kwargs
    override = kwargs["replay_buffer_kwargs"] or {}
    if not isinstance(override, dict) or "replay_buffer_class" in kwargs or "replay_buffer_class" in (custom_objects or {}):
        return kwargs  # another buffer class takes the arguments it is given
    saved_kwargs = _read_back(data, "replay_buffer_kwargs", custom_objects)  # type: ignore[arg-type]
    if not isinstance(saved_kwargs, dict):  # could not be read back: SB3's load says so
        return kwargs
    return {**kwargs, "replay_buffer_kwargs": {**saved_kwargs, **override}}


def _read_back(data: dict[str, Any], key: str, custom_objects: dict[str, Any] | None) -> Any:
    """The object SB3's load makes of ``data[key]`` (a pickled class, a dict of arguments), None where it cannot."""
    from stable_baselines3.common.save_util import json_to_data

    with warnings.catch_warnings():  # what cannot be read back, SB3's load warns about itself
        warnings.simplefilter("ignore")
        return json_to_data(json.dumps({key: data[key]}), custom_objects).get(key)


def check_saved_policy(data: dict[str, Any] | None, path: Any, custom_objects: dict[str, Any] | None = None) -> None:
    """Refuse a file whose model is not a flow policy's (a SAC model, say) with what to load it with; SB3's load would
    build the saved policy class with SWFP's arguments and fail on the first one it does not take.  A class given in
    ``custom_objects`` is SB3's load's to use, and one that cannot be read back is SB3's load's to report."""
    if not data or not isinstance(data.get("policy_class"), dict) or "policy_class" in (custom_objects or {}):
        return
    from sb3_swfp.swfp.policies import FlowPolicy

    try:
        policy_class = _read_back(data, "policy_class", custom_objects)
    except Exception:  # a module that is gone, a class pickled by another Python: SB3's load says what it can
        return
    if isinstance(policy_class, type) and not issubclass(policy_class, FlowPolicy):
        shown = os.fspath(path) if isinstance(path, (str, os.PathLike)) else "the file object"
        raise ValueError(
            f"{shown!r} holds a {policy_class.__name__} model ({policy_class.__module__}), not an SWFP flow policy: load it "
            "with the algorithm that saved it (SAC.load for a SACPolicy)"
        )


#: Flow arguments whose change on load makes the saved flow act otherwise (n_substeps refines the integration,
#: log_prob_method only how the density is computed)
FLOW_MAPS = ("n_blocks", "ode_solver", "squash")


def check_flow_overrides(data: dict[str, Any] | None, kwargs: dict[str, Any], stacklevel: int = 3) -> None:
    """Refuse ``load(..., n_blocks=k)`` for a model with one velocity network per block (its weights could not load),
    and warn where another ``n_blocks``, ``ode_solver`` or ``squash`` makes the saved flow act otherwise."""
    saved = {} if data is None else {**ADDED_ARGUMENTS, **data}  # a model older than an argument ran with its value
    changed = {name: (saved[name], kwargs[name]) for name in FLOW_MAPS if name in kwargs and name in saved and kwargs[name] != saved[name]}
    if not changed:
        return
    policy_kwargs = saved.get("policy_kwargs") if isinstance(saved.get("policy_kwargs"), dict) else {}
    if "n_blocks" in changed and policy_kwargs.get("share_velocity") is False:
        was, asked = changed["n_blocks"]
        raise ValueError(
            f"this model has {was} flow blocks with a velocity network each (share_velocity=False): it cannot load with "
            f"n_blocks={asked}; load it without n_blocks"
        )
    described = ", ".join(f"{name}={asked!r} (trained with {was!r})" for name, (was, asked) in changed.items())
    warnings.warn(f"loading with {described}: the saved flow maps noise to other actions than it was trained to", stacklevel=stacklevel)


def check_load_overrides(data: dict[str, Any] | None, kwargs: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Check the SWFP arguments that ``load`` is given to override (``kwargs``; ``defaults``: the constructor's),
    as the constructor checks them (SB3's load sets them without it), and refuse a switch between a learned and a
    fixed ``ent_coef`` from the saved model's (its :func:`saved_data`)."""
    checked = [name for name in inspect.signature(check_swfp_arguments).parameters if name != "policy_kwargs"]
    # An argument not given takes the saved model's value, so that one given is checked against those it goes with
    # (selection_episodes=1 against a saved selection_margin); a value SB3 serialised as an object, the default's
    given = {name: kwargs[name] if name in kwargs else _saved_value(data, name, defaults[name]) for name in checked}
    check_swfp_arguments(**given, policy_kwargs=None)
    saved = (data or {}).get("ent_coef")
    if "ent_coef" in kwargs and isinstance(saved, (str, int, float)):  # not an object SB3 serialised
        learned, was_learned = initial_ent_coef(kwargs["ent_coef"]) is not None, initial_ent_coef(saved) is not None
        if learned != was_learned:
            raise ValueError(
                f"this model was saved with ent_coef={saved!r} ({'learned' if was_learned else 'fixed'}) and cannot load "
                f"with ent_coef={kwargs['ent_coef']!r} ({'learned' if learned else 'fixed'}): its temperature's state "
                "is saved as it was.  Load it without ent_coef, then copy its policy into a new SWFP with the ent_coef "
                "you want: new.policy.load_state_dict(loaded.policy.state_dict())"
            )


def _saved_value(data: dict[str, Any] | None, name: str, default: Any) -> Any:
    """The saved model's value of the argument ``name`` where its ``data`` hold it as plain JSON, else ``default``."""
    value = (data or {}).get(name, default)
    return value if isinstance(value, (str, int, float, list)) or value is None else default


__all__ = ["ADDED_ARGUMENTS", "FLOW_MAPS", "check_flow_overrides", "check_load_overrides", "check_saved_policy", "saved_data", "with_added_arguments", "with_saved_buffer_arguments"]
