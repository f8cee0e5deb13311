"""rl-zoo3 integration (sb3_swfp.zoo): SWFP used from the zoo exactly as SAC is.

Every run is tiny (a few hundred Pendulum steps, 32-unit networks) and writes under tmp_path.
The zoo runs in-process through ``zoo.main``, except the two optimisation workers, which are
separate processes sharing one Optuna journal file as users run them.
"""

import argparse
import contextlib
import importlib
import inspect
import io
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.callbacks import EvalCallback

from sb3_swfp import SWFP, DemoReplayBuffer
from sb3_swfp.common.callbacks import EvalFromStartCallback
from sb3_swfp.hyperparams import read_entries

# The zoo extra (rl-zoo3, optuna, pyyaml); without it this file is skipped
optuna = pytest.importorskip("optuna")
yaml = pytest.importorskip("yaml")
zoo = pytest.importorskip("sb3_swfp.zoo")
exp_manager = pytest.importorskip("rl_zoo3.exp_manager")
ExperimentManager = exp_manager.ExperimentManager
HYPERPARAMS_CONVERTER = pytest.importorskip("rl_zoo3.hyperparams_opt").HYPERPARAMS_CONVERTER
HYPERPARAMS_SAMPLER = pytest.importorskip("rl_zoo3.hyperparams_opt").HYPERPARAMS_SAMPLER
ALGOS = pytest.importorskip("rl_zoo3.utils").ALGOS

ROOT = Path(__file__).resolve().parent.parent
HYPERPARAMS = ROOT / "zoo_hyperparams"
ENV_ID = "Pendulum-v1"
# Small and fast; appended to every Pendulum run
TINY_PARAMS = ["-params", "learning_starts:50", "batch_size:32", "buffer_size:1000", "n_blocks:2", "policy_kwargs:dict(net_arch=[32, 32])"]
TRAIN_STEPS = 400  # two Pendulum episodes
EVAL_FREQ = 200


def run_zoo(*args: str) -> None:
    zoo.main([str(arg) for arg in args])


