"""Tests of rlcourse.mdp: TabularMDP validation, from_gymnasium, sparse MDPs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import rlcourse
from rlcourse import dp
from rlcourse.mdp import GridInfo, TabularMDP, from_gymnasium

# ---------------------------------------------------------------------------
# helpers


def two_state_tables() -> tuple[np.ndarray, np.ndarray]:
    """A valid 2-state, 2-action MDP: action 0 stays, action 1 switches state."""
    P = np.zeros((2, 2, 2))
    P[0, 0, 0] = P[1, 0, 1] = 1.0
    P[0, 1, 1] = P[1, 1, 0] = 1.0
    R = np.array([[1.0, 0.0], [2.0, 0.0]])
    return P, R


def dense_from_successors(next_states: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Reference dense P from successor lists, by plain loops (repeats add up)."""
    S, A, K = next_states.shape
    P = np.zeros((S, A, S))
    for s in range(S):
        for a in range(A):
            for k in range(K):
                P[s, a, next_states[s, a, k]] += probs[s, a, k]
    return P


def random_successor_mdp(
    S: int = 30, A: int = 3, K: int = 4, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random successor lists ``[S, A, K]``, their probabilities and rewards ``[S, A]``."""
    g = torch.Generator().manual_seed(seed)
    next_states = torch.randint(0, S, (S, A, K), generator=g)
    w = torch.rand(S, A, K, generator=g, dtype=torch.float64) + 0.1
    probs = w / w.sum(-1, keepdim=True)
    R = torch.randn(S, A, generator=g, dtype=torch.float64)
    return next_states, probs, R


# ---------------------------------------------------------------------------
# validation of TabularMDP


def test_valid_mdp_is_accepted() -> None:
    """A correct MDP builds, with the shapes, gamma and defaults it was given."""
    P, R = two_state_tables()
    mdp = TabularMDP(P, R, 0.9)
    assert (mdp.n_states, mdp.n_actions) == (2, 2)
    assert mdp.gamma == 0.9
    assert mdp.P.dtype == torch.float64
    assert not mdp.terminal.any()
    assert mdp.action_mask.all()
    torch.testing.assert_close(mdp.initial, torch.tensor([0.5, 0.5], dtype=torch.float64))


def test_rows_not_summing_to_one_name_the_row() -> None:
    """A row of P that does not sum to 1 is rejected, and the message names that row."""
    P, R = two_state_tables()
    P[1, 0, 1] = 0.9
    with pytest.raises(ValueError, match=r"row P\[1, 0, :\] sums to 0\.9, not 1"):
        TabularMDP(P, R, 0.9)


def test_negative_probability() -> None:
    """A negative entry of P is rejected even when its row sums to 1."""
    P, R = two_state_tables()
    P[0, 1] = [1.5, -0.5]
    with pytest.raises(ValueError, match=r"negative probability at \[s, a, s'\] = \[0, 1, 1\]"):
        TabularMDP(P, R, 0.9)


@pytest.mark.parametrize(
    ("P", "R", "message"),
    [
        (np.eye(2), np.zeros((2, 1)), r"P must have shape \[S, A, S\], got \(2, 2\)"),
        (np.full((2, 1, 3), 1 / 3), np.zeros((2, 1)), r"same S twice, got \(2, 1, 3\)"),
        (two_state_tables()[0], np.zeros((2, 3)), r"R must have shape \[S, A\] = \[2, 2\]"),
        (two_state_tables()[0], np.zeros(2), r"R must have shape \[S, A\] = \[2, 2\]"),
    ],
    ids=["P-2d", "P-not-SxAxS", "R-wrong-A", "R-1d"],
)
def test_wrong_shapes(P: np.ndarray, R: np.ndarray, message: str) -> None:
    """P that is not [S, A, S] and R that is not [S, A] are rejected with the shapes named."""
    with pytest.raises(ValueError, match=message):
        TabularMDP(P, R, 0.9)


@pytest.mark.parametrize("gamma", [-0.1, 1.0001, 2, float("nan")])
def test_gamma_out_of_range(gamma: float) -> None:
    """gamma outside [0, 1] (or NaN) is a ValueError that says the allowed range."""
    P, R = two_state_tables()
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\]"):
        TabularMDP(P, R, gamma)


@pytest.mark.parametrize("gamma", [True, False, "0.9", None, [0.9]])
def test_gamma_of_wrong_type(gamma: object) -> None:
    """gamma that is not a number (bool, string, ...) is a TypeError, not silently coerced."""
    P, R = two_state_tables()
    with pytest.raises(TypeError, match="gamma must be a number in"):
        TabularMDP(P, R, gamma)  # type: ignore[arg-type]


@pytest.mark.parametrize("gamma", [0, 1, 0.5, np.float64(0.25)])
def test_gamma_edge_values_accepted(gamma: float) -> None:
    """gamma = 0, gamma = 1 and NumPy floats are valid and stored as float."""
    P, R = two_state_tables()
    mdp = TabularMDP(P, R, gamma)
    assert isinstance(mdp.gamma, float)
    assert mdp.gamma == float(gamma)


def test_terminal_state_must_be_absorbing() -> None:
    """A terminal state with a way out is rejected, naming the state and the action."""
    P, R = two_state_tables()
    R[0] = 0.0
    with pytest.raises(ValueError, match=r"terminal state 0 must be absorbing, but P\[0, 1, 0\]"):
        TabularMDP(P, R, 0.9, torch.tensor([True, False]))


def test_terminal_state_must_have_zero_reward() -> None:
    """An absorbing terminal state that still pays a reward is rejected."""
    P, R = two_state_tables()
    P[0, 1] = [1.0, 0.0]  # state 0 absorbing under both actions
    with pytest.raises(ValueError, match=r"terminal state 0 must give zero reward, but R\[0, 0\]"):
        TabularMDP(P, R, 0.9, torch.tensor([True, False]))


def test_terminal_mask_must_be_bool_of_right_shape() -> None:
    """The terminal mask is a bool [S] tensor; ints or a wrong shape are rejected."""
    P, R = two_state_tables()
    with pytest.raises(TypeError, match="terminal must be a bool tensor"):
        TabularMDP(P, R, 0.9, torch.tensor([1, 0]))
    with pytest.raises(ValueError, match=r"terminal must have shape \[2\]"):
        TabularMDP(P, R, 0.9, torch.tensor([False, False, False]))


def test_policy_rows_must_sum_to_one() -> None:
    """check_policy (and the DP functions through it) reject rows that do not sum to 1."""
    P, R = two_state_tables()
    mdp = TabularMDP(P, R, 0.9)
    bad = torch.tensor([[0.5, 0.5], [0.5, 0.4]], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"policy row 1 sums to 0\.9, not 1"):
        mdp.check_policy(bad)
    with pytest.raises(ValueError, match=r"policy row 1 sums to 0\.9"):
        dp.policy_evaluation(mdp, bad)
    with pytest.raises(ValueError, match=r"policy row 1 sums to 0\.9"):
        dp.exact_policy_evaluation(mdp, bad)


@pytest.mark.parametrize("shape", [(2,), (2, 3), (3, 2), (2, 2, 1)])
def test_policy_of_wrong_shape(shape: tuple[int, ...]) -> None:
    """A policy that is not [S, A] is rejected with the expected shape in the message."""
    P, R = two_state_tables()
    mdp = TabularMDP(P, R, 0.9)
    pi = torch.full(shape, 0.5, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"policy must have shape \[S, A\] = \[2, 2\]"):
        mdp.check_policy(pi)


def test_policy_with_negative_probability() -> None:
    """A policy row that sums to 1 with a negative entry is still rejected."""
    P, R = two_state_tables()
    mdp = TabularMDP(P, R, 0.9)
    with pytest.raises(ValueError, match="negative or non-finite probability in state 0"):
        mdp.check_policy([[1.5, -0.5], [0.5, 0.5]])


def test_uniform_policy_respects_action_mask() -> None:
    """The equiprobable policy spreads over the allowed actions only."""
    P, R = two_state_tables()
    mask = torch.tensor([[True, True], [False, True]])
    mdp = TabularMDP(P, R, 0.9, action_mask=mask)
    expected = torch.tensor([[0.5, 0.5], [0.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(mdp.uniform_policy(), expected)
    with pytest.raises(ValueError, match="action 0, not allowed in state 1"):
        mdp.check_policy([[0.5, 0.5], [1.0, 0.0]])


def test_grid_and_action_names_must_match_sizes() -> None:
    """action_names with the wrong count, or a grid placing the wrong number of states, fail."""
    P, R = two_state_tables()
    with pytest.raises(ValueError, match="action_names has 3 names for 2 actions"):
        TabularMDP(P, R, 0.9, action_names=("a", "b", "c"))
    grid = GridInfo((1, 3), ((0, 0), (0, 1), (0, 2)))
    with pytest.raises(ValueError, match="grid places 3 states but the MDP has 2"):
        TabularMDP(P, R, 0.9, grid=grid)


# ---------------------------------------------------------------------------
# from_gymnasium: errors


def test_from_gymnasium_unknown_id() -> None:
    """An id gymnasium does not know is a ValueError that names the id."""
    with pytest.raises(ValueError, match=r"unknown environment id 'NoSuchEnv-v7'"):
        from_gymnasium("NoSuchEnv-v7", gamma=0.9)


def test_from_gymnasium_env_without_table() -> None:
    """CartPole has no transition table: the error names the env and what is supported."""
    with pytest.raises(ValueError, match=r"CartPole-v1 has no transition table"):
        from_gymnasium("CartPole-v1", gamma=0.9)


@pytest.mark.parametrize("env_id", ["FrozenLake-v1", "CliffWalking-v1", "Taxi-v4"])
def test_from_gymnasium_requires_gamma_for_toy_text(env_id: str) -> None:
    """gymnasium's envs define no discount, so leaving gamma out is an error that says so."""
    with pytest.raises(TypeError, match=rf"{env_id} defines no discount factor: pass gamma"):
        from_gymnasium(env_id)


def test_from_gymnasium_make_kwargs_only_with_id() -> None:
    """Keyword arguments for gymnasium.make make no sense with an env instance."""
    env = gym.make("FrozenLake-v1")
    with pytest.raises(TypeError, match="only accepted with an env id"):
        from_gymnasium(env, gamma=0.9, map_name="8x8")


def test_from_gymnasium_course_env_uses_book_gamma() -> None:
    """A course env passes through to_mdp(): its own gamma by default, an explicit one if given."""
    assert from_gymnasium("rlcourse/GridWorld4x4-v0").gamma == 1.0
    assert from_gymnasium("rlcourse/GridWorld5x5-v0").gamma == 0.9
    assert from_gymnasium("rlcourse/GridWorld5x5-v0", gamma=0.5).gamma == 0.5


# ---------------------------------------------------------------------------
# from_gymnasium: toy_text envs

TOY_TEXT = [
    ("FrozenLake-v1", {}, 16, 4),
    ("FrozenLake-v1", {"map_name": "8x8"}, 64, 4),
    ("CliffWalking-v1", {}, 48, 4),
    ("Taxi-v4", {}, 500, 6),
]
TOY_IDS = ["FrozenLake4x4", "FrozenLake8x8", "CliffWalking", "Taxi"]


@pytest.mark.parametrize(("env_id", "kwargs", "S", "A"), TOY_TEXT, ids=TOY_IDS)
def test_toy_text_shapes_and_stochastic_rows(env_id: str, kwargs: dict, S: int, A: int) -> None:
    """P is [S, A, S] with rows summing to 1, R is [S, A], gamma as given, name = the id."""
    mdp = from_gymnasium(env_id, gamma=0.95, **kwargs)
    assert tuple(mdp.P.shape) == (S, A, S)
    assert tuple(mdp.R.shape) == (S, A)
    assert mdp.gamma == 0.95
    assert mdp.name == env_id
    assert (mdp.P >= 0).all()
    torch.testing.assert_close(mdp.P.sum(-1), torch.ones(S, A, dtype=torch.float64))


@pytest.mark.parametrize(("env_id", "kwargs", "S", "A"), TOY_TEXT, ids=TOY_IDS)
def test_toy_text_tables_match_gymnasium(env_id: str, kwargs: dict, S: int, A: int) -> None:
    """For every non-terminal (s, a): P[s, a, s'] and R[s, a] = sum p * r equal gymnasium's table.

    The reference sums gymnasium's ``env.unwrapped.P`` lists directly in plain Python.
    """
    env = gym.make(env_id, **kwargs)
    table = env.unwrapped.P
    mdp = from_gymnasium(env, gamma=0.9)
    P, R, terminal = mdp.P.numpy(), mdp.R.numpy(), mdp.terminal.numpy()
    for s in range(S):
        if terminal[s]:
            continue
        for a in range(A):
            row = np.zeros(S)
            expected_r = 0.0
            for p, s2, r, _done in table[s][a]:
                row[s2] += p
                expected_r += p * r
            np.testing.assert_allclose(P[s, a], row, atol=1e-12, err_msg=f"P[{s}, {a}]")
            assert R[s, a] == pytest.approx(expected_r, abs=1e-12), f"R[{s}, {a}]"


def test_frozenlake_reward_by_hand() -> None:
    """FrozenLake 4x4, state 14 (left of the goal), action right: slips 1/3 each to
    down (stays, bottom row), right (goal, +1), up (state 10): R = 1/3."""
    mdp = from_gymnasium("FrozenLake-v1", gamma=0.9)
    right = mdp.action_names.index("right")
    assert mdp.R[14, right].item() == pytest.approx(1 / 3)
    assert mdp.P[14, right, 15].item() == pytest.approx(1 / 3)
    assert mdp.P[14, right, 14].item() == pytest.approx(1 / 3)
    assert mdp.P[14, right, 10].item() == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("env_id", "kwargs", "names"),
    [
        ("FrozenLake-v1", {}, ("left", "down", "right", "up")),
        ("FrozenLake-v1", {"map_name": "8x8"}, ("left", "down", "right", "up")),
        ("CliffWalking-v1", {}, ("up", "right", "down", "left")),
        ("Taxi-v4", {}, ("south", "north", "east", "west", "pickup", "dropoff")),
    ],
    ids=["FrozenLake4x4", "FrozenLake8x8", "CliffWalking", "Taxi"],
)
def test_toy_text_action_names_in_env_order(env_id: str, kwargs: dict, names: tuple) -> None:
    """action_names follow each env's own numbering (documented in gymnasium)."""
    assert from_gymnasium(env_id, gamma=0.9, **kwargs).action_names == names


