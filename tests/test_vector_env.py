"""Tests of rlcourse.envs.vector (TabularVectorEnv, tabular_vector_env, seeds_for,
sample_rows, Transitions and its episode log, with ReplayBuffer.add storing what it gives)
and of the per-seed random streams (rlcourse.utils.RandomStreams) they use."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

import rlcourse  # noqa: F401 -- registers the rlcourse/ env ids
from rlcourse import tabular
from rlcourse.buffers import ReplayBuffer
from rlcourse.envs import GridWorldEnv, RandomWalkEnv, TorchCartPole, TorchTabularEnv
from rlcourse.envs.vector import (
    TabularVectorEnv,
    Transitions,
    make_vector_env,
    sample_rows,
    seeds_for,
    tabular_vector_env,
)
from rlcourse.utils import RandomStreams

LEFT, DOWN, RIGHT, UP = 0, 1, 2, 3  # FrozenLake's action numbering


def gym_table(env_id: str, **kwargs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``P [S, A, S]``, ``reward [S, A, S]`` and ``done [S, A, S]`` read straight from
    gymnasium's ``env.unwrapped.P`` dict (independently of rlcourse's conversion)."""
    u = gym.make(env_id, **kwargs).unwrapped
    S, A = u.observation_space.n, u.action_space.n
    P, R, D = np.zeros((S, A, S)), np.zeros((S, A, S)), np.zeros((S, A, S), dtype=bool)
    for s in range(S):
        for a in range(A):
            for p, s2, r, done in u.P[s][a]:
                P[s, a, s2] += p
                R[s, a, s2] = r
                D[s, a, s2] = done
    return P, R, D


def same_step_vec(env_id: str, n: int, **kwargs) -> gym.vector.VectorEnv:
    return gym.make_vec(
        env_id,
        n,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
        **kwargs,
    )


# ---------------------------------------------------------------------------
# dynamics


def test_transition_frequencies_match_gymnasium_table() -> None:
    """Slippery FrozenLake, 2000 copies x 100 steps of random actions: the frequency of
    each (s, a) -> s' matches gymnasium's own table within 5 standard errors, and every
    reward and ``terminated`` flag is the table's."""
    P, R, D = gym_table("FrozenLake-v1")
    n = 2000
    vec = TabularVectorEnv("FrozenLake-v1", n)
    rng = np.random.default_rng(0)
    obs, _ = vec.reset(seed=0)
    counts = np.zeros_like(P)
    for _ in range(100):
        a = rng.integers(0, 4, n)
        nxt, reward, terminated, truncated, info = vec.step(a)
        s2 = np.where(info.get("_final_obs", np.zeros(n, bool)), info.get("final_obs", 0), nxt)
        np.add.at(counts, (obs, a, s2), 1)
        np.testing.assert_array_equal(reward, R[obs, a, s2])
        np.testing.assert_array_equal(terminated, D[obs, a, s2])
        assert not (terminated & truncated).any()
        obs = nxt
    totals = counts.sum(-1, keepdims=True)
    seen = totals[..., 0] > 200
    assert seen.sum() >= 30  # most (s, a) of the 11 non-terminal states
    freq = counts / np.maximum(totals, 1)
    se = np.sqrt(P * (1 - P) / np.maximum(totals, 1))
    assert (np.abs(freq - P)[seen] <= 5 * se[seen] + 1e-12).all()
    assert (counts[P == 0] == 0).all()  # nothing the table forbids


def test_start_states_follow_the_initial_distribution() -> None:
    """Taxi starts uniformly over its 300 start states (gymnasium's initial_state_distrib):
    30,000 copies reset give counts of 100 each, within 5 standard errors."""
    initial = gym.make("Taxi-v4").unwrapped.initial_state_distrib
    n = 30_000
    obs, _ = TabularVectorEnv("Taxi-v4", n).reset(seed=1)
    counts = np.bincount(obs, minlength=len(initial))
    assert (counts[initial == 0] == 0).all()
    expected = n * initial[initial > 0]
    assert (np.abs(counts[initial > 0] - expected) <= 5 * np.sqrt(expected)).all()


