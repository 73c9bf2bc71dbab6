"""Tests of rlcourse.tabular: single updates computed by hand, epsilon-greedy and its
schedules, seeded determinism, and the textbook's results (Sutton & Barto, 2nd ed.:
Example 6.2 random walk, Example 6.5 windy grid world, Example 6.6 cliff walking; n-step TD
on the 19-state random walk of Figure 7.2)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import rlcourse  # noqa: F401 -- registers the rlcourse/ env ids
from rlcourse import tabular
from rlcourse.envs import GridWorldEnv, RandomWalkEnv, example_6_5
from rlcourse.envs.vector import TabularVectorEnv

ALPHA, GAMMA = 0.5, 0.9  # different on purpose: the step size is not the discount (PITFALLS 8)
METHODS = ("q_learning", "sarsa", "expected_sarsa")
UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3  # the grid worlds' action numbering

# Random walk of Example 6.2: true values of states A..E under the random policy
RW_TRUE = np.array([1, 2, 3, 4, 5]) / 6
RW_POLICY = [[0.5, 0.5]] * 7


# ---------------------------------------------------------------------------
# helpers


def chain() -> GridWorldEnv:
    """Three cells in a row, ``S . G`` = states 0, 1, 2. Every move pays -1 (a move into the
    edge stays put), entering G pays +10 and terminates the episode."""
    return GridWorldEnv(("S.G",), step_reward=-1.0, goal_reward=10.0, gamma=1.0)


def agent_on_chain(
    method: str, Q: np.ndarray, action: int, *, epsilon: float = 0.0, num_runs: int = 1, env=None
) -> tabular.TDControl:
    """A TDControl on the chain with its table set to ``Q [S, A]`` (every learner) and its
    next action forced to ``action``."""
    agent = tabular.TDControl(
        chain() if env is None else env,
        method,
        alpha=ALPHA,
        gamma=GAMMA,
        epsilon=epsilon,
        num_runs=num_runs,
        seed=0,
    )
    assert agent.state.tolist() == [0] * num_runs  # the chain starts in S
    agent.Q[:] = Q
    agent.action = np.full(num_runs, action)
    return agent


def chain_q() -> np.ndarray:
    """Hand-set action values of the chain; the terminal row holds a huge number that a
    correct update never bootstraps from."""
    Q = np.zeros((3, 4))
    Q[0] = [6.0, 4.0, -2.0, 0.5]  # greedy in S is UP, not the RIGHT the tests take
    Q[1] = [2.0, 5.0, -3.0, 1.0]
    Q[2] = 1000.0
    return Q


def control(method: str, env, n_episodes: int, seed: int, num_runs: int, **kw):
    """``tabular.<method>(env, n_episodes, alpha, gamma, epsilon, ...)`` with fixed settings."""
    alpha, gamma, epsilon = kw.pop("alpha", 0.2), kw.pop("gamma", 0.95), kw.pop("epsilon", 0.3)
    fn = getattr(tabular, method)
    return fn(env, n_episodes, alpha, gamma, epsilon, seed, num_runs=num_runs, **kw)


def rms_error(values: np.ndarray) -> np.ndarray:
    """RMS error over states A..E of ``values [N, E+1, 7]``, averaged over the N runs: ``[E+1]``."""
    return np.sqrt(((values[..., 1:6] - RW_TRUE) ** 2).mean(-1)).mean(0)


def table_of(env_id: str) -> dict:
    """gymnasium's own transition table ``P[s][a] = [(p, s', r, done)]``."""
    return gym.make(env_id).unwrapped.P


def greedy_path(table: dict, Q: np.ndarray, start: int, max_steps: int = 200) -> list[int]:
    """States visited following ``argmax_a Q`` through a deterministic table until the episode
    ends (the last state is where it ended) or ``max_steps`` moves."""
    path, s = [start], start
    for _ in range(max_steps):
        ((p, s, _, done),) = table[s][int(np.argmax(Q[s]))]
        assert p == 1.0
        path.append(int(s))
        if done:
            break
    return path


# ---------------------------------------------------------------------------
# single updates, by hand


def test_q_learning_update_by_hand() -> None:
    """S=0, A=right -> R=-1, S'=1: target = -1 + 0.9 * max_a Q(1, a) = -1 + 0.9 * 5 = 3.5
    (with alpha = 0.5 as discount it would be 1.5), error 3.5 - 4 = -0.5, new value
    4 + 0.5 * -0.5 = 3.75. The target is the max whatever action the agent then takes
    (epsilon = 1 here), and only Q(S, A) of the taken action changes (not the greedy UP)."""
    Q = chain_q()
    agent = agent_on_chain("q_learning", Q, RIGHT, epsilon=1.0, num_runs=8)
    u = agent.step()
    np.testing.assert_array_equal(u.state, 0)
    np.testing.assert_array_equal(u.action, RIGHT)
    np.testing.assert_array_equal(u.reward, -1.0)
    np.testing.assert_array_equal(u.next_state, 1)
    assert not u.terminated.any() and not u.truncated.any()
    np.testing.assert_allclose(u.td_target, 3.5)
    np.testing.assert_allclose(u.q_old, 4.0)
    np.testing.assert_allclose(u.td_error, -0.5)
    np.testing.assert_allclose(u.q_new, 3.75)
    expected = np.broadcast_to(Q, agent.Q.shape).copy()
    expected[:, 0, RIGHT] = 3.75
    np.testing.assert_allclose(agent.Q, expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(agent.state, 1)
    np.testing.assert_array_equal(agent.visits[:, 0], 1)
    np.testing.assert_array_equal(agent.visits[:, 1:], 0)
    # the learners then explore: their next actions are not all the greedy one, yet the
    # target above was max_a Q(S', a) for every one of them
    assert set(agent.action.tolist()) != {RIGHT}


def test_sarsa_bootstraps_from_the_action_it_then_takes() -> None:
    """SARSA's target is R + gamma Q(S', A') with A' the action the learner takes next:
    with epsilon = 1 the A' differ between learners, and so do the targets."""
    Q = chain_q()
    Q[1] = [10.0, 20.0, 30.0, 40.0]
    agent = agent_on_chain("sarsa", Q, RIGHT, epsilon=1.0, num_runs=16)
    u = agent.step()
    a_next = agent.action.copy()
    np.testing.assert_allclose(u.td_target, -1.0 + GAMMA * Q[1, a_next])
    np.testing.assert_allclose(u.q_new, 4.0 + ALPHA * (u.td_target - 4.0))
    assert len(set(a_next.tolist())) > 1  # not always the max (that would be Q-learning)
    # and A' is indeed the action of the next transition
    u2 = agent.step()
    np.testing.assert_array_equal(u2.state, 1)
    np.testing.assert_array_equal(u2.action, a_next)


