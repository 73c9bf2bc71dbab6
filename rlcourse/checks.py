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

Every message is in the package's language (:mod:`rlcourse.i18n`): each sentence, each
mistake and each case name goes through ``tr``, and a fragment is translated before it is
put into a sentence.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rlcourse import dp, tabular
from rlcourse.i18n import N_, PASSED, RECOGNISED, tr
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
    return TabularMDP(P, R, gamma, name=tr("random MDP (seed {seed})", seed=seed))


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
    return TabularMDP(P, R, 0.5, name=tr("two-state MDP"))


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
    message = tr(
        "{name} is not implemented yet -- replace the `raise NotImplementedError` line "
        "with your code.",
        name=name,
    )
    return NotImplementedError(message + (tr(" Hint: {hint}", hint=hint) if hint else ""))


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
        raise CheckError(
            tr("{name} raised {error}: {message}", name=name, error=type(err).__name__, message=err)
        ) from err


def _call(name: str, fn: Callable[..., Any], *args: Any) -> Tensor:
    out = _invoke(name, fn, *args)
    if not isinstance(out, Tensor):
        raise CheckError(
            tr("{name} must return a torch tensor, got {type}", name=name, type=type(out).__name__)
        )
    return out


def _compare(
    name: str,
    case: str,
    got: Tensor,
    expected: Tensor,
    mistakes: dict[str, Tensor],
    what: str | None = None,
) -> None:
    """Raise a CheckError naming the first wrong entry and any matching classic mistake
    (``what``: the name of an entry's index, translated; default "state")."""
    if tuple(got.shape) != tuple(expected.shape):
        raise CheckError(
            tr(
                "{name} on the {case}: expected a result of shape {expected}, got {got}",
                name=name,
                case=case,
                expected=list(expected.shape),
                got=list(got.shape),
            )
        )
    got, expected = got.detach().to(torch.float64), expected.detach().to(torch.float64)
    mistakes = {k: v.detach().to(torch.float64) for k, v in mistakes.items()}
    if torch.allclose(got, expected, atol=_ATOL, rtol=0):
        return
    bad = torch.nonzero((got - expected).abs() > _ATOL)[0].tolist()
    where = ", ".join(str(i) for i in bad)
    message = tr(
        "{name} on the {case}: wrong at {what} {where}: expected {expected:.4f}, got {got:.4f}.",
        name=name,
        case=case,
        what=tr("state") if what is None else what,
        where=where,
        expected=expected[tuple(bad)].item(),
        got=got[tuple(bad)].item(),
    )
    for mistake, wrong in mistakes.items():
        if tuple(wrong.shape) == tuple(got.shape) and torch.allclose(
            got, wrong, atol=_ATOL, rtol=0
        ):
            message += _looks_like(mistake)
            break
    raise CheckError(message)


def _looks_like(mistake: str) -> str:
    """The sentence that names a classic mistake (``mistake`` translated already)."""
    return tr(" It looks like you {mistake}.", mistake=mistake)


def _passed(name: str, n: int) -> None:
    print(tr(PASSED, name=name, n=n))


# ------------------------------------------------------ chapter 1 exercises
_STATE_REWARD = (
    "indexed the reward by the state alone (one r(s) for every action, e.g. a row mean of R): "
    "r(s, a) depends on the action, use R[s, a]"
)


