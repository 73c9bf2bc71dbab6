"""Tests of the course's environments (rlcourse.envs)."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rlcourse
from rlcourse import dp
from rlcourse.envs import (
    ENV_IDS,
    GamblerEnv,
    GridWorldEnv,
    RandomWalkEnv,
    example_3_5,
    example_4_1,
    example_6_5,
)

# ---------------------------------------------------------------------------
# helpers


def reset_to(env: gym.Env, state: int, max_seeds: int = 2000) -> int:
    """Reset ``env`` with the first seed whose start state is ``state`` (public API only)."""
    for seed in range(max_seeds):
        obs, _ = env.reset(seed=seed)
        if obs == state:
            return seed
    raise AssertionError(f"no seed below {max_seeds} starts in state {state}")


def rollout(env_id: str, seed: int, n_steps: int = 60) -> list[tuple[int, float, bool]]:
    """(obs, reward, terminated) of a seeded run with seeded random actions."""
    env = gym.make(env_id)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    out: list[tuple[int, float, bool]] = [(int(obs), 0.0, False)]
    for _ in range(n_steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        out.append((int(obs), float(reward), bool(terminated)))
        if terminated or truncated:
            obs, _ = env.reset()
            out.append((int(obs), 0.0, False))
    return out


# ---------------------------------------------------------------------------
# registration and gymnasium's checker


def test_env_ids_are_registered() -> None:
    """Every id of ENV_IDS is in gymnasium's registry with its step limit."""
    assert set(ENV_IDS) == {
        "rlcourse/GridWorld-v0",
        "rlcourse/GridWorld5x5-v0",
        "rlcourse/GridWorld4x4-v0",
        "rlcourse/Gambler-v0",
        "rlcourse/RandomWalk-v0",
        "rlcourse/WindyGridWorld-v0",
    }
    for env_id, limit in ENV_IDS.items():
        assert env_id in gym.registry
        assert gym.registry[env_id].max_episode_steps == limit


@pytest.mark.parametrize("render_mode", ["ansi", "rgb_array"])
@pytest.mark.parametrize("env_id", list(ENV_IDS))
def test_check_env(env_id: str, render_mode: str) -> None:
    """gymnasium's env checker passes, render check included, with no warning."""
    env = gym.make(env_id, render_mode=render_mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=False)
    frame = env.unwrapped.render()
    if render_mode == "ansi":
        assert isinstance(frame, str) and frame
    else:
        assert isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3


@pytest.mark.parametrize("env_id", list(ENV_IDS))
def test_make_and_step(env_id: str) -> None:
    """gymnasium.make works after `import rlcourse`; observations lie in the spaces."""
    env = gym.make(env_id)
    assert env.spec is not None and env.spec.max_episode_steps == ENV_IDS[env_id]
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert isinstance(info, dict)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)
    assert isinstance(reward, float)
    assert isinstance(terminated, bool) and isinstance(truncated, bool)


@pytest.mark.parametrize("env_id", list(ENV_IDS))
def test_seeded_trajectories_repeat(env_id: str) -> None:
    """Same seed, same trajectory of (obs, reward, terminated); another seed differs."""
    a, b = rollout(env_id, seed=7), rollout(env_id, seed=7)
    assert a == b
    assert rollout(env_id, seed=8) != a


def test_invalid_render_mode_rejected() -> None:
    """An unsupported render mode is a ValueError listing the supported ones."""
    with pytest.raises(ValueError, match=r"render_mode must be one of \['ansi', 'rgb_array'\]"):
        GridWorldEnv(render_mode="human")


def test_step_rejects_out_of_range_action() -> None:
    """A grid-world action outside the action space is an error."""
    env = example_4_1()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be an integer in \[0, 4\)"):
        env.step(4)


# ---------------------------------------------------------------------------
# dynamics against the tables


