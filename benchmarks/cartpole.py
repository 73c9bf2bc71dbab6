"""Time to a confirmed solve of CartPole-v1 (and Pendulum-v1): rlcourse against
Stable-Baselines3, in one run, under the course's one definition of solved.

For each algorithm and library, and each of ``--seeds`` seeds, one training run in its own
process, both libraries under the same rule (``rlcourse.agent.EvaluationSchedule``, with
the evaluation schedule of rlcourse's default config for that algorithm):

* every ``eval_every`` environment steps the greedy (deterministic) policy plays the 20
  seeded *selection* episodes; the training clock is paused while it does;
* a policy that reaches the threshold there (CartPole-v1: 475) is *confirmed* on 100 other
  seeded episodes; a confirmed solve (mean >= the threshold on those 100) stops training;
* the policy handed back is the one with the best confirmation score (else the best
  selection score), and its score on 100 *held-out* episodes, used for nothing else, is
  the score of the agent; a seed counts as solved when that score reaches the threshold.

The table gives, per algorithm and library: seeds solved (held-out) out of ``--seeds``; the
median and range over seeds of the training time (evaluations excluded), the wall time
(evaluations included) and the steps to the first confirmed solve (over the seeds that
reached one); the median and minimum held-out score; peak resident memory; and the ratio
of the median training times (SB3 / rlcourse).

Stable-Baselines3 runs with the RL Zoo's tuned hyperparameters, its budget the Zoo's
``n_timesteps`` or rlcourse's ``total_steps``, whichever is larger; rlcourse runs with its
default config (``PPOConfig.for_env`` for Pendulum-v1). The evaluation episodes are the
same for both libraries.

Run: ``python benchmarks/cartpole.py`` (``--algos dqn,ppo``, ``--seeds 5``, ``--threads 1``,
``--libraries rlcourse``, ``--jobs 2``). Each run is a separate process, so one run's memory
or threads cannot affect another's; ``--jobs N`` runs N of them at a time (give each its own
core: jobs x threads <= the cores).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# RL Zoo (rl-baselines3-zoo, hyperparams/*.yml), CartPole-v1
ZOO: dict[str, dict[str, Any]] = {
    "dqn": {
        "n_timesteps": 50_000,
        "learning_rate": 2.3e-3,
        "batch_size": 64,
        "buffer_size": 100_000,
        "learning_starts": 1_000,
        "gamma": 0.99,
        "target_update_interval": 10,
        "train_freq": 256,
        "gradient_steps": 128,
        "exploration_fraction": 0.16,
        "exploration_final_eps": 0.04,
        "policy_kwargs": {"net_arch": [256, 256]},
    },
}
ZOO["ppo"] = {
    "n_envs": 8,
    "n_timesteps": 100_000,
    "n_steps": 32,
    "batch_size": 256,
    "gae_lambda": 0.8,
    "gamma": 0.98,
    "n_epochs": 20,
    "ent_coef": 0.0,
    "learning_rate": "lin_0.001",
    "clip_range": "lin_0.2",
}
ZOO["a2c"] = {"n_envs": 8, "n_timesteps": 500_000, "ent_coef": 0.0}  # the rest: SB3's defaults
#: rlcourse's algorithm, env id, and SB3's peer (None: rlcourse only) of each task
TASKS: dict[str, tuple[str, str, str | None]] = {
    "dqn": ("dqn", "CartPole-v1", "dqn"),
    "ppo": ("ppo", "CartPole-v1", "ppo"),
    "ppo-torch-env": ("ppo", "CartPole-v1", None),
    "a2c": ("a2c", "CartPole-v1", "a2c"),
    "ppo-pendulum": ("ppo", "Pendulum-v1", None),
}


def rlcourse_config(task: str) -> Any:
    """rlcourse's default config for ``task`` (on the CPU)."""
    from rlcourse import dqn, pg, ppo

    algo, env_id, _ = TASKS[task]
    if algo == "dqn":
        return dqn.DQNConfig(device="cpu")
    if algo == "a2c":
        return pg.A2CConfig(device="cpu")
    return ppo.PPOConfig.for_env(env_id, device="cpu")


# ---------------------------------------------------------------- workers
def _result(history: Any) -> dict[str, Any]:
    return {
        "solved": history.solved,
        "held_out": history.held_out_mean,
        "confirmed": history.solved_step is not None,
        "time": history.solved_time,
        "wall": history.solved_wall_time,
        "steps": history.solved_step,
        "train_time": history.train_time,
        "wall_time": history.wall_time,
        "selection": history.selection,
    }


def run_rlcourse(task: str, seed: int) -> dict[str, Any]:
    """rlcourse's ``train`` with its default config; ``ppo-torch-env`` trains on the course's
    torch CartPole (which steps like gymnasium's to the last bit) and is evaluated on
    gymnasium's."""
    from rlcourse import dqn, pg, ppo
    from rlcourse.envs import TorchCartPole

    algo, env_id, _ = TASKS[task]
    config = rlcourse_config(task)
    train = {"dqn": dqn.train, "a2c": pg.train_a2c, "ppo": ppo.train}[algo]
    env = TorchCartPole(config.num_envs) if task == "ppo-torch-env" else env_id
    _, history = train(env, config, seed=seed, eval_env=env_id, progress=False)
    return _result(history)


def _linear(value: Any) -> Any:
    """The Zoo's "lin_X": X decayed linearly to 0 over training."""
    if isinstance(value, str) and value.startswith("lin_"):
        start = float(value[4:])
        return lambda progress_remaining: progress_remaining * start
    return value