def test_cliff_walking_steps_equal_the_table() -> None:
    """CliffWalking is deterministic: every step's next state, reward (-1, or -100 into
    the cliff, back to the start) and termination equal gymnasium's table."""
    P, R, D = gym_table("CliffWalking-v1")
    n = 50
    vec = TabularVectorEnv("CliffWalking-v1", n)
    obs, _ = vec.reset(seed=3)
    np.testing.assert_array_equal(obs, 36)
    rng = np.random.default_rng(3)
    cliff_falls = 0
    for _ in range(300):
        a = rng.integers(0, 4, n)
        nxt, reward, terminated, _, info = vec.step(a)
        s2 = np.where(info.get("_final_obs", np.zeros(n, bool)), info.get("final_obs", 0), nxt)
        np.testing.assert_array_equal(s2, P[obs, a].argmax(-1))
        np.testing.assert_array_equal(reward, R[obs, a, s2])
        np.testing.assert_array_equal(terminated, D[obs, a, s2])
        cliff_falls += int((reward == -100).sum())
        obs = nxt
    assert cliff_falls > 0


def test_same_step_autoreset() -> None:
    """SAME_STEP: when a copy's episode ends, the returned observation is the next
    episode's start (the random walk's centre, 3) and ``info['final_obs']`` holds the
    terminal state (0 or 6), flagged by ``info['_final_obs']``."""
    n = 64
    vec = TabularVectorEnv(RandomWalkEnv(), n)
    obs, _ = vec.reset(seed=0)
    np.testing.assert_array_equal(obs, 3)
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(40):
        obs, reward, terminated, truncated, info = vec.step(rng.integers(0, 2, n))
        assert not truncated.any()  # RandomWalkEnv() made directly has no time limit
        if not terminated.any():
            assert "final_obs" not in info
            assert ((obs >= 1) & (obs <= 5)).all()
            continue
        np.testing.assert_array_equal(info["_final_obs"], terminated)
        final = info["final_obs"][terminated]
        assert set(final.tolist()) <= {0, 6}
        np.testing.assert_array_equal(reward[terminated], final == 6)
        np.testing.assert_array_equal(obs[terminated], 3)
        ends += int(terminated.sum())
    assert ends > n


def test_truncation_at_max_episode_steps() -> None:
    """A 2-step limit on the random walk (3 steps at least to an end): every copy is
    truncated (not terminated) at steps 2, 4, 6, ..., with final observation 1, 3 or 5
    and the returned observation the start 3; never at odd steps."""
    n = 16
    vec = TabularVectorEnv(RandomWalkEnv(), n, max_episode_steps=2)
    vec.reset(seed=0)
    rng = np.random.default_rng(1)
    for t in range(1, 9):
        obs, _, terminated, truncated, info = vec.step(rng.integers(0, 2, n))
        assert not terminated.any()
        if t % 2:
            assert not truncated.any() and "final_obs" not in info
        else:
            assert truncated.all()
            assert set(info["final_obs"].tolist()) <= {1, 3, 5}
            np.testing.assert_array_equal(obs, 3)


def test_termination_wins_over_truncation() -> None:
    """With a 3-step limit, copies that reach an end on step 3 are terminated, not
    truncated; the others are truncated. The flags never both hold."""
    n = 200
    vec = TabularVectorEnv(RandomWalkEnv(), n, max_episode_steps=3)
    vec.reset(seed=0)
    rng = np.random.default_rng(2)
    for _ in range(2):
        vec.step(rng.integers(0, 2, n))
    _, _, terminated, truncated, info = vec.step(rng.integers(0, 2, n))
    assert terminated.any() and truncated.any()
    np.testing.assert_array_equal(terminated ^ truncated, np.ones(n, bool))
    assert set(info["final_obs"][terminated].tolist()) <= {0, 6}
    assert set(info["final_obs"][truncated].tolist()) <= {2, 4}


def test_registered_time_limit_is_used() -> None:
    """An env id keeps its registered time limit (FrozenLake: 100 steps)."""
    assert TabularVectorEnv("FrozenLake-v1", 2).max_episode_steps == 100
    assert TabularVectorEnv("rlcourse/RandomWalk-v0", 2).max_episode_steps == 1000
    assert TabularVectorEnv(RandomWalkEnv(), 2).max_episode_steps is None


# ---------------------------------------------------------------------------
# seeding


