"""Value iteration: rlcourse against a peer library and plain loops, in one run.

Problems (theta = 1e-8, gamma = 0.99, V0 = 0, stop at max |ΔV| < theta):

* FrozenLake 8x8 (slippery), 64 states x 4 actions, dense P;
* a random sparse MDP, 10,000 states x 4 actions x 5 successors (seed 0).

Implementations, each run to the same number of sweeps and checked to give the
same values:

* rlcourse: ``rlcourse.dp.value_iteration`` (torch; fused ``R + gamma P V`` on a
  dense or CSR ``P``);
* pymdptoolbox 4.0b3 (NumPy / SciPy sparse, one product per action), forced to
  the same number of sweeps (its own stopping rule is a span test); its solver
  object is built outside the timer, as rlcourse's TabularMDP is;
* "numpy gather": a vectorised NumPy sweep on ``[S, A, K]`` successor lists;
* "python loop": a Python loop over states and actions with NumPy dot products,
  the way DP is often first written. On the 10k MDP it is timed over a few
  sweeps and scaled to the full count (marked "extrapolated").

A second table times single sweeps on a large random sparse MDP, 1,000,000 states x 4
actions x 5 successors (``--large-states``): rlcourse on the CPU (and on CUDA when there
is a GPU), and SciPy's CSR product with a NumPy max, the engine pymdptoolbox runs on, as
one ``[S*A, S]`` matrix. Each runs value iteration from V = 0 until max |ΔV| < 1 (about a
hundred sweeps) and reports the time per sweep.

Run: ``python benchmarks/value_iteration.py`` (``--repeats N``, ``--quick`` for a
smoke run on small problems). Times are medians of the repeats.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch

from rlcourse import dp
from rlcourse.mdp import TabularMDP, from_gymnasium

THETA, GAMMA = 1e-8, 0.99


def random_sparse_mdp(S: int, A: int, K: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Successor lists ``next_states [S, A, K]``, ``probs [S, A, K]`` and ``R [S, A]``."""
    rng = np.random.default_rng(seed)
    probs = rng.random((S, A, K))
    return {
        "next_states": rng.integers(0, S, size=(S, A, K)),
        "probs": probs / probs.sum(-1, keepdims=True),
        "R": rng.standard_normal((S, A)),
    }


def median_time(
    fn: Callable[..., object], repeats: int, setup: Callable[[], tuple] = tuple
) -> tuple[float, object]:
    """Median wall time in seconds of ``fn(*setup())`` over ``repeats`` calls (``setup``
    untimed), and the last result."""
    times, out = [], None
    for _ in range(repeats):
        args = setup()
        t0 = time.perf_counter()
        out = fn(*args)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def numpy_gather_vi(nxt: np.ndarray, pr: np.ndarray, R: np.ndarray, sweeps: int) -> np.ndarray:
    V = np.zeros(R.shape[0])
    for _ in range(sweeps):
        V = (R + GAMMA * (pr * V[nxt]).sum(-1)).max(1)
    return V


def python_loop_vi(P: list[list[tuple[np.ndarray, np.ndarray]]], R: np.ndarray, sweeps: int):
    """P[s][a] = (next_states, probs); a loop over every state and action."""
    S, A = R.shape
    V = np.zeros(S)
    for _ in range(sweeps):
        V_new = np.empty(S)
        for s in range(S):
            best = -np.inf
            for a in range(A):
                nxt, pr = P[s][a]
                best = max(best, R[s, a] + GAMMA * float(pr @ V[nxt]))
            V_new[s] = best
        V = V_new
    return V


def mdptoolbox_solver(P_list: list, R: np.ndarray, sweeps: int) -> Callable[[], tuple]:
    """Build pymdptoolbox's solver once (untimed: its input checks take seconds on a large
    P); the returned setup resets it to V = 0 before each timed run."""
    import mdptoolbox.mdp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SciPy's SparseEfficiencyWarning in its input checks
        vi = mdptoolbox.mdp.ValueIteration(P_list, R, GAMMA, epsilon=1e-300)
    vi.max_iter = sweeps  # same number of sweeps as rlcourse (its own rule is a span test)

    def setup() -> tuple:
        vi.V, vi.iter = np.zeros(R.shape[0]), 0
        return (vi,)

    return setup


def mdptoolbox_run(vi) -> np.ndarray:
    vi.run()
    assert vi.iter == vi.max_iter, (vi.iter, vi.max_iter)
    return np.asarray(vi.V)


def bench_problem(
    name: str, mdp: TabularMDP, succ: dict[str, np.ndarray], repeats: int, loop_sweeps: int | None
) -> list[tuple]:
    import scipy.sparse as sp

    dp.value_iteration(mdp, THETA)  # warm-up
    t_rl, res = median_time(lambda: dp.value_iteration(mdp, THETA), repeats)
    n, V_ref = res.n_sweeps, res.V.numpy()
    rows = [(name, "rlcourse (torch)", n, t_rl, 0.0)]

    nxt, pr, R = succ["next_states"], succ["probs"], succ["R"]
    S, A, K = nxt.shape
    P_list = [
        sp.csr_matrix((pr[:, a].ravel(), (np.repeat(np.arange(S), K), nxt[:, a].ravel())), (S, S))
        for a in range(A)
    ]
    t, V = median_time(mdptoolbox_run, repeats, mdptoolbox_solver(P_list, R, n))
    rows.append((name, "pymdptoolbox 4.0b3", n, t, np.abs(V - V_ref).max()))
    t, V = median_time(lambda: numpy_gather_vi(nxt, pr, R, n), repeats)
    rows.append((name, "numpy gather", n, t, np.abs(V - V_ref).max()))

    P_py = [[(nxt[s, a], pr[s, a]) for a in range(A)] for s in range(S)]
    if loop_sweeps is None or loop_sweeps >= n:
        t, V = median_time(lambda: python_loop_vi(P_py, R, n), 1)
        rows.append((name, "python loop", n, t, np.abs(V - V_ref).max()))
    else:
        t, _ = median_time(lambda: python_loop_vi(P_py, R, loop_sweeps), 1)
        rows.append((name, "python loop (extrapolated)", n, t * n / loop_sweeps, float("nan")))
    return rows


