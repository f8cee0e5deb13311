"""The example scripts and the zoo files they mirror agree (settings kept in two places must not drift)."""

import argparse
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sb3_swfp import presets

yaml = pytest.importorskip("yaml")  # the zoo extra

ROOT = Path(__file__).resolve().parents[1]


def load_example(name: str):
    if str(ROOT / "examples") not in sys.path:  # as `python examples/<name>.py` has it: a script imports its neighbours
        sys.path.insert(0, str(ROOT / "examples"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_offline_to_online_bc_budget_is_the_zoo_entry():
    example = load_example("offline_to_online")
    entry = yaml.safe_load((ROOT / "zoo_hyperparams" / "swfp_o2o.yml").read_text())[example.ENV_ID]
    ((_, bc_kwargs),) = entry["callback"][0].items()
    assert bc_kwargs["gradient_steps"] == example.BC_KWARGS["gradient_steps"]


@pytest.mark.parametrize("text, message", [('{"w2_coef": 1.0', "not valid JSON"), ("[1, 2]", "expected a JSON object")])
def test_offline_to_online_rejects_swfp_kwargs_that_are_not_a_json_object(text, message):
    example = load_example("offline_to_online")
    assert example.json_object('{"w2_coef": 1.0}') == {"w2_coef": 1.0}
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        example.json_object(text)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--eval-episodes", "1"], "--eval-episodes: expected an integer >= 2, got 1"),
        (["--demo-noise", "nan"], "--demo-noise is a standard deviation, a finite number >= 0, got nan"),
        (["--swfp-kwargs", '{"n_blocks": 0}'], "--swfp-kwargs: n_blocks must be an integer >= 1, got 0"),
        (["--swfp-kwargs", '{"policy_kwargs": {"bogus": 1}}'], "--swfp-kwargs: FlowPolicy.__init__() got an unexpected keyword argument 'bogus'"),
        (["--out", "a_file/sub"], "--out a_file/sub: cannot make the folder"),
        (["--online-steps", "-5"], "--online-steps: expected an integer >= 1, got -5"),
        (["--online-steps", "2500"], "--eval-every 1000 must divide --online-steps 2500"),
        (["--swfp-kwargs", '{"seed": 3}'], "--swfp-kwargs: seed is set by --seed"),
        (["--swfp-kwargs", '{"n_block": 3}'], "--swfp-kwargs: finetune_kwargs: n_block is not an argument"),
        (["--out", "a_file"], "--out a_file is a file, expected a folder"),
        (["--out", "earlier"], "--out earlier holds an earlier run's results.json, demos.npz: give another --out"),
    ],
)
def test_offline_to_online_refuses_before_any_work_what_would_fail_or_overwrite(argv, message, tmp_path, monkeypatch, capsys):
    example = load_example("offline_to_online")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("mine")
    (tmp_path / "earlier").mkdir()
    for name in ("results.json", "demos.npz"):  # a first seed's results, which a second run must not replace
        (tmp_path / "earlier" / name).write_text("mine")
    monkeypatch.setattr(example, "collect_demonstrations", lambda *args, **kwargs: pytest.fail("work started"))
    with pytest.raises(SystemExit):
        example.main(argv)
    assert message in capsys.readouterr().err
    assert (tmp_path / "earlier" / "results.json").read_text() == (tmp_path / "a_file").read_text() == "mine"


@pytest.mark.parametrize("missing, argv", [("matplotlib", []), ("tensorboard", []), ("rich", []), ("matplotlib", ["--no-progress"])])
def test_offline_to_online_names_a_missing_package_and_its_extra_before_any_work(missing, argv, tmp_path, monkeypatch):
    """It failed at its end (matplotlib), or after writing the demonstrations that then blocked a rerun (tensorboard)."""
    example = load_example("offline_to_online")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == missing else real_find_spec(name, *args))
    monkeypatch.setattr(example, "collect_demonstrations", lambda *args, **kwargs: pytest.fail("work started"))
    with pytest.raises(ModuleNotFoundError, match=rf"examples/offline_to_online.py needs '{missing}'.*pip install \"sb3-swfp\[examples\]\""):
        example.main(["--out", str(tmp_path / "out"), *argv])
    assert not (tmp_path / "out").exists()


