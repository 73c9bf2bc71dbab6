"""Checkers for the exercises.

Each ``check_*`` takes the student's function, runs it on small cases with known
answers and on random MDPs against the reference implementation, and either
prints a one-line success message or raises :class:`CheckError` with a message a
student can act on: which case, which state, expected against got, and -- when
the answer matches a classic wrong implementation -- which mistake that is (the
mistakes of the course's "common mistakes" boxes).

A function that still raises ``NotImplementedError`` (the student edition's stub)
is reported as a ``NotImplementedError`` that keeps the stub's hint, so that the
student sees the hint rather than a failed check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rlcourse import dp
from rlcourse.mdp import TabularMDP

_ATOL = 1e-6


class CheckError(AssertionError):
    """An exercise's answer is wrong; the message says how."""


# --------------------------------------------------------------------- cases
def _random_mdp(seed: int, S: int = 6, A: int = 3, gamma: float = 0.9) -> TabularMDP:
    """A random dense MDP with rewards that differ by action and state."""
    g = torch.Generator().manual_seed(seed)
    P = torch.rand(S, A, S, generator=g, dtype=torch.float64) ** 3
    P = P / P.sum(-1, keepdim=True)
    R = torch.randn(S, A, generator=g, dtype=torch.float64)
    return TabularMDP(P, R, gamma, name=f"random MDP (seed {seed})")


def _random_policy(seed: int, S: int, A: int) -> Tensor:
    g = torch.Generator().manual_seed(seed + 1000)
    pi = torch.rand(S, A, generator=g, dtype=torch.float64)
    return pi / pi.sum(1, keepdim=True)


def _two_state_mdp() -> TabularMDP:
    """Two states, two actions; action 0 stays, action 1 switches; rewards differ by action."""
    P = torch.zeros(2, 2, 2, dtype=torch.float64)
    P[0, 0, 0] = P[1, 0, 1] = 1.0  # stay
    P[0, 1, 1] = P[1, 1, 0] = 1.0  # switch
    R = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    return TabularMDP(P, R, 0.5, name="two-state MDP")


def _cases(n_random: int = 4) -> list[TabularMDP]:
    return [_two_state_mdp()] + [_random_mdp(seed) for seed in range(n_random)]


# ------------------------------------------------------------------ helpers
def _not_implemented(
    name: str, err: NotImplementedError, fn: Callable[..., Any]
) -> NotImplementedError:
    """The error for an exercise that is still a stub, keeping the stub's hint."""
    hint = str(err).strip()
    function = getattr(fn, "__name__", "")
    name = function if function.isidentifier() else name
    return NotImplementedError(
        f"{name} is not implemented yet -- replace the `raise NotImplementedError` line "
        f"with your code.{' Hint: ' + hint if hint else ''}"
    )


def _invoke(
    name: str, fn: Callable[..., Any], *args: Any, student: Callable[..., Any] | None = None
) -> Any:
    """``fn(*args)``, with a stub's ``NotImplementedError`` kept (with its hint) and any other
    exception reported as a CheckError naming the function (``student``, when ``fn`` is a
    wrapper around the student's function)."""
    try:
        return fn(*args)
    except NotImplementedError as err:
        raise _not_implemented(name, err, student or fn) from None
    except Exception as err:  # a student's bug: report it with the case that caused it
        raise CheckError(f"{name} raised {type(err).__name__}: {err}") from err


def _call(name: str, fn: Callable[..., Any], *args: Any) -> Tensor:
    out = _invoke(name, fn, *args)
    if not isinstance(out, Tensor):
        raise CheckError(f"{name} must return a torch tensor, got {type(out).__name__}")
    return out


def _compare(
    name: str,
    case: str,
    got: Tensor,
    expected: Tensor,
    mistakes: dict[str, Tensor],
    what: str = "state",
) -> None:
    """Raise a CheckError naming the first wrong entry and any matching classic mistake."""
    if tuple(got.shape) != tuple(expected.shape):
        raise CheckError(
            f"{name} on the {case}: expected a result of shape {list(expected.shape)}, got "
            f"{list(got.shape)}"
        )
    got, expected = got.detach().to(torch.float64), expected.detach().to(torch.float64)
    mistakes = {k: v.detach().to(torch.float64) for k, v in mistakes.items()}
    if torch.allclose(got, expected, atol=_ATOL, rtol=0):
        return
    bad = torch.nonzero((got - expected).abs() > _ATOL)[0].tolist()
    where = ", ".join(str(i) for i in bad)
    message = (
        f"{name} on the {case}: wrong at {what} {where}: expected "
        f"{expected[tuple(bad)].item():.4f}, got {got[tuple(bad)].item():.4f}."
    )
    for mistake, wrong in mistakes.items():
        if tuple(wrong.shape) == tuple(got.shape) and torch.allclose(
            got, wrong, atol=_ATOL, rtol=0
        ):
            message += f" It looks like you {mistake}."
            break
    raise CheckError(message)


def _passed(name: str, n: int) -> None:
    print(f"{name}: all {n} checks passed ✓")


# ------------------------------------------------------ chapter 1 exercises
_STATE_REWARD = (
    "indexed the reward by the state alone (one r(s) for every action, e.g. a row mean of R): "
    "r(s, a) depends on the action, use R[s, a]"
)


def check_bellman_expectation_backup(fn: Callable[..., Tensor]) -> None:
    """``fn(P [S,A,S], R [S,A], gamma, policy [S,A], V [S]) -> V_new [S]``."""
    name, n = "bellman_expectation_backup", 0
    for mdp in _cases():
        pi = _random_policy(n, mdp.n_states, mdp.n_actions)
        V = torch.linspace(-1.0, 2.0, mdp.n_states, dtype=torch.float64)
        got = _call(name, fn, mdp.P.clone(), mdp.R.clone(), mdp.gamma, pi.clone(), V.clone())
        Q = mdp.q_values(V)
        action_blind = mdp.R + mdp.gamma * (mdp.P.mean(1) @ V)[:, None]
        state_reward = mdp.R.mean(1, keepdim=True) + mdp.gamma * mdp.expected_next_values(V)
        mistakes = {
            "forgot the discount gamma": (pi * (mdp.R + mdp.expected_next_values(V))).sum(1),
            "took the max over actions (that is the optimality backup, not the expectation "
            "backup of a policy)": Q.amax(1),
            "averaged over actions uniformly instead of weighting by pi(a|s)": Q.mean(1),
            "left out the immediate reward r(s, a)": (
                pi * mdp.gamma * mdp.expected_next_values(V)
            ).sum(1),
            "summed P over the wrong axis (P[s, a, s'] has the next state last)": (
                pi * (mdp.R + mdp.gamma * torch.einsum("sat,s->ta", mdp.P, V))
            ).sum(1),
            "ignored the action in the transitions (averaged P over actions): the next "
            "state depends on the action, use p(s'|s, a) of each action": (pi * action_blind).sum(
                1
            ),
            _STATE_REWARD: (pi * state_reward).sum(1),
        }
        _compare(name, mdp.name, got, dp.expectation_backup(mdp, V, pi), mistakes)
        n += 1
    _passed(name, n)


