"""The import paths before sb3_swfp.demos: older code, saved models and YAML files that name them keep working."""

import base64
import json
import zipfile

import gymnasium as gym
import pytest
from stable_baselines3.common.base_class import BaseAlgorithm

import sb3_swfp.common.buffers
import sb3_swfp.common.demos
import sb3_swfp.demos
from sb3_swfp import SWFP, Demonstrations, DemoReplayBuffer, collect_demonstrations
from sb3_swfp.experts import PendulumSwingUpExpert


@pytest.mark.parametrize("old", [sb3_swfp.common.demos, sb3_swfp.common.buffers], ids=lambda module: module.__name__)
def test_old_modules_re_export_the_same_objects(old):
    assert old.__all__
    for name in old.__all__:
        assert getattr(old, name) is getattr(sb3_swfp.demos, name), name


def test_the_removed_sample_batch_says_what_replaces_it():
    with pytest.raises(ImportError, match=r"DemonstrationBuffer\.from_demonstrations\(.*\)\.sample\(batch_size, env=.*rng="):
        from sb3_swfp.common.demos import sample_batch  # noqa: F401


def test_a_model_saved_with_the_old_class_paths_loads(tmp_path, monkeypatch):
    """A model saved before sb3_swfp.demos pickled its buffer class as sb3_swfp.common.buffers.DemoReplayBuffer
    (and a Demonstrations object in replay_buffer_kwargs as sb3_swfp.common.demos.Demonstrations)."""
    demos = collect_demonstrations("Pendulum-v1", PendulumSwingUpExpert(seed=0), n_steps=30, seed=0)
    model = SWFP(
        "FlowPolicy", "Pendulum-v1", buffer_size=100, n_blocks=2, policy_kwargs=dict(net_arch=[16]),
        replay_buffer_class=DemoReplayBuffer, replay_buffer_kwargs=dict(demonstrations=demos, demo_ratio=0.5),
    )  # fmt: skip
    with monkeypatch.context() as patch:  # what the classes were called when such a model was saved
        patch.setattr(DemoReplayBuffer, "__module__", "sb3_swfp.common.buffers")
        patch.setattr(Demonstrations, "__module__", "sb3_swfp.common.demos")
        # SB3's save, as SWFP's was then (it now keeps a Demonstrations object out of the file)
        BaseAlgorithm.save(model, tmp_path / "model")
    with zipfile.ZipFile(tmp_path / "model.zip") as archive:
        data = json.loads(archive.read("data"))
    buffer_class = base64.b64decode(data["replay_buffer_class"][":serialized:"])
    buffer_kwargs = base64.b64decode(data["replay_buffer_kwargs"][":serialized:"])
    assert b"sb3_swfp.common.buffers" in buffer_class and b"sb3_swfp.demos" not in buffer_class
    assert b"sb3_swfp.common.demos" in buffer_kwargs and b"sb3_swfp.demos" not in buffer_kwargs

    loaded = SWFP.load(tmp_path / "model", env=gym.make("Pendulum-v1"))
    assert loaded.replay_buffer_class is DemoReplayBuffer and isinstance(loaded.replay_buffer, DemoReplayBuffer)
    assert loaded.replay_buffer.n_demonstrations == len(demos)
    loaded.learn(10)
