"""Model-free tabular methods (Sutton & Barto, ch. 5-7): Monte Carlo, TD(0) and n-step TD
prediction; SARSA, Expected SARSA and Q-learning control.

Every method runs ``num_runs`` independent learners at once, one per copy of a
vector environment (see :mod:`rlcourse.envs.vector`): ``Q`` is ``[N, S, A]``,
and learner ``i`` (seed ``seed + i``) gives the same numbers alone or in a batch.
A tabular update touches one entry, so the work is NumPy on the CPU: a batch of
learners costs little more than one. The functions ``sarsa``, ``q_learning``...
return torch tensors: the table of the learner when ``num_runs == 1``, all of
them (``[N, S, A]``) otherwise.

Episodes end in two ways, and the update treats them differently:

* ``terminated`` (the task ended): the target is just the reward, ``v(terminal) = 0``;
* ``truncated`` (a time limit): the state still has a future, so the target
  bootstraps from the final observation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from rlcourse.envs.vector import sample_rows, tabular_vector_env
from rlcourse.mdp import check_gamma
from rlcourse.utils import RandomStreams

#: epsilon as a function of each learner's episode index ``[N] -> [N]`` (NumPy arrays)
Schedule = Callable[[np.ndarray], np.ndarray]
METHODS = ("sarsa", "expected_sarsa", "q_learning")


# ------------------------------------------------------------- exploration
def constant_schedule(value: float) -> Schedule:
    """``epsilon = value`` in every episode."""
    _check_probability("epsilon", value)
    return lambda episode: np.full(episode.shape, float(value))


def linear_schedule(start: float, end: float, n_episodes: int) -> Schedule:
    """``epsilon`` from ``start`` down to ``end`` over ``n_episodes``, then ``end``."""
    _check_probability("start", start)
    _check_probability("end", end)
    return lambda episode: start + (end - start) * np.minimum(episode / n_episodes, 1.0)


def exponential_schedule(start: float, end: float, decay: float) -> Schedule:
    """``epsilon = max(end, start * decay ** episode)``."""
    _check_probability("start", start)
    _check_probability("end", end)
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"decay must be in (0, 1], got {decay}")
    return lambda episode: np.maximum(start * decay ** episode.astype(float), end)


def _check_probability(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


def _as_schedule(epsilon: float | Schedule) -> Schedule:
    return epsilon if callable(epsilon) else constant_schedule(epsilon)


def _check_alpha(alpha: Any) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha <= 1:
        raise ValueError(f"alpha (the step size) must be in (0, 1], got {alpha!r}")
    return float(alpha)


def greedy_with_ties(q: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``argmax`` of each row of ``q [N, A]``, ties broken uniformly by ``u [N, A]``.

    Breaking ties at random matters: with ``Q`` initialised to zeros, ``argmax``
    alone would always pick action 0.
    """
    best = q >= q.max(1, keepdims=True)
    return np.where(best, u, -1.0).argmax(1)