def check_exact_v_pi(fn: Callable[..., Tensor]) -> None:
    """``fn(P [S,A,S], R [S,A], gamma, policy [S,A]) -> v_pi [S]`` (no terminal states)."""
    name, n = "exact_v_pi", 0
    for mdp in _cases():
        pi = _random_policy(n, mdp.n_states, mdp.n_actions)
        got = _call(name, fn, mdp.P.clone(), mdp.R.clone(), mdp.gamma, pi.clone())
        P_pi, r_pi = mdp.policy_matrices(pi)
        eye = torch.eye(mdp.n_states, dtype=torch.float64)
        mistakes = {
            "solved (I - P_pi) v = r_pi without the discount gamma": torch.linalg.lstsq(
                eye - P_pi + 1e-12 * eye, r_pi.unsqueeze(1)
            ).solution.squeeze(1),
            "used the transpose of P_pi (rows of P_pi are the current state s)": torch.linalg.solve(
                eye - mdp.gamma * P_pi.T, r_pi
            ),
            "returned r_pi, the one-step reward, instead of the value": r_pi,
            "weighted the actions uniformly instead of by pi(a|s) when forming P_pi and "
            "r_pi": torch.linalg.solve(eye - mdp.gamma * mdp.P.mean(1), mdp.R.mean(1)),
        }
        _compare(name, mdp.name, got, torch.linalg.solve(eye - mdp.gamma * P_pi, r_pi), mistakes)
        n += 1
    _passed(name, n)


# ------------------------------------------------------ chapter 2 exercises
def check_value_iteration_sweep(fn: Callable[..., Tensor]) -> None:
    """``fn(P [S,A,S], R [S,A], gamma, V [S]) -> V_new [S]``: one Bellman optimality sweep."""
    name, n = "value_iteration_sweep", 0
    for mdp in _cases():
        V = torch.linspace(2.0, -1.0, mdp.n_states, dtype=torch.float64)
        got = _call(name, fn, mdp.P.clone(), mdp.R.clone(), mdp.gamma, V.clone())
        Q = mdp.q_values(V)
        mistakes = {
            "forgot the discount gamma": (mdp.R + mdp.expected_next_values(V)).amax(1),
            "averaged over actions (that evaluates the random policy) instead of taking the "
            "max": Q.mean(1),
            "took the max over next states instead of the expectation under P": (
                mdp.R + mdp.gamma * V.amax()
            ).amax(1),
            "took the max of the immediate reward only, ignoring the next state's value": (
                mdp.R.amax(1)
            ),
            "returned the argmax (the greedy action) instead of the max (its value)": (
                Q.argmax(1).to(torch.float64)
            ),
            "ignored the action in the transitions (averaged P over actions): the next "
            "state depends on the action, use p(s'|s, a) of each action": (
                mdp.R + mdp.gamma * (mdp.P.mean(1) @ V)[:, None]
            ).amax(1),
            _STATE_REWARD: (
                mdp.R.mean(1, keepdim=True) + mdp.gamma * mdp.expected_next_values(V)
            ).amax(1),
        }
        _compare(name, mdp.name, got, dp.optimality_backup(mdp, V), mistakes)
        n += 1
    _passed(name, n)


def check_greedy_policy(fn: Callable[..., Tensor]) -> None:
    """``fn(P [S,A,S], R [S,A], gamma, V [S]) -> policy [S,A]``, one-hot greedy in ``q``."""
    name, n = "greedy_policy", 0
    for mdp in _cases():
        g = torch.Generator().manual_seed(n)
        V = torch.randn(mdp.n_states, generator=g, dtype=torch.float64) * 3
        got = _call(name, fn, mdp.P.clone(), mdp.R.clone(), mdp.gamma, V.clone())
        if tuple(got.shape) != (mdp.n_states, mdp.n_actions):
            raise CheckError(
                f"{name} must return a policy of shape [S, A] = "
                f"[{mdp.n_states}, {mdp.n_actions}], got {list(got.shape)}"
            )
        ties = dp.greedy_ties(mdp, V, 1e-9)
        chosen = got.detach().to(torch.float64)
        if not torch.allclose(chosen.sum(1), torch.ones(mdp.n_states, dtype=torch.float64)):
            raise CheckError(
                f"{name}: each row must be a probability distribution over actions "
                "(one-hot for a deterministic policy)"
            )
        wrong = ((chosen > 0) & ~ties).any(1)
        if wrong.any():
            s = int(torch.nonzero(wrong)[0])
            Q = mdp.q_values(V)
            a_got = int(chosen[s].argmax())
            hint = ""
            if a_got == int(mdp.R[s].argmax()):
                hint = " It looks like you maximised the immediate reward r(s, a) only."
            elif a_got == int(mdp.expected_next_values(V)[s].argmax()):
                hint = " It looks like you left out the immediate reward r(s, a)."
            raise CheckError(
                f"{name} on the {mdp.name}: in state {s} you chose action {a_got} with "
                f"q = {Q[s, a_got].item():.4f}, but action {int(Q[s].argmax())} has "
                f"q = {Q[s].max().item():.4f}.{hint}"
            )
        n += 1
    _passed(name, n)


# ------------------------------------------------- chapters 3 and 4 exercises
def _call_np(name: str, fn: Callable[..., Any], *args: Any) -> np.ndarray:
    out = _invoke(name, fn, *args)
    return np.asarray(out.detach().cpu() if isinstance(out, Tensor) else out, dtype=np.float64)


