"""rl-zoo3 integration: use SWFP from the RL Baselines3 Zoo exactly as SAC is used.

``python -m sb3_swfp.zoo COMMAND [rl-zoo3 arguments]`` registers SWFP with rl-zoo3 (the ``ALGOS``
table, the hyperparameter sampler and the converter that ``--trial-id`` reloads go through), then
runs rl-zoo3's own script: ``train``, ``enjoy``, ``record_video``, ``push_to_hub``,
``load_from_hub``, ``plot_train``, ``all_plots`` or ``plot_from_file``.  Every rl-zoo3 flag is
passed through unchanged.  rl-zoo3 has no plugin mechanism: its own entry points (``rl_zoo3 train``,
``python -m rl_zoo3.train``) check ``--algo`` against a fixed table before importing anything of
ours, so SWFP runs through this module (or the ``swfp-zoo`` command), or after :func:`register`.

For the scripts that replay a saved agent (``enjoy``, ``record_video``, ``push_to_hub``) with
``--algo swfp``: without ``-f`` they read ``logs/`` (where ``train`` writes; rl-zoo3's default
folder would try to download an agent from the sb3 organisation of the Hugging Face Hub, which has
no SWFP agent), and the latest run folder without a final model (a run that failed or is still
running) is skipped.  ``push_to_hub``'s model card names SWFP and gives this module's commands.

``train --algo swfp`` refuses the Optuna options rl-zoo3 would ignore (``--trial-id 0``, a study
without ``-optimize`` or ``--trial-id``), keeps an entry's ``policy_kwargs`` beside a trial's
``net_arch`` (:func:`~sb3_swfp.zoo_patches.entry_policy_kwargs_kept`), and reads a ``-conf zoo_hyperparams/<name>.yml``
that is not in the working directory from the installed folder.

``train --algo swfp -i`` continues with the saved flow (:class:`ContinuedSWFP`): rl-zoo3 keeps a
continued agent's policy, and ``n_blocks`` and the other flow arguments belong to it.

For ``train --algo swfp`` with ``--eval-freq``, rl-zoo3's evaluation callback is
:class:`~sb3_swfp.common.callbacks.EvalFromStartCallback`: it also evaluates the policy ``learn()``
starts from (after ``BCPretrainCallback``, the cloned one), so ``best_model.zip`` is never a policy
that evaluated below the start.  Other algorithms keep rl-zoo3's ``EvalCallback``.

Hyperparameters: when ``train`` gets no ``-conf``/``--conf-file``, ``--algo swfp`` reads
``zoo_hyperparams/swfp.yml``, and ``--algo sac``/``td3`` read our ``zoo_hyperparams/{sac,td3}.yml``
for the environments it has an entry for (the comparisons rl-zoo3 has no entry for) and rl-zoo3's
own file otherwise.  :mod:`sb3_swfp.hyperparams` reads these files (for the benchmarks too) and
says where the folder is looked up (:func:`~sb3_swfp.hyperparams.hyperparams_folder`); docs/zoo.md
has the commands.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import runpy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

try:
    import optuna
    from rl_zoo3 import exp_manager as zoo_exp_manager
    from rl_zoo3.hyperparams_opt import HYPERPARAMS_CONVERTER, HYPERPARAMS_SAMPLER, convert_offpolicy_params, sample_her_params
    from rl_zoo3.utils import ALGOS, get_latest_run_id, get_model_path
except ModuleNotFoundError as error:
    raise ModuleNotFoundError(
        f"sb3_swfp.zoo needs the zoo extra (rl-zoo3, sb3-contrib, optuna, the plotting packages), {error.name!r} is "
        "missing: pip install \"sb3-swfp[zoo]\" (or pip install -e \".[zoo]\" in a checkout)",
        name=error.name,
    ) from error

import sb3_swfp
import sb3_swfp.envs  # noqa: F401  registers SWFPToyBandit-v0 with gymnasium
from sb3_swfp import SWFP
from sb3_swfp.common.callbacks import EvalFromStartCallback
from sb3_swfp.common.checks import POLICY_ARGS
from sb3_swfp.hyperparams import HYPERPARAMS_ENV_VAR, hyperparams_folder, read_entries
from sb3_swfp.zoo_patches import ALGO_NAME, check_study_options, entry_policy_kwargs_kept, huggingface_sb3_compat, swfp_model_card

# Algorithms we ship a YAML for: swfp for every env, sac and td3 only for their entries
CONFIGURED_ALGOS = (ALGO_NAME, "sac", "td3")
COMMANDS = ("train", "enjoy", "record_video", "push_to_hub", "load_from_hub", "plot_train", "all_plots", "plot_from_file")
# rl-zoo3 ships these as scripts only (no function to call): run as __main__
SCRIPT_ONLY = ("record_video", "push_to_hub", "load_from_hub")
# Commands that load a saved agent to run it: ReplayOnlySWFP, and the defaults of replay_defaults()
REPLAY_COMMANDS = ("enjoy", "record_video", "push_to_hub")
# Where train writes (rl-zoo3's default -f), and where the replay commands look for SWFP agents
DEFAULT_LOG_FOLDER = "logs"

# Hidden sizes of the actor's velocity network and of the critics, by the names rl-zoo3's
# off-policy samplers use (convert_offpolicy_params maps them the same way)
NET_ARCHS = ("small", "medium", "big")


class ReplayOnlySWFP(SWFP):
    """
    SWFP that builds a one-transition plain replay buffer, for replaying a policy.

    SB3's ``load`` rebuilds the model with ``_setup_model``, which allocates ``buffer_size``
    transitions (1e6 in most YAML entries) and builds the saved ``replay_buffer_class``
    (a demonstration buffer reads its demonstrations, ``HerReplayBuffer`` needs the env).
    rl-zoo3's ``enjoy``, ``record_video`` and ``push_to_hub`` pass ``buffer_size=1`` only to the
    algorithms in their own hard-coded list, so ``main`` puts this class in ``ALGOS["swfp"]`` for
    those scripts.  The saved buffer settings (and ``bc_coef``, which needs a demonstration buffer)
    are kept as attributes, so that the model ``push_to_hub`` saves is the model as trained.
    """

    _REPLAY_ONLY: ClassVar[dict[str, Any]] = dict(
        buffer_size=1, optimize_memory_usage=False, replay_buffer_class=None, replay_buffer_kwargs={}, bc_coef=0.0
    )

    def _setup_model(self) -> None:
        saved = {key: getattr(self, key) for key in self._REPLAY_ONLY}
        self.__dict__.update(self._REPLAY_ONLY)
        try:
            super()._setup_model()
        finally:
            self.__dict__.update(saved)


class ContinuedSWFP(SWFP):
    """
    SWFP for rl-zoo3's ``train -i``: the continued model keeps its flow.

    rl-zoo3 keeps a continued agent's policy (it drops the entry's ``policy`` and ``policy_kwargs``)
    but passes the rest of the entry to ``load``, which would replace the flow's arguments that SWFP
    takes beside ``policy_kwargs`` (``n_blocks``, ``n_substeps``, ``ode_solver``, ``log_prob_method``,
    ``squash``) by the entry's: a model cloned with 2 blocks would go on with the entry's 6.  ``main``
    puts this class in ``ALGOS["swfp"]`` for ``train -i``: the saved values stay, and where the entry
    (or ``-params``) gives another, a line says so.
    """

    @classmethod
    def load(cls, path: str | os.PathLike, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        given = {name: kwargs.pop(name) for name in POLICY_ARGS if name in kwargs}
        model = super().load(path, *args, **kwargs)
        kept = [f"{name}={getattr(model, name)!r} (the entry's: {value!r})" for name, value in given.items() if value != getattr(model, name)]
        if kept:
            print(f"Continuing with the saved flow: {', '.join(kept)}")
        return model


def sample_swfp_params(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """
    Sampler for SWFP hyperparameters (rl-zoo3's ``HYPERPARAMS_SAMPLER`` signature).

    The soft-Q part is searched as rl-zoo3 searches SAC; the flow part over the paper's ranges
    (Table 2 and the sensitivity study of Fig. 5): ``n_blocks`` around 5, ``w2_coef`` from 0.01 to 5,
    ``ent_coef`` either learned from an initial value or fixed (the paper fixes 2-8 on Robomimic),
    with or without ``q_normalization``.
    Every parameter is sampled in every trial, so multivariate TPE sees one search space.

    :param trial: The Optuna trial.
    :param n_actions: Action dimension (unused: SWFP needs no action noise).
    :param n_envs: Number of environments (unused).
    :param additional_args: rl-zoo3's extra arguments; ``using_her_replay_buffer`` adds HER's.
    :return: Keyword arguments for ``SWFP(...)``.
    """
    one_minus_gamma = trial.suggest_float("one_minus_gamma", 0.0001, 0.03, log=True)
    # From 2**5=32 to 2**10=1024 (the paper: 256 for the critic)
    batch_size_pow = trial.suggest_int("batch_size_pow", 5, 10)
    learning_rate = trial.suggest_float("learning_rate", 1e-5, 0.002, log=True)
    actor_learning_rate = trial.suggest_float("actor_learning_rate", 1e-5, 0.002, log=True)
    # One gradient step per env step (the converter sets gradient_steps = train_freq)
    train_freq = trial.suggest_int("train_freq", 1, 10)
    tau = trial.suggest_float("tau", 0.001, 0.08, log=True)
    actor_tau = trial.suggest_float("actor_tau", 0.001, 0.1, log=True)
    policy_delay = trial.suggest_categorical("policy_delay", [1, 2, 4])
    net_arch = trial.suggest_categorical("net_arch", list(NET_ARCHS))
    n_blocks = trial.suggest_int("n_blocks", 2, 8)
    jko_step_size = trial.suggest_float("jko_step_size", 0.01, 1.0, log=True)
    w2_coef = trial.suggest_float("w2_coef", 0.01, 5.0, log=True)
    # The initial value when learned, the value when fixed
    ent_coef = trial.suggest_float("ent_coef", 0.001, 10.0, log=True)
    learn_ent_coef = trial.suggest_categorical("learn_ent_coef", [True, False])
    # Q-normalised JKO loss (ours, docs/offline_to_online.md): alpha and the W2 scale then weigh a Q of order 1
    q_normalization = trial.suggest_categorical("q_normalization", [True, False])

    trial.set_user_attr("gamma", 1 - one_minus_gamma)
    trial.set_user_attr("batch_size", 2**batch_size_pow)

    sampled_params = {
        "one_minus_gamma": one_minus_gamma,
        "batch_size_pow": batch_size_pow,
        "learning_rate": learning_rate,
        "actor_learning_rate": actor_learning_rate,
        "train_freq": train_freq,
        "tau": tau,
        "actor_tau": actor_tau,
        "policy_delay": policy_delay,
        "net_arch": net_arch,
        "n_blocks": n_blocks,
        "jko_step_size": jko_step_size,
        "w2_coef": w2_coef,
        "ent_coef": ent_coef,
        "learn_ent_coef": learn_ent_coef,
        "q_normalization": q_normalization,
    }
    if additional_args["using_her_replay_buffer"]:
        sampled_params = sample_her_params(trial, sampled_params, additional_args["her_kwargs"])
    return convert_swfp_params(sampled_params)


def convert_swfp_params(sampled_params: dict[str, Any]) -> dict[str, Any]:
    """
    Turn the values sampled by :func:`sample_swfp_params` into ``SWFP(...)`` keyword arguments.

    rl-zoo3 calls this on a stored trial's ``params`` for ``--trial-id``/``--storage`` reloads, so it
    must work from the raw Optuna values alone.  The soft-Q part goes through rl-zoo3's
    ``convert_offpolicy_params`` (gamma, batch size, net_arch names, gradient steps).

    :param sampled_params: Optuna parameter values by name; not modified.
    :return: Keyword arguments for ``SWFP(...)``.
    """
    params = dict(sampled_params)
    if params.pop("learn_ent_coef", False):
        # "auto_<init>": learn alpha starting from the sampled value, as SAC parses it
        params["ent_coef"] = f"auto_{params['ent_coef']}"
    # A reload gets HER's values as trial parameters, the sampler inside replay_buffer_kwargs
    her_params = {key: params.pop(key) for key in ("n_sampled_goal", "goal_selection_strategy") if key in params}
    if her_params:
        params["replay_buffer_kwargs"] = {**params.get("replay_buffer_kwargs", {}), **her_params}
    return convert_offpolicy_params(params)


def register() -> None:
    """
    Register SWFP with rl-zoo3; safe to call more than once.

    rl-zoo3 2.9 looks algorithms up in ``rl_zoo3.utils.ALGOS``, samplers in
    ``rl_zoo3.hyperparams_opt.HYPERPARAMS_SAMPLER`` and ``--trial-id`` converters in
    ``HYPERPARAMS_CONVERTER``; its modules import these dicts by name, so filling them in place
    reaches every script.  rl-zoo3 also ``eval``s YAML strings for ``replay_buffer_class``,
    ``replay_buffer_kwargs`` and ``policy_kwargs`` in ``rl_zoo3.exp_manager``'s namespace, where
    only names such as ``HerReplayBuffer`` and ``nn`` exist; the package is added there so a
    YAML entry can name ``sb3_swfp.demos.DemoReplayBuffer`` (or, in older files,
    ``sb3_swfp.common.buffers.DemoReplayBuffer``).
    """
    ALGOS[ALGO_NAME] = SWFP
    HYPERPARAMS_SAMPLER[ALGO_NAME] = sample_swfp_params
    HYPERPARAMS_CONVERTER[ALGO_NAME] = convert_swfp_params
    zoo_exp_manager.sb3_swfp = sb3_swfp  # type: ignore[attr-defined]
    # Imported so that the dotted names resolve in that eval (sb3_swfp imports sb3_swfp.demos itself)
    importlib.import_module("sb3_swfp.common.buffers")


def default_config(algo: str, env_id: str) -> str | None:
    """
    The hyperparameter file ``train`` uses for ``algo`` on ``env_id`` when given no ``-conf``.

    :param algo: rl-zoo3 algorithm name (``--algo``).
    :param env_id: Gymnasium environment id (``--env``).
    :return: Our ``<algo>.yml`` for swfp, and for sac/td3 when it has an entry for ``env_id``;
        None to leave rl-zoo3 its own file.
    :raises FileNotFoundError: For swfp when no hyperparameter folder is found.
    """
    if algo not in CONFIGURED_ALGOS:
        return None
    folder = hyperparams_folder()
    path = None if folder is None else folder / f"{algo}.yml"
    if path is None or not path.is_file():
        if algo == ALGO_NAME:
            # The variable, when set, replaces the other places: say which were searched
            where = (
                f"in ${HYPERPARAMS_ENV_VAR}'s folder {str(folder)!r}, which replaces the other places"
                if os.environ.get(HYPERPARAMS_ENV_VAR)
                else "in the installed package and the repository's zoo_hyperparams/"
            )
            raise FileNotFoundError(
                f"no {ALGO_NAME}.yml found {where}: pass -conf path/to/{ALGO_NAME}.yml or set ${HYPERPARAMS_ENV_VAR}"
            )
        return None
    if algo == ALGO_NAME:
        return str(path)
    return str(path) if env_id in read_entries(path) else None


def _train_options(args: list[str]) -> argparse.Namespace | None:
    """The options of rl-zoo3's train arguments that ``main`` acts on (rl-zoo3's defaults); None if malformed."""
    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    parser.add_argument("--algo", default="ppo")
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("-conf", "--conf-file", default=None)
    parser.add_argument("-i", "--trained-agent", default="")
    parser.add_argument("-optimize", "--optimize-hyperparameters", action="store_true")
    parser.add_argument("--storage", default=None)
    parser.add_argument("--study-name", default=None)
    parser.add_argument("--trial-id", type=int, default=None)
    parser.add_argument("-params", "--hyperparams", nargs="+", default=None)
    try:
        return parser.parse_known_args(args)[0]
    except argparse.ArgumentError:
        return None  # rl-zoo3's own parser reports it


def _with_default_config(args: list[str]) -> list[str]:
    """``args`` with ``--conf-file <default_config>`` appended when they name no config file, and a YAML file
    that is not where they say but is one of ours (``-conf zoo_hyperparams/swfp_o2o.yml`` outside a checkout)
    replaced by the copy in :func:`~sb3_swfp.hyperparams.hyperparams_folder`."""
    known = _train_options(args)
    if known is None:
        return args
    if known.conf_file is not None:
        return _with_installed_config(args, known.conf_file)
    config = default_config(known.algo, known.env)
    return args if config is None else [*args, "--conf-file", relative_to_cwd(config)]


def _with_installed_config(args: list[str], conf_file: str) -> list[str]:
    """``args`` with ``conf_file`` replaced by our file of the same name where it names a YAML file that does not
    exist and that file does (the docs' ``-conf zoo_hyperparams/swfp_o2o.yml``, run outside a checkout)."""
    folder = hyperparams_folder()
    installed = None if folder is None else folder / Path(conf_file).name
    ours = Path(conf_file).parent == Path("zoo_hyperparams")  # the docs' relative path, not a file of the user's
    if os.path.exists(conf_file) or not ours or not conf_file.endswith((".yml", ".yaml")) or installed is None or not installed.is_file():
        return args  # rl-zoo3 reads it, or says that it cannot
    print(f"No {conf_file} here: using {installed}, the installed copy of {installed.name}")
    replaced = []
    for arg in args:
        if arg == conf_file:
            arg = str(installed)
        elif arg.startswith(("--conf-file=", "-conf=")) and arg.split("=", 1)[1] == conf_file:
            arg = f"{arg.split('=', 1)[0]}={installed}"
        replaced.append(arg)
    return replaced


def relative_to_cwd(path: str | os.PathLike) -> str:
    """``path`` relative to the working directory when it lies under it, else absolute.

    The default config is passed to rl-zoo3 this way, so that ``args.yml`` records
    ``zoo_hyperparams/swfp.yml`` for a run started in the checkout rather than the checkout's
    absolute location (a file outside the working directory keeps its absolute path).
    """
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def replay_defaults(args: list[str]) -> list[str]:
    """``args`` of a replay command with our defaults for ``--algo swfp``: ``-f logs`` and the latest complete run.

    Without ``-f`` the folder is ``logs/``, where ``train`` writes.  With the default ``--exp-id 0``
    (the latest run), run folders without the final model ``<env>.zip`` (a run that failed or is still
    running) are skipped, newest first, and the latest run that has it is passed as ``--exp-id``.  With
    ``--load-best`` or a checkpoint the latest run folder is taken, finished or not (a run under way has
    them); where it lacks the file, a line says so and rl-zoo3 stops with its "No model found": an earlier
    run's file is not played in its place.  Other algorithms, and explicit ``--exp-id``, are left to rl-zoo3.
    """
    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    parser.add_argument("--algo")
    parser.add_argument("--env")
    parser.add_argument("-f", "--folder")
    parser.add_argument("--exp-id", type=int, default=0)
    parser.add_argument("--load-best", action="store_true")
    parser.add_argument("--load-checkpoint", type=int)
    parser.add_argument("--load-last-checkpoint", action="store_true")
    try:
        known, _ = parser.parse_known_args(args)
    except argparse.ArgumentError:
        return args  # malformed: rl-zoo3's own parser reports it
    if known.algo != ALGO_NAME or known.env is None:
        return args
    if known.folder is None:
        print(f"No -f given: loading SWFP agents from {DEFAULT_LOG_FOLDER}/, where train writes")
        known.folder = DEFAULT_LOG_FOLDER
        args = [*args, "-f", DEFAULT_LOG_FOLDER]
    if known.exp_id != 0:
        return args
    from huggingface_sb3 import EnvironmentName

    env_name = EnvironmentName(known.env)
    latest = get_latest_run_id(os.path.join(known.folder, ALGO_NAME), env_name)
    if latest and (known.load_best or known.load_checkpoint is not None or known.load_last_checkpoint):
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                get_model_path(latest, known.folder, ALGO_NAME, env_name, known.load_best, known.load_checkpoint, known.load_last_checkpoint)
        except (AssertionError, ValueError):
            wanted = "best_model.zip (saved only with --eval-freq)" if known.load_best else "the checkpoint it asks for (saved only with --save-freq)"
            print(f"Run {latest}, the latest run, has no {wanted}: pass --exp-id N to load an earlier run's")
        return [*args, "--exp-id", str(latest)]
    for exp_id in range(latest, 0, -1):
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                get_model_path(exp_id, known.folder, ALGO_NAME, env_name)
        except (AssertionError, ValueError) as error:
            print(f"Skipping run {exp_id}: {error} (a run that failed or is still running)")
            continue
        return [*args, "--exp-id", str(exp_id)]
    return args  # no complete run: rl-zoo3 says what it looked for


def _script(command: str) -> Callable[[], None]:
    # Imported on demand: the plots need matplotlib and seaborn, which training does not
    if command == "push_to_hub":
        huggingface_sb3_compat()
    if command in SCRIPT_ONLY:
        return lambda: runpy.run_module(f"rl_zoo3.{command}", run_name="__main__")
    if command == "train":
        from rl_zoo3.train import train

        return train
    if command == "enjoy":
        from rl_zoo3.enjoy import enjoy

        return enjoy
    from rl_zoo3 import plots

    return getattr(plots, command)


def main(argv: list[str] | None = None) -> None:
    """
    Run an rl-zoo3 script with SWFP registered: ``python -m sb3_swfp.zoo COMMAND [ARGS]``.

    :param argv: ``[COMMAND, *ARGS]``; ``sys.argv[1:]`` when None.  rl-zoo3 reads its arguments
        from ``sys.argv``, which is set for the call and restored after it.
    """
    parser = argparse.ArgumentParser(
        prog="python -m sb3_swfp.zoo",
        description="Run an rl-zoo3 script with SWFP registered (--algo swfp). "
        "Arguments after COMMAND are rl-zoo3's: see `python -m sb3_swfp.zoo COMMAND --help`.",
        epilog="Without -conf, train reads zoo_hyperparams/swfp.yml for swfp, and zoo_hyperparams/{sac,td3}.yml "
        f"for the envs they list; ${HYPERPARAMS_ENV_VAR} names another folder.",
    )
    parser.add_argument("command", choices=COMMANDS)
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the rl-zoo3 script")
    parsed = parser.parse_args(sys.argv[1:] if argv is None else argv)

    register()
    script_args = parsed.args
    if parsed.command == "train":
        try:
            script_args = _with_default_config(script_args)
        except (FileNotFoundError, NotADirectoryError) as error:
            parser.exit(2, f"{parser.prog} train: error: {error}\n")
    elif parsed.command in REPLAY_COMMANDS:
        script_args = replay_defaults(script_args)

    saved_argv, saved_eval_callback = sys.argv, zoo_exp_manager.EvalCallback
    sys.argv = [f"{parser.prog} {parsed.command}", *script_args]
    try:
        context: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        if parsed.command in REPLAY_COMMANDS:
            ALGOS[ALGO_NAME] = ReplayOnlySWFP
        if parsed.command == "push_to_hub":
            ALGOS[ALGO_NAME] = type("SWFP", (ReplayOnlySWFP,), {})  # the model card's name for the algorithm
            context = swfp_model_card()
        options = _train_options(script_args) if parsed.command == "train" else None
        if options is not None and options.algo == ALGO_NAME:
            check_study_options(options)
            # rl-zoo3's EvalCallback first evaluates after --eval-freq steps: best_model.zip could never be the start
            zoo_exp_manager.EvalCallback = EvalFromStartCallback
            if options.trained_agent:
                ALGOS[ALGO_NAME] = ContinuedSWFP
            context = entry_policy_kwargs_kept(options)
        with context:
            _script(parsed.command)()
    finally:
        sys.argv, zoo_exp_manager.EvalCallback = saved_argv, saved_eval_callback
        ALGOS[ALGO_NAME] = SWFP


if __name__ == "__main__":
    main()
