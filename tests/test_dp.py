"""Tests of rlcourse.dp against the textbook's published numbers, hand calculations
and independent reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_mdp import random_successor_mdp

from rlcourse import dp
from rlcourse.envs import GamblerEnv, example_3_5, example_4_1
from rlcourse.mdp import TabularMDP, from_gymnasium

# ---------------------------------------------------------------------------
# published values (Sutton & Barto, 2nd ed.)

# Figure 3.2: v_pi of the equiprobable random policy on the Example 3.5 grid, gamma 0.9
FIG_3_2 = [
    [3.3, 8.8, 4.4, 5.3, 1.5],
    [1.5, 3.0, 2.3, 1.9, 0.5],
    [0.1, 0.7, 0.7, 0.4, -0.4],
    [-1.0, -0.4, -0.4, -0.6, -1.2],
    [-1.9, -1.3, -1.2, -1.4, -2.0],
]
# Figure 3.5 (Example 3.8, "Solving the Gridworld"): v* of the same grid world
FIG_3_5 = [
    [22.0, 24.4, 22.0, 19.4, 17.5],
    [19.8, 22.0, 19.8, 17.8, 16.0],
    [17.8, 19.8, 17.8, 16.0, 14.4],
    [16.0, 17.8, 16.0, 14.4, 13.0],
    [14.4, 16.0, 14.4, 13.0, 11.7],
]
# Figure 4.1: v_pi of the random policy on the Example 4.1 grid (k = infinity)
FIG_4_1_RANDOM = [
    [0.0, -14.0, -20.0, -22.0],
    [-14.0, -18.0, -20.0, -20.0],
    [-20.0, -20.0, -18.0, -14.0],
    [-22.0, -20.0, -14.0, 0.0],
]
# Example 4.1, optimal values: minus the number of steps to the nearest terminal corner
FIG_4_1_OPTIMAL = [
    [0.0, -1.0, -2.0, -3.0],
    [-1.0, -2.0, -3.0, -2.0],
    [-2.0, -3.0, -2.0, -1.0],
    [-3.0, -2.0, -1.0, 0.0],
]


def grid(values: list[list[float]]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).flatten()


def sparse_copy(mdp: TabularMDP) -> TabularMDP:
    """The same MDP with P stored as a sparse COO tensor."""
    sparse = mdp.to_sparse()
    assert sparse.is_sparse and not mdp.is_sparse
    return sparse


def one_hot(actions: list[int] | torch.Tensor, n_actions: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.as_tensor(actions), n_actions).to(torch.float64)


def two_state_mdp(gamma: float = 0.9) -> TabularMDP:
    """A 2-state MDP small enough to solve by hand.

    State 0: action 0 ("stay") pays 1 and stays; action 1 ("go") pays 0 and reaches
    state 1 with probability 1/2 (else stays in 0).
    State 1: action 0 pays 2 and stays; action 1 pays 0 and goes back to state 0.
    """
    P = torch.zeros(2, 2, 2, dtype=torch.float64)
    P[0, 0, 0] = 1.0
    P[0, 1, 0] = P[0, 1, 1] = 0.5
    P[1, 0, 1] = 1.0
    P[1, 1, 0] = 1.0
    R = torch.tensor([[1.0, 0.0], [2.0, 0.0]], dtype=torch.float64)
    return TabularMDP(P, R, gamma)


# ---------------------------------------------------------------------------
# Example 3.5 (Figures 3.2 and 3.5)


def test_example_3_5_random_policy_matches_figure_3_2() -> None:
    """v_pi of the random policy (exact linear solve) rounds to the book's Figure 3.2."""
    mdp = example_3_5().to_mdp()
    assert mdp.gamma == 0.9
    V = dp.exact_policy_evaluation(mdp, mdp.uniform_policy())
    assert torch.equal(V.round(decimals=1), grid(FIG_3_2))


def test_example_3_5_iterative_matches_exact() -> None:
    """Iterative policy evaluation converges to the linear solve's values."""
    mdp = example_3_5().to_mdp()
    V_iter = dp.policy_evaluation(mdp, mdp.uniform_policy(), theta=1e-10)
    V_exact = dp.exact_policy_evaluation(mdp, mdp.uniform_policy())
    torch.testing.assert_close(V_iter, V_exact, rtol=0, atol=1e-8)