def run_dir(log_folder: Path, run_id: int = 1) -> Path:
    return log_folder / "swfp" / f"{ENV_ID}_{run_id}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """Log folder holding one tiny SWFP run on Pendulum, with two evaluations."""
    log_folder = tmp_path_factory.mktemp("zoo") / "logs"
    run_zoo(
        "train", "--algo", "swfp", "--env", ENV_ID, "-f", log_folder, "-n", TRAIN_STEPS, "--seed", 0,
        "--eval-freq", EVAL_FREQ, "--eval-episodes", 2, "--num-threads", 1, *TINY_PARAMS,
    )  # fmt: skip
    return log_folder


def test_register_fills_rl_zoo3_tables():
    zoo.register()
    assert ALGOS["swfp"] is SWFP
    assert HYPERPARAMS_SAMPLER["swfp"] is zoo.sample_swfp_params
    assert HYPERPARAMS_CONVERTER["swfp"] is zoo.convert_swfp_params
    # rl-zoo3 evals YAML class strings in exp_manager's namespace: dotted names of the package resolve there
    assert eval("sb3_swfp.SWFP", vars(exp_manager)) is SWFP
    # the demonstration buffer by its path, and by the one older YAML files name
    assert eval("sb3_swfp.demos.DemoReplayBuffer", vars(exp_manager)) is DemoReplayBuffer
    assert eval("sb3_swfp.common.buffers.DemoReplayBuffer", vars(exp_manager)) is DemoReplayBuffer


def test_default_config_picks_our_files_only_where_they_have_the_entry(tmp_path, monkeypatch):
    monkeypatch.delenv(zoo.HYPERPARAMS_ENV_VAR, raising=False)
    assert zoo.hyperparams_folder() == HYPERPARAMS
    assert zoo.default_config("swfp", "AnyEnv-v0") == str(HYPERPARAMS / "swfp.yml")
    assert zoo.default_config("sac", "Hopper-v5") == str(HYPERPARAMS / "sac.yml")
    assert zoo.default_config("td3", "PointMaze_UMaze-v3") == str(HYPERPARAMS / "td3.yml")
    # rl-zoo3 has its own entry: leave it its own file
    assert zoo.default_config("sac", ENV_ID) is None
    assert zoo.default_config("ppo", ENV_ID) is None

    (tmp_path / "swfp.yml").write_text("default:\n  policy: FlowPolicy\n")
    monkeypatch.setenv(zoo.HYPERPARAMS_ENV_VAR, str(tmp_path))
    assert zoo.default_config("swfp", ENV_ID) == str(tmp_path / "swfp.yml")
    # No sac.yml in that folder: rl-zoo3's
    assert zoo.default_config("sac", "Hopper-v5") is None
    (tmp_path / "swfp.yml").unlink()
    with pytest.raises(FileNotFoundError, match=f"in \\$SB3_SWFP_HYPERPARAMS's folder '{tmp_path}', which replaces the other places: pass -conf"):
        zoo.default_config("swfp", ENV_ID)
    monkeypatch.setenv(zoo.HYPERPARAMS_ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(NotADirectoryError):
        zoo.hyperparams_folder()
    monkeypatch.setenv(zoo.HYPERPARAMS_ENV_VAR, "")  # set but empty: unset, not the working directory
    assert zoo.hyperparams_folder() == HYPERPARAMS


def test_read_entry_names_a_missing_file_as_missing(tmp_path):
    from sb3_swfp.hyperparams import read_entry

    with pytest.raises(FileNotFoundError, match=r"no hyperparameter file at '.*swfpp.yml'"):
        read_entry(tmp_path / "swfpp.yml", ENV_ID)
    (tmp_path / "swfp.yml").write_text("Other-v0:\n  policy: FlowPolicy\n")
    with pytest.raises(KeyError, match="no entry for 'Pendulum-v1' \\(nor a default one\\)"):
        read_entry(tmp_path / "swfp.yml", ENV_ID)


def yaml_entries() -> list:
    entries = []
    for algo in ("swfp", "sac", "td3"):
        with open(HYPERPARAMS / f"{algo}.yml") as file:
            entries += [pytest.param(algo, env_id, id=f"{algo}-{env_id}") for env_id in yaml.safe_load(file)]
    return entries


@pytest.mark.parametrize(("algo", "env_id"), yaml_entries())
def test_yaml_entry_builds_the_model_it_describes(algo, env_id, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo writes MUJOCO_LOG.TXT in the working directory
    if env_id == "default":
        env_id = "MountainCarContinuous-v0"  # an env with no entry of its own
    if env_id.startswith("PointMaze"):
        gym.register_envs(pytest.importorskip("gymnasium_robotics"))
    if env_id.endswith("-v5"):
        pytest.importorskip("mujoco")
    config = HYPERPARAMS / f"{algo}.yml"
    zoo.register()
    manager = ExperimentManager(
        argparse.Namespace(), algo, env_id, str(tmp_path), eval_freq=-1, hyperparams={"buffer_size": 1000}, config=str(config)
    )
    with contextlib.redirect_stdout(io.StringIO()):
        entry, _ = manager.read_hyperparameters()
        model, _ = manager.setup_experiment()
    model.env.close()

    algo_class = ALGOS[algo]
    assert type(model) is algo_class
    assert type(model.policy) is algo_class.policy_aliases[entry["policy"]]
    for key, value in entry.items():
        if key == "learning_rate":
            assert model.lr_schedule(1.0) == pytest.approx(value)
        elif isinstance(value, (int, float)) and key not in ("n_timesteps", "buffer_size", "train_freq", "noise_std"):
            assert getattr(model, key) == value, key
    for key, value in eval(entry.get("policy_kwargs", "{}")).items():
        assert model.policy_kwargs[key] == value, key
    if "replay_buffer_class" in entry:
        assert type(model.replay_buffer).__name__ == entry["replay_buffer_class"].split(".")[-1]


def test_trained_model_saved_with_the_yaml_entry(trained):
    run = run_dir(trained)
    model = SWFP.load(run / f"{ENV_ID}.zip")
    assert model.n_blocks == 2  # from -params
    with open(HYPERPARAMS / "swfp.yml") as file:
        entry = yaml.safe_load(file)[ENV_ID]
    # from the YAML, a value that is not SWFP's default
    assert model.lr_schedule(1.0) == entry["learning_rate"] != inspect.signature(SWFP).parameters["learning_rate"].default
    args = yaml.load((run / ENV_ID / "args.yml").read_text(), Loader=yaml.UnsafeLoader)
    assert (Path.cwd() / args["conf_file"]).resolve() == HYPERPARAMS / "swfp.yml"  # relative to the cwd when under it
    # rl-zoo3's first evaluation is after --eval-freq steps; ours also evaluates the start
    assert np.load(run / "evaluations.npz")["timesteps"].tolist() == [0, EVAL_FREQ, TRAIN_STEPS]
    assert exp_manager.EvalCallback is EvalCallback  # restored for whatever runs next in the process


@pytest.mark.parametrize("algo", ["swfp", "sac"])
def test_only_swfp_runs_evaluate_the_start(algo, tmp_path, monkeypatch):
    evaluators = []
    monkeypatch.setattr(exp_manager.ExperimentManager, "learn", lambda self, model: evaluators.extend(self.callbacks))
    run_zoo("train", "--algo", algo, "--env", ENV_ID, "-f", tmp_path, "-n", 100, "--eval-freq", 50, "--num-threads", 1)
    (evaluator,) = [callback for callback in evaluators if isinstance(callback, EvalCallback)]
    assert isinstance(evaluator, EvalFromStartCallback) == (algo == "swfp")
    assert exp_manager.EvalCallback is EvalCallback


def test_enjoy_loads_with_a_one_transition_buffer(trained, monkeypatch, capsys):
    loaded = []
    load = zoo.ReplayOnlySWFP.load.__func__

    def spy(cls, *args, **kwargs):
        loaded.append(load(cls, *args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(zoo.ReplayOnlySWFP, "load", classmethod(spy))
    run_zoo("enjoy", "--algo", "swfp", "--env", ENV_ID, "-f", trained, "--no-render", "-n", 20, "--num-threads", 1)
    assert "Loading" in capsys.readouterr().out
    (model,) = loaded
    assert isinstance(model, SWFP)
    assert model.replay_buffer.buffer_size == 1
    # Training again gets the real class back
    assert ALGOS["swfp"] is SWFP


def test_replay_only_load_keeps_the_policy(trained):
    path = run_dir(trained) / f"{ENV_ID}.zip"
    model, replay = SWFP.load(path), zoo.ReplayOnlySWFP.load(path)
    assert model.replay_buffer.buffer_size == 1000
    assert replay.replay_buffer.buffer_size == 1
    obs = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, -2.0]], dtype=np.float32)
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], replay.predict(obs, deterministic=True)[0])


def test_continue_training_from_a_zip(trained, tmp_path, capsys):
    model_path = run_dir(trained) / f"{ENV_ID}.zip"
    run_zoo(
        "train", "--algo", "swfp", "--env", ENV_ID, "-f", tmp_path, "-i", model_path, "-n", 60,
        "--eval-freq", -1, "--num-threads", 1, *TINY_PARAMS,
    )  # fmt: skip
    assert "Loading pretrained agent" in capsys.readouterr().out
    assert SWFP.load(run_dir(tmp_path) / f"{ENV_ID}.zip").num_timesteps == 60


def test_continuing_keeps_the_saved_flow(trained, tmp_path, capsys):
    """rl-zoo3 keeps a continued agent's policy (it drops policy_kwargs); SB3's load would apply n_blocks and the rest."""
    model_path = run_dir(trained) / f"{ENV_ID}.zip"
    run_zoo(
        "train", "--algo", "swfp", "--env", ENV_ID, "-f", tmp_path, "-i", model_path, "-n", 60, "--eval-freq", -1, "--num-threads", 1,
        "-params", "learning_starts:50", "batch_size:32", "n_blocks:4", "ode_solver:'euler'",
    )  # fmt: skip
    continued = SWFP.load(run_dir(tmp_path) / f"{ENV_ID}.zip")
    assert continued.n_blocks == 2 and continued.policy_kwargs["n_blocks"] == 2 and continued.ode_solver == "midpoint"
    assert "Continuing with the saved flow: n_blocks=2 (the entry's: 4), ode_solver='midpoint' (the entry's: 'euler')" in capsys.readouterr().out
    assert zoo.ALGOS["swfp"] is SWFP  # restored


def test_all_plots_and_plot_train_read_swfp_logs(trained, tmp_path, monkeypatch):
    pytest.importorskip("seaborn")
    pytest.importorskip("pandas")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    shown = []
    monkeypatch.setattr(plt, "show", lambda *args, **kwargs: shown.append(plt.gcf()))
    output = tmp_path / "results"
    run_zoo("all_plots", "-a", "swfp", "-e", ENV_ID, "-f", trained, "-l", "tiny", "--no-display", "-o", output)
    with open(f"{output}.pkl", "rb") as file:
        results = pickle.load(file)
    np.testing.assert_array_equal(results[ENV_ID]["SWFP-tiny"]["timesteps"], [0, EVAL_FREQ, TRAIN_STEPS])

    run_zoo("plot_train", "-a", "swfp", "-e", ENV_ID, "-f", trained, "-w", 1)
    (figure,) = shown
    assert len(figure.axes[0].lines) >= 1
    plt.close("all")


def test_record_video(trained, tmp_path):
    pytest.importorskip("pygame")
    pytest.importorskip("moviepy")
    videos = tmp_path / "videos"
    run_zoo("record_video", "--algo", "swfp", "--env", ENV_ID, "-f", trained, "-n", 10, "-o", videos)
    assert list(videos.glob("*.mp4"))
    assert ALGOS["swfp"] is SWFP


def test_sampler_and_converter_agree():
    """A ``--trial-id`` reload must rebuild exactly the hyperparameters the trial ran with."""
    params = {
        "one_minus_gamma": 0.01, "batch_size_pow": 6, "learning_rate": 3e-4, "actor_learning_rate": 1e-5,
        "train_freq": 4, "tau": 0.005, "actor_tau": 0.01, "policy_delay": 2, "net_arch": "medium",
        "n_blocks": 5, "jko_step_size": 0.1, "w2_coef": 0.4, "ent_coef": 0.05, "learn_ent_coef": True,
        "q_normalization": True,
    }  # fmt: skip
    sampled = zoo.sample_swfp_params(optuna.trial.FixedTrial(params), 1, 1, {"using_her_replay_buffer": False})
    converted = zoo.convert_swfp_params(params)
    assert sampled == converted
    assert params["learn_ent_coef"] is True  # not modified
    assert converted["ent_coef"] == "auto_0.05"
    assert converted["gamma"] == pytest.approx(0.99)
    assert converted["batch_size"] == 64
    assert converted["gradient_steps"] == 4
    assert converted["policy_kwargs"] == {"net_arch": [256, 256]}
    assert converted["q_normalization"] is True
    assert zoo.convert_swfp_params({**params, "learn_ent_coef": False})["ent_coef"] == 0.05
    SWFP("FlowPolicy", ENV_ID, **converted)  # every key is an SWFP argument

    her = {**params, "n_sampled_goal": 2, "goal_selection_strategy": "final"}
    sampled = zoo.sample_swfp_params(optuna.trial.FixedTrial(her), 1, 1, {"using_her_replay_buffer": True, "her_kwargs": {}})
    assert sampled == zoo.convert_swfp_params(her)
    assert sampled["replay_buffer_kwargs"] == {"n_sampled_goal": 2, "goal_selection_strategy": "final"}


def test_two_optimisation_workers_share_a_study_then_reload_a_trial(tmp_path):
    storage, study_name = tmp_path / "optuna" / "swfp.log", "swfp-pendulum"
    worker = [
        sys.executable, "-m", "sb3_swfp.zoo", "train", "--algo", "swfp", "--env", ENV_ID, "-f", tmp_path / "logs",
        "-optimize", "--n-trials", 1, "--n-evaluations", 1, "-n", 160, "--eval-episodes", 1, "--num-threads", 1,
        "--storage", storage, "--study-name", study_name, "--no-optim-plots",
        "-params", "learning_starts:150", "buffer_size:1000",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [
        subprocess.Popen([str(arg) for arg in [*worker, "--seed", seed]], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for seed in (1, 2)
    ]
    outputs = [process.communicate(timeout=120)[0].decode() for process in workers]
    for process, output in zip(workers, outputs):
        assert process.returncode == 0, output[-3000:]

    study = optuna.load_study(
        study_name=study_name, storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(storage)))
    )
    assert [trial.state for trial in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2

    # Reload trial 1 (rl-zoo3 2.9 ignores --trial-id 0: it tests the id for truth), into an entry with critics of its
    # own: the trial's net_arch goes into the entry's policy_kwargs instead of replacing them
    import yaml

    entry = {**read_entries(HYPERPARAMS / "swfp.yml")[ENV_ID], "policy_kwargs": "dict(n_critics=3, net_arch=[8])"}
    (tmp_path / "entry.yml").write_text(yaml.safe_dump({ENV_ID: entry}))
    reload_folder = tmp_path / "reload"
    run_zoo(
        "train", "--algo", "swfp", "--env", ENV_ID, "-f", reload_folder, "-n", 60, "--eval-freq", -1, "--num-threads", 1,
        "-conf", tmp_path / "entry.yml", "--storage", storage, "--study-name", study_name, "--trial-id", 1,
        "-params", "learning_starts:50", "buffer_size:1000",
    )  # fmt: skip
    expected = zoo.convert_swfp_params(study.trials[1].params)
    model = SWFP.load(run_dir(reload_folder) / f"{ENV_ID}.zip")
    for key in ("n_blocks", "jko_step_size", "w2_coef", "policy_delay", "actor_tau", "tau", "batch_size", "gamma"):
        assert getattr(model, key) == expected[key], key
    assert model.policy_kwargs["net_arch"] == expected["policy_kwargs"]["net_arch"] != [8]
    assert model.policy_kwargs["n_critics"] == len(model.critic.q_networks) == 3


def test_bad_algo_exits_as_rl_zoo3_does(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_zoo("train", "--algo", "not-an-algo", "--env", ENV_ID, "-f", tmp_path)
    assert exit_info.value.code == 2
    assert "invalid choice: 'not-an-algo'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        run_zoo("not-a-command")
    assert exit_info.value.code == 2
    # Python 3.12.8+ prints the choices without quotes
    assert re.search(r"invalid choice: 'not-a-command' \(choose from '?train'?, '?enjoy'?", capsys.readouterr().err)


def test_missing_yaml_entry_raises_rl_zoo3_error(tmp_path):
    config = tmp_path / "one_entry.yml"
    config.write_text(yaml.safe_dump({"Pendulum-v1": {"policy": "FlowPolicy"}}))
    with pytest.raises(ValueError, match="Hyperparameters not found for swfp-MountainCarContinuous-v0"):
        run_zoo("train", "--algo", "swfp", "--env", "MountainCarContinuous-v0", "-f", tmp_path, "-conf", config)


def test_o2o_default_entry_serves_an_env_listed_nowhere(tmp_path, monkeypatch):
    """A new env fine-tunes with the preset from demos/<env id>.npz, without an entry of its own."""
    pytest.importorskip("sb3_swfp.common.callbacks")
    env_id = "MountainCarContinuous-v0"
    entries = yaml.safe_load((HYPERPARAMS / "swfp_o2o.yml").read_text())
    assert env_id not in entries
    default = entries["default"]
    ((_, bc_kwargs),) = default["callback"][0].items()
    bc_kwargs["gradient_steps"] = 5  # the default entry, its BC cut down
    config = tmp_path / "o2o.yml"
    config.write_text(yaml.safe_dump({"default": default}))
    monkeypatch.chdir(tmp_path)
    args = ("train", "--algo", "swfp", "--env", env_id, "-f", "logs", "-conf", config, "-n", 30, "--eval-freq", -1,
            "--num-threads", 1, "-params", "batch_size:16", "buffer_size:500", "policy_kwargs:dict(net_arch=[16])")  # fmt: skip
    with pytest.raises(FileNotFoundError, match=r"demos/MountainCarContinuous-v0\.npz"):
        run_zoo(*args)
    from sb3_swfp.demos import collect_demonstrations

    env = gym.make(env_id)
    collect_demonstrations(env, lambda obs: env.action_space.sample(), n_steps=50, seed=0).save("demos/MountainCarContinuous-v0.npz")
    runs = []
    learn = ExperimentManager.learn
    monkeypatch.setattr(ExperimentManager, "learn", lambda self, model: (runs.append(model), learn(self, model)))
    run_zoo(*args)
    (model,) = runs
    assert model.num_timesteps == 30 and model.replay_buffer.n_demonstrations == 50


def write_demonstrations(env_id: str, path: Path) -> None:
    """A few demonstrations for ``env_id``: the toy's mixture, or a scripted expert's episode."""
    from sb3_swfp.demos import collect_demonstrations
    from sb3_swfp.envs import TOY_BANDIT_ID, toy_demonstrations
    from sb3_swfp.experts import make_expert, make_expert_env

    path.parent.mkdir(parents=True, exist_ok=True)
    if env_id == TOY_BANDIT_ID:
        toy_demonstrations(200).save(path)
    else:
        env = make_expert_env(env_id)
        collect_demonstrations(env, make_expert(env, seed=0), n_episodes=1, seed=0).save(path)


@pytest.mark.parametrize("env_id", ["SWFPToyBandit-v0", "PointMaze_UMaze-v3"])
def test_offline_to_online_entry_runs(env_id, tmp_path, monkeypatch):
    """An entry of swfp_o2o.yml, with its BC step count cut down, pretrains, fine-tunes and replays."""
    callbacks = pytest.importorskip("sb3_swfp.common.callbacks")
    buffers = pytest.importorskip("sb3_swfp.demos.buffers")
    gym_packages = []
    if env_id.startswith("PointMaze"):
        pytest.importorskip("gymnasium_robotics")
        gym_packages = ["--gym-packages", "gymnasium_robotics"]

    with open(HYPERPARAMS / "swfp_o2o.yml") as file:
        entry = yaml.safe_load(file)[env_id]
    ((callback_name, callback_kwargs),) = entry["callback"][0].items()
    assert callback_name == f"{callbacks.__name__}.BCPretrainCallback"
    callback_kwargs.update(gradient_steps=5, batch_size=16)
    config = tmp_path / "o2o.yml"
    config.write_text(yaml.safe_dump({env_id: entry}))
    monkeypatch.chdir(tmp_path)  # the entry's demonstration paths are relative
    assert callback_kwargs["demonstrations"] in entry["replay_buffer_kwargs"]  # the same file for BC and the buffer
    demos_path = Path(callback_kwargs["demonstrations"].replace("{env_id}", env_id))
    write_demonstrations(env_id, demos_path)

    runs = []
    learn = ExperimentManager.learn

    def spy(self, model):
        runs.append((model, self.callbacks))
        learn(self, model)

    monkeypatch.setattr(ExperimentManager, "learn", spy)
    run_zoo(
        "train", "--algo", "swfp", "--env", env_id, *gym_packages, "-f", "logs", "-conf", config, "-n", 40,
        "--eval-freq", -1, "--num-threads", 1,
        "-params", "learning_starts:20", "batch_size:16", "buffer_size:500", "policy_kwargs:dict(net_arch=[32])",
    )  # fmt: skip
    ((model, run_callbacks),) = runs
    # DemoReplayBuffer, or its Dict-observation variant
    assert type(model.replay_buffer).__module__ == buffers.__name__
    assert type(model.replay_buffer).__name__.startswith("Demo")
    assert any(isinstance(callback, callbacks.BCPretrainCallback) for callback in run_callbacks)
    assert model.n_bc_updates == 5 and model.num_timesteps == 40  # cloned with the entry's callback, then fine-tuned

    # Replaying needs neither the replay buffer nor the demonstrations; it loads the model just trained
    demos_path.unlink()
    loaded = []
    load = zoo.ReplayOnlySWFP.load.__func__

    def spy_load(cls, path, *args, **kwargs):
        loaded.append(Path(path))
        return load(cls, path, *args, **kwargs)

    monkeypatch.setattr(zoo.ReplayOnlySWFP, "load", classmethod(spy_load))
    run_zoo("enjoy", "--algo", "swfp", "--env", env_id, *gym_packages, "-f", "logs", "--no-render", "-n", 5, "--num-threads", 1)
    assert [path.resolve() for path in loaded] == [(tmp_path / "logs" / "swfp" / f"{env_id}_1" / f"{env_id}.zip").resolve()]


def test_a_diverging_trial_is_pruned_and_the_search_goes_on(tmp_path, monkeypatch):
    """rl-zoo3 prunes a trial whose training raises ValueError (as SAC's NaN trials do) and runs the next one."""

    def sampler(trial, n_actions, n_envs, additional_args):
        # a learning rate this large overflows the critics within a few updates: the loss guard stops trial 0
        return {"learning_rate": 1e30} if trial.number == 0 else {}

    monkeypatch.setitem(HYPERPARAMS_SAMPLER, "swfp", sampler)  # restored after the test
    monkeypatch.setattr(zoo, "sample_swfp_params", sampler)  # what register() puts in the table
    storage = tmp_path / "study.log"
    run_zoo(
        "train", "--algo", "swfp", "--env", ENV_ID, "-f", tmp_path / "logs", "-optimize", "--n-trials", 2,
        "--n-evaluations", 1, "-n", 100, "--eval-episodes", 1, "--num-threads", 1, "--no-optim-plots",
        "--storage", storage, "--study-name", "diverging", "--seed", 0, *TINY_PARAMS,
    )  # fmt: skip
    study = optuna.load_study(
        study_name="diverging", storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(storage)))
    )
    assert [trial.state for trial in study.trials] == [optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.COMPLETE]