def test_offline_to_online_runs_and_reports(tmp_path, monkeypatch, capsys):
    """The main job end to end at a tiny budget, SAC process included: demos in --out, verdict, seed, std note, TensorBoard evaluations."""
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    pytest.importorskip("rich")
    example = load_example("offline_to_online")
    # SAC trains in a spawned process, which imports the script by name
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    monkeypatch.setitem(sys.modules, "offline_to_online", example)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    small = '{"batch_size": 32, "n_blocks": 2, "policy_kwargs": {"net_arch": [32]}, "actor_learning_starts": 10}'
    example.main([
        "--out", str(out), "--demo-episodes", "1", "--bc-steps", "5", "--online-steps", "40", "--eval-every", "20",
        "--eval-episodes", "2", "--seed", "3", "--swfp-kwargs", small,
    ])  # fmt: skip
    printed = capsys.readouterr().out
    assert "Verdict (seed 3, one seed): SWFP fine-tuning" in printed and "SAC from scratch" in printed
    assert "std: the spread of the episode returns" in printed
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]  # nothing written in the working directory
    written = {path.name for path in out.iterdir()}
    assert {"demos.npz", "results.json", "learning_curve.png"} <= written and "results.json.tmp" not in written
    result = json.loads((out / "results.json").read_text())
    assert result["seed"] == 3 and result["verdict"] in printed and result["first_actor_step"] == 10
    # what the run used: the preset under the overrides (its ten critics kept), the preset's BC at 5 steps
    assert result["swfp_kwargs"] == json.loads(json.dumps({**presets.FINETUNE_KWARGS, **json.loads(small), "policy_kwargs": {"n_critics": 10, "net_arch": [32]}}))
    assert result["bc_kwargs"] == {**presets.PRETRAIN_KWARGS, "gradient_steps": 5}
    assert [point[0] for point in result["swfp_curve"]] == [0, 20, 40] == [point[0] for point in result["sac_curve"]]
    for run in ("SWFP_finetune_1", "SAC_scratch_1"):
        events = event_accumulator.EventAccumulator(str(out / "tb" / run))
        events.Reload()
        assert [event.step for event in events.Scalars("eval/mean_reward")] == [0, 20, 40], run


