"""Time to solve CartPole-v1 (and Pendulum-v1): rlcourse against Stable-Baselines3, in one run.

For each algorithm and library, and each of ``--seeds`` seeds, one training run in
its own process:

* every ``EVAL_EVERY`` environment steps the greedy (deterministic) policy plays
  ``EVAL_EPISODES`` seeded evaluation episodes (the same ones for both libraries,
  through ``rlcourse.evaluate``); the clock is paused while it does;
* the run is *solved* at the first evaluation whose mean return is at least 475;
  time-to-solve is the training wall time up to then (evaluations excluded);
* a run that has not solved within the step budget counts as not solved.

Stable-Baselines3 runs with the RL Zoo's tuned CartPole-v1 hyperparameters; rlcourse
with its documented defaults. ``ppo-torch-env`` is rlcourse's PPO trained on the course's
torch CartPole (``rlcourse.envs.TorchCartPole``, which reproduces gymnasium's CartPole-v1
step for step) and evaluated on gymnasium's, compared with SB3's PPO on gymnasium's env.
The table gives, per algorithm and library, the seeds solved, the median time and steps
to solve (over solved seeds), the peak resident memory of the process, and the ratio of
the medians (SB3 / rlcourse).

Run: ``python benchmarks/cartpole.py`` (``--algos dqn``, ``--seeds 5``,
``--threads 1``). Each run is a separate process, so one run's memory or threads
cannot affect another's.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

ENV_ID = "CartPole-v1"
THRESHOLD = 475.0
EVAL_EVERY = 2_500
EVAL_EPISODES = 20
EVAL_SEED = 10_000  # evaluation episodes are seeded EVAL_SEED + seed + i, for both libraries

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
#: step budget per run, the same for both libraries
BUDGET = {"dqn": 100_000, "ppo": 100_000, "ppo-torch-env": 100_000, "a2c": 200_000}
BUDGET["ppo-pendulum"] = 200_000
#: (env id, threshold, evaluation interval) of each task
TASKS = {
    "dqn": (ENV_ID, THRESHOLD, EVAL_EVERY),
    "ppo": (ENV_ID, THRESHOLD, EVAL_EVERY),
    "ppo-torch-env": (ENV_ID, THRESHOLD, EVAL_EVERY),
    "a2c": (ENV_ID, THRESHOLD, EVAL_EVERY),
    "ppo-pendulum": ("Pendulum-v1", -250.0, 20_000),
}


# ---------------------------------------------------------------- workers
def _schedule(task: str) -> dict[str, Any]:
    """The config fields every rlcourse run shares: its budget and evaluation schedule."""
    _, threshold, every = TASKS[task]
    return {
        "total_steps": BUDGET[task],
        "eval_every": every,
        "eval_episodes": EVAL_EPISODES,
        "solve_threshold": threshold,
        "device": "cpu",
    }


def _result(history: Any) -> dict[str, Any]:
    return {
        "solved": history.solved_step is not None,
        "time": history.solved_time,
        "steps": history.solved_step,
        "train_time": history.train_time,
        "steps_run": history.evaluations[-1][0] if history.evaluations else 0,
    }


def run_rlcourse_dqn(seed: int) -> dict[str, Any]:
    from rlcourse import dqn

    _, history = dqn.train(ENV_ID, dqn.DQNConfig(**_schedule("dqn")), seed=seed, progress=False)
    return _result(history)


def run_rlcourse_ppo(task: str, seed: int) -> dict[str, Any]:
    """PPO on gymnasium's env, or (``ppo-torch-env``) on the course's torch CartPole,
    which steps like gymnasium's to the last bit; evaluation is on gymnasium's either way."""
    from rlcourse import ppo
    from rlcourse.envs import TorchCartPole

    env_id = TASKS[task][0]
    config = ppo.PPOConfig.for_env(env_id, **_schedule(task))
    env = TorchCartPole(config.num_envs) if task == "ppo-torch-env" else env_id
    _, history = ppo.train(env, config, seed=seed, eval_env=env_id, progress=False)
    return _result(history)


def run_rlcourse_a2c(seed: int) -> dict[str, Any]:
    from rlcourse import pg

    _, history = pg.train_a2c(ENV_ID, pg.A2CConfig(**_schedule("a2c")), seed=seed, progress=False)
    return _result(history)


def _linear(value: Any) -> Any:
    """The Zoo's "lin_X": X decayed linearly to 0 over training."""
    if isinstance(value, str) and value.startswith("lin_"):
        start = float(value[4:])
        return lambda progress_remaining: progress_remaining * start
    return value


