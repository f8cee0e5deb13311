"""The methods the suite compares, and how each one's model is made for a task.

- ``bc``: the flow policy behaviour-cloned on the demonstrations, no online step (the step-0
  evaluation of the ``swfp`` runs: same demonstrations, same BC, same seeds);
- ``swfp``: BC, then SWFP fine-tuning (``zoo_hyperparams/swfp_o2o.yml``);
- ``sac`` / ``td3``: from scratch (rl-zoo3 settings: ``zoo_hyperparams/{sac,td3}.yml`` or rl-zoo3's own);
- ``sac_demos`` / ``td3_demos``: the same, with the demonstrations in the replay buffer
  (``DemoReplayBuffer``, the demo share of SWFP's entry) and learning from the first step;
- ``rlpd``: RLPD-style SAC (``sb3_swfp.rlpd``): rl-zoo3's SAC settings with LayerNorm critics, half of
  every batch from the demonstrations, learning from the first step and two updates per env step;
- ``rlpd_ensemble``: RLPD's critic ensemble (``sb3_swfp.rlpd.RLPD``): ``rlpd`` with ten critics, the
  target's minimum over a random two, the actor's Q their mean, one actor and temperature step per env
  step and RLPD's target entropy (extra rows, where time allows);
- ``rlpd_bc``: ``rlpd`` from a behaviour-cloned actor, what a user with demonstrations would try
  instead of SWFP: SAC's Gaussian actor cloned on the demonstrations (``gaussian_behaviour_cloning``
  with ``PRETRAIN_KWARGS``' steps and learning rate), then as ``rlpd``, with the actor waiting the
  preset's ``actor_learning_starts`` gradient updates (extra rows, robustness.md §19);
- ``tqc`` / ``crossq`` (sb3-contrib): extra rows, from scratch, where time allows;
- ``swfp-<name>``: a named SWFP variant, the ``swfp`` entry with ``--swfp-kwargs`` on top
  (``--variant <name>``), for the ablation page.

Hyperparameters come from the zoo files through :mod:`sb3_swfp.hyperparams`, the reader
``python -m sb3_swfp.zoo`` uses.
"""

from __future__ import annotations

from typing import Any

import torch as th
from stable_baselines3 import SAC

from benchmarks import HYPERPARAMS
from benchmarks.tasks import Task, make_env
from sb3_swfp.presets import FINETUNE_KWARGS, merge_kwargs
from sb3_swfp.rlpd import RLPD_UTD

METHODS = ("bc", "swfp", "rlpd", "rlpd_ensemble", "rlpd_bc", "sac", "td3", "sac_demos", "td3_demos", "tqc", "crossq")
RUN_METHODS = tuple(m for m in METHODS if m != "bc")  # bc is read off the swfp runs
DEFAULT_METHODS = ("swfp", "rlpd", "sac", "td3", "sac_demos", "td3_demos")
LABELS = {
    "bc": "BC flow (no online step)",
    "swfp": "SWFP (BC + online)",
    "rlpd": f"RLPD-style SAC (demos, UTD {RLPD_UTD})",
    "rlpd_ensemble": f"RLPD, ten critics (demos, UTD {RLPD_UTD})",
    "rlpd_bc": f"RLPD-style SAC from a BC actor (demos, UTD {RLPD_UTD})",
    "sac": "SAC from scratch",
    "td3": "TD3 from scratch",
    "sac_demos": "SAC + demos in buffer",
    "td3_demos": "TD3 + demos in buffer",
    "tqc": "TQC from scratch",
    "crossq": "CrossQ from scratch",
}

#: Method names of SWFP variants are this prefix and the variant's name
VARIANT_PREFIX = "swfp-"


def variant_method(name: str) -> str:
    """The method name of the SWFP variant ``name`` (its result files and table row)."""
    if not name or not all(c.isalnum() or c in "._-" for c in name):
        raise ValueError(f"variant names use letters, digits, '.', '_' and '-' only, got {name!r}")
    return VARIANT_PREFIX + name


def variant_name(method: str) -> str | None:
    """The variant's name of a method name made by ``variant_method``; None for the methods of ``METHODS``."""
    return method[len(VARIANT_PREFIX) :] if method.startswith(VARIANT_PREFIX) else None


