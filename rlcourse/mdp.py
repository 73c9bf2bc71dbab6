"""Finite Markov decision processes as tensors.

A finite MDP (Sutton & Barto, ch. 3) is held as

* ``P[s, a, s']`` -- probability of moving to ``s'`` after action ``a`` in ``s``
  (each row ``P[s, a, :]`` sums to 1),
* ``R[s, a]``     -- expected immediate reward ``r(s, a) = E[R_{t+1} | S_t=s, A_t=a]``,
* ``gamma``       -- the discount in ``[0, 1]``,
* ``terminal[s]`` -- states where the episode ends: absorbing, with zero reward, so
  that ``v(terminal) = 0`` and nothing is bootstrapped from them.

``P`` is dense for small MDPs and sparse (CSR) for large ones; the dynamic
programming in :mod:`rlcourse.dp` works on either through
:meth:`TabularMDP.expected_next_values`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

_ATOL = 1e-6


@dataclass(frozen=True)
class GridInfo:
    """Where each state of a grid-world MDP sits, for plots and rendering.

    ``shape`` is ``(rows, cols)``; ``cells[s]`` is the ``(row, col)`` of state ``s``
    (walls are cells without a state); ``layout`` holds one string per row with
    the cell letters (``S`` start, ``G`` goal, ``#`` wall, ...), if known.
    """

    shape: tuple[int, int]
    cells: tuple[tuple[int, int], ...]
    layout: tuple[str, ...] | None = None


def _as_float_tensor(x: Any, name: str) -> Tensor:
    """Tensor of float64 (sparse tensors kept sparse); clear error for anything else."""
    if isinstance(x, Tensor):
        t = x
    else:
        try:
            t = torch.as_tensor(np.asarray(x, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be a tensor or array of numbers, got {type(x)}") from err
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{name} must hold real numbers, got dtype {t.dtype}")
    return t.to(torch.float64)


def check_gamma(gamma: Any) -> float:
    """Return ``gamma`` as a float after checking it is a number in [0, 1]."""
    if isinstance(gamma, bool) or not isinstance(gamma, int | float | np.floating | np.integer):
        raise TypeError(f"gamma must be a number in [0, 1], got {gamma!r}")
    if not 0.0 <= float(gamma) <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    return float(gamma)


class TabularMDP:
    """A finite MDP with transition tensor ``P [S, A, S]`` and expected rewards ``R [S, A]``.

    Args:
        P: transition probabilities ``[S, A, S]``, dense or a sparse COO tensor;
            every row ``P[s, a, :]`` must be non-negative and sum to 1.
        R: expected immediate reward ``[S, A]``.
        gamma: discount factor in ``[0, 1]``.
        terminal: bool ``[S]``; terminal states must be absorbing with zero reward.
        action_mask: bool ``[S, A]``, the actions allowed in each state (default: all).
        action_names: a name per action, e.g. ``("left", "down", "right", "up")``;
            plots draw arrows from these names, never from an assumed order.
        grid: where each state sits on a grid, for plots (see :class:`GridInfo`).
        initial: start-state distribution ``[S]`` (default: uniform over non-terminal states).
        name: a short label for printing.
    """

    def __init__(
        self,
        P: Any,
        R: Any,
        gamma: float,
        terminal: Any = None,
        *,
        action_mask: Any = None,
        action_names: Sequence[str] | None = None,
        grid: GridInfo | None = None,
        initial: Any = None,
        name: str = "",
    ) -> None:
        P = _as_float_tensor(P, "P")
        R = _as_float_tensor(R, "R")
        if P.dim() != 3:
            raise ValueError(f"P must have shape [S, A, S], got {tuple(P.shape)}")
        S, A, S2 = P.shape
        if S != S2:
            raise ValueError(
                f"P must have shape [S, A, S] with the same S twice, got {tuple(P.shape)}"
            )
        if S == 0 or A == 0:
            raise ValueError(f"P must have at least one state and one action, got {tuple(P.shape)}")
        if R.is_sparse:
            R = R.to_dense()
        if tuple(R.shape) != (S, A):
            raise ValueError(
                f"R must have shape [S, A] = [{S}, {A}] to match P, got {tuple(R.shape)}"
            )
        R = R.to(P.device)
        if not torch.isfinite(R).all():
            s, a = torch.nonzero(~torch.isfinite(R))[0].tolist()
            raise ValueError(f"R[{s}, {a}] = {R[s, a].item()} is not finite")
        self.gamma = check_gamma(gamma)
        self.n_states, self.n_actions = S, A
        self.name = name

        if P.is_sparse:
            P = P.coalesce()
            self.P = P
            self._P2 = _coo3_to_csr2(P)
        else:
            self.P = P.contiguous()
            self._P2 = self.P.view(S * A, S)
        self._check_stochastic()
        self.R = R.contiguous()

        self.terminal = self._bool_tensor(terminal, (S,), "terminal", default=False)
        self.action_mask = self._bool_tensor(action_mask, (S, A), "action_mask", default=True)
        if not self.action_mask.any(1).all():
            s = int(torch.nonzero(~self.action_mask.any(1))[0])
            raise ValueError(f"action_mask allows no action in state {s}")
        self._check_terminal()

        if action_names is not None:
            action_names = tuple(str(n) for n in action_names)
            if len(action_names) != A:
                raise ValueError(f"action_names has {len(action_names)} names for {A} actions")
        self.action_names = action_names
        if grid is not None and len(grid.cells) != S:
            raise ValueError(f"grid places {len(grid.cells)} states but the MDP has {S}")
        self.grid = grid

        if initial is None:
            initial = (~self.terminal).to(torch.float64)
            if initial.sum() == 0:
                initial = torch.ones(S, dtype=torch.float64, device=self.device)
            initial = initial / initial.sum()
        else:
            initial = _as_float_tensor(initial, "initial").to(self.device)
            if tuple(initial.shape) != (S,) or (initial < 0).any():
                raise ValueError(f"initial must be a probability vector of shape [{S}]")
            if abs(initial.sum().item() - 1.0) > _ATOL:
                raise ValueError(f"initial must sum to 1, sums to {initial.sum().item():.6g}")
        self.initial = initial

    # ----------------------------------------------------------------- checks
    def _bool_tensor(self, x: Any, shape: tuple[int, ...], name: str, default: bool) -> Tensor:
        if x is None:
            return torch.full(shape, default, dtype=torch.bool, device=self.device)
        t = torch.as_tensor(x, device=self.device)
        if t.dtype != torch.bool:
            raise TypeError(f"{name} must be a bool tensor, got dtype {t.dtype}")
        if tuple(t.shape) != shape:
            raise ValueError(f"{name} must have shape {list(shape)}, got {list(t.shape)}")
        return t

    def _check_stochastic(self) -> None:
        S, A = self.n_states, self.n_actions
        if self.P.is_sparse:
            vals = self.P.values()
            rows = self.P.indices()[0] * A + self.P.indices()[1]
            row_sums = torch.zeros(S * A, dtype=torch.float64, device=self.device)
            row_sums.index_add_(0, rows, vals)
        else:
            vals = self.P
            row_sums = self.P.sum(-1).reshape(-1)
        if not torch.isfinite(vals).all():
            raise ValueError("P contains NaN or infinite entries")
        if (vals < 0).any():
            if self.P.is_sparse:
                bad = self.P.indices()[:, torch.nonzero(vals < 0)[0, 0]].tolist()
            else:
                bad = torch.nonzero(vals < 0)[0].tolist()
            raise ValueError(f"P has a negative probability at [s, a, s'] = {bad}")
        off = (row_sums - 1.0).abs() > _ATOL
        if off.any():
            i = int(torch.nonzero(off)[0])
            raise ValueError(
                f"P is not stochastic: row P[{i // A}, {i % A}, :] sums to "
                f"{row_sums[i].item():.6g}, not 1 ({int(off.sum())} such rows)"
            )

    def _check_terminal(self) -> None:
        if not self.terminal.any():
            return
        t = torch.nonzero(self.terminal).squeeze(1)
        stay = self.self_loop_probs()[t]  # [T, A]: P[t, a, t]
        not_absorbing = (stay - 1.0).abs() > _ATOL
        if not_absorbing.any():
            i, a = torch.nonzero(not_absorbing)[0].tolist()
            raise ValueError(
                f"terminal state {int(t[i])} must be absorbing, but P[{int(t[i])}, {a}, "
                f"{int(t[i])}] = {stay[i, a].item():.6g}"
            )
        nonzero = self.R[t] != 0
        if nonzero.any():
            i, a = torch.nonzero(nonzero)[0].tolist()
            raise ValueError(
                f"terminal state {int(t[i])} must give zero reward, but R[{int(t[i])}, {a}] = "
                f"{self.R[t[i], a].item():.6g}"
            )

    # ------------------------------------------------------------- properties
    @property
    def device(self) -> torch.device:
        return self.P.device

    @property
    def is_sparse(self) -> bool:
        return self.P.is_sparse

    def __repr__(self) -> str:
        label = f"{self.name!r}, " if self.name else ""
        kind = "sparse" if self.is_sparse else "dense"
        return (
            f"TabularMDP({label}S={self.n_states}, A={self.n_actions}, gamma={self.gamma}, "
            f"terminal={int(self.terminal.sum())}, {kind}, device={self.device})"
        )

    def _rebuilt(self, P: Tensor, device: torch.device) -> TabularMDP:
        """A validated copy with transition tensor ``P`` on ``device``, all else the same."""
        return TabularMDP(
            P.to(device),
            self.R.to(device),
            self.gamma,
            self.terminal.to(device),
            action_mask=self.action_mask.to(device),
            action_names=self.action_names,
            grid=self.grid,
            initial=self.initial.to(device),
            name=self.name,
        )

    def to(self, device: str | torch.device) -> TabularMDP:
        """A copy of this MDP with every tensor on ``device`` (``"cpu"``, ``"cuda"``...)."""
        from rlcourse.utils import resolve_device

        return self._rebuilt(self.P, resolve_device(device))

    def to_sparse(self) -> TabularMDP:
        """A copy with ``P`` stored sparse: for MDPs whose states have few successors."""
        return self._rebuilt(self.P if self.is_sparse else self.P.to_sparse(), self.device)

    def with_gamma(self, gamma: float) -> TabularMDP:
        """The same MDP with another discount factor (the tensors are shared, not copied)."""
        new = object.__new__(TabularMDP)
        new.__dict__.update(self.__dict__)
        new.gamma = check_gamma(gamma)
        return new

    # ------------------------------------------------------------ operations
    def self_loop_probs(self) -> Tensor:
        """``P[s, a, s]`` for every ``(s, a)``: the probability of staying put, ``[S, A]``."""
        if not self.is_sparse:
            return torch.diagonal(self.P, dim1=0, dim2=2).T
        i, v = self.P.indices(), self.P.values()
        on_diag = i[0] == i[2]
        out = torch.zeros(self.n_states, self.n_actions, dtype=torch.float64, device=self.device)
        return out.index_put_((i[0][on_diag], i[1][on_diag]), v[on_diag], accumulate=True)

    def expected_next_values(self, V: Tensor) -> Tensor:
        """``sum_s' P[s, a, s'] V[s']`` for every ``(s, a)``: ``V [S] -> [S, A]``."""
        return (self._P2 @ V).view(self.n_states, self.n_actions)

    def q_values(self, V: Tensor) -> Tensor:
        """One-step look-ahead ``q(s,a) = r(s,a) + gamma sum_s' P[s,a,s'] V[s']``: ``[S, A]``."""
        return torch.addmv(self.R.view(-1), self._P2, V, alpha=self.gamma).view(
            self.n_states, self.n_actions
        )

    def uniform_policy(self) -> Tensor:
        """The equiprobable random policy over the allowed actions: ``[S, A]``."""
        pi = self.action_mask.to(torch.float64)
        return pi / pi.sum(1, keepdim=True)

    def check_policy(self, policy: Any) -> Tensor:
        """Validate a stochastic policy ``[S, A]`` (rows sum to 1, no disallowed actions)."""
        pi = _as_float_tensor(policy, "policy").to(self.device)
        if tuple(pi.shape) != (self.n_states, self.n_actions):
            raise ValueError(
                f"policy must have shape [S, A] = [{self.n_states}, {self.n_actions}] of action "
                f"probabilities, got {list(pi.shape)}"
            )
        if (pi < 0).any() or not torch.isfinite(pi).all():
            s = int(torch.nonzero(~(pi >= 0)).flatten()[0])
            raise ValueError(f"policy has a negative or non-finite probability in state {s}")
        off = (pi.sum(1) - 1.0).abs() > _ATOL
        if off.any():
            s = int(torch.nonzero(off)[0])
            raise ValueError(
                f"policy row {s} sums to {pi[s].sum().item():.6g}, not 1: a policy gives "
                "each state a probability distribution over actions"
            )
        forbidden = (pi > 0) & ~self.action_mask
        if forbidden.any():
            s, a = torch.nonzero(forbidden)[0].tolist()
            raise ValueError(f"policy gives probability to action {a}, not allowed in state {s}")
        return pi

    def policy_matrices(self, policy: Tensor) -> tuple[Tensor, Tensor]:
        """``P_pi [S, S]`` and ``r_pi [S]`` of a policy (dense; for the exact solve)."""
        pi = self.check_policy(policy)
        P = self.P.to_dense() if self.is_sparse else self.P
        return torch.einsum("sa,sat->st", pi, P), (pi * self.R).sum(1)

    # ----------------------------------------------------------- constructors
    @classmethod
    def from_successors(
        cls,
        next_states: Any,
        probs: Any,
        R: Any,
        gamma: float,
        terminal: Any = None,
        **kwargs: Any,
    ) -> TabularMDP:
        """A sparse MDP from successor lists: ``next_states [S, A, K]`` (int), ``probs [S, A, K]``.

        Each ``(s, a)`` has at most ``K`` successors; repeated successors add up.
        """
        idx = torch.as_tensor(next_states)
        if idx.dtype.is_floating_point or idx.dtype == torch.bool:
            raise TypeError(f"next_states must be integers, got dtype {idx.dtype}")
        pr = _as_float_tensor(probs, "probs")
        if idx.dim() != 3 or tuple(pr.shape) != tuple(idx.shape):
            raise ValueError(
                f"next_states and probs must both have shape [S, A, K], got {list(idx.shape)} "
                f"and {list(pr.shape)}"
            )
        S, A, K = idx.shape
        if idx.numel() and (idx.min() < 0 or idx.max() >= S):
            raise ValueError(f"next_states must lie in [0, {S}), got values up to {int(idx.max())}")
        # build P already coalesced (sorted by (s, a, s'), repeats summed): sorting the K
        # successors of each row is much cheaper than a global sort of S*A*K entries
        idx, order = torch.sort(idx.long(), dim=-1)
        pr = torch.gather(pr.to(idx.device), -1, order)
        dev = idx.device
        if bool((idx[..., 1:] != idx[..., :-1]).all()):  # no repeated successor
            indices = torch.empty(3, S * A * K, dtype=torch.long, device=dev)
            indices[0] = torch.arange(S, device=dev).repeat_interleave(A * K)
            indices[1] = torch.arange(A, device=dev).repeat_interleave(K).repeat(S)
            indices[2] = idx.view(-1)
            values = pr.reshape(-1)
        else:
            row = torch.arange(S * A, device=dev).repeat_interleave(K)
            key, group = torch.unique_consecutive(row * S + idx.view(-1), return_inverse=True)
            values = torch.zeros(key.numel(), dtype=pr.dtype, device=dev)
            values.index_add_(0, group, pr.reshape(-1))
            indices = torch.stack([key // (S * A), (key // S) % A, key % S])
        P = torch.sparse_coo_tensor(
            indices, values, (S, A, S), check_invariants=False, is_coalesced=True
        )
        return cls(P, R, gamma, terminal, **kwargs)

    @classmethod
    def from_gymnasium(cls, env: Any, gamma: float | None = None, **make_kwargs: Any) -> TabularMDP:
        """Build the MDP of a gymnasium ``toy_text`` env (or a course env) from its table.

        See :func:`from_gymnasium`.
        """
        return from_gymnasium(env, gamma, **make_kwargs)


def _coo3_to_csr2(P: Tensor) -> Tensor:
    """Sparse COO ``[S, A, S]`` -> CSR ``[S*A, S]`` for fast matrix-vector products."""
    S, A, _ = P.shape
    i = P.indices()
    rows = i[0] * A + i[1]
    coo2 = torch.sparse_coo_tensor(  # P is coalesced, so rows and columns are sorted
        torch.stack([rows, i[2]]),
        P.values(),
        (S * A, S),
        check_invariants=False,
        is_coalesced=True,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        csr = coo2.to_sparse_csr()
        if csr.values().numel() < 2**31 and S < 2**31:
            # 32-bit indices halve the memory a product reads: 2x faster sweeps on CPU
            csr = torch.sparse_csr_tensor(
                csr.crow_indices().to(torch.int32),
                csr.col_indices().to(torch.int32),
                csr.values(),
                csr.shape,
                check_invariants=False,
            )
        return csr


def from_gymnasium(env: Any, gamma: float | None = None, **make_kwargs: Any) -> TabularMDP:
    """Build a :class:`TabularMDP` from a gymnasium env with a transition table.

    ``env`` is an environment or an id such as ``"FrozenLake-v1"`` (``make_kwargs``
    go to ``gymnasium.make``): a toy_text env (FrozenLake, CliffWalking, Taxi), whose
    table ``env.unwrapped.P[s][a] = [(prob, next_state, reward, terminated), ...]`` is
    read by :func:`rlcourse.envs.as_tabular_env`, or one of the course's envs.

    Termination comes from each transition's ``terminated`` flag, not from the
    state table: a state entered with ``terminated=True`` ends the episode, so it
    becomes an absorbing terminal state with zero reward (CliffWalking's goal,
    for instance, is not absorbing in gymnasium's table).

    ``gamma`` is required for gymnasium's envs, which define no discount; the
    course's textbook envs default to the book's value.
    """
    from rlcourse.envs.tabular import as_tabular_env

    return as_tabular_env(env, **make_kwargs).to_mdp(gamma)