def test_example_3_5_optimal_values_match_figure_3_5() -> None:
    """v* by value iteration rounds to the book's Figure 3.5; policy iteration agrees."""
    mdp = example_3_5().to_mdp()
    V, _ = dp.value_iteration(mdp, theta=1e-10)
    assert torch.equal(V.round(decimals=1), grid(FIG_3_5))
    V_pi, _ = dp.policy_iteration(mdp, theta=1e-10)
    torch.testing.assert_close(V_pi, V, rtol=0, atol=1e-7)
    # v*(A) = 10 + gamma * v*(A') exactly (A at (0, 1), A' at (4, 1)): Bellman at A
    assert V[1].item() == pytest.approx(10 + 0.9 * V[21].item(), abs=1e-8)


# ---------------------------------------------------------------------------
# Example 4.1 (Figure 4.1)


def test_example_4_1_random_policy_converges_to_figure_4_1() -> None:
    """Iterative evaluation of the random policy (gamma 1) reaches the book's k = inf values."""
    mdp = example_4_1().to_mdp()
    assert mdp.gamma == 1.0
    V = dp.policy_evaluation(mdp, mdp.uniform_policy(), theta=1e-10)
    torch.testing.assert_close(V, grid(FIG_4_1_RANDOM), rtol=0, atol=1e-4)
    V_exact = dp.exact_policy_evaluation(mdp, mdp.uniform_policy())
    torch.testing.assert_close(V_exact, grid(FIG_4_1_RANDOM), rtol=0, atol=1e-9)


def test_example_4_1_first_sweeps_match_figure_4_1() -> None:
    """The sweep generator's k = 1, 2, 3 iterates are the values of Figure 4.1."""
    mdp = example_4_1().to_mdp()
    sweeps = dp.policy_evaluation_sweeps(mdp, mdp.uniform_policy())
    first = [next(sweeps) for _ in range(3)]
    assert [s.k for s in first] == [1, 2, 3]
    assert all(s.phase == "evaluation" for s in first)

    # k = 1: every non-terminal state -1
    k1 = torch.full((16,), -1.0, dtype=torch.float64)
    k1[[0, 15]] = 0.0
    assert torch.equal(first[0].V, k1)

    # k = 2: -1 + (1/4)(-1 -1 -1 + 0) = -1.75 next to a terminal corner (the book
    # prints -1.7, truncated), -1 + (-1) = -2 elsewhere
    a = -1.75
    k2 = grid([[0, a, -2, -2], [a, -2, -2, -2], [-2, -2, -2, a], [-2, -2, a, 0]])
    torch.testing.assert_close(first[1].V, k2, rtol=0, atol=1e-12)

    # k = 3, computed by hand from k = 2 as v3(s) = -1 + (1/4) sum of v2 over the four
    # moves (a move off the grid stays put):
    #   state 1:  -1 + (v2(1) + v2(2) + v2(5) + v2(0)) / 4 = -1 + (-1.75-2-2+0)/4   = -2.4375
    #   state 2:  -1 + (v2(2) + v2(3) + v2(6) + v2(1)) / 4 = -1 + (-2-2-2-1.75)/4   = -2.9375
    #   state 3:  -1 + (v2(3) + v2(3) + v2(7) + v2(2)) / 4 = -1 + (-2-2-2-2)/4      = -3
    #   state 5:  -1 + (v2(1) + v2(6) + v2(9) + v2(4)) / 4 = -1 + (-1.75-2-2-1.75)/4 = -2.875
    #   state 6:  -1 + (v2(2) + v2(7) + v2(10) + v2(5)) / 4 = -1 + (-2-2-2-2)/4     = -3
    # and the rest by the grid's symmetry (book: -2.4, -2.9, -3.0, -2.9, -3.0).
    b, c, d = -2.4375, -2.9375, -2.875
    k3 = grid([[0, b, c, -3], [b, d, -3, c], [c, -3, d, b], [-3, c, b, 0]])
    torch.testing.assert_close(first[2].V, k3, rtol=0, atol=1e-12)
    # the reported deltas are the max changes: 1, then 1 (states away from corners), then 1
    assert [s.delta for s in first] == pytest.approx([1.0, 1.0, 1.0])


def test_example_4_1_optimal_values() -> None:
    """Value iteration gives v*(s) = - (steps to the nearest terminal corner)."""
    mdp = example_4_1().to_mdp()
    result = dp.value_iteration(mdp)
    torch.testing.assert_close(result.V, grid(FIG_4_1_OPTIMAL), rtol=0, atol=1e-12)
    # the greedy policy reaches a terminal corner from every state with those values
    V_greedy = dp.exact_policy_evaluation(mdp, result.policy)
    torch.testing.assert_close(V_greedy, grid(FIG_4_1_OPTIMAL), rtol=0, atol=1e-9)


