"""The gambler's problem (Sutton & Barto, Example 4.3).

A gambler with capital ``s`` in ``1..goal-1`` stakes ``a`` in ``1..min(s, goal - s)``
on a coin flip: heads (probability ``p_h``) wins the stake, tails loses it. The
episode ends at capital 0 or ``goal``; reaching the goal pays +1, everything
else 0, undiscounted. ``v*(s)`` is then the probability of reaching the goal.

The book allows stakes ``0..min(s, goal - s)``. A stake of 0 changes nothing, so with
``gamma = 1`` its value ``q(s, 0) = v(s)`` ties with the best stake in every state once
the values have converged: "the smallest optimal stake" would then be 0 everywhere, a
policy that never bets and never reaches the goal. The stakes here start at 1
(``zero_stake=True`` gives the book's action set).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlcourse.envs.tabular import TabularEnv


class GamblerEnv(TabularEnv):
    """The gambler's problem as a gymnasium env; the action is the stake.

    The action space is ``Discrete(goal // 2 + 1)`` (stakes ``0..goal//2``); the stakes
    allowed at the current capital are given as ``info["action_mask"]``: ``1..min(s, goal -
    s)``, and 0 too with ``zero_stake=True`` (the book's action set). A stake that is not
    allowed places no bet: the capital stays as it is, the reward is 0, and
    ``info["invalid_action"]`` is True.
    """

    def __init__(
        self,
        p_h: float = 0.4,
        goal: int = 100,
        render_mode: str | None = None,
        *,
        zero_stake: bool = False,
    ) -> None:
        if not 0.0 < p_h < 1.0:
            raise ValueError(f"p_h (probability of heads) must be in (0, 1), got {p_h}")
        if not isinstance(goal, int) or goal < 2:
            raise ValueError(f"goal must be an integer >= 2, got {goal!r}")
        self.p_h, self.goal = float(p_h), goal
        S, A = goal + 1, goal // 2 + 1
        s = np.arange(S)[:, None]
        a = np.arange(A)[None, :]
        allowed = (a >= (0 if zero_stake else 1)) & (a <= np.minimum(s, goal - s))
        terminal = np.zeros(S, dtype=bool)
        terminal[[0, goal]] = True
        allowed[terminal] = True  # nothing to choose in a terminal state

        P = np.zeros((S, A, S))
        reward = np.zeros((S, A, S))
        ss, aa = np.nonzero(allowed & ~terminal[:, None])
        P[ss, aa, ss + aa] += p_h  # heads: win the stake
        P[ss, aa, ss - aa] += 1.0 - p_h  # tails: lose it
        reward[ss, aa, goal] = 1.0  # +1 on reaching the goal, 0 otherwise
        no_bet = ~allowed | terminal[:, None]
        s_no, a_no = np.nonzero(no_bet)
        P[s_no, a_no, s_no] = 1.0  # no bet: the capital stays
        initial = np.zeros(S)
        initial[1:goal] = 1.0 / (goal - 1)
        super().__init__(
            P,
            reward,
            terminal,
            initial,
            1.0,
            action_names=tuple(f"stake {k}" for k in range(A)),
            action_mask=allowed,
            name=f"Gambler's problem (p_h={p_h}{', stakes from 0' if zero_stake else ''})",
            render_mode=render_mode,
        )

    def step(self, action: Any) -> tuple[int, float, bool, bool, dict[str, Any]]:
        valid = self.action_space.contains(action) and bool(self.action_mask[self._state, action])
        obs, reward, terminated, truncated, info = super().step(action)
        info["invalid_action"] = not valid
        return obs, reward, terminated, truncated, info

    def _render_text(self) -> str:
        return f"capital {self._state} of {self.goal}\n"

    def _render_rgb(self, cell: int = 48) -> np.ndarray:
        width = 4 * (self.goal + 1)
        img = np.full((cell, width, 3), 240, dtype=np.uint8)
        img[cell // 4 : 3 * cell // 4, : 4 * self._state] = (120, 200, 120)
        img[:, 4 * self.goal :] = (60, 140, 60)
        return img
