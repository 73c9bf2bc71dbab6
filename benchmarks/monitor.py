"""What watching training live costs: the same training run with and without
``rlcourse.widgets.TrainingMonitor``, in one run, as a ratio of training times.

For each algorithm (DQN, PPO, A2C on CartPole-v1) and each of ``--seeds`` seeds, the
default config without early stop (so that every run trains its whole budget and the two
runs of a seed do the same work: the monitor changes no number of the training), run twice:
plainly, and under a monitor the way a notebook runs it (``await monitor.run(train, ...)``,
training in a worker thread, the dashboard redrawn at its bounded rate). The runs of a seed
alternate which goes first. The table gives the median over seeds of the training time
(evaluations excluded) of each, the median of the per-seed ratio (monitored / plain), the
redraws during training and the share of the training time they took.

Run: ``python benchmarks/monitor.py`` (``--algos dqn,ppo``, ``--seeds 3``, ``--steps 100000``,
``--quick`` for a short check that it runs). Nothing else should run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from typing import Any

import matplotlib

matplotlib.use("Agg")

from rlcourse import dqn, pg, ppo
from rlcourse.widgets import TrainingMonitor

TRAIN = {
    "dqn": (dqn.train, dqn.DQNConfig),
    "ppo": (ppo.train, ppo.PPOConfig),
    "a2c": (pg.train_a2c, pg.A2CConfig),
}


def run_pair(algo: str, seed: int, steps: int, monitored_first: bool) -> dict[str, Any]:
    """One seed's plain and monitored runs; their training times and the monitor's draws."""
    train, config_class = TRAIN[algo]
    cfg = config_class(total_steps=steps, early_stop=False)
    out: dict[str, Any] = {}
    for monitored in (monitored_first, not monitored_first):
        if monitored:
            monitor = TrainingMonitor(f"{algo} seed {seed}")
            _, history = asyncio.run(monitor.run(train, "CartPole-v1", cfg, seed=seed))
            final = monitor._draw_cost  # the last redraw came after training
            out["monitored"] = history.train_time
            out["draws"] = monitor.draws - 1
            out["draw_time"] = monitor.draw_time - final
            out["held_out_monitored"] = history.held_out_mean
        else:
            _, history = train("CartPole-v1", cfg, seed=seed, progress=False)
            out["plain"] = history.train_time
            out["held_out_plain"] = history.held_out_mean
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algos", default="dqn,ppo,a2c")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="1 seed of 20,000 steps")
    args = parser.parse_args()
    seeds, steps = (1, 20_000) if args.quick else (args.seeds, args.steps)
    print(
        f"CartPole-v1, {steps:,} steps a run, no early stop, {seeds} seeds; training time "
        "in seconds (evaluations excluded), medians over seeds"
    )
    print(
        "| algorithm | plain | with the monitor | ratio (median of seeds) | redraws "
        "| drawing / training time | same agent |"
    )
    print("|---|---|---|---|---|---|---|")
    for algo in args.algos.split(","):
        pairs = [run_pair(algo, s, steps, monitored_first=s % 2 == 0) for s in range(seeds)]
        ratio = statistics.median(p["monitored"] / p["plain"] for p in pairs)
        share = statistics.median(p["draw_time"] / p["monitored"] for p in pairs)
        same = all(p["held_out_plain"] == p["held_out_monitored"] for p in pairs)
        print(
            f"| {algo.upper()} | {statistics.median(p['plain'] for p in pairs):.2f} "
            f"| {statistics.median(p['monitored'] for p in pairs):.2f} | {ratio:.3f} "
            f"| {statistics.median(p['draws'] for p in pairs):.0f} | {100 * share:.1f}% "
            f"| {'yes' if same else 'NO'} |"
        )


if __name__ == "__main__":
    main()