def test_slippery_grid_world_frequencies_match_table() -> None:
    """Empirical transition frequencies of a slippery grid world (slip 2/3) match
    to_mdp().P from a fixed start state, for every action (20,000 seeded steps)."""
    env = GridWorldEnv(("....", ".S#.", "...G"), slip_prob=2 / 3, step_reward=-0.1)
    mdp = env.to_mdp()
    start, _ = env.reset(seed=123)
    S, A = mdp.n_states, mdp.n_actions
    n = 5000  # per action
    for a in range(A):
        counts = np.zeros(S)
        rewards = np.zeros(S)
        for _ in range(n):
            obs, _ = env.reset()
            assert obs == start
            s2, r, *_ = env.step(a)
            counts[s2] += 1
            rewards[s2] = r
        freq = counts / n
        expected = mdp.P[start, a].numpy()
        # std of a frequency is at most sqrt(0.25 / 5000) = 0.007: allow ~4.5 sigma
        np.testing.assert_allclose(freq, expected, atol=0.03, err_msg=f"action {a}")
        assert set(np.flatnonzero(counts)) == set(np.flatnonzero(expected))
        # every transition taken pays the table's reward
        for s2 in np.flatnonzero(counts):
            assert rewards[s2] == env.reward[start, a, s2]
        # R[s, a] is the expected reward under P
        assert mdp.R[start, a].item() == pytest.approx((expected * env.reward[start, a]).sum())


def test_slip_directions_by_hand() -> None:
    """From S at (1, 1) next to a wall on its right, 'up' goes up with 1/3 and slips left or
    right (into the wall: stays) with 1/3 each."""
    env = GridWorldEnv(("....", ".S#.", "...G"), slip_prob=2 / 3)
    mdp = env.to_mdp()
    cells = list(mdp.grid.cells)
    s = cells.index((1, 1))
    up = mdp.action_names.index("up")
    P = mdp.P[s, up].numpy()
    assert P[cells.index((0, 1))] == pytest.approx(1 / 3)
    assert P[cells.index((1, 0))] == pytest.approx(1 / 3)
    assert P[s] == pytest.approx(1 / 3)


@pytest.mark.parametrize("make", [example_3_5, example_4_1], ids=["3.5", "4.1"])
def test_deterministic_rewards_equal_table(make) -> None:
    """In the deterministic textbook grids, every step's reward and next state are the table's."""
    env = make()
    mdp = env.to_mdp()
    rng = np.random.default_rng(0)
    s, _ = env.reset(seed=0)
    for _ in range(500):
        a = int(rng.integers(4))
        s2, r, terminated, _, info = env.step(a)
        assert mdp.P[s, a, s2].item() == 1.0
        assert r == mdp.R[s, a].item()
        assert info["prob"] == 1.0
        assert terminated == bool(mdp.terminal[s2])
        s = env.reset()[0] if terminated else s2


# ---------------------------------------------------------------------------
# the textbook examples


def test_example_3_5_teleports_and_edges() -> None:
    """From A (0, 1) any action -> A' (4, 1) with +10; from B (0, 3) -> B' (2, 3) with +5;
    a move off the grid pays -1 and stays; any other move pays 0."""
    env = example_3_5()
    A, A2, B, B2 = 0 * 5 + 1, 4 * 5 + 1, 0 * 5 + 3, 2 * 5 + 3
    for a in range(4):
        reset_to(env, A)
        assert env.step(a)[:3] == (A2, 10.0, False)
        reset_to(env, B)
        assert env.step(a)[:3] == (B2, 5.0, False)
    up, left, right = 0, 3, 1
    corner = 0
    reset_to(env, corner)
    assert env.step(up)[:3] == (corner, -1.0, False)
    assert env.step(left)[:3] == (corner, -1.0, False)
    assert env.step(right)[:3] == (A, 0.0, False)
    mdp = env.to_mdp()
    assert mdp.gamma == 0.9
    assert not mdp.terminal.any()
    assert env.unwrapped.action_names == ("up", "right", "down", "left")


def test_example_4_1_rewards_and_terminal_corners() -> None:
    """Example 4.1: reward -1 on every transition, terminal corners 0 and 15, gamma 1."""
    env = example_4_1()
    mdp = env.to_mdp()
    assert mdp.gamma == 1.0
    assert mdp.terminal.nonzero().flatten().tolist() == [0, 15]
    assert (mdp.R[~mdp.terminal] == -1).all()
    assert (mdp.R[mdp.terminal] == 0).all()
    # entering a corner ends the episode with -1
    reset_to(env, 1)
    assert env.step(3)[:3] == (0, -1.0, True)  # left from (0, 1)
    reset_to(env, 14)
    assert env.step(1)[:3] == (15, -1.0, True)  # right from (3, 2)
    # starts are never terminal
    starts = {env.reset(seed=seed)[0] for seed in range(200)}
    assert starts == set(range(1, 15))


