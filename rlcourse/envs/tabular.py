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
        gamma: the discount the task is posed with (used by ``to_mdp``); ``None`` when
            the task defines none (gymnasium's envs) and ``to_mdp`` must be given one.
        action_names, grid, action_mask, name: as in :class:`~rlcourse.mdp.TabularMDP`.
        render_mode: ``"ansi"`` or ``"rgb_array"`` (or ``None``).
        max_episode_steps: the time limit the task is registered with (for vector envs).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        P: np.ndarray,
        reward: np.ndarray,
        terminal: np.ndarray,
        initial: np.ndarray,
        gamma: float | None,
        *,
        action_names: tuple[str, ...] | None = None,
        grid: GridInfo | None = None,
        action_mask: np.ndarray | None = None,
        name: str = "",
        render_mode: str | None = None,
        max_episode_steps: int | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, "
                f"got {render_mode!r}"
            )
        S, A, _ = P.shape
        self.P, self.reward = P, reward
        self.terminal, self.initial = terminal.astype(bool), initial
        self.gamma = None if gamma is None else check_gamma(gamma)
        self.max_episode_steps = max_episode_steps
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
        if gamma is None and self.gamma is None:
            raise TypeError(
                f"{self.name or 'this env'} defines no discount factor: pass gamma, e.g. "
                "from_gymnasium(env, gamma=0.99)"
            )
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


# ---------------------------------------------------------------------------
# gymnasium's toy_text environments as TabularEnvs


def _action_names(unwrapped: Any) -> tuple[str, ...] | None:
    """The env's own action numbering, read from gymnasium's constants where it has them."""
    cls = type(unwrapped).__name__
    if cls == "FrozenLakeEnv":
        from gymnasium.envs.toy_text import frozen_lake as m

        named = {m.LEFT: "left", m.DOWN: "down", m.RIGHT: "right", m.UP: "up"}
    elif cls == "CliffWalkingEnv":
        from gymnasium.envs.toy_text import cliffwalking as m

        named = {m.UP: "up", m.RIGHT: "right", m.DOWN: "down", m.LEFT: "left"}
    elif cls == "TaxiEnv":
        # gymnasium documents Taxi's actions: 0 south, 1 north, 2 east, 3 west, 4 pickup, 5 dropoff
        named = dict(enumerate(("south", "north", "east", "west", "pickup", "dropoff")))
    else:
        return None
    return tuple(named[a] for a in range(len(named)))


def _grid_info(unwrapped: Any) -> GridInfo | None:
    cls = type(unwrapped).__name__
    if cls == "FrozenLakeEnv":
        desc = unwrapped.desc
        layout = tuple(bytes(row).decode() for row in desc)
        rows, cols = desc.shape
    elif cls == "CliffWalkingEnv":
        rows, cols = unwrapped.shape
        chars = np.full((rows, cols), ".")
        chars[unwrapped._cliff] = "C"
        chars[np.unravel_index(unwrapped.start_state_index, (rows, cols))] = "S"
        chars[rows - 1, cols - 1] = "G"
        layout = tuple("".join(r) for r in chars)
    else:
        return None
    cells = tuple((r, c) for r in range(rows) for c in range(cols))
    return GridInfo((int(rows), int(cols)), cells, layout)


def as_tabular_env(env: Any, **make_kwargs: Any) -> TabularEnv:
    """The :class:`TabularEnv` of an env or env id with a transition table.

    The course's envs are returned as they are (unwrapped). A gymnasium toy_text env
    (FrozenLake, CliffWalking, Taxi) is read from its table
    ``env.unwrapped.P[s][a] = [(prob, next_state, reward, terminated), ...]``: a state
    entered with ``terminated=True`` becomes terminal (absorbing, zero reward), and the
    reward of ``(s, a, s')`` is the table's (toy_text rewards are deterministic given
    ``s'``). The registered time limit is kept as ``max_episode_steps``.
    """
    if isinstance(env, str):
        try:
            env = gym.make(env, **make_kwargs)
        except gym.error.Error as err:
            raise ValueError(f"unknown environment id {env!r}: {err}") from err
    elif make_kwargs:
        raise TypeError("keyword arguments for gymnasium.make are only accepted with an env id")
    u = env.unwrapped
    spec = getattr(env, "spec", None)
    if isinstance(u, TabularEnv):
        if u.max_episode_steps is None and spec is not None:
            u.max_episode_steps = spec.max_episode_steps
        return u
    label = spec.id if spec is not None else type(u).__name__
    table = getattr(u, "P", None)
    if not isinstance(table, dict):
        raise ValueError(
            f"{label} has no transition table (env.unwrapped.P); tabular methods support the "
            "toy_text envs (FrozenLake, CliffWalking, Taxi) and the course's envs"
        )
    if not isinstance(env.observation_space, gym.spaces.Discrete) or not isinstance(
        env.action_space, gym.spaces.Discrete
    ):
        raise ValueError(f"{label} must have Discrete observation and action spaces")
    S, A = int(env.observation_space.n), int(env.action_space.n)

    # Flatten the nested dict once: one row per (s, a, outcome).
    rows = [
        (s, a, s2, p, r, done)
        for s, per_action in table.items()
        for a, outcomes in per_action.items()
        for p, s2, r, done in outcomes
    ]
    s_idx, a_idx, s_next = (np.array([row[i] for row in rows], dtype=np.int64) for i in range(3))
    probs, rewards = (np.array([row[i] for row in rows], dtype=np.float64) for i in (3, 4))
    dones = np.array([row[5] for row in rows], dtype=bool)

    terminal = np.zeros(S, dtype=bool)
    terminal[s_next[dones]] = True
    # Only transitions an episode can take must agree: from states reachable from the
    # start without passing through a terminal state (Taxi's table, for one, also lists
    # moves between "passenger already delivered" states that no episode visits).
    initial = np.asarray(getattr(u, "initial_state_distrib", np.ones(S) / S), dtype=np.float64)
    live = (probs > 0) & ~terminal[s_idx]
    reach = initial > 0
    while True:
        new = reach.copy()
        new[s_next[live & reach[s_idx]]] = True
        if (new == reach).all():
            break
        reach = new
    mixed = terminal[s_next] & ~dones & live & reach[s_idx]
    if mixed.any():
        i = int(np.flatnonzero(mixed)[0])
        raise ValueError(
            f"{label}: state {s_next[i]} is entered both with and without termination, so "
            "termination is not a property of the state and cannot be made absorbing"
        )
    P = np.zeros((S, A, S))
    weighted = np.zeros((S, A, S))
    np.add.at(P, (s_idx, a_idx, s_next), probs)
    np.add.at(weighted, (s_idx, a_idx, s_next), probs * rewards)
    reward = np.divide(weighted, P, out=np.zeros_like(P), where=P > 0)
    # The episode ends on entering a terminal state: make it absorbing with zero reward.
    P[terminal] = 0.0
    P[terminal, :, np.flatnonzero(terminal)] = 1.0
    reward[terminal] = 0.0
    return TabularEnv(
        P,
        reward,
        terminal,
        initial,
        None,
        action_names=_action_names(u),
        grid=_grid_info(u),
        name=label,
        max_episode_steps=None if spec is None else spec.max_episode_steps,
    )