def run_sb3(task: str, seed: int) -> dict[str, Any]:
    """SB3 with the Zoo's hyperparameters, evaluated, kept, stopped and scored by the same
    ``EvaluationSchedule`` as rlcourse (as SB3's ``EvalCallback`` with
    ``StopTrainingOnRewardThreshold`` would, plus the confirmation and held-out sets)."""
    import stable_baselines3 as sb3
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    from rlcourse.agent import EvaluationSchedule, TrainingHistory

    _, env_id, algo = TASKS[task]
    assert algo is not None
    cfg = rlcourse_config(task)

    class Greedy:
        """An SB3 model as a course agent: ``net`` (its parameters) and greedy ``act``."""

        def __init__(self, model: Any) -> None:
            self.model, self.net = model, model.policy

        def act(self, obs: Any) -> Any:
            obs = obs.numpy() if hasattr(obs, "numpy") else obs  # a tensor of the torch env
            return self.model.predict(obs.astype("float32"), deterministic=True)[0]

    class Schedule(BaseCallback):
        def __init__(self, schedule: EvaluationSchedule, agent: Greedy) -> None:
            super().__init__()
            self.schedule, self.agent = schedule, agent

        def _on_step(self) -> bool:
            step = self.num_timesteps
            return not (self.schedule.due(step) and self.schedule.evaluate(self.agent, step))

    hp = {k: _linear(v) for k, v in ZOO[algo].items()}
    budget = max(hp.pop("n_timesteps"), cfg.total_steps)
    env = make_vec_env(env_id, n_envs=hp.pop("n_envs", 1), seed=seed)
    model = getattr(sb3, algo.upper())("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **hp)
    history, agent = TrainingHistory(), Greedy(model)
    schedule = EvaluationSchedule.for_training(env_id, cfg, seed, history)
    model.learn(total_timesteps=budget, callback=Schedule(schedule, agent))
    schedule.finish(model.num_timesteps, agent)
    return _result(history)


WORKERS: dict[str, Callable[[str, int], dict[str, Any]]] = {
    "rlcourse": run_rlcourse,
    "sb3": run_sb3,
}


def worker(library: str, task: str, seed: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    result = WORKERS[library](task, seed)
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result))


# ----------------------------------------------------------------- driver
def run_one(library: str, task: str, seed: int, threads: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", library, task, str(seed), "--threads", str(threads)],
        capture_output=True,
        text=True,
        check=True,
    )
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def _spread(values: list[float], fmt: str) -> str:
    """``median [min-max]`` of ``values`` ("-" if none)."""
    if not values:
        return "-"
    return f"{statistics.median(values):{fmt}} [{min(values):{fmt}}-{max(values):{fmt}}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--algos",
        default="dqn,ppo,a2c,ppo-pendulum",
        help="comma-separated: dqn, ppo, a2c; ppo-torch-env and ppo-pendulum (rlcourse only)",
    )
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads, both libraries")
    parser.add_argument("--libraries", default="rlcourse,sb3")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (one per core)")
    parser.add_argument(
        "--worker", nargs=3, metavar=("LIBRARY", "ALGO", "SEED"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], int(args.worker[2]), args.threads)
        return

    import torch

    print(
        f"Time to a confirmed solve, seeds 0-{args.seeds - 1}, torch {torch.__version__}, "
        f"{args.threads} thread(s), {args.jobs} run(s) at a time. solved: held-out mean over "
        "100 episodes >= the threshold "
        "(CartPole-v1 475, Pendulum-v1 -200). Times and steps: median [min-max] over the "
        "seeds with a confirmed solve."
    )
    header = (
        f"{'algorithm':<13} {'library':<9} {'solved':>6}  {'train s to solve':<19} "
        f"{'wall s to solve':<19} {'steps to solve':<22} {'held-out median [min]':<22} "
        f"{'peak MB':>7}"
    )
    print(header)
    print("-" * len(header))
    medians: dict[tuple[str, str], float] = {}
    for task in args.algos.split(","):
        for library in args.libraries.split(","):
            if library == "sb3" and TASKS[task][2] is None:
                continue
            with ThreadPoolExecutor(args.jobs) as pool:
                runs = [(library, task, seed, args.threads) for seed in range(args.seeds)]
                results = list(pool.map(lambda run: run_one(*run), runs))
            confirmed = [r for r in results if r["confirmed"]]
            times = [r["time"] for r in confirmed]
            held = [r["held_out"] for r in results]
            if times:
                medians[(task, library)] = statistics.median(times)
            print(
                f"{task:<13} {library:<9} {sum(r['solved'] for r in results):>3}/{args.seeds}  "
                f"{_spread(times, '.1f'):<19} {_spread([r['wall'] for r in confirmed], '.1f'):<19} "
                f"{_spread([r['steps'] for r in confirmed], '.0f'):<22} "
                f"{statistics.median(held):.1f} [{min(held):.1f}]{'':<9} "
                f"{max(r['peak_mb'] for r in results):>7.0f}",
                flush=True,
            )
            print(
                f"{'':<13} {library:<9} per seed (held-out, steps to solve): "
                + ", ".join(f"{r['held_out']:.1f} {r['steps'] or '-'}" for r in results),
                flush=True,
            )
        peer = "ppo" if task == "ppo-torch-env" else task
        if (task, "rlcourse") in medians and (peer, "sb3") in medians:
            print(
                f"{task:<13} ratio of median training times to solve, SB3 {peer} / rlcourse: "
                f"{medians[(peer, 'sb3')] / medians[(task, 'rlcourse')]:.1f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