def run_copies(vec: TabularVectorEnv, seed, actions: np.ndarray) -> list:
    """Everything the vector env returns for a sequence of actions ``[T, n]``."""
    out = [vec.reset(seed=seed)[0]]
    for a in actions:
        obs, reward, terminated, truncated, info = vec.step(a)
        final = np.where(
            info.get("_final_obs", np.zeros(len(a), bool)), info.get("final_obs", -1), -1
        )
        out.append(np.stack([obs, reward, terminated, truncated, final]))
    return out


def test_copy_i_equals_a_single_env_seeded_seed_plus_i() -> None:
    """Copy i of a 3-copy env seeded s gives, for the same actions, the same trajectory as
    a 1-copy env seeded s + i (slippery FrozenLake, 300 steps, resets included)."""
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 4, (300, 3))
    batch = run_copies(TabularVectorEnv("FrozenLake-v1", 3), 10, actions)
    for i in range(3):
        single = run_copies(TabularVectorEnv("FrozenLake-v1", 1), 10 + i, actions[:, i : i + 1])
        for b, s in zip(batch, single, strict=True):
            np.testing.assert_array_equal(b[..., i], s[..., 0])
    # and the copies differ from each other
    assert not np.array_equal(np.stack(batch[1:])[:, 0, 0], np.stack(batch[1:])[:, 0, 1])


def test_reset_with_a_list_of_seeds_and_reseeding() -> None:
    """reset(seed=[a, b]) seeds copy 0 with a and copy 1 with b; the same seed repeats the
    run, reset() without a seed continues the streams."""
    rng = np.random.default_rng(1)
    actions = rng.integers(0, 4, (100, 2))
    vec = TabularVectorEnv("FrozenLake-v1", 2)
    pair = run_copies(vec, [7, 3], actions)
    for i, seed in enumerate((7, 3)):
        single = run_copies(TabularVectorEnv("FrozenLake-v1", 1), seed, actions[:, i : i + 1])
        for b, s in zip(pair, single, strict=True):
            np.testing.assert_array_equal(b[..., i], s[..., 0])
    again = run_copies(vec, [7, 3], actions)
    for a, b in zip(pair, again, strict=True):
        np.testing.assert_array_equal(a, b)
    continued = run_copies(vec, None, actions)
    assert not all(np.array_equal(a, b) for a, b in zip(pair, continued, strict=True))


def test_seeds_for() -> None:
    """seed + i for an int, the list as given, a clear error for a list of the wrong
    length, and n distinct seeds for None."""
    assert seeds_for(5, 3) == [5, 6, 7]
    assert seeds_for(np.int64(2), 2) == [2, 3]
    assert seeds_for([9, 1, 4], 3) == [9, 1, 4]
    with pytest.raises(ValueError, match="expected 3 seeds, one per copy, got 2"):
        seeds_for([1, 2], 3)
    fresh = seeds_for(None, 4)
    assert len(set(fresh)) == 4 and all(isinstance(s, int) for s in fresh)


def test_sample_rows_by_hand() -> None:
    """cdf [0.2, 0.5, 1.0]: u in [0, 0.2) -> 0, [0.2, 0.5) -> 1, [0.5, 1) -> 2."""
    cdf = np.tile([0.2, 0.5, 1.0], (7, 1))
    u = np.array([0.0, 0.1999, 0.2, 0.4999, 0.5, 0.9, 0.999999])
    assert sample_rows(cdf, u).tolist() == [0, 0, 1, 1, 2, 2, 2]
    # the last bin catches a cdf that rounds below 1
    assert sample_rows(np.array([[0.3, 0.9999999]]), np.array([0.99999995])).tolist() == [1]


# ---------------------------------------------------------------------------
# errors


def test_step_before_reset_raises() -> None:
    vec = TabularVectorEnv("FrozenLake-v1", 2)
    with pytest.raises(RuntimeError, match="reset"):
        vec.step(np.array([0, 0]))


@pytest.mark.parametrize(
    ("actions", "message"),
    [
        (np.array([0, 1]), r"actions must be 3 integers \(one per copy\), got shape \(2,\)"),
        (np.array([[0, 1, 2]]), r"got shape \(1, 3\)"),
        (np.array([0.0, 1.0, 2.0]), "dtype float64"),
        (np.array([0, 1, 4]), r"actions must lie in \[0, 4\)"),
        (np.array([0, -1, 2]), r"actions must lie in \[0, 4\)"),
        (0, r"got shape \(\)"),
    ],
)
def test_bad_actions_raise(actions, message: str) -> None:
    """Actions of the wrong shape, dtype or range are ValueErrors that say which."""
    vec = TabularVectorEnv("FrozenLake-v1", 3)
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        vec.step(actions)