def _stat_fields(stat: Path) -> list[str] | None:
    """The fields of a /proc/<pid>/stat after the command name (state, parent, ...); None once the process is gone."""
    try:
        return stat.read_text().rsplit(")", 1)[1].split()  # the name may hold spaces and parentheses
    except OSError:
        return None


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    return [int(stat.parent.name) for stat in Path("/proc").glob("[0-9]*/stat") if (fields := _stat_fields(stat)) and int(fields[1]) == pid]


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for a reaper this machine may not have)."""
    fields = _stat_fields(Path(f"/proc/{pid}/stat"))
    return fields is not None and fields[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the SAC process through /proc")
def test_a_killed_offline_to_online_takes_its_sac_process_with_it(tmp_path):
    """kill (SIGTERM) on the main job ends the SAC process too, instead of leaving it training, orphaned."""
    out = tmp_path / "out"
    command = [
        sys.executable, str(ROOT / "examples" / "offline_to_online.py"), "--out", str(out), "--no-progress",
        "--demo-episodes", "1", "--bc-steps", "100000", "--online-steps", "100000", "--swfp-kwargs", '{"n_blocks": 2}',
    ]  # fmt: skip
    main = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while not (out / "tb" / "SAC_scratch_1").exists() and time.monotonic() < deadline:  # SAC is training
            time.sleep(0.2)
        assert (out / "tb" / "SAC_scratch_1").exists(), "SAC did not start within 120 s"
        children = _children(main.pid)
        assert children
        main.send_signal(signal.SIGTERM)
        assert main.wait(timeout=60) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 10
        while any(map(_running, children)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in children if _running(pid)]
    finally:  # whatever happened, nothing of the job is left running (an orphan has a new parent)
        for pid in [main.pid, *children, *_children(main.pid)]:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


def test_offline_to_online_verdict_and_plot_range():
    example = load_example("offline_to_online")
    demos, bc = (-180.0, 40.0, 10), (-230.0, 60.0, 10)
    verdict = example.verdict(0, demos, bc, (-120.0, 50.0, 10), (-500.0, 300.0, 10))
    assert verdict == (
        "Verdict (seed 0, one seed): SWFP fine-tuning: improved the BC policy (-230 -> -120), ends above SAC from scratch (-500), "
        "above the demonstrations it started from (-180); 'level'/'no clear change': within two standard errors of the 10-episode means."
    )
    assert "no clear change from the BC policy (-230 -> -250)" in example.verdict(0, demos, bc, (-250.0, 60.0, 10), None)
    # within two standard errors of the difference: level
    assert "ends level with SAC from scratch" in example.verdict(0, demos, bc, (-140.0, 50.0, 10), (-150.0, 50.0, 10))
    assert "below the demonstrations" in example.verdict(0, demos, bc, (-300.0, 10.0, 10), None)
    # SAC's first evaluations (about -1500) do not set the range; SWFP's band and the demonstrations do
    swfp = [(0, -230.0, 60.0), (1000, -170.0, 40.0)]
    sac = [(0, -1500.0, 100.0), (1000, -160.0, 30.0)]
    bottom, top = example.y_range(swfp, sac, -180.0)
    assert -330.0 < bottom < -290.0 and -130.0 < top < -100.0


@pytest.mark.parametrize(
    "script, argv, message",
    [
        ("collect_demos", ["--out", "kept.npz"], "--out: kept.npz exists"),
        ("collect_demos", ["--out", "kept"], "--out: kept.npz exists"),  # .npz is appended, as save does
        ("collect_demos", ["--out", "new.npz", "--episodes", "0"], "--episodes must be >= 1, got 0"),
        ("collect_demos", ["--out", "new.npz", "--noise", "nan"], "--noise is a relative standard deviation, a finite number >= 0, got nan"),
        ("collect_demos", ["--out", "kept.npz/x.npz"], "--out: kept.npz/x.npz: kept.npz is a file, expected a folder"),
        ("collect_demos", ["--out", "folder.npz"], "--out: folder.npz is a folder, expected a file"),
        ("train_expert", ["--out", "kept.npz"], "--out: kept.npz exists"),
        ("train_expert", ["--out", "new.npz", "--episodes", "0"], "--episodes must be >= 1, got 0"),
        ("train_expert", ["--out", "new.npz", "--n-timesteps", "-5"], "--n-timesteps must be >= 0"),
        ("train_expert", ["--out", "new.npz", "--algo", "td3", "--stochastic"], "--stochastic: td3's policy is deterministic"),
        ("toy_figure", ["--out", "kept.npz"], "--out kept.npz: expected a .png file"),
        ("toy_figure", ["--out", "fig.png"], "--out: fig.png already there"),
        ("toy_figure", ["--out", "new.png", "--samples", "0"], "--samples >= 1"),
    ],
)
def test_the_recording_scripts_refuse_before_any_work_what_would_fail_or_overwrite(script, argv, message, tmp_path, monkeypatch, capsys):
    """They overwrote an existing file without asking, or trained for hours and then refused the budget or the path."""
    example = load_example(script)
    monkeypatch.chdir(tmp_path)
    for name in ("kept.npz", "fig.png"):
        (tmp_path / name).write_text("mine")
    (tmp_path / "folder.npz").mkdir()
    for work in ("make_expert_env", "ExperimentManager", "toy_demonstrations"):
        if hasattr(example, work):
            monkeypatch.setattr(example, work, lambda *args, **kwargs: pytest.fail("work started"))
    monkeypatch.setattr(sys, "argv", [script, *argv])
    with pytest.raises(SystemExit):
        example.main()
    assert message in capsys.readouterr().err
    assert (tmp_path / "kept.npz").read_text() == (tmp_path / "fig.png").read_text() == "mine"


def test_collect_demos_replaces_a_file_when_asked(tmp_path, monkeypatch):
    from sb3_swfp.demos import load_demonstrations

    example = load_example("collect_demos")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kept.npz").write_text("mine")
    monkeypatch.setattr(sys, "argv", ["collect_demos", "--out", "kept.npz", "--episodes", "1", "--overwrite"])
    example.main()
    assert load_demonstrations(tmp_path / "kept.npz").metadata["env_id"] == "Pendulum-v1"


def test_render_keeps_runs_of_other_settings_apart_and_names_foreign_files(tmp_path):
    example = load_example("offline_to_online")
    source = ROOT / "docs" / "results" / "offline_to_online"
    for seed in (0, 1):
        shutil.copy(source / f"main_s{seed}.json", tmp_path / f"main_s{seed}.json")
    short = json.loads((source / "main_s2.json").read_text())
    short["args"]["online_steps"] = 300  # another budget: its own row, not averaged into the 8000-step one
    (tmp_path / "short.json").write_text(json.dumps(short))
    (tmp_path / "notes.json").write_text('{"x": 1}')
    table = example.render(tmp_path)
    assert "| `FINETUNE_KWARGS` | 0, 1 |" in table and "| `FINETUNE_KWARGS`, `--online-steps 300` | 2 |" in table
    assert table.endswith("Not this script's results, left out: notes.json.")


def test_the_toy_pages_table_is_the_figures_json():
    """docs/toy.md's table copies docs/results/toy/toy_figure.json (what toy_figure.py wrote), row by row in its order."""
    summary = json.loads((ROOT / "docs" / "results" / "toy" / "toy_figure.json").read_text())["summary"]
    page = (ROOT / "docs" / "toy.md").read_text()
    rows = [line for line in page.splitlines() if line.startswith("| ") and not line.startswith(("| samples", "|---"))]
    assert len(rows) == len(summary)
    for row, (name, numbers) in zip(rows, summary.items()):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[1] == f"{numbers['high_reward_share']:.3f}", (name, row)
        assert cells[2] == ", ".join(f"{share:.3f}" for share in numbers["mode_shares"]), (name, row)


