"""What SWFP costs: training env-steps/s and ``predict`` latency against SAC and TD3, and the time and
memory of one actor update, SWFP's one-block JKO step against back-propagating through the whole chain.

:func:`measure_speed` serves the core's speed suite and the suite's cost suite; :func:`run_cost` is
the latter (``<results>/cost.json``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import HYPERPARAMS, RESULTS, SUITE_COMMAND, provenance, write_result

#: The env of the speed measurements and of the core's learning runs
ENV_ID = "Pendulum-v1"


def pendulum_model(algo: str, seed: int, **overrides):
    """SWFP, SAC or TD3 on Pendulum-v1 from scratch: the zoo entry (``zoo_hyperparams/swfp.yml``, rl-zoo3's for
    SAC and TD3) with ``overrides`` on top, on the CPU unless they give a ``device`` (SB3's "auto" would
    take a GPU where there is one, and the CPU numbers would be a GPU's)."""
    from stable_baselines3 import SAC, TD3

    from sb3_swfp import SWFP
    from sb3_swfp.hyperparams import load_hyperparams

    cls = {"swfp": SWFP, "sac": SAC, "td3": TD3}[algo]
    kwargs = {"device": "cpu", **load_hyperparams(algo, ENV_ID, HYPERPARAMS), **overrides}
    policy = kwargs.pop("policy")
    return cls(policy, ENV_ID, seed=seed, verbose=0, **kwargs)


SPEED_ROUNDS, SPEED_TRAIN_CHUNK, SPEED_PREDICT_CALLS = 10, 200, 200


def measure_speed(
    configs: dict[str, dict],
    obs: np.ndarray,
    train: bool = True,
    rounds: int = SPEED_ROUNDS,
    train_chunk: int = SPEED_TRAIN_CHUNK,
    predict_calls: int = SPEED_PREDICT_CALLS,
) -> dict[str, dict[str, float]]:
    """Training env-steps/s and median ``predict`` latency (one observation) of several Pendulum-v1 models.

    Every model gets batch 256 and one gradient step per env step, and a warm-up past
    ``learning_starts``; then, ``rounds`` times, each model in turn trains ``train_chunk`` steps and
    answers ``predict_calls`` predictions.  Interleaving the models this way lets them share the
    machine's slow and fast moments; with a ``"sac"`` config, each model's ratios to it are taken round
    by round (the models of one round ran within seconds of each other) and their median is reported,
    with the range over the rounds.

    :param configs: name -> ``dict(algo=..., **overrides)``
    :param train: Measure training (False: latency only, no warm-up training).
    :return: name -> ``{"train_steps_per_s": ..., "predict_ms_median": ...}`` plus, with a ``"sac"`` config,
        ``train_ratio_to_sac`` / ``predict_ratio_to_sac`` (medians over rounds) and their ``..._range``
    """
    models = {}
    for name, config in configs.items():
        config = dict(config)
        models[name] = pendulum_model(config.pop("algo"), 0, batch_size=256, train_freq=1, gradient_steps=1, learning_starts=500, **config)
        if train:
            models[name].learn(600)  # warm-up past learning_starts
        for _ in range(100):
            models[name].predict(obs, deterministic=True)
    train_times: dict[str, list[float]] = {name: [] for name in models}  # one entry per round
    latencies: dict[str, list[list[float]]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            if train:
                start = time.perf_counter()
                model.learn(train_chunk, reset_num_timesteps=False)
                train_times[name].append(time.perf_counter() - start)
            round_latencies = []
            for _ in range(predict_calls):
                t0 = time.perf_counter()
                model.predict(obs, deterministic=True)
                round_latencies.append(time.perf_counter() - t0)
            latencies[name].append(round_latencies)
    rows: dict[str, dict] = {}
    for name in models:
        rows[name] = {"predict_ms_median": 1e3 * float(np.median(latencies[name]))}
        if train:
            rows[name]["train_steps_per_s"] = rounds * train_chunk / float(np.sum(train_times[name]))
        if "sac" in models:
            ratios = [np.median(mine) / np.median(sac) for mine, sac in zip(latencies[name], latencies["sac"])]
            rows[name]["predict_ratio_to_sac"] = float(np.median(ratios))
            rows[name]["predict_ratio_range"] = [float(np.min(ratios)), float(np.max(ratios))]
            if train:
                ratios = [sac / mine for mine, sac in zip(train_times[name], train_times["sac"])]  # steps/s ratio
                rows[name]["train_ratio_to_sac"] = float(np.median(ratios))
                rows[name]["train_ratio_range"] = [float(np.min(ratios)), float(np.max(ratios))]
    return rows


# --- The suite's cost (Sec. 4.3) --------------------------------------------------------------------

COST_N = (1, 2, 5, 10, 20)
UPDATE_N = (5, 10, 20)


def run_cost(device: str, results: Path = RESULTS) -> None:
    """Training env-steps/s (SWFP vs SAC vs TD3), predict latency vs N, and one-block vs whole-chain actor
    updates; writes ``<results>/cost.json``."""
    import gymnasium as gym
    import torch as th

    th.set_num_threads(1)
    load_average = os.getloadavg()[0]  # the ratios are in-process; the absolute times are not
    obs = gym.make(ENV_ID).reset(seed=0)[0]
    speed = measure_speed({algo: dict(algo=algo, device=device) for algo in ("swfp", "sac", "td3")}, obs)
    configs = {f"swfp_N{n}": dict(algo="swfp", n_blocks=n, device=device) for n in COST_N} | {"sac": dict(algo="sac", device=device)}
    latency_rows = measure_speed(configs, obs, train=False)
    latency = {name: row["predict_ms_median"] for name, row in latency_rows.items()}
    updates = {n: actor_update_cost(n, device) for n in UPDATE_N}
    result = {
        "speed": speed,
        "predict_ms": latency,
        "predict_ratio": {name: row["predict_ratio_to_sac"] for name, row in latency_rows.items()},
        "actor_update": updates,
        "device": device,
        "command": f"{SUITE_COMMAND} --suite cost",
        "cpu_count": os.cpu_count(),
        "load_average": load_average,
        **provenance(),
    }
    write_result(results / "cost.json", result)


def actor_update_cost(n_blocks: int, device: str, batch_size: int = 256, repeats: int = 20, **swfp_kwargs: Any) -> dict[str, float]:
    """Median time and peak memory of SWFP's one-block JKO update vs back-propagating through the whole chain.

    ``swfp_kwargs`` are further ``SWFP`` arguments (``q_normalization``, ``bc_coef`` with a demonstration buffer, ...).

    The whole-chain update is what a flow policy trained end to end would do (``x_0 -> x_N`` with
    gradient through all N blocks, loss ``-Q(x_N)/alpha - sum_n log|det|``); it is the paper's
    point of comparison (Sec. 4.3), not part of SWFP.
    """
    import torch as th

    from sb3_swfp import SWFP
    from sb3_swfp.common.log_prob import standard_normal_log_prob

    model = SWFP(
        "FlowPolicy", "Pendulum-v1", n_blocks=n_blocks, learning_starts=0, batch_size=batch_size, device=device, seed=0, **swfp_kwargs
    )
    model.learn(batch_size + 1)  # a replay buffer to sample states from
    observations = model.replay_buffer.sample(batch_size).observations
    ent_coef = model._current_ent_coef()
    actor = model.actor

    def one_block() -> None:
        # SWFP's actor step alone: train() would add a critic step and the temperature's to what is measured
        model._actor_update(observations, ent_coef)

    def whole_chain() -> None:
        features = actor.extract_features(observations, actor.features_extractor)
        x0 = th.randn(batch_size, actor.action_dim, device=model.device)
        walk = actor.walk(features, x0, log_prob=standard_normal_log_prob(x0))
        q = th.cat(model.critic(observations, actor.squash(walk.x)), dim=1).min(dim=1).values
        loss = (-q / ent_coef + walk.log_prob - actor.squash.log_abs_det(walk.x)).mean()
        actor.optimizer.zero_grad()
        loss.backward()
        actor.optimizer.step()

    result = {}
    for name, update in (("one_block", one_block), ("whole_chain", whole_chain)):
        for _ in range(3):
            update()  # warm-up
        times = []
        for _ in range(repeats):
            if model.device.type == "cuda":
                th.cuda.synchronize(model.device)  # the warm-up's (or the last call's) queued kernels are not this call's
            t0 = time.perf_counter()
            update()
            if model.device.type == "cuda":
                th.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        result[f"{name}_ms"] = 1e3 * float(np.median(times))
        result[f"{name}_peak_mib"] = _peak_memory_mib(update, model.device)
        result[f"{name}_saved_mib"] = _saved_for_backward_mib(update)
    return result


def _saved_for_backward_mib(update) -> float:
    """MiB of the activations autograd keeps for the backward pass of one call: each storage counted once,
    parameters (which are saved by reference) left out."""
    import torch as th

    storages: dict[int, int] = {}

    def pack(tensor):
        if not (tensor.is_leaf and tensor.requires_grad):
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with th.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        update()
    return sum(storages.values()) / 2**20


def _peak_memory_mib(update, device) -> float:
    """Peak memory of one call: CUDA ``max_memory_allocated``, or on CPU the running sum of the profiler's allocations."""
    import torch as th

    if device.type == "cuda":
        th.cuda.reset_peak_memory_stats(device)
        base = th.cuda.memory_allocated(device)
        update()
        return (th.cuda.max_memory_allocated(device) - base) / 2**20
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        update()
    # Each event's own allocations (positive) and frees (negative), in time order; the running sum's
    # maximum is the peak above what was allocated before the call
    events = sorted((e for e in prof.events() if e.self_cpu_memory_usage != 0), key=lambda e: e.time_range.start)
    running = peak = 0
    for event in events:
        running += event.self_cpu_memory_usage
        peak = max(peak, running)
    return peak / 2**20