# ---------------------------------------------------------------------------
# Gambler's problem (Example 4.3)


def bold_play_values(p: float, goal: int = 100) -> np.ndarray:
    """Value of bold play (stake min(s, goal - s)) by fixed-point iteration of
    V(s) = p V(2s) for s <= goal/2 and V(s) = p + (1 - p) V(2s - goal) for s >= goal/2,
    V(0) = 0, V(goal) = 1. The map is a contraction (factor max(p, 1 - p) < 1)."""
    V = np.zeros(goal + 1)
    V[goal] = 1.0
    for _ in range(10_000):
        new = V.copy()
        for s in range(1, goal):
            if s <= goal // 2:
                new[s] = p * V[2 * s]
            else:
                new[s] = p + (1 - p) * V[2 * s - goal]
        if np.max(np.abs(new - V)) < 1e-15:
            return new
        V = new
    raise AssertionError("bold-play recursion did not converge")


def test_gambler_value_iteration_equals_bold_play() -> None:
    """For p_h < 1/2, v* equals the value of bold play (to 1e-8)."""
    mdp = GamblerEnv(p_h=0.4).to_mdp()
    result = dp.value_iteration(mdp, theta=1e-12)
    expected = bold_play_values(0.4)
    # the recursion's boundary V(100) = 1 is the +1 reward of reaching the goal; in the
    # MDP the goal is a terminal state with v = 0 and that +1 is paid on entering it
    np.testing.assert_allclose(result.V.numpy()[:100], expected[:100], rtol=0, atol=1e-8)
    assert result.V[100].item() == 0.0
    # a few values worked out by hand: 25 -> 50 -> 100 needs two wins: 0.4^2
    assert result.V[25].item() == pytest.approx(0.16, abs=1e-8)
    assert result.V[50].item() == pytest.approx(0.4, abs=1e-8)
    assert result.V[75].item() == pytest.approx(0.4 + 0.6 * 0.4, abs=1e-8)  # 0.64


def test_gambler_greedy_stakes_are_allowed() -> None:
    """Greedy stakes lie in 1..min(s, 100 - s) in every non-terminal state."""
    mdp = GamblerEnv(p_h=0.4).to_mdp()
    result = dp.value_iteration(mdp, theta=1e-12)
    stakes = result.policy.argmax(1)
    assert torch.equal(result.policy.sum(1), torch.ones(101, dtype=torch.float64))
    for s in range(1, 100):
        assert 1 <= stakes[s].item() <= min(s, 100 - s), s
    # the greedy policy achieves v* (evaluated exactly)
    V_greedy = dp.exact_policy_evaluation(mdp, result.policy)
    torch.testing.assert_close(V_greedy, result.V, rtol=0, atol=1e-8)


# ---------------------------------------------------------------------------
# FrozenLake


@pytest.mark.parametrize("kwargs", [{}, {"map_name": "8x8"}], ids=["4x4", "8x8"])
def test_frozenlake_algorithms_agree(kwargs: dict) -> None:
    """Value iteration, policy iteration and the exact value of the optimal policy agree,
    and both greedy policies have the same value (their tied actions may differ)."""
    mdp = from_gymnasium("FrozenLake-v1", gamma=0.99, **kwargs)
    vi = dp.value_iteration(mdp, theta=1e-11)
    pi = dp.policy_iteration(mdp, theta=1e-11)
    torch.testing.assert_close(vi.V, pi.V, rtol=0, atol=1e-6)
    V_vi_policy = dp.exact_policy_evaluation(mdp, vi.policy)
    V_pi_policy = dp.exact_policy_evaluation(mdp, pi.policy)
    torch.testing.assert_close(V_vi_policy, vi.V, rtol=0, atol=1e-6)
    torch.testing.assert_close(V_pi_policy, V_vi_policy, rtol=0, atol=1e-6)
    # v* satisfies the Bellman optimality equation
    torch.testing.assert_close(dp.optimality_backup(mdp, vi.V), vi.V, rtol=0, atol=1e-8)
    # terminal states have value 0, the goal's neighbours a positive one
    assert (vi.V[mdp.terminal] == 0).all()
    assert vi.V[~mdp.terminal].max() > 0


# ---------------------------------------------------------------------------
# an MDP solved by hand


