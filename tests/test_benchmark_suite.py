"""The benchmark runner end to end on a tiny toy task: runs, resumes, renders (numbers are not checked here)."""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch as th

from benchmarks import cost, machine, methods, render_core, runner, tasks
from benchmarks.render import render
from benchmarks.render_tasks import (
    command_lines,
    machine_lines,
    mixed_variants,
    robustness_row,
    robustness_table,
    stale_arguments,
)
from benchmarks.runner import Run, result_path, run_one
from benchmarks.tasks import TASKS


@pytest.fixture
def results(tmp_path, monkeypatch):
    """A results folder in tmp_path, the pages next to it, and the toy cut down to two evaluations of tiny networks."""
    pytest.importorskip("rl_zoo3")  # the zoo extra: the baselines read rl-zoo3's hyperparameter files
    tiny = dataclasses.replace(tasks.TASKS["toy"], cpu_steps=120, eval_every=60, eval_episodes=20, learning_starts_cap=50)
    monkeypatch.setitem(tasks.TASKS, "toy", tiny)
    entry = methods.swfp_o2o_entry

    def short_entry(env_id):
        kwargs, bc_kwargs, demo_ratio = entry(env_id)
        kwargs.update(learning_starts=50, actor_learning_starts=0, batch_size=32, policy_kwargs=dict(net_arch=[32]))
        return kwargs, {**bc_kwargs, "gradient_steps": 20}, demo_ratio

    monkeypatch.setattr(methods, "swfp_o2o_entry", short_entry)
    return tmp_path / "results"


def pages(results):
    """Render the suite's pages next to ``results``; returns (benchmarks.md, ablations.md) as text."""
    render(results, docs=results.parent)
    return (results.parent / "benchmarks.md").read_text(), (results.parent / "ablations.md").read_text()


def test_runs_resume_and_render(results):
    messages = [run_one(Run("toy", method, 0), results) for method in ("swfp", "sac_demos", "rlpd")]
    assert all(message.startswith("done") for message in messages)
    path = result_path(results, "cpu", "toy", "swfp", 0)
    result = json.loads(path.read_text())
    # evaluations at step 0 (after BC) and every eval_every steps, with the same demonstrations for every method
    assert [point[0] for point in result["curve"]] == [0, 60, 120]
    assert result["demos"]["transitions"] == 1000
    assert result["toy_modes"]["n_high_reward_modes"] == 3
    assert json.loads(result_path(results, "cpu", "toy", "sac_demos", 0).read_text())["demos"] == result["demos"]
    assert result["machine"] == machine()  # where its per-seed numbers reproduce
    # finished runs are skipped, results untouched
    before = path.read_text()
    assert run_one(Run("toy", "swfp", 0), results).startswith("skip")
    assert path.read_text() == before
    page, _ = pages(results)
    assert "| BC flow (no online step) | 1 |" in page and "| SWFP (BC + online) | 1 |" in page
    assert "± 0.0" not in page  # one seed: no spread shown
    assert "| SAC + demos in buffer | 1 |" in page and "| RLPD-style SAC (demos, UTD 2) | 1 |" in page
    rlpd = json.loads(result_path(results, "cpu", "toy", "rlpd", 0).read_text())
    assert rlpd["demos"] == result["demos"] and "LayerNormSACPolicy" in rlpd["hyperparams"]["policy_class"]
    assert (rlpd["hyperparams"]["gradient_steps"], rlpd["hyperparams"]["learning_starts"]) == ("2", "0")
    assert (results / "cpu" / "toy.png").exists()
    assert "![SWFPToyBandit-v0](results/cpu/toy.png)" in page  # the figure's link is relative to the page


def test_rlpd_from_a_bc_actor_starts_cloned_and_its_actor_waits_for_the_critics(results, monkeypatch):
    entry = methods.swfp_o2o_entry  # the fixture's: 20 BC steps

    def entry_with_300_bc_steps(env_id):
        kwargs, bc_kwargs, demo_ratio = entry(env_id)
        return kwargs, {**bc_kwargs, "gradient_steps": 300}, demo_ratio

    monkeypatch.setattr(methods, "swfp_o2o_entry", entry_with_300_bc_steps)
    task = tasks.TASKS["toy"]
    demos = tasks.make_demonstrations(task)
    obs, actions = th.as_tensor(demos.observations, dtype=th.float32), th.as_tensor(demos.actions, dtype=th.float32)
    fresh = methods.make_model("rlpd", task, demos, seed=0, budget="cpu", device="cpu")
    cloned = methods.make_model("rlpd_bc", task, demos, seed=0, budget="cpu", device="cpu")
    assert isinstance(cloned, methods.CriticFirstSAC) and methods.model_class("rlpd_bc") is methods.CriticFirstSAC

    def log_likelihood(model):  # of the demonstrations' (scaled) actions under the model's actor
        with th.no_grad():
            mean, log_std, _ = model.actor.get_action_dist_params(obs)
            dist = model.actor.action_dist.proba_distribution(mean, log_std)
            return dist.log_prob(th.as_tensor(model.policy.scale_action(actions.numpy())).clamp(-0.999, 0.999)).mean().item()

    assert log_likelihood(cloned) > log_likelihood(fresh) + 0.3  # the toy is multimodal: a Gaussian fits it only so far
    assert cloned.behaviour_cloning["gradient_steps"] == 300  # SWFP's BC budget for the task (its entry's)
    cloned.actor_learning_starts = 6  # gradient steps while the actor waits (UTD 2: three env steps)
    before = [p.detach().clone() for p in cloned.actor.parameters()]
    critic_before = [p.detach().clone() for p in cloned.critic.parameters()]
    temperature = cloned.log_ent_coef.detach().clone()
    cloned.learn(3)
    assert all(th.equal(a, b) for a, b in zip(before, cloned.actor.parameters()))
    assert th.equal(cloned.log_ent_coef, temperature)  # the temperature waits with the actor
    assert all(p.requires_grad for p in cloned.actor.parameters())  # not left frozen between learn() calls
    assert not all(th.equal(a, b) for a, b in zip(critic_before, cloned.critic.parameters()))
    cloned.learn(3, reset_num_timesteps=False)
    assert not all(th.equal(a, b) for a, b in zip(before, cloned.actor.parameters()))


def test_rlpd_ensemble_is_rlpd_with_its_ten_critics_and_a_random_two_in_the_target(results):
    from sb3_swfp.rlpd import RLPD, LayerNormSACPolicy

    task = tasks.TASKS["toy"]
    model = methods.make_model("rlpd_ensemble", task, tasks.make_demonstrations(task), seed=0, budget="cpu", device="cpu")
    assert type(model) is RLPD and methods.model_class("rlpd_ensemble") is RLPD
    assert (model.critic.n_critics, model.target_critics, model.actor_q, model.gradient_steps) == (10, 2, "mean", 2)
    assert isinstance(model.policy, LayerNormSACPolicy) and model.replay_buffer.demo_ratio == 0.5


def test_swfp_variant_runs_with_its_kwargs_and_renders_next_to_swfp(results):
    method = methods.variant_method("w2_big")
    assert run_one(Run("toy", "swfp", 0), results).startswith("done")
    assert run_one(Run("toy", method, 0, swfp_kwargs={"w2_coef": 2.5}), results).startswith("done")
    result = json.loads(result_path(results, "cpu", "toy", "swfp-w2_big", 0).read_text())
    assert result["swfp_kwargs"] == {"w2_coef": 2.5} and result["hyperparams"]["w2_coef"] == "2.5"
    # every SWFP argument is recorded, not only the ones the presets set
    assert (result["hyperparams"]["actor_tau"], result["hyperparams"]["q_agg"]) == ("0.005", "'min'")
    assert "--variant w2_big --swfp-kwargs '{\"w2_coef\": 2.5}'" in result["command"]
    page, ablations = pages(results)
    # the variant is on the ablation page, right after the SWFP row it changes; the methods' page has none
    rows = [line for line in ablations.splitlines() if line.startswith("| ")]
    labels = [row.split(" | ")[0] for row in rows]
    assert labels.index('| SWFP variant `w2_big`: `{"w2_coef": 2.5}`') == labels.index("| SWFP (BC + online)") + 1
    assert "w2_big" not in page and "| SWFP (BC + online) | 1 |" in page