def run_sb3(algo: str, seed: int) -> dict[str, Any]:
    import stable_baselines3 as sb3
    from stable_baselines3.common.callbacks import BaseCallback

    import rlcourse

    class Greedy:
        def __init__(self, model: Any) -> None:
            self.model = model

        def act(self, obs: Any) -> Any:
            return self.model.predict(obs, deterministic=True)[0]

    class SolveCallback(BaseCallback):
        """Evaluate every EVAL_EVERY steps (clock paused); stop at the first solve."""

        def __init__(self) -> None:
            super().__init__()
            self.next_eval, self.eval_time, self.start = EVAL_EVERY, 0.0, time.perf_counter()
            self.solved_step: int | None = None
            self.solved_time: float | None = None

        def _on_step(self) -> bool:
            if self.num_timesteps < self.next_eval:
                return True
            self.next_eval += EVAL_EVERY
            t0 = time.perf_counter()
            returns = rlcourse.evaluate(Greedy(self.model), ENV_ID, EVAL_EPISODES, EVAL_SEED + seed)
            self.eval_time += time.perf_counter() - t0
            if returns.mean() >= THRESHOLD:
                self.solved_step = self.num_timesteps
                self.solved_time = time.perf_counter() - self.start - self.eval_time
                return False
            return True

    from stable_baselines3.common.env_util import make_vec_env

    hp = {k: _linear(v) for k, v in ZOO[algo].items()}
    hp.pop("n_timesteps")
    env = make_vec_env(ENV_ID, n_envs=hp.pop("n_envs", 1), seed=seed)
    model = getattr(sb3, algo.upper())("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **hp)
    callback = SolveCallback()
    model.learn(total_timesteps=BUDGET[algo], callback=callback)
    return {
        "solved": callback.solved_step is not None,
        "time": callback.solved_time,
        "steps": callback.solved_step,
        "train_time": time.perf_counter() - callback.start - callback.eval_time,
        "steps_run": model.num_timesteps,
    }


WORKERS: dict[tuple[str, str], Callable[[int], dict[str, Any]]] = {
    ("rlcourse", "dqn"): run_rlcourse_dqn,
    ("sb3", "dqn"): lambda seed: run_sb3("dqn", seed),
    ("rlcourse", "ppo"): lambda seed: run_rlcourse_ppo("ppo", seed),
    ("sb3", "ppo"): lambda seed: run_sb3("ppo", seed),
    ("rlcourse", "ppo-torch-env"): lambda seed: run_rlcourse_ppo("ppo-torch-env", seed),
    ("rlcourse", "a2c"): run_rlcourse_a2c,
    ("sb3", "a2c"): lambda seed: run_sb3("a2c", seed),
    ("rlcourse", "ppo-pendulum"): lambda seed: run_rlcourse_ppo("ppo-pendulum", seed),
}


def worker(library: str, algo: str, seed: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    result = WORKERS[(library, algo)](seed)
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result))


# ----------------------------------------------------------------- driver
def run_one(library: str, algo: str, seed: int, threads: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", library, algo, str(seed), "--threads", str(threads)],
        capture_output=True,
        text=True,
        check=True,
    )
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--algos",
        default="dqn,ppo,ppo-torch-env,a2c,ppo-pendulum",
        help="comma-separated: dqn, ppo, ppo-torch-env and ppo-pendulum (rlcourse only), a2c",
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads, both libraries")
    parser.add_argument("--libraries", default="rlcourse,sb3")
    parser.add_argument(
        "--worker", nargs=3, metavar=("LIBRARY", "ALGO", "SEED"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], int(args.worker[2]), args.threads)
        return

    import torch

    print(
        f"{ENV_ID}: time to a greedy mean >= {THRESHOLD:g} over {EVAL_EPISODES} seeded episodes, "
        f"evaluated every {EVAL_EVERY} steps (evaluation time excluded); {args.seeds} seeds; "
        f"torch {torch.__version__}, {args.threads} thread(s)"
    )
    print(
        "ppo-pendulum: Pendulum-v1, time to a greedy mean >= -250 over 20 seeded episodes, "
        "evaluated every 20,000 steps, budget 200,000 steps (rlcourse only)"
    )
    header = (
        f"{'algorithm':<12} {'library':<9} {'solved':>7} {'median time':>12} {'median steps':>13} "
        f"{'peak MB':>8}  per-seed time to solve"
    )
    print(header)
    print("-" * len(header))
    medians: dict[tuple[str, str], float] = {}
    for algo in args.algos.split(","):
        for library in args.libraries.split(","):
            if (library, algo) not in WORKERS:
                continue
            results = [run_one(library, algo, seed, args.threads) for seed in range(args.seeds)]
            solved = [r for r in results if r["solved"]]
            med_t = statistics.median(r["time"] for r in solved) if solved else float("nan")
            med_s = statistics.median(r["steps"] for r in solved) if solved else float("nan")
            medians[(algo, library)] = med_t
            per_seed = " ".join(f"{r['time']:.1f}s" if r["solved"] else "-" for r in results)
            print(
                f"{algo:<12} {library:<9} {len(solved):>5}/{args.seeds} {med_t:>10.1f} s "
                f"{med_s:>13.0f} {max(r['peak_mb'] for r in results):>8.0f}  {per_seed}",
                flush=True,
            )
        peer = "ppo" if algo == "ppo-torch-env" else algo  # SB3 trains on gymnasium's env
        if (algo, "rlcourse") in medians and (peer, "sb3") in medians:
            print(
                f"{algo:<12} ratio of median times, SB3 {peer} / rlcourse: "
                f"{medians[(peer, 'sb3')] / medians[(algo, 'rlcourse')]:.1f}x"
            )


if __name__ == "__main__":
    main()