def _first_difference(
    name: str,
    case: str,
    got: np.ndarray,
    expected: np.ndarray,
    mistakes: dict[str, np.ndarray],
    what: str,
) -> None:
    """Raise a CheckError naming the first wrong entry and a matching classic mistake."""
    if got.shape != expected.shape:
        raise CheckError(
            f"{name} ({case}): expected shape {list(expected.shape)}, got {list(got.shape)}"
        )
    if np.allclose(got, expected, atol=_ATOL, rtol=0):
        return
    bad = tuple(int(i) for i in np.argwhere(np.abs(got - expected) > _ATOL)[0])
    message = (
        f"{name} ({case}): wrong at {what} {bad if len(bad) > 1 else bad[0]}: "
        f"expected {expected[bad]:.4f}, got {got[bad]:.4f}."
    )
    for mistake, wrong in mistakes.items():
        if wrong.shape == got.shape and np.allclose(got, wrong, atol=_ATOL, rtol=0):
            message += f" It looks like you {mistake}."
            break
    raise CheckError(message)


def check_discounted_returns(fn: Callable[..., Any]) -> None:
    """``fn(rewards [T], gamma) -> G [T]`` with ``G_t = R_{t+1} + gamma G_{t+1}``."""
    name, n = "discounted_returns", 0
    rng = np.random.default_rng(0)
    cases = [(np.array([1.0, 0.0, 2.0]), 0.5), (np.array([0.0, 0.0, 0.0, 1.0]), 0.9)]
    cases += [(rng.normal(size=int(rng.integers(2, 12))), float(g)) for g in (0.0, 0.7, 0.99, 1.0)]
    for rewards, gamma in cases:
        T = len(rewards)
        got = _call_np(name, fn, rewards.copy(), gamma)
        expected = np.array(
            [sum(gamma ** (k - t) * rewards[k] for k in range(t, T)) for t in range(T)]
        )
        whole = np.full(T, sum(gamma**k * rewards[k] for k in range(T)))
        mistakes = {
            "gave every step the whole episode's return G_0 instead of the return from that "
            "step on (reward-to-go)": whole,
            "did not discount": np.cumsum(rewards[::-1])[::-1],
            "discounted from the start of the episode (gamma^k with k counted from t=0, not "
            "from t)": np.array(
                [sum(gamma**k * rewards[k] for k in range(t, T)) for t in range(T)]
            ),
            "returned the rewards themselves": rewards,
        }
        _first_difference(
            name,
            f"rewards {np.round(rewards, 2).tolist()}, gamma {gamma}",
            got,
            expected,
            mistakes,
            "step t =",
        )
        n += 1
    _passed(name, n)


def _td_cases() -> list[dict[str, Any]]:
    """Transitions on a 5-state, 3-action table: ordinary, terminated, self-loop, gamma != alpha."""
    rng = np.random.default_rng(1)
    cases = []
    for k, (terminated, s, s2, alpha, gamma) in enumerate(
        [
            (False, 0, 1, 0.5, 0.9),
            (True, 2, 4, 0.1, 0.9),
            (False, 3, 3, 0.2, 0.95),
            (False, 1, 4, 0.3, 1.0),
            (True, 4, 0, 0.9, 0.5),
            (False, 2, 0, 0.05, 0.8),
        ]
    ):
        cases.append(
            {
                "Q": rng.normal(size=(5, 3)) * 3,
                "V": rng.normal(size=5) * 3,
                "s": s,
                "a": int(rng.integers(3)),
                "r": float(rng.normal()),
                "s_next": s2,
                "a_next": int(rng.integers(3)),
                "terminated": terminated,
                "alpha": alpha,
                "gamma": gamma,
                "label": f"case {k + 1}{' (terminated)' if terminated else ''}",
            }
        )
    return cases


def _moved(table: np.ndarray, index: Any, alpha: float, target: float) -> np.ndarray:
    """A copy of ``table`` with ``table[index]`` moved a step ``alpha`` towards ``target``."""
    out = table.copy()
    out[index] += alpha * (target - table[index])
    return out


def check_td0_update(fn: Callable[..., Any]) -> None:
    """``fn(V [S], s, r, s_next, terminated, alpha, gamma) -> V [S]`` after one TD(0) update."""
    name, n = "td0_update", 0
    for c in _td_cases():
        V, s, r, s2 = c["V"], c["s"], c["r"], c["s_next"]
        alpha, gamma, term = c["alpha"], c["gamma"], c["terminated"]
        got = _call_np(name, fn, V.copy(), s, r, s2, term, alpha, gamma)
        boot = 0.0 if term else V[s2]
        mistakes = {
            "bootstrapped from V(S') after the episode terminated (no terminal masking)": _moved(
                V, s, alpha, r + gamma * V[s2]
            ),
            "used the learning rate alpha as the discount in the TD target": _moved(
                V, s, alpha, r + alpha * boot
            ),
            "forgot the discount gamma": _moved(V, s, alpha, r + boot),
            "replaced V(S) by the TD target instead of moving it a step alpha towards it": _moved(
                V, s, 1.0, r + gamma * boot
            ),
            "updated the next state's value V(S') instead of V(S)": _moved(
                V, s2, alpha, r + gamma * boot
            ),
        }
        expected = _moved(V, s, alpha, r + gamma * boot)
        _first_difference(name, c["label"], got, expected, mistakes, "state")
        n += 1
    _passed(name, n)


def _check_control_update(name: str, fn: Callable[..., Any], sarsa: bool) -> int:
    n = 0
    for c in _td_cases():
        Q, s, a, r, s2, a2 = c["Q"], c["s"], c["a"], c["r"], c["s_next"], c["a_next"]
        alpha, gamma, term = c["alpha"], c["gamma"], c["terminated"]
        args = (s, a, r, s2, a2, term, alpha, gamma) if sarsa else (s, a, r, s2, term, alpha, gamma)
        got = _call_np(name, fn, Q.copy(), *args)
        q_next = Q[s2, a2] if sarsa else Q[s2].max()
        boot = 0.0 if term else q_next
        other = Q[s2].max() if sarsa else Q[s2, a2]  # what the other algorithm bootstraps from
        mistakes = {
            "bootstrapped from Q(S', .) after the episode terminated (no terminal masking)": _moved(
                Q, (s, a), alpha, r + gamma * q_next
            ),
            "used the learning rate alpha as the discount in the TD target": _moved(
                Q, (s, a), alpha, r + alpha * boot
            ),
            "forgot the discount gamma": _moved(Q, (s, a), alpha, r + boot),
            "replaced Q(S, A) by the TD target instead of moving it a step alpha towards it": (
                _moved(Q, (s, a), 1.0, r + gamma * boot)
            ),
            (
                "bootstrapped from max_a Q(S', a): that is Q-learning; SARSA uses Q(S', A') of "
                "the action it will take next"
                if sarsa
                else "bootstrapped from Q(S', A') of a sampled next action: that is SARSA; "
                "Q-learning uses max_a Q(S', a)"
            ): _moved(Q, (s, a), alpha, r + gamma * (0.0 if term else other)),
        }
        greedy = int(Q[s].argmax())
        if greedy != a:  # updating the greedy action instead is visible only then
            mistakes["updated the greedy action's value instead of the action actually taken"] = (
                _moved(Q, (s, greedy), alpha, r + gamma * boot)
            )
        expected = _moved(Q, (s, a), alpha, r + gamma * boot)
        _first_difference(name, c["label"], got, expected, mistakes, "(state, action)")
        n += 1
    return n