def test_a_search_keeps_the_entrys_policy_kwargs_beside_the_sampled_net_arch(tmp_path, monkeypatch):
    """rl-zoo3 replaces the entry's policy_kwargs by the sampler's (net_arch alone): the preset's critics would go."""
    built = []

    class Recorded(SWFP):
        def __init__(self, *args, **kwargs):
            built.append(kwargs.get("policy_kwargs"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(zoo, "SWFP", Recorded)  # what register() puts in ALGOS
    monkeypatch.setitem(ALGOS, "swfp", SWFP)
    monkeypatch.setattr(zoo, "sample_swfp_params", lambda trial, *args: {"policy_kwargs": {"net_arch": [16]}})
    monkeypatch.setitem(HYPERPARAMS_SAMPLER, "swfp", zoo.sample_swfp_params)
    params = [*TINY_PARAMS[:-1], "policy_kwargs:dict(n_critics=3, net_arch=[32, 32])"]
    run_zoo(
        "train", "--algo", "swfp", "--env", ENV_ID, "-f", tmp_path / "logs", "-optimize", "--n-trials", 1,
        "--n-evaluations", 1, "-n", 60, "--eval-episodes", 1, "--num-threads", 1, "--no-optim-plots", "--seed", 0, *params,
    )  # fmt: skip
    assert built == [{"n_critics": 3, "net_arch": [16]}]
    assert HYPERPARAMS_SAMPLER["swfp"] is zoo.sample_swfp_params  # the merging sampler was for the search only


@pytest.mark.parametrize(
    "options, message",
    [
        (["--storage", "s.log", "--study-name", "x", "--trial-id", 0], "ignores --trial-id 0"),
        (["--storage", "s.log", "--study-name", "x"], "without -optimize or --trial-id are ignored"),
        (["--trial-id", 2], "--trial-id 2 needs --storage and --study-name"),
    ],
)
def test_study_options_that_rl_zoo3_would_ignore_are_refused(tmp_path, options, message):
    with pytest.raises(SystemExit, match=message):
        run_zoo("train", "--algo", "swfp", "--env", ENV_ID, "-f", tmp_path / "logs", "-n", 60, *options)
    assert not (tmp_path / "logs").exists()  # refused before rl-zoo3 made a run folder


def test_a_missing_conf_file_of_ours_is_read_from_the_installed_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(zoo.HYPERPARAMS_ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)  # no zoo_hyperparams/ here, as after a pip install
    installed = str(HYPERPARAMS / "swfp_o2o.yml")
    assert zoo._with_default_config(["--algo", "swfp", "-conf", "zoo_hyperparams/swfp_o2o.yml"]) == ["--algo", "swfp", "-conf", installed]
    assert zoo._with_default_config(["--conf-file=zoo_hyperparams/swfp_o2o.yml"]) == [f"--conf-file={installed}"]
    assert "the installed copy of swfp_o2o.yml" in capsys.readouterr().out
    (tmp_path / "zoo_hyperparams").mkdir()
    (tmp_path / "zoo_hyperparams" / "swfp_o2o.yml").write_text("{}")  # the user's own file is read, not ours
    args = ["-conf", "zoo_hyperparams/swfp_o2o.yml"]
    assert zoo._with_default_config(args) == args
    assert zoo._with_default_config(["-conf", "mine.yml"]) == ["-conf", "mine.yml"]  # not ours: rl-zoo3 says it is missing
    # a file of the user's that has our name, mistyped or gone: rl-zoo3 says it is missing, ours does not stand in
    assert zoo._with_default_config(["-conf", "my_configs/swfp.yml"]) == ["-conf", "my_configs/swfp.yml"]


def test_default_config_is_recorded_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv(zoo.HYPERPARAMS_ENV_VAR, raising=False)
    monkeypatch.chdir(ROOT)  # a run started in the checkout records the path a user would type
    assert zoo._with_default_config(["--algo", "swfp", "--env", ENV_ID])[-2:] == ["--conf-file", "zoo_hyperparams/swfp.yml"]
    monkeypatch.chdir(tmp_path)  # outside the checkout: the absolute path, the only one that resolves
    assert zoo._with_default_config(["--algo", "swfp", "--env", ENV_ID])[-1] == str(HYPERPARAMS / "swfp.yml")


def test_replay_commands_default_to_logs_and_skip_a_run_without_a_model(trained, tmp_path, monkeypatch, capsys):
    shutil.copytree(trained, tmp_path / "logs")
    # What a run that failed before saving leaves behind: a newer run folder without a model
    (run_dir(tmp_path / "logs", 2) / ENV_ID).mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    loaded = []
    load = zoo.ReplayOnlySWFP.load.__func__
    monkeypatch.setattr(zoo.ReplayOnlySWFP, "load", classmethod(lambda cls, path, *a, **k: loaded.append(Path(path)) or load(cls, path, *a, **k)))
    run_zoo("enjoy", "--algo", "swfp", "--env", ENV_ID, "--no-render", "-n", 5, "--num-threads", 1)  # no -f
    assert loaded == [Path("logs") / "swfp" / f"{ENV_ID}_1" / f"{ENV_ID}.zip"]
    out = capsys.readouterr().out
    assert "No -f given" in out and "Skipping run 2" in out


def test_load_best_does_not_play_an_earlier_runs_best_model(trained, tmp_path, monkeypatch, capsys):
    shutil.copytree(trained, tmp_path / "logs")
    # A newer run that finished without --eval-freq: its final model, no best_model.zip
    shutil.copytree(run_dir(tmp_path / "logs"), run_dir(tmp_path / "logs", 2))
    (run_dir(tmp_path / "logs", 2) / "best_model.zip").unlink()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=f"No model found .*{ENV_ID}_2"):
        run_zoo("enjoy", "--algo", "swfp", "--env", ENV_ID, "--no-render", "-n", 5, "--num-threads", 1, "--load-best")
    out = capsys.readouterr().out
    assert "Run 2, the latest run, has no best_model.zip" in out and "Skipping" not in out
    # a run under way (no final model yet) has its best model: that one is played, not the finished run's before it
    shutil.copytree(run_dir(tmp_path / "logs"), run_dir(tmp_path / "logs", 3))
    (run_dir(tmp_path / "logs", 3) / f"{ENV_ID}.zip").unlink()
    assert zoo.replay_defaults(["--algo", "swfp", "--env", ENV_ID, "--load-best"])[-2:] == ["--exp-id", "3"]


def test_a_model_with_a_demonstration_buffer_and_bc_term_replays_and_keeps_its_settings(tmp_path):
    from sb3_swfp.demos import collect_demonstrations
    from sb3_swfp.experts import PendulumSwingUpExpert

    demos = collect_demonstrations(ENV_ID, PendulumSwingUpExpert(seed=0), n_steps=50, seed=0)
    model = SWFP(
        "FlowPolicy", ENV_ID, buffer_size=500, bc_coef=1.0, n_blocks=2, policy_kwargs=dict(net_arch=[16]),
        replay_buffer_class=DemoReplayBuffer, replay_buffer_kwargs=dict(demonstrations=demos),
    )  # fmt: skip
    model.save(tmp_path / "model")
    replay = zoo.ReplayOnlySWFP.load(tmp_path / "model")
    assert replay.replay_buffer.buffer_size == 1 and not isinstance(replay.replay_buffer, DemoReplayBuffer)
    # what it saves again (push_to_hub does) is the model as trained
    assert (replay.buffer_size, replay.bc_coef, replay.replay_buffer_class) == (500, 1.0, DemoReplayBuffer)


class FakeHub:
    """The Hugging Face Hub calls of push_to_hub / load_from_hub, answered from a local folder."""

    def __init__(self, root: Path):
        self.root, self.pushed = root, []

    def create_repo(self, token=None, repo_id=None, private=False, exist_ok=False):
        return f"https://huggingface.co/{repo_id}"

    def snapshot_download(self, repo_id, local_dir):
        Path(local_dir).mkdir(parents=True, exist_ok=True)

    def upload_folder(self, repo_id, folder_path, commit_message):
        self.pushed.append(repo_id)
        shutil.copytree(folder_path, self.root / repo_id)

    def load_from_hub(self, repo_id, filename):
        import requests

        path = self.root / repo_id / filename
        if not path.is_file():
            raise requests.exceptions.HTTPError(f"404: {repo_id}/{filename}")
        return str(path)


@pytest.mark.filterwarnings("ignore:'rl_zoo3.load_from_hub' found in sys.modules:RuntimeWarning")  # enjoy imported it
def test_push_to_hub_and_load_from_hub_round_trip_offline(trained, tmp_path, monkeypatch, capsys):
    import huggingface_hub
    import huggingface_sb3

    hub = FakeHub(tmp_path / "hub_server")
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda: hub)
    monkeypatch.setattr(huggingface_sb3, "load_from_hub", hub.load_from_hub)
    monkeypatch.chdir(tmp_path)  # push_to_hub stages the repository in ./hub
    run_zoo("push_to_hub", "--algo", "swfp", "--env", ENV_ID, "-f", trained, "-orga", "someone", "--no-render", "--num-threads", 1)
    assert hub.pushed == [f"someone/swfp-{ENV_ID}"]
    repo = hub.root / "someone" / f"swfp-{ENV_ID}"
    assert {"README.md", "config.yml", "args.yml", "results.json", f"swfp-{ENV_ID}.zip"} <= {path.name for path in repo.iterdir()}
    pushed = SWFP.load(repo / f"swfp-{ENV_ID}.zip")
    assert pushed.buffer_size == 1000  # the model as trained, not the replay-only one push_to_hub loaded
    card = (repo / "README.md").read_text()
    assert f"# **SWFP** Agent playing **{ENV_ID}**" in card and "name: SWFP" in card and "ReplayOnly" not in card
    # rl-zoo3's own scripts refuse --algo swfp: the card gives ours
    assert f"python -m sb3_swfp.zoo load_from_hub --algo swfp --env {ENV_ID} -orga someone" in card and "rl_zoo3." not in card
    assert 'pip install "sb3-swfp[zoo]"' in card and "pip install rl_zoo3" not in card

    run_zoo("load_from_hub", "--algo", "swfp", "--env", ENV_ID, "-f", tmp_path / "downloaded", "-orga", "someone")
    downloaded = run_dir(tmp_path / "downloaded") / f"{ENV_ID}.zip"
    obs = np.array([[1.0, 0.0, 0.5]], dtype=np.float32)
    np.testing.assert_array_equal(SWFP.load(downloaded).predict(obs, deterministic=True)[0], pushed.predict(obs, deterministic=True)[0])
    capsys.readouterr()
    run_zoo("enjoy", "--algo", "swfp", "--env", ENV_ID, "-f", tmp_path / "downloaded", "--no-render", "-n", 5, "--num-threads", 1)
    assert f"Loading {downloaded}" in capsys.readouterr().out  # enjoy plays the downloaded model