def test_stochastic_eval_adds_a_curve_and_leaves_the_run_as_it_was(results):
    from benchmarks.suite import main

    assert run_one(Run("toy", "swfp", 0), results).startswith("done")
    plain = json.loads(result_path(results, "cpu", "toy", "swfp", 0).read_text())
    # The same settings under a variant, also evaluated with sampled actions over another number of episodes
    method = methods.variant_method("same")
    assert run_one(Run("toy", method, 0, swfp_kwargs={}, stochastic_eval_episodes=7), results).startswith("done")
    both = json.loads(result_path(results, "cpu", "toy", method, 0).read_text())
    assert both["curve"] == plain["curve"]  # its evaluations draw none of training's random numbers
    assert [point[0] for point in both["curve_stochastic"]] == [0, 60, 120] and both["eval_episodes_stochastic"] == 7
    assert [point[1:3] for point in both["curve_stochastic"]] != [point[1:3] for point in both["curve"]]
    assert both["command"].endswith("--seeds 0 --budget cpu --stochastic-eval 7") and "curve_stochastic" not in plain
    # The toy's own evaluation samples: over its own episodes the sampled curve is the curve, to the digit
    assert run_one(Run("toy", methods.variant_method("own"), 0, swfp_kwargs={}, stochastic_eval_episodes=20), results).startswith("done")
    own = json.loads(result_path(results, "cpu", "toy", methods.variant_method("own"), 0).read_text())
    assert [point[1:3] for point in own["curve_stochastic"]] == [point[1:3] for point in own["curve"]]
    with pytest.raises(ValueError, match="positive count"):
        Run("toy", "swfp", 0, stochastic_eval_episodes=0)
    with pytest.raises(SystemExit):
        main(["--suite", "bc_drift", "--stochastic-eval", "10"])  # runs and robustness only