def test_two_state_mdp_by_hand() -> None:
    """Closed forms for the MDP of ``two_state_mdp`` with gamma = 0.9.

    v*(1) = 2 / (1 - gamma) = 20 (stay in 1 for ever).
    In state 0, "go": v = gamma (v(0) + v(1)) / 2  =>  v*(0) = gamma v*(1) / (2 - gamma)
    = 18 / 1.1 = 180/11, better than "stay" (1 + gamma v*(0) = 15.727...).

    Random policy: v0 = 1/2 (1 + g v0) + 1/2 g (v0 + v1)/2,  v1 = 1/2 (2 + g v1) + 1/2 g v0,
    i.e. (1 - 3g/4) v0 - (g/4) v1 = 1/2  and  -(g/2) v0 + (1 - g/2) v1 = 1,
    solved by Cramer's rule.
    """
    g = 0.9
    mdp = two_state_mdp(g)
    v1 = 2 / (1 - g)
    v0 = g * v1 / (2 - g)
    expected = torch.tensor([v0, v1], dtype=torch.float64)
    assert v0 == pytest.approx(180 / 11)

    vi = dp.value_iteration(mdp, theta=1e-12)
    torch.testing.assert_close(vi.V, expected, rtol=0, atol=1e-9)
    assert torch.equal(vi.policy, one_hot([1, 0], 2))
    pi = dp.policy_iteration(mdp, theta=1e-12)
    torch.testing.assert_close(pi.V, expected, rtol=0, atol=1e-9)
    assert torch.equal(pi.policy, one_hot([1, 0], 2))

    a11, a12, b1 = 1 - 3 * g / 4, -g / 4, 0.5
    a21, a22, b2 = -g / 2, 1 - g / 2, 1.0
    det = a11 * a22 - a12 * a21
    random_v = torch.tensor(
        [(b1 * a22 - a12 * b2) / det, (a11 * b2 - a21 * b1) / det], dtype=torch.float64
    )
    torch.testing.assert_close(
        dp.exact_policy_evaluation(mdp, mdp.uniform_policy()), random_v, rtol=0, atol=1e-12
    )
    torch.testing.assert_close(
        dp.policy_evaluation(mdp, mdp.uniform_policy(), theta=1e-12), random_v, rtol=0, atol=1e-9
    )


def test_gamma_zero_gives_immediate_reward() -> None:
    """With gamma = 0, v*(s) = max_a r(s, a) after one sweep, and v_pi = sum_a pi r."""
    mdp = two_state_mdp(0.0)
    result = dp.value_iteration(mdp)
    torch.testing.assert_close(result.V, torch.tensor([1.0, 2.0], dtype=torch.float64))
    torch.testing.assert_close(
        dp.exact_policy_evaluation(mdp, mdp.uniform_policy()),
        torch.tensor([0.5, 1.0], dtype=torch.float64),
    )


# ---------------------------------------------------------------------------
# errors


def test_exact_evaluation_gamma_one_without_terminal_state() -> None:
    """gamma = 1 on a continuing MDP has no finite v_pi: a ValueError about gamma."""
    mdp = two_state_mdp(1.0)
    with pytest.raises(ValueError, match=r"gamma = 1 on an MDP with no terminal state"):
        dp.exact_policy_evaluation(mdp, mdp.uniform_policy())


def always_up_policy() -> tuple[TabularMDP, torch.Tensor]:
    """Example 4.1 with the deterministic policy 'always up': from the top row the agent
    bumps into the edge for ever and never reaches a terminal corner."""
    mdp = example_4_1().to_mdp()
    up = mdp.action_names.index("up")
    return mdp, one_hot([up] * 16, 4)


def test_exact_evaluation_gamma_one_policy_never_terminates() -> None:
    """gamma = 1 with a policy that loops for ever: a ValueError naming a stuck state."""
    mdp, pi = always_up_policy()
    with pytest.raises(ValueError, match=r"gamma = 1 but the policy never reaches a terminal"):
        dp.exact_policy_evaluation(mdp, pi)
    # with gamma < 1 the same policy has finite values: -1 / (1 - gamma) in the top row
    V = dp.exact_policy_evaluation(mdp.with_gamma(0.5), pi)
    assert V[1].item() == pytest.approx(-2.0)


def test_policy_evaluation_that_cannot_converge_mentions_gamma() -> None:
    """Iterative evaluation of the looping policy with gamma = 1 raises a RuntimeError
    that explains gamma = 1, instead of running for ever or returning garbage."""
    mdp, pi = always_up_policy()
    with pytest.raises(RuntimeError, match=r"did not converge in 50 sweeps.*gamma = 1"):
        dp.policy_evaluation(mdp, pi, max_sweeps=50)