def _scalar(name: str, out: Any) -> float:
    """The student's result as a float; a CheckError for anything that is not one number."""
    try:
        t = torch.as_tensor(out.detach() if isinstance(out, Tensor) else out, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise CheckError(
            tr("{name} must return a number, got {type}", name=name, type=type(out).__name__)
        ) from None
    if t.numel() != 1:
        raise CheckError(
            tr(
                "{name} must return one number, got a result of shape {shape}",
                name=name,
                shape=list(t.shape),
            )
        )
    return float(t.reshape(()))


def _expected_return(
    P_pi: Tensor,
    r_pi: Tensor,
    gamma: float,
    start: Tensor,
    horizon: int,
    *,
    transposed: bool = False,
    first_discounted: bool = False,
    on_arrival: bool = False,
) -> float:
    """``E[sum_{t<H} gamma^t R_{t+1} | S_0 ~ start]`` by moving the state distribution forward;
    the keywords make the classic mistakes."""
    d, G = start.clone(), 0.0
    for t in range(horizon):
        if on_arrival:
            d = d @ P_pi
        G += gamma ** (t + 1 if first_discounted else t) * float(d @ r_pi)
        if not on_arrival:
            d = P_pi @ d if transposed else d @ P_pi
    return G


def check_expected_return(fn: Callable[..., Any]) -> None:
    """``fn(P [S,A,S], R [S,A], gamma, policy [S,A], start [S], horizon) -> float``: the
    expected discounted sum of the first ``horizon`` rewards, ``E[sum_{t=0}^{H-1} gamma^t
    R_{t+1}]``, with ``S_0`` drawn from ``start`` and actions from ``policy``."""
    name, n = "expected_return", 0
    cases = [(_two_state_mdp(), torch.tensor([1.0, 0.0], dtype=torch.float64), 3)]
    for seed, horizon in zip(range(4), (1, 4, 10, 25), strict=True):
        mdp = _random_mdp(seed, gamma=(0.9, 0.8, 1.0, 0.95)[seed])
        g = torch.Generator().manual_seed(seed + 2000)
        start = torch.rand(mdp.n_states, generator=g, dtype=torch.float64)
        cases.append((mdp, start / start.sum(), horizon))
    cases.append((_random_mdp(7), torch.full((6,), 1 / 6, dtype=torch.float64), 0))
    for mdp, start, horizon in cases:
        pi = _random_policy(n, mdp.n_states, mdp.n_actions)
        args = (mdp.P.clone(), mdp.R.clone(), mdp.gamma, pi.clone(), start.clone(), horizon)
        got = _scalar(name, _invoke(name, fn, *args))
        P_pi, r_pi = mdp.policy_matrices(pi)
        P_u, r_u = mdp.policy_matrices(mdp.uniform_policy())
        r_state = (pi * mdp.R.mean(1, keepdim=True)).sum(1)
        g = mdp.gamma
        mistakes = {
            tr(
                "multiplied the distribution from the wrong side (P_pi @ d): the next distribution "
                "is d_{t+1}(s') = sum_s d_t(s) P_pi[s, s'], that is d @ P_pi"
            ): _expected_return(P_pi, r_pi, g, start, horizon, transposed=True),
            tr(
                "discounted the first reward: R_{t+1} is weighted by gamma^t, so R_1 (t = 0) is "
                "not discounted"
            ): _expected_return(P_pi, r_pi, g, start, horizon, first_discounted=True),
            tr("summed one reward too many: a horizon H counts the rewards R_1, ..., R_H"): (
                _expected_return(P_pi, r_pi, g, start, horizon + 1)
            ),
            tr("summed one reward too few: a horizon H counts the rewards R_1, ..., R_H"): (
                _expected_return(P_pi, r_pi, g, start, max(horizon - 1, 0))
            ),
            tr("forgot the discount gamma"): _expected_return(P_pi, r_pi, 1.0, start, horizon),
            tr(
                "paid the reward after moving: R_{t+1} = r(S_t, A_t) belongs to the state the "
                "agent acts in, so weight r_pi by d_t before moving the distribution on"
            ): _expected_return(P_pi, r_pi, g, start, horizon, on_arrival=True),
            tr("weighted the actions uniformly instead of by pi(a|s)"): _expected_return(
                P_u, r_u, g, start, horizon
            ),
            tr(_STATE_REWARD): _expected_return(P_pi, r_state, g, start, horizon),
        }
        expected = _expected_return(P_pi, r_pi, g, start, horizon)
        case = tr("{mdp}, horizon {horizon}, gamma {gamma}", mdp=mdp.name, horizon=horizon, gamma=g)
        if abs(got - expected) > _ATOL:
            message = tr(
                "{name} on the {case}: expected {expected:.6f}, got {got:.6f}.",
                name=name,
                case=case,
                expected=expected,
                got=got,
            )
            for mistake, wrong in mistakes.items():
                if abs(got - wrong) <= _ATOL:
                    message += _looks_like(mistake)
                    break
            raise CheckError(message)
        n += 1
    _passed(name, n)


def _state_action_matrix(mdp: TabularMDP, next_policy: Tensor) -> Tensor:
    """``M [S*A, S*A]`` with ``M[(s, a), (s', a')] = p(s'|s, a) pi(a'|s')``."""
    S, A = mdp.n_states, mdp.n_actions
    return torch.einsum("sat,tb->satb", mdp.P, next_policy).reshape(S * A, S * A)


def _solve_q(mdp: TabularMDP, M: Tensor, R: Tensor) -> Tensor:
    """Solve ``(I - gamma M) q = R`` over state-action pairs: ``[S, A]``."""
    eye = torch.eye(M.shape[0], dtype=torch.float64)
    return torch.linalg.solve(eye - mdp.gamma * M, R.reshape(-1)).view(mdp.n_states, -1)


def check_exact_q_pi(fn: Callable[..., Tensor]) -> None:
    """``fn(P [S,A,S], R [S,A], gamma, policy [S,A]) -> q_pi [S, A]`` (no terminal states)."""
    name, n = "exact_q_pi", 0
    for mdp in _cases():
        pi = _random_policy(n, mdp.n_states, mdp.n_actions)
        got = _call(name, fn, mdp.P.clone(), mdp.R.clone(), mdp.gamma, pi.clone())
        v_pi = dp.exact_policy_evaluation(mdp, pi)
        expected = dp.q_from_v(mdp, v_pi)
        M = _state_action_matrix(mdp, pi)
        S, A = mdp.n_states, mdp.n_actions
        at_current = torch.einsum("sat,sb->satb", mdp.P, pi).reshape(S * A, S * A)
        v_star = dp.value_iteration(mdp, theta=1e-13).V
        mistakes = {
            tr(
                "took the max over the next actions: that is the optimality equation, whose "
                "solution is q_*, not the expectation equation of the policy"
            ): dp.q_from_v(mdp, v_star),
            tr("weighted the next actions uniformly instead of by pi(a'|s')"): dp.q_from_v(
                mdp, dp.exact_policy_evaluation(mdp, mdp.uniform_policy())
            ),
            tr(
                "weighted the next action by pi(a'|s) of the current state; it is pi(a'|s') of the "
                "next state s'"
            ): _solve_q(mdp, at_current, mdp.R),
            tr(
                "used the transpose of the state-action transition matrix (rows are the pair "
                "(s, a) you are in, columns the next pair (s', a'))"
            ): _solve_q(mdp, M.T, mdp.R),
            tr("returned r(s, a), the one-step reward, instead of q_pi"): mdp.R,
            tr("returned v_pi(s) for every action: q_pi(s, a) fixes the first action a"): (
                v_pi[:, None].expand(S, A)
            ),
            tr(_STATE_REWARD): _solve_q(mdp, M, mdp.R.mean(1, keepdim=True).expand(S, A)),
        }
        _compare(name, mdp.name, got, expected, mistakes, what=tr("(state, action)"))
        n += 1
    _passed(name, n)


# ------------------------------------------------------ chapter 2 exercises
def _chain_mdp(gamma: float = 0.9, length: int = 12) -> TabularMDP:
    """An episodic MDP where only a complete evaluation finds the optimal policy.

    Two actions. State 0: action 0 cashes in +1 and ends the episode, action 1 walks into
    a chain 1, ..., ``length - 1`` of states whose two actions are identical (exact ties)
    and that pays +10 at its end, ``length - 1`` steps later. State ``length``: action 0
    cashes in +1, action 1 pays nothing now but leads to state ``length + 1``, whose actions
    both pay +5 and end. The last state is terminal. With gamma 0.9 walking is optimal in
    both (``0.9**11 * 10 = 3.1`` and ``0.9 * 5 = 4.5`` against 1); the immediate reward
    says cash in, and so does an evaluation of fewer than ``length - 1`` sweeps at state 0.
    """
    D, E, T = length, length + 1, length + 2
    S = length + 3
    P = torch.zeros(S, 2, S, dtype=torch.float64)
    R = torch.zeros(S, 2, dtype=torch.float64)
    P[0, 0, T], R[0, 0], P[0, 1, 1] = 1.0, 1.0, 1.0
    for s in range(1, length - 1):
        P[s, :, s + 1] = 1.0
    P[length - 1, :, T], R[length - 1] = 1.0, 10.0
    P[D, 0, T], R[D, 0], P[D, 1, E] = 1.0, 1.0, 1.0
    P[E, :, T], R[E] = 1.0, 5.0
    P[T, :, T] = 1.0
    terminal = torch.zeros(S, dtype=torch.bool)
    terminal[T] = True
    return TabularMDP(
        P, R, gamma, terminal, name=tr("delayed-reward chain (gamma {gamma})", gamma=gamma)
    )


def _sweeps(mdp: TabularMDP, backup: Callable[[Tensor], Tensor], k: int | None) -> Tensor:
    """``k`` sweeps of ``backup`` from zero, or (``k=None``) sweeps to its fixed point."""
    V = torch.zeros(mdp.n_states, dtype=torch.float64)
    for _ in range(k or 100_000):
        V_new = backup(V)
        if k is None and (V_new - V).abs().max() < 1e-13:
            return V_new
        V = V_new
    return V


def _one_hot_policy(name: str, case: str, policy: Any, mdp: TabularMDP) -> Tensor:
    """The student's deterministic policy ``[S, A]`` as float64, or a CheckError saying why not."""
    if not isinstance(policy, Tensor):
        raise CheckError(tr("{name} must return the policy as a torch tensor [S, A]", name=name))
    if tuple(policy.shape) != (mdp.n_states, mdp.n_actions):
        raise CheckError(
            tr(
                "{name} on the {case}: the policy must have shape [S, A] = [{S}, {A}], got {got}",
                name=name,
                case=case,
                S=mdp.n_states,
                A=mdp.n_actions,
                got=list(policy.shape),
            )
        )
    pi = policy.detach().to(torch.float64)
    one_hot = ((pi == 0) | (pi == 1)).all(1) & (pi.sum(1) == 1)
    if not one_hot.all():
        s = int(torch.nonzero(~one_hot)[0])
        raise CheckError(
            tr(
                "{name} on the {case}: row {s} of the policy is {row}; return a deterministic "
                "policy, one-hot rows (a 1 on the chosen action)",
                name=name,
                case=case,
                s=s,
                row=pi[s].tolist(),
            )
        )
    return pi


def _check_optimal_policy(
    name: str, case: str, mdp: TabularMDP, pi: Tensor, q_star: Tensor
) -> str | None:
    """The message for the first state whose chosen action is not optimal (naming the
    classic mistake behind it), or None when every chosen action is optimal."""
    best = q_star >= q_star.amax(1, keepdim=True) - _ATOL
    wrong = ((pi > 0) & ~best).any(1)
    if not wrong.any():
        return None
    s = int(torch.nonzero(wrong)[0])
    a = int(pi[s].argmax())
    message = tr(
        "{name} on the {case}: in state {s} your policy takes action {a}, with q*(s, a) = "
        "{q:.4f}, but action {best} has {best_q:.4f}.",
        name=name,
        case=case,
        s=s,
        a=a,
        q=q_star[s, a].item(),
        best=int(q_star[s].argmax()),
        best_q=q_star[s].max().item(),
    )
    if _greedy_on_reward(mdp, pi):
        message += tr(
            " It looks like you maximised the immediate reward r(s, a) only: the greedy "
            "action maximises r(s, a) + gamma sum_s' p(s'|s, a) v(s'), which counts what follows."
        )
    return message


def _greedy_on_reward(mdp: TabularMDP, pi: Tensor) -> bool:
    """Whether every action ``pi`` takes maximises the immediate reward ``r(s, a)``."""
    on_reward = mdp.R >= mdp.R.amax(1, keepdim=True) - 1e-12
    return not bool(((pi > 0) & ~on_reward).any())


def _value_iteration_mistakes(mdp: TabularMDP) -> dict[str, Tensor]:
    """What value iteration with each classic mistake returns on ``mdp``."""

    def optimal(V: Tensor) -> Tensor:
        return dp.optimality_backup(mdp, V)

    def max_next_state(V: Tensor) -> Tensor:
        return (mdp.R + mdp.gamma * V.amax()).amax(1)

    def action_blind(V: Tensor) -> Tensor:
        return (mdp.R + mdp.gamma * (mdp.P.mean(1) @ V)[:, None]).amax(1)

    def state_reward(V: Tensor) -> Tensor:
        return (mdp.R.mean(1, keepdim=True) + mdp.gamma * mdp.expected_next_values(V)).amax(1)

    mistakes = {
        tr(
            "stopped after {sweeps}: keep sweeping until the largest change "
            "max_s |V_new(s) - V(s)| of a sweep is below theta",
            sweeps=tr("{k} sweeps", k=k) if k > 1 else tr("{k} sweep", k=k),
        ): _sweeps(mdp, optimal, k)
        for k in (1, 2, 3)
    }
    average = tr("averaged over the actions (that evaluates the random policy) instead of max")
    mistakes[average] = dp.exact_policy_evaluation(mdp, mdp.uniform_policy())
    if mdp.gamma < 1:  # these fixed points exist for gamma < 1 only
        mistakes[tr("took the max over next states instead of the expectation under P")] = _sweeps(
            mdp, max_next_state, None
        )
        mistakes[
            tr(
                "ignored the action in the transitions (averaged P over actions): the next "
                "state depends on the action, use p(s'|s, a) of each action"
            )
        ] = _sweeps(mdp, action_blind, None)
        mistakes[tr(_STATE_REWARD)] = _sweeps(mdp, state_reward, None)
    return mistakes


def check_value_iteration(fn: Callable[..., Any]) -> None:
    """``fn(P [S,A,S], R [S,A], gamma, theta) -> (V [S], policy [S, A])``: value iteration
    until the largest change of a sweep is below ``theta``, and a greedy policy."""
    name, n = "value_iteration", 0
    theta = 1e-10
    for mdp in [*_cases(), _chain_mdp(0.9), _chain_mdp(1.0)]:
        out = _invoke(name, fn, mdp.P.clone(), mdp.R.clone(), mdp.gamma, theta)
        if not (isinstance(out, tuple | list) and len(out) == 2):
            raise CheckError(tr("{name} must return a pair (V, policy)", name=name))
        V, policy = out
        if not isinstance(V, Tensor):
            raise CheckError(tr("{name} must return V as a torch tensor [S]", name=name))
        v_star = dp.value_iteration(mdp, theta=1e-13).V
        right = V.shape == v_star.shape and torch.allclose(V.detach().double(), v_star, atol=_ATOL)
        _compare(name, mdp.name, V, v_star, {} if right else _value_iteration_mistakes(mdp))
        pi = _one_hot_policy(name, mdp.name, policy, mdp)
        message = _check_optimal_policy(name, mdp.name, mdp, pi, dp.q_from_v(mdp, v_star))
        if message:
            raise CheckError(message)
        n += 1
    _passed(name, n)


def check_q_policy_iteration(fn: Callable[..., Any]) -> None:
    """``fn(P [S,A,S], R [S,A], gamma, policy [S,A]) -> (Q [S,A], policy [S,A])``: policy
    iteration on action values from a deterministic ``policy``, to ``q_*`` and a policy
    greedy in it that keeps the current action wherever that ties with the best."""
    name, n = "q_policy_iteration", 0
    chain = _chain_mdp(0.9)
    S = chain.n_states
    cash_in = torch.zeros(S, 2, dtype=torch.float64)
    cash_in[:, 0] = 1.0
    optimal_late = torch.zeros(S, 2, dtype=torch.float64)
    optimal_late[:, 1] = 1.0  # walks where walking is best, action 1 wherever actions tie
    labels = {"cash in": tr("from 'cash in everywhere'"), "ties": tr("ties")}
    cases = [(chain, cash_in, "cash in"), (chain, optimal_late, "ties")]
    for seed in range(4):
        mdp = _random_mdp(seed)
        g = torch.Generator().manual_seed(seed + 3000)
        actions = torch.randint(0, mdp.n_actions, (mdp.n_states,), generator=g)
        cases.append((mdp, torch.nn.functional.one_hot(actions, mdp.n_actions).double(), ""))
    for mdp, start, label in cases:
        case = tr("{mdp}, {label}", mdp=mdp.name, label=labels[label]) if label else mdp.name
        out = _invoke(name, fn, mdp.P.clone(), mdp.R.clone(), mdp.gamma, start.clone())
        if not (isinstance(out, tuple | list) and len(out) == 2):
            raise CheckError(tr("{name} must return a pair (Q, policy)", name=name))
        Q, policy = out
        if not isinstance(Q, Tensor):
            raise CheckError(tr("{name} must return Q as a torch tensor [S, A]", name=name))
        pi = _one_hot_policy(name, case, policy, mdp)
        q_star = dp.q_from_v(mdp, dp.value_iteration(mdp, theta=1e-13).V)
        message = _check_optimal_policy(name, case, mdp, pi, q_star)
        if message:
            if not _greedy_on_reward(mdp, pi):
                message += tr(
                    " Policy iteration may stop only when the policy is greedy in its own "
                    "q_pi: evaluate each policy to convergence (an exact solve, or sweeps "
                    "until the change is below a small theta). With values that are not yet "
                    "q_pi, a policy can look stable and still be poor."
                )
            raise CheckError(message)
        if label == "ties" and not torch.equal(pi, start):
            s = int(torch.nonzero((pi != start).any(1))[0])
            raise CheckError(
                tr(
                    "{name} on the {case}: you started from an optimal policy and changed "
                    "state {s}'s action {before} to {after}, though both have q = {q:.4f}. Keep "
                    "the current action wherever it ties with the best; a rule that may pick "
                    "another of the tied actions can switch between equally good policies for "
                    "ever and never see a stable policy (Sutton & Barto, Exercise 4.4).",
                    name=name,
                    case=case,
                    s=s,
                    before=int(start[s].argmax()),
                    after=int(pi[s].argmax()),
                    q=q_star[s].max().item(),
                )
            )
        q_start = _solve_q(mdp, _state_action_matrix(mdp, start), mdp.R)
        mistakes = {
            tr("returned the immediate rewards R instead of q"): mdp.R,
            tr(
                "returned the action values of the policy you started from, not of the final policy"
            ): q_start,
        }
        _compare(name, case, Q, q_star, mistakes, what=tr("(state, action)"))
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
            tr(
                "{name} ({case}): expected shape {expected}, got {got}",
                name=name,
                case=case,
                expected=list(expected.shape),
                got=list(got.shape),
            )
        )
    if np.allclose(got, expected, atol=_ATOL, rtol=0):
        return
    bad = tuple(int(i) for i in np.argwhere(np.abs(got - expected) > _ATOL)[0])
    message = tr(
        "{name} ({case}): wrong at {what} {where}: expected {expected:.4f}, got {got:.4f}.",
        name=name,
        case=case,
        what=what,
        where=bad if len(bad) > 1 else bad[0],
        expected=expected[bad],
        got=got[bad],
    )
    for mistake, wrong in mistakes.items():
        if wrong.shape == got.shape and np.allclose(got, wrong, atol=_ATOL, rtol=0):
            message += _looks_like(mistake)
            break
    raise CheckError(message)