# ---------------------------------------------------------------------------
# layouts


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"layout": ("S..", "..")}, ValueError, r"same, non-zero length, got \[2, 3\]"),
        ({"layout": ("S.X", "..G")}, ValueError, r"unknown cell letters \['X'\]"),
        ({"layout": ("S.#", "..G"), "teleports": {(0, 0): ((0, 2), 1.0)}}, ValueError,
         r"teleport cell \(0, 2\) is off the grid or a wall"),
        ({"layout": ("S..", "..G"), "teleports": {(0, 0): ((5, 0), 1.0)}}, ValueError,
         r"teleport cell \(5, 0\) is off the grid or a wall"),
        ({"layout": ("###", "###")}, ValueError, "no free cell"),
        ({"layout": "S..G"}, TypeError, "list of strings"),
        ({"slip_prob": 1.5}, ValueError, r"slip_prob must be in \[0, 1\], got 1\.5"),
        ({"slip_prob": -0.1}, ValueError, r"slip_prob must be in \[0, 1\]"),
    ],
    ids=["ragged", "unknown-letter", "teleport-into-wall", "teleport-off-grid", "all-walls",
         "string-layout", "slip-too-big", "slip-negative"],
)  # fmt: skip
def test_layout_errors(kwargs: dict, error: type[Exception], message: str) -> None:
    """Bad layouts and parameters fail with a message that names the problem."""
    with pytest.raises(error, match=message):
        GridWorldEnv(**kwargs)


def test_walls_are_not_states() -> None:
    """Walls have no state: fewer states than cells; moving into a wall stays put (and
    pays the bump reward)."""
    layout = ("S.#", "#.G")
    env = GridWorldEnv(layout, step_reward=-1.0, bump_reward=-2.0)
    mdp = env.to_mdp()
    assert mdp.n_states == 4  # 6 cells, 2 walls
    assert mdp.grid.cells == ((0, 0), (0, 1), (1, 1), (1, 2))
    assert mdp.grid.shape == (2, 3)
    right = mdp.action_names.index("right")
    down = mdp.action_names.index("down")
    s = 1  # (0, 1): a wall on its right
    assert mdp.P[s, right, s].item() == 1.0
    assert mdp.R[s, right].item() == -2.0
    reset_to(env, 0)
    assert env.step(right)[:3] == (1, -1.0, False)
    assert env.step(right)[:3] == (1, -2.0, False)  # into the wall: stays
    assert env.step(down)[:3] == (2, -1.0, False)
    assert env.step(right)[:3] == (3, 1.0, True)  # goal pays goal_reward and ends
    # reset only starts on S
    assert {env.reset(seed=seed)[0] for seed in range(20)} == {0}


# ---------------------------------------------------------------------------
# Gambler


def test_gambler_action_mask_in_info() -> None:
    """reset and step put the allowed stakes, 1..min(s, goal - s), in info['action_mask']."""
    env = GamblerEnv(goal=10)
    for seed in range(10):
        s, info = env.reset(seed=seed)
        mask = info["action_mask"]
        assert mask.dtype == np.int8
        assert mask.shape == (6,)
        assert np.flatnonzero(mask).tolist() == list(range(1, min(s, 10 - s) + 1))


def test_gambler_invalid_stake_changes_nothing() -> None:
    """A stake of 0 or more than allowed leaves the capital as it is, pays 0, flags it."""
    env = GamblerEnv(goal=10)
    reset_to(env, 3)
    for stake in (0, 4, 5):
        obs, reward, terminated, truncated, info = env.step(stake)
        assert (obs, reward, terminated, truncated) == (3, 0.0, False, False)
        assert info["invalid_action"] is True
    obs, reward, terminated, truncated, info = env.step(2)
    assert info["invalid_action"] is False
    assert obs in (1, 5)