def test_missing_zoo_extra_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # makes ``import optuna`` fail
    monkeypatch.delitem(sys.modules, "sb3_swfp.zoo")  # restored after the test
    with pytest.raises(ModuleNotFoundError, match=r"sb3-swfp\[zoo\]"):
        importlib.import_module("sb3_swfp.zoo")


def test_every_o2o_entry_is_the_preset_plus_env_settings():
    """The entries of swfp_o2o.yml differ in env things only (budget, network, policy class, BC budget, monitor)."""
    from sb3_swfp.presets import DEMO_RATIO, FINETUNE_KWARGS, PRETRAIN_KWARGS

    env_keys = {"n_timesteps", "policy", "policy_kwargs", "monitor_kwargs", "normalize", "callback", "replay_buffer_class", "replay_buffer_kwargs"}
    entries = yaml.safe_load((HYPERPARAMS / "swfp_o2o.yml").read_text())
    preset_policy = FINETUNE_KWARGS["policy_kwargs"]
    # how a task's evaluations act is the env's business: only the toy, whose evaluations sample, measures sampled actions
    acting = {env_id: entry["selection_deterministic"] for env_id, entry in entries.items()}
    assert {env_id for env_id, value in acting.items() if value != FINETUNE_KWARGS["selection_deterministic"]} == {"SWFPToyBandit-v0"}
    for env_id, entry in entries.items():
        entry = {**entry, "selection_deterministic": FINETUNE_KWARGS["selection_deterministic"]}
        assert {key: value for key, value in entry.items() if key not in env_keys} == {key: value for key, value in FINETUNE_KWARGS.items() if key != "policy_kwargs"}, env_id
        # YAML's merge key is shallow: an entry that sets its network must repeat the preset's critics
        policy_kwargs = eval(entry["policy_kwargs"])
        assert {key: policy_kwargs.get(key) for key in preset_policy} == preset_policy, env_id
        assert set(policy_kwargs) - set(preset_policy) <= {"net_arch"}, env_id
        assert entry["replay_buffer_class"] == "sb3_swfp.demos.DemoReplayBuffer"
        assert entry["replay_buffer_kwargs"] == f"dict(demonstrations='demos/{{env_id}}.npz', demo_ratio={DEMO_RATIO})", env_id
        ((name, bc_kwargs),) = entry["callback"][0].items()
        assert name == "sb3_swfp.common.callbacks.BCPretrainCallback" and bc_kwargs["demonstrations"] == "demos/{env_id}.npz"
        assert set(bc_kwargs) - {"demonstrations"} <= {"gradient_steps"}, env_id  # the BC budget only; the rest is pretrain's
    ((_, default_bc),) = entries["default"]["callback"][0].items()
    assert default_bc["gradient_steps"] == PRETRAIN_KWARGS["gradient_steps"]