@pytest.mark.parametrize("num_envs", [0, -1, 2.0])
def test_bad_num_envs(num_envs) -> None:
    with pytest.raises(ValueError, match="num_envs must be a positive integer"):
        TabularVectorEnv("FrozenLake-v1", num_envs)


def test_continuous_observation_space_rejected() -> None:
    """CartPole has no table and a Box observation space: a ValueError that names the
    Discrete requirement (through the id and through an env object)."""
    with pytest.raises(ValueError, match="Discrete observation space"):
        tabular_vector_env("CartPole-v1", 2)
    with pytest.raises(ValueError, match="no transition table"):
        tabular_vector_env(gym.make("CartPole-v1"), 2)
    with pytest.raises(ValueError, match="Discrete"):
        tabular.q_learning("CartPole-v1", 5, 0.5, 0.99, 0.1)


def test_unknown_env_id() -> None:
    with pytest.raises(ValueError, match="unknown environment id 'NoSuchEnv-v0'"):
        TabularVectorEnv("NoSuchEnv-v0", 2)


def test_next_step_vector_env_rejected() -> None:
    """A gymnasium vector env in the default NEXT_STEP autoreset mode would hand the
    learner a dummy transition after every episode end: rejected, naming SAME_STEP."""
    vec = gym.make_vec("FrozenLake-v1", 2, vectorization_mode="sync")
    with pytest.raises(ValueError, match="SAME_STEP"):
        tabular_vector_env(vec, 2)
    with pytest.raises(ValueError, match="SAME_STEP"):
        tabular.q_learning(vec, 5, 0.5, 0.99, 0.1, num_runs=2)


def test_vector_env_with_another_number_of_copies_rejected() -> None:
    """A ready-made vector env of 3 copies given for 1 learner (or 1 copy for 3 learners)
    is a clear ValueError naming the mismatch, not a NumPy broadcasting error later."""
    for copies, runs in ((3, 1), (1, 3)):
        vec = TabularVectorEnv("FrozenLake-v1", copies)
        with pytest.raises(ValueError, match=rf"(?i)(num_envs|copies|num_runs).*\b{copies}\b"):
            tabular_vector_env(vec, runs)


# ---------------------------------------------------------------------------
# the generic path: a gymnasium vector env in SAME_STEP mode


def test_q_learning_on_a_gymnasium_same_step_vector_env() -> None:
    """q_learning accepts gymnasium's own vector env in SAME_STEP mode: Q has shape
    [2, 16, 4], and on the deterministic lake each learner's greedy path is a shortest
    one, 6 steps from the start to the goal (followed through gymnasium's table)."""
    vec = same_step_vec("FrozenLake-v1", 2, is_slippery=False)
    Q, history = tabular.q_learning(vec, 300, 0.5, 0.9, 0.2, seed=0, num_runs=2)
    assert Q.shape == (2, 16, 4)
    assert history.returns.shape == (2, 300)
    assert set(np.unique(history.returns).tolist()) <= {0.0, 1.0}
    P, _, D = gym_table("FrozenLake-v1", is_slippery=False)
    for i in range(2):
        s, steps = 0, 0
        while s != 15 and steps < 20:
            a = int(Q[i, s].argmax())
            s_next = int(P[s, a].argmax())
            assert not D[s, a, s_next] or s_next == 15  # never into a hole
            s, steps = s_next, steps + 1
        assert steps == 6, f"learner {i}"


def test_generic_path_learner_alone_equals_batch() -> None:
    """Through gymnasium's vector env too, learner i of a batch seeded s equals a single
    learner seeded s + i (gymnasium seeds copy i with s + i, as TabularVectorEnv does)."""
    Qb, hb = tabular.sarsa(same_step_vec("FrozenLake-v1", 3), 20, 0.3, 0.9, 0.2, 4, num_runs=3)
    for i in range(3):
        Qi, hi = tabular.sarsa(same_step_vec("FrozenLake-v1", 1), 20, 0.3, 0.9, 0.2, 4 + i)
        np.testing.assert_array_equal(Qi.numpy(), Qb[i].numpy())
        np.testing.assert_array_equal(hi.lengths, hb.run(i).lengths)
    assert not np.array_equal(hb.lengths[0], hb.lengths[1])