def test_expected_sarsa_uses_the_epsilon_greedy_expectation() -> None:
    """Q(1, .) = [1, 5, 5, -2], epsilon 0.2: pi = 0.05 each + 0.8 split over the two tied
    greedy actions, so E_pi Q = 0.05 * 9 + 0.8 * 5 = 4.45 and the target is
    -1 + 0.9 * 4.45 = 3.005 (giving each tied action 0.8 would make it 6.605)."""
    Q = chain_q()
    Q[1] = [1.0, 5.0, 5.0, -2.0]
    agent = agent_on_chain("expected_sarsa", Q, RIGHT, epsilon=0.2, num_runs=3)
    u = agent.step()
    np.testing.assert_allclose(u.td_target, 3.005)
    np.testing.assert_allclose(u.q_new, 4.0 + ALPHA * (3.005 - 4.0))


@pytest.mark.parametrize("method", METHODS)
def test_no_bootstrap_after_termination(method: str) -> None:
    """Entering G (terminal, R = +10): the target is R alone, never R + gamma * Q(G, .)
    (Q(G, .) = 1000 here). Then a new episode starts in S and the return 9 is recorded."""
    Q = chain_q()
    agent = agent_on_chain(method, Q, RIGHT)
    agent.step()  # S -> 1
    agent.action = np.array([RIGHT])
    u = agent.step()  # 1 -> G
    assert u.terminated.tolist() == [True] and u.truncated.tolist() == [False]
    np.testing.assert_array_equal(u.next_state, 2)
    np.testing.assert_allclose(u.td_target, 10.0)
    np.testing.assert_allclose(u.q_new, 5.0 + ALPHA * (10.0 - 5.0))
    np.testing.assert_array_equal(agent.Q[0, 2], 1000.0)  # the terminal row is never updated
    np.testing.assert_array_equal(agent.state, 0)  # the next episode starts in S
    assert agent.episode.tolist() == [1]
    assert agent.returns[0, 0] == -1.0 + 10.0 and agent.lengths[0, 0] == 2


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("how", ["vector env", "env attribute"])
def test_truncation_bootstraps_from_the_final_observation(method: str, how: str) -> None:
    """A time limit of one step cuts the episode in state 1: ``truncated``, not
    ``terminated``, and the target still bootstraps from the final observation:
    -1 + 0.9 * 7 = 5.3 (Q(1, .) = [2, 7, 3, 1], greedy with epsilon 0). The learner then
    continues from S, the start of its next episode."""
    if how == "vector env":
        env = TabularVectorEnv(chain(), 1, max_episode_steps=1)
    else:
        env = chain()
        env.max_episode_steps = 1
    Q = chain_q()
    Q[1] = [2.0, 7.0, 3.0, 1.0]
    agent = agent_on_chain(method, Q, RIGHT, env=env)
    u = agent.step()
    assert u.truncated.tolist() == [True] and u.terminated.tolist() == [False]
    np.testing.assert_array_equal(u.next_state, 1)
    np.testing.assert_allclose(u.td_target, -1.0 + GAMMA * 7.0)
    np.testing.assert_allclose(agent.Q[0, 0, RIGHT], 4.0 + ALPHA * (5.3 - 4.0))
    np.testing.assert_array_equal(agent.state, 0)
    assert agent.episode.tolist() == [1]
    assert agent.returns[0, 0] == -1.0 and agent.lengths[0, 0] == 1


def test_gamma_and_alpha_changed_between_steps_are_used() -> None:
    """The docstring lets alpha and gamma change between steps: the next update uses them
    (target -1 + 0.3 * 5 = 0.5, new value 4 + 0.1 * (0.5 - 4) = 3.65)."""
    agent = agent_on_chain("q_learning", chain_q(), RIGHT)
    agent.alpha, agent.gamma = 0.1, 0.3
    u = agent.step()
    np.testing.assert_allclose(u.td_target, 0.5)
    np.testing.assert_allclose(u.q_new, 3.65)


def test_returns_are_undiscounted_sums() -> None:
    """On the chain every move pays -1 except entering G (+10): an episode of n steps
    returns -(n - 1) + 10, whatever the policy (gamma 0.9 discounts the targets, not the
    recorded returns)."""
    for method in METHODS:
        _, history = control(method, chain(), 30, 1, 3, alpha=0.5, gamma=0.9, epsilon=0.5)
        assert history.returns.shape == history.lengths.shape == (3, 30)
        assert (history.lengths >= 2).all()
        np.testing.assert_array_equal(history.returns, 11 - history.lengths)


