"""The same seeds give the same numbers: predictions, losses and weights after a short run, per option set.

The reference numbers in ``tests/data/fixed_seed_numbers.npz`` were first recorded before the flow's
maths and its fast path were split, with the code of that time; a refactoring that changes no number
keeps them bit for bit.  Float results depend on the CPU's kernels, which torch and MKL choose by the
processor's model and instruction sets, not by torch's CPU capability alone (two AVX-512 machines gave
numbers apart by 1e-8), so the exact check runs only on the kind of machine the numbers were recorded
on (same torch version, CPU capability, model name and flags); elsewhere the test is skipped.  Each
kind has its file (``fixed_seed_numbers.npz``, the first; ``fixed_seed_numbers_<flags digest>.npz``).  On a
new kind of machine, record its numbers with the code of a commit whose check passed on a recorded kind,
and only then change code.  Record again (also after a change that is meant to change numbers) with::

    PYTHONPATH=. python tests/test_fixed_seed_numbers.py --record
"""

from __future__ import annotations

import hashlib
import sys
from collections import defaultdict
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.envs import SimpleMultiObsEnv
from stable_baselines3.common.logger import Logger

from benchmarks import machine
from sb3_swfp import SWFP, Demonstrations, DemoReplayBuffer

DATA = Path(__file__).resolve().parent / "data"
NUMBERS = DATA / "fixed_seed_numbers.npz"
SAVED_MODEL = DATA / "swfp_pendulum_0.1.0.zip"

# squash="clip": the rule the numbers were recorded with, before the class default became the soft clip
BASE = dict(learning_starts=50, batch_size=32, buffer_size=2_000, n_blocks=3, policy_kwargs=dict(net_arch=[16, 16]), squash="clip")

OPTION_SETS = {
    "clip": {},
    "soft_clip": dict(squash="soft_clip"),
    # squash=None: the class default, whose numbers are those recorded for its value
    "default": dict(squash=None),
    "tanh": dict(squash="tanh"),
    "hutchinson": dict(log_prob_method="hutchinson", squash="soft_clip"),
    "per_batch": dict(block_sampling="per_batch"),
    "independent": dict(policy_kwargs=dict(net_arch=[16, 16], share_velocity=False), squash="soft_clip"),
    "independent_per_batch": dict(policy_kwargs=dict(net_arch=[16], share_velocity=False), block_sampling="per_batch"),
    "euler_2": dict(ode_solver="euler", n_substeps=2),
    "midpoint_2": dict(n_substeps=2, squash="tanh"),
    "q_normalization": dict(q_normalization=True, critic_entropy=False, w2_prev_coef=0.0, ent_coef=0.1),
    "layer_norm_tanh": dict(
        policy_kwargs=dict(net_arch=dict(pi=[16, 16], qf=[32]), layer_norm=True, activation_fn=th.nn.Tanh, time_embedding="linear")
    ),
    "misc": dict(q_agg="mean", n_steps=3, actor_batch_size=48, actor_learning_rate=1e-3, n_blocks=4),
    "bc_coef": dict(bc_coef=0.5, q_normalization=True, replay_buffer_class=DemoReplayBuffer),
    # Two-dimensional actions: the exact log-determinant through slogdet, Hutchinson with several probes
    "toy": dict(env="SWFPToyBandit-v0", squash="soft_clip"),
    "toy_hutchinson": dict(env="SWFPToyBandit-v0", log_prob_method="hutchinson", ode_solver="euler"),
    "toy_independent": dict(env="SWFPToyBandit-v0", policy_kwargs=dict(net_arch=[16, 16], share_velocity=False, activation_fn=th.nn.SiLU)),
    # Dict observations (a CNN features extractor) and four-dimensional actions
    "multi_input": dict(env="multi_input", policy="MultiInputPolicy", squash="tanh"),
}


class RecordingLogger(Logger):
    """A logger that keeps every recorded value, in order."""

    def __init__(self):
        super().__init__(folder=None, output_formats=[])
        self.values: dict[str, list[float]] = defaultdict(list)

    def record(self, key, value, exclude=None):
        self.values[key].append(value)
        super().record(key, value, exclude)


def _demonstrations() -> Demonstrations:
    rng = np.random.default_rng(0)
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=0)
    rows = defaultdict(list)
    for _ in range(300):
        action = np.clip(-2.0 * obs[2:3] + rng.normal(0, 0.3, 1), -2, 2).astype(np.float32)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        for key, value in dict(observations=obs, actions=action, rewards=reward, next_observations=next_obs, terminations=terminated, truncations=truncated).items():
            rows[key].append(value)
        obs = env.reset()[0] if terminated or truncated else next_obs
    return Demonstrations(**{key: np.array(value) for key, value in rows.items()}, metadata=dict(env_id="Pendulum-v1"))


def _make_env(env_id: str) -> gym.Env:
    if env_id == "multi_input":
        return SimpleMultiObsEnv(random_start=False, discrete_actions=False)
    return gym.make(env_id)


def _observations(env_id: str = "Pendulum-v1", n: int = 5):
    env = _make_env(env_id)
    observations = [env.reset(seed=i)[0] for i in range(n)]
    if isinstance(observations[0], dict):
        return {key: np.stack([obs[key] for obs in observations]) for key in observations[0]}
    return np.stack(observations)


