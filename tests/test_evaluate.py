"""Tests of rlcourse.evaluate: greedy play of a table or an agent on seeded episodes,
checked against hand-made policies and the exact success probability of FrozenLake's
optimal policy (dynamic programming), and the acceptance check of Q-learning on it."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlcourse import dp, tabular
from rlcourse.evaluate import evaluate
from rlcourse.mdp import from_gymnasium

LEFT, DOWN, RIGHT, UP = 0, 1, 2, 3  # FrozenLake's action numbering
# a shortest safe path on the 4x4 lake: 0 -down-> 4 -down-> 8 -right-> 9 -right-> 10
# -down-> 14 -right-> 15 (the goal); holes are 5, 7, 11, 12
PATH_ACTIONS = {0: DOWN, 4: DOWN, 8: RIGHT, 9: RIGHT, 10: DOWN, 14: RIGHT}


def path_table(start_action: int = DOWN) -> torch.Tensor:
    """A Q-table (not one-hot: distinct values) whose argmax follows PATH_ACTIONS."""
    rng = np.random.default_rng(0)
    Q = rng.uniform(-1.0, 0.0, (16, 4))
    for s, a in {**PATH_ACTIONS, 0: start_action}.items():
        Q[s, a] = 0.5
    return torch.as_tensor(Q)


def exact_success_within(mdp, policy: torch.Tensor, steps: int) -> float:
    """Probability of reaching the goal from the start within ``steps`` steps: ``steps``
    expectation backups from V = 0 with gamma = 1 (the reward is 1 only on entering
    the goal), as in notebook 02."""
    undiscounted = mdp.with_gamma(1.0)
    V = torch.zeros(mdp.n_states, dtype=torch.float64)
    for _ in range(steps):
        V = dp.expectation_backup(undiscounted, V, policy)
    return float(V[0])


def optimal_policy() -> tuple[object, torch.Tensor]:
    """FrozenLake 4x4's MDP (gamma 0.99) and its optimal policy by value iteration."""
    mdp = from_gymnasium("FrozenLake-v1", gamma=0.99)
    return mdp, dp.value_iteration(mdp).policy


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging the suite) if the block runs longer than ``seconds``."""

    def fail(*_):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------------------
# greedy play by hand


def test_table_plays_its_argmax() -> None:
    """On the deterministic lake the path table reaches the goal in every episode (return
    1); the same table with 'left' at the start stays there until the 100-step limit
    (return 0)."""
    env = gym.make("FrozenLake-v1", is_slippery=False)
    np.testing.assert_array_equal(evaluate(path_table(), env, n_episodes=5), 1.0)
    np.testing.assert_array_equal(evaluate(path_table().numpy(), env, n_episodes=5), 1.0)
    np.testing.assert_array_equal(evaluate(path_table(LEFT), env, n_episodes=5), 0.0)


def test_returns_are_undiscounted_sums() -> None:
    """CliffWalking's shortest path (up, 11 x right, down) returns -13 in every episode."""
    Q = torch.zeros(48, 4)
    Q[36, 0] = 1.0  # up
    Q[24:35, 1] = 1.0  # right along row 2
    Q[35, 2] = 1.0  # down into the goal
    np.testing.assert_array_equal(evaluate(Q, "CliffWalking-v1", n_episodes=3), -13.0)


class PathAgent:
    """An agent with ``act(obs)``: the path's actions for a batch of observations."""

    def __init__(self, as_tensor: bool = False) -> None:
        self.table = path_table().argmax(1).numpy()
        self.as_tensor = as_tensor
        self.calls = 0

    def act(self, obs):
        self.calls += 1
        actions = self.table[np.asarray(obs)]
        return torch.as_tensor(actions) if self.as_tensor else actions


@pytest.mark.parametrize("as_tensor", [False, True])
def test_agent_with_act(as_tensor: bool) -> None:
    """An object with act(obs) plays like its table (NumPy or torch actions), with one
    call per step for the whole batch: 6 steps on the deterministic lake."""
    env = gym.make("FrozenLake-v1", is_slippery=False)
    agent = PathAgent(as_tensor)
    np.testing.assert_array_equal(evaluate(agent, env, n_episodes=4), 1.0)
    assert agent.calls == 6
    slippery = evaluate(PathAgent(as_tensor), "FrozenLake-v1", n_episodes=300, seed=5)
    np.testing.assert_array_equal(
        slippery, evaluate(path_table(), "FrozenLake-v1", n_episodes=300, seed=5)
    )


def test_agent_on_an_env_without_a_table() -> None:
    """CartPole goes through gymnasium's vector env: pushing always left ends every
    episode within a few steps (+1 per step), seeded and repeatable."""

    class Left:
        def act(self, obs):
            return np.zeros(len(obs), dtype=np.int64)

    returns = evaluate(Left(), "CartPole-v1", n_episodes=20, seed=0)
    assert returns.shape == (20,)
    assert ((returns >= 5) & (returns <= 20)).all()
    np.testing.assert_array_equal(returns, evaluate(Left(), "CartPole-v1", n_episodes=20, seed=0))


# ---------------------------------------------------------------------------
# seeding