def test_stochastic_eval_samples_where_the_task_evaluates_deterministically(results, monkeypatch):
    from stable_baselines3.common import evaluation

    monkeypatch.setitem(tasks.TASKS, "toy", dataclasses.replace(tasks.TASKS["toy"], deterministic_eval=True))
    evaluate_policy, flags = evaluation.evaluate_policy, []

    def recording(*args, deterministic, **kwargs):
        flags.append((deterministic, kwargs["n_eval_episodes"]))
        return evaluate_policy(*args, deterministic=deterministic, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate_policy", recording)
    assert run_one(Run("toy", "swfp", 0, stochastic_eval_episodes=7), results).startswith("done")
    assert flags == [(True, 20), (False, 7)] * 3  # at step 0, 60 and 120: the task's evaluation, then the sampled one
    result = json.loads(result_path(results, "cpu", "toy", "swfp", 0).read_text())
    assert [point[1] for point in result["curve_stochastic"]] != [point[1] for point in result["curve"]]


def test_a_stopped_run_resumes_only_with_the_stochastic_eval_it_was_started_with(results, monkeypatch):
    evaluate = stop_at_evaluation(monkeypatch, 5)  # two evaluations at steps 0 and 60 (then the checkpoint), the first at 120
    with pytest.raises(Stop):
        run_one(Run("toy", "swfp", 0, stochastic_eval_episodes=7), results)
    monkeypatch.setattr(runner, "evaluate", evaluate)
    for other in (None, 8):  # its curves would not line up: refused, the checkpoint kept
        with pytest.raises(ValueError, match=f"other settings than this run \\(stochastic_eval_episodes: 7 there, {other} now\\)"):
            run_one(Run("toy", "swfp", 0, stochastic_eval_episodes=other), results)
    assert run_one(Run("toy", "swfp", 0, stochastic_eval_episodes=7), results).startswith("done")
    result = json.loads(result_path(results, "cpu", "toy", "swfp", 0).read_text())
    assert [p[0] for p in result["curve"]] == [p[0] for p in result["curve_stochastic"]] == [0, 60, 120]
    assert result["resumed_at"] == [60]


def test_variant_buffer_arguments_go_over_the_entrys_and_keep_the_tasks_demonstrations(results):
    method, plain_method = methods.variant_method("no_demos"), methods.variant_method("plain")
    entry_ratio = methods.swfp_o2o_entry("SWFPToyBandit-v0")[2]
    # the learner answers predict (no policy selection), so that the other batches show in the curve
    acting = {"selection_steps": 0}
    assert run_one(Run("toy", plain_method, 0, swfp_kwargs=acting), results).startswith("done")
    assert run_one(Run("toy", method, 0, swfp_kwargs={**acting, "replay_buffer_kwargs": {"demo_ratio": 0.0}}), results).startswith("done")
    plain = json.loads(result_path(results, "cpu", "toy", plain_method, 0).read_text())
    variant = json.loads(result_path(results, "cpu", "toy", method, 0).read_text())
    assert (plain["hyperparams"]["demo_ratio"], variant["hyperparams"]["demo_ratio"]) == (repr(entry_ratio), "0.0")
    # Neither is stale against the entry; a run whose entry's ratio changed since is
    entry = methods.swfp_o2o_entry("SWFPToyBandit-v0")[0]
    assert stale_arguments(plain, entry, entry_ratio) == stale_arguments(variant, entry, entry_ratio) == []
    assert stale_arguments(plain, entry, entry_ratio / 2) == [f"demo_ratio ran {entry_ratio!r}, entry now {entry_ratio / 2!r}"]
    assert variant["curve"][0] == plain["curve"][0] and variant["curve"] != plain["curve"]  # same BC start, other batches
    with pytest.raises(ValueError, match="leave 'demonstrations' out"):
        methods.make_model("swfp", TASKS["toy"], None, 0, "cpu", "cpu", {"replay_buffer_kwargs": {"demonstrations": "x.npz"}})


def test_ablation_page_names_the_patch_a_probes_runs_need(results):
    method = methods.variant_method("probe")
    assert run_one(Run("toy", method, 0, swfp_kwargs={"w2_coef": 2.5}), results).startswith("done")
    _, ablations = pages(results)
    assert "not in the package" not in ablations
    path = result_path(results, "cpu", "toy", method, 0)
    run = json.loads(path.read_text())
    run["patch"] = {"file": "docs/results/probes/x.patch", "commit": "abc1234"}
    path.write_text(json.dumps(run))
    _, ablations = pages(results)
    assert "(a probe's): swfp-probe_s0; apply `docs/results/probes/x.patch` to commit abc1234 to run their command." in ablations


def test_variant_arguments_are_checked():
    with pytest.raises(ValueError, match="letters, digits"):
        methods.variant_method("a b")
    with pytest.raises(ValueError, match="variants"):
        Run("toy", "swfp", 0, swfp_kwargs={"w2_coef": 2.5})
    with pytest.raises(ValueError, match="variants"):
        Run("toy", "swfp-x", 0)


def test_page_says_when_fine_tuning_ends_below_bc(results):
    for method in ("swfp", "sac"):
        assert run_one(Run("toy", method, 0), results).startswith("done")

    def set_curve(method, scores):
        path = result_path(results, "cpu", "toy", method, 0)
        result = json.loads(path.read_text())
        result["curve"] = [[60 * i, score, 0.0, None] for i, score in enumerate(scores)]
        path.write_text(json.dumps(result))

    set_curve("swfp", [0.5, 0.2, 0.1])  # BC 0.5 at step 0, SWFP ends at 0.1
    set_curve("sac", [0.0, 0.2, 0.3])
    page, _ = pages(results)
    assert "behind the best other method here (SAC from scratch: 0.300 vs SWFP 0.100); BC → SWFP: 0.500 → 0.100." in page
    assert "the BC flow alone (0.500) ends above SWFP (0.100) and above every online method." in page
    set_curve("swfp", [0.5, 0.6, 0.7])
    page, _ = pages(results)
    assert "ahead of the best other method here" in page
    assert "Fine-tuning lost ground" not in page
    assert "not yet like for like" not in page  # one seed each
    sac_s1 = result_path(results, "cpu", "toy", "sac", 1)
    sac_s1.write_text(json.dumps({**json.loads(result_path(results, "cpu", "toy", "sac", 0).read_text()), "seed": 1}))
    page, _ = pages(results)
    assert "SWFP's row has 1 seed so far against SAC from scratch's 2: the comparison is not yet like for like." in page


def test_render_flags_runs_made_with_other_arguments_than_the_entry(results):
    assert run_one(Run("toy", "swfp", 0), results).startswith("done")
    path = result_path(results, "cpu", "toy", "swfp", 0)
    run = json.loads(path.read_text())
    assert stale_arguments(run, methods.swfp_o2o_entry("SWFPToyBandit-v0")[0]) == []
    page, _ = pages(results)
    assert "Stale runs" not in page
    run["hyperparams"]["w2_coef"] = "99.0"  # as if the entry's w2_coef changed after this run
    run["relabelled"] = "a note"
    path.write_text(json.dumps(run))
    page, _ = pages(results)
    entry_w2_coef = methods.swfp_o2o_entry("SWFPToyBandit-v0")[0]["w2_coef"]
    assert "**Stale runs**" in page and f"`swfp_s0` (w2_coef ran 99.0, entry now {entry_w2_coef!r})" in page
    assert "Relabelled after `swfp_o2o.yml` changed" in page and "swfp_s0." in page
    assert "Evaluated with new start states" not in page
    del run["eval_protocol"]  # as the runs made before every evaluation played the same start states
    path.write_text(json.dumps(run))
    page, _ = pages(results)
    assert "Evaluated with new start states at each evaluation (made before the suite played the same ones every time): SWFP (BC + online)." in page


def test_a_variant_run_with_other_settings_than_its_seeds_before_is_refused(results):
    method = methods.variant_method("lr")
    assert run_one(Run("toy", method, 0, swfp_kwargs={"actor_learning_rate": 3e-4}), results).startswith("done")
    with pytest.raises(ValueError, match=r"variant 'lr' of toy already has runs made with other settings \(s0: \{\"actor_learning_rate\": 0.0003\}"):
        run_one(Run("toy", method, 1, swfp_kwargs={"actor_learning_rate": 1e-3}), results)
    assert not result_path(results, "cpu", "toy", method, 1).exists()


def test_a_variant_is_not_compared_with_another_variant_whose_name_it_begins(tmp_path):
    from benchmarks.runner import check_variant_settings

    (tmp_path / "swfp-lr_small_s0.json").write_text(json.dumps({"swfp_kwargs": {"actor_learning_rate": 1e-5}}))
    check_variant_settings(tmp_path, Run("toy", methods.variant_method("lr"), 1, swfp_kwargs={"actor_learning_rate": 1e-3}))
    (tmp_path / "swfp-lr_s0.json").write_text(json.dumps({"swfp_kwargs": {"actor_learning_rate": 3e-4}}))
    with pytest.raises(ValueError, match=r"already has runs made with other settings \(s0: "):
        check_variant_settings(tmp_path, Run("toy", methods.variant_method("lr"), 1, swfp_kwargs={"actor_learning_rate": 1e-3}))


def test_a_variant_whose_runs_differ_in_their_settings_is_named():
    def run(seed, kwargs):
        return {"method": "swfp-lr", "seed": seed, "swfp_kwargs": kwargs}

    same = [run(0, {"actor_learning_rate": 1e-3}), run(1, {"actor_learning_rate": 1e-3}), {"method": "swfp", "seed": 0}]
    assert mixed_variants(same) == []
    lines = mixed_variants([*same, run(2, {"actor_learning_rate": 3e-4})])
    assert lines == [
        '**Mixed runs**: variant `lr` holds runs of different settings (s0, s1: `{"actor_learning_rate": 0.001}`; '
        's2: `{"actor_learning_rate": 0.0003}`): its row averages them; rename or delete the odd ones.',
        "",
    ]


def test_a_table_whose_runs_ran_on_several_machines_says_which_rows_ran_where():
    def run(method, seed, cpu=None):
        return {"method": method, "seed": seed, **({"machine": {"cpu": cpu}} if cpu else {})}

    assert machine_lines([run("swfp", 0, "A"), run("sac", 0, "A")]) == []  # one machine: nothing to say
    assert machine_lines([run("swfp", 0), run("sac", 1)]) == []  # none recorded: results.md says so once
    lines = machine_lines([run("swfp", 2, "B"), run("swfp", 0, "A"), run("swfp", 1, "A"), run("rlpd_ensemble", 0, "B"), run("sac", 0)])
    assert lines == [
        "Made on more than one machine (each result's `machine`; per-seed numbers are each machine's, so compare means, "
        "not seeds, across them): A: SWFP (BC + online) (seeds 0, 1); B: RLPD, ten critics (demos, UTD 2), SWFP (BC + "
        "online) (seed 2); the other rows' results predate the record.",
        "",
    ]


def test_speed_ratios_are_taken_round_by_round(monkeypatch):
    """Per-round ratios to SAC, their median and range, on a fake clock: a slow moment that hits one
    round of both models leaves the ratios exact."""
    clock = {"now": 0.0, "round": 0}

    class FakeModel:
        def __init__(self, step_cost, predict_cost):
            self.step_cost, self.predict_cost = step_cost, predict_cost

        def learn(self, steps, reset_num_timesteps=True):
            slow = 3.0 if clock["round"] == 2 else 1.0  # the machine is slow during round 2
            clock["now"] += steps * self.step_cost * slow
            if self.step_cost == 0.02:  # SAC trains last in a round
                clock["round"] += 1

        def predict(self, obs, deterministic=False):
            clock["now"] += self.predict_cost

    costs = {"swfp": (0.04, 0.0008), "sac": (0.02, 0.0004)}
    monkeypatch.setattr(cost, "pendulum_model", lambda algo, seed, **kwargs: FakeModel(*costs[algo]))
    monkeypatch.setattr(cost.time, "perf_counter", lambda: clock["now"])
    rows = cost.measure_speed({"swfp": dict(algo="swfp"), "sac": dict(algo="sac")}, obs=None, rounds=4, train_chunk=10, predict_calls=3)
    assert rows["swfp"]["train_ratio_to_sac"] == pytest.approx(0.5) and rows["swfp"]["train_ratio_range"] == pytest.approx([0.5, 0.5])
    assert rows["swfp"]["predict_ratio_to_sac"] == pytest.approx(2.0) and rows["sac"]["train_ratio_to_sac"] == pytest.approx(1.0)
    # the steps/s of the totals still count the slow round (one of the four measured rounds takes 3x)
    assert rows["swfp"]["train_steps_per_s"] == pytest.approx(40 / (10 * 0.04 * (1 + 1 + 3 + 1)))
    assert render_core.speed_ratios(rows["swfp"], rows["sac"]) == ("0.50× (0.50–0.50)", "2.00× (2.00–2.00)")
    assert render_core.speed_ratios(
        {"train_steps_per_s": 30.0, "predict_ms_median": 0.5}, {"train_steps_per_s": 60.0, "predict_ms_median": 0.25}
    ) == ("0.50×", "2.00×")


def test_speed_models_are_on_the_cpu_where_a_gpu_is_visible(monkeypatch):
    """The core and cost numbers are CPU numbers: SB3's device "auto" would take the GPU and they would be a GPU's."""
    monkeypatch.setattr(th.cuda, "is_available", lambda: True)
    assert cost.pendulum_model("sac", 0, policy_kwargs=dict(net_arch=[8])).device == th.device("cpu")
    configs = []

    def measure_speed(named_configs, obs, train=True):
        configs.extend(named_configs.values())
        return {name: {"predict_ms_median": 1.0, "predict_ratio_to_sac": 1.0} for name in named_configs}

    monkeypatch.setattr(cost, "measure_speed", measure_speed)
    monkeypatch.setattr(cost, "actor_update_cost", lambda n_blocks, device: {})
    monkeypatch.setattr(cost, "write_result", lambda path, result: None)
    cost.run_cost("meta")
    assert configs and all(config["device"] == "meta" for config in configs)  # the suite's --device reaches every model


def test_goal_verdict_says_which_side_the_median_falls_and_whether_rounds_straddle():
    verdict = render_core.goal_verdict
    assert verdict(0.65, 0.6, [0.61, 0.7], at_least=True) == "met"
    assert verdict(0.55, 0.6, None, at_least=True) == "not met"
    assert verdict(0.60, 0.6, [0.54, 0.74], at_least=True) == "met (rounds 0.54–0.74: on both sides of 0.6×, so by the median only, not with a margin)"
    assert verdict(0.57, 0.6, [0.52, 0.67], at_least=True) == "not met (rounds 0.52–0.67: on both sides of 0.6×, so missed by the median, met in some rounds)"
    # an upper goal (latency): below it is met
    assert verdict(1.88, 2.0, [1.84, 2.13], at_least=False).startswith("met (rounds 1.84–2.13")
    assert verdict(2.2, 2.0, [2.1, 2.4], at_least=False) == "not met"


def test_command_lines_give_each_command_its_own_seeds_when_they_differ():
    run = lambda command, seed: {"command": f"{command} --seeds {seed} --budget cpu", "seed": seed}  # noqa: E731
    same = [run("python a", 0), run("python a", 1), run("python b", 0), run("python b", 1)]
    assert command_lines(same) == ["Commands (each with `--seeds 0 1`):", "", "- `python a`", "- `python b`", ""]
    held_out = [*same, run("python c", 3), run("python c", 4)]
    assert command_lines(held_out) == ["Commands:", "", "- `python a --seeds 0 1`", "- `python b --seeds 0 1`", "- `python c --seeds 3 4`", ""]


def test_command_lines_keep_a_budget_other_than_the_default():
    runs = [{"command": f"python -m benchmarks.suite --tasks hopper --methods swfp --seeds {seed} --budget long", "seed": seed} for seed in (0, 1)]
    assert command_lines(runs) == ["Commands (each with `--seeds 0 1`):", "", "- `python -m benchmarks.suite --tasks hopper --methods swfp --budget long`", ""]


def test_command_lines_show_the_commands_of_the_former_scripts_in_todays_form():
    legacy = [
        {"command": "python examples/benchmark_suite.py --tasks toy --methods sac --seeds 0 --budget cpu", "seed": 0},
        {"command": "python -m benchmarks.suite --tasks toy --methods sac --seeds 1 --budget cpu", "seed": 1},
    ]
    assert command_lines(legacy) == ["Commands (each with `--seeds 0 1`):", "", "- `python -m benchmarks.suite --tasks toy --methods sac`", ""]


def test_robustness_suite_checks_the_acceptance_lines_per_run(results, monkeypatch):
    monkeypatch.setitem(tasks.TASKS, "toy", dataclasses.replace(tasks.TASKS["toy"], eval_episodes=3))
    assert run_one(Run("toy", "swfp", 10, folder="robustness"), results).startswith("done")
    path = result_path(results, "robustness", "toy", "swfp", 10)
    run = json.loads(path.read_text())
    assert run["command"] == "python -m benchmarks.suite --suite robustness --tasks toy --seeds 10"
    assert run["task_spec"]["eval_episodes"] == 10  # at least ROBUSTNESS_EVAL_EPISODES, whatever the table's task uses
    assert not result_path(results, "cpu", "toy", "swfp", 10).exists()  # not mixed into the methods' tables
    # BC 0.5; one evaluation at 0.44 is below 0.5 - 10% of 0.5 = 0.45; the final is above BC
    run["curve"] = [[0, 0.5, 0.0, None], [60, 0.44, 0.0, None], [120, 0.6, 0.0, None]]
    run["toy_modes"].update(high_reward_share=0.95, high_reward_modes_kept=3)
    path.write_text(json.dumps(run))
    assert robustness_row(run) == {"bc": 0.5, "final": 0.6, "lowest": 0.44, "final_ge_bc": True, "no_dip": False}
    page, _ = pages(results)
    assert "| SWFPToyBandit-v0 | 1 | 0.500 | 0.600 | 1/1 | 0/1 | s10: 0.500 → 0.600 (0.440) |" in page
    assert "- Final ≥ BC start in 1 of 1 runs (goal ≥ 1 of 1): **met**." in page
    assert "- No evaluation below BC − 10% of |BC| in 0 of 1 runs (goal ≥ 1 of 1): **not met**." in page
    assert "- Mean final above the mean BC start on every task: **met**." in page
    assert "in 1 of 1 seeds (0.950 (3/3)): **met**." in page
    assert "Beside the returns" not in page  # a task that reports no success
    assert "Stale runs" not in page
    run["hyperparams"]["w2_coef"] = "99.0"  # as if the preset changed after this run: the suite would skip it
    path.write_text(json.dumps(run))
    page, _ = pages(results)
    entry_w2_coef = methods.swfp_o2o_entry("SWFPToyBandit-v0")[0]["w2_coef"]
    assert f"so not the preset these lines are about; delete their JSON and rerun: `toy` s10 (w2_coef ran 99.0, entry now {entry_w2_coef!r})." in page
    run["hyperparams"]["w2_coef"] = repr(entry_w2_coef)
    run["curve"] = [[0, 0.5, 0.0, 0.5], [60, 0.44, 0.0, 0.4], [120, 0.6, 0.0, 1.0]]
    path.write_text(json.dumps(run))
    page, _ = pages(results)
    assert "- SWFPToyBandit-v0: success rate 0.50 at the BC start, 1.00 at the end (mean over seeds)." in page


@pytest.mark.parametrize("option", [dict(q_normalization=True), dict(bc_coef=1.0)])
def test_actor_update_cost_runs_with_the_options_that_log_more_terms(option):
    from sb3_swfp import DemoReplayBuffer
    from sb3_swfp.demos import collect_demonstrations
    from sb3_swfp.experts import PendulumSwingUpExpert

    if "bc_coef" in option:  # the BC term draws from demonstrations in the replay buffer
        demos = collect_demonstrations("Pendulum-v1", PendulumSwingUpExpert(seed=0), n_steps=50, seed=0)
        option = dict(option, replay_buffer_class=DemoReplayBuffer, replay_buffer_kwargs=dict(demonstrations=demos))
    result = cost.actor_update_cost(2, "cpu", batch_size=16, repeats=1, policy_kwargs=dict(net_arch=[16]), **option)
    assert result["one_block_ms"] > 0 and result["whole_chain_ms"] > 0


class Stop(Exception):
    """The session ends in the middle of a run."""


def stop_at_evaluation(monkeypatch, n: int):
    """``runner.evaluate`` raising :class:`Stop` at its ``n``-th call (the session ends there); returns the real one."""
    evaluate, calls = runner.evaluate, []

    def stopping(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise Stop
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(runner, "evaluate", stopping)
    return evaluate


@pytest.mark.parametrize("method", ["swfp", "rlpd"])
def test_a_stopped_run_goes_on_from_its_last_evaluation(results, monkeypatch, method):
    evaluate = stop_at_evaluation(monkeypatch, 3)
    with pytest.raises(Stop):
        run_one(Run("toy", method, 0), results)
    path = result_path(results, "cpu", "toy", method, 0)
    checkpoint = path.with_suffix(".checkpoint")
    assert not path.exists() and json.loads((checkpoint / "state.json").read_text())["curve"][-1][0] == 60
    monkeypatch.setattr(runner, "evaluate", evaluate)
    assert run_one(Run("toy", method, 0), results).startswith("done")
    result = json.loads(path.read_text())
    assert [point[0] for point in result["curve"]] == [0, 60, 120] and result["resumed_at"] == [60]
    assert not checkpoint.exists()
    # each part of the run says on what machine and code it ran
    assert [segment["from_step"] for segment in result["segments"]] == [0, 60]
    assert result["segments"][1]["machine"] == result["machine"] and result["segments"][1]["code"] == result["code"]


def test_a_stopped_variant_resumes_only_with_its_own_settings(results, monkeypatch):
    """A checkpoint is finished only by the run it began as: another --swfp-kwargs (or budget, task, device) would
    put a run that changed settings halfway under the new command."""
    evaluate = stop_at_evaluation(monkeypatch, 3)
    method = methods.variant_method("lr")
    with pytest.raises(Stop):
        run_one(Run("toy", method, 0, swfp_kwargs={"actor_learning_rate": 3e-4}), results)
    monkeypatch.setattr(runner, "evaluate", evaluate)
    with pytest.raises(ValueError, match=r"swfp_kwargs: \{'actor_learning_rate': 0.0003\} there, \{'actor_learning_rate': 0.001\} now"):
        run_one(Run("toy", method, 0, swfp_kwargs={"actor_learning_rate": 1e-3}), results)
    # a checkpoint from before the settings were recorded is checked on what it holds
    state_path = result_path(results, "cpu", "toy", method, 0).with_suffix(".checkpoint") / "state.json"
    state = json.loads(state_path.read_text())
    state_path.write_text(json.dumps({key: value for key, value in state.items() if key not in ("settings", "segments")}))
    assert run_one(Run("toy", method, 0, swfp_kwargs={"actor_learning_rate": 1e-3}), results).startswith("done")
    result = json.loads(result_path(results, "cpu", "toy", method, 0).read_text())
    assert [segment["from_step"] for segment in result["segments"]] == [60]


def test_a_run_killed_while_writing_its_result_leaves_no_file_the_suite_would_skip(results, monkeypatch):
    path = result_path(results, "cpu", "toy", "swfp", 0)
    replace = os.replace

    def killed_at_the_result(src, dst):  # the process dies between writing the result and renaming it
        if Path(dst) == path:
            raise Stop
        replace(src, dst)

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", killed_at_the_result)
        with pytest.raises(Stop):
            run_one(Run("toy", "swfp", 0), results)
    assert not path.exists() and path.with_name(path.name + ".tmp").exists()
    assert run_one(Run("toy", "swfp", 0), results).startswith("done")  # not "skip": the run is made again
    assert [point[0] for point in json.loads(path.read_text())["curve"]] == [0, 60, 120]


def test_core_learning_with_another_squash_writes_its_own_file_and_section(tmp_path, monkeypatch):
    from benchmarks import core

    made = []

    def small_model(algo, seed, **overrides):
        made.append(overrides)
        return cost.pendulum_model(algo, seed, **overrides, learning_starts=50, batch_size=32, policy_kwargs=dict(net_arch=[32]))

    monkeypatch.setattr(core, "pendulum_model", small_model)
    for module in (core, render_core):  # these 100 steps stand for the page's 20k
        monkeypatch.setattr(module, "LEARNING_STEPS", 100)
        monkeypatch.setattr(module, "LEARNING_EVAL_EVERY", 100)
    results, docs = tmp_path / "core", tmp_path / "docs"
    assert core.run_learning(("swfp", 0, 100, 100, "clip"), results).startswith("done learning_swfp-clip_s0.json")
    assert made == [{"squash": "clip"}]  # the zoo entry with the squash on top, nothing else changed
    result = json.loads((results / "learning_swfp-clip_s0.json").read_text())
    assert result["squash"] == "clip" and result["hyperparams"]["squash"] == "'clip'"
    assert result["command"].endswith("--suite learning --seeds 0 --algos swfp --squash clip")
    assert result["machine"] == machine() and re.fullmatch("[0-9a-f]{40}", result["code"]["commit"])  # where it ran, on what code
    docs.mkdir()
    render_core.render_core(results, docs)
    page = (docs / "core_benchmarks.md").read_text()
    # the default's table stays empty; the squash run has its own section and count
    assert "| SWFP |" not in page and "## Learning from scratch with another squash" in page
    assert "Seeds with `clip` that reach >= -200 within 20k steps: 0 of 1." in page
    with pytest.raises(SystemExit):
        core.main(["--suite", "learning", "--algos", "sac", "--squash", "tanh"])
    with pytest.raises(SystemExit):  # the class default's runs are the SWFP rows, not another squash's
        core.main(["--suite", "learning", "--algos", "swfp", "--squash", "soft_clip"])


def test_a_core_run_the_nan_guard_stopped_has_one_row_and_counts_as_a_miss(tmp_path):
    results, docs = tmp_path / "core", tmp_path / "docs"
    results.mkdir()
    docs.mkdir()
    curve = [[1000 * i, -1000.0 + 60 * i, 10.0] for i in range(1, 21)]  # reaches -200 at step 14000
    base = {"algo": "swfp", "total_timesteps": 20_000, "eval_every": 1000, "wall_s": 60.0, "command": "c"}
    (results / "learning_swfp_s0.json").write_text(json.dumps({**base, "seed": 0, "curve": curve}))
    stopped = {**base, "seed": 1, "curve": curve[:16], "error": "NonFiniteLossError at env step 16000"}
    (results / "learning_swfp_s1.json").write_text(json.dumps(stopped))
    render_core.render_core(results, docs)
    page = (docs / "core_benchmarks.md").read_text()
    assert [line for line in page.splitlines() if line.startswith("| SWFP | 1 |")] == ["| SWFP | 1 | stopped: NonFiniteLossError at env step 16000 | | | |"]
    assert "- SWFP: 1 of 2" in page


def test_a_core_learning_run_with_another_budget_stays_out_of_the_20k_table(tmp_path, monkeypatch):
    from benchmarks import core

    monkeypatch.setattr(core, "pendulum_model", lambda algo, seed, **overrides: cost.pendulum_model(algo, seed, learning_starts=50, policy_kwargs=dict(net_arch=[8])))
    results, docs = tmp_path / "core", tmp_path / "docs"
    assert core.run_learning(("sac", 9, 100, 50, None), results).startswith("done learning_sac_s9_100steps_every50.json")
    result = json.loads((results / "learning_sac_s9_100steps_every50.json").read_text())
    assert result["command"].endswith("--suite learning --seeds 9 --algos sac --timesteps 100 --eval-every 50")
    docs.mkdir()
    render_core.render_core(results, docs)
    page = (docs / "core_benchmarks.md").read_text()
    assert "| SAC |" not in page and f"not in this section: `{result['command']}`" in page


def test_core_speed_suite_refuses_the_learning_suites_options(capsys, monkeypatch):
    from benchmarks import core

    monkeypatch.setattr(core, "run_speed", lambda *args, **kwargs: None)  # were the check gone, nothing would run
    monkeypatch.setattr(core, "render_core", lambda *args, **kwargs: None)
    with pytest.raises(SystemExit):  # it would time the default squash and say nothing
        core.main(["--suite", "speed", "--algos", "swfp", "--squash", "clip"])
    assert "--suite speed takes none of --algos, --squash" in capsys.readouterr().err


def test_stale_arguments_compare_the_scalar_policy_kwargs_a_run_was_made_with():
    entry = {"w2_coef": 100.0, "policy_kwargs": {"n_critics": 10, "net_arch": [256, 256]}}
    two_critics = {"hyperparams": {"w2_coef": "100.0", "policy_kwargs": "{'net_arch': [256, 256], 'n_blocks': 5, 'squash': 'soft_clip'}"}}
    assert stale_arguments(two_critics, entry) == ["policy_kwargs n_critics ran 2, entry now 10"]  # 2: the policy's default
    ten_critics = {"hyperparams": {**two_critics["hyperparams"], "policy_kwargs": "{'net_arch': [256, 256], 'n_critics': 10, 'n_blocks': 5}"}}
    assert stale_arguments(ten_critics, entry) == []
    # a variant's policy_kwargs merge into the entry's key by key, as the suite builds the model
    assert stale_arguments({**two_critics, "swfp_kwargs": {"policy_kwargs": {"n_critics": 2}}}, entry) == []


def test_stale_arguments_take_an_option_a_run_did_not_record_as_swfps_default():
    # made before selection_steps existed: it ran as 0 does, so an entry that asks for 1000 makes it stale
    before = {"hyperparams": {"w2_coef": "100.0"}}
    assert stale_arguments(before, {"w2_coef": 100.0, "selection_steps": 1000}) == [
        "selection_steps not recorded (SWFP's default 0 if its code had no such option), entry now 1000"
    ]
    assert stale_arguments(before, {"w2_coef": 100.0, "selection_steps": 0}) == []  # the entry asks for the default
    # a variant's own argument reached the model whatever the run recorded (older runs recorded fewer)
    assert stale_arguments({**before, "swfp_kwargs": {"selection_steps": 0}}, {"w2_coef": 100.0, "selection_steps": 1000}) == []
    # selection_deterministic does nothing without the selection: a run made before it stays current if its selection was off
    deterministic = {"w2_coef": 100.0, "selection_steps": 1000, "selection_deterministic": True}
    assert stale_arguments({**before, "swfp_kwargs": {"selection_steps": 0}}, deterministic) == []
    assert stale_arguments({"hyperparams": {"w2_coef": "100.0", "selection_steps": "1000"}}, deterministic) == [
        "selection_deterministic not recorded (SWFP's default False if its code had no such option), entry now True"
    ]
    # so does selection_episodes: off, it leaves the run current; on, an unrecorded one ran as 1
    three = {**deterministic, "selection_episodes": 3}
    assert stale_arguments({**before, "swfp_kwargs": {"selection_steps": 0}}, three) == []
    assert stale_arguments({"hyperparams": {"w2_coef": "100.0", "selection_steps": "1000", "selection_deterministic": "True"}}, three) == [
        "selection_episodes not recorded (SWFP's default 1 if its code had no such option), entry now 3"
    ]


def test_robustness_table_splits_final_at_or_above_bc_by_where_bc_started_against_the_demonstrations():
    def run(seed, bc, final, demos):
        return {"task": "pendulum", "seed": seed, "curve": [[0, bc, 0.0, None], [100, final, 0.0, None]], "demos": {"episode_return_mean": demos}}

    # BC above the demonstrations: one holds, one falls; below: the one run rises
    lines = robustness_table([run(0, -100.0, -100.0, -150.0), run(1, -120.0, -130.0, -150.0), run(2, -300.0, -200.0, -150.0)], planned=3)
    assert (
        "Final ≥ BC start where BC started above the demonstrations' mean return: 1 of 2 runs; "
        "where it started at or below it: 1 of 1 (every task but the toy)."
    ) in lines


def test_robustness_table_counts_the_kept_changes_that_raised_and_lowered_the_evaluation():
    def run(task, seed, values, selection_steps=1000):
        curve = [[step * 100, value, 0.0, None] for step, value in enumerate(values)]
        return {"task": task, "seed": seed, "curve": curve, "hyperparams": {"selection_steps": selection_steps}}

    runs = [
        run("pendulum", 0, [-200.0, -200.0, -150.0, -150.0, -170.0]),  # kept twice: up, then down
        run("pendulum", 1, [-180.0, -180.0, -180.0]),  # nothing kept
        run("hopper", 0, [700.0, 650.0, 720.0, 720.0]),
        run("hopper", 1, [700.0, 500.0, 900.0], selection_steps=0),  # no selection: not counted
    ]
    lines = robustness_table(runs, planned=4, check_stale=False)
    assert (
        "With the policy selection, an evaluation differs from the one before only where a change was kept (the kept "
        "actor answers, on the same start states): it rose 2 times and fell 2 (Pendulum-v1 1 up, 1 down; Hopper-v5 1 up, 1 down); "
        "1 of the 3 runs show no change: every evaluation is the start's."
    ) in lines
    assert not any("policy selection" in line for line in robustness_table(runs[3:], planned=1, check_stale=False))


SLOW_JOB = '''
import os
import time
from pathlib import Path


def slow(job, folder):
    Path(folder, f"started_{os.getpid()}").write_text("")
    time.sleep(20)
    Path(folder, "finished").write_text("")
    return "done"
'''


@pytest.mark.parametrize("ending", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_terminated_suite_takes_its_workers_with_it(tmp_path, ending):
    """kill (SIGTERM) on the suite ends its worker processes too, so that no run writes after it was stopped; a
    worker whose suite was killed outright (SIGKILL, no time to end anything) ends by itself."""
    (tmp_path / "slow_job.py").write_text(SLOW_JOB)
    root = Path(__file__).resolve().parents[1]
    script = f"import slow_job; from benchmarks.runner import run_jobs; run_jobs(slow_job.slow, [0], 1, folder={str(tmp_path)!r})"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)])}
    suite = subprocess.Popen([sys.executable, "-c", script], env=env)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("started_*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    (started,) = tmp_path.glob("started_*")
    worker = int(started.name.removeprefix("started_"))
    suite.send_signal(ending)
    assert suite.wait(timeout=30) == (128 + signal.SIGTERM if ending == signal.SIGTERM else -signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker)
    assert not (tmp_path / "finished").exists()


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by its new parent, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def test_a_worker_that_dies_ends_the_suite_with_a_message():
    """Killed by the OOM killer, a worker never returns its run: the suite says so instead of waiting for ever."""
    root = Path(__file__).resolve().parents[1]
    script = "import os; from benchmarks.runner import run_jobs; run_jobs(os._exit, [3], 1)"  # the worker exits mid-job
    ended = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True, timeout=60)
    assert ended.returncode == 1 and "a worker process of the suite died" in ended.stderr