def test_train_expert_records_nothing_from_an_interrupted_training(tmp_path, monkeypatch, capsys):
    """Ctrl-C during training: rl-zoo3's learn() swallows it, and the script recorded the half-trained expert to --out (exit 0)."""
    import signal
    from types import SimpleNamespace

    example = load_example("train_expert")
    monkeypatch.chdir(tmp_path)

    class InterruptedZoo:
        """rl-zoo3's ExperimentManager, whose learn() is stopped by Ctrl-C after 10 of 1000 steps."""

        env_wrapper = None
        save_path = str(tmp_path / "logs")
        n_timesteps = 1000

        def __init__(self, *args, **kwargs):
            self.model = SimpleNamespace(num_timesteps=0, get_vec_normalize_env=lambda: None)

        def setup_experiment(self):
            return self.model, None

        def learn(self, model):
            try:  # as rl-zoo3 does
                model.num_timesteps = 10
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.5)  # the handler runs before: ignored, the sleep is all that happens
            except KeyboardInterrupt:
                pass

        def save_trained_model(self, model):
            Path(self.save_path).mkdir()

    monkeypatch.setattr(example, "ExperimentManager", InterruptedZoo)
    monkeypatch.setattr(example, "collect_demonstrations", lambda *args, **kwargs: pytest.fail("recorded a half-trained expert"))
    monkeypatch.setattr(sys, "argv", ["train_expert", "--out", "expert.npz"])
    # Ctrl-C interrupts as in a terminal, even where pytest itself was started with SIGINT ignored (a background job)
    started_with = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(SystemExit) as exit_info:
            example.main()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # ours removed again
    finally:
        signal.signal(signal.SIGINT, started_with)
    assert exit_info.value.code == 128 + signal.SIGINT
    assert "Training interrupted at 10 of 1000 steps" in capsys.readouterr().err
    assert (tmp_path / "logs").is_dir() and not (tmp_path / "expert.npz").exists()

    # Started with SIGINT ignored (a background job of a script), the run ignores it as before and records
    class Recording(Exception):
        pass

    def record(*args, **kwargs):
        raise Recording

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    monkeypatch.setattr(example, "collect_demonstrations", record)
    monkeypatch.setattr(sys, "argv", ["train_expert", "--out", "expert2.npz"])
    (tmp_path / "logs").rmdir()
    try:
        with pytest.raises(Recording):  # it went on to record the trained expert
            example.main()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize(
    "script, argv, message",
    [
        ("collect_demos", ["--env", "Foo-v0"], "--env Foo-v0: Environment `Foo` doesn't exist"),
        ("collect_demos", ["--env", "CartPole-v1"], "--env CartPole-v1: no scripted expert for 'CartPole-v1'"),
        ("collect_demos", ["--seed", "-1"], "--seed must be in [0, 2**32), got -1"),
        ("train_expert", ["--env", "Foo-v0"], "--env Foo-v0: Environment `Foo` doesn't exist"),
        ("train_expert", ["--hyperparams-from", "Nope-v0"], "--hyperparams-from: rl-zoo3 has no sac hyperparameters for 'Nope-v0'"),
        ("train_expert", ["--seed", "-1"], "--seed must be in [0, 2**32), got -1"),
        ("train_expert", ["--seed", str(2**32)], f"--seed must be in [0, 2**32), got {2**32}"),
        ("toy_figure", ["--seed", "-1"], "--seed must be in [0, 2**32), got -1"),
        ("toy_figure", ["--seed", str(2**32)], f"--seed must be in [0, 2**32), got {2**32}"),
        ("toy_figure", ["--out", "kept.npz/fig.png"], "--out kept.npz/fig.png: cannot make its folder"),
    ],
)
def test_the_recording_scripts_refuse_an_env_seed_zoo_entry_or_out_they_cannot_use_as_usage_errors(script, argv, message, tmp_path, monkeypatch, capsys):
    """They ended in a traceback (gymnasium's, numpy's, the expert factory's), train_expert.py after leaving an empty run folder."""
    example = load_example(script)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kept.npz").write_text("mine")
    for work in ("collect_demonstrations", "ExperimentManager", "SWFP"):
        if hasattr(example, work):
            monkeypatch.setattr(example, work, lambda *args, **kwargs: pytest.fail("work started"))
    out = [] if script == "toy_figure" and "--out" in argv else ["--out", "new.png" if script == "toy_figure" else "new.npz"]
    monkeypatch.setattr(sys, "argv", [script, *out, *argv])
    with pytest.raises(SystemExit) as exit_info:
        example.main()
    assert exit_info.value.code == 2  # argparse's usage error
    assert message in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["kept.npz"]


def test_train_expert_runs_as_a_copy_outside_examples(tmp_path):
    """README: examples/ holds the scripts a user copies from; train_expert.py imported its neighbour collect_demos.py."""
    shutil.copy(ROOT / "examples" / "train_expert.py", tmp_path / "train_expert.py")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}  # the package, not examples/
    done = subprocess.run([sys.executable, "train_expert.py", "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--overwrite" in done.stdout