def test_finished_learners_stop_learning() -> None:
    """After ``run()``, more steps change neither Q nor the history of finished learners."""
    agent = tabular.TDControl("FrozenLake-v1", "sarsa", n_episodes=5, num_runs=3, seed=2)
    agent.run()
    assert agent.finished
    Q, returns, lengths = agent.Q.copy(), agent.returns.copy(), agent.lengths.copy()
    for _ in range(50):
        agent.step()
    np.testing.assert_array_equal(agent.Q, Q)
    np.testing.assert_array_equal(agent.returns, returns)
    np.testing.assert_array_equal(agent.lengths, lengths)


def test_td0_one_step_versus_monte_carlo_full_return() -> None:
    """Always moving right on the random walk (3 -> 4 -> 5 -> right end, +1), gamma 0.5,
    alpha 1, V0 = 0. Monte Carlo moves each state to its discounted return after one
    episode: V(5) = 1, V(4) = 0.5, V(3) = 0.25. TD(0) bootstraps one step at a time, so the
    reward travels back one state per episode: [0, 0, 1], then [0, .5, 1], then [.25, .5, 1]."""
    right = [[0.0, 1.0]] * 7
    env = RandomWalkEnv()
    V_mc, h_mc = tabular.mc_prediction(env, right, 1, 0.5, alpha=1.0)
    np.testing.assert_allclose(V_mc.numpy()[3:6], [0.25, 0.5, 1.0])
    np.testing.assert_allclose(V_mc.numpy()[[0, 1, 2, 6]], 0.0)
    _, h_td = tabular.td0_prediction(env, right, 3, 1.0, 0.5)
    np.testing.assert_allclose(
        h_td.values[0, :, 3:6], [[0, 0, 0], [0, 0, 1], [0, 0.5, 1], [0.25, 0.5, 1]]
    )
    assert h_td.lengths.tolist() == [[3, 3, 3]] and h_mc.returns.tolist() == [[1.0]]


def test_first_visit_mc_uses_the_first_return() -> None:
    """Sample-average first-visit MC after one random-walk episode with gamma 0.9: the
    centre (state 3) is first visited at t = 0, so V(3) = 0.9^(T-1) R for an episode of
    length T ending with reward R (0 or 1). Every-visit MC averages the returns of all its
    visits, later ones less discounted, so its V(3) is at least as large."""
    env = RandomWalkEnv()
    _, first = tabular.mc_prediction(env, RW_POLICY, 1, 0.9, seed=4, num_runs=40, V0=0.5)
    _, every = tabular.mc_prediction(
        env, RW_POLICY, 1, 0.9, seed=4, num_runs=40, V0=0.5, first_visit=False
    )
    T, R = first.lengths[:, 0], first.returns[:, 0]
    np.testing.assert_allclose(first.values[:, 1, 3], R * 0.9 ** (T - 1))
    np.testing.assert_array_equal(every.lengths, first.lengths)  # the same episodes
    assert (every.values[:, 1, 3] >= first.values[:, 1, 3] - 1e-12).all()
    assert (every.values[:, 1, 3] > first.values[:, 1, 3] + 1e-9).any()  # revisits happen


def test_mc_ignores_truncated_episodes() -> None:
    """With a 2-step limit the random walk (start in 3, ends at 0 and 6) can never finish an
    episode: every episode is truncated, so Monte Carlo has no complete return and V stays
    at V0."""
    limited = TabularVectorEnv(RandomWalkEnv(), 1, max_episode_steps=2)
    V, history = tabular.mc_prediction(limited, RW_POLICY, 20, 1.0, alpha=0.1, V0=0.3)
    np.testing.assert_array_equal(V.numpy(), 0.3)
    assert history.lengths.tolist() == [[2] * 20]
    np.testing.assert_array_equal(history.returns, 0.0)


# ---------------------------------------------------------------------------
# epsilon-greedy


def chi_square(counts: np.ndarray, probs: np.ndarray) -> float:
    expected = counts.sum() * probs
    return float(((counts - expected) ** 2 / expected).sum())


# 0.999 quantiles of the chi-square distribution with 2, 3 and 4 degrees of freedom
CHI2_999 = {2: 13.82, 3: 16.27, 4: 18.47}


def test_greedy_ties_broken_uniformly() -> None:
    """epsilon = 0: only the tied greedy actions 1, 2, 4 of q = [1, 3, 3, 0, 3] are chosen,
    each about a third of the time (chi-square test over 30,000 seeded draws)."""
    rng = np.random.default_rng(0)
    n = 30_000
    q = np.tile([1.0, 3.0, 3.0, 0.0, 3.0], (n, 1))
    actions = tabular.epsilon_greedy(q, np.zeros(n), rng.random((n, 7)))
    counts = np.bincount(actions, minlength=5)
    assert counts[0] == counts[3] == 0
    assert chi_square(counts[[1, 2, 4]], np.full(3, 1 / 3)) < CHI2_999[2]


def test_greedy_without_ties_ignores_the_random_numbers() -> None:
    """A unique maximum is chosen whatever the uniforms are."""
    rng = np.random.default_rng(1)
    q = np.array([[0.0, 2.0, 1.0], [-1.0, -3.0, -0.5]])
    for _ in range(20):
        assert tabular.greedy_with_ties(q, rng.random((2, 3))).tolist() == [1, 2]
        assert tabular.epsilon_greedy(q, np.zeros(2), rng.random((2, 5))).tolist() == [1, 2]


def test_epsilon_one_is_uniform() -> None:
    """epsilon = 1: every action about equally often, greedy or not."""
    rng = np.random.default_rng(2)
    n = 40_000
    q = np.tile([0.0, 10.0, 0.0, 0.0, -5.0], (n, 1))
    counts = np.bincount(tabular.epsilon_greedy(q, np.ones(n), rng.random((n, 7))), minlength=5)
    assert chi_square(counts, np.full(5, 0.2)) < CHI2_999[4]