def test_generic_path_final_observation_handling() -> None:
    """Through gymnasium's vector env (deterministic lake, 2-step limit): copy 0 goes down,
    then right into the hole 5 (terminated: target 0, Q(5, .) = 100 unused); copy 1 goes
    right twice and is truncated in state 2 (target 0 + 0.9 * max Q(2, .) = 2.7).
    gymnasium's TimeLimit also flags copy 0 truncated (its limit is reached on the same
    step): termination still wins, no bootstrap."""
    vec = same_step_vec("FrozenLake-v1", 2, is_slippery=False, max_episode_steps=2)
    agent = tabular.TDControl(vec, "q_learning", alpha=0.5, gamma=0.9, epsilon=0.0, num_runs=2)
    agent.Q[:, 5, :] = 100.0
    agent.Q[:, 2, :] = [0.0, 3.0, 0.0, 0.0]
    agent.action = np.array([DOWN, RIGHT])
    u = agent.step()
    np.testing.assert_array_equal(u.next_state, [4, 1])
    agent.action = np.array([RIGHT, RIGHT])
    u = agent.step()
    np.testing.assert_array_equal(u.next_state, [5, 2])
    assert u.terminated.tolist() == [True, False]
    assert u.truncated[1]
    np.testing.assert_allclose(u.td_target, [0.0, 2.7])
    np.testing.assert_array_equal(agent.state, [0, 0])
    np.testing.assert_array_equal(agent.episode, [1, 1])


def test_chain_through_the_vector_env_of_the_course() -> None:
    """GridWorldEnv objects go through TabularVectorEnv: 4 copies of a 3-cell chain, all
    moving right, reach the goal on step 2 together with reward +10."""
    env = GridWorldEnv(("S.G",), step_reward=-1.0, goal_reward=10.0)
    vec = tabular_vector_env(env, 4)
    assert isinstance(vec, TabularVectorEnv)
    vec.reset(seed=0)
    right = np.ones(4, dtype=np.int64)
    obs, reward, terminated, _, _ = vec.step(right)
    assert obs.tolist() == [1] * 4 and reward.tolist() == [-1.0] * 4 and not terminated.any()
    obs, reward, terminated, _, info = vec.step(right)
    assert obs.tolist() == [0] * 4 and reward.tolist() == [10.0] * 4 and terminated.all()
    assert info["final_obs"].tolist() == [2] * 4


# ---------------------------------------------------------------------------
# Transitions: the episode log, kept where the env steps and read out in one copy

LOG_ENVS = {  # (make, number of actions): rewards of 1, of 0/1, and real-valued ones
    "gymnasium-next-step": (lambda: make_vector_env("CartPole-v1", 5), 2),
    "gymnasium-same-step": (lambda: same_step_vec("CartPole-v1", 5), 2),
    "torch-cartpole": (lambda: TorchCartPole(5), 2),
    "tabular-frozenlake": (lambda: TabularVectorEnv("FrozenLake-v1", 5), 4),
    "torch-frozenlake": (lambda: TorchTabularEnv("FrozenLake-v1", 5), 4),
    "tabular-cliff-cut-at-30": (
        lambda: TabularVectorEnv("CliffWalking-v1", 5, max_episode_steps=30),
        4,
    ),
}


def walk_counting_episodes(
    steps: Transitions, n_steps: int, n_actions: int, read_every: int | None = None
) -> tuple[list, list, np.ndarray]:
    """Step ``steps`` (reset) ``n_steps`` times with seeded random actions, counting each
    copy's episodes by hand; with ``read_every``, check ``steps.episodes`` against the count
    that often. Returns the episodes, their copies and each copy's unfinished length."""
    g = torch.Generator().manual_seed(0)
    n = steps.n
    ret, length, total = np.zeros(n), np.zeros(n, dtype=np.int64), 0
    episodes, copies = [], []
    for t in range(n_steps):
        _, reward, terminated, truncated, valid = steps.step(
            torch.randint(0, n_actions, (n,), generator=g)
        )
        v = valid.numpy()
        assert steps.n_valid == v.sum() and steps.all_valid == v.all()
        total += int(v.sum())
        assert steps.env_steps == total
        ret += reward.numpy() * v
        length += v
        for i in np.flatnonzero((terminated | truncated).numpy() & v):
            episodes.append((total, float(ret[i]), int(length[i])))
            copies.append(int(i))
            ret[i], length[i] = 0, 0
        if read_every and t % read_every == 0:
            assert steps.episodes == episodes  # complete up to now, whenever it is read
    return episodes, copies, length