def test_a_run_under_way_in_another_process_is_skipped(results):
    """Two processes on one run would train from one checkpoint and write one file in turn."""
    out = result_path(results, "cpu", "toy", "swfp", 0)
    out.parent.mkdir(parents=True, exist_ok=True)
    with runner._held(out.with_name(out.name + ".lock")) as held:  # another process's run, as far as the lock goes
        assert held
        assert run_one(Run("toy", "swfp", 0), results).endswith(": under way in another process")
    assert not out.exists() and not list(out.parent.glob("*.lock"))


def test_bc_drift_starts_from_the_runs_bc_policy_and_evaluates_after_each_round(results, monkeypatch):
    from benchmarks import studies

    monkeypatch.setattr(studies, "BC_DRIFT_ROUNDS", 2)
    monkeypatch.setattr(studies, "BC_DRIFT_STEPS", 5)
    assert studies.run_bc_drift(("toy", 0, None), results).startswith("done")
    drift = json.loads((results / "bc_drift" / "toy_s0.json").read_text())
    assert [step for step, _ in drift["curve"]] == [0, 5, 10]
    assert drift["command"].endswith("--suite bc_drift --tasks toy --seeds 0")
    # Its step 0 is the BC start of the suite's SWFP run of the same seed
    run_one(Run("toy", "swfp", 0), results)
    run = json.loads(result_path(results, "cpu", "toy", "swfp", 0).read_text())
    assert drift["curve"][0][1] == run["curve"][0][1]
    # Each round clones on: the policy, and so its evaluation (same samples' noise every time), moves
    assert len({value for _, value in drift["curve"]}) == 3
    assert studies.run_bc_drift(("toy", 0, None), results).startswith("skip")
    assert "curve_wide" not in drift and drift["machine"]["cpu_capability"]