def check_q_learning_update(fn: Callable[..., Any]) -> None:
    """``fn(Q [S,A], s, a, r, s_next, terminated, alpha, gamma) -> Q [S,A]`` (one update)."""
    _passed("q_learning_update", _check_control_update("q_learning_update", fn, sarsa=False))


def check_sarsa_update(fn: Callable[..., Any]) -> None:
    """``fn(Q [S,A], s, a, r, s_next, a_next, terminated, alpha, gamma) -> Q [S,A]``."""
    _passed("sarsa_update", _check_control_update("sarsa_update", fn, sarsa=True))


def _draw_actions(
    name: str, fn: Callable[..., Any], q: np.ndarray, eps: float, seed: int, draws: int
) -> np.ndarray:
    """``draws`` actions of ``fn`` for ``q`` and ``eps``, all from one rng seeded ``seed``."""
    rng = np.random.default_rng(seed)

    def draw() -> np.ndarray:
        return np.array([int(fn(q.copy(), eps, rng)) for _ in range(draws)])

    return _invoke(name, draw, student=fn)


def _epsilon_greedy_diagnosis(freq: np.ndarray, greedy: int, eps: float) -> str:
    """Name the mistake that explains wrong action frequencies, or return ``""``."""
    A = len(freq)
    others = np.delete(freq, greedy)
    uniform_others = np.allclose(others, others.mean(), atol=0.02)
    eps_used = float(others.mean()) * A  # the exploration rate these frequencies imply
    if eps > 0 and freq[greedy] > 0.999:
        return (
            " It looks like you always act greedily (no exploration): without exploration "
            "the agent never tries actions that look worse now."
        )
    if eps < 1 and np.allclose(freq, 1 / A, atol=0.02):
        return " It looks like you always pick a random action (epsilon ignored)."
    if 0 < eps < 1 and abs(freq[greedy] - (1 - eps)) < 0.02:
        return (
            " It looks like the random action never picks the greedy one: a random action "
            "is uniform over ALL actions, so the greedy action gets 1 - epsilon + epsilon / A."
        )
    if uniform_others and abs(eps - 0.5) > 0.05 and abs(eps_used - (1 - eps)) < 0.03:
        return (
            " It looks like you explore with probability 1 - epsilon: the comparison is the "
            "wrong way round (explore when rng.random() < epsilon)."
        )
    if uniform_others and abs(eps_used - eps) > 0.03:
        return (
            f" It looks like you explore with probability {eps_used:.2f}, not epsilon = {eps}: "
            "use the epsilon argument, not a fixed or decayed value of your own."
        )
    return ""


def check_epsilon_greedy(fn: Callable[..., Any]) -> None:
    """``fn(q [A], epsilon, rng) -> action``: greedy with prob 1 - eps, else uniform.

    Checked by frequencies over many calls: ``P(a) = eps / A + (1 - eps) [a greedy]``,
    and for reproducibility: the same seeded ``rng`` must give the same actions.
    """
    name, n = "epsilon_greedy", 0
    for q, eps in (
        (np.array([0.0, 2.0, 1.0, -1.0]), 0.1),
        (np.array([5.0, 1.0, 0.5]), 0.5),
        (np.array([1.0, 3.0]), 0.0),
        (np.array([0.2, 0.1, 0.3, 0.0, -2.0]), 1.0),
    ):
        draws = 20_000
        actions = _draw_actions(name, fn, q, eps, n, draws)
        if actions.min() < 0 or actions.max() >= len(q):
            raise CheckError(f"{name} returned an action outside 0..{len(q) - 1}")
        freq = np.bincount(actions, minlength=len(q)) / draws
        expected = np.full(len(q), eps / len(q))
        expected[q.argmax()] += 1 - eps
        tol = 4 * np.sqrt(expected * (1 - expected) / draws) + 1e-3
        if np.all(np.abs(freq - expected) <= tol):
            n += 1
            continue
        raise CheckError(
            f"{name} with q = {q.tolist()} and epsilon = {eps}: action frequencies "
            f"{np.round(freq, 3).tolist()}, expected {np.round(expected, 3).tolist()}."
            + _epsilon_greedy_diagnosis(freq, int(q.argmax()), eps)
        )
    q = np.array([0.5, 1.5, -0.5, 1.0])
    first, second = (_draw_actions(name, fn, q, 0.5, 123, 200) for _ in range(2))
    if not np.array_equal(first, second):
        raise CheckError(
            f"{name}: two runs with the same seeded rng chose different actions. Draw every "
            "random number from the rng argument (rng.random(), rng.integers()), not from "
            "np.random or random, so that a seeded run is reproducible."
        )
    _passed(name, n)