def test_epsilon_greedy_probs_by_hand_and_by_sampling() -> None:
    """pi(a|s) = eps/A + (1 - eps) * [a greedy] / (number of greedy actions): for
    q = [1, 3, 3, 0] and eps = 0.2: [0.05, 0.45, 0.45, 0.05]; equal values give the uniform
    policy; rows sum to 1. Sampled epsilon-greedy actions follow these probabilities."""
    q = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [0.0, 0.0, 0.0, 1.0]])
    eps = np.array([0.2, 0.7, 0.0])
    pi = tabular.epsilon_greedy_probs(q, eps)
    np.testing.assert_allclose(pi[0], [0.05, 0.45, 0.45, 0.05])
    np.testing.assert_allclose(pi[1], [0.25] * 4)
    np.testing.assert_allclose(pi[2], [0.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(pi.sum(1), 1.0)
    rng = np.random.default_rng(3)
    n = 40_000
    actions = tabular.epsilon_greedy(np.tile(q[0], (n, 1)), np.full(n, 0.2), rng.random((n, 6)))
    assert chi_square(np.bincount(actions, minlength=4), pi[0]) < CHI2_999[3]


def test_schedules() -> None:
    """Linear: start -> end over n episodes, then end. Exponential: start * decay^k, floored
    at end. Constant: the value."""
    k = np.array([0, 50, 100, 200])
    np.testing.assert_allclose(tabular.linear_schedule(1.0, 0.1, 100)(k), [1.0, 0.55, 0.1, 0.1])
    k = np.array([0, 1, 10, 100])
    np.testing.assert_allclose(
        tabular.exponential_schedule(1.0, 0.05, 0.9)(k), [1.0, 0.9, 0.9**10, 0.05]
    )
    np.testing.assert_allclose(tabular.constant_schedule(0.3)(np.arange(3)), [0.3] * 3)


@pytest.mark.parametrize(
    "make",
    [
        lambda: tabular.constant_schedule(1.5),
        lambda: tabular.constant_schedule(-0.1),
        lambda: tabular.linear_schedule(1.5, 0.1, 10),
        lambda: tabular.linear_schedule(1.0, -0.1, 10),
        lambda: tabular.exponential_schedule(1.0, 0.1, 0.0),
        lambda: tabular.exponential_schedule(1.0, 0.1, 1.5),
        lambda: tabular.q_learning(chain(), 5, 0.5, 1.0, 1.5),
        lambda: tabular.sarsa(chain(), 5, 0.5, 1.0, -0.1),
        lambda: tabular.q_learning(chain(), 5, 0.0, 1.0, 0.1),
        lambda: tabular.sarsa(chain(), 5, 1.5, 1.0, 0.1),
        lambda: tabular.expected_sarsa(chain(), 5, -0.1, 1.0, 0.1),
        lambda: tabular.q_learning(chain(), 5, True, 1.0, 0.1),
        lambda: tabular.td0_prediction(RandomWalkEnv(), RW_POLICY, 5, 0.0, 1.0),
        lambda: tabular.mc_prediction(RandomWalkEnv(), RW_POLICY, 5, 1.0, alpha=2.0),
        lambda: tabular.q_learning(chain(), 5, 0.5, 1.5, 0.1),
        lambda: tabular.q_learning(chain(), 0, 0.5, 1.0, 0.1),
        lambda: tabular.q_learning(chain(), 5, 0.5, 1.0, 0.1, num_runs=0),
        lambda: tabular.TDControl(chain(), "monte_carlo"),
        lambda: tabular.td0_prediction(RandomWalkEnv(), [[0.5, 0.6]] * 7, 5, 0.1, 1.0),
        lambda: tabular.td0_prediction(RandomWalkEnv(), [[0.5, 0.5]] * 6, 5, 0.1, 1.0),
    ],
)
def test_invalid_arguments_are_value_errors(make) -> None:
    """epsilon outside [0, 1], alpha outside (0, 1], gamma > 1, no episodes or runs, an
    unknown method, a policy that is not [S, A] probabilities: ValueError."""
    with pytest.raises(ValueError):
        make()


def test_initial_table_q0() -> None:
    """Q0 may be a number, a [S, A] table (every learner) or a [N, S, A] table (one per
    learner): learning continues from it, and the table passed in is not changed."""
    Q0 = chain_q()
    agent = tabular.TDControl(chain(), "q_learning", alpha=ALPHA, gamma=GAMMA, num_runs=2, Q0=Q0)
    np.testing.assert_array_equal(agent.Q, np.stack([Q0, Q0]))
    agent.step()
    assert not np.array_equal(agent.Q[:, 0], np.stack([Q0[0], Q0[0]]))  # learning went on
    np.testing.assert_array_equal(Q0, chain_q())  # the caller's table is untouched
    per_run = np.stack([Q0, -Q0])
    agent = tabular.TDControl(chain(), "sarsa", num_runs=2, Q0=torch.as_tensor(per_run))
    np.testing.assert_array_equal(agent.Q, per_run)
    # continuing a run from its tables: Q starts where the earlier run ended
    Q, _ = tabular.sarsa(chain(), 5, 0.5, 1.0, 0.1, seed=0, num_runs=3)
    more = tabular.TDControl(chain(), "sarsa", n_episodes=1, num_runs=3, seed=9, Q0=Q)
    np.testing.assert_array_equal(more.Q, Q.numpy())
    for bad in (np.zeros((3, 3)), np.zeros((3, 3, 4)), np.full((3, 4), np.nan)):
        with pytest.raises(ValueError, match="Q0 must"):
            tabular.TDControl(chain(), "q_learning", num_runs=2, Q0=bad)


def test_alpha_one_is_allowed() -> None:
    """alpha = 1 is a valid step size (the upper end of (0, 1])."""
    Q, _ = tabular.q_learning(chain(), 3, 1.0, 1.0, 0.1)
    assert Q.shape == (3, 4)


# ---------------------------------------------------------------------------
# determinism and independence of learners


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_numbers(method: str) -> None:
    """Same seed: identical Q and history; another seed: different."""

    def go(seed: int):
        return control(method, "FrozenLake-v1", 40, seed, 3)

    (Q1, h1), (Q2, h2), (Q3, h3) = go(5), go(5), go(6)
    assert torch.equal(Q1, Q2)
    np.testing.assert_array_equal(h1.returns, h2.returns)
    np.testing.assert_array_equal(h1.lengths, h2.lengths)
    assert not torch.equal(Q1, Q3)
    assert not np.array_equal(h1.lengths, h3.lengths)


@pytest.mark.parametrize("method", METHODS)
def test_learner_alone_equals_learner_in_a_batch(method: str) -> None:
    """The module's promise: learner i of a batch seeded s (seed s + i) gives the same
    numbers as a single run seeded s + i."""
    s = 3
    Qb, hb = control(method, "FrozenLake-v1", 30, s, 4)
    for i in range(4):
        Qi, hi = control(method, "FrozenLake-v1", 30, s + i, 1)
        assert Qi.shape == (16, 4)
        torch.testing.assert_close(Qi, Qb[i], rtol=0, atol=0, msg=f"learner {i}")
        run = hb.run(i)
        np.testing.assert_array_equal(run.returns, hi.returns)
        np.testing.assert_array_equal(run.lengths, hi.lengths)


@pytest.mark.parametrize("predict", ["td0", "mc"])
def test_prediction_learner_alone_equals_batch(predict: str) -> None:
    """The same promise for TD(0) and Monte Carlo prediction (values after every episode)."""

    def go(seed: int, n: int):
        if predict == "td0":
            return tabular.td0_prediction(
                RandomWalkEnv(), RW_POLICY, 15, 0.1, 1.0, seed, num_runs=n
            )
        return tabular.mc_prediction(RandomWalkEnv(), RW_POLICY, 15, 1.0, seed, num_runs=n)

    Vb, hb = go(7, 3)
    assert Vb.shape == (3, 7) and hb.values.shape == (3, 16, 7)
    for i in range(3):
        Vi, hi = go(7 + i, 1)
        assert Vi.shape == (7,)
        torch.testing.assert_close(Vi, Vb[i], rtol=0, atol=0)
        np.testing.assert_array_equal(hi.values, hb.run(i).values)


# ---------------------------------------------------------------------------
# Example 6.2: the random walk, TD(0) against constant-alpha Monte Carlo


def test_random_walk_initial_error_and_first_td_update() -> None:
    """With V0 = 0.5 the RMS error before learning is sqrt(1/18) = 0.236 (the curves of
    Figure 6.2 start there). The book: after the first episode 'only V(A) changed', by
    alpha * (0 - 0.5) = -0.05 with alpha 0.1, because only the last step reaches a
    terminal value different from 0.5; ending on the right moves V(E) by +0.05 instead."""
    _, h = tabular.td0_prediction(RandomWalkEnv(), RW_POLICY, 1, 0.1, 1.0, num_runs=100, V0=0.5)
    np.testing.assert_allclose(rms_error(h.values)[0], np.sqrt(1 / 18))
    change = h.values[:, 1] - 0.5
    changed = np.abs(change) > 1e-12
    assert (changed.sum(1) == 1).all()
    left = changed[:, 1]
    np.testing.assert_allclose(change[left, 1], -0.05)
    np.testing.assert_allclose(change[~left, 5], 0.05)
    assert (changed[:, 1] | changed[:, 5]).all()
    np.testing.assert_array_equal(h.returns[:, 0], ~left)  # +1 exactly when it ended right
    assert 20 < left.sum() < 80


def test_random_walk_episode_lengths_and_returns() -> None:
    """From the centre (3) an episode ends at 0 or 6, so its length is odd and at least 3;
    its return is 0 or 1."""
    _, h = tabular.td0_prediction(RandomWalkEnv(), RW_POLICY, 50, 0.1, 1.0, num_runs=20)
    assert (h.lengths >= 3).all() and (h.lengths % 2 == 1).all()
    assert set(np.unique(h.returns).tolist()) == {0.0, 1.0}


def test_random_walk_td_beats_mc() -> None:
    """Example 6.2 (right graph), 100 runs x 100 episodes, V0 = 0.5, with the book's
    constant-alpha MC, which is every-visit (eq. 6.1): from episode 20 on, every TD(0) curve
    (alpha .05, .1, .15) lies below every MC curve (alpha .01, .02, .03, .04), and the best
    TD(0) step size is ahead of the best MC one at every episode. With first-visit MC the
    first claim fails: alpha .04 ends below TD(0) with alpha .15 (the comparison depends on
    the variant and the step sizes; chapter 3 says so)."""
    env = RandomWalkEnv()

    def td(alpha: float) -> np.ndarray:
        _, h = tabular.td0_prediction(env, RW_POLICY, 100, alpha, 1.0, num_runs=100, V0=0.5)
        return rms_error(h.values)

    def mc(alpha: float, first_visit: bool = False) -> np.ndarray:
        _, h = tabular.mc_prediction(
            env, RW_POLICY, 100, 1.0, num_runs=100, V0=0.5, alpha=alpha, first_visit=first_visit
        )
        return rms_error(h.values)

    td_curves = np.array([td(a) for a in (0.05, 0.1, 0.15)])
    mc_curves = np.array([mc(a) for a in (0.01, 0.02, 0.03, 0.04)])
    assert (td_curves.max(0) < mc_curves.min(0))[20:].all()
    assert (td_curves.min(0) < mc_curves.min(0))[1:].all()
    assert td_curves[0, 100] < 0.06 and mc_curves[0, 100] > 0.08
    for curve in (*td_curves, *mc_curves):
        assert curve[100] < 0.7 * curve[0]  # all learn
    assert mc(0.04, first_visit=True)[100] < td_curves[2, 100]


def test_random_walk_estimates_converge() -> None:
    """After 1000 episodes every method is close to the true values 1/6 ... 5/6:
    TD(0) alpha 0.05 and MC alpha 0.01 within RMS 0.05, sample-average MC (first- and
    every-visit) within 0.04. The constant step sizes have reached their floor (no better at
    1000 than at 500 episodes); the sample averages are still improving."""
    env = RandomWalkEnv()
    _, h = tabular.td0_prediction(env, RW_POLICY, 1000, 0.05, 1.0, num_runs=20, V0=0.5)
    curve = rms_error(h.values)
    assert curve[-1] < 0.05 and curve[1000] > 0.9 * curve[500]
    _, h = tabular.mc_prediction(env, RW_POLICY, 1000, 1.0, num_runs=20, V0=0.5, alpha=0.01)
    assert rms_error(h.values)[-1] < 0.05
    for first_visit in (True, False):
        V, h = tabular.mc_prediction(
            env, RW_POLICY, 1000, 1.0, num_runs=20, V0=0.5, first_visit=first_visit
        )
        assert (
            rms_error(h.values)[-1] < 0.04 and rms_error(h.values)[1000] < rms_error(h.values)[250]
        )
        np.testing.assert_array_equal(V[:, [0, 6]].numpy(), 0.5)  # terminal states never updated


def test_sample_average_mc_first_episode_is_the_return() -> None:
    """Sample averages (alpha = None) after one undiscounted episode: every visited state's
    value is that episode's return (0 or 1), unvisited ones keep V0; the centre is visited."""
    _, h = tabular.mc_prediction(RandomWalkEnv(), RW_POLICY, 1, 1.0, num_runs=30, V0=0.5)
    V1, G = h.values[:, 1, 1:6], h.returns[:, 0]
    visited = V1 != 0.5
    assert visited[:, 2].all()
    np.testing.assert_array_equal(np.where(visited, V1, G[:, None]), np.repeat(G[:, None], 5, 1))


def test_prediction_counts() -> None:
    """``counts``: first-visit MC counts the episodes that visit a state, every-visit MC and
    TD(0) every visit (TD(0) updates each state it leaves); terminal states count nothing."""
    env = RandomWalkEnv()
    _, first = tabular.mc_prediction(env, RW_POLICY, 1, 1.0, seed=2, num_runs=30)
    _, every = tabular.mc_prediction(env, RW_POLICY, 1, 1.0, seed=2, num_runs=30, first_visit=False)
    _, td = tabular.td0_prediction(env, RW_POLICY, 1, 0.1, 1.0, seed=2, num_runs=30)
    np.testing.assert_array_equal(every.counts, td.counts)
    np.testing.assert_array_equal(first.counts, np.minimum(every.counts, 1))
    np.testing.assert_array_equal(every.counts.sum(1), every.lengths[:, 0])
    assert (every.counts[:, [0, 6]] == 0).all() and (every.counts > 1).any()
    assert first.counts.dtype == np.int64 and first.run(3).counts.shape == (1, 7)


# ---------------------------------------------------------------------------
# n-step TD (Sutton & Barto, section 7.1; Figure 7.2)


def test_n_step_td_by_hand() -> None:
    """Always right from 3 (3 -> 4 -> 5 -> right end, +1), gamma 0.5, alpha 1, n = 2:
    episode 1: V(3) = 0 + 0.5 * 0 + 0.25 V(5) = 0, V(4) = 0 + 0.5 * 1 = 0.5 (the window reaches
    the end: no bootstrap), V(5) = 1; episode 2: V(3) = 0.25 V(5) = 0.25."""
    right = [[0.0, 1.0]] * 7
    V, h = tabular.n_step_td_prediction(RandomWalkEnv(), right, 2, 2, 1.0, 0.5)
    np.testing.assert_allclose(h.values[0, :, 3:6], [[0, 0, 0], [0, 0.5, 1], [0.25, 0.5, 1]])
    np.testing.assert_allclose(V.numpy(), h.values[0, -1])
    assert h.counts[0].tolist() == [0, 0, 0, 2, 2, 2, 0]


def test_n_step_td_bootstraps_from_the_final_observation_after_truncation() -> None:
    """Always right with a 2-step limit: every episode is 3 -> 4 -> 5, cut. With n = 3,
    gamma 0.5, alpha 1, V0 = 0.2 and no rewards, both returns run past the cut and bootstrap
    from the final observation 5: V(3) = 0.25 V(5) = 0.05, V(4) = 0.5 V(5) = 0.1."""
    right = [[0.0, 1.0]] * 7
    limited = TabularVectorEnv(RandomWalkEnv(), 1, max_episode_steps=2)
    _, h = tabular.n_step_td_prediction(limited, right, 1, 3, 1.0, 0.5, V0=0.2)
    np.testing.assert_allclose(h.values[0, 1, 3:6], [0.05, 0.1, 0.2])
    assert h.lengths.tolist() == [[2]] and h.returns.tolist() == [[0.0]]


@pytest.mark.parametrize("gamma", [1.0, 0.9])
@pytest.mark.parametrize("limit", [None, 4])
def test_n_step_one_is_td0(gamma: float, limit: int | None) -> None:
    """n = 1 gives exactly the numbers of td0_prediction, with and without truncation."""

    def env():
        return (
            RandomWalkEnv()
            if limit is None
            else TabularVectorEnv(RandomWalkEnv(), 5, max_episode_steps=limit)
        )

    V1, h1 = tabular.td0_prediction(env(), RW_POLICY, 30, 0.1, gamma, 3, num_runs=5, V0=0.5)
    V2, h2 = tabular.n_step_td_prediction(
        env(), RW_POLICY, 30, 1, 0.1, gamma, 3, num_runs=5, V0=0.5
    )
    torch.testing.assert_close(V1, V2, rtol=0, atol=0)
    np.testing.assert_array_equal(h1.values, h2.values)
    np.testing.assert_array_equal(h1.counts, h2.counts)
    np.testing.assert_array_equal(h1.lengths, h2.lengths)


@pytest.mark.parametrize("alpha", [0.1, None])
def test_n_step_longer_than_every_episode_is_every_visit_mc(alpha: float | None) -> None:
    """With n beyond every episode's length, n-step TD is every-visit Monte Carlo: constant
    alpha, or sample averages (alpha None): the numbers of mc_prediction(first_visit=False)."""
    env = RandomWalkEnv()
    _, h_mc = tabular.mc_prediction(
        env, RW_POLICY, 40, 0.9, 3, num_runs=5, V0=0.5, alpha=alpha, first_visit=False
    )
    _, h_n = tabular.n_step_td_prediction(
        env, RW_POLICY, 40, 300, alpha, 0.9, 3, num_runs=5, V0=0.5
    )
    assert h_mc.lengths.max() < 300
    np.testing.assert_allclose(h_n.values, h_mc.values, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(h_n.counts, h_mc.counts)


def test_n_step_step_sizes_share_the_episodes() -> None:
    """A list of step sizes trains one table per step size on the same episodes: the same
    numbers as one run per step size; learner i alone (seed s + i) equals learner i of a batch."""
    alphas = [0.3, None, 0.05]
    V, h = tabular.n_step_td_prediction(
        RandomWalkEnv(), RW_POLICY, 12, 3, alphas, 1.0, 4, num_runs=3, V0=0.5
    )
    assert V.shape == (3, 3, 7) and h.values.shape == (3, 13, 3, 7)
    for k, alpha in enumerate(alphas):
        Vk, hk = tabular.n_step_td_prediction(
            RandomWalkEnv(), RW_POLICY, 12, 3, alpha, 1.0, 4, num_runs=3, V0=0.5
        )
        torch.testing.assert_close(Vk, V[:, k], rtol=0, atol=0)
        np.testing.assert_array_equal(hk.values, h.values[:, :, k])
    for i in range(3):
        Vi, hi = tabular.n_step_td_prediction(
            RandomWalkEnv(), RW_POLICY, 12, 3, alphas, 1.0, 4 + i, V0=0.5
        )
        torch.testing.assert_close(Vi, V[i], rtol=0, atol=0)
        np.testing.assert_array_equal(hi.values, h.run(i).values)
        np.testing.assert_array_equal(hi.counts, h.run(i).counts)


@pytest.mark.parametrize(
    "kwargs",
    [{"n": 0}, {"n": True}, {"n": 1.5}, {"alpha": []}, {"alpha": [0.1, 1.5]}, {"alpha": 0.0}],
    ids=["n-zero", "n-bool", "n-float", "no-alpha", "alpha-above-one", "alpha-zero"],
)
def test_n_step_invalid_arguments(kwargs: dict) -> None:
    args = {"n": 2, "alpha": 0.1} | kwargs
    with pytest.raises(ValueError, match=r"n \(the number|alpha"):
        tabular.n_step_td_prediction(RandomWalkEnv(), RW_POLICY, 5, args["n"], args["alpha"], 1.0)


def test_figure_7_2_intermediate_n_learns_fastest() -> None:
    """19-state walk (-1 left, +1 right, V0 = 0), RMS error over the first 10 episodes, 100
    runs: the best step size of n = 4 beats those of n = 1 (TD(0)) and n = 512 (MC in all but
    name), as in Figure 7.2."""
    walk = RandomWalkEnv(19)
    walk.reward[1, 0, 0] = -1.0
    v = np.arange(21) / 10 - 1
    alphas = [0.05, 0.1, 0.2, 0.4, 0.6, 0.8]
    best = {}
    for n in (1, 4, 512):
        _, h = tabular.n_step_td_prediction(
            walk, [[0.5, 0.5]] * 21, 10, n, alphas, 1.0, num_runs=100
        )
        rms = np.sqrt(((h.values[:, 1:, :, 1:20] - v[1:20]) ** 2).mean(-1)).mean((0, 1))
        best[n] = rms.min()
    assert best[4] < best[1] - 0.05 and best[4] < best[512] - 0.15
    assert 0.2 < best[4] < 0.3


# ---------------------------------------------------------------------------
# Example 6.6: cliff walking; Example 6.5: windy grid world

CLIFF_START, CLIFF_GOAL = 36, 47


def test_cliff_walking_sarsa_takes_the_safe_path() -> None:
    """Example 6.6: SARSA (alpha 0.5, epsilon 0.1), 50 runs x 500 episodes, online return
    about -25 late in training. Its greedy path keeps away from the cliff edge (row 2, cells
    25-34) in most runs, and the most common one is the book's safe path along the top row
    (3 up, 11 right, 3 down: 17 steps). Constant alpha = 0.5 leaves Q noisy, so a few greedy
    paths loop (e.g. bump into the top edge) instead of reaching the goal."""
    Q, h = tabular.sarsa("CliffWalking-v1", 500, 0.5, 1.0, 0.1, seed=0, num_runs=50)
    assert Q.shape == (50, 48, 4)
    assert -32 <= h.returns[:, 400:].mean() <= -18
    table = table_of("CliffWalking-v1")
    paths = [greedy_path(table, Q[i].numpy(), CLIFF_START) for i in range(50)]
    safe = sum(not set(path) & set(range(25, 35)) for path in paths)
    reached = [len(path) - 1 for path in paths if path[-1] == CLIFF_GOAL]
    assert safe >= 35
    assert len(reached) >= 35
    assert max(set(reached), key=reached.count) == 17


def test_cliff_walking_q_learning_takes_the_optimal_path() -> None:
    """Example 6.6: Q-learning (alpha 0.5, epsilon 0.1), online return about -50 (it walks
    along the edge and epsilon-greedy steps fall off); its greedy path is the optimal one,
    13 steps (up, 11 x right, down), in every run."""
    Q, h = tabular.q_learning("CliffWalking-v1", 500, 0.5, 1.0, 0.1, seed=0, num_runs=50)
    assert -60 <= h.returns[:, 400:].mean() <= -40
    table = table_of("CliffWalking-v1")
    optimal = [36, 24, *range(25, 36), 47]
    for i in range(50):
        assert greedy_path(table, Q[i].numpy(), CLIFF_START) == optimal, f"run {i}"


@pytest.mark.parametrize("env", ["rlcourse/WindyGridWorld-v0", "object"])
def test_windy_grid_world_sarsa(env: str) -> None:
    """Example 6.5: SARSA (alpha 0.5, epsilon 0.1) needs about 8000 time steps for 170
    episodes (10 runs averaged, accepted 6000-10000). No episode is shorter than the
    optimal 15 steps, and in most runs the optimal 15 is reached now and then; late episodes
    are still longer than the 17 steps of a converged epsilon-greedy learner (the book's
    "about 17"), since alpha = 0.5 keeps the estimates noisy (chapter 4)."""
    made = example_6_5() if env == "object" else env
    _, h = tabular.sarsa(made, 170, 0.5, 1.0, 0.1, seed=0, num_runs=10)
    assert 6000 <= h.lengths.sum(1).mean() <= 10_000
    assert h.lengths.min() == 15
    best = h.lengths[:, 100:].min(1)
    assert (best <= 17).all() and (best == 15).sum() >= 7
    assert 15 < h.lengths[:, -20:].mean() < 30
    assert h.lengths[:, :10].mean() > 100  # the first episodes wander
    np.testing.assert_array_equal(h.returns, -h.lengths)  # -1 per step, goal included


def test_windy_grid_world_greedy_policy_settles_with_a_smaller_step_size() -> None:
    """Chapter 4's account of Example 6.5: with alpha = 0.5 the greedy policy after 170
    episodes walks a shortest path in only some runs (the estimates follow their latest noisy
    targets); continuing with alpha = 0.1 makes it a shortest path in most runs, and the
    episodes get shorter, towards the ~17 steps of epsilon-greedy around an optimal policy."""
    env = example_6_5()
    next_state, start = env.P.argmax(-1), int(env.initial.argmax())  # deterministic moves

    def shortest_paths(Q: np.ndarray) -> int:
        count = 0
        for q in Q:
            s, steps = start, 0
            while not env.terminal[s] and steps < 100:
                s, steps = int(next_state[s, q[s].argmax()]), steps + 1
            count += bool(env.terminal[s]) and steps == 15
        return count

    Q, h = tabular.sarsa("rlcourse/WindyGridWorld-v0", 170, 0.5, 1.0, 0.1, seed=0, num_runs=20)
    assert shortest_paths(Q.numpy()) <= 10
    agent = tabular.TDControl(
        "rlcourse/WindyGridWorld-v0",
        "sarsa",
        n_episodes=170,
        alpha=0.1,
        gamma=1.0,
        epsilon=0.1,
        num_runs=20,
        seed=100,
        Q0=Q,
    )
    Q2, h2 = agent.run()
    assert shortest_paths(Q2.numpy()) >= 14
    assert h2.lengths[:, -20:].mean() < h.lengths[:, -20:].mean() - 2


def test_greedy_learning_with_pessimistic_values_acts_at_random_until_its_first_success() -> None:
    """Chapter 4's account of epsilon = 0 on FrozenLake: with Q0 = 0 (a hole pays 0) every
    value stays exactly 0 until the learner's first success, so the greedy agent acts at
    random (all actions tie); no value ever leaves [0, 1]. The learned greedy behaviour is
    poor; with optimistic Q0 = 1 the same greedy learner does far better."""
    agent = tabular.TDControl(
        "FrozenLake-v1",
        "q_learning",
        n_episodes=300,
        alpha=0.2,
        gamma=0.99,
        epsilon=0.0,
        num_runs=10,
        seed=0,
    )
    succeeded = np.zeros(10, dtype=bool)
    while not agent.finished:
        assert (agent.Q[~succeeded] == 0).all()
        succeeded |= agent.step().reward > 0
    assert succeeded.all()
    assert agent.Q.min() == 0.0 and agent.Q.max() <= 1.0
    _, h_opt = tabular.q_learning("FrozenLake-v1", 300, 0.2, 0.99, 0.0, seed=0, num_runs=10, Q0=1.0)
    h = agent.history()
    assert h_opt.returns[:, -100:].mean() > 2 * h.returns[:, -100:].mean()