def test_gambler_winning_bet_to_goal() -> None:
    """Staking everything needed at capital 50 reaches 100 with +1 and ends the episode, or
    drops to 0 with 0 and ends it; both outcomes occur, roughly p_h of the time a win."""
    env = GamblerEnv(p_h=0.4)
    wins = 0
    n = 0
    for seed in range(3000):
        obs, _ = env.reset(seed=seed)
        if obs != 50:
            continue
        n += 1
        obs, reward, terminated, truncated, info = env.step(50)
        assert not info["invalid_action"]
        assert terminated and not truncated
        if obs == 100:
            assert reward == 1.0
            wins += 1
        else:
            assert (obs, reward) == (0, 0.0)
    assert n >= 15
    assert 0 < wins < n


def test_gambler_parameters_checked() -> None:
    """p_h must be in (0, 1) and goal an integer >= 2."""
    with pytest.raises(ValueError, match=r"p_h .* must be in \(0, 1\), got 1"):
        GamblerEnv(p_h=1)
    with pytest.raises(ValueError, match="goal must be an integer >= 2"):
        GamblerEnv(goal=1)
    with pytest.raises(ValueError, match="goal must be an integer >= 2"):
        GamblerEnv(goal=10.0)  # type: ignore[arg-type]


def test_gambler_table() -> None:
    """The Gambler MDP's table by hand: at capital 3 with stake 2 (goal 5), heads -> 5
    (+1, terminal) with p_h, tails -> 1 with 1 - p_h."""
    mdp = GamblerEnv(p_h=0.25, goal=5).to_mdp()
    assert mdp.gamma == 1.0
    assert mdp.terminal.nonzero().flatten().tolist() == [0, 5]
    assert mdp.P[3, 2, 5].item() == 0.25
    assert mdp.P[3, 2, 1].item() == 0.75
    assert mdp.R[3, 2].item() == 0.25
    assert mdp.action_mask[3].tolist() == [False, True, True]


# ---------------------------------------------------------------------------
# rendering


def test_rgb_render_shape_and_changes_when_agent_moves() -> None:
    """rgb_array frames are (rows*48, cols*48, 3) uint8 and change when the agent moves."""
    env = GridWorldEnv(("S..", "...", "..G", "#.."), render_mode="rgb_array")
    env.reset(seed=0)
    before = env.render()
    assert before.shape == (4 * 48, 3 * 48, 3)
    assert before.dtype == np.uint8
    obs, *_ = env.step(1)  # right
    assert obs != 0
    after = env.render()
    assert after.shape == before.shape
    assert not np.array_equal(before, after)
    # bumping into the edge leaves the frame as it was
    env.step(0)  # up from the top row: stays
    assert np.array_equal(env.render(), after)


def test_ansi_render_marks_agent() -> None:
    """The text rendering shows the layout with the agent as '@'."""
    env = GridWorldEnv(("S..", "..G"), render_mode="ansi")
    env.reset(seed=0)
    assert env.render() == "@..\n..G\n"
    env.step(2)  # down
    text = env.render()
    assert text.endswith("S..\n@.G\n")
    assert "down" in text


def test_make_gridworld_with_layout_kwargs() -> None:
    """rlcourse/GridWorld-v0 accepts layout keyword arguments through gymnasium.make."""
    env = gym.make("rlcourse/GridWorld-v0", layout=["S.G"], step_reward=-1.0)
    mdp = rlcourse.from_gymnasium(env)
    assert mdp.n_states == 3
    assert mdp.terminal.tolist() == [False, False, True]


# ---------------------------------------------------------------------------
# Example 6.5: the windy grid world

WIND = (0, 0, 0, 1, 1, 1, 2, 2, 1, 0)  # the book's upward push of each column


def windy_move(env: GridWorldEnv, cell: tuple[int, int], action: str) -> tuple:
    """(next cell, reward, terminated) of one move from ``cell``, through the env's API."""
    s = env.grid.cells.index(cell)
    env.reset(options={"start_state": s})
    s2, reward, terminated, _, _ = env.step(env.action_names.index(action))
    return env.grid.cells[s2], reward, terminated


