"""The benchmark tasks: env, demonstrations, budgets and evaluation protocol of each."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    """One benchmark task: env, demonstrations, budgets and evaluation protocol.

    :param env_id: Gymnasium id.
    :param demos: How the demonstrations are made: ``"toy"``, ``"scripted:<noise>:<episodes>"``
        (the shipped scripted expert with relative action noise) or ``"file:<name>"`` (shipped in
        ``sb3_swfp/data/demos``).
    :param cpu_steps: Online env steps per run under the ``cpu`` budget.
    :param full_steps: Online env steps under the ``full`` budget.
    :param eval_every: Evaluate every this many env steps.
    :param eval_episodes: Episodes per evaluation.
    :param deterministic_eval: Deterministic actions (x0 = 0 for flows); the toy samples instead.
    :param learning_starts_cap: Under the ``cpu`` and ``long`` budgets, from-scratch methods start learning
        after at most this many steps (rl-zoo3's MuJoCo value of 10,000 would leave nothing of a short run).
    :param long_steps: Online env steps under the ``long`` budget (None: the task has none).
    :param extra: The package extra its env needs (a key of ``EXTRA_MODULES``; None: the base install).
    """

    env_id: str
    demos: str
    cpu_steps: int
    full_steps: int
    eval_every: int
    eval_episodes: int
    deterministic_eval: bool = True
    learning_starts_cap: int = 1000
    long_steps: int | None = None
    extra: str | None = None

    def steps(self, budget: str) -> int:
        """Online env steps under ``budget``: ``cpu``, ``long`` (MuJoCo: whether fine-tuning keeps improving) or ``full``."""
        steps = {"cpu": self.cpu_steps, "long": self.long_steps, "full": self.full_steps}[budget]
        if steps is None:
            raise ValueError(f"{self.env_id} has no {budget!r} budget")
        return steps

    @property
    def decimals(self) -> int:
        """Decimals of the scores in the tables (the toy's rewards are below 1)."""
        return 3 if self.demos == "toy" else 1

    @property
    def success_metric(self) -> bool:
        """PointMaze: an episode succeeds when it collects any (sparse) reward, i.e. reaches the goal."""
        return self.env_id.startswith("PointMaze")


TASKS: dict[str, Task] = {
    "toy": Task("SWFPToyBandit-v0", "toy", 4000, 20_000, 500, 500, deterministic_eval=False),
    "pendulum": Task("Pendulum-v1", "scripted:0.6:10", 8000, 20_000, 1000, 10),
    "umaze": Task("PointMaze_UMaze-v3", "scripted:3.0:20", 10_000, 100_000, 2000, 10, extra="robotics"),
    "medium": Task("PointMaze_Medium-v3", "scripted:3.0:20", 15_000, 300_000, 3000, 10, extra="robotics"),
    "hopper": Task("Hopper-v5", "file:Hopper-v5", 10_000, 1_000_000, 2000, 5, learning_starts_cap=2000, long_steps=30_000, extra="mujoco"),
    "walker": Task("Walker2d-v5", "file:Walker2d-v5", 10_000, 1_000_000, 2000, 5, learning_starts_cap=2000, long_steps=30_000, extra="mujoco"),
    "halfcheetah": Task("HalfCheetah-v5", "file:HalfCheetah-v5", 10_000, 1_000_000, 2000, 5, learning_starts_cap=2000, long_steps=30_000, extra="mujoco"),
}

#: What each task extra brings that the task's env imports
EXTRA_MODULES: dict[str, tuple[str, ...]] = {"robotics": ("gymnasium_robotics",), "mujoco": ("mujoco",)}

#: Demonstration seed: every method and every seed of a task sees the same demonstrations
DEMO_SEED = 0


def make_env(env_id: str):
    """The env, with gymnasium-robotics registered for PointMaze and the toy registered by importing sb3_swfp."""
    import sb3_swfp.envs  # noqa: F401  (registers SWFPToyBandit-v0)
    from sb3_swfp.experts import make_expert_env

    return make_expert_env(env_id)


def make_demonstrations(task: Task):
    """The task's demonstrations (deterministic: the same for every method and seed)."""
    from sb3_swfp.demos import collect_demonstrations, load_demonstrations

    kind, _, spec = task.demos.partition(":")
    if kind == "toy":
        from sb3_swfp.envs.toy import toy_demonstrations

        return toy_demonstrations(1000, seed=DEMO_SEED)
    if kind == "scripted":
        from sb3_swfp.experts import make_expert

        noise, episodes = spec.split(":")
        env = make_env(task.env_id)
        expert = make_expert(env, noise_std=float(noise), seed=DEMO_SEED)
        return collect_demonstrations(env, expert, n_episodes=int(episodes), seed=DEMO_SEED)
    if kind == "file":
        from sb3_swfp.data import demo_path

        return load_demonstrations(demo_path(spec))
    raise ValueError(f"unknown demonstration source {task.demos!r}")