def test_frozenlake_action_names_agree_with_dynamics() -> None:
    """On non-slippery FrozenLake, each named action moves the agent that way from the
    centre cell (1, 2) = state 6 (the names are checked against the table, not a list)."""
    mdp = from_gymnasium("FrozenLake-v1", gamma=0.9, is_slippery=False)
    step = {"left": (0, -1), "down": (1, 0), "right": (0, 1), "up": (-1, 0)}
    r, c = 1, 2
    for a, name in enumerate(mdp.action_names):
        s2 = int(mdp.P[r * 4 + c, a].argmax())
        assert divmod(s2, 4) == (r + step[name][0], c + step[name][1]), name


@pytest.mark.parametrize("kwargs", [{}, {"map_name": "8x8"}], ids=["4x4", "8x8"])
def test_frozenlake_terminal_states_are_holes_and_goal(kwargs: dict) -> None:
    """FrozenLake's terminal states are exactly the H and G cells of its map, and absorbing."""
    env = gym.make("FrozenLake-v1", **kwargs)
    desc = env.unwrapped.desc.astype(str).ravel()
    expected = np.isin(desc, ["H", "G"])
    mdp = from_gymnasium(env, gamma=0.99)
    np.testing.assert_array_equal(mdp.terminal.numpy(), expected)
    for s in np.flatnonzero(expected):
        assert (mdp.P[s, :, s] == 1).all()
        assert (mdp.R[s] == 0).all()
    assert mdp.grid is not None
    assert mdp.grid.shape == desc.reshape(env.unwrapped.desc.shape).shape