def _episode_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """``G_t = R_{t+1} + gamma G_{t+1}`` of every step ``t`` (``rewards[t]`` holds ``R_{t+1}``)."""
    G, returns = 0.0, np.zeros(len(rewards))
    for t in reversed(range(len(rewards))):
        G = rewards[t] + gamma * G
        returns[t] = G
    return returns


def _first_visit_mc(
    V: np.ndarray,
    counts: np.ndarray,
    states: list[int],
    rewards: list[float],
    gamma: float,
    mistake: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """First-visit MC with sample averages on one episode (``states`` S_0..S_T, new arrays),
    or a classic mistake."""
    V, counts = V.copy(), counts.copy()
    r = np.asarray(rewards, dtype=np.float64)
    G = _episode_returns(r, 1.0 if mistake == "undiscounted" else gamma)
    if mistake == "whole":
        G = np.full(len(r), G[0])
    elif mistake == "skips":  # G_t built from rewards[t + 1:], as if rewards[t] held R_t
        G = np.append(_episode_returns(r[1:], gamma), 0.0)
    G = np.append(G, 0.0)  # G_T = 0, used only by the "terminal" mistake
    T = len(r) + (mistake == "terminal")  # S_T, where the episode ended, has no return
    first: dict[int, int] = {}
    for t, s in enumerate(states[:T]):
        if mistake == "last" or s not in first:
            first[s] = t
    visits = range(T) if mistake == "every" else sorted(first.values())
    for t in visits:
        s = states[t]
        counts[s] = 1 if mistake == "reset" else counts[s] + 1
        step = 1.0 / (counts[s] + 1) if mistake == "plus-one" else 1.0 / counts[s]
        V[s] += step * (G[t] - V[s])
    return V, counts


def _mc_episodes(seed: int, S: int, n: int, T_max: int = 9) -> list[tuple[list[int], list[float]]]:
    """``n`` random episodes ``(states, rewards)``: ``T + 1`` states over ``0..S-2`` with
    revisits, ending in the terminal state ``S - 1``, and ``T`` rewards."""
    rng = np.random.default_rng(seed)
    episodes = []
    for _ in range(n):
        T = int(rng.integers(3, T_max + 1))
        states = [int(s) for s in rng.integers(0, S - 1, size=T)]
        states[-1] = states[0]  # at least one state visited twice
        episodes.append(([*states, S - 1], [round(float(x), 3) for x in rng.normal(size=T)]))
    return episodes


def check_first_visit_mc(fn: Callable[..., Any]) -> None:
    """``fn(V [S], counts [S], states [T + 1], rewards [T], gamma) -> V [S]``: first-visit MC
    with sample averages on one episode that ended in ``states[T]``, ``counts`` updated in place.

    Checked on sequences of episodes (the same ``V`` and ``counts`` carried from one to the
    next), against the reference and the classic mistakes.
    """
    name, n = "first_visit_mc_update", 0
    hand = [([0, 1, 0, 2, 4], [1.0, 0.0, 2.0, 3.0]), ([2, 2, 1, 3, 4], [0.0, 1.0, -1.0, 2.0])]
    sequences = [(np.zeros(5), np.zeros(5, dtype=np.int64), hand, 0.5)]  # state 4 is terminal
    rng = np.random.default_rng(3)
    for seed, gamma in ((0, 1.0), (1, 0.9), (2, 0.7)):
        V0 = np.round(rng.normal(size=6), 2)
        counts0 = rng.integers(0, 4, size=6)
        sequences.append((V0, counts0, _mc_episodes(seed, 6, 4), gamma))
    mistakes = {
        "every": tr(
            "updated V(s) at every visit of s: first-visit MC uses only the return that "
            "follows the first visit in each episode"
        ),
        "last": tr(
            "used the return of the last visit to s in the episode instead of the first "
            "(a dict of returns filled forwards keeps the last one)"
        ),
        "whole": tr(
            "gave every state the whole episode's return G_0 instead of the return from "
            "its first visit on"
        ),
        "undiscounted": tr("did not discount the rewards (G_t = R_{t+1} + gamma G_{t+1})"),
        "skips": tr(
            "left out R_{t+1} from G_t: rewards[t] holds R_{t+1}, the reward that follows "
            "S_t, so the return from S_t starts with rewards[t]"
        ),
        "reset": tr(
            "did not keep the counts: N(s) must count every return of s so far, over all "
            "episodes (update counts in place), so that V(s) is their average"
        ),
        "plus-one": tr(
            "stepped by 1 / (N + 1): count the new return first, then move V(s) by "
            "1 / N(s) towards it"
        ),
        "terminal": tr(
            "updated S_T too, the state where the episode ended: it has no return to "
            "learn (states[T] is there only to say where the episode ended)"
        ),
    }
    for k, (V0, counts0, episodes, gamma) in enumerate(sequences):
        V, counts = V0.astype(np.float64), counts0.astype(np.int64)
        ref = (V.copy(), counts.copy())
        wrong = {m: (V.copy(), counts.copy()) for m in mistakes}
        for e, (states, rewards) in enumerate(episodes):
            ref = _first_visit_mc(*ref, states, rewards, gamma)
            wrong = {m: _first_visit_mc(*wrong[m], states, rewards, gamma, m) for m in mistakes}
            got = _call_np(name, fn, V, counts, list(states), list(rewards), gamma)
            case = tr(
                "sequence {k}, episode {e}: states {states}, rewards {rewards}, gamma {gamma}",
                k=k + 1,
                e=e + 1,
                states=states,
                rewards=rewards,
                gamma=gamma,
            )
            _first_difference(
                name,
                case,
                got,
                ref[0],
                {mistakes[m]: wrong[m][0] for m in mistakes},
                tr("state"),
            )
            if not np.array_equal(counts, ref[1]):
                like = [mistakes[m] for m in mistakes if np.array_equal(counts, wrong[m][1])]
                raise CheckError(
                    tr(
                        "{name} ({case}): counts after the episode should be {expected}, got "
                        "{got}: add 1 to counts[s] for the first visit of each state s, in place.",
                        name=name,
                        case=case,
                        expected=ref[1].tolist(),
                        got=counts.tolist(),
                    )
                    + (_looks_like(like[0]) if like else "")
                )
            V = got
            n += 1
    _passed(name, n)


def _n_step_td(
    V: np.ndarray,
    states: list[int],
    rewards: list[float],
    n: int,
    alpha: float,
    gamma: float,
    mistake: str = "",
) -> np.ndarray:
    """n-step TD on one terminated episode (``states`` S_0..S_T), or a classic mistake."""
    V, T = V.copy(), len(rewards)
    start = V.copy()  # the values before the episode, for the "offline" mistake
    discount = alpha if mistake == "alpha" else gamma
    last = T - n if mistake == "tail" else T - 1  # the last tau updated
    for tau in range(last + 1):
        end = min(tau + n, T)  # the return stops at the end of the episode
        if mistake == "skips":  # R_i read as rewards[i]: R_{tau+1} .. R_{tau+n}, index guarded
            G = sum(discount ** (i - tau - 1) * rewards[i] for i in range(tau + 1, min(end + 1, T)))
        else:  # rewards[i] holds R_{i+1}: weight gamma^(i - tau)
            G = sum(
                discount ** (i - tau + (mistake == "first")) * rewards[i] for i in range(tau, end)
            )
        source = start if mistake == "offline" else V
        if tau + n < T:
            G += discount ** (n - 1 if mistake == "n-1" else n) * source[states[tau + n]]
        elif mistake == "terminal":
            G += discount ** (end - tau) * source[states[T]]
        V[states[tau]] += alpha * (G - V[states[tau]])
    return V


def check_n_step_td_episode(fn: Callable[..., Any]) -> None:
    """``fn(V [S], states [T + 1], rewards [T], n, alpha, gamma) -> V [S]``: n-step TD on one
    episode that terminated in ``states[T]``, updates in the book's order."""
    name, n_checks = "n_step_td_episode", 0
    cases: list[tuple[np.ndarray, list[int], list[float], int, float, float]] = []
    chain = np.zeros(7)
    chain[6] = 5.0  # the terminal state's entry holds junk that must never be read
    cases.append((chain, [3, 4, 5, 6], [0.0, 0.0, 1.0], 2, 1.0, 0.5))
    rng = np.random.default_rng(5)
    for n, alpha, gamma, T in (
        (3, 0.5, 0.9, 8),
        (1, 0.3, 0.8, 6),
        (2, 0.4, 1.0, 9),
        (20, 0.2, 0.9, 7),
    ):
        V = np.round(rng.normal(size=6), 2)
        states = [int(s) for s in rng.integers(0, 5, size=T)]
        states[2] = states[n % T] = states[0]  # revisits, so that the order of updates matters
        rewards = [round(float(x), 2) for x in rng.normal(size=T)]
        cases.append((V, [*states, 5], rewards, n, alpha, gamma))  # state 5 is terminal
    mistakes = {
        "tail": tr(
            "left out the last updates of the episode: the states whose n steps run past "
            "the end still need their update, with the return up to the end (the book's loop goes "
            "on after termination until tau = T - 1)"
        ),
        "terminal": tr(
            "bootstrapped from V(S_T) of the terminal state: where the n steps reach the "
            "end of the episode the return has no bootstrap term (v(terminal) = 0)"
        ),
        "offline": tr(
            "computed the targets from the values from before the episode: V(S_tau) is "
            "updated at step tau + n - 1, and later targets bootstrap from the values updated "
            "by then"
        ),
        "n-1": tr(
            "discounted the bootstrap by gamma^(n-1): V(S_{tau+n}) comes n steps later, so "
            "its weight is gamma^n"
        ),
        "skips": tr(
            "summed the wrong rewards: rewards[t] holds R_{t+1}, so the n-step return of "
            "S_tau is rewards[tau] + gamma rewards[tau + 1] + ... + gamma^(n-1) "
            "rewards[tau + n - 1]"
        ),
        "first": tr("discounted the first reward R_{tau+1}: it comes with weight gamma^0 = 1"),
        "alpha": tr("used the learning rate alpha as the discount in the n-step return"),
    }
    for k, (V, states, rewards, n, alpha, gamma) in enumerate(cases):
        got = _call_np(name, fn, V.copy(), list(states), list(rewards), n, alpha, gamma)
        expected = _n_step_td(V, states, rewards, n, alpha, gamma)
        wrong = {
            text: _n_step_td(V, states, rewards, n, alpha, gamma, m) for m, text in mistakes.items()
        }
        case = tr(
            "case {k}: states {states}, rewards {rewards}, n {n}, alpha {alpha}, gamma {gamma}",
            k=k + 1,
            states=states,
            rewards=rewards,
            n=n,
            alpha=alpha,
            gamma=gamma,
        )
        _first_difference(name, case, got, expected, wrong, tr("state"))
        n_checks += 1
    _passed(name, n_checks)


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
                "label": (
                    tr("case {k} (terminated)", k=k + 1) if terminated else tr("case {k}", k=k + 1)
                ),
            }
        )
    return cases


