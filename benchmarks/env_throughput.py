"""Environment throughput: CartPole steps per second against the number of copies.

Side by side, in one run, with uniformly random actions drawn before the clock starts
(``rlcourse.envs.batched.steps_per_second``; medians of ``--repeats`` timings):

* gymnasium's single ``CartPole-v1`` (one copy; N copies in a Python loop go no faster);
* gymnasium's ``SyncVectorEnv`` (N single envs behind the vector API; up to 1,024 copies);
* gymnasium's own vectorised ``CartPoleVectorEnv`` (NumPy, ``vector_entry_point``);
* the course's ``TorchCartPole`` on the CPU in float64 (gymnasium's numbers exactly) and
  float32, and on CUDA when there is a GPU.

Run: ``python benchmarks/env_throughput.py`` (``--threads 1``, ``--max-envs 65536``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import torch

from rlcourse.envs import TorchCartPole
from rlcourse.envs.batched import steps_per_second

SIZES = (1, 16, 256, 4096, 65536, 262144)


def implementations() -> dict[str, tuple[Callable[[int], Any], int]]:
    """name -> (make(num_envs), largest num_envs to time)."""
    impls: dict[str, tuple[Callable[[int], Any], int]] = {
        "gymnasium single env": (lambda n: gym.make("CartPole-v1"), 1),
        "gymnasium SyncVectorEnv": (
            lambda n: gym.make_vec("CartPole-v1", n, vectorization_mode="sync"),
            1024,
        ),
        "gymnasium CartPoleVectorEnv": (
            lambda n: gym.make_vec("CartPole-v1", n, vectorization_mode="vector_entry_point"),
            SIZES[-1],
        ),
        "rlcourse torch, cpu, float64": (lambda n: TorchCartPole(n), SIZES[-1]),
        "rlcourse torch, cpu, float32": (
            lambda n: TorchCartPole(n, dtype=torch.float32),
            SIZES[-1],
        ),
    }
    if torch.cuda.is_available():
        for dtype in (torch.float32, torch.float64):
            name = f"rlcourse torch, cuda, {str(dtype)[6:]}"
            impls[name] = (lambda n, d=dtype: TorchCartPole(n, device="cuda", dtype=d), 2**22)
    return impls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-envs", type=int, default=SIZES[-1])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [n for n in SIZES if n <= args.max_envs]
    if torch.cuda.is_available():
        sizes += [2**20, 2**22]
    print(
        f"CartPole-v1 steps per second (millions), random actions, median of {args.repeats}; "
        f"torch {torch.__version__}, {args.threads} CPU thread(s)"
    )
    header = f"{'implementation':<32}" + "".join(f"{n:>10,}" for n in sizes)
    print(header)
    print("-" * len(header))
    results: dict[str, dict[int, float]] = {}
    for name, (make, largest) in implementations().items():
        row = results.setdefault(name, {})
        for n in sizes:
            if n > largest:
                continue
            steps = max(20, min(3000, 2_000_000 // n))  # about 2M env steps per timing
            row[n] = steps_per_second(make(n), steps, repeats=args.repeats) / 1e6
        # three significant figures: a slow rate (one copy on a busy machine) never prints as 0
        cells = "".join(f"{row[n]:>10.3g}" if n in row else f"{'':>10}" for n in sizes)
        print(f"{name:<32}{cells}", flush=True)
    best_gym = max(results["gymnasium CartPoleVectorEnv"].values())
    best_torch = max(results["rlcourse torch, cpu, float32"].values())
    print(
        f"\nbest CPU rates: gymnasium CartPoleVectorEnv {best_gym:.1f} M/s, rlcourse torch "
        f"float32 {best_torch:.1f} M/s ({best_torch / best_gym:.1f}x); single env "
        f"{results['gymnasium single env'][1]:.3g} M/s"
    )


if __name__ == "__main__":
    main()