def test_cliffwalking_only_goal_is_terminal_and_made_absorbing() -> None:
    """CliffWalking: only the goal (state 47) is terminal. gymnasium's table lets the
    agent leave 47, but from_gymnasium makes it absorbing with zero reward."""
    env = gym.make("CliffWalking-v1")
    table = env.unwrapped.P
    assert any(s2 != 47 for a in table[47] for _p, s2, _r, _d in table[47][a])
    mdp = from_gymnasium(env, gamma=0.9)
    assert torch.nonzero(mdp.terminal).flatten().tolist() == [47]
    assert (mdp.P[47, :, 47] == 1).all()
    assert (mdp.R[47] == 0).all()
    # the cliff cells send the agent back to the start (36) with -100, without ending
    right = mdp.action_names.index("right")
    assert mdp.P[36, right, 36].item() == 1.0
    assert mdp.R[36, right].item() == -100.0


def test_taxi_has_four_terminal_states() -> None:
    """Taxi's terminal states are the four 'passenger delivered' states: taxi at the
    destination landmark with the passenger's location equal to the destination."""
    env = gym.make("Taxi-v4")
    u = env.unwrapped
    expected = set()
    for s in range(500):
        row, col, pass_loc, dest = u.decode(s)
        if pass_loc == dest and (row, col) == tuple(u.locs[dest]):
            expected.add(s)
    assert len(expected) == 4
    mdp = from_gymnasium(env, gamma=0.9)
    assert set(torch.nonzero(mdp.terminal).flatten().tolist()) == expected
    assert mdp.grid is None
    torch.testing.assert_close(
        mdp.initial, torch.as_tensor(u.initial_state_distrib, dtype=torch.float64)
    )


