"""Dynamic programming on a known MDP (Sutton & Barto, ch. 4), vectorised with torch.

Every sweep updates all states at once (the synchronous, "two-array" version of
the book): one matrix-vector product ``P @ V`` gives ``sum_s' p(s'|s,a) V(s')`` for
every ``(s, a)``; no Python loop runs over states. The same code runs on a
dense or a sparse ``P``, on the CPU or a GPU (``mdp.to("cuda")``).

Each algorithm comes twice: a function that runs to convergence and returns the
result, and a generator (``*_sweeps``) that yields every sweep, for plots and
widgets that show the algorithm at work.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from rlcourse.mdp import TabularMDP

#: default limit on sweeps; reaching it is an error, not a silent stop
MAX_SWEEPS = 100_000


class Sweep(NamedTuple):
    """One sweep of a DP algorithm, as yielded by the ``*_sweeps`` generators.

    ``k``: sweeps done so far; ``V [S]``: values after this sweep; ``delta``:
    ``max_s |V_k(s) - V_{k-1}(s)|``; ``policy [S, A]``: the policy being evaluated
    (policy evaluation / iteration) or the greedy policy of ``V`` (value iteration);
    ``phase``: ``"evaluation"``, ``"improvement"`` or ``"optimality"``.
    """

    k: int
    V: Tensor
    delta: float
    policy: Tensor
    phase: str


@dataclass(frozen=True)
class DPResult:
    """What a DP solver returns; unpacks as ``V, policy = value_iteration(mdp)``.

    ``V [S]``, ``policy [S, A]`` (deterministic, one-hot), ``n_sweeps``: Bellman
    sweeps done, ``deltas``: ``max |ΔV|`` of each sweep, ``n_improvements``: policy
    improvement steps (policy iteration only, else 0).
    """

    V: Tensor
    policy: Tensor
    n_sweeps: int
    deltas: list[float] = field(repr=False)
    n_improvements: int = 0

    def __iter__(self) -> Iterator[Tensor]:
        yield self.V
        yield self.policy


def _check_theta(theta: Any) -> float:
    if isinstance(theta, bool) or not isinstance(theta, int | float | np.integer | np.floating):
        raise TypeError(f"theta must be a number, got {type(theta).__name__} {theta!r}")
    if not theta > 0:
        raise ValueError(f"theta must be a positive number, got {theta!r}")
    return float(theta)


def _initial_values(mdp: TabularMDP, V0: Any) -> Tensor:
    if V0 is None:
        return torch.zeros(mdp.n_states, dtype=torch.float64, device=mdp.device)
    V = torch.as_tensor(V0, dtype=torch.float64, device=mdp.device).clone()
    if tuple(V.shape) != (mdp.n_states,):
        raise ValueError(f"V0 must have shape [S] = [{mdp.n_states}], got {list(V.shape)}")
    V[mdp.terminal] = 0.0  # v(terminal) = 0 by definition
    return V


def _not_converged(name: str, mdp: TabularMDP, max_sweeps: int, delta: float) -> RuntimeError:
    hint = (
        " With gamma = 1 the values of a policy that never reaches a terminal state are "
        "unbounded: use gamma < 1 or a policy that ends the episode."
        if mdp.gamma == 1.0
        else " Raise max_sweeps or theta."
    )
    return RuntimeError(
        f"{name} did not converge in {max_sweeps} sweeps (last max |ΔV| = {delta:.3g}).{hint}"
    )


def _check_finite(name: str, V: Tensor) -> None:
    if not torch.isfinite(V).all():
        raise RuntimeError(
            f"{name} diverged (values became infinite); with gamma = 1 this means a policy "
            "that never reaches a terminal state"
        )


# ------------------------------------------------------------------ backups
def q_from_v(mdp: TabularMDP, V: Tensor) -> Tensor:
    """``q(s, a) = r(s, a) + gamma * sum_s' p(s'|s,a) V(s')``: ``V [S] -> Q [S, A]``."""
    return mdp.q_values(V)


def expectation_backup(mdp: TabularMDP, V: Tensor, policy: Tensor) -> Tensor:
    """Bellman expectation backup ``V'(s) = sum_a pi(a|s) q(s, a)``: ``[S] -> [S]``."""
    return (policy * mdp.q_values(V)).sum(1)


def optimality_backup(mdp: TabularMDP, V: Tensor) -> Tensor:
    """Bellman optimality backup ``V'(s) = max_a q(s, a)`` over allowed actions: ``[S] -> [S]``."""
    return mdp.q_values(V).masked_fill(~mdp.action_mask, -torch.inf).amax(1)


def greedy_policy(mdp: TabularMDP, V: Tensor, tol: float = 1e-9) -> Tensor:
    """Deterministic greedy policy ``[S, A]`` (one-hot) w.r.t. ``V``.

    Ties (``q`` within ``tol`` of the best) go to the lowest action index.
    """
    best = greedy_ties(mdp, V, tol)
    return torch.nn.functional.one_hot(best.to(torch.int8).argmax(1), mdp.n_actions).to(
        torch.float64
    )


def greedy_ties(mdp: TabularMDP, V: Tensor, tol: float = 1e-9) -> Tensor:
    """Bool ``[S, A]``: the allowed actions whose ``q(s, a)`` is within ``tol`` of the best."""
    Q = mdp.q_values(V).masked_fill(~mdp.action_mask, -torch.inf)
    return (Q >= Q.amax(1, keepdim=True) - tol) & mdp.action_mask


# ------------------------------------------------------- policy evaluation
def policy_evaluation_sweeps(
    mdp: TabularMDP,
    policy: Any,
    theta: float = 1e-8,
    *,
    max_sweeps: int = MAX_SWEEPS,
    V0: Any = None,
) -> Iterator[Sweep]:
    """Iterative policy evaluation, one :class:`Sweep` per synchronous sweep.

    Stops after the first sweep with ``max |ΔV| < theta``.
    """
    pi = mdp.check_policy(policy)
    theta = _check_theta(theta)
    V = _initial_values(mdp, V0)
    for k in range(1, max_sweeps + 1):
        V_new = expectation_backup(mdp, V, pi)
        delta = torch.dist(V_new, V, p=torch.inf).item()
        V = V_new
        _check_finite("policy evaluation", V)
        yield Sweep(k, V, delta, pi, "evaluation")
        if delta < theta:
            return
    raise _not_converged("policy evaluation", mdp, max_sweeps, delta)


def policy_evaluation(
    mdp: TabularMDP,
    policy: Any,
    theta: float = 1e-8,
    *,
    max_sweeps: int = MAX_SWEEPS,
    V0: Any = None,
) -> Tensor:
    """Iterative policy evaluation: ``v_pi [S]`` of ``policy [S, A]`` to within ``theta``."""
    *_, last = policy_evaluation_sweeps(mdp, policy, theta, max_sweeps=max_sweeps, V0=V0)
    return last.V


def exact_policy_evaluation(mdp: TabularMDP, policy: Any) -> Tensor:
    """``v_pi [S]`` by a linear solve of ``(I - gamma P_pi) v = r_pi`` over non-terminal states.

    With ``gamma = 1`` the system has a unique solution only if the policy reaches a
    terminal state from every state; otherwise this raises a ``ValueError``.
    """
    if mdp.is_sparse and mdp.n_states > 5000:
        raise ValueError(
            f"the exact solve needs a dense {mdp.n_states}x{mdp.n_states} system; "
            "use policy_evaluation for an MDP this large"
        )
    P_pi, r_pi = mdp.policy_matrices(policy)
    live = ~mdp.terminal
    if mdp.gamma == 1.0:
        if not mdp.terminal.any():
            raise ValueError(
                "gamma = 1 on an MDP with no terminal state: the undiscounted return never "
                "ends, so v_pi is infinite or undefined; use gamma < 1"
            )
        stuck = _cannot_reach(P_pi, mdp.terminal)
        if stuck.any():
            s = int(torch.nonzero(stuck)[0])
            raise ValueError(
                f"gamma = 1 but the policy never reaches a terminal state from state {s}, so "
                "v_pi is unbounded there; use gamma < 1 or a policy that ends the episode"
            )
    n = int(live.sum())
    A = torch.eye(n, dtype=torch.float64, device=mdp.device) - mdp.gamma * P_pi[live][:, live]
    V = torch.zeros(mdp.n_states, dtype=torch.float64, device=mdp.device)
    V[live] = torch.linalg.solve(A, r_pi[live])
    return V


def _cannot_reach(P_pi: Tensor, target: Tensor) -> Tensor:
    """Bool ``[S]``: states from which the chain ``P_pi`` never reaches ``target``."""
    edges = (P_pi > 0).to(torch.float64)
    reach = target.clone()
    while True:  # at most S rounds: each one adds states or stops
        new = reach | ((edges @ reach.to(torch.float64)) > 0)
        if torch.equal(new, reach):
            return ~reach
        reach = new


# ------------------------------------------------------------------ analysis
def reachable_states(mdp: TabularMDP) -> Tensor:
    """Bool ``[S]``: the states that some policy visits with positive probability.

    An episode starts where ``mdp.initial > 0`` and moves along transitions with
    ``P > 0`` of allowed actions out of non-terminal states (a terminal state counts once
    entered). The other states are rows of the table but states of no episode, such as
    CliffWalking's cliff cells: a step into the cliff sends the agent back to the start.
    """
    P = mdp.P.coalesce() if mdp.is_sparse else mdp.P
    if mdp.is_sparse:
        s, a, s_next = P.indices()[:, P.values() > 0]
    else:
        s, a, s_next = torch.nonzero(P > 0, as_tuple=True)
    keep = mdp.action_mask[s, a] & ~mdp.terminal[s]
    s, s_next = s[keep], s_next[keep]
    reach = mdp.initial > 0
    while True:  # at most S rounds: each one adds states or stops
        new = reach.clone()
        new[s_next[reach[s]]] = True
        if torch.equal(new, reach):
            return reach
        reach = new


def spectral_radius(mdp: TabularMDP, policy: Any) -> float:
    """``rho(gamma P_pi)`` on the non-terminal states: the largest ``|eigenvalue|``.

    Policy evaluation's error is multiplied by ``gamma P_pi`` (restricted to non-terminal
    states) at every sweep, so in the long run it shrinks by this factor per sweep; near
    convergence value iteration behaves like the evaluation of an optimal policy. It is
    at most ``gamma``, and below 1 with ``gamma = 1`` exactly when the policy ends the
    episode from every state.
    """
    if mdp.n_states > 5000:
        raise ValueError(
            f"the spectral radius needs the eigenvalues of a dense {mdp.n_states}x"
            f"{mdp.n_states} matrix; use a smaller MDP"
        )
    P_pi, _ = mdp.policy_matrices(policy)
    live = ~mdp.terminal
    if not live.any():
        return 0.0
    M = mdp.gamma * P_pi[live][:, live]
    return float(torch.linalg.eigvals(M.cpu()).abs().max())


# ------------------------------------------------------------ value iteration
def value_iteration_sweeps(
    mdp: TabularMDP, theta: float = 1e-8, *, max_sweeps: int = MAX_SWEEPS, V0: Any = None
) -> Iterator[Sweep]:
    """Value iteration, one :class:`Sweep` per Bellman optimality sweep (with its greedy policy)."""
    theta = _check_theta(theta)
    V = _initial_values(mdp, V0)
    for k in range(1, max_sweeps + 1):
        V_new = optimality_backup(mdp, V)
        delta = torch.dist(V_new, V, p=torch.inf).item()
        V = V_new
        _check_finite("value iteration", V)
        yield Sweep(k, V, delta, greedy_policy(mdp, V), "optimality")
        if delta < theta:
            return
    raise _not_converged("value iteration", mdp, max_sweeps, delta)


def value_iteration(
    mdp: TabularMDP, theta: float = 1e-8, *, max_sweeps: int = MAX_SWEEPS, V0: Any = None
) -> DPResult:
    """Value iteration: ``V_{k+1}(s) = max_a [r(s,a) + gamma sum_s' p(s'|s,a) V_k(s')]``.

    Sweeps until ``max |ΔV| < theta``; returns ``v* [S]`` and a greedy policy ``[S, A]``.
    This is the fast path: one fused ``R + gamma P V``, one max and one norm per sweep.
    """
    theta = _check_theta(theta)
    V0 = _initial_values(mdp, V0)
    # inference_mode skips autograd bookkeeping (about 10% here); clone the results
    # outside it so that callers get ordinary tensors.
    with torch.inference_mode():
        V, deltas = _value_iteration_loop(mdp, theta, max_sweeps, V0)
    V = V.clone()
    return DPResult(V, greedy_policy(mdp, V), len(deltas), deltas)


def _value_iteration_loop(
    mdp: TabularMDP, theta: float, max_sweeps: int, V: Tensor
) -> tuple[Tensor, list[float]]:
    S, A = mdp.n_states, mdp.n_actions
    V_new = torch.empty_like(V)
    Q = torch.empty(S * A, dtype=torch.float64, device=mdp.device)
    R, P2, gamma = mdp.R.view(-1), mdp._P2, mdp.gamma
    masked = not bool(mdp.action_mask.all())
    neg_mask = ~mdp.action_mask.view(-1)
    deltas: list[float] = []
    for _ in range(max_sweeps):
        torch.addmv(R, P2, V, alpha=gamma, out=Q)  # q = r + gamma * P v
        if masked:
            Q.masked_fill_(neg_mask, -torch.inf)
        torch.amax(Q.view(S, A), dim=1, out=V_new)  # v' = max_a q
        delta = torch.dist(V_new, V, p=torch.inf).item()
        deltas.append(delta)
        V, V_new = V_new, V
        if delta < theta:
            return V, deltas
        if not math.isfinite(delta):
            _check_finite("value iteration", V)
    raise _not_converged("value iteration", mdp, max_sweeps, deltas[-1])


# ----------------------------------------------------------- policy iteration
def improve_policy(mdp: TabularMDP, V: Tensor, policy: Tensor, tol: float = 1e-9) -> Tensor:
    """Policy improvement: greedy w.r.t. ``V``, keeping the current action where it ties.

    Keeping tied actions stops policy iteration from cycling between equally good policies.
    """
    ties = greedy_ties(mdp, V, tol)
    keep = (ties & (policy > 0)).any(1, keepdim=True) & (policy.amax(1, keepdim=True) == 1)
    greedy = greedy_policy(mdp, V, tol)
    return torch.where(keep, policy, greedy)


def policy_iteration_sweeps(
    mdp: TabularMDP,
    theta: float = 1e-8,
    *,
    policy: Any = None,
    max_sweeps: int = MAX_SWEEPS,
    max_iterations: int = 1000,
) -> Iterator[Sweep]:
    """Policy iteration: evaluation sweeps (``phase="evaluation"``) until ``max |ΔV| < theta``,
    then one improvement (``phase="improvement"``), until the policy is stable.

    Starts from ``policy`` (default: the equiprobable random policy); each evaluation
    starts from the previous policy's values, as in the book.
    """
    pi = mdp.uniform_policy() if policy is None else mdp.check_policy(policy)
    V = _initial_values(mdp, None)
    k = 0
    for _ in range(max_iterations):
        for sweep in policy_evaluation_sweeps(mdp, pi, theta, max_sweeps=max_sweeps, V0=V):
            k += 1
            V = sweep.V
            yield sweep._replace(k=k)
        new_pi = improve_policy(mdp, V, pi)
        stable = torch.equal(new_pi, pi)
        pi = new_pi
        yield Sweep(k, V, 0.0, pi, "improvement")
        if stable:
            return
    raise RuntimeError(f"policy iteration did not stabilise in {max_iterations} improvements")


def policy_iteration(
    mdp: TabularMDP,
    theta: float = 1e-8,
    *,
    policy: Any = None,
    max_sweeps: int = MAX_SWEEPS,
    max_iterations: int = 1000,
) -> DPResult:
    """Policy iteration (evaluate, improve, repeat until stable): ``(v* [S], pi* [S, A])``.

    ``n_sweeps`` counts evaluation sweeps over all iterations; ``n_improvements``
    the improvement steps, the last of which changed nothing.
    """
    deltas: list[float] = []
    n_improvements = 0
    for sweep in policy_iteration_sweeps(
        mdp, theta, policy=policy, max_sweeps=max_sweeps, max_iterations=max_iterations
    ):
        if sweep.phase == "evaluation":
            deltas.append(sweep.delta)
        else:
            n_improvements += 1
    return DPResult(sweep.V, sweep.policy, len(deltas), deltas, n_improvements)