def test_bc_drift_with_eval_episodes_evaluates_the_same_policies_twice(results, monkeypatch):
    from benchmarks import studies
    from benchmarks.suite import main

    monkeypatch.setattr(studies, "BC_DRIFT_ROUNDS", 1)
    monkeypatch.setattr(studies, "BC_DRIFT_STEPS", 5)
    own = TASKS["pendulum"].eval_episodes
    # Over the task's own number of episodes the second evaluation is the first, to the digit
    assert studies.run_bc_drift(("pendulum", 0, own), results).startswith("done")
    same = json.loads((results / "bc_drift" / f"pendulum_s0_e{own}.json").read_text())
    assert same["curve_wide"] == same["curve"] and same["eval_episodes_wide"] == own
    assert same["command"].endswith(f"--tasks pendulum --seeds 0 --eval-episodes {own}")
    # Over other episodes it is another number for the same policy; the plain run's file is not touched
    assert studies.run_bc_drift(("pendulum", 0, own + 2), results).startswith("done")
    wide = json.loads((results / "bc_drift" / f"pendulum_s0_e{own + 2}.json").read_text())
    assert [step for step, _ in wide["curve_wide"]] == [0, 5] and wide["curve"] == same["curve"]
    assert wide["curve_wide"] != wide["curve"]
    assert not (results / "bc_drift" / "pendulum_s0.json").exists()
    with pytest.raises(SystemExit):
        main(["--suite", "robustness", "--eval-episodes", "40"])  # the option belongs to bc_drift alone


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--suite", "robustness", "--variant", "x", "--swfp-kwargs", "{}"], "--variant, --swfp-kwargs"),  # would run the preset
        (["--suite", "bc_drift", "--device", "cuda"], "--device"),  # would clone on the CPU
        (["--suite", "robustness", "--budget", "long"], "--budget"),  # the suite's budgets are fixed
        (["--suite", "density", "--tasks", "hopper"], "--tasks"),
        (["--suite", "cost", "--seeds", "1"], "--seeds"),
    ],
)
def test_suite_refuses_options_its_suite_would_drop(argv, named, capsys, monkeypatch):
    from benchmarks import suite

    for name in ("run_jobs", "run_cost", "render"):  # were the check gone, nothing would run or be written
        monkeypatch.setattr(suite, name, lambda *args, **kwargs: None)
    with pytest.raises(SystemExit):
        suite.main(argv)
    assert f"--suite {argv[1]} does not use {named} (it uses" in capsys.readouterr().err