def test_value_iteration_not_converging_raises() -> None:
    """Reaching max_sweeps is an error, not a silent stop."""
    mdp = example_3_5().to_mdp()
    with pytest.raises(RuntimeError, match="value iteration did not converge in 5 sweeps"):
        dp.value_iteration(mdp, max_sweeps=5)


@pytest.mark.parametrize(
    ("theta", "error", "message"),
    [
        (0, ValueError, "theta must be a positive number"),
        (0.0, ValueError, "theta must be a positive number"),
        (-1e-3, ValueError, "theta must be a positive number"),
        (True, TypeError, "theta must be a number"),
        ("1e-8", TypeError, "theta must be a number"),
    ],
)
def test_bad_theta_rejected(theta: object, error: type, message: str) -> None:
    """theta <= 0 is a ValueError, a non-number a TypeError, in every iterative algorithm."""
    mdp = two_state_mdp()
    with pytest.raises(error, match=message):
        dp.value_iteration(mdp, theta=theta)  # type: ignore[arg-type]
    with pytest.raises(error, match=message):
        dp.policy_evaluation(mdp, mdp.uniform_policy(), theta=theta)  # type: ignore[arg-type]
    with pytest.raises(error, match=message):
        dp.policy_iteration(mdp, theta=theta)  # type: ignore[arg-type]
    with pytest.raises(error, match=message):
        next(dp.value_iteration_sweeps(mdp, theta=theta))  # type: ignore[arg-type]


def test_numpy_theta_accepted() -> None:
    """A NumPy float is a valid theta (as it is a valid gamma)."""
    mdp = two_state_mdp()
    assert dp.value_iteration(mdp, theta=np.float32(1e-6)).deltas[-1] < 1e-6


def test_v0_of_wrong_shape() -> None:
    """A starting V0 that is not [S] is rejected."""
    mdp = two_state_mdp()
    with pytest.raises(ValueError, match=r"V0 must have shape \[S\] = \[2\]"):
        dp.value_iteration(mdp, V0=torch.zeros(3))


# ---------------------------------------------------------------------------
# DPResult and convergence bookkeeping


def test_dpresult_unpacks_and_reports_sweeps() -> None:
    """DPResult unpacks as (V, policy); n_sweeps == len(deltas) and the last delta < theta."""
    mdp = example_3_5().to_mdp()
    theta = 1e-6
    result = dp.value_iteration(mdp, theta=theta)
    V, policy = result
    assert V is result.V
    assert policy is result.policy
    assert result.n_sweeps == len(result.deltas) > 1
    assert result.deltas[-1] < theta
    assert all(d >= theta for d in result.deltas[:-1])
    assert result.n_improvements == 0
    # the policy is deterministic (one-hot)
    assert torch.equal(policy.sum(1), torch.ones(25, dtype=torch.float64))
    assert set(policy.unique().tolist()) == {0.0, 1.0}


@pytest.mark.parametrize(
    "make",
    [
        lambda: example_3_5().to_mdp(),
        lambda: from_gymnasium("FrozenLake-v1", gamma=0.9, map_name="8x8"),
        lambda: two_state_mdp(0.95),
    ],
    ids=["example-3.5", "frozenlake-8x8", "two-state"],
)
def test_value_iteration_deltas_contract(make) -> None:
    """For gamma < 1 the Bellman optimality operator is a gamma-contraction in max-norm,
    so delta_{k+1} <= gamma * delta_k: the deltas never increase."""
    mdp = make()
    result = dp.value_iteration(mdp, theta=1e-10)
    d = np.asarray(result.deltas)
    assert np.all(d[1:] <= mdp.gamma * d[:-1] + 1e-12)
    assert np.all(np.diff(d) <= 1e-12)


def test_sweeps_generator_agrees_with_function() -> None:
    """value_iteration_sweeps yields the same values and deltas as value_iteration."""
    mdp = example_3_5().to_mdp()
    result = dp.value_iteration(mdp, theta=1e-6)
    sweeps = list(dp.value_iteration_sweeps(mdp, theta=1e-6))
    assert [s.k for s in sweeps] == list(range(1, result.n_sweeps + 1))
    assert [s.delta for s in sweeps] == pytest.approx(result.deltas, rel=1e-12, abs=1e-15)
    torch.testing.assert_close(sweeps[-1].V, result.V, rtol=0, atol=1e-12)
    assert torch.equal(sweeps[-1].policy, result.policy)
    assert all(s.phase == "optimality" for s in sweeps)


