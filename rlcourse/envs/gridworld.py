"""Grid worlds drawn as lists of strings, and the textbook's grid-world examples.

Cell letters::

    .  free cell            S  start cell (episodes start on one, chosen uniformly)
    #  wall (not a state)   G  goal: terminal, pays goal_reward on entry
    T  trap: terminal, pays trap_reward on entry

Actions are ``0 up, 1 right, 2 down, 3 left`` (``env.unwrapped.action_names``).
A move into a wall or off the grid leaves the agent where it is and pays
``bump_reward``. With ``slip_prob > 0`` the agent slides, with that probability,
to one of the two directions perpendicular to the one chosen (FrozenLake's ice is
``slip_prob=2/3``). A teleport cell sends the agent, whatever it does, to another
cell with a fixed reward (the A and B states of Sutton & Barto's Example 3.5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from rlcourse.envs.tabular import TabularEnv
from rlcourse.mdp import GridInfo

ACTION_NAMES = ("up", "right", "down", "left")
MOVES = np.array([(-1, 0), (0, 1), (1, 0), (0, -1)])  # (d_row, d_col) of each action
CELL_LETTERS = set(".S#GT") | {"A", "B"}
TELEPORT_TARGET_COLOUR = (232, 218, 245)  # lighter than the teleport cells A and B

Cell = tuple[int, int]


class GridWorldEnv(TabularEnv):
    """A grid world from a layout given as a list of strings (see the module docstring).

    Args:
        layout: one string per row, all the same length.
        step_reward: reward of every move that enters a non-terminal cell.
        goal_reward, trap_reward: reward on entering a ``G`` / ``T`` cell.
        bump_reward: reward of a move into a wall or off the grid (default: ``step_reward``).
        slip_prob: probability of sliding perpendicular to the chosen direction.
        teleports: ``{(row, col): ((row2, col2), reward)}``: every action in the first cell
            moves the agent to the second and pays ``reward``.
        wind: upward push of each column (Example 6.5): after a move from column ``c`` the
            agent is shifted ``wind[c]`` cells up (stopping at the top row).
        gamma: the discount the task is posed with.
        render_mode: ``"ansi"``, ``"rgb_array"`` or ``None``.
    """

    def __init__(
        self,
        layout: Sequence[str] = ("S...", ".#.T", "...G"),
        *,
        step_reward: float = 0.0,
        goal_reward: float = 1.0,
        trap_reward: float = -1.0,
        bump_reward: float | None = None,
        slip_prob: float = 0.0,
        teleports: Mapping[Cell, tuple[Cell, float]] | None = None,
        wind: Sequence[int] | None = None,
        gamma: float = 0.9,
        name: str = "GridWorld",
        render_mode: str | None = None,
    ) -> None:
        grid, chars = _parse_layout(layout)
        if not 0.0 <= slip_prob <= 1.0:
            raise ValueError(f"slip_prob must be in [0, 1], got {slip_prob}")
        bump_reward = step_reward if bump_reward is None else bump_reward
        rows, cols = grid.shape
        cells = np.array(grid.cells)  # [S, 2]
        S, A = len(cells), len(ACTION_NAMES)
        state_of = np.full((rows, cols), -1)
        state_of[cells[:, 0], cells[:, 1]] = np.arange(S)
        letter = chars[cells[:, 0], cells[:, 1]]  # [S]
        terminal = np.isin(letter, ["G", "T"])
        entry_reward = np.where(
            letter == "G", goal_reward, np.where(letter == "T", trap_reward, step_reward)
        )

        # Where each direction leads from each state: [S, 4] next state, bumped or not.
        target = cells[:, None, :] + MOVES[None, :, :]
        inside = (target >= 0).all(-1) & (target < (rows, cols)).all(-1)
        tr, tc = np.where(inside, target[..., 0], 0), np.where(inside, target[..., 1], 0)
        dest = np.where(inside, state_of[tr, tc], -1)
        bumped = dest < 0
        dest = np.where(bumped, np.arange(S)[:, None], dest)
        if wind is not None:
            wind = np.asarray(wind, dtype=int)
            if wind.shape != (cols,) or (wind < 0).any():
                raise ValueError(f"wind must give a non-negative push for each of {cols} columns")
            if (chars == "#").any():
                raise ValueError("wind is only supported on layouts without walls")
            # The wind of the column the agent leaves pushes it up, as in the book.
            pushed_row = np.maximum(cells[dest, 0] - wind[cells[:, 1]][:, None], 0)
            dest = state_of[pushed_row, cells[dest, 1]]
        move_reward = np.where(bumped, bump_reward, entry_reward[dest])  # [S, 4]

        # Chosen direction with 1 - slip_prob, each perpendicular one with slip_prob / 2.
        P = np.zeros((S, A, S))
        reward = np.zeros((S, A, S))
        s_idx = np.arange(S)[:, None]
        for offset, prob in ((0, 1.0 - slip_prob), (1, slip_prob / 2), (3, slip_prob / 2)):
            d = (np.arange(A) + offset) % A  # actual direction for each chosen action
            np.add.at(P, (s_idx, np.arange(A)[None, :], dest[:, d]), prob)
            reward[s_idx, np.arange(A)[None, :], dest[:, d]] = move_reward[:, d]

        for (r, c), ((r2, c2), r_tel) in (teleports or {}).items():
            for cell in ((r, c), (r2, c2)):
                if not (0 <= cell[0] < rows and 0 <= cell[1] < cols) or state_of[cell] < 0:
                    raise ValueError(f"teleport cell {cell} is off the grid or a wall")
            s, s2 = state_of[r, c], state_of[r2, c2]
            P[s], reward[s] = 0.0, 0.0
            P[s, :, s2], reward[s, :, s2] = 1.0, r_tel

        # Terminal states are absorbing with zero reward.
        P[terminal], reward[terminal] = 0.0, 0.0
        P[terminal, :, np.flatnonzero(terminal)] = 1.0

        start = letter == "S"
        if not start.any():
            start = ~terminal
        if not start.any():
            raise ValueError("the layout has no cell to start from")
        super().__init__(
            P,
            reward,
            terminal,
            start / start.sum(),
            gamma,
            action_names=ACTION_NAMES,
            grid=grid,
            name=name,
            render_mode=render_mode,
        )
        for (r2, c2), _ in (teleports or {}).values():
            self.cell_colours[(r2, c2)] = TELEPORT_TARGET_COLOUR


def _parse_layout(layout: Sequence[str]) -> tuple[GridInfo, np.ndarray]:
    if isinstance(layout, str) or not layout or not all(isinstance(r, str) for r in layout):
        raise TypeError("layout must be a non-empty list of strings, one per row")
    widths = {len(r) for r in layout}
    if len(widths) != 1 or 0 in widths:
        raise ValueError(
            f"layout rows must all have the same, non-zero length, got {sorted(widths)}"
        )
    chars = np.array([list(r) for r in layout])
    unknown = set(chars.flat) - CELL_LETTERS
    if unknown:
        raise ValueError(
            f"unknown cell letters {sorted(str(c) for c in unknown)} in layout; "
            "use . S # G T (and A B for labels)"
        )
    cells = tuple((int(r), int(c)) for r, c in zip(*np.nonzero(chars != "#"), strict=True))
    if not cells:
        raise ValueError("layout has no free cell")
    return GridInfo(chars.shape, cells, tuple(layout)), chars


# ---------------------------------------------------------------------------
# Sutton & Barto's grid-world examples


def example_3_5(render_mode: str | None = None) -> GridWorldEnv:
    """Example 3.5 (Figure 3.2): 5x5 grid, gamma 0.9. From A every action moves the
    agent to A' with +10, from B to B' with +5; moving off the grid costs 1 and
    leaves the agent in place; every other move pays 0. A continuing task."""
    return GridWorldEnv(
        (".A.B.", ".....", ".....", ".....", "....."),
        step_reward=0.0,
        bump_reward=-1.0,
        teleports={(0, 1): ((4, 1), 10.0), (0, 3): ((2, 3), 5.0)},
        gamma=0.9,
        name="Example 3.5 grid world",
        render_mode=render_mode,
    )


def example_6_5(render_mode: str | None = None) -> GridWorldEnv:
    """Example 6.5, the windy grid world: 7x10, start S, goal G, an upward wind of
    0 0 0 1 1 1 2 2 1 0 cells per column, reward -1 per step, undiscounted."""
    return GridWorldEnv(
        (
            "..........",
            "..........",
            "..........",
            "S......G..",
            "..........",
            "..........",
            "..........",
        ),
        step_reward=-1.0,
        goal_reward=-1.0,
        wind=(0, 0, 0, 1, 1, 1, 2, 2, 1, 0),
        gamma=1.0,
        name="Example 6.5 windy grid world",
        render_mode=render_mode,
    )


def example_4_1(render_mode: str | None = None) -> GridWorldEnv:
    """Example 4.1 (Figure 4.1): 4x4 grid with terminal corners, reward -1 on every
    transition, undiscounted (gamma = 1)."""
    return GridWorldEnv(
        ("G...", "....", "....", "...G"),
        step_reward=-1.0,
        goal_reward=-1.0,
        gamma=1.0,
        name="Example 4.1 grid world",
        render_mode=render_mode,
    )