def test_load_hyperparams_takes_rl_zoo3s_v4_entry_for_a_v5_id_and_makes_its_action_noise(tmp_path):
    from stable_baselines3.common.noise import NormalActionNoise

    from sb3_swfp.hyperparams import evaluate_strings, load_hyperparams, read_entries, rl_zoo3_file

    td3 = load_hyperparams("td3", "HalfCheetah-v5", HYPERPARAMS)  # ours: noise_type normal, noise_std 0.1
    assert isinstance(td3["action_noise"], NormalActionNoise) and "noise_type" not in td3 and "noise_std" not in td3
    np.testing.assert_array_equal(td3["action_noise"]._sigma, 0.1 * np.ones(6))  # HalfCheetah's six joints
    (tmp_path / "sac.yml").write_text("Other-v0:\n  policy: 'MlpPolicy'\n")  # our file has no Swimmer entry
    expected = evaluate_strings(dict(read_entries(rl_zoo3_file("sac"))["Swimmer-v4"]))
    expected.pop("n_timesteps")
    assert load_hyperparams("sac", "Swimmer-v5", tmp_path) == expected and expected["gamma"] == 0.999  # Swimmer's, not the default 0.99
    (tmp_path / "td3.yml").write_text("Pendulum-v1:\n  policy: 'MlpPolicy'\n  noise_type: 'ornstein-uhlenbeck'\n  noise_std: 0.1\n")
    with pytest.raises(ValueError, match="unsupported noise_type 'ornstein-uhlenbeck' in the td3 entry of Pendulum-v1"):
        load_hyperparams("td3", "Pendulum-v1", tmp_path)
    with pytest.raises(KeyError, match="no sac hyperparameters for 'Nope-v0'"):
        load_hyperparams("sac", "Nope-v0", tmp_path)