def _moved(table: np.ndarray, index: Any, alpha: float, target: float) -> np.ndarray:
    """A copy of ``table`` with ``table[index]`` moved a step ``alpha`` towards ``target``."""
    out = table.copy()
    out[index] += alpha * (target - table[index])
    return out


def _control_cases(ties: bool) -> list[dict[str, Any]]:
    """The transitions of :func:`_td_cases` with an epsilon each and a second table ``Q2``
    whose best action in ``S'`` differs from Q's; with ``ties``, ``Q(S', .)`` has tied best
    actions in two cases (as when Q starts at zeros)."""
    rng = np.random.default_rng(2)
    cases = []
    for k, (c, eps) in enumerate(zip(_td_cases(), (0.1, 0.3, 0.2, 0.5, 0.0, 1.0), strict=True)):
        Q, s2 = c["Q"], c["s_next"]
        Q2 = Q + rng.normal(size=Q.shape) * 2
        if Q2[s2].argmax() == Q[s2].argmax():  # the two tables disagree on the best action
            Q2[s2, Q[s2].argmax()] = Q2[s2].min() - 1.0
        if ties and k in (0, 3):
            Q[s2, :2] = Q[s2].max() + 0.5
        cases.append({**c, "Q2": Q2, "epsilon": eps})
    return cases