def numbers(name: str) -> dict[str, np.ndarray]:
    """Everything a run with option set ``name`` produces, at fixed seeds."""
    th.set_num_threads(1)
    kwargs = {key: value for key, value in {**BASE, **OPTION_SETS[name]}.items() if value is not None}
    env_id, policy = kwargs.pop("env", "Pendulum-v1"), kwargs.pop("policy", "FlowPolicy")
    if kwargs.get("replay_buffer_class") is DemoReplayBuffer:
        kwargs["replay_buffer_kwargs"] = dict(demonstrations=_demonstrations(), demo_ratio=0.25)
    model = SWFP(policy, _make_env(env_id), seed=0, device="cpu", **kwargs)
    logger = RecordingLogger()
    model.set_logger(logger)
    model.learn(150)
    obs = _observations(env_id)
    # Every logged loss term of every update (float32 values, logged as Python floats)
    skipped = ("train/learning_rate", "train/actor_learning_rate", "train/n_updates")
    out = {f"log/{key}": np.asarray(values, dtype=np.float32) for key, values in logger.values.items() if key.startswith("train/") and key not in skipped}
    out["predict/deterministic"] = model.predict(obs, deterministic=True)[0]
    single = {key: value[:1] for key, value in obs.items()} if isinstance(obs, dict) else obs[:1]
    out["predict/single"] = model.predict(single, deterministic=True)[0]  # batch 1: other kernels
    th.manual_seed(1)
    out["predict/stochastic"] = model.predict(obs, deterministic=False)[0]
    obs_tensor = model.policy.obs_to_tensor(obs)[0]
    actions_dim = model.action_space.shape[0]
    th.manual_seed(2)
    actions, log_prob = model.actor.action_log_prob(obs_tensor)
    out["actor/actions"], out["actor/log_prob"] = actions.detach().numpy(), log_prob.detach().numpy()
    th.manual_seed(3)
    out["actor/flow_matching_loss"] = model.actor.flow_matching_loss(obs_tensor, th.linspace(-1, 1, 5 * actions_dim).reshape(5, actions_dim)).detach().numpy()
    for part in ("actor", "actor_target", "critic", "critic_target"):
        out[f"params/{part}"] = th.cat([p.detach().reshape(-1) for p in getattr(model, part).parameters()]).numpy()
    if model.log_ent_coef is not None:
        out["params/log_ent_coef"] = model.log_ent_coef.detach().numpy()
    return out


def _digest(array: np.ndarray) -> str:
    return f"{array.dtype} {array.shape} " + hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _stored(key: str, array: np.ndarray) -> np.ndarray:
    """Arrays as they are; the weights as their digest (the file stays small)."""
    return np.array(_digest(array)) if key.startswith("params/") else array


def platform() -> str:
    """The torch version and what the CPU's kernels are chosen by: its capability, model name and flags."""
    m = machine()
    return f"torch {m['torch']}, cpu {m['cpu_capability']}, {m['cpu']}, flags {m['cpu_flags']}"


def _records() -> dict[str, Path]:
    """Platform -> the file of the numbers recorded on it (``fixed_seed_numbers.npz`` and one file per other kind)."""
    return {str(np.load(path)["platform"]): path for path in sorted(DATA.glob("fixed_seed_numbers*.npz"))}


def _recorded() -> np.lib.npyio.NpzFile:
    records = _records()
    if platform() not in records:
        pytest.skip(f"numbers recorded on {'; '.join(records)}, this is {platform()}: bit identity cannot be checked here")
    return np.load(records[platform()])


#: Option sets whose numbers are recorded under another set's name
RECORDED_AS = {"default": "soft_clip"}


@pytest.mark.parametrize("name", list(OPTION_SETS))
def test_same_seeds_give_the_recorded_numbers(name):
    recorded = _recorded()
    got = numbers(name)
    prefix = RECORDED_AS.get(name, name)
    keys = sorted(key[len(prefix) + 1 :] for key in recorded.files if key.startswith(f"{prefix}/"))
    assert keys and sorted(got) == keys
    for key in keys:
        expected = recorded[f"{prefix}/{key}"]
        if expected.dtype.kind == "U":  # a large array, kept as its digest
            assert _digest(got[key]) == str(expected), f"{key} differs"
            continue
        assert got[key].shape == expected.shape, key
        assert np.array_equal(got[key], expected), f"{key}: max difference {np.abs(got[key] - expected).max()}"


def test_a_model_saved_by_version_0_1_0_loads_and_predicts_as_saved():
    recorded = np.load(NUMBERS)
    model = SWFP.load(SAVED_MODEL, device="cpu")
    actions = model.predict(_observations(), deterministic=True)[0]
    np.testing.assert_allclose(actions, recorded["saved_model/predict"], atol=1e-6)
    model.set_env(gym.make("Pendulum-v1"))
    model.learn(60)  # and trains on


def record() -> None:
    th.set_num_threads(1)
    out = {"platform": np.array(platform())}
    for name in OPTION_SETS.keys() - RECORDED_AS.keys():
        out.update({f"{name}/{key}": _stored(key, value) for key, value in numbers(name).items()})
        print(name, "done", flush=True)
    if not SAVED_MODEL.exists():
        model = SWFP("FlowPolicy", "Pendulum-v1", seed=0, device="cpu", **{**BASE, "policy_kwargs": dict(net_arch=[8])})
        model.learn(80)
        model.save(SAVED_MODEL)
    out["saved_model/predict"] = SWFP.load(SAVED_MODEL, device="cpu").predict(_observations(), deterministic=True)[0]
    # The first kind's file keeps its name; another kind's numbers go into a file of their own, named by its flags
    path = _records().get(platform(), NUMBERS if not NUMBERS.exists() else DATA / f"fixed_seed_numbers_{machine()['cpu_flags']}.npz")
    np.savez_compressed(path, **out)
    print(f"wrote {path}")


if __name__ == "__main__":
    if "--record" in sys.argv:
        record()
    else:
        print(__doc__)