def test_read_entry_serves_an_env_without_an_entry_from_the_default_one(tmp_path):
    from sb3_swfp.hyperparams import read_entry

    assert read_entry(HYPERPARAMS / "swfp_o2o.yml", "Nope-v0") == read_entry(HYPERPARAMS / "swfp_o2o.yml", "default")
    assert read_entry(HYPERPARAMS / "swfp_o2o.yml", "Pendulum-v1")["n_timesteps"] == 8000  # its own where it has one
    (tmp_path / "swfp.yml").write_text("Other-v0:\n  policy: 'FlowPolicy'\n")
    with pytest.raises(KeyError, match=r"no entry for 'Nope-v0' \(nor a default one\)"):
        read_entry(tmp_path / "swfp.yml", "Nope-v0")


def test_reading_hyperparameters_without_the_zoo_extra_says_which_extra(tmp_path, monkeypatch):
    from sb3_swfp.hyperparams import read_entries, rl_zoo3_file

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name in ("yaml", "rl_zoo3") else real_find_spec(name, *args))
    with pytest.raises(ModuleNotFoundError, match=r"reading a hyperparameter file needs 'yaml'.*sb3-swfp\[zoo\]"):
        read_entries(HYPERPARAMS / "swfp.yml")
    with pytest.raises(ModuleNotFoundError, match=r"reading rl-zoo3's hyperparameters needs 'rl_zoo3'.*sb3-swfp\[zoo\]"):
        rl_zoo3_file("sac")