def epsilon_greedy(q: np.ndarray, epsilon: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Epsilon-greedy actions ``[N]`` for action values ``q [N, A]``.

    With probability ``epsilon [N]`` a uniformly random action, else a greedy one.
    ``u [N, 2 + A]`` holds the uniform numbers used (explore?, which action, ties).
    """
    A = q.shape[1]
    explore = u[:, 0] < epsilon
    random_action = np.minimum((u[:, 1] * A).astype(np.int64), A - 1)
    return np.where(explore, random_action, greedy_with_ties(q, u[:, 2:]))


def epsilon_greedy_probs(q: np.ndarray, epsilon: np.ndarray) -> np.ndarray:
    """``pi(a|s) [N, A]`` of the epsilon-greedy policy (greedy mass split among ties)."""
    A = q.shape[1]
    best = (q >= q.max(1, keepdims=True)).astype(float)
    greedy = best / best.sum(1, keepdims=True)
    eps = epsilon[:, None]
    return eps / A + (1 - eps) * greedy


# ----------------------------------------------------------------- history
@dataclass
class History:
    """Per-episode record of ``N`` learners: ``returns`` and ``lengths`` ``[N, n_episodes]``
    (undiscounted sum of rewards and number of steps of each episode), and for the
    prediction methods ``values [N, n_episodes + 1, S]``, the estimate after each episode."""

    returns: np.ndarray
    lengths: np.ndarray
    values: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return self.returns.shape[1]

    def run(self, i: int) -> History:
        """The history of learner ``i`` alone (arrays ``[1, ...]``)."""
        values = None if self.values is None else self.values[i : i + 1]
        return History(self.returns[i : i + 1], self.lengths[i : i + 1], values)


class _Runner:
    """What prediction and control share: the vector env, per-learner random streams,
    episode counting and the history."""

    def __init__(
        self,
        env: Any,
        n_episodes: int,
        gamma: float,
        num_runs: int,
        seed: int,
        record_values: bool = False,
    ) -> None:
        if not isinstance(n_episodes, int) or n_episodes < 1:
            raise ValueError(f"n_episodes must be a positive integer, got {n_episodes!r}")
        if not isinstance(num_runs, int) or num_runs < 1:
            raise ValueError(f"num_runs must be a positive integer, got {num_runs!r}")
        self.gamma = check_gamma(gamma)
        self.envs = tabular_vector_env(env, num_runs)
        self.N, self.n_episodes = num_runs, n_episodes
        self.S = int(self.envs.single_observation_space.n)
        self.A = int(self.envs.single_action_space.n)
        # learner i is seeded seed + i: its env copy from that seed, its own choices from a
        # stream derived from it, so learner i does the same alone (seed + i) or in a batch
        self.streams = RandomStreams([(seed + i, 1) for i in range(num_runs)])
        obs, _ = self.envs.reset(seed=seed)
        self.state = np.asarray(obs, dtype=np.int64)
        self.rows = np.arange(num_runs)
        self.episode = np.zeros(num_runs, dtype=np.int64)
        self._return = np.zeros(num_runs)
        self._length = np.zeros(num_runs, dtype=np.int64)
        self.returns = np.zeros((num_runs, n_episodes))
        self.lengths = np.zeros((num_runs, n_episodes), dtype=np.int64)
        self.values = np.zeros((num_runs, n_episodes + 1, self.S)) if record_values else None
        self.total_steps = 0

    @property
    def active(self) -> np.ndarray:
        """Bool ``[N]``: learners that have not finished their ``n_episodes`` yet."""
        return self.episode < self.n_episodes

    @property
    def finished(self) -> bool:
        return not self.active.any()

    def env_step(self, action: np.ndarray) -> tuple[np.ndarray, ...]:
        """Step every copy; return ``(s_next, s_final, reward, terminated, truncated, ended)``.

        ``s_next`` is where each learner continues (a new episode's start where one
        ended), ``s_final`` the state the transition led to (the final observation);
        ``ended`` marks the learners whose counted episode just ended.
        """
        obs, reward, terminated, truncated, info = self.envs.step(action)
        s_next = np.asarray(obs, dtype=np.int64)
        reward = np.asarray(reward, dtype=np.float64)
        terminated, truncated = np.asarray(terminated), np.asarray(truncated)
        s_final = s_next
        if "_final_obs" in info:
            mask = np.asarray(info["_final_obs"], dtype=bool)
            final = np.where(mask, info["final_obs"], 0).astype(np.int64)
            s_final = np.where(mask, final, s_next)
        active = self.active
        self._return += reward * active
        self._length += active
        ended = (terminated | truncated) & active
        if ended.any():
            idx = np.flatnonzero(ended)
            self.returns[idx, self.episode[idx]] = self._return[idx]
            self.lengths[idx, self.episode[idx]] = self._length[idx]
            self._return[idx] = 0.0
            self._length[idx] = 0
            self.episode[idx] += 1
        self.total_steps += 1
        return s_next, s_final, reward, terminated, truncated, ended

    def history(self) -> History:
        return History(self.returns, self.lengths, self.values)

    def run_loop(self, step: Callable[[], Any], progress: bool) -> None:
        """Call ``step`` until every learner has finished, with an optional progress bar."""
        if not progress:  # the bar's bookkeeping costs about a tenth of a step
            while not self.finished:
                step()
            return
        total = self.n_episodes * self.N
        with tqdm(total=total, disable=not progress, unit="episode") as bar:
            while not self.finished:
                done_before = int(np.minimum(self.episode, self.n_episodes).sum())
                step()
                bar.update(int(np.minimum(self.episode, self.n_episodes).sum()) - done_before)


def _select(result: np.ndarray, num_runs: int) -> Tensor:
    """The learner's table as a tensor (all learners' for several runs)."""
    return torch.from_numpy(result[0] if num_runs == 1 else result)


# -------------------------------------------------------------- control
@dataclass
class Update:
    """The last update of every learner, for display: arrays ``[N]``.

    ``td_target = reward + gamma * (bootstrap value of s')`` (just ``reward`` when
    ``terminated``); ``td_error = td_target - q_old``; ``q_new = q_old + alpha * td_error``.
    """

    state: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_state: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    td_target: np.ndarray
    td_error: np.ndarray
    q_old: np.ndarray
    q_new: np.ndarray


class TDControl(_Runner):
    """SARSA, Expected SARSA or Q-learning for ``num_runs`` independent learners.

    ``step()`` does one transition of every learner and returns the :class:`Update`;
    ``run()`` steps until every learner has finished ``n_episodes`` episodes.
    ``alpha``, ``gamma`` and ``epsilon`` may be changed between steps; ``Q`` is the
    NumPy table ``[N, S, A]``. ``Q0`` is the initial estimate: a number for every entry,
    or a table ``[S, A]`` (every learner) or ``[N, S, A]`` (one per learner), e.g. the
    tables of an earlier run to continue learning from.
    """

    def __init__(
        self,
        env: Any,
        method: str = "q_learning",
        *,
        n_episodes: int = 500,
        alpha: float = 0.5,
        gamma: float = 1.0,
        epsilon: float | Schedule = 0.1,
        num_runs: int = 1,
        seed: int = 0,
        Q0: float | np.ndarray | Tensor = 0.0,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        super().__init__(env, n_episodes, gamma, num_runs, seed)
        self.method = method
        self.alpha = _check_alpha(alpha)
        self.epsilon = _as_schedule(epsilon)
        self.Q = _initial_table(Q0, (self.N, self.S, self.A))
        self.visits = np.zeros((self.N, self.S), dtype=np.int64)  # updates made in each state
        self.action = self._policy_action(self.state)  # the first action, A_0
        self.last: Update | None = None

    def _policy_action(
        self, state: np.ndarray, eps: np.ndarray | None = None, u: np.ndarray | None = None
    ) -> np.ndarray:
        """Epsilon-greedy actions in ``state [N]`` under the current ``Q``."""
        eps = self.epsilon(self.episode) if eps is None else eps
        u = self.streams.uniform(2 + self.A) if u is None else u
        return epsilon_greedy(self.Q[self.rows, state], eps, u)

    def step(self) -> Update:
        """One transition ``(S, A, R, S')`` and one update for every learner."""
        rows, s, a = self.rows, self.state, self.action
        learning = self.active
        s_next, s_final, r, terminated, truncated, _ = self.env_step(a)
        eps = self.epsilon(self.episode)
        # the same count of random numbers every step, so that learners stay independent
        u_next, u_start = self.streams.uniform(2 + self.A), self.streams.uniform(2 + self.A)
        q_final = self.Q[rows, s_final]  # [N, A] action values of S'
        if self.method == "q_learning":
            bootstrap = q_final.max(1)  # max_a Q(S', a): the greedy action, whatever it does
        elif self.method == "sarsa":
            a_next = self._policy_action(s_final, eps, u_next)  # A', chosen before the update
            bootstrap = q_final[rows, a_next]  # Q(S', A') of the action it will take
        else:
            bootstrap = (epsilon_greedy_probs(q_final, eps) * q_final).sum(1)  # E_pi Q(S', .)
        td_target = r + self.gamma * bootstrap * ~terminated  # no bootstrap past termination
        q_old = self.Q[rows, s, a]
        td_error = td_target - q_old
        q_new = q_old + self.alpha * td_error * learning
        self.Q[rows, s, a] = q_new
        self.visits[rows, s] += learning
        done = terminated | truncated
        if self.method == "sarsa":
            self.action = a_next
            if done.any():  # a new episode starts: choose its first action afresh
                self.action = np.where(done, self._policy_action(s_next, eps, u_start), a_next)
        else:  # the next action comes from the updated Q
            self.action = self._policy_action(s_next, eps, u_next)
        self.state = s_next
        self.last = Update(
            s, a, r, s_final, terminated, truncated, td_target, td_error, q_old, q_new
        )
        return self.last

    def run(self, progress: bool = False) -> tuple[Tensor, History]:
        """Step until every learner has done ``n_episodes``; return ``(Q [N, S, A], history)``."""
        self.run_loop(self.step, progress)
        return torch.from_numpy(self.Q), self.history()


def _initial_table(Q0: Any, shape: tuple[int, int, int]) -> np.ndarray:
    """A fresh ``[N, S, A]`` table from a number, a ``[S, A]`` or a ``[N, S, A]`` table."""
    table = np.asarray(Q0.detach().cpu() if isinstance(Q0, Tensor) else Q0, dtype=np.float64)
    if table.shape not in ((), shape[1:], shape):
        raise ValueError(
            f"Q0 must be a number or a table of shape [S, A] = {list(shape[1:])} or "
            f"[num_runs, S, A] = {list(shape)}, got shape {list(table.shape)}"
        )
    if not np.isfinite(table).all():
        raise ValueError("Q0 must be finite")
    return np.broadcast_to(table, shape).copy()


def _control(
    method: str,
    env: Any,
    n_episodes: int,
    alpha: float,
    gamma: float,
    epsilon: float | Schedule,
    seed: int,
    num_runs: int,
    Q0: float | np.ndarray | Tensor,
    progress: bool,
) -> tuple[Tensor, History]:
    agent = TDControl(
        env,
        method,
        n_episodes=n_episodes,
        alpha=alpha,
        gamma=gamma,
        epsilon=epsilon,
        num_runs=num_runs,
        seed=seed,
        Q0=Q0,
    )
    agent.run(progress)
    return _select(agent.Q, num_runs), agent.history()


def sarsa(
    env: Any,
    n_episodes: int,
    alpha: float,
    gamma: float,
    epsilon: float | Schedule,
    seed: int = 0,
    *,
    num_runs: int = 1,
    Q0: float | np.ndarray | Tensor = 0.0,
    progress: bool = False,
) -> tuple[Tensor, History]:
    """SARSA: ``Q(S,A) += alpha [R + gamma Q(S',A') - Q(S,A)]``, ``A'`` the action it takes next.

    Returns ``Q [S, A]`` (``[num_runs, S, A]`` for several runs) and the :class:`History`.
    """
    return _control("sarsa", env, n_episodes, alpha, gamma, epsilon, seed, num_runs, Q0, progress)


def expected_sarsa(
    env: Any,
    n_episodes: int,
    alpha: float,
    gamma: float,
    epsilon: float | Schedule,
    seed: int = 0,
    *,
    num_runs: int = 1,
    Q0: float | np.ndarray | Tensor = 0.0,
    progress: bool = False,
) -> tuple[Tensor, History]:
    """Expected SARSA: bootstraps from ``sum_a pi(a|S') Q(S',a)``, pi epsilon-greedy."""
    return _control(
        "expected_sarsa", env, n_episodes, alpha, gamma, epsilon, seed, num_runs, Q0, progress
    )


def q_learning(
    env: Any,
    n_episodes: int,
    alpha: float,
    gamma: float,
    epsilon: float | Schedule,
    seed: int = 0,
    *,
    num_runs: int = 1,
    Q0: float | np.ndarray | Tensor = 0.0,
    progress: bool = False,
) -> tuple[Tensor, History]:
    """Q-learning: ``Q(S,A) += alpha [R + gamma max_a Q(S',a) - Q(S,A)]`` (off-policy TD).

    Returns ``Q [S, A]`` (``[num_runs, S, A]`` for several runs) and the :class:`History`.
    """
    return _control(
        "q_learning", env, n_episodes, alpha, gamma, epsilon, seed, num_runs, Q0, progress
    )


# ------------------------------------------------------------ prediction
@dataclass
class PredictionHistory(History):
    """The :class:`History` of a prediction method, with ``counts [N, S]``: how many
    returns (Monte Carlo) or updates (TD) each learner's estimate of each state has taken in."""

    counts: np.ndarray | None = field(default=None, repr=False)

    def run(self, i: int) -> PredictionHistory:
        """The history of learner ``i`` alone (arrays ``[1, ...]``)."""
        h = super().run(i)
        counts = None if self.counts is None else self.counts[i : i + 1]
        return PredictionHistory(h.returns, h.lengths, h.values, counts)


def _prediction_history(run: _Runner, counts: np.ndarray) -> PredictionHistory:
    return PredictionHistory(run.returns, run.lengths, run.values, counts.astype(np.int64))


def _policy_array(policy: Any, S: int, A: int) -> np.ndarray:
    pi = np.asarray(policy.cpu() if isinstance(policy, Tensor) else policy, dtype=np.float64)
    if pi.shape != (S, A):
        raise ValueError(f"policy must have shape [S, A] = [{S}, {A}], got {list(pi.shape)}")
    if (pi < 0).any() or not np.allclose(pi.sum(1), 1.0):
        raise ValueError("each row of policy must be a probability distribution over actions")
    return np.cumsum(pi, axis=1)


def td0_prediction(
    env: Any,
    policy: Any,
    n_episodes: int,
    alpha: float,
    gamma: float,
    seed: int = 0,
    *,
    num_runs: int = 1,
    V0: float = 0.0,
    progress: bool = False,
) -> tuple[Tensor, PredictionHistory]:
    """TD(0) prediction of ``v_pi``: ``V(S) += alpha [R + gamma V(S') - V(S)]`` after every step.

    ``policy [S, A]`` gives action probabilities. Returns ``V [S]`` (``[num_runs, S]``)
    and the :class:`PredictionHistory` with ``values [N, n_episodes + 1, S]`` and ``counts``.
    """
    alpha = _check_alpha(alpha)
    run = _Runner(env, n_episodes, gamma, num_runs, seed, record_values=True)
    pi_cdf = _policy_array(policy, run.S, run.A)
    V = np.full((run.N, run.S), float(V0))
    counts = np.zeros((run.N, run.S), dtype=np.int64)
    run.values[:, 0] = V
    rows = run.rows

    def step() -> None:
        s = run.state
        a = sample_rows(pi_cdf[s], run.streams.uniform(1)[:, 0])
        learning = run.active
        s_next, s_final, r, terminated, _, ended = run.env_step(a)
        v_final = np.where(terminated, 0.0, V[rows, s_final])  # v(terminal) = 0
        V[rows, s] += alpha * (r + run.gamma * v_final - V[rows, s]) * learning
        counts[rows, s] += learning
        if ended.any():
            idx = np.flatnonzero(ended)
            run.values[idx, run.episode[idx]] = V[idx]
        run.state = s_next

    run.run_loop(step, progress)
    return _select(V, num_runs), _prediction_history(run, counts)


def mc_prediction(
    env: Any,
    policy: Any,
    n_episodes: int,
    gamma: float,
    seed: int = 0,
    *,
    alpha: float | None = None,
    first_visit: bool = True,
    num_runs: int = 1,
    V0: float = 0.0,
    progress: bool = False,
) -> tuple[Tensor, PredictionHistory]:
    """Monte Carlo prediction of ``v_pi`` from complete episodes.

    After each episode, the return ``G_t`` of each visit (the first visit to a state in
    the episode, or every visit) moves ``V(S_t)`` towards it: by ``1 / N(S_t)`` (sample
    averages, ``alpha=None``) or by a constant step ``alpha``. Episodes cut by a time
    limit are not complete, so their returns are not used.
    Returns ``V [S]`` (``[num_runs, S]``) and the :class:`PredictionHistory` (with ``values``,
    and ``counts``: the number of returns averaged into each state's estimate).
    """
    if alpha is not None:
        alpha = _check_alpha(alpha)
    run = _Runner(env, n_episodes, gamma, num_runs, seed, record_values=True)
    pi_cdf = _policy_array(policy, run.S, run.A)
    V = np.full((run.N, run.S), float(V0))
    counts = np.zeros((run.N, run.S))
    run.values[:, 0] = V
    states: list[list[int]] = [[] for _ in range(run.N)]
    rewards: list[list[float]] = [[] for _ in range(run.N)]

    def step() -> None:
        s = run.state
        a = sample_rows(pi_cdf[s], run.streams.uniform(1)[:, 0])
        learning = np.flatnonzero(run.active)
        s_next, _, r, _, truncated, ended = run.env_step(a)
        for i in learning:
            states[i].append(int(s[i]))
            rewards[i].append(float(r[i]))
        for i in np.flatnonzero(ended):
            if not truncated[i]:
                _mc_update(V[i], counts[i], states[i], rewards[i], run.gamma, alpha, first_visit)
            run.values[i, run.episode[i]] = V[i]
            states[i], rewards[i] = [], []
        run.state = s_next

    run.run_loop(step, progress)
    return _select(V, num_runs), _prediction_history(run, counts)


def _mc_update(
    V: np.ndarray,
    counts: np.ndarray,
    states: list[int],
    rewards: list[float],
    gamma: float,
    alpha: float | None,
    first_visit: bool,
) -> None:
    """Move ``V`` towards the returns of one complete episode (in place)."""
    G = 0.0
    returns = [0.0] * len(states)
    for t in range(len(states) - 1, -1, -1):  # G_t = R_{t+1} + gamma G_{t+1}, backwards
        G = rewards[t] + gamma * G
        returns[t] = G
    seen: set[int] = set()
    for s, G in zip(states, returns, strict=True):
        if first_visit and s in seen:
            continue
        seen.add(s)
        counts[s] += 1
        V[s] += (1.0 / counts[s] if alpha is None else alpha) * (G - V[s])


def _step_sizes(alpha: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(steps [K], sample_average [K], one)`` for a step size, ``None`` or a sequence of them.

    ``None`` stands for ``1 / N(s)`` (``sample_average`` true); ``one``: a single one was given.
    """
    one = alpha is None or np.ndim(alpha) == 0
    items = [alpha] if one else list(alpha)
    if not items:
        raise ValueError("alpha must be a step size, None, or a non-empty sequence of them")
    average = np.array([a is None for a in items])
    steps = np.array([1.0 if a is None else _check_alpha(a) for a in items])
    return steps, average, one


def n_step_td_prediction(
    env: Any,
    policy: Any,
    n_episodes: int,
    n: int,
    alpha: float | Sequence[float | None] | None,
    gamma: float,
    seed: int = 0,
    *,
    num_runs: int = 1,
    V0: float = 0.0,
    progress: bool = False,
) -> tuple[Tensor, PredictionHistory]:
    """n-step TD prediction of ``v_pi`` (Sutton & Barto, section 7.1).

    ``V(S_tau) += alpha [G_{tau:tau+n} - V(S_tau)]`` with the n-step return
    ``G_{tau:tau+n} = R_{tau+1} + gamma R_{tau+2} + ... + gamma^(n-1) R_{tau+n}
    + gamma^n V(S_{tau+n})``. Where the episode ends first, the sum stops there: no
    bootstrap after termination, a bootstrap from the final observation after a
    truncation. As in the book, ``S_tau`` is updated at step ``tau + n - 1``, once
    ``R_{tau+n}`` and ``S_{tau+n}`` are known; the last ``n - 1`` updates of an episode are
    made while the learner's next episode begins (before any update of that episode).

    ``n = 1`` is TD(0) (the numbers of :func:`td0_prediction`); ``n`` at least as long as
    every episode is constant-alpha every-visit Monte Carlo (those of
    ``mc_prediction(..., first_visit=False)`` on episodes that terminate).

    ``alpha``: a step size, or ``None`` for ``1 / N(S_tau)`` (``N`` counts the state's
    updates), or a sequence of ``K`` of them. The policy does not depend on ``V``, so
    ``K`` tables, one per step size, learn from each run's same episodes: a sweep over
    step sizes costs little more than one, and compares them on identical experience.
    Returns ``V [S]`` (``[num_runs, S]``; with a sequence ``[K, S]`` / ``[num_runs, K, S]``)
    and the :class:`PredictionHistory`: ``values [N, n_episodes + 1, S]`` (``[N,
    n_episodes + 1, K, S]``), the estimates once each episode's updates are made, and
    ``counts [N, S]``, the updates made to each state.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n (the number of steps) must be a positive integer, got {n!r}")
    steps, average, one = _step_sizes(alpha)
    run = _Runner(env, n_episodes, gamma, num_runs, seed)
    pi_cdf = _policy_array(policy, run.S, run.A)
    rows, N, K = run.rows, run.N, len(steps)
    V = np.full((N, K, run.S), float(V0))  # one table per step size
    values = np.zeros((N, n_episodes + 1, K, run.S))
    values[:, 0] = V
    counts = np.zeros((N, run.S), dtype=np.int64)
    discount = run.gamma ** np.arange(n + 1)  # gamma^0 .. gamma^n
    # A ring of n slots per learner: slot tau % n holds step tau until its update at
    # step tau + n - 1, then step tau + n.
    state = np.zeros((N, n), dtype=np.int64)  # S_tau, the state to update
    G = np.zeros((N, n))  # its return so far: the sum of gamma^(t - tau) R_{t+1}
    running = np.zeros((N, n), dtype=bool)  # its episode has not ended yet
    boot_state = np.zeros((N, n), dtype=np.int64)  # after the end: bootstrap from this state
    boot_weight = np.zeros((N, n))  # with this weight (0 after termination)
    pending = np.zeros((N, n), dtype=bool)  # a step of a counted episode, not yet updated
    last = np.zeros((N, n), dtype=bool)  # the last step of its episode
    episode = np.zeros((N, n), dtype=np.int64)  # its episode, counted from 1
    k = 0  # steps taken (the same for every learner)

    def step() -> None:
        nonlocal k
        q, s = k % n, run.state
        state[:, q], G[:, q], running[:, q] = s, 0.0, True
        pending[:, q], last[:, q], episode[:, q] = run.active, False, run.episode + 1
        a = sample_rows(pi_cdf[s], run.streams.uniform(1)[:, 0])
        s_next, s_final, r, terminated, truncated, _ = run.env_step(a)
        age = (k - np.arange(n)) % n  # t - tau of every slot, t = k
        rewarded = np.flatnonzero(r)  # rewards are often sparse: zeros add nothing
        if rewarded.size:
            G[rewarded] += running[rewarded] * discount[age] * r[rewarded, None]
        ended = np.flatnonzero(terminated | truncated)
        if ended.size:  # every running slot of these learners stops at this step's end
            stops = running[ended]
            bootstraps = (truncated & ~terminated)[ended, None]  # v(terminal) = 0
            weight = np.where(bootstraps, discount[age + 1], 0.0)
            boot_weight[ended] = np.where(stops, weight, boot_weight[ended])
            boot_state[ended] = np.where(stops, s_final[ended, None], boot_state[ended])
            running[ended] = False
            last[ended, q] = True
        u = (k + 1) % n  # the slot of step tau = k - n + 1: its update is due now
        learning = pending[:, u]
        if learning.any():
            s_tau = state[:, u]
            bootstrap = np.where(
                running[:, u, None],
                discount[n] * V[rows, :, s_next],  # gamma^n V(S_{tau+n})
                boot_weight[:, u, None] * V[rows, :, boot_state[:, u]],
            )
            target = G[:, u, None] + bootstrap  # G_{tau:tau+n}  [N, K]
            counts[rows, s_tau] += learning
            sample_average = 1.0 / np.maximum(counts[rows, s_tau], 1)[:, None]
            step_size = np.where(average, sample_average, steps)  # [N, K]
            V[rows, :, s_tau] += step_size * (target - V[rows, :, s_tau]) * learning[:, None]
            done = np.flatnonzero(learning & last[:, u])  # an episode's last update
            values[done, episode[done, u]] = V[done]
            pending[:, u] = False
        run.state = s_next
        k += 1

    run.run_loop(step, progress)
    while pending.any():  # the last episodes' last n - 1 updates
        step()
    if one:
        V, values = V[:, 0], values[:, :, 0]
    history = PredictionHistory(run.returns, run.lengths, values, counts)
    return _select(V, num_runs), history