def test_same_seed_same_returns_and_episode_i_uses_seed_plus_i() -> None:
    """Same seed: same returns; episode i runs in a copy seeded seed + i, so episodes
    100..399 of seed 10 are episodes 0..299 of seed 110; another seed gives other outcomes
    (the optimal policy succeeds about 74% of the time, so outcomes vary)."""
    _, policy = optimal_policy()
    a = evaluate(policy, "FrozenLake-v1", n_episodes=500, seed=10)
    assert 0.6 < a.mean() < 0.9
    np.testing.assert_array_equal(a, evaluate(policy, "FrozenLake-v1", n_episodes=500, seed=10))
    np.testing.assert_array_equal(
        a[100:400], evaluate(policy, "FrozenLake-v1", n_episodes=300, seed=110)
    )
    assert not np.array_equal(a, evaluate(policy, "FrozenLake-v1", n_episodes=500, seed=11))


# ---------------------------------------------------------------------------
# FrozenLake: the optimal policy and Q-learning's


def test_optimal_policy_success_rate_matches_dynamic_programming() -> None:
    """The value-iteration policy (gamma 0.99) on 10,000 seeded episodes succeeds about
    74% of the time: within 3 standard errors of the exact probability of reaching the goal
    within FrozenLake's 100-step limit."""
    mdp, policy = optimal_policy()
    p = exact_success_within(mdp, policy, 100)
    assert 0.72 < p < 0.76
    returns = evaluate(policy, "FrozenLake-v1", n_episodes=10_000, seed=0)
    assert set(np.unique(returns).tolist()) <= {0.0, 1.0}
    se = np.sqrt(p * (1 - p) / 10_000)
    assert abs(returns.mean() - p) < 3 * se


def test_q_learning_policies_are_nearly_optimal() -> None:
    """The acceptance check, with chapter 4's documented settings and seed (alpha 0.03,
    gamma 0.99, epsilon 1 -> 0.01 over 6000 episodes, 8000 episodes, 20 runs from seed 0):
    every run's greedy policy succeeds within 0.02 of the optimal policy on the same
    10,000 seeded episodes. (Constant-step Q-learning leaves some noise in Q: with other
    seeds about one run in 40 picks a worse action in a near-tied state.)"""
    _, policy = optimal_policy()
    best = evaluate(policy, "FrozenLake-v1", n_episodes=10_000, seed=123).mean()
    Q, _ = tabular.q_learning(
        "FrozenLake-v1", 8000, 0.03, 0.99, tabular.linear_schedule(1.0, 0.01, 6000), 0, num_runs=20
    )
    rates = np.array(
        [evaluate(Q[i], "FrozenLake-v1", n_episodes=10_000, seed=123).mean() for i in range(20)]
    )
    far = {i: round(float(r), 4) for i, r in enumerate(rates) if abs(r - best) > 0.02}
    assert not far, f"optimal {best:.4f}; runs further than 0.02: {far}"


# ---------------------------------------------------------------------------
# errors


@pytest.mark.parametrize("n_episodes", [0, -3, 2.5])
def test_n_episodes_must_be_positive(n_episodes) -> None:
    with pytest.raises(ValueError, match="n_episodes must be a positive integer"):
        evaluate(path_table(), "FrozenLake-v1", n_episodes=n_episodes)


def test_bad_tables_and_agents() -> None:
    """A table that is not [S, A], or has the wrong number of rows, is a ValueError; an
    object without act() a TypeError."""
    with pytest.raises(ValueError, match=r"\[S, A\].*got shape \[2, 16, 4\]"):
        evaluate(torch.zeros(2, 16, 4), "FrozenLake-v1")
    with pytest.raises(ValueError, match=r"\[S, A\].*got shape \[16\]"):
        evaluate(np.zeros(16), "FrozenLake-v1")
    with pytest.raises(ValueError, match="the table has 15 rows but the env has 16 states"):
        evaluate(torch.zeros(15, 4), "FrozenLake-v1")
    with pytest.raises(TypeError, match="act"):
        evaluate("greedy", "FrozenLake-v1")


def test_policy_that_never_ends_an_episode_does_not_hang() -> None:
    """CliffWalking-v1 has no time limit, and a zero-initialised Q-table plays 'up' forever
    from the start (it bumps into the top edge). evaluate must come back (with returns, or
    a ValueError/RuntimeError naming the problem) instead of looping forever."""
    with time_limit(5):
        try:
            returns = evaluate(torch.zeros(48, 4), "CliffWalking-v1", n_episodes=2)
        except (ValueError, RuntimeError) as err:
            assert "step" in str(err) or "limit" in str(err) or "end" in str(err)
        else:
            assert returns.shape == (2,) and (returns < 0).all()


def test_episodes_without_time_limit_are_cut_at_max_episode_steps() -> None:
    """An endless greedy policy is cut after max_episode_steps; its return so far counts
    (CliffWalking pays -1 per step, so 50 steps give -50)."""
    returns = evaluate(torch.zeros(48, 4), "CliffWalking-v1", n_episodes=3, max_episode_steps=50)
    assert returns.tolist() == [-50.0, -50.0, -50.0]
