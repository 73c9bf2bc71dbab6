"""A gymnasium environment that samples a finite MDP given by its tables.

Every tabular environment of the course is one of these: the env samples
``s' ~ P[s, a, :]`` and pays ``reward[s, a, s']``, and ``to_mdp()`` hands the very
same tables to dynamic programming, so that what an agent learns by trial and
error can be checked against the exact answer.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from rlcourse.mdp import GridInfo, TabularMDP, check_gamma

# RGB colours of the cell letters, shared by every grid rendering of the course
CELL_COLOURS: dict[str, tuple[int, int, int]] = {
    ".": (240, 240, 235),
    "F": (240, 240, 235),
    "S": (200, 220, 245),
    "#": (70, 70, 70),
    "G": (120, 200, 120),
    "T": (230, 110, 100),
    "H": (90, 120, 170),
    "C": (230, 110, 100),
    "A": (205, 175, 235),
    "B": (205, 175, 235),
}
AGENT_COLOUR = (30, 60, 160)


class TabularEnv(gym.Env):
    """A gymnasium env over states ``0..S-1`` and actions ``0..A-1`` given by tables.

    Args:
        P: transition probabilities ``[S, A, S]`` (rows sum to 1).
        reward: reward of each transition ``[S, A, S]`` (the MDP's ``R[s, a]`` is its
            expectation under ``P``).
        terminal: bool ``[S]``; entering one ends the episode (``terminated=True``).
        initial: start distribution ``[S]``.
        gamma: the discount the task is posed with (used by ``to_mdp``).
        action_names, grid, action_mask, name: as in :class:`~rlcourse.mdp.TabularMDP`.
        render_mode: ``"ansi"`` or ``"rgb_array"`` (or ``None``).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        P: np.ndarray,
        reward: np.ndarray,
        terminal: np.ndarray,
        initial: np.ndarray,
        gamma: float,
        *,
        action_names: tuple[str, ...] | None = None,
        grid: GridInfo | None = None,
        action_mask: np.ndarray | None = None,
        name: str = "",
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, "
                f"got {render_mode!r}"
            )
        S, A, _ = P.shape
        self.P, self.reward = P, reward
        self.terminal, self.initial = terminal.astype(bool), initial
        self.gamma = check_gamma(gamma)
        self.action_names, self.grid, self.action_mask = action_names, grid, action_mask
        self.name, self.render_mode = name, render_mode
        self.observation_space = gym.spaces.Discrete(S)
        self.action_space = gym.spaces.Discrete(A)
        self._cdf = np.cumsum(P, axis=-1)
        self._cdf[..., -1] = 1.0  # guard against rounding: the last bin catches u ~ 1
        self._state = 0
        self._last_action: int | None = None
        #: extra cell colours for the rgb rendering, {(row, col): (r, g, b)}
        self.cell_colours: dict[tuple[int, int], tuple[int, int, int]] = {}

    # ---------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Start an episode; ``options={"start_state": s}`` starts it in state ``s``."""
        super().reset(seed=seed)
        start = (options or {}).get("start_state")
        if start is None:
            self._state = int(self.np_random.choice(len(self.initial), p=self.initial))
        elif not self.observation_space.contains(start):
            raise ValueError(
                f"options['start_state'] must be a state in [0, {self.observation_space.n}), "
                f"got {start!r}"
            )
        else:
            self._state = int(start)
        self._last_action = None
        return self._state, self._info(1.0)

    def step(self, action: Any) -> tuple[int, float, bool, bool, dict[str, Any]]:
        if not self.action_space.contains(action):
            raise ValueError(
                f"action must be an integer in [0, {self.action_space.n}), got {action!r}"
            )
        s, a = self._state, int(action)
        s_next = int(np.searchsorted(self._cdf[s, a], self.np_random.random(), side="right"))
        reward = float(self.reward[s, a, s_next])
        self._state, self._last_action = s_next, a
        return s_next, reward, bool(self.terminal[s_next]), False, self._info(self.P[s, a, s_next])

    def _info(self, prob: float) -> dict[str, Any]:
        info: dict[str, Any] = {"prob": float(prob)}
        if self.action_mask is not None:
            info["action_mask"] = self.action_mask[self._state].astype(np.int8)
        return info

    def to_mdp(self, gamma: float | None = None) -> TabularMDP:
        """The env's MDP with expected rewards ``R[s, a] = sum_s' P[s, a, s'] reward[s, a, s']``."""
        return TabularMDP(
            self.P,
            (self.P * self.reward).sum(-1),
            self.gamma if gamma is None else gamma,
            self.terminal,
            action_mask=None if self.action_mask is None else self.action_mask.astype(bool),
            action_names=self.action_names,
            grid=self.grid,
            initial=self.initial,
            name=self.name,
        )

    # -------------------------------------------------------------- rendering
    def render(self) -> str | np.ndarray | None:
        if self.render_mode == "ansi":
            return self._render_text()
        if self.render_mode == "rgb_array":
            return self._render_rgb()
        return None

    def _render_text(self) -> str:
        if self.grid is None:
            return f"state {self._state}\n"
        rows, cols = self.grid.shape
        chars = (
            [list(r) for r in self.grid.layout]
            if self.grid.layout
            else [["."] * cols for _ in range(rows)]
        )
        r, c = self.grid.cells[self._state]
        chars[r][c] = "@"
        head = ""
        if self._last_action is not None and self.action_names is not None:
            head = f"  ({self.action_names[self._last_action]})\n"
        return head + "\n".join("".join(row) for row in chars) + "\n"

    def _render_rgb(self, cell: int = 48) -> np.ndarray:
        if self.grid is None:
            raise NotImplementedError(f"{type(self).__name__} has no grid to draw")
        rows, cols = self.grid.shape
        layout = self.grid.layout or tuple("." * cols for _ in range(rows))
        img = np.zeros((rows * cell, cols * cell, 3), dtype=np.uint8)
        for r, line in enumerate(layout):
            for c, ch in enumerate(line):
                img[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell] = CELL_COLOURS.get(
                    ch, CELL_COLOURS["."]
                )
        for (r, c), colour in self.cell_colours.items():
            img[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell] = colour
        img[::cell, :] = 160  # grid lines
        img[:, ::cell] = 160
        r, c = self.grid.cells[self._state]
        yy, xx = np.mgrid[0:cell, 0:cell]
        disc = (yy - cell / 2) ** 2 + (xx - cell / 2) ** 2 <= (cell * 0.3) ** 2
        img[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell][disc] = AGENT_COLOUR
        return img
