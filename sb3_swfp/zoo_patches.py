"""What ``python -m sb3_swfp.zoo`` changes in rl-zoo3 and the Hugging Face helpers while a command runs.

rl-zoo3 has no plugin mechanism, so :mod:`sb3_swfp.zoo` runs its scripts with a few of their internals
replaced for the duration of one command, each undone afterwards: the trial's ``policy_kwargs`` merged
into the entry's (:func:`entry_policy_kwargs_kept`), the model card's algorithm and commands
(:func:`swfp_model_card`), and a renamed ``huggingface_sb3`` function (:func:`huggingface_sb3_compat`).
:func:`check_study_options` refuses the Optuna options rl-zoo3 would ignore.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rl_zoo3 import exp_manager as zoo_exp_manager
from rl_zoo3.hyperparams_opt import HYPERPARAMS_SAMPLER

#: The name SWFP is registered under in rl-zoo3's tables
ALGO_NAME = "swfp"


def check_study_options(options: argparse.Namespace) -> None:
    """Refuse the Optuna options that rl-zoo3's ``train`` would ignore without a word.

    rl-zoo3 applies a stored trial only when ``--trial-id`` is not 0 (its test is the id's truth), and
    reads ``--storage`` and ``--study-name`` only with ``-optimize`` or a trial id: the run would train
    the plain entry instead of the trial the user named.

    :raises SystemExit: With the reason and what to do instead.
    """
    if options.optimize_hyperparameters:
        return
    if options.trial_id == 0:
        raise SystemExit(
            "python -m sb3_swfp.zoo train: error: rl-zoo3 ignores --trial-id 0 (it loads a stored trial only for a "
            "non-zero id) and would train the entry as it is; pass trial 0's values with -params instead"
        )
    if (options.storage or options.study_name) and options.trial_id is None:
        raise SystemExit(
            "python -m sb3_swfp.zoo train: error: --storage/--study-name without -optimize or --trial-id are ignored by "
            "rl-zoo3 (the entry would train as it is): add --trial-id N to train trial N of the study, or -optimize to search"
        )
    if options.trial_id is not None and not (options.storage and options.study_name):
        raise SystemExit(
            f"python -m sb3_swfp.zoo train: error: --trial-id {options.trial_id} needs --storage and --study-name "
            "(the study the trial is read from); without them rl-zoo3 trains the entry as it is"
        )


@contextlib.contextmanager
def entry_policy_kwargs_kept(options: argparse.Namespace) -> Iterator[None]:
    """While ``train`` runs: a trial's ``policy_kwargs`` (rl-zoo3's samplers give ``net_arch`` alone) are merged
    key by key over the entry's instead of replacing them, so that a search or a ``--trial-id`` run of a
    ``swfp_o2o.yml`` entry keeps the preset's ``n_critics=10``.

    For ``-optimize`` the sampler's ``policy_kwargs`` go over the entry's evaluated ones; for ``--trial-id``
    the stored trial's ``net_arch`` goes into the entry's (a string rl-zoo3 evaluates later, or a dict),
    unless ``-params`` gives ``policy_kwargs`` (rl-zoo3 applies those last, whole).
    """
    manager = zoo_exp_manager.ExperimentManager
    real_objective, real_load_trial, real_read = manager.objective, manager.load_trial, manager.read_hyperparameters
    custom_policy_kwargs = any(item.startswith("policy_kwargs:") for item in options.hyperparams or [])

    sampler, entry = HYPERPARAMS_SAMPLER.get(ALGO_NAME), {}

    def objective(self: Any, trial: Any) -> float:
        entry["policy_kwargs"] = self._hyperparams.get("policy_kwargs")  # one manager (one entry) per train
        return real_objective(self, trial)

    def merged(*args: Any) -> dict[str, Any]:  # one sampler for the whole search: --n-jobs trials run in threads
        sampled = sampler(*args)  # type: ignore[misc]
        if isinstance(entry.get("policy_kwargs"), dict) and "policy_kwargs" in sampled:
            sampled = {**sampled, "policy_kwargs": {**entry["policy_kwargs"], **sampled["policy_kwargs"]}}
        return sampled

    def load_trial(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        params = real_load_trial(self, *args, **kwargs)
        if isinstance(params.get("policy_kwargs"), dict) and not custom_policy_kwargs:
            self._swfp_trial_policy_kwargs = params.pop("policy_kwargs")  # merged into the entry's below
        return params

    def read_hyperparameters(self: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        hyperparams, saved = real_read(self)
        trial = self.__dict__.pop("_swfp_trial_policy_kwargs", None)
        if trial is not None:
            entry = hyperparams.get("policy_kwargs")
            if isinstance(entry, str):  # evaluated by rl-zoo3 later: dict(mapping, **kw) lets the trial's keys win
                merged: Any = f"dict({entry}, **{trial!r})"
            else:
                merged = {**(entry or {}), **trial}
            hyperparams["policy_kwargs"] = saved["policy_kwargs"] = merged
            print(f"policy_kwargs: the trial's {trial} merged into the entry's: {merged}")
        return hyperparams, saved

    manager.objective, manager.load_trial, manager.read_hyperparameters = objective, load_trial, read_hyperparameters
    if sampler is not None:
        HYPERPARAMS_SAMPLER[ALGO_NAME] = merged
    try:
        yield
    finally:
        manager.objective, manager.load_trial, manager.read_hyperparameters = real_objective, real_load_trial, real_read
        if sampler is not None:
            HYPERPARAMS_SAMPLER[ALGO_NAME] = sampler


#: rl-zoo3's model card tells its readers to run rl-zoo3's scripts, which refuse ``--algo swfp``: ours take it
MODEL_CARD_COMMANDS = {"pip install rl_zoo3": 'pip install "sb3-swfp[zoo]"', "python -m rl_zoo3.": "python -m sb3_swfp.zoo "}


@contextlib.contextmanager
def swfp_model_card() -> Iterator[None]:
    """While ``push_to_hub`` runs: the model card it writes names the algorithm ``SWFP`` (not the replay-only class
    it loads with) and gives ``python -m sb3_swfp.zoo`` commands (:data:`MODEL_CARD_COMMANDS`).

    rl-zoo3 names the card's algorithm by ``ALGOS[algo].__name__`` and writes the card's text just before
    ``huggingface_hub.repocard.metadata_save`` adds its metadata: the text is rewritten there.
    """
    repocard = importlib.import_module("huggingface_hub.repocard")
    real_save = repocard.metadata_save

    def metadata_save(local_path: str | os.PathLike, data: dict[str, Any]) -> Any:
        card = Path(local_path)
        text = card.read_text(encoding="utf-8")
        for old, new in MODEL_CARD_COMMANDS.items():
            text = text.replace(old, new)
        card.write_text(text, encoding="utf-8")
        return real_save(local_path, data)

    repocard.metadata_save = metadata_save
    try:
        yield
    finally:
        repocard.metadata_save = real_save


def huggingface_sb3_compat() -> None:
    """Give ``huggingface_sb3.push_to_hub`` the ``generate_metadata`` that rl-zoo3's ``push_to_hub`` imports.

    rl-zoo3 2.9 imports ``generate_metadata`` (a dict of model-card metadata); sb3-team-hf-integration
    3.x, the package rl-zoo3 2.9 installs as ``huggingface_sb3``, renamed it ``_generate_metadata`` and
    returns a ``ModelCardData``, so the script fails on import for every algorithm.  Added only when missing.
    """
    # By module path: the package's ``push_to_hub`` attribute is the function of the same name
    hf_push_to_hub = importlib.import_module("huggingface_sb3.push_to_hub")
    if not hasattr(hf_push_to_hub, "generate_metadata") and hasattr(hf_push_to_hub, "_generate_metadata"):

        def generate_metadata(model_name: str, env_id: str, mean_reward: float, std_reward: float) -> dict[str, Any]:
            return hf_push_to_hub._generate_metadata(model_name, env_id, mean_reward, std_reward).to_dict()

        hf_push_to_hub.generate_metadata = generate_metadata  # type: ignore[attr-defined]


__all__ = ["MODEL_CARD_COMMANDS", "check_study_options", "entry_policy_kwargs_kept", "huggingface_sb3_compat", "swfp_model_card"]