# ------------------------------------------------------- chapter 5 exercises
def _dqn_batch(seed: int, B: int = 8, obs_dim: int = 4, n_actions: int = 3) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    terminated = torch.zeros(B)
    terminated[: B // 3] = 1.0
    return {
        "obs": torch.randn(B, obs_dim, generator=g),
        "actions": torch.randint(0, n_actions, (B,), generator=g),
        "rewards": torch.randn(B, generator=g),
        "next_obs": torch.randn(B, obs_dim, generator=g),
        "terminated": terminated[torch.randperm(B, generator=g)],
    }


def check_dqn_targets(fn: Callable[..., Any]) -> None:
    """``fn(rewards [B], next_q_target [B, A], terminated [B], gamma) -> targets [B]``:
    ``r + gamma * (1 - terminated) * max_a Q_target(s', a)``."""
    name, n = "dqn_targets", 0
    for seed in range(4):
        g = torch.Generator().manual_seed(seed)
        B, A = 10, 3
        rewards = torch.randn(B, generator=g)
        next_q = torch.randn(B, A, generator=g) * 5
        terminated = (torch.rand(B, generator=g) < 0.4).float()
        gamma = (0.99, 0.9, 0.5, 1.0)[seed]
        got = _call(name, fn, rewards.clone(), next_q.clone(), terminated.clone(), gamma)
        expected = rewards + gamma * (1 - terminated) * next_q.max(1).values
        mistakes = {
            "bootstrapped after termination (no terminal masking)": rewards
            + gamma * next_q.max(1).values,
            "averaged over next actions instead of taking the max": rewards
            + gamma * (1 - terminated) * next_q.mean(1),
            "forgot the discount gamma": rewards + (1 - terminated) * next_q.max(1).values,
            "masked with terminated instead of (1 - terminated)": rewards
            + gamma * terminated * next_q.max(1).values,
        }
        _compare(
            name,
            f"batch {seed}",
            got,
            expected,
            mistakes,
            what="sample",
        )
        n += 1
    _passed(name, n)


def check_dqn_loss(fn: Callable[..., Any]) -> None:
    """``fn(q_net, target_net, batch, gamma) -> loss`` (a scalar tensor), the mean squared TD
    error at the actions taken, with the target from ``target_net`` treated as a constant.

    Checked: the value, and the gradient with respect to the online network (the
    semi-gradient); the target network must receive no gradient.
    """
    import copy

    from rlcourse.nets import QNetwork

    name, n = "dqn_loss", 0
    for seed in range(3):
        torch.manual_seed(seed)
        q_net, target_net = QNetwork(4, 3, (16,)), QNetwork(4, 3, (16,))
        batch = _dqn_batch(seed)
        gamma = 0.9
        # reference: semi-gradient of the squared TD error
        ref_q = copy.deepcopy(q_net)
        q_taken = ref_q(batch["obs"]).gather(1, batch["actions"][:, None]).squeeze(1)
        with torch.no_grad():
            y = (
                batch["rewards"]
                + gamma * (1 - batch["terminated"]) * target_net(batch["next_obs"]).max(1).values
            )
        ref_loss = ((q_taken - y) ** 2).mean()
        ref_loss.backward()
        ref_grads = [p.grad.clone() for p in ref_q.parameters()]

        student_q, student_target = copy.deepcopy(q_net), copy.deepcopy(target_net)
        loss = _call(
            name, fn, student_q, student_target, {k: v.clone() for k, v in batch.items()}, gamma
        )
        if loss.dim() != 0:
            raise CheckError(
                f"{name} must return a scalar loss (the mean over the batch), got shape "
                f"{list(loss.shape)}"
            )
        with torch.no_grad():
            q_all = q_net(batch["obs"])
            td_error = q_taken.detach() - y
            online_y = (
                batch["rewards"]
                + gamma * (1 - batch["terminated"]) * q_net(batch["next_obs"]).max(1).values
            )
            unmasked_y = batch["rewards"] + gamma * target_net(batch["next_obs"]).max(1).values
            wrong_values = {
                "bootstrapped after termination (no terminal masking)": (
                    (q_taken.detach() - unmasked_y) ** 2
                ).mean(),
                "took the TD error at the greedy action instead of the action taken": (
                    (q_all.max(1).values - y) ** 2
                ).mean(),
                "computed the target with the online network instead of the target network": (
                    (q_taken.detach() - online_y) ** 2
                ).mean(),
                "returned the mean TD error itself: the update is not theta - alpha * TD "
                "error; minimise the squared TD error, whose gradient is TD error * grad "
                "Q(s, a)": td_error.mean(),
                "summed the squared TD errors over the batch; the loss is their mean": (
                    td_error**2
                ).sum(),
                "used the Huber loss (smooth L1); this exercise asks for the mean squared "
                "TD error": torch.nn.functional.smooth_l1_loss(q_taken.detach(), y),
            }
        value, expected = float(loss.detach()), float(ref_loss.detach())
        if abs(value - expected) > 1e-5:
            message = f"{name} (batch {seed}): loss {value:.5f}, expected {expected:.5f}."
            for mistake, wrong in wrong_values.items():
                if abs(value - float(wrong)) < 1e-5:
                    message += f" It looks like you {mistake}."
                    break
            raise CheckError(message)
        if not loss.requires_grad:
            raise CheckError(
                f"{name}: the loss has no gradient: compute Q(s, a) with q_net outside "
                "torch.no_grad()"
            )
        loss.backward()
        if any(p.grad is not None and p.grad.abs().sum() > 0 for p in student_target.parameters()):
            raise CheckError(
                f"{name}: the target network received a gradient: the TD target is not "
                "detached, so the gradient flows through the target. The TD target is a "
                "constant: compute it under torch.no_grad() (or .detach() it), and never "
                "train the target network directly"
            )
        grads = [
            p.grad if p.grad is not None else torch.zeros_like(p) for p in student_q.parameters()
        ]
        if any(not torch.allclose(a, b, atol=1e-5) for a, b in zip(grads, ref_grads, strict=True)):
            raise CheckError(
                f"{name}: the loss value is right but its gradient is not the "
                "semi-gradient: the TD target is not detached, so the gradient flows "
                "through the target. Detach the target (torch.no_grad()) so that only "
                "Q(s, a) is differentiated"
            )
        n += 1
    _passed(name, n)


# ------------------------------------------------------- chapter 7 exercises
def _rollout_case(seed: int, T: int = 6, N: int = 3) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    terminated = torch.zeros(T, N, dtype=torch.bool)
    truncated = torch.zeros(T, N, dtype=torch.bool)
    terminated[1, 0] = True  # env 0 ends (for good) at t = 1
    truncated[3, 1] = True  # env 1 hits a time limit at t = 3
    return {
        "rewards": torch.randn(T, N, generator=g),
        "values": torch.randn(T, N, generator=g),
        "next_values": torch.randn(T, N, generator=g),
        "terminated": terminated,
        "truncated": truncated,
        "gamma": (0.99, 0.9, 0.8)[seed % 3],
        "lam": (0.95, 0.8, 0.5)[seed % 3],
    }


def _gae_loop(
    c: dict[str, Any],
    next_values: Tensor | None = None,
    bootstrap: Tensor | None = None,
    carry: Tensor | None = None,
    decay: float | None = None,
) -> Tensor:
    """GAE of the rollout ``c`` with its parts replaceable, to reproduce wrong versions.

    ``bootstrap[t]``: whether step t bootstraps from ``next_values[t]``; ``carry[t]``: whether
    the trace runs on from step t + 1; ``decay``: the trace's decay per step (``gamma * lam``).
    """
    rewards, values = c["rewards"], c["values"]
    next_values = c["next_values"] if next_values is None else next_values
    bootstrap = ~c["terminated"] if bootstrap is None else bootstrap
    carry = ~(c["terminated"] | c["truncated"]) if carry is None else carry
    decay = c["gamma"] * c["lam"] if decay is None else decay
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        delta = rewards[t] + c["gamma"] * bootstrap[t] * next_values[t] - values[t]
        last = delta + decay * carry[t] * last
        advantages[t] = last
    return advantages


def check_gae(fn: Callable[..., Any]) -> None:
    """``fn(rewards, values, next_values, terminated, truncated, gamma, lam) -> advantages``,
    all ``[T, N]``: GAE that stops bootstrapping at termination, bootstraps from the final
    observation's value at truncation, and never carries the trace across an episode end."""
    from rlcourse.buffers import gae

    name, n = "gae", 0
    for seed in range(3):
        c = _rollout_case(seed)
        args = [
            c[k].clone() for k in ("rewards", "values", "next_values", "terminated", "truncated")
        ]
        got = _call(name, fn, *args, c["gamma"], c["lam"])
        expected = gae(*args, c["gamma"], c["lam"])
        terminated, truncated = c["terminated"], c["truncated"]
        always = torch.ones_like(terminated)
        shifted = torch.cat([c["values"][1:], c["next_values"][-1:]])  # values[t + 1]
        mistakes = {
            "ignored episode boundaries: the GAE trace must stop where an episode ends "
            "(terminated or truncated)": _gae_loop(c, bootstrap=always, carry=always),
            "bootstrapped after termination (no terminal masking)": _gae_loop(c, bootstrap=always),
            "did not bootstrap at a truncation: a time limit is not the end of the task": (
                _gae_loop(c, bootstrap=~(terminated | truncated))
            ),
            "carried the GAE trace across a truncation (episode boundary ignored there): a "
            "time limit still ends the episode, so the trace must stop; only the "
            "bootstrap from next_values continues": _gae_loop(c, carry=~terminated),
            "bootstrapped from values[t + 1] instead of next_values[t]: in a vectorised "
            "rollout values[t + 1] belongs to the next episode after a boundary": _gae_loop(
                c, next_values=shifted
            ),
            "decayed the trace by lam alone; it decays by gamma * lam per step": _gae_loop(
                c, decay=c["lam"]
            ),
            "decayed the trace by gamma alone; it decays by gamma * lam per step": _gae_loop(
                c, decay=c["gamma"]
            ),
            "returned the returns (advantages + values) instead of the advantages": (
                expected + c["values"]
            ),
        }
        _compare(
            name,
            f"rollout {seed}",
            got,
            expected,
            mistakes,
            what="(t, env)",
        )
        n += 1
    _passed(name, n)


def check_ppo_policy_loss(fn: Callable[..., Any]) -> None:
    """``fn(new_log_probs [B], old_log_probs [B], advantages [B], clip_coef) -> loss``: minus the
    mean clipped surrogate, with the ratio against the behaviour policy's log-probs."""
    from rlcourse.ppo import clipped_surrogate

    name, n = "ppo_policy_loss", 0
    for seed in range(4):
        g = torch.Generator().manual_seed(seed)
        old = torch.randn(32, generator=g) - 1.0
        new = (old + 0.5 * torch.randn(32, generator=g)).requires_grad_(True)
        adv = torch.randn(32, generator=g)
        eps = (0.2, 0.1, 0.3, 0.2)[seed]
        got = _call(name, fn, new, old.clone(), adv.clone(), eps)
        if got.dim() != 0:
            raise CheckError(
                f"{name} must return a scalar (the mean over the batch), got shape "
                f"{list(got.shape)}"
            )
        ratio = (new - old).exp()
        expected = -clipped_surrogate(ratio, adv, eps).mean()
        clipped_ratio = ratio.clamp(1 - eps, 1 + eps)
        mistakes = {
            "forgot the clipping (plain policy-gradient surrogate r * A)": -(ratio * adv).mean(),
            "took the max instead of the min of the two terms (that removes the pessimistic "
            "bound)": -torch.max(ratio * adv, clipped_ratio * adv).mean(),
            "used the log-ratio instead of the ratio pi/pi_old": -clipped_surrogate(
                new - old, adv, eps
            ).mean(),
            "returned the objective itself; the loss to minimise is its negative": (
                clipped_surrogate(ratio, adv, eps).mean()
            ),
            "clipped the advantage instead of the ratio": -torch.min(
                ratio * adv, ratio * adv.clamp(1 - eps, 1 + eps)
            ).mean(),
            "computed the ratio against the current policy (new_log_probs.detach()) instead "
            "of the behaviour policy's old_log_probs: the ratio is then always 1 and the "
            "clipping never acts": -adv.mean(),
            "turned the ratio upside down: it is pi / pi_old = exp(new_log_probs - "
            "old_log_probs)": -clipped_surrogate((old - new).exp(), adv, eps).mean(),
        }
        if abs(float(got.detach()) - float(expected.detach())) > 1e-5:
            message = (
                f"{name} (batch {seed}): loss {float(got.detach()):.5f}, expected "
                f"{float(expected.detach()):.5f}."
            )
            for mistake, wrong in mistakes.items():
                if abs(float(got.detach()) - float(wrong.detach())) < 1e-5:
                    message += f" It looks like you {mistake}."
                    break
            raise CheckError(message)
        if not got.requires_grad:
            raise CheckError(
                f"{name}: the loss has no gradient with respect to new_log_probs; "
                "do not detach the new policy's log-probabilities"
            )
        at_old = float(_call(name, fn, old.clone().requires_grad_(True), old, adv, eps).detach())
        if abs(at_old + float(adv.mean())) > 1e-5:
            raise CheckError(
                f"{name}: when the new policy equals the old one (ratio 1) the loss "
                "must be -mean(A)"
            )
        n += 1
    _passed(name, n)


# ------------------------------------------------------- chapter 6 exercises
def _n_step_returns(
    rewards: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    next_values: Tensor,
    gamma: float,
    *,
    end: bool = True,
    mask_terminal: bool = True,
    stop_at_ends: bool = True,
    stop_at_truncation: bool = True,
    bootstrap_truncation: bool = True,
) -> Tensor:
    """A2C's returns ``[T, N]``; the keywords make the classic mistakes."""
    T = rewards.shape[0]
    returns = torch.zeros_like(rewards)
    zero = torch.zeros_like(rewards[0])
    for t in reversed(range(T)):
        last = t == T - 1
        follow = (next_values[t] if end else zero) if last else returns[t + 1]
        if (stop_at_ends and stop_at_truncation) or last:
            truncation = next_values[t] if bootstrap_truncation else zero
            follow = torch.where(truncated[t], truncation, follow)
        if stop_at_ends or last:
            follow = torch.where(terminated[t], zero if mask_terminal else next_values[t], follow)
        returns[t] = rewards[t] + gamma * follow
    return returns


def check_n_step_returns(fn: Callable[..., Any]) -> None:
    """``fn(rewards, terminated, truncated, next_values, gamma) -> returns``, all ``[T, N]``:
    A2C's bootstrapped returns, ``G_t = r_t + gamma * (0 if terminated at t, V(s'_t) if
    truncated at t or t = T - 1, else G_{t+1})``."""
    name, n = "n_step_returns", 0
    for seed in range(4):
        g = torch.Generator().manual_seed(seed)
        T, N = 7, 5
        rewards = torch.randn(T, N, generator=g)
        u = torch.rand(T, N, generator=g)
        terminated, truncated = u < 0.15, (u >= 0.15) & (u < 0.3)
        terminated[-1, 0], truncated[-1, 1] = True, True  # ends at the rollout's last step too
        terminated[-1, 2] = truncated[-1, 2] = False
        next_values = torch.randn(T, N, generator=g) * 3
        gamma = (0.9, 0.99, 0.5, 0.8)[seed]
        args = (rewards, terminated, truncated, next_values)
        got = _call(name, fn, *[x.clone() for x in args], gamma)
        expected = _n_step_returns(*args, gamma)
        mistakes = {
            "did not bootstrap at the end of the rollout: the last step's return needs the "
            "critic's V(s') from next_values, the episode goes on": _n_step_returns(
                *args, gamma, end=False
            ),
            "bootstrapped after termination (no terminal masking)": _n_step_returns(
                *args, gamma, mask_terminal=False
            ),
            "carried the return across an episode end: after terminated or truncated, "
            "G_{t+1} belongs to the next episode": _n_step_returns(
                *args, gamma, stop_at_ends=False
            ),
            "carried the return across a truncation: a time limit ends the episode too, so "
            "G_t there is r_t + gamma V(final observation), not r_t + gamma G_{t+1}, which "
            "belongs to the next episode": _n_step_returns(*args, gamma, stop_at_truncation=False),
            "did not bootstrap at a truncation: a time limit is not the end of the task, "
            "so G_t there is r_t + gamma V(final observation)": _n_step_returns(
                *args, gamma, bootstrap_truncation=False
            ),
            "forgot the discount (gamma = 1)": _n_step_returns(*args, 1.0),
        }
        _compare(name, f"rollout {seed}", got, expected, mistakes, what="(t, env)")
        n += 1
    _passed(name, n)


def check_reinforce_loss(fn: Callable[..., Any]) -> None:
    """``fn(logits [T, A], actions [T], rewards [T], gamma) -> loss``: the REINFORCE loss of
    one complete episode, ``-mean_t log pi(a_t|s_t) G_t`` with the reward-to-go ``G_t``.

    Checked: the value, and the gradient with respect to the logits.
    """
    name, n = "reinforce_loss", 0
    for seed in range(4):
        g = torch.Generator().manual_seed(seed)
        T, A = 5 + seed, 3
        logits = torch.randn(T, A, generator=g)
        actions = torch.randint(0, A, (T,), generator=g)
        rewards = torch.randn(T, generator=g) + 0.5
        gamma = (0.99, 0.9, 0.5, 1.0)[seed]
        G = torch.zeros(T)
        running = 0.0
        for t in reversed(range(T)):  # reward-to-go, discounted from each step
            running = float(rewards[t]) + gamma * running
            G[t] = running
        log_pi = torch.log_softmax(logits, dim=1)
        taken = log_pi[torch.arange(T), actions]
        whole = torch.full((T,), float(G[0]))
        mistakes = {
            "gave every step the whole episode's return G_0 instead of the reward-to-go G_t": -(
                taken * whole
            ).mean(),
            "multiplied by log pi twice (log pi * log pi * G): the estimator is grad log pi * G": -(
                taken * taken * G
            ).mean(),
            "used log-probabilities of the greedy actions, not of the actions taken": -(
                log_pi.max(1).values * G
            ).mean(),
            "forgot the minus sign: minimising that loss would make good actions less likely": (
                taken * G
            ).mean(),
            "did not discount the reward-to-go": -(
                taken * rewards.flip(0).cumsum(0).flip(0)
            ).mean(),
            "discounted from the start of the episode (gamma^k with k counted from t=0, not "
            "from t)": -(taken * G * gamma ** torch.arange(T, dtype=torch.float32)).mean(),
            "used the probabilities pi(a|s) instead of the log-probabilities log pi(a|s): the "
            "score-function estimator is grad log pi * G": -(taken.exp() * G).mean(),
            "normalised the logits over the time steps (dim 0) instead of over the actions "
            "(dim 1)": -(torch.log_softmax(logits, dim=0)[torch.arange(T), actions] * G).mean(),
            "summed over the time steps; the loss is the mean over the episode's steps": -(
                taken * G
            ).sum(),
        }
        student_logits = logits.clone().requires_grad_(True)
        got = _call(name, fn, student_logits, actions.clone(), rewards.clone(), gamma)
        expected = -(taken * G).mean()
        if got.dim() != 0:
            raise CheckError(f"{name} must return a scalar loss, got shape {list(got.shape)}")
        value = float(got.detach())
        if abs(value - float(expected)) > 1e-5:
            message = f"{name} (episode {seed}): loss {value:.5f}, expected {float(expected):.5f}."
            for mistake, wrong in mistakes.items():
                if abs(value - float(wrong)) < 1e-5:
                    message += f" It looks like you {mistake}."
                    break
            raise CheckError(message)
        got.backward()
        ref_logits = logits.clone().requires_grad_(True)
        (-(torch.log_softmax(ref_logits, 1)[torch.arange(T), actions] * G).mean()).backward()
        if student_logits.grad is None or not torch.allclose(
            student_logits.grad, ref_logits.grad, atol=1e-5
        ):
            raise CheckError(
                f"{name}: the value is right but the gradient is not: the returns "
                "must be constants (no gradient through G_t)"
            )
        n += 1
    _passed(name, n)


# ------------------------------------------------------ chapter 8 exercises
def _cartpole_reference(
    state: Tensor,
    actions: Tensor,
    *,
    force_sign: float = 1.0,
    semi_implicit: bool = False,
    old_state_termination: bool = False,
    threshold: float | None = None,
) -> tuple[Tensor, Tensor]:
    """gymnasium's CartPole step on ``state [4, N]``; the keywords make the classic mistakes."""
    from rlcourse.envs.batched import TorchCartPole as C

    x, x_dot, theta, theta_dot = state
    force = force_sign * (2 * actions - 1).to(state.dtype) * C.force_mag
    xacc, thetaacc = C.accelerations(theta, theta_dot, force)
    if semi_implicit:
        new_x_dot, new_theta_dot = x_dot + C.tau * xacc, theta_dot + C.tau * thetaacc
        new = torch.stack(
            (x + C.tau * new_x_dot, new_x_dot, theta + C.tau * new_theta_dot, new_theta_dot)
        )
    else:
        new = torch.stack(
            (
                x + C.tau * x_dot,
                x_dot + C.tau * xacc,
                theta + C.tau * theta_dot,
                theta_dot + C.tau * thetaacc,
            )
        )
    judged = state if old_state_termination else new
    limit = C.theta_threshold_radians if threshold is None else threshold
    terminated = (judged[0].abs() > C.x_threshold) | (judged[2].abs() > limit)
    return new, terminated


def check_cartpole_step(fn: Callable[..., Any]) -> None:
    """``fn(state [4, N], actions [N]) -> (next_state [4, N], terminated [N])``: one Euler step
    of gymnasium's CartPole-v1 for N copies at once, in float64."""
    name, n = "cartpole_step", 0
    for seed in range(4):
        g = torch.Generator().manual_seed(seed)
        N = 64
        scale = torch.tensor([2.5, 2.0, 0.25, 2.5], dtype=torch.float64).view(4, 1)
        state = (torch.rand(4, N, generator=g, dtype=torch.float64) * 2 - 1) * scale
        actions = torch.randint(0, 2, (N,), generator=g)
        out = _invoke(name, fn, state.clone(), actions.clone())
        if not (isinstance(out, tuple) and len(out) == 2):
            raise CheckError(f"{name} must return a pair (next_state, terminated)")
        got, got_term = out
        expected, expected_term = _cartpole_reference(state, actions)
        case = f"batch {seed} of {N} random states"
        _compare(
            name,
            case,
            got,
            expected,
            {
                "pushed the wrong way: action 1 pushes the cart right (+force_mag), action 0 "
                "left": _cartpole_reference(state, actions, force_sign=-1.0)[0],
                "used semi-implicit Euler (positions from the *new* velocities); gymnasium's "
                "CartPole-v1 updates every variable from the old state": _cartpole_reference(
                    state, actions, semi_implicit=True
                )[0],
            },
            what="(variable, copy)",
        )
        if not isinstance(got_term, Tensor) or got_term.dtype != torch.bool:
            raise CheckError(f"{name}: terminated must be a bool tensor of shape [{N}]")
        mistakes = {
            "judged termination on the state before the step; it is the new state that "
            "leaves the track or tips over": _cartpole_reference(
                state, actions, old_state_termination=True
            )[1],
            "compared the angle with 12 (degrees) instead of 12 * 2 * pi / 360 radians": (
                _cartpole_reference(state, actions, threshold=12.0)[1]
            ),
        }
        _compare(name, case + " (terminated)", got_term, expected_term, mistakes, what="copy")
        n += 1
    _passed(name, n)


def check_clip_per_agent(fn: Callable[..., Any]) -> None:
    """``fn(grads, max_norm) -> clipped``: ``grads`` a list of gradients ``[K, ...]`` of K
    stacked agents; each agent's gradient (all its tensors together) scaled down to norm
    ``max_norm`` if above it, as ``clip_grad_norm_`` would do for that agent alone."""
    name, n = "clip_per_agent", 0

    def clip(grads: list[Tensor], max_norm: float, mode: str = "per agent") -> list[Tensor]:
        K = grads[0].shape[0]
        if mode == "global":
            norm = torch.sqrt(sum(g.square().sum() for g in grads)).expand(K)
        elif mode == "per tensor":
            return [
                g
                * (max_norm / (g.flatten(1).norm(dim=1) + 1e-6))
                .clamp(max=1.0)
                .view(-1, *[1] * (g.dim() - 1))
                for g in grads
            ]
        else:
            norm = torch.sqrt(sum(g.flatten(1).square().sum(1) for g in grads))
        scale = max_norm / (norm + 1e-6)
        if mode != "scale up":
            scale = scale.clamp(max=1.0)
        return [g * scale.view(-1, *[1] * (g.dim() - 1)) for g in grads]

    for seed in range(4):
        g = torch.Generator().manual_seed(seed)
        K = 4
        sizes = [(K, 8, 3), (K, 8), (K, 1, 8), (K, 1)]
        # agents' gradients of very different sizes: some above max_norm, some below
        spread = torch.tensor([0.05, 3.0, 0.4, 12.0], dtype=torch.float64)
        grads = [
            torch.randn(*s, generator=g, dtype=torch.float64) * spread.view(-1, *[1] * (len(s) - 1))
            for s in sizes
        ]
        max_norm = 1.0
        got = _invoke(name, fn, [x.clone() for x in grads], max_norm)
        if not isinstance(got, list | tuple) or len(got) != len(grads):
            raise CheckError(f"{name} must return a list of {len(grads)} tensors, one per input")
        expected = clip(grads, max_norm)
        for i, (x, e) in enumerate(zip(got, expected, strict=True)):
            if not isinstance(x, Tensor):
                raise CheckError(f"{name}: item {i} of the result is not a tensor")
            mistakes = {
                "clipped by the norm over all agents together: one agent's large gradient then "
                "shrinks every other agent's step; each agent needs its own norm": clip(
                    grads, max_norm, "global"
                )[i],
                "clipped each parameter tensor separately; an agent's norm is over all its "
                "tensors together": clip(grads, max_norm, "per tensor")[i],
                "scaled small gradients up to max_norm; clipping only ever scales down": clip(
                    grads, max_norm, "scale up"
                )[i],
            }
            _compare(name, f"case {seed}, tensor {i}", x, e, mistakes, what="(agent, entry)")
        n += 1
    _passed(name, n)
