"""Checkers for the exercises.

Each ``check_*`` takes the student's function, runs it on small cases with known
answers and on random MDPs against the reference implementation, and either
prints a one-line success message or raises :class:`CheckError` with a message a
student can act on: which case, which state, expected against got, and -- when
the answer matches a classic wrong implementation -- which mistake that is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
def _call(name: str, fn: Callable[..., Any], *args: Any) -> Tensor:
    try:
        out = fn(*args)
    except NotImplementedError:
        raise CheckError(
            f"{name}: not implemented yet -- replace the `raise NotImplementedError` with your code"
        ) from None
    except Exception as err:  # a student's bug: report it with the case that caused it
        raise CheckError(f"{name} raised {type(err).__name__}: {err}") from err
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
    got = got.detach().to(torch.float64)
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
def check_bellman_expectation_backup(fn: Callable[..., Tensor]) -> None:
    """``fn(P [S,A,S], R [S,A], gamma, policy [S,A], V [S]) -> V_new [S]``."""
    name, n = "bellman_expectation_backup", 0
    for mdp in _cases():
        pi = _random_policy(n, mdp.n_states, mdp.n_actions)
        V = torch.linspace(-1.0, 2.0, mdp.n_states, dtype=torch.float64)
        got = _call(name, fn, mdp.P.clone(), mdp.R.clone(), mdp.gamma, pi.clone(), V.clone())
        Q = mdp.q_values(V)
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