def check_expected_sarsa_update(fn: Callable[..., Any]) -> None:
    """``fn(Q [S,A], s, a, r, s_next, terminated, alpha, gamma, epsilon) -> Q [S,A]``: one
    Expected SARSA update, ``Q(S,A) += alpha [R + gamma sum_a pi(a|S') Q(S',a) - Q(S,A)]``
    with ``pi`` epsilon-greedy on ``Q`` (the greedy mass split among tied actions)."""
    name, n = "expected_sarsa_update", 0
    for c in _control_cases(ties=True):
        Q, s, a, r, s2 = c["Q"], c["s"], c["a"], c["r"], c["s_next"]
        alpha, gamma, term, eps = c["alpha"], c["gamma"], c["terminated"], c["epsilon"]
        got = _call_np(name, fn, Q.copy(), s, a, r, s2, term, alpha, gamma, eps)
        q2, A = Q[s2], Q.shape[1]
        greedy = (q2 == q2.max()) / (q2 == q2.max()).sum()  # the greedy policy, ties split
        pi = tabular.epsilon_greedy_probs(q2[None], np.array([eps]))[0]
        # the policies that classic mistakes average Q(S', .) over
        wrong_policies = {
            tr(
                "bootstrapped from max_a Q(S', a): that is Q-learning; Expected SARSA averages "
                "Q(S', a) over the epsilon-greedy policy"
            ): np.eye(A)[q2.argmax()],
            tr(
                "gave the greedy probability 1 - epsilon to each of the tied best actions: split "
                "it among them, so that the probabilities sum to 1"
            ): eps / A + (1 - eps) * (q2 == q2.max()),
            tr("averaged Q(S', a) uniformly over the actions (epsilon ignored)"): np.full(A, 1 / A),
            tr(
                "weighted the actions with epsilon and 1 - epsilon swapped: pi(a|S') = epsilon / A "
                "+ (1 - epsilon) for a greedy action"
            ): (1 - eps) / A + eps * greedy,
            tr(
                "gave the greedy action 1 - epsilon only: it also gets epsilon / A from exploring, "
                "so that the probabilities sum to 1"
            ): np.where(greedy > 0, (1 - eps) * greedy, eps / A),
        }
        boot = 0.0 if term else float(pi @ q2)
        mistakes = {
            tr("bootstrapped from Q(S', .) after the episode terminated (no terminal masking)"): (
                _moved(Q, (s, a), alpha, r + gamma * float(pi @ q2))
            ),
            tr("used the learning rate alpha as the discount in the TD target"): _moved(
                Q, (s, a), alpha, r + alpha * boot
            ),
        }
        for mistake, wrong in wrong_policies.items():
            mistakes[mistake] = _moved(Q, (s, a), alpha, r + gamma * (0 if term else wrong @ q2))
        if int(Q[s].argmax()) != a:
            mistakes[
                tr("updated the greedy action's value instead of the action actually taken")
            ] = _moved(Q, (s, int(Q[s].argmax())), alpha, r + gamma * boot)
        expected = _moved(Q, (s, a), alpha, r + gamma * boot)
        if (q2 == q2.max()).sum() > 1:
            case = tr(
                "{case}, epsilon {epsilon}, tied best actions in S'", case=c["label"], epsilon=eps
            )
        else:
            case = tr("{case}, epsilon {epsilon}", case=c["label"], epsilon=eps)
        _first_difference(name, case, got, expected, mistakes, tr("(state, action)"))
        n += 1
    _passed(name, n)


def _double_q_tables(
    Q1: np.ndarray, Q2: np.ndarray, table: int, s: int, a: int, alpha: float, target: float
) -> np.ndarray:
    """``[2, S, A]``: both tables, with ``Q_table(s, a)`` moved a step alpha towards ``target``."""
    both = np.stack([Q1, Q2])
    both[table] = _moved(both[table], (s, a), alpha, target)
    return both