def frozenlake_successors(mdp: TabularMDP) -> dict[str, np.ndarray]:
    """Dense P as successor lists of fixed width K (zero-probability padding)."""
    P = mdp.P.numpy()
    K = int((P > 0).sum(-1).max())
    order = np.argsort(-P, axis=-1)[..., :K]
    return {
        "next_states": order,
        "probs": np.take_along_axis(P, order, -1),
        "R": mdp.R.numpy(),
    }


LARGE_THETA = 1.0


def scipy_vi(P, R: np.ndarray, theta: float) -> tuple[np.ndarray, int]:
    """Value iteration with a SciPy CSR ``P [S*A, S]``; returns ``(V, sweeps)``."""
    S, A = R.shape
    V, r = np.zeros(S), R.ravel()
    for n in range(1, 100_000):
        V_new = (r + GAMMA * (P @ V)).reshape(S, A).max(1)
        delta = np.abs(V_new - V).max()
        V = V_new
        if delta < theta:
            return V, n
    raise RuntimeError("no convergence")


def bench_large(S: int, repeats: int) -> None:
    """Time per sweep of value iteration on a random sparse ``S x 4 x 5`` MDP."""
    import scipy.sparse as sp

    succ = random_sparse_mdp(S, 4, 5, seed=1)
    t0 = time.perf_counter()
    mdp = TabularMDP.from_successors(succ["next_states"], succ["probs"], succ["R"], GAMMA)
    build = time.perf_counter() - t0
    rows = []
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    V_ref = None
    for device in devices:
        m = mdp.to(device)

        def run(m: TabularMDP = m) -> dp.DPResult:
            res = dp.value_iteration(m, LARGE_THETA)
            if m.device.type == "cuda":
                torch.cuda.synchronize()
            return res

        run()  # warm-up
        t, res = median_time(run, repeats)
        V = res.V.cpu().numpy()
        V_ref = V if V_ref is None else V_ref
        rows.append((f"rlcourse (torch, {device})", res.n_sweeps, t, np.abs(V - V_ref).max()))
    P = mdp._P2
    P_sp = sp.csr_matrix(
        (P.values().numpy(), P.col_indices().numpy(), P.crow_indices().numpy()), P.shape
    )
    t, (V, n) = median_time(lambda: scipy_vi(P_sp, succ["R"], LARGE_THETA), repeats)
    rows.append(("scipy CSR + numpy max", n, t, np.abs(V - V_ref).max()))
    print(
        f"\nrandom sparse {S:,} states x 4 actions x 5 successors: {mdp._P2.values().numel():,} "
        f"nonzeros, built in {build:.1f} s; value iteration until max|ΔV| < {LARGE_THETA:g}"
    )
    header = f"{'implementation':<28} {'sweeps':>6} {'per sweep':>11} {'× rlcourse':>10}"
    print(header)
    print("-" * len(header))
    for impl, n, t, err in rows:
        print(
            f"{impl:<28} {n:>6} {t / n * 1e3:>8.1f} ms {t / n / (rows[0][2] / rows[0][1]):>9.1f}x"
            f"   max|ΔV| vs rlcourse {err:.1e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="small problems, 2 repeats")
    parser.add_argument(
        "--large-states", type=int, default=1_000_000, help="states of the large sparse MDP"
    )
    args = parser.parse_args()
    repeats = 2 if args.quick else args.repeats
    S = 500 if args.quick else 10_000

    fl = from_gymnasium("FrozenLake-v1", gamma=GAMMA, map_name="4x4" if args.quick else "8x8")
    rows = bench_problem(
        fl.name + (" 4x4" if args.quick else " 8x8"), fl, frozenlake_successors(fl), repeats, None
    )
    succ = random_sparse_mdp(S, 4, 5, seed=0)
    sparse = TabularMDP.from_successors(succ["next_states"], succ["probs"], succ["R"], GAMMA)
    rows += bench_problem(f"random sparse {S}x4x5", sparse, succ, repeats, 3 if args.quick else 20)

    print(
        f"value iteration, theta={THETA:g}, gamma={GAMMA}, median of {repeats} runs, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    header = f"{'problem':<26} {'implementation':<28} {'sweeps':>6} {'time':>11} {'× rlcourse':>10}"
    print(header)
    print("-" * len(header))
    base = {}
    for problem, impl, n, t, err in rows:
        base.setdefault(problem, t)
        check = "" if err != err else f"   max|ΔV| vs rlcourse {err:.1e}"
        print(
            f"{problem:<26} {impl:<28} {n:>6} {t * 1e3:>8.2f} ms {t / base[problem]:>9.1f}x{check}"
        )
    bench_large(20_000 if args.quick else args.large_states, repeats=2 if args.quick else 3)


if __name__ == "__main__":
    main()