def test_policy_iteration_bookkeeping() -> None:
    """Policy iteration improves at least once and its last improvement changes nothing."""
    mdp = example_4_1().to_mdp()
    result = dp.policy_iteration(mdp)
    assert result.n_improvements >= 1
    assert result.n_sweeps == len(result.deltas)
    torch.testing.assert_close(result.V, grid(FIG_4_1_OPTIMAL), rtol=0, atol=1e-6)
    # improving the final policy once more leaves it unchanged
    again = dp.improve_policy(mdp, result.V, result.policy)
    assert torch.equal(again, result.policy)
    # the generator's last two improvement steps give the same policy
    sweeps = list(dp.policy_iteration_sweeps(mdp))
    improvements = [s for s in sweeps if s.phase == "improvement"]
    assert len(improvements) == result.n_improvements
    assert sweeps[-1].phase == "improvement"
    if len(improvements) >= 2:
        assert torch.equal(improvements[-1].policy, improvements[-2].policy)
    # ks count evaluation sweeps and never go backwards
    ks = [s.k for s in sweeps]
    assert ks == sorted(ks)
    assert ks[-1] == result.n_sweeps


def test_policy_iteration_from_a_given_policy() -> None:
    """Starting policy iteration from an optimal policy needs a single improvement step."""
    mdp = example_4_1().to_mdp()
    optimal = dp.value_iteration(mdp).policy
    result = dp.policy_iteration(mdp, policy=optimal)
    assert result.n_improvements == 1
    assert torch.equal(result.policy, optimal)


# ---------------------------------------------------------------------------
# sparse, determinism, vectorisation


@pytest.mark.parametrize(
    "make",
    [
        lambda: example_3_5().to_mdp(),
        lambda: example_4_1().to_mdp(),
        lambda: from_gymnasium("FrozenLake-v1", gamma=0.95),
        lambda: GamblerEnv(p_h=0.4, goal=30).to_mdp(),
    ],
    ids=["example-3.5", "example-4.1", "frozenlake", "gambler"],
)
def test_sparse_copy_gives_same_results(make) -> None:
    """Every algorithm gives the same values and policies on a sparse copy of the MDP."""
    dense = make()
    sparse = sparse_copy(dense)
    assert sparse.is_sparse
    pi = dense.uniform_policy()
    vi_d, vi_s = dp.value_iteration(dense), dp.value_iteration(sparse)
    torch.testing.assert_close(vi_s.V, vi_d.V, rtol=0, atol=1e-10)
    assert torch.equal(vi_s.policy, vi_d.policy)
    assert vi_s.n_sweeps == vi_d.n_sweeps
    pit_d, pit_s = dp.policy_iteration(dense), dp.policy_iteration(sparse)
    torch.testing.assert_close(pit_s.V, pit_d.V, rtol=0, atol=1e-10)
    assert torch.equal(pit_s.policy, pit_d.policy)
    torch.testing.assert_close(
        dp.policy_evaluation(sparse, pi), dp.policy_evaluation(dense, pi), rtol=0, atol=1e-10
    )
    if dense.gamma < 1 or dense.terminal.any():
        torch.testing.assert_close(
            dp.exact_policy_evaluation(sparse, pi),
            dp.exact_policy_evaluation(dense, pi),
            rtol=0,
            atol=1e-10,
        )


def test_runs_are_bit_identical() -> None:
    """Two runs of the same algorithm give bit-identical values and policies."""
    mdp = from_gymnasium("FrozenLake-v1", gamma=0.99, map_name="8x8")
    a, b = dp.value_iteration(mdp), dp.value_iteration(mdp)
    assert torch.equal(a.V, b.V)
    assert torch.equal(a.policy, b.policy)
    assert a.deltas == b.deltas
    c, d = dp.policy_iteration(mdp), dp.policy_iteration(mdp)
    assert torch.equal(c.V, d.V)
    assert torch.equal(c.policy, d.policy)


def reference_value_iteration(next_states, probs, R, gamma: float, theta: float) -> np.ndarray:
    """Value iteration written as the book's plain loops over states and actions."""
    nxt, pr, r = next_states.numpy(), probs.numpy(), R.numpy()
    S, A, K = nxt.shape
    V = np.zeros(S)
    while True:
        V_new = np.empty(S)
        for s in range(S):
            best = -np.inf
            for a in range(A):
                q = r[s, a]
                for k in range(K):
                    q += gamma * pr[s, a, k] * V[nxt[s, a, k]]
                best = max(best, q)
            V_new[s] = best
        delta = np.max(np.abs(V_new - V))
        V = V_new
        if delta < theta:
            return V