def test_suite_refuses_a_variant_with_other_methods(capsys, monkeypatch):
    from benchmarks import suite

    monkeypatch.setattr(suite, "run_jobs", lambda *args, **kwargs: None)
    monkeypatch.setattr(suite, "render", lambda *args, **kwargs: None)
    with pytest.raises(SystemExit):  # it ran the variant alone
        suite.main(["--variant", "x", "--swfp-kwargs", "{}", "--methods", "sac"])
    assert "it does not run --methods sac" in capsys.readouterr().err


def test_suite_refuses_counts_of_episodes_below_one(capsys, monkeypatch):
    from benchmarks import suite

    monkeypatch.setattr(suite, "run_jobs", lambda *args, **kwargs: None)
    monkeypatch.setattr(suite, "render", lambda *args, **kwargs: None)
    for option in ("--eval-episodes", "--stochastic-eval"):
        name = "bc_drift" if option == "--eval-episodes" else "runs"
        with pytest.raises(SystemExit):
            suite.main(["--suite", name, option, "0"])
        assert f"{option} is a positive count of episodes, got 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--seeds", "-1"], r"--seeds must be in \[0, 2\*\*32 - 1\]"),
        (["--jobs", "0"], "--jobs is a number of processes, at least 1, got 0"),
        (["--tasks", "toy", "--budget", "long"], "--budget long: SWFPToyBandit-v0 has no 'long' budget"),
        (["--suite", "robustness", "--tasks", "toy", "--seeds", "0", "35"], "its table would count seeds 0 as fresh"),
        (["--variant", "x", "--swfp-kwargs", '{"nosuch": 1}'], "SWFP takes no argument nosuch"),
        (["--variant", "x", "--swfp-kwargs", '{"seed": 3}'], "seed set by the suite itself"),
        (["--variant", "x", "--swfp-kwargs", '{"policy_kwargs": {"nosuch": 1}}'], r"policy_kwargs: nosuch not FlowPolicy's to take here"),
        (["--variant", "x", "--swfp-kwargs", '{"policy_kwargs": {"n_blocks": 3}}'], r"policy_kwargs: n_blocks not FlowPolicy's .* give them to SWFP"),
        (["--variant", "x", "--swfp-kwargs", '{"replay_buffer_kwargs": {"demonstrations": "d.npz"}}'], "the task gives the demonstrations"),
    ],
)
def test_suite_refuses_what_would_fail_in_a_worker_before_any_run_starts(argv, message, capsys, monkeypatch):
    from benchmarks import suite

    monkeypatch.setattr(suite, "run_jobs", lambda *args, **kwargs: pytest.fail("a run started"))
    monkeypatch.setattr(suite, "render", lambda *args, **kwargs: None)
    with pytest.raises(SystemExit):
        suite.main(argv)
    assert re.search(message, capsys.readouterr().err)