# ---------------------------------------------------------------------------
# sparse MDPs


def test_from_successors_matches_dense() -> None:
    """A sparse MDP from successor lists gives the same q-values and value iteration
    result as the dense MDP built (by plain loops) from the same lists."""
    next_states, probs, R = random_successor_mdp()
    sparse = TabularMDP.from_successors(next_states, probs, R, 0.9)
    P = dense_from_successors(next_states.numpy(), probs.numpy())
    dense = TabularMDP(P, R, 0.9)
    assert sparse.is_sparse
    assert not dense.is_sparse
    torch.testing.assert_close(sparse.P.to_dense(), dense.P)
    V = torch.randn(30, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(sparse.q_values(V), dense.q_values(V), rtol=0, atol=1e-12)
    # q = R + gamma P V, computed here directly from the dense reference
    torch.testing.assert_close(
        dense.q_values(V), R + 0.9 * torch.from_numpy(P @ V.numpy()), rtol=0, atol=1e-12
    )
    vs, vd = dp.value_iteration(sparse, 1e-10), dp.value_iteration(dense, 1e-10)
    torch.testing.assert_close(vs.V, vd.V, rtol=0, atol=1e-9)
    assert torch.equal(vs.policy, vd.policy)


def test_from_successors_repeated_successors_add_up() -> None:
    """Two entries for the same successor add their probabilities."""
    next_states = torch.tensor([[[0, 0]], [[1, 0]]])
    probs = torch.tensor([[[0.25, 0.75]], [[0.5, 0.5]]], dtype=torch.float64)
    mdp = TabularMDP.from_successors(next_states, probs, torch.zeros(2, 1), 0.5)
    expected = torch.tensor([[[1.0, 0.0]], [[0.5, 0.5]]], dtype=torch.float64)
    torch.testing.assert_close(mdp.P.to_dense(), expected)


def test_sparse_row_not_summing_to_one() -> None:
    """Sparse P is validated like dense P: a row that does not sum to 1 is named."""
    next_states, probs, R = random_successor_mdp(S=10, A=2, K=3)
    probs = probs.clone()
    probs[4, 1, 0] += 0.5
    with pytest.raises(ValueError, match=r"row P\[4, 1, :\] sums to 1\.5, not 1"):
        TabularMDP.from_successors(next_states, probs, R, 0.9)


def test_sparse_negative_probability() -> None:
    """A negative entry of a sparse P is named by its [s, a, s'] index."""
    next_states = torch.tensor([[[0, 1]], [[1, 0]]])
    probs = torch.tensor([[[1.5, -0.5]], [[0.5, 0.5]]], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"negative probability at \[s, a, s'\] = \[0, 0, 1\]"):
        TabularMDP.from_successors(next_states, probs, torch.zeros(2, 1), 0.9)


def test_from_successors_bad_inputs() -> None:
    """Float successor indices, indices out of range and mismatched shapes are rejected."""
    next_states, probs, R = random_successor_mdp(S=10, A=2, K=3)
    with pytest.raises(TypeError, match="next_states must be integers"):
        TabularMDP.from_successors(next_states.double(), probs, R, 0.9)
    with pytest.raises(ValueError, match=r"next_states must lie in \[0, 10\)"):
        TabularMDP.from_successors(next_states + 10, probs, R, 0.9)
    with pytest.raises(ValueError, match=r"must both have shape \[S, A, K\]"):
        TabularMDP.from_successors(next_states, probs[..., :2], R, 0.9)


def test_sparse_coo_p_accepted_directly() -> None:
    """A sparse COO P passed to the constructor equals the dense one it came from."""
    P, R = two_state_tables()
    mdp = TabularMDP(torch.from_numpy(P).to_sparse(), R, 0.9)
    assert mdp.is_sparse
    torch.testing.assert_close(mdp.P.to_dense(), torch.from_numpy(P))
    torch.testing.assert_close(
        mdp.self_loop_probs(), torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    )


# ---------------------------------------------------------------------------
# with_gamma and to


def test_with_gamma_keeps_everything_else() -> None:
    """with_gamma changes only gamma; the original MDP is unchanged."""
    mdp = from_gymnasium("FrozenLake-v1", gamma=0.9)
    new = mdp.with_gamma(0.5)
    assert new.gamma == 0.5
    assert mdp.gamma == 0.9
    assert new is not mdp
    for attr in ("P", "R", "terminal", "action_mask", "initial"):
        assert torch.equal(getattr(new, attr), getattr(mdp, attr)), attr
    assert new.action_names == mdp.action_names
    assert new.grid == mdp.grid
    assert new.name == mdp.name
    # the new gamma is the one the backups use
    V = torch.ones(16, dtype=torch.float64)
    torch.testing.assert_close(new.q_values(V), mdp.R + 0.5 * mdp.P.sum(-1))
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\]"):
        mdp.with_gamma(1.5)
    with pytest.raises(TypeError, match="gamma must be a number"):
        mdp.with_gamma(True)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_to_cpu_keeps_everything(sparse: bool) -> None:
    """to('cpu') returns an equal MDP (tensors, names, grid, mask, sparsity) on the CPU."""
    env = rlcourse.envs.GamblerEnv(goal=10)
    mdp = env.to_mdp()
    if sparse:
        mdp = mdp.to_sparse()
    moved = mdp.to("cpu")
    assert moved.device == torch.device("cpu")
    assert moved.is_sparse == sparse
    if sparse:
        assert torch.equal(moved.P.to_dense(), mdp.P.to_dense())
    else:
        assert torch.equal(moved.P, mdp.P)
    for attr in ("R", "terminal", "action_mask", "initial"):
        assert torch.equal(getattr(moved, attr), getattr(mdp, attr)), attr
    assert moved.gamma == mdp.gamma
    assert moved.action_names == mdp.action_names
    assert moved.grid == mdp.grid
    assert moved.name == mdp.name


def test_repr_is_informative() -> None:
    """repr names the MDP, its sizes, gamma and terminal count (and no memory address)."""
    mdp = from_gymnasium("CliffWalking-v1", gamma=0.9)
    text = repr(mdp)
    for part in ("CliffWalking-v1", "S=48", "A=4", "gamma=0.9", "terminal=1", "dense"):
        assert part in text
    assert "0x" not in text