def check_double_q_update(fn: Callable[..., Any]) -> None:
    """``fn(Q1 [S,A], Q2 [S,A], s, a, r, s_next, terminated, alpha, gamma, update_first)
    -> (Q1, Q2)``: one Double Q-learning update. ``update_first`` (the coin flip) updates Q1
    towards ``R + gamma Q2(S', argmax_a Q1(S', a))``, else Q2 with the roles swapped."""
    name, n = "double_q_update", 0
    for k, c in enumerate(_control_cases(ties=False)):
        Q1, Q2, s, a, r, s2 = c["Q"], c["Q2"], c["s"], c["a"], c["r"], c["s_next"]
        alpha, gamma, term = c["alpha"], c["gamma"], c["terminated"]
        first = k % 2 == 0  # the coin: True updates Q1
        out = _invoke(name, fn, Q1.copy(), Q2.copy(), s, a, r, s2, term, alpha, gamma, first)
        if not isinstance(out, tuple | list) or len(out) != 2:
            raise CheckError(
                tr(
                    "{name} must return the two tables (Q1, Q2), got {type}",
                    name=name,
                    type=type(out),
                )
            )
        got = np.stack([np.asarray(t, dtype=np.float64) for t in out])
        i = 0 if first else 1  # the table this case updates, and the other one
        update, other = (Q1, Q2) if first else (Q2, Q1)
        live = 0.0 if term else 1.0
        target = r + live * gamma * other[s2, update[s2].argmax()]  # Q_other(S', argmax Q_i)
        other_target = r + live * gamma * update[s2, other[s2].argmax()]  # roles swapped
        wrong_targets = {
            tr("bootstrapped after the episode terminated (no terminal masking)"): r
            + gamma * other[s2, update[s2].argmax()],
            tr("used the learning rate alpha as the discount in the TD target"): r
            + live * alpha * other[s2, update[s2].argmax()],
            tr(
                "bootstrapped from the max of the table being updated: that is Q-learning, with "
                "its maximisation bias; select A* = argmax_a with the table you update and "
                "evaluate it with the other one"
            ): r + live * gamma * update[s2].max(),
            tr(
                "bootstrapped from the max of the other table: its own maximum is just as biased; "
                "evaluate the other table at A*, the action the updated table selects"
            ): r + live * gamma * other[s2].max(),
            tr(
                "selected A* with the other table and evaluated it with the table being updated "
                "(the roles swapped): select with the table you update, evaluate with the "
                "other"
            ): other_target,
            tr(
                "bootstrapped from the sum Q1 + Q2: the sum is what the agent acts on, the target "
                "selects with one table and evaluates with the other"
            ): r + live * gamma * (Q1[s2] + Q2[s2]).max(),
        }
        mistakes = {
            m: _double_q_tables(Q1, Q2, i, s, a, alpha, t) for m, t in wrong_targets.items()
        }
        mistakes[
            tr(
                "updated the other table: update_first=True updates Q1 (bootstrapping from Q2), "
                "False updates Q2 (bootstrapping from Q1)"
            )
        ] = _double_q_tables(Q1, Q2, 1 - i, s, a, alpha, other_target)
        both = _double_q_tables(Q1, Q2, i, s, a, alpha, target)
        both[1 - i] = _moved(both[1 - i], (s, a), alpha, other_target)
        mistakes[tr("updated both tables: each step updates one of them, chosen by the coin")] = (
            both
        )
        expected = _double_q_tables(Q1, Q2, i, s, a, alpha, target)
        case = tr("{case}, update_first={first}", case=c["label"], first=first)
        _first_difference(name, case, got, expected, mistakes, tr("(table, state, action)"))
        n += 1
    _passed(name, n)


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
        return tr(
            " It looks like you always act greedily (no exploration): without exploration "
            "the agent never tries actions that look worse now."
        )
    if eps < 1 and np.allclose(freq, 1 / A, atol=0.02):
        return tr(" It looks like you always pick a random action (epsilon ignored).")
    if 0 < eps < 1 and abs(freq[greedy] - (1 - eps)) < 0.02:
        return tr(
            " It looks like the random action never picks the greedy one: a random action "
            "is uniform over ALL actions, so the greedy action gets 1 - epsilon + epsilon / A."
        )
    if uniform_others and abs(eps - 0.5) > 0.05 and abs(eps_used - (1 - eps)) < 0.03:
        return tr(
            " It looks like you explore with probability 1 - epsilon: the comparison is the "
            "wrong way round (explore when rng.random() < epsilon)."
        )
    if uniform_others and abs(eps_used - eps) > 0.03:
        return tr(
            " It looks like you explore with probability {rate:.2f}, not epsilon = {epsilon}: "
            "use the epsilon argument, not a fixed or decayed value of your own.",
            rate=eps_used,
            epsilon=eps,
        )
    return ""


def _tie_diagnosis(freq: np.ndarray, tied: np.ndarray, eps: float, tol: np.ndarray) -> str:
    """Name a wrong tie-breaking rule from action frequencies where ``tied`` actions tie."""
    A = len(freq)
    for a in tied:  # all the greedy mass on one of the tied actions
        one = np.full(A, eps / A)
        one[a] += 1 - eps
        if np.all(np.abs(freq - one) <= tol):
            first = tr(" (np.argmax returns the first)") if a == tied[0] else ""
            return tr(
                " It looks like you break ties by always taking action {a} of the tied best "
                "actions {tied}{first}: with Q initialised to zeros every state "
                "would then take the same action. Choose uniformly among all actions of "
                "highest value, e.g. rng.choice(np.flatnonzero(q == q.max())).",
                a=a,
                tied=tied.tolist(),
                first=first,
            )
    return ""