def is_swfp(method: str) -> bool:
    """Whether ``method``'s runs are SWFP's: the preset's or a variant's."""
    return method == "swfp" or variant_name(method) is not None


def swfp_o2o_entry(env_id: str) -> tuple[dict[str, Any], dict[str, Any], float | None]:
    """SWFP kwargs, BC kwargs and demo ratio (None: no demos in the buffer) from ``swfp_o2o.yml``.

    The entry's demonstration paths (``demos/{env_id}.npz``) are dropped: the runner gives its own demonstrations.
    """
    from sb3_swfp.hyperparams import read_entry

    entry = read_entry(HYPERPARAMS / "swfp_o2o.yml", env_id)
    ((_, bc_kwargs),) = entry.pop("callback")[0].items()
    bc_kwargs = {key: value for key, value in bc_kwargs.items() if key != "demonstrations"}
    demo_ratio = None
    if "replay_buffer_kwargs" in entry:  # the runner puts its own demonstrations in the buffer
        entry.pop("replay_buffer_class")
        demo_ratio = float(entry.pop("replay_buffer_kwargs")["demo_ratio"])
    for zoo_only in ("n_timesteps", "monitor_kwargs"):
        entry.pop(zoo_only, None)
    return entry, bc_kwargs, demo_ratio


#: What the RLPD-style helper sets in rl-zoo3's SAC entries (the policy class too)
RLPD_SETS = ("policy", "replay_buffer_class", "replay_buffer_kwargs", "learning_starts", "train_freq", "gradient_steps")


def baseline_kwargs(algo: str, task: Task, budget: str) -> dict[str, Any]:
    """rl-zoo3 settings of ``algo`` for the task (ours where we have an entry), SB3 defaults otherwise."""
    from sb3_swfp.hyperparams import load_hyperparams

    try:
        kwargs = load_hyperparams(algo, task.env_id, HYPERPARAMS)
    except KeyError:
        kwargs = {"policy": "MultiInputPolicy" if task.success_metric else "MlpPolicy"}
    kwargs.pop("monitor_kwargs", None)
    if budget in ("cpu", "long"):
        kwargs["learning_starts"] = min(kwargs.get("learning_starts", 100), task.learning_starts_cap)
    return kwargs