def _walk(kind: str, n_steps: int, log_steps: int | None, read_every: int | None) -> Any:
    """Step ``LOG_ENVS[kind]`` with seeded random actions; read ``episodes`` every
    ``read_every`` steps. Returns the Transitions and the episodes counted by hand."""
    make, n_actions = LOG_ENVS[kind]
    steps = Transitions(make(), torch.device("cpu"), log_steps=log_steps)
    steps.reset(seed=0)
    episodes, copies, _ = walk_counting_episodes(steps, n_steps, n_actions, read_every)
    return steps, episodes, copies


@pytest.mark.parametrize("kind", list(LOG_ENVS))
@pytest.mark.parametrize(
    ("log_steps", "read_every"), [(None, None), (1, None), (3, None), (7, 13), (1024, 5)]
)
def test_episode_log_gives_every_episode_in_order(
    kind: str, log_steps: int | None, read_every: int | None
) -> None:
    """Episodes and the copies that played them, as counted step by step by hand, in the
    order they ended, however often the log is read out (when full, or when read)."""
    steps, episodes, copies = _walk(kind, 400, log_steps, read_every)
    assert len(episodes) > 5
    assert steps.episodes == episodes
    assert steps.episode_copies == copies
    assert steps.episodes == episodes  # reading twice changes nothing


def test_episode_log_reads_the_same_whatever_its_size() -> None:
    """The default log and a one-step log give the same episodes (ints and floats alike)."""
    a, _, _ = _walk("tabular-cliff-cut-at-30", 300, None, None)
    b, _, _ = _walk("tabular-cliff-cut-at-30", 300, 1, None)
    assert a.episodes == b.episodes and a.episode_copies == b.episode_copies
    assert all(isinstance(r, float) and isinstance(n, int) for _, r, n in a.episodes)
    assert {r for _, r, _ in a.episodes} - {-30.0}  # the cliff's -100s are in the returns


def test_reset_keeps_the_logged_episodes() -> None:
    """A reset (as REINFORCE's, before each batch of episodes) restarts the running counts
    but keeps the episodes that ended before it."""
    steps, episodes, _ = _walk("torch-cartpole", 60, 1024, None)
    steps.reset(seed=1)
    assert steps.episodes == episodes


@pytest.mark.parametrize("log_steps", [0, -1, 2.5, True])
def test_bad_log_steps(log_steps: Any) -> None:
    with pytest.raises(ValueError, match="log_steps must be a positive integer"):
        Transitions(TorchCartPole(2), torch.device("cpu"), log_steps=log_steps)


class _MetaEnv:
    """A torch env on PyTorch's "meta" device, whose tensors have shapes but no data: any
    read of a value on the host (``int(x)``, ``bool(x)``, a boolean index, ``.cpu()``)
    raises, as it would make a GPU step wait. Every copy ends an episode at every step."""

    torch_native = True
    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int) -> None:
        self.num_envs, self.device = num_envs, torch.device("meta")

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict]:
        return torch.zeros(self.num_envs, 4, device="meta"), {}

    def step(self, actions: torch.Tensor) -> tuple[Any, ...]:
        assert actions.device.type == "meta"
        obs = torch.zeros(self.num_envs, 4, device="meta")
        done = torch.ones(self.num_envs, dtype=torch.bool, device="meta")
        reward = torch.ones(self.num_envs, device="meta")
        return obs, reward, done, done, {"final_obs": obs.clone(), "_final_obs": done}


def test_a_step_never_reads_the_device() -> None:
    """On a device that cannot be read from the host, 300 steps (every one ending episodes)
    run: the counts and the log stay on the device, ``env_steps`` is known on the host.
    Only reading ``episodes`` copies the log to the host."""
    steps = Transitions(_MetaEnv(3), torch.device("meta"), log_steps=1000)
    steps.reset()
    for _ in range(300):
        next_obs, _, _, _, valid = steps.step(torch.zeros(3, dtype=torch.long, device="meta"))
    assert steps.env_steps == 900 and steps.all_valid
    assert next_obs.device.type == valid.device.type == "meta"
    with pytest.raises((NotImplementedError, RuntimeError)):
        steps.episodes  # noqa: B018 -- the read-out needs the values