def check_epsilon_greedy(fn: Callable[..., Any]) -> None:
    """``fn(q [A], epsilon, rng) -> action``: greedy with prob 1 - eps, else uniform.

    Checked by frequencies over many calls: ``P(a) = eps / A + (1 - eps) [a greedy] / k``
    with ties among ``k`` best actions broken uniformly at random, and for reproducibility:
    the same seeded ``rng`` must give the same actions.
    """
    name, n = "epsilon_greedy", 0
    for q, eps in (
        (np.array([0.0, 2.0, 1.0, -1.0]), 0.1),
        (np.array([5.0, 1.0, 0.5]), 0.5),
        (np.array([1.0, 3.0]), 0.0),
        (np.array([0.2, 0.1, 0.3, 0.0, -2.0]), 1.0),
        (np.array([1.0, 3.0, 3.0, 0.0]), 0.1),  # a tie
        (np.zeros(4), 0.0),  # all tied, as when Q starts at zeros
    ):
        draws = 20_000
        actions = _draw_actions(name, fn, q, eps, n, draws)
        if actions.min() < 0 or actions.max() >= len(q):
            raise CheckError(
                tr("{name} returned an action outside 0..{last}", name=name, last=len(q) - 1)
            )
        freq = np.bincount(actions, minlength=len(q)) / draws
        expected = tabular.epsilon_greedy_probs(q[None], np.array([eps]))[0]
        tol = 4 * np.sqrt(expected * (1 - expected) / draws) + 1e-3
        if np.all(np.abs(freq - expected) <= tol):
            n += 1
            continue
        tied = np.flatnonzero(q == q.max())
        diagnosis = (
            _tie_diagnosis(freq, tied, eps, tol)
            if len(tied) > 1
            else _epsilon_greedy_diagnosis(freq, int(q.argmax()), eps)
        )
        message = tr(
            "{name} with q = {q} and epsilon = {epsilon}: action frequencies {got}, "
            "expected {expected}.",
            name=name,
            q=q.tolist(),
            epsilon=eps,
            got=np.round(freq, 3).tolist(),
            expected=np.round(expected, 3).tolist(),
        )
        raise CheckError(message + diagnosis)
    q = np.array([0.5, 1.5, -0.5, 1.0])
    first, second = (_draw_actions(name, fn, q, 0.5, 123, 200) for _ in range(2))
    if not np.array_equal(first, second):
        raise CheckError(
            tr(
                "{name}: two runs with the same seeded rng chose different actions. Draw every "
                "random number from the rng argument (rng.random(), rng.integers()), not from "
                "np.random or random, so that a seeded run is reproducible.",
                name=name,
            )
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
            tr("bootstrapped after termination (no terminal masking)"): rewards
            + gamma * next_q.max(1).values,
            tr("averaged over next actions instead of taking the max"): rewards
            + gamma * (1 - terminated) * next_q.mean(1),
            tr("forgot the discount gamma"): rewards + (1 - terminated) * next_q.max(1).values,
            tr("masked with terminated instead of (1 - terminated)"): rewards
            + gamma * terminated * next_q.max(1).values,
        }
        _compare(name, tr("batch {seed}", seed=seed), got, expected, mistakes, what=tr("sample"))
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
                tr(
                    "{name} must return a scalar loss (the mean over the batch), got shape {shape}",
                    name=name,
                    shape=list(loss.shape),
                )
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
                tr("bootstrapped after termination (no terminal masking)"): (
                    (q_taken.detach() - unmasked_y) ** 2
                ).mean(),
                tr("took the TD error at the greedy action instead of the action taken"): (
                    (q_all.max(1).values - y) ** 2
                ).mean(),
                tr("computed the target with the online network instead of the target network"): (
                    (q_taken.detach() - online_y) ** 2
                ).mean(),
                tr(
                    "returned the mean TD error itself: the update is not theta - alpha * TD "
                    "error; minimise the squared TD error, whose gradient is TD error * grad "
                    "Q(s, a)"
                ): td_error.mean(),
                tr("summed the squared TD errors over the batch; the loss is their mean"): (
                    td_error**2
                ).sum(),
                tr(
                    "used the Huber loss (smooth L1); this exercise asks for the mean squared "
                    "TD error"
                ): torch.nn.functional.smooth_l1_loss(q_taken.detach(), y),
            }
        value, expected = float(loss.detach()), float(ref_loss.detach())
        if abs(value - expected) > 1e-5:
            message = tr(
                "{name} (batch {seed}): loss {value:.5f}, expected {expected:.5f}.",
                name=name,
                seed=seed,
                value=value,
                expected=expected,
            )
            for mistake, wrong in wrong_values.items():
                if abs(value - float(wrong)) < 1e-5:
                    message += _looks_like(mistake)
                    break
            raise CheckError(message)
        if not loss.requires_grad:
            raise CheckError(
                tr(
                    "{name}: the loss has no gradient: compute Q(s, a) with q_net outside "
                    "torch.no_grad()",
                    name=name,
                )
            )
        loss.backward()
        if any(p.grad is not None and p.grad.abs().sum() > 0 for p in student_target.parameters()):
            raise CheckError(
                tr(
                    "{name}: the target network received a gradient: the TD target is not "
                    "detached, so the gradient flows through the target. The TD target is a "
                    "constant: compute it under torch.no_grad() (or .detach() it), and never "
                    "train the target network directly",
                    name=name,
                )
            )
        grads = [
            p.grad if p.grad is not None else torch.zeros_like(p) for p in student_q.parameters()
        ]
        if any(not torch.allclose(a, b, atol=1e-5) for a, b in zip(grads, ref_grads, strict=True)):
            raise CheckError(
                tr(
                    "{name}: the loss value is right but its gradient is not the "
                    "semi-gradient: the TD target is not detached, so the gradient flows "
                    "through the target. Detach the target (torch.no_grad()) so that only "
                    "Q(s, a) is differentiated",
                    name=name,
                )
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
    # env 2 fails on the time limit's last step (CartPole's pole falling at step 500):
    # gymnasium then reports both flags; terminated wins, no bootstrap
    terminated[4, 2] = truncated[4, 2] = True
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
            tr(
                "ignored episode boundaries: the GAE trace must stop where an episode ends "
                "(terminated or truncated)"
            ): _gae_loop(c, bootstrap=always, carry=always),
            tr("bootstrapped after termination (no terminal masking)"): _gae_loop(
                c, bootstrap=always
            ),
            tr("did not bootstrap at a truncation: a time limit is not the end of the task"): (
                _gae_loop(c, bootstrap=~(terminated | truncated))
            ),
            tr(
                "bootstrapped at a step that is both terminated and truncated (a mask like "
                "~terminated | truncated): an episode that terminates on the time limit's last "
                "step has terminated, so nothing is bootstrapped there"
            ): _gae_loop(c, bootstrap=~terminated | truncated),
            tr(
                "carried the GAE trace across a truncation (episode boundary ignored there): a "
                "time limit still ends the episode, so the trace must stop; only the "
                "bootstrap from next_values continues"
            ): _gae_loop(c, carry=~terminated),
            tr(
                "bootstrapped from values[t + 1] instead of next_values[t]: in a vectorised "
                "rollout values[t + 1] belongs to the next episode after a boundary"
            ): _gae_loop(c, next_values=shifted),
            tr("decayed the trace by lam alone; it decays by gamma * lam per step"): _gae_loop(
                c, decay=c["lam"]
            ),
            tr("decayed the trace by gamma alone; it decays by gamma * lam per step"): _gae_loop(
                c, decay=c["gamma"]
            ),
            tr("returned the returns (advantages + values) instead of the advantages"): (
                expected + c["values"]
            ),
        }
        _compare(
            name, tr("rollout {seed}", seed=seed), got, expected, mistakes, what=tr("(t, env)")
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
                tr(
                    "{name} must return a scalar (the mean over the batch), got shape {shape}",
                    name=name,
                    shape=list(got.shape),
                )
            )
        ratio = (new - old).exp()
        expected = -clipped_surrogate(ratio, adv, eps).mean()
        clipped_ratio = ratio.clamp(1 - eps, 1 + eps)
        mistakes = {
            tr("forgot the clipping (plain policy-gradient surrogate r * A)"): -(
                ratio * adv
            ).mean(),
            tr(
                "took the max instead of the min of the two terms (that removes the pessimistic "
                "bound)"
            ): -torch.max(ratio * adv, clipped_ratio * adv).mean(),
            tr("used the log-ratio instead of the ratio pi/pi_old"): -clipped_surrogate(
                new - old, adv, eps
            ).mean(),
            tr("returned the objective itself; the loss to minimise is its negative"): (
                clipped_surrogate(ratio, adv, eps).mean()
            ),
            tr("clipped the advantage instead of the ratio"): -torch.min(
                ratio * adv, ratio * adv.clamp(1 - eps, 1 + eps)
            ).mean(),
            tr(
                "computed the ratio against the current policy (new_log_probs.detach()) instead "
                "of the behaviour policy's old_log_probs: the ratio is then always 1 and the "
                "clipping never acts"
            ): -adv.mean(),
            tr(
                "turned the ratio upside down: it is pi / pi_old = exp(new_log_probs - "
                "old_log_probs)"
            ): -clipped_surrogate((old - new).exp(), adv, eps).mean(),
        }
        if abs(float(got.detach()) - float(expected.detach())) > 1e-5:
            message = tr(
                "{name} (batch {seed}): loss {value:.5f}, expected {expected:.5f}.",
                name=name,
                seed=seed,
                value=float(got.detach()),
                expected=float(expected.detach()),
            )
            for mistake, wrong in mistakes.items():
                if abs(float(got.detach()) - float(wrong.detach())) < 1e-5:
                    message += _looks_like(mistake)
                    break
            raise CheckError(message)
        if not got.requires_grad:
            raise CheckError(
                tr(
                    "{name}: the loss has no gradient with respect to new_log_probs; "
                    "do not detach the new policy's log-probabilities",
                    name=name,
                )
            )
        at_old = float(_call(name, fn, old.clone().requires_grad_(True), old, adv, eps).detach())
        if abs(at_old + float(adv.mean())) > 1e-5:
            raise CheckError(
                tr(
                    "{name}: when the new policy equals the old one (ratio 1) the loss "
                    "must be -mean(A)",
                    name=name,
                )
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
    termination_wins: bool = True,
) -> Tensor:
    """A2C's returns ``[T, N]`` (``rewards[t]`` holds ``R_{t+1}``); the keywords make the
    classic mistakes (``termination_wins=False``: a step both terminated and truncated
    bootstraps, as the mask ``~terminated | truncated`` does)."""
    T = rewards.shape[0]
    returns = torch.zeros_like(rewards)
    zero = torch.zeros_like(rewards[0])
    for t in reversed(range(T)):
        last = t == T - 1
        follow = (next_values[t] if end else zero) if last else returns[t + 1]
        truncation = next_values[t] if bootstrap_truncation else zero
        if (stop_at_ends and stop_at_truncation) or last:
            follow = torch.where(truncated[t], truncation, follow)
        if stop_at_ends or last:
            follow = torch.where(terminated[t], zero if mask_terminal else next_values[t], follow)
        if not termination_wins:
            follow = torch.where(truncated[t], truncation, follow)
        returns[t] = rewards[t] + gamma * follow
    return returns


def check_n_step_returns(fn: Callable[..., Any]) -> None:
    """``fn(rewards, terminated, truncated, next_values, gamma) -> returns``, all ``[T, N]``:
    A2C's bootstrapped returns, ``G_t = rewards[t] + gamma * (0 if terminated at t, else
    V(S'_t) if truncated at t or t = T - 1, else G_{t+1})``; ``rewards[t]`` holds ``R_{t+1}``.
    A step both terminated and truncated (a pole that falls at CartPole's 500th step) has
    ended: nothing follows it."""
    name, n = "n_step_returns", 0
    for seed in range(4):
        g = torch.Generator().manual_seed(seed)
        T, N = 7, 5
        rewards = torch.randn(T, N, generator=g)
        u = torch.rand(T, N, generator=g)
        terminated, truncated = u < 0.15, (u >= 0.15) & (u < 0.3)
        terminated[-1, 0], truncated[-1, 1] = True, True  # ends at the rollout's last step too
        terminated[-1, 2] = truncated[-1, 2] = False
        # terminated and truncated at once, inside the rollout and at its last step
        terminated[3, 3] = truncated[3, 3] = terminated[-1, 4] = truncated[-1, 4] = True
        next_values = torch.randn(T, N, generator=g) * 3
        gamma = (0.9, 0.99, 0.5, 0.8)[seed]
        args = (rewards, terminated, truncated, next_values)
        got = _call(name, fn, *[x.clone() for x in args], gamma)
        expected = _n_step_returns(*args, gamma)
        mistakes = {
            tr(
                "did not bootstrap at the end of the rollout: the last step's return needs the "
                "critic's V(S') from next_values, the episode goes on"
            ): _n_step_returns(*args, gamma, end=False),
            tr("bootstrapped after termination (no terminal masking)"): _n_step_returns(
                *args, gamma, mask_terminal=False
            ),
            tr(
                "carried the return across an episode end: after terminated or truncated, "
                "G_{t+1} belongs to the next episode"
            ): _n_step_returns(*args, gamma, stop_at_ends=False),
            tr(
                "carried the return across a truncation: a time limit ends the episode too, so "
                "G_t there is rewards[t] + gamma V(final observation), not rewards[t] + gamma "
                "G_{t+1}, which belongs to the next episode"
            ): _n_step_returns(*args, gamma, stop_at_truncation=False),
            tr(
                "did not bootstrap at a truncation: a time limit is not the end of the task, "
                "so G_t there is rewards[t] + gamma V(final observation)"
            ): _n_step_returns(*args, gamma, bootstrap_truncation=False),
            tr(
                "bootstrapped at a step that was both terminated and truncated (a mask like "
                "~terminated | truncated): the episode really ended there, so nothing follows "
                "it; termination wins over truncation"
            ): _n_step_returns(*args, gamma, termination_wins=False),
            tr("forgot the discount (gamma = 1)"): _n_step_returns(*args, 1.0),
        }
        _compare(
            name, tr("rollout {seed}", seed=seed), got, expected, mistakes, what=tr("(t, env)")
        )
        n += 1
    _passed(name, n)