def test_windy_grid_world_moves_by_hand() -> None:
    """Example 6.5: the wind of the column the agent leaves pushes it up, never above the
    top row; every step pays -1, entering G (3, 7) ends the episode."""
    env = example_6_5()
    assert env.grid.shape == (7, 10)
    assert env.grid.cells[int(np.argmax(env.initial))] == (3, 0)
    assert windy_move(env, (3, 0), "right") == ((3, 1), -1.0, False)  # no wind in column 0
    assert windy_move(env, (3, 3), "right") == ((2, 4), -1.0, False)  # wind 1
    assert windy_move(env, (3, 6), "right") == ((1, 7), -1.0, False)  # wind 2
    assert windy_move(env, (2, 7), "left") == ((0, 6), -1.0, False)  # wind 2
    assert windy_move(env, (1, 7), "up") == ((0, 7), -1.0, False)  # stops at the top
    assert windy_move(env, (2, 7), "down") == ((1, 7), -1.0, False)  # down 1, up 2
    assert windy_move(env, (4, 8), "left") == ((3, 7), -1.0, True)  # pushed into the goal
    assert windy_move(env, (3, 9), "down") == ((4, 9), -1.0, False)  # no wind in column 9


def test_windy_grid_world_shortest_path_is_15_steps() -> None:
    """The book: the optimal trajectory takes 15 steps, so v*(start) = -15 (gamma 1)."""
    env = example_6_5()
    V = dp.value_iteration(env.to_mdp()).V
    assert V[env.grid.cells.index((3, 0))].item() == pytest.approx(-15.0)
    assert V[env.grid.cells.index((3, 7))].item() == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layout": ("S..G",), "wind": (0, 1, 0)}, "wind must give a non-negative push"),
        ({"layout": ("S..G",), "wind": (0, -1, 0, 0)}, "wind must give a non-negative push"),
        ({"layout": ("S#.G",), "wind": (0, 0, 0, 0)}, "without walls"),
    ],
)
def test_wind_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GridWorldEnv(**kwargs)


# ---------------------------------------------------------------------------
# Example 6.2: the random walk


@pytest.mark.parametrize("n_states", [5, 19])
def test_random_walk_true_values(n_states: int) -> None:
    """Under the random policy v(k) = k / (n + 1) (1/6 ... 5/6 for the 5-state walk):
    true_values() agrees with the exact linear solve of the env's own MDP."""
    env = RandomWalkEnv(n_states)
    mdp = env.to_mdp()
    assert mdp.n_states == n_states + 2 and mdp.gamma == 1.0
    v = dp.exact_policy_evaluation(mdp, mdp.uniform_policy()).numpy()
    expected = np.arange(n_states + 2) / (n_states + 1)
    expected[[0, -1]] = 0.0
    np.testing.assert_allclose(v, expected, atol=1e-12)
    np.testing.assert_allclose(env.true_values(), expected, atol=1e-12)


def test_random_walk_moves_and_rewards() -> None:
    """Starts in the centre; left from A ends with 0, right from E ends with +1; other
    moves pay 0 and do not end the episode."""
    env = RandomWalkEnv()
    assert {env.reset(seed=seed)[0] for seed in range(10)} == {3}
    env.reset(options={"start_state": 1})
    assert env.step(0)[:3] == (0, 0.0, True)
    env.reset(options={"start_state": 5})
    assert env.step(1)[:3] == (6, 1.0, True)
    env.reset(options={"start_state": 4})
    assert env.step(1)[:3] == (5, 0.0, False)
    assert env.step(0)[:3] == (4, 0.0, False)


@pytest.mark.parametrize("n_states", [0, 4, -3, 5.0])
def test_random_walk_needs_a_positive_odd_size(n_states) -> None:
    with pytest.raises(ValueError, match="n_states must be a positive odd integer"):
        RandomWalkEnv(n_states)


# ---------------------------------------------------------------------------
# reset(options={"start_state": s})


def test_reset_start_state_option() -> None:
    """Any state can be the start through options (also through gymnasium.make's
    wrappers); anything that is not a state is a ValueError."""
    env = example_4_1()
    for s in (0, 5, 15):
        obs, info = env.reset(options={"start_state": s})
        assert obs == s and info["prob"] == 1.0
    wrapped = gym.make("rlcourse/GridWorld4x4-v0")
    assert wrapped.reset(seed=0, options={"start_state": 6})[0] == 6
    assert wrapped.step(1)[0] == 7  # right
    for bad in (16, -1, "3", 2.5):
        with pytest.raises(
            ValueError, match=r"options\['start_state'\] must be a state in \[0, 16\)"
        ):
            env.reset(options={"start_state": bad})