# ---------------------------------------------------------------------------
# ReplayBuffer.add: the rows Transitions marks valid, stored by slices


def _rows(n: int, start: int = 0) -> tuple[torch.Tensor, ...]:
    """``n`` transitions numbered from ``start``: obs ``[k, k]``, action ``k``, reward
    ``k / 2``, next obs ``[-k, -k]``, terminated where ``k % 3 == 0``."""
    k = torch.arange(start, start + n)
    obs = k[:, None].float().expand(n, 2)
    return obs, k, k.float() / 2, -obs, k % 3 == 0


def test_replay_add_stores_the_valid_rows_in_order_across_the_wrap() -> None:
    """With a mask only its rows are stored, in order; without one, all rows; the ring wraps
    around its end; the fields stay aligned (terminated stored as a float)."""
    buf = ReplayBuffer(7, (2,))
    valid = torch.tensor([True, False, True, True, False])
    buf.add(*_rows(5), valid)  # rows 0, 2, 3
    assert (buf.pos, len(buf)) == (3, 3)
    buf.add(*_rows(5, start=10))  # rows 10-14: 10-13 at 3-6, 14 wraps to 0
    assert (buf.pos, len(buf)) == (1, 7)
    assert buf.actions.tolist() == [14, 2, 3, 10, 11, 12, 13]
    assert buf.obs[:, 0].tolist() == [14.0, 2, 3, 10, 11, 12, 13]
    assert buf.next_obs[:, 1].tolist() == [-14.0, -2, -3, -10, -11, -12, -13]
    assert buf.rewards.tolist() == [7.0, 1, 1.5, 5, 5.5, 6, 6.5]
    assert buf.terminated.tolist() == [0.0, 0, 1, 0, 0, 1, 0]
    buf.add(*_rows(3, start=20), torch.zeros(3, dtype=torch.bool))  # nothing valid
    assert (buf.pos, len(buf)) == (1, 7)
    buf.add(*_rows(7, start=30), torch.ones(7, dtype=torch.bool))  # exactly the capacity
    assert buf.actions.tolist() == [36, 30, 31, 32, 33, 34, 35] and buf.pos == 1
    with pytest.raises(ValueError, match="cannot add 8 transitions to a buffer of capacity 7"):
        buf.add(*_rows(8))


def test_replay_add_with_a_mask_equals_adding_the_masked_rows() -> None:
    """Many random masks: the same buffer as adding ``x[valid]`` of every field."""
    g = torch.Generator().manual_seed(0)
    a, b = ReplayBuffer(50, (2,)), ReplayBuffer(50, (2,))
    for t in range(40):
        rows, valid = _rows(6, start=6 * t), torch.rand(6, generator=g) < 0.7
        a.add(*rows, valid)
        b.add(*(x[valid] for x in rows))
    assert (a.pos, a.size) == (b.pos, b.size)
    for name in ("obs", "actions", "rewards", "next_obs", "terminated"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


# ---------------------------------------------------------------------------
# RandomStreams


@pytest.mark.parametrize("block", [None, 1, 3, 7, 1000])
def test_random_streams_rows_are_independent_of_batch_and_chunking(block) -> None:
    """Row i of a batch is NumPy's default_rng(seeds[i]) stream, whatever the block size and
    however the numbers are taken (k = 1, 2, 5, 0, 9 at a time), and whatever other rows
    are in the batch."""
    seeds = [11, 0, 2**40 + 3]
    ks = [1, 2, 5, 0, 9, 3, 1, 8] * 5
    total = sum(ks)
    streams = RandomStreams(seeds, block=block)
    drawn = np.concatenate([streams.uniform(k) for k in ks], axis=1)
    assert drawn.shape == (3, total)
    for i, seed in enumerate(seeds):
        np.testing.assert_array_equal(drawn[i], np.random.default_rng(seed).random(total))
        alone = RandomStreams([seed], block=block)
        other_chunks = np.concatenate([alone.uniform(k) for k in (4, 4, 10, total - 18)], axis=1)
        np.testing.assert_array_equal(other_chunks[0], drawn[i])
    assert len(streams) == 3


def test_random_streams_need_a_seed() -> None:
    with pytest.raises(ValueError, match="at least one seed"):
        RandomStreams([])