def test_suite_runs_a_seed_given_twice_once(monkeypatch):
    from benchmarks import suite

    started = []
    monkeypatch.setattr(suite, "run_jobs", lambda function, jobs, n_jobs, **kwargs: started.extend(jobs))
    monkeypatch.setattr(suite, "render", lambda *args, **kwargs: None)
    suite.main(["--tasks", "toy", "toy", "--methods", "swfp", "--seeds", "0", "0", "1"])
    assert [(run.task, run.seed) for run in started] == [("toy", 0), ("toy", 1)]


def test_a_run_the_nan_guard_stopped_fails_both_lines_and_does_not_cut_the_others_curves(tmp_path):
    from benchmarks.render_tasks import render_task

    stopped = {"curve": [[0, -150.0, 0.0, None]], "error": "NonFiniteLossError at env step 10: critic_loss"}
    assert robustness_row(stopped) == {"bc": -150.0, "final": -150.0, "lowest": -150.0, "final_ge_bc": False, "no_dip": False}

    def run(seed, curve, error=None):
        return {
            "task": "pendulum", "method": "sac", "seed": seed, "curve": [[step, value, 0.0, None] for step, value in curve], "error": error,
            "online_steps": 8000, "online_wall_s": 60.0, "demos": {"transitions": 10, "episode_return_mean": -200.0}, "command": "c",
        }  # fmt: skip

    full = [(0, -1000.0), (4000, -500.0), (8000, -200.0)]
    lines = render_task(tmp_path, tmp_path, "cpu", "pendulum", [run(0, full), run(1, full), run(2, full[:2], "NonFiniteLossError")])
    (row,) = [line for line in lines if line.startswith("| SAC from scratch")]
    # final and mean of all evaluations over the two complete runs, each over its three evaluations
    assert "| -1000.0 ± 0.0 | -200.0 ± 0.0 | -200.0 | -566.7 ± 0.0 |" in row, row
    assert "(1 stopped by the NaN guard, last evaluated at step 4000; not in final, best or mean)" in row
    # The robustness table marks it, and its task does not count as improving on the mean
    rising = {"task": "pendulum", "seed": 15, "curve": [[0, -300.0, 0.0, None], [8000, -100.0, 0.0, None]], "demos": {}}
    table = "\n".join(robustness_table([rising, {**rising, "seed": 16, **stopped}], planned=2))
    assert "s16: -150.0 → -150.0 (-150.0), stopped by the NaN guard after step 0" in table
    assert "Mean final above the mean BC start on every task: **not met**" in table


def test_render_names_a_result_file_that_is_not_json(tmp_path):
    from benchmarks import read_result

    cut = tmp_path / "swfp_s0.json"
    cut.write_text('{"task": "toy", "cur')
    with pytest.raises(ValueError, match=r"swfp_s0.json is not a readable result .*restore it from git, or delete it"):
        read_result(cut)


@pytest.mark.parametrize("missing", ["matplotlib", "rl_zoo3", "mujoco"])
def test_the_benchmarks_name_a_missing_package_and_its_extra_before_any_run(missing, monkeypatch):
    """A suite ran to its end, then failed to render its page (matplotlib), or failed in a worker (yaml, rl_zoo3, an env)."""
    import importlib.util

    from benchmarks import __main__ as render_command
    from benchmarks import core, suite

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == missing else real_find_spec(name, *args))
    for module, work in ((suite, "run_jobs"), (suite, "render"), (core, "run_jobs"), (core, "run_speed"), (core, "render_core"), (render_command, "render_all")):
        if hasattr(module, work):
            monkeypatch.setattr(module, work, lambda *args, **kwargs: pytest.fail("work started"))
    extra = {"mujoco": "mujoco"}.get(missing, "zoo")
    needed_by = {"mujoco": "the hopper task"}.get(missing, "running the benchmarks")
    message = rf"{needed_by} needs '{missing}', which is not installed: pip install \"sb3-swfp\[{extra}\]\""
    with pytest.raises(ModuleNotFoundError, match=message):
        suite.main(["--tasks", "pendulum", "hopper", "--seeds", "99"])
    if missing != "mujoco":
        with pytest.raises(ModuleNotFoundError, match=message):
            core.main(["--suite", "speed"])
    if missing == "matplotlib":  # the pages need matplotlib alone
        with pytest.raises(ModuleNotFoundError, match=r"rendering the benchmark pages needs 'matplotlib'"):
            render_command.main(["--render"])