def make_model(method: str, task: Task, demos, seed: int, budget: str, device: str, overrides: dict[str, Any] | None = None):
    """The model of ``method`` for ``task`` (for ``swfp`` and ``rlpd_bc``, behaviour-cloned already)."""
    from stable_baselines3 import TD3

    from sb3_swfp import SWFP
    from sb3_swfp.demos import DemoReplayBuffer

    env = make_env(task.env_id)
    if method == "swfp":
        kwargs, bc_kwargs, demo_ratio = swfp_o2o_entry(task.env_id)
        kwargs = merge_kwargs(kwargs, overrides or {})  # policy_kwargs key by key, as finetune_kwargs does
        policy = kwargs.pop("policy")
        if demo_ratio is not None:
            # A variant's buffer arguments (its demo_ratio) go over the entry's; the demonstrations are the task's
            buffer_overrides = kwargs.pop("replay_buffer_kwargs", None) or {}
            if "demonstrations" in buffer_overrides:
                raise ValueError("replay_buffer_kwargs: the runner gives every run its task's demonstrations; leave 'demonstrations' out")
            buffer_kwargs = {"demonstrations": demos, "demo_ratio": demo_ratio, **buffer_overrides}
            kwargs.update(replay_buffer_class=DemoReplayBuffer, replay_buffer_kwargs=buffer_kwargs)
        model = SWFP(policy, env, seed=seed, device=device, **kwargs)
        model.pretrain(demos, **bc_kwargs)
        return model
    if method in ("rlpd", "rlpd_ensemble", "rlpd_bc"):
        from sb3_swfp.rlpd import rlpd_sac_kwargs

        # rl-zoo3's SAC settings for the task, made RLPD-style (its buffer, start and update ratio win)
        kwargs = {key: value for key, value in baseline_kwargs("sac", task, budget).items() if key not in RLPD_SETS}
        kwargs = rlpd_sac_kwargs(demos, dict_observations=task.success_metric, **kwargs, **(overrides or {}))
        if method != "rlpd_bc":
            return model_class(method)(env=env, seed=seed, device=device, **kwargs)
        from sb3_swfp.common.gaussian_bc import gaussian_behaviour_cloning
        from sb3_swfp.presets import PRETRAIN_KWARGS

        model = CriticFirstSAC(env=env, seed=seed, device=device, **kwargs)
        # SWFP's BC budget for the task (its entry's steps), at the preset's batch and first learning rate
        bc = {key: PRETRAIN_KWARGS[key] for key in ("gradient_steps", "batch_size", "learning_rate")}
        bc["gradient_steps"] = swfp_o2o_entry(task.env_id)[1].get("gradient_steps", bc["gradient_steps"])
        gaussian_behaviour_cloning(model, demos, seed=seed, **bc)
        model.behaviour_cloning = bc  # recorded with the run's hyperparameters
        return model
    algo, _, with_demos = method.partition("_")
    if algo in ("tqc", "crossq"):
        from sb3_contrib import TQC, CrossQ

        if algo == "crossq" and task.success_metric:  # sb3-contrib's CrossQ has no policy for Dict observations
            raise ValueError(f"crossq cannot run {task.env_id}: sb3-contrib's CrossQ has no MultiInputPolicy for its Dict observations")
        cls = {"tqc": TQC, "crossq": CrossQ}[algo]
    else:
        cls = {"sac": SAC, "td3": TD3}[algo]
    kwargs = baseline_kwargs(algo, task, budget)
    if with_demos:
        _, _, demo_ratio = swfp_o2o_entry(task.env_id)
        for her_only in ("replay_buffer_class", "replay_buffer_kwargs"):
            kwargs.pop(her_only, None)
        kwargs.update(
            replay_buffer_class=DemoReplayBuffer,
            replay_buffer_kwargs=dict(demonstrations=demos, demo_ratio=demo_ratio or 0.25),
            learning_starts=0,  # the demonstrations are there from the first step, as for SWFP
        )
    kwargs.update(overrides or {})
    policy = kwargs.pop("policy")
    return cls(policy, env, seed=seed, device=device, **kwargs)


def model_class(method: str):
    """The class of ``method``'s model (what a checkpoint of its run is loaded with)."""
    from stable_baselines3 import TD3

    from sb3_swfp import SWFP

    if is_swfp(method):
        return SWFP
    if method in ("tqc", "crossq"):
        from sb3_contrib import TQC, CrossQ

        return {"tqc": TQC, "crossq": CrossQ}[method]
    if method == "rlpd_bc":
        return CriticFirstSAC
    if method == "rlpd_ensemble":
        from sb3_swfp.rlpd import RLPD

        return RLPD
    return {"sac": SAC, "td3": TD3, "rlpd": SAC}[method.partition("_")[0]]


class CriticFirstSAC(SAC):
    """SAC whose actor waits ``actor_learning_starts`` gradient steps while the critics fit, as the
    fine-tuning preset's does: a cloned actor is not moved by critics that have seen no data.  Its learned
    temperature waits too: a frozen actor cannot answer it, so it would wind up (a cloned actor's entropy lies
    far below SAC's target) and then throw the actor's entropy far past the target in its first steps."""

    actor_learning_starts = FINETUNE_KWARGS["actor_learning_starts"]

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        if self._n_updates >= self.actor_learning_starts:
            super().train(gradient_steps, batch_size)
            return
        # SAC's actor step leaves parameters without a gradient as they are (Adam skips them)
        self.actor.requires_grad_(False)
        log_ent_coef = None if self.log_ent_coef is None else self.log_ent_coef.detach().clone()
        try:
            super().train(gradient_steps, batch_size)
        finally:  # nothing else (a later behaviour cloning, a user's loss) finds the actor frozen
            self.actor.requires_grad_(True)
            if log_ent_coef is not None and self.ent_coef_optimizer is not None:  # the temperature as it was, no momentum
                with th.no_grad():
                    self.log_ent_coef.copy_(log_ent_coef)
                self.ent_coef_optimizer.state.clear()
