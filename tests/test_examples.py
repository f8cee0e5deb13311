"""The example scripts and the zoo files they mirror agree (settings kept in two places must not drift)."""

import argparse
import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_offline_to_online_settings_are_the_zoo_entry():
    example = load_example("offline_to_online")
    entry = yaml.safe_load((ROOT / "zoo_hyperparams" / "swfp_o2o.yml").read_text())[example.ENV_ID]
    assert {key: entry[key] for key in example.FINETUNE_KWARGS} == example.FINETUNE_KWARGS
    ((_, bc_kwargs),) = entry["callback"][0].items()
    assert {key: bc_kwargs[key] for key in example.BC_KWARGS} == example.BC_KWARGS
    assert "demo_ratio=0.25" in entry["replay_buffer_kwargs"]


@pytest.mark.parametrize("text, message", [('{"w2_coef": 1.0', "not valid JSON"), ("[1, 2]", "expected a JSON object")])
def test_offline_to_online_rejects_swfp_kwargs_that_are_not_a_json_object(text, message):
    example = load_example("offline_to_online")
    assert example.json_object('{"w2_coef": 1.0}') == {"w2_coef": 1.0}
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        example.json_object(text)