def test_a_sensitivity_run_records_the_settings_it_was_made_with(results):
    from benchmarks.studies import run_sensitivity

    assert run_sensitivity(("w2_coef", 2.0, 0), results).startswith("done")
    result = json.loads((results / "sensitivity" / "w2_coef2_s0.json").read_text())
    assert result["hyperparams"]["w2_coef"] == "2.0" and result["hyperparams"]["n_blocks"] == repr(methods.swfp_o2o_entry("SWFPToyBandit-v0")[0].get("n_blocks", 5))
    assert result["command"] == "python -m benchmarks.suite --suite sensitivity --seeds 0" and result["machine"] == machine()
    assert re.fullmatch("[0-9a-f]{40}", result["code"]["commit"])


def test_crossq_on_a_dict_observation_task_is_refused_with_why():
    pytest.importorskip("gymnasium_robotics")
    pytest.importorskip("sb3_contrib")
    task = tasks.TASKS["umaze"]
    with pytest.raises(ValueError, match="crossq cannot run PointMaze_UMaze-v3: sb3-contrib's CrossQ has no MultiInputPolicy"):
        methods.make_model("crossq", task, None, seed=0, budget="cpu", device="cpu")


def test_a_result_records_the_action_noise_it_ran_with():
    from benchmarks.runner import describe

    task = tasks.TASKS["pendulum"]
    td3 = methods.make_model("td3", task, None, seed=0, budget="cpu", device="cpu")
    assert repr(describe(td3)["action_noise"]).startswith("NormalActionNoise(")


def _mean_at_least(returns: list[float], kept: list[float]) -> bool:
    return float(np.mean(returns)) >= float(np.mean(kept))


def test_selection_evals_record_each_decision_and_leave_the_run_as_it_was(results, monkeypatch):
    from sb3_swfp.common.selection import PolicySelection

    # The copy each decision measured, and the copies the record evaluates (policies, not the model)
    measured, evaluated = [], []
    decide, evaluate = PolicySelection._decide, runner.evaluate

    def measuring(self):
        measured.append({key: value.clone() for key, value in self.candidate.items()})
        decide(self)

    def evaluating(model, *args, **kwargs):
        if not hasattr(model, "selection"):
            evaluated.append({key: value.clone() for key, value in model.actor_target.state_dict().items()})
        return evaluate(model, *args, **kwargs)

    monkeypatch.setattr(PolicySelection, "_decide", measuring)
    monkeypatch.setattr(runner, "evaluate", evaluating)
    selecting = {"selection_steps": 20}  # phases of 20 one-step episodes after the 50 uniform steps
    plain, recorded = methods.variant_method("sel"), methods.variant_method("sel_rec")
    assert run_one(Run("toy", plain, 0, swfp_kwargs=selecting), results).startswith("done")
    assert not evaluated and len(measured) == 3
    measured.clear()
    assert run_one(Run("toy", recorded, 0, swfp_kwargs=selecting, selection_evals=True), results).startswith("done")
    assert len(evaluated) == len(measured) == 3
    assert all(all(th.equal(copy[key], value) for key, value in state.items()) for copy, state in zip(evaluated, measured))
    assert not all(th.equal(measured[0][key], value) for key, value in measured[2].items())  # the learner moved
    plain, recorded = (json.loads(result_path(results, "cpu", "toy", method, 0).read_text()) for method in (plain, recorded))
    # its evaluations draw none of training's random numbers (the final modes sample from training's generator)
    assert recorded["curve"] == plain["curve"] and recorded["toy_modes"] == plain["toy_modes"]
    phases = recorded["selection_phases"]
    assert [phase["step"] for phase in phases] == [70, 90, 110] and "selection_phases" not in plain
    assert all(len(phase["returns"]) == 20 for phase in phases) and phases[0]["kept"]
    assert phases[0]["eval"] == recorded["curve"][0][1:]  # the first phase measures the start
    # The preset's rule replayed on the records gives the run's own curve; a rule that keeps nothing, the start
    assert runner.replayed(recorded, _mean_at_least)["curve"] == recorded["curve"]
    start = recorded["curve"][0][1:]
    assert [point[1:] for point in runner.replayed(recorded, lambda *_: False)["curve"]] == [start] * 3
    # the copies not kept are evaluated themselves (a learner moved from the start), not the kept one
    assert [phase["kept"] for phase in phases] == [True, False, False] and phases[2]["eval"] != start
    always = runner.replayed(recorded, lambda *_: True)
    assert [point[1:] for point in always["curve"]] == [start, start, phases[2]["eval"]]
    assert always["toy_modes"] == phases[2]["toy_modes"] != phases[0]["toy_modes"]
    kept = phases[0]
    for phase in phases[1:]:  # each "kept" is the selection's own decision, against the copy kept then
        assert phase["kept"] == _mean_at_least(phase["returns"], kept["returns"])
        kept = phase if phase["kept"] else kept
    assert recorded["command"].endswith("--selection-evals")
    assert recorded["selection_evals_wall_s"] > 0 and "selection_evals_wall_s" not in plain  # out of online_wall_s


def test_selection_evals_are_refused_without_a_selection(results):
    from benchmarks.suite import main

    assert run_one(Run("toy", "swfp", 0), results).startswith("done")
    with pytest.raises(ValueError, match="made without --selection-evals"):
        runner.replayed(json.loads(result_path(results, "cpu", "toy", "swfp", 0).read_text()), lambda *_: True)

    with pytest.raises(ValueError, match="'sac_demos' has none"):
        Run("toy", "sac_demos", 0, selection_evals=True)
    with pytest.raises(ValueError, match="selection_steps=0"):
        run_one(Run("toy", methods.variant_method("off"), 0, swfp_kwargs={"selection_steps": 0}, selection_evals=True), results)
    with pytest.raises(SystemExit):
        main(["--tasks", "toy", "--methods", "swfp", "sac", "--selection-evals"])


def test_a_stopped_run_with_selection_evals_records_each_decision_once(results, monkeypatch):
    method, selecting = methods.variant_method("sel_rec"), {"selection_steps": 20}
    evaluate = stop_at_evaluation(monkeypatch, 4)  # steps 0 and 60 (the checkpoint), the decision at 70, stopped at 90's
    with pytest.raises(Stop):
        run_one(Run("toy", method, 0, swfp_kwargs=selecting, selection_evals=True), results)
    monkeypatch.setattr(runner, "evaluate", evaluate)
    assert run_one(Run("toy", method, 0, swfp_kwargs=selecting, selection_evals=True), results).startswith("done")
    result = json.loads(result_path(results, "cpu", "toy", method, 0).read_text())
    assert result["resumed_at"] == [60] and [phase["step"] for phase in result["selection_phases"]] == [70, 90, 110]
    assert runner.replayed(result, _mean_at_least)["curve"] == result["curve"]


def test_a_run_stopped_without_selection_evals_does_not_resume_with_them(results, monkeypatch):
    method, selecting = methods.variant_method("sel_rec"), {"selection_steps": 20}
    evaluate = stop_at_evaluation(monkeypatch, 3)  # steps 0 and 60 (the checkpoint), stopped at 120
    with pytest.raises(Stop):
        run_one(Run("toy", method, 0, swfp_kwargs=selecting), results)
    monkeypatch.setattr(runner, "evaluate", evaluate)
    with pytest.raises(ValueError, match="selection_evals: off there, on now"):  # the decision at 70 would be missing
        run_one(Run("toy", method, 0, swfp_kwargs=selecting, selection_evals=True), results)
    recorded = methods.variant_method("sel_on")
    stop_at_evaluation(monkeypatch, 3)  # steps 0 and 60 (the checkpoint), stopped at the decision of step 70
    with pytest.raises(Stop):
        run_one(Run("toy", recorded, 0, swfp_kwargs=selecting, selection_evals=True), results)
    monkeypatch.setattr(runner, "evaluate", evaluate)
    with pytest.raises(ValueError, match="selection_evals: True there, None now"):
        run_one(Run("toy", recorded, 0, swfp_kwargs=selecting), results)