def _reinforce_forms(logits: Tensor, actions: Tensor, G: Tensor, gamma: float) -> dict[str, Tensor]:
    """The two accepted REINFORCE losses of one episode (differentiable in ``logits``)."""
    taken = torch.log_softmax(logits, dim=1)[torch.arange(len(actions)), actions]
    discounts = gamma ** torch.arange(len(actions), dtype=logits.dtype)
    return {"practical": -(taken * G).mean(), "discounted": -(discounts * taken * G).mean()}


_REINFORCE_FORMS = {
    "practical": N_(
        "the practical estimator, -mean_t log pi(A_t|S_t) G_t, without gamma^t "
        "(the one rlcourse.pg and most deep-RL code use)"
    ),
    "discounted": N_(
        "the gradient of the discounted objective, -mean_t gamma^t log pi(A_t|S_t) G_t "
        "(the same as discounting every reward from the episode's start); rlcourse.pg uses "
        "the practical form without gamma^t"
    ),
}


def check_reinforce_loss(fn: Callable[..., Any]) -> None:
    """``fn(logits [T, A], actions [T], rewards [T], gamma) -> loss``: the REINFORCE loss of
    one complete episode with the reward-to-go ``G_t`` (``rewards[t]`` holds ``R_{t+1}``).

    Two forms are right: the practical ``-mean_t log pi(A_t|S_t) G_t`` and the gradient of
    the discounted objective, ``-mean_t gamma^t log pi(A_t|S_t) G_t``; the checker says
    which one it recognised (the same one on every episode). Checked: the value, and the
    gradient with respect to the logits.
    """
    name, n = "reinforce_loss", 0
    recognised: set[str] = set()
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
        forms = _reinforce_forms(logits, actions, G, gamma)
        mistakes = {
            tr("gave every step the whole episode's return G_0 instead of the reward-to-go G_t"): -(
                taken * whole
            ).mean(),
            tr(
                "multiplied by log pi twice (log pi * log pi * G): the estimator is grad log pi * G"
            ): -(taken * taken * G).mean(),
            tr("used log-probabilities of the greedy actions, not of the actions taken"): -(
                log_pi.max(1).values * G
            ).mean(),
            tr("forgot the minus sign: minimising that loss would make good actions less likely"): (
                taken * G
            ).mean(),
            tr("did not discount the reward-to-go"): -(
                taken * rewards.flip(0).cumsum(0).flip(0)
            ).mean(),
            tr(
                "used the probabilities pi(a|s) instead of the log-probabilities log pi(a|s): the "
                "score-function estimator is grad log pi * G"
            ): -(taken.exp() * G).mean(),
            tr(
                "normalised the logits over the time steps (dim 0) instead of over the actions "
                "(dim 1)"
            ): -(torch.log_softmax(logits, dim=0)[torch.arange(T), actions] * G).mean(),
            tr(
                "returned the sum over the time steps; this exercise asks for the mean, -(1/T) "
                "sum_t (the same direction, T times longer)"
            ): -(taken * G).sum(),
        }
        student_logits = logits.clone().requires_grad_(True)
        got = _call(name, fn, student_logits, actions.clone(), rewards.clone(), gamma)
        if got.dim() != 0:
            raise CheckError(
                tr(
                    "{name} must return a scalar loss, got shape {shape}",
                    name=name,
                    shape=list(got.shape),
                )
            )
        value = float(got.detach())
        matched = {form for form, loss in forms.items() if abs(value - float(loss)) <= 1e-5}
        if not matched:
            expected = float(forms["practical"])
            message = tr(
                "{name} (episode {seed}): loss {value:.5f}, expected {expected:.5f} (or "
                "{discounted:.5f} with the gamma^t factor).",
                name=name,
                seed=seed,
                value=value,
                expected=expected,
                discounted=float(forms["discounted"]),
            )
            for mistake, wrong in mistakes.items():
                if abs(value - float(wrong)) < 1e-5:
                    message += _looks_like(mistake)
                    break
            raise CheckError(message)
        if len(matched) == 1:  # the forms differ on this episode
            recognised |= matched
        if len(recognised) > 1:
            raise CheckError(
                tr(
                    "{name} (episode {seed}): the loss has the gamma^t factor on some episodes "
                    "and not on others; use one form",
                    name=name,
                    seed=seed,
                )
            )
        form = next(iter(recognised or matched))
        got.backward()
        ref_logits = logits.clone().requires_grad_(True)
        _reinforce_forms(ref_logits, actions, G, gamma)[form].backward()
        if student_logits.grad is None or not torch.allclose(
            student_logits.grad, ref_logits.grad, atol=1e-5
        ):
            raise CheckError(
                tr(
                    "{name}: the value is right but the gradient is not: the returns "
                    "must be constants (no gradient through G_t)",
                    name=name,
                )
            )
        n += 1
    _passed(name, n)
    print(tr(RECOGNISED, form=tr(_REINFORCE_FORMS[next(iter(recognised), "practical")])))


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
            raise CheckError(tr("{name} must return a pair (next_state, terminated)", name=name))
        got, got_term = out
        expected, expected_term = _cartpole_reference(state, actions)
        case = tr("batch {seed} of {n} random states", seed=seed, n=N)
        _compare(
            name,
            case,
            got,
            expected,
            {
                tr(
                    "pushed the wrong way: action 1 pushes the cart right (+force_mag), action 0 "
                    "left"
                ): _cartpole_reference(state, actions, force_sign=-1.0)[0],
                tr(
                    "used semi-implicit Euler (positions from the *new* velocities); gymnasium's "
                    "CartPole-v1 updates every variable from the old state"
                ): _cartpole_reference(state, actions, semi_implicit=True)[0],
            },
            what=tr("(variable, copy)"),
        )
        if not isinstance(got_term, Tensor) or got_term.dtype != torch.bool:
            raise CheckError(
                tr("{name}: terminated must be a bool tensor of shape [{n}]", name=name, n=N)
            )
        mistakes = {
            tr(
                "judged termination on the state before the step; it is the new state that "
                "leaves the track or tips over"
            ): _cartpole_reference(state, actions, old_state_termination=True)[1],
            tr("compared the angle with 12 (degrees) instead of 12 * 2 * pi / 360 radians"): (
                _cartpole_reference(state, actions, threshold=12.0)[1]
            ),
        }
        case = tr("{case} (terminated)", case=case)
        _compare(name, case, got_term, expected_term, mistakes, what=tr("copy"))
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
            raise CheckError(
                tr(
                    "{name} must return a list of {n} tensors, one per input",
                    name=name,
                    n=len(grads),
                )
            )
        expected = clip(grads, max_norm)
        for i, (x, e) in enumerate(zip(got, expected, strict=True)):
            if not isinstance(x, Tensor):
                raise CheckError(
                    tr("{name}: item {i} of the result is not a tensor", name=name, i=i)
                )
            mistakes = {
                tr(
                    "clipped by the norm over all agents together: one agent's large gradient then "
                    "shrinks every other agent's step; each agent needs its own norm"
                ): clip(grads, max_norm, "global")[i],
                tr(
                    "clipped each parameter tensor separately; an agent's norm is over all its "
                    "tensors together"
                ): clip(grads, max_norm, "per tensor")[i],
                tr("scaled small gradients up to max_norm; clipping only ever scales down"): clip(
                    grads, max_norm, "scale up"
                )[i],
            }
            case = tr("case {seed}, tensor {i}", seed=seed, i=i)
            _compare(name, case, x, e, mistakes, what=tr("(agent, entry)"))
        n += 1
    _passed(name, n)