def test_value_iteration_matches_plain_loop_reference() -> None:
    """On a random sparse MDP (200 states) value iteration equals a plain-loop reference."""
    next_states, probs, R = random_successor_mdp(200, 4, 5, seed=3)
    mdp = TabularMDP.from_successors(next_states, probs, R, 0.9)
    result = dp.value_iteration(mdp, theta=1e-10)
    expected = reference_value_iteration(next_states, probs, R, 0.9, 1e-10)
    np.testing.assert_allclose(result.V.numpy(), expected, rtol=0, atol=1e-8)


def test_value_iteration_large_sparse_mdp() -> None:
    """20,000 states x 4 actions x 5 successors: value iteration converges and its result
    satisfies the Bellman optimality equation (checked with NumPy gathers)."""
    S, A, K, gamma, theta = 20_000, 4, 5, 0.9, 1e-8
    next_states, probs, R = random_successor_mdp(S, A, K, seed=4)
    mdp = TabularMDP.from_successors(next_states, probs, R, gamma)
    result = dp.value_iteration(mdp, theta=theta)
    assert result.deltas[-1] < theta
    V = result.V.numpy()
    Q = R.numpy() + gamma * (probs.numpy() * V[next_states.numpy()]).sum(-1)
    # |T V - V| <= gamma * delta_last for the last sweep
    np.testing.assert_allclose(Q.max(1), V, rtol=0, atol=theta)
    np.testing.assert_array_equal(result.policy.argmax(1).numpy(), Q.argmax(1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu() -> None:
    """On a GPU, value iteration (dense and sparse) gives the CPU's values."""
    mdp = from_gymnasium("FrozenLake-v1", gamma=0.99, map_name="8x8")
    cpu = dp.value_iteration(mdp, theta=1e-10)
    for m in (mdp, sparse_copy(mdp)):
        gpu = dp.value_iteration(m.to("cuda"), theta=1e-10)
        assert gpu.V.device.type == "cuda"
        torch.testing.assert_close(gpu.V.cpu(), cpu.V, rtol=0, atol=1e-9)
        V_pe = dp.policy_evaluation(m.to("cuda"), cpu.policy.cuda(), theta=1e-10)
        torch.testing.assert_close(V_pe.cpu(), cpu.V, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------
# reachable states and convergence rates


def test_reachable_states_are_the_states_of_episodes() -> None:
    """CliffWalking's cliff cells are in gymnasium's table but in no episode: a step into the
    cliff returns the agent to the start. Every other state (the goal too) is reachable."""
    cliff = from_gymnasium("CliffWalking-v1", gamma=1.0)
    reach = dp.reachable_states(cliff)
    layout = cliff.grid.layout
    cliff_cells = [s for s, (r, c) in enumerate(cliff.grid.cells) if layout[r][c] == "C"]
    assert torch.nonzero(~reach).flatten().tolist() == cliff_cells == list(range(37, 47))
    assert reach[47] and cliff.terminal[47]
    assert torch.equal(dp.reachable_states(sparse_copy(cliff)), reach)
    for mdp in (from_gymnasium("FrozenLake-v1", gamma=0.9), example_4_1().to_mdp()):
        assert dp.reachable_states(mdp).all()


def test_reachable_states_follow_allowed_actions_only() -> None:
    """A state that only a disallowed action leads to is unreachable."""
    P = torch.zeros(3, 2, 3, dtype=torch.float64)
    P[:, 0, 0] = 1.0  # action 0: back to state 0
    P[0, 1, 2] = 1.0  # action 1 from 0 goes to 2 ...
    P[1:, 1, 1] = 1.0
    mask = torch.tensor([[True, False], [True, True], [True, True]])  # ... but is not allowed
    initial = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    mdp = TabularMDP(P, torch.zeros(3, 2), 0.9, action_mask=mask, initial=initial)
    assert dp.reachable_states(mdp).tolist() == [True, False, False]


def test_spectral_radius_without_termination_is_gamma() -> None:
    """Without terminal states P_pi is stochastic (eigenvalue 1): rho(gamma P_pi) = gamma."""
    mdp = two_state_mdp(0.9)
    assert dp.spectral_radius(mdp, mdp.uniform_policy()) == pytest.approx(0.9, abs=1e-12)


def test_spectral_radius_is_the_rate_of_convergence() -> None:
    """The deltas of policy evaluation (Example 4.1, gamma 1) and of value iteration
    (FrozenLake 8x8, gamma 0.99) shrink per sweep by rho(gamma P_pi), and rho < gamma."""
    mdp = example_4_1().to_mdp()
    pi = mdp.uniform_policy()
    deltas = [s.delta for s in dp.policy_evaluation_sweeps(mdp, pi, theta=1e-10)]
    rho = dp.spectral_radius(mdp, pi)
    assert rho < 1.0
    assert (deltas[-1] / deltas[-101]) ** (1 / 100) == pytest.approx(rho, abs=1e-4)
    lake = from_gymnasium("FrozenLake-v1", gamma=0.99, map_name="8x8")
    result = dp.value_iteration(lake, theta=1e-10)
    rho = dp.spectral_radius(lake, result.policy)
    assert rho < 0.975 < lake.gamma
    rate = (result.deltas[-1] / result.deltas[-101]) ** (1 / 100)
    assert rate == pytest.approx(rho, abs=1e-3)


def test_spectral_radius_of_an_improper_policy_is_one() -> None:
    """gamma = 1 and a policy that never ends the episode: rho = 1, the rate of no convergence."""
    mdp, pi = always_up_policy()
    assert dp.spectral_radius(mdp, pi) == pytest.approx(1.0, abs=1e-12)
    assert dp.spectral_radius(mdp.with_gamma(0.5), pi) == pytest.approx(0.5, abs=1e-12)


def test_spectral_radius_refuses_a_huge_mdp() -> None:
    next_states, probs, R = random_successor_mdp(6000, 2, 3, seed=1)
    mdp = TabularMDP.from_successors(next_states, probs, R, 0.9)
    with pytest.raises(ValueError, match="dense 6000x6000"):
        dp.spectral_radius(mdp, mdp.uniform_policy())


def test_gambler_with_the_books_zero_stake() -> None:
    """With stake 0 allowed (the book's action set) v* is unchanged, q*(s, 0) = v*(s) ties
    with the best stake everywhere, and the smallest optimal stake (0) never ends the episode."""
    book = GamblerEnv(p_h=0.4, zero_stake=True).to_mdp()
    course = GamblerEnv(p_h=0.4).to_mdp()
    live = ~book.terminal
    assert book.action_mask[live, 0].all() and not course.action_mask[live, 0].any()
    V = dp.value_iteration(book, theta=1e-12).V
    torch.testing.assert_close(V, dp.value_iteration(course, theta=1e-12).V, rtol=0, atol=1e-9)
    ties = dp.greedy_ties(book, V, tol=1e-8)
    assert ties[live, 0].all()
    never_bet = dp.greedy_policy(book, V, tol=1e-8)  # ties go to the lowest action: stake 0
    assert (never_bet[live, 0] == 1).all()
    with pytest.raises(ValueError, match="never reaches a terminal state"):
        dp.exact_policy_evaluation(book, never_bet)
    # a stake of 0 is a valid action of the env, and it changes nothing
    env = GamblerEnv(p_h=0.4, zero_stake=True)
    env.reset(seed=0, options={"start_state": 30})
    s, r, terminated, _, info = env.step(0)
    assert (s, r, terminated, info["invalid_action"]) == (30, 0.0, False, False)


def test_cliffwalking_figure_leaves_out_the_cliff() -> None:
    """plot_value_grid (chapter 2's CliffWalking figure) colours no value, writes no number
    and draws no arrow on the unreachable cliff cells, and keeps the terminal goal off the
    colour scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlcourse import plots

    cliff = from_gymnasium("CliffWalking-v1", gamma=1.0)
    V = dp.value_iteration(cliff).V
    ax = plots.plot_value_grid(cliff, V, decimals=0)
    image = ax.images[0].get_array()
    hidden = np.ma.getmaskarray(image)
    assert hidden[3, 1:].all() and not hidden[:3].any() and not hidden[3, 0]
    lo, hi = ax.images[0].norm.vmin, ax.images[0].norm.vmax
    assert (lo, hi) == (V[~cliff.terminal & dp.reachable_states(cliff)].min().item(), -1.0)
    numbers = [t for t in ax.texts if t.get_text().lstrip("-").isdigit()]
    assert len(numbers) == 38  # 37 reachable non-terminal states and the goal's 0
    on_cliff = [
        t for t in numbers if round(t.get_position()[1]) == 3 and 1 <= t.get_position()[0] <= 10
    ]
    assert not on_cliff
    quiver = next(c for c in ax.collections if hasattr(c, "U"))
    assert all(round(y) < 3 or round(x) == 0 for x, y in quiver.get_offsets())
    plt.close(ax.figure)
