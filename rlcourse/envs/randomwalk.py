"""The 5-state random walk of Sutton & Barto, Example 6.2 (and its n-state versions).

States ``0 .. n+1`` in a row; ``0`` and ``n+1`` are terminal. Episodes start in the
centre; the two actions move left or right. Entering the right end pays +1,
everything else 0, undiscounted. Under the random policy (each action with
probability 1/2) the true value of state ``k`` is ``k / (n + 1)``: 1/6 ... 5/6.
"""

from __future__ import annotations

import numpy as np

from rlcourse.envs.tabular import TabularEnv
from rlcourse.mdp import GridInfo


class RandomWalkEnv(TabularEnv):
    """A random walk over ``n_states`` non-terminal states; actions 0 left, 1 right."""

    def __init__(self, n_states: int = 5, render_mode: str | None = None) -> None:
        if not isinstance(n_states, int) or n_states < 1 or n_states % 2 == 0:
            raise ValueError(f"n_states must be a positive odd integer, got {n_states!r}")
        S = n_states + 2
        P = np.zeros((S, 2, S))
        reward = np.zeros((S, 2, S))
        inner = np.arange(1, S - 1)
        P[inner, 0, inner - 1] = 1.0
        P[inner, 1, inner + 1] = 1.0
        reward[S - 2, 1, S - 1] = 1.0  # +1 for stepping off the right end
        terminal = np.zeros(S, dtype=bool)
        terminal[[0, S - 1]] = True
        P[terminal, :, np.flatnonzero(terminal)] = 1.0
        initial = np.zeros(S)
        initial[S // 2] = 1.0
        layout = ("T" + "." * n_states + "G",)
        super().__init__(
            P,
            reward,
            terminal,
            initial,
            1.0,
            action_names=("left", "right"),
            grid=GridInfo((1, S), tuple((0, c) for c in range(S)), layout),
            name=f"random walk ({n_states} states)",
            render_mode=render_mode,
        )

    def true_values(self) -> np.ndarray:
        """``v_pi`` of the random policy: ``k / (n + 1)`` for state ``k`` (0 at the ends)."""
        S = self.observation_space.n
        v = np.arange(S) / (S - 1)
        v[[0, S - 1]] = 0.0
        return v
