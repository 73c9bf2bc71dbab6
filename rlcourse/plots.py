"""Figures of the course: value heatmaps with policy arrows, convergence curves,
the gambler's problem.

Every function draws on a matplotlib ``Axes`` (a new figure when ``ax`` is None)
and returns it, so figures can be combined with ``plt.subplots``. Arrows are
read from the MDP's own action names (FrozenLake's action 0 is *left*,
CliffWalking's is *up*), never from an assumed order.

:func:`episode_animation` replays one episode of an agent as an inline JavaScript
animation, with what the agent decides at every step drawn beside the env's frame.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.animation import HTMLWriter
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from rlcourse import dp
from rlcourse.agent import Decision, check_agent_env, decide
from rlcourse.envs.describe import action_labels, rendering_env
from rlcourse.evaluate import DEFAULT_MAX_STEPS
from rlcourse.i18n import N_, figure_font, figure_tr
from rlcourse.mdp import TabularMDP

#: one colour per algorithm, the same in every chapter
COLOURS: dict[str, str] = {
    "policy evaluation": "#4C72B0",
    "value iteration": "#DD8452",
    "policy iteration": "#55A868",
    "monte carlo": "#8172B3",
    "td(0)": "#C44E52",
    "sarsa": "#937860",
    "q-learning": "#DA8BC3",
    "expected sarsa": "#8C8C8C",
}
VALUE_CMAP = "viridis"
#: cells that are no state of an episode: walls and unreachable states, and terminal states
NON_STATE_COLOUR = "#555555"
TERMINAL_COLOUR = "#D9D9D9"

# (d_col, d_row) on screen for the direction an action name means
_DIRECTIONS: dict[str, tuple[float, float]] = {
    "up": (0, -1),
    "north": (0, -1),
    "down": (0, 1),
    "south": (0, 1),
    "left": (-1, 0),
    "west": (-1, 0),
    "right": (1, 0),
    "east": (1, 0),
}


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    return plt.figure(figsize=figsize, layout="constrained").add_subplot()


def action_directions(mdp: TabularMDP) -> np.ndarray:
    """``[A, 2]`` screen direction ``(d_col, d_row)`` of each action; ``(0, 0)`` for non-moves."""
    if mdp.action_names is None:
        raise ValueError(
            f"{mdp.name or 'this MDP'} has no action_names, so its actions cannot be drawn as "
            "arrows; pass action_names=(...) to TabularMDP"
        )
    return np.array([_DIRECTIONS.get(n.lower(), (0.0, 0.0)) for n in mdp.action_names], float)


def plot_value_grid(
    mdp: TabularMDP,
    V: Tensor,
    *,
    policy: Tensor | bool = True,
    ax: Axes | None = None,
    title: str | None = None,
    decimals: int = 1,
    show_values: bool = True,
    tol: float = 1e-6,
    vmin: float | None = None,
    vmax: float | None = None,
    colorbar: bool = True,
    agent: int | None = None,
    mask: bool = True,
) -> Axes:
    """Heatmap of ``V [S]`` over the MDP's grid, with policy arrows.

    ``policy=True`` draws the greedy actions of ``V`` (every action within ``tol``
    of the best, so ties show as several arrows); a float ``[S, A]`` policy draws the
    actions it gives positive probability, a bool ``[S, A]`` mask the actions it marks;
    ``False`` draws none. Walls are dark grey, terminal cells carry no arrows. ``agent``
    (a state) is marked with a red ring.

    ``mask=True`` colours only the states an episode can be in before it ends: states
    that no policy reaches from the start (:func:`rlcourse.dp.reachable_states`, e.g.
    CliffWalking's cliff) are drawn dark like walls, without value or arrow, and
    terminal states light grey with their value (0 by definition) in grey, outside the
    colour scale, which then spans the values that mean something.
    """
    if mdp.grid is None:
        raise ValueError(f"{mdp.name or 'this MDP'} has no grid layout to draw a heatmap on")
    V = torch.as_tensor(V).detach().to("cpu", torch.float64)
    if tuple(V.shape) != (mdp.n_states,):
        raise ValueError(f"V must have shape [S] = [{mdp.n_states}], got {list(V.shape)}")
    rows, cols = mdp.grid.shape
    cells = np.array(mdp.grid.cells)
    values = np.full((rows, cols), np.nan)
    values[cells[:, 0], cells[:, 1]] = V.numpy()
    terminal = mdp.terminal.cpu().numpy()
    unreachable = ~dp.reachable_states(mdp).cpu().numpy() if mask else np.zeros_like(terminal)
    masked_terminal = terminal & mask & ~unreachable
    hidden = np.isnan(values)
    hidden[cells[:, 0], cells[:, 1]] |= unreachable | masked_terminal
    ax = _new_axes(ax, (0.9 * cols + 1.2, 0.9 * rows + 0.6))
    cmap = plt.get_cmap(VALUE_CMAP).with_extremes(bad=NON_STATE_COLOUR)
    # a masked array: hidden cells take the "bad" colour and stay out of the colour scale
    im = ax.imshow(np.ma.masked_array(values, hidden), cmap=cmap, vmin=vmin, vmax=vmax)
    for r, c in cells[masked_terminal]:
        ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, color=TERMINAL_COLOUR, linewidth=0))
    if colorbar:
        ax.figure.colorbar(im, ax=ax, shrink=0.8, label="value")
    ax.set_xticks(np.arange(cols))
    ax.set_yticks(np.arange(rows))
    ax.set_xticks(np.arange(cols + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(rows + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=1)
    ax.tick_params(which="both", length=0, labelsize=8)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    if title:
        ax.set_title(title)

    if mdp.grid.layout is not None:
        for s, (r, c) in enumerate(mdp.grid.cells):
            letter = mdp.grid.layout[r][c]
            if letter not in ".FS" or terminal[s]:
                ax.text(
                    c - 0.42,
                    r - 0.42,
                    letter,
                    fontsize=7,
                    color="#333333" if masked_terminal[s] else "white",
                    va="top",
                    ha="left",
                    fontweight="bold",
                )
    if show_values:
        norm = im.norm
        for s, (r, c) in enumerate(mdp.grid.cells):
            if np.isnan(values[r, c]) or unreachable[s]:
                continue
            shade = cmap(norm(values[r, c]))
            light = 0.299 * shade[0] + 0.587 * shade[1] + 0.114 * shade[2] > 0.55
            ax.text(
                c,
                r + (0.28 if policy is not False else 0.0),
                f"{values[r, c]:.{decimals}f}",
                ha="center",
                va="center",
                fontsize=8,
                color="#777777" if masked_terminal[s] else "black" if light else "white",
            )

    if policy is not False:
        if policy is True:
            shown = dp.greedy_ties(mdp, V.to(mdp.device), tol).cpu().numpy()
        elif torch.as_tensor(policy).dtype == torch.bool:
            shown = torch.as_tensor(policy).cpu().numpy().copy()
        else:
            shown = mdp.check_policy(policy).cpu().numpy() > 0
        shown[terminal | unreachable] = False
        direction = action_directions(mdp)  # [A, 2]
        s_idx, a_idx = np.nonzero(shown & (np.abs(direction).sum(1) > 0)[None, :])
        rc = cells[s_idx]
        d = direction[a_idx] * 0.3  # arrows start at the centre and point the way
        centre_row = rc[:, 0] - (0.1 if show_values else 0.0)
        ax.quiver(
            rc[:, 1],
            centre_row,
            d[:, 0],
            d[:, 1],
            angles="xy",
            scale_units="xy",
            scale=1,
            pivot="tail",
            color="white",
            edgecolor="black",
            linewidth=0.5,
            units="xy",  # sizes in cells, whatever the grid's shape
            width=0.05,
            headwidth=3.5,
            headlength=3,
            headaxislength=2.6,
        )
    if agent is not None:
        r, c = mdp.grid.cells[int(agent)]
        ax.add_patch(plt.Circle((c, r), 0.42, fill=False, color="#E8242C", linewidth=2.5))
    return ax


def plot_q_grid(
    mdp: TabularMDP, Q: Tensor, *, visited: Any = None, tol: float = 1e-9, **kwargs: Any
) -> Axes:
    """``max_a Q(s, a)`` as a heatmap with the greedy actions of ``Q [S, A]`` as arrows
    (ties drawn as several arrows). States where ``visited [S]`` is False (never
    updated) are drawn dark without arrows, like the states of no episode (CliffWalking's
    cliff) that :func:`plot_value_grid` masks; terminal states (``Q = 0`` by definition)
    are light grey outside the colour scale. So a table's untouched zeros never show as
    the brightest, "most valuable" cells. Keywords as :func:`plot_value_grid`."""
    Q = torch.as_tensor(Q).detach().cpu().to(torch.float64)
    if tuple(Q.shape) != (mdp.n_states, mdp.n_actions):
        raise ValueError(
            f"Q must have shape [S, A] = [{mdp.n_states}, {mdp.n_actions}], got {list(Q.shape)}"
        )
    V = Q.amax(1)
    greedy = Q >= V.unsqueeze(1) - tol
    if visited is not None:
        seen = torch.as_tensor(np.asarray(visited), dtype=torch.bool)
        V = torch.where(seen | mdp.terminal.cpu(), V, torch.nan)
        greedy &= seen.unsqueeze(1)
    return plot_value_grid(mdp, V, policy=greedy, **kwargs)


# Student's t quantile t_{0.975, df} for 95% confidence intervals of a mean
_T975 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    12: 2.179,
    15: 2.131,
    20: 2.086,
    25: 2.060,
    30: 2.042,
    40: 2.021,
    60: 2.000,
    120: 1.980,
}


def t_critical_95(df: int) -> float:
    """``t_{0.975}`` with ``df`` degrees of freedom (the largest tabulated df not above it)."""
    if df < 1:
        raise ValueError("a confidence interval needs at least two runs")
    return _T975[max(k for k in _T975 if k <= df)] if df <= 120 else 1.960


def smooth(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average along the last axis (the first points average what exists)."""
    x = np.asarray(x, dtype=float)
    if window <= 1:
        return x
    c = np.cumsum(x, axis=-1)
    out = c.copy()
    out[..., window:] = c[..., window:] - c[..., :-window]
    n = np.minimum(np.arange(1, x.shape[-1] + 1), window)
    return out / n


def mean_and_ci(runs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over runs (axis 0) and the half-width of its 95% confidence interval."""
    runs = np.asarray(runs, dtype=float)
    n = runs.shape[0]
    mean = runs.mean(0)
    half = t_critical_95(n - 1) * runs.std(0, ddof=1) / np.sqrt(n) if n > 1 else 0 * mean
    return mean, half


def returns_on_grid(
    episodes: Sequence[tuple[int, float, int]], steps: np.ndarray, window: int = 20
) -> np.ndarray:
    """A run's learning curve at given environment steps: at each of ``steps`` ``[P]``, the
    mean return of the last ``window`` episodes finished by then (NaN before the first).

    ``episodes`` is a history's ``(step, return, length)`` list; runs put on one grid can
    be averaged with :func:`plot_learning_curves` even when their episodes end at
    different steps.
    """
    if not episodes:
        return np.full(len(steps), np.nan)
    ends = np.array([e[0] for e in episodes])
    returns = np.array([e[1] for e in episodes], dtype=float)
    cum = np.concatenate([[0.0], np.cumsum(returns)])
    n = np.searchsorted(ends, np.asarray(steps), side="right")  # episodes finished by then
    lo = np.maximum(n - window, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (cum[n] - cum[lo]) / (n - lo), np.nan)


def plot_learning_curves(
    curves: Mapping[str, np.ndarray],
    *,
    smooth_window: int = 1,
    ax: Axes | None = None,
    xlabel: str = "episode",
    ylabel: str = "return per episode",
    title: str | None = None,
    ylim: tuple[float, float] | None = None,
    x: np.ndarray | None = None,
) -> Axes:
    """Mean and 95% confidence band over runs: ``{label: values [n_runs, n_points]}``.

    Each run is smoothed first (a trailing mean over ``smooth_window`` points); the
    band is the t-interval of the mean over runs, so it narrows with more runs.
    """
    ax = _new_axes(ax, (7, 4))
    for i, (label, runs) in enumerate(curves.items()):
        runs = np.atleast_2d(np.asarray(runs, dtype=float))
        mean, half = mean_and_ci(smooth(runs, smooth_window))
        xs = np.arange(1, mean.shape[0] + 1) if x is None else np.asarray(x)
        colour = COLOURS.get(label.split(" (")[0].lower(), f"C{i}")
        ax.plot(xs, mean, color=colour, label=f"{label} ({runs.shape[0]} runs)")
        ax.fill_between(xs, mean - half, mean + half, color=colour, alpha=0.25, linewidth=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    if title:
        ax.set_title(title)
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    return ax


def grid_table(mdp: TabularMDP, V: Tensor, decimals: int = 1) -> str:
    """``V [S]`` as a text table laid out on the MDP's grid (walls shown as ``#``).

    Values are rounded to ``decimals`` and ``-0.0`` is printed as ``0.0``, so the
    table is the same on every machine.
    """
    if mdp.grid is None:
        raise ValueError(f"{mdp.name or 'this MDP'} has no grid layout")
    rows, cols = mdp.grid.shape
    V = torch.as_tensor(V).detach().cpu().numpy()
    text = np.full((rows, cols), "#", dtype=object)
    for s, (r, c) in enumerate(mdp.grid.cells):
        text[r, c] = f"{round(float(V[s]), decimals) + 0.0:.{decimals}f}"
    width = max(len(t) for t in text.flat)
    return "\n".join(" ".join(f"{t:>{width}}" for t in row) for row in text)


def plot_value_grids(
    mdp: TabularMDP,
    panels: Mapping[str, Tensor],
    *,
    policy: bool = True,
    decimals: int = 1,
    ncols: int | None = None,
) -> Figure:
    """Several value grids side by side on a shared colour scale: ``{title: V [S]}``."""
    n = len(panels)
    ncols = ncols or n
    nrows = -(-n // ncols)
    rows, cols = mdp.grid.shape if mdp.grid else (1, 1)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(ncols * (0.75 * cols + 0.6), nrows * (0.75 * rows + 0.8)),
        layout="constrained",
        squeeze=False,
    )
    stacked = torch.stack([torch.as_tensor(v).detach().cpu() for v in panels.values()])
    # one colour scale for the states each panel colours (see plot_value_grid's mask)
    coloured = (dp.reachable_states(mdp) & ~mdp.terminal).cpu()
    if coloured.any():
        stacked = stacked[:, coloured]
    vmin, vmax = float(stacked.min()), float(stacked.max())
    for ax, (title, V) in zip(axes.flat, panels.items(), strict=False):
        plot_value_grid(
            mdp,
            V,
            policy=policy,
            ax=ax,
            title=title,
            decimals=decimals,
            vmin=vmin,
            vmax=vmax,
            colorbar=False,
        )
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    fig.colorbar(axes.flat[0].images[0], ax=axes, shrink=0.8, label="value")
    return fig


def plot_convergence(
    deltas: Sequence[float] | Mapping[str, Sequence[float]],
    *,
    theta: float | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """``max_s |V_k(s) - V_{k-1}(s)|`` against the sweep ``k``, log scale.

    ``deltas`` is one sequence, or ``{label: sequence}`` to compare runs.
    """
    ax = _new_axes(ax, (6, 3.5))
    series = deltas if isinstance(deltas, Mapping) else {"": deltas}
    for label, d in series.items():
        d = np.asarray(d, dtype=float)
        colour = COLOURS.get(label.split(" (")[0].lower())
        ax.semilogy(
            np.arange(1, len(d) + 1), np.maximum(d, 1e-300), label=label or None, color=colour
        )
    if theta is not None:
        ax.axhline(theta, color="grey", linestyle="--", linewidth=1, label=f"θ = {theta:g}")
    ax.set_xlabel("sweep k")
    ax.set_ylabel("max |V_k − V_{k−1}|")
    if title:
        ax.set_title(title)
    if len(series) > 1 or theta is not None:
        ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    return ax


def plot_gambler(
    mdp: TabularMDP,
    values: Mapping[str, Tensor],
    *,
    tol: float = 1e-8,
) -> Figure:
    """The two panels of the book's Figure 4.3 for the gambler's problem.

    Top: value estimates ``{label: V [S]}`` against capital (e.g. a few sweeps and
    the final one). Bottom: the optimal stakes of the last ``V``: every stake whose
    value is within ``tol`` of the best as a dot (optimal policies are not unique),
    and the smallest such stake as a line, the policy the book draws.
    """
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6.5), layout="constrained")
    capital = np.arange(mdp.n_states)
    for label, V in values.items():
        top.plot(capital[1:-1], torch.as_tensor(V).cpu().numpy()[1:-1], label=label)
    top.set_xlabel("capital")
    top.set_ylabel("value estimate")
    top.legend(frameon=False, fontsize=8)
    top.grid(alpha=0.3)
    V = list(values.values())[-1]
    ties = dp.greedy_ties(mdp, torch.as_tensor(V).to(mdp.device), tol).cpu().numpy()
    ties[mdp.terminal.cpu().numpy()] = False
    s_idx, stake = np.nonzero(ties)
    bottom.scatter(s_idx, stake, s=6, color="#BBBBBB", label="tied optimal stakes")
    live = ~mdp.terminal.cpu().numpy()
    smallest = np.argmax(ties, axis=1)
    bottom.step(
        capital[live],
        smallest[live],
        where="mid",
        color=COLOURS["value iteration"],
        label="smallest optimal stake",
    )
    bottom.set_xlabel("capital")
    bottom.set_ylabel("final policy (stake)")
    bottom.legend(frameon=False, fontsize=8)
    bottom.grid(alpha=0.3)
    return fig


# ---------------------------------------------------------------------------
# Episode replay: one episode of an agent as an inline JavaScript animation

#: the markers around an episode animation's HTML: nbval_sanitize.cfg replaces what lies
#: between them (the frames and the player's random ids) when it compares outputs
ANIMATION_BEGIN = "<!-- rlcourse-animation:begin -->"
ANIMATION_END = "<!-- rlcourse-animation:end -->"
ANIMATION_FIGSIZE = (6.4, 2.4)  #: inches: the env's frame, and the agent's decision beside it
ANIMATION_DPI = 72
#: the most an animation may take in a notebook file, per episode (see _stored_bytes)
ANIMATION_MAX_BYTES = 1_000_000
#: JPEG qualities of the frames (Huffman-optimised), tried in turn until the animation fits
#: in ANIMATION_MAX_BYTES (then fewer frames): 500 CartPole steps take 0.92 MB at the first
ANIMATION_JPEG_QUALITIES = (70, 50, 35)
_TAKEN, _NOT_TAKEN = "#DD8452", "#4C72B0"
_ENDINGS = {
    "terminated": N_("terminated"),
    "truncated": N_("truncated"),
    "max_steps": N_("cut at max_steps"),
}
#: an episode as the animation draws it: (decisions, rewards [T], ending, action labels,
#: (low, high) action bounds of a Box action space or None)
_Episode = tuple[
    list[Decision], np.ndarray, str, tuple[str, ...], tuple[np.ndarray, np.ndarray] | None
]


@dataclass(frozen=True, eq=False, repr=False)
class EpisodeAnimation:
    """One episode of an agent, replayed by :func:`episode_animation`; shows itself in a
    notebook as the animation.

    ``decisions[t]`` is what the agent made of ``S_t`` (its action is ``A_t``) and
    ``rewards[t]`` is ``R_{t+1}``, for ``t = 0 .. steps - 1`` (``rewards`` ``[steps]``).
    The animation shows the states ``S_t`` at the time steps ``shown``: every
    ``stride``-th from ``S_0``, and the last state ``S_steps``.
    """

    html: str  #: the animation: matplotlib's JavaScript player with the frames embedded
    env_name: str
    seed: int
    decisions: list[Decision]
    rewards: np.ndarray
    ending: str  #: "terminated", "truncated" (the env's time limit) or "max_steps"
    shown: tuple[int, ...]
    stride: int

    @property
    def steps(self) -> int:
        """The number of actions taken in the episode."""
        return len(self.decisions)

    @property
    def episode_return(self) -> float:
        """The undiscounted return ``R_1 + ... + R_T``, summed in order (as
        :func:`rlcourse.evaluate.evaluate` sums it)."""
        return float(np.cumsum(self.rewards)[-1])

    @property
    def frames(self) -> int:
        """The number of frames the animation shows."""
        return len(self.shown)

    def _repr_html_(self) -> str:
        return f"{ANIMATION_BEGIN}\n{self.html}\n{ANIMATION_END}"

    def __repr__(self) -> str:
        every = "every step" if self.stride == 1 else f"every {_ordinal(self.stride)} step"
        return (
            f"Episode of {self.env_name} (seed {self.seed}): return "
            f"{round(self.episode_return, 1) + 0.0:.1f} in {self.steps} steps "
            f"({_ENDINGS[self.ending]}); {self.frames} frames, {every}"
        )


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _short(x: float) -> str:
    """``x`` with at most two decimals and no trailing zeros (never ``-0``)."""
    return f"{round(float(x), 2) + 0.0:.2f}".rstrip("0").rstrip(".")


def episode_animation(
    agent: Any,
    env: str | gym.Env,
    seed: int = 0,
    *,
    max_frames: int = 100,
    fps: float = 10,
    max_steps: int | None = None,
) -> EpisodeAnimation:
    """Play one episode of ``agent`` in ``env`` and replay it as an inline animation.

    ``agent`` is a course agent (DQN, PPO, A2C, REINFORCE) or a ``[S, A]`` Q-table on an
    env with Discrete states; ``env`` is an env id or a gymnasium env made with
    ``render_mode="rgb_array"`` (an env you pass is reset and stepped, and left open).
    The episode is the one seeded ``seed`` (``env.reset(seed=seed)``), played with the
    agent's deterministic action (:func:`rlcourse.agent.decide`) until it terminates, is
    truncated by the env's time limit, or reaches ``max_steps`` (default: the env's time
    limit, or 10,000 steps for an env without one).

    Each frame shows ``S_t`` as the env draws it, the step ``t``, the reward ``R_t`` that
    came with ``S_t`` and the return so far ``R_1 + ... + R_t``, and beside it what the
    agent makes of ``S_t``: ``Q(s, a)`` for every action, ``pi(a|s)``, or the mean of a
    Gaussian policy with ``± std`` (per action dimension; the diamond is the action taken,
    the dashed lines the action bounds), with ``max_a Q(s, a)`` or ``V(s)``. The action
    taken is highlighted; the y-range is the same for the whole episode. At most
    ``max_frames`` frames are shown (every ``stride``-th state, and always the last one),
    at ``fps`` frames per second. Frames are JPEG, so that the animation stays small
    enough to keep in a notebook: a 500-step CartPole episode takes 0.79 MB of HTML,
    0.92 MB in the notebook file, and no animation takes more than
    :data:`ANIMATION_MAX_BYTES` (1 MB) there: an env with detailed frames gets a lower
    JPEG quality, then fewer frames.
    """
    _check_animation_args(seed, max_frames, fps, max_steps)
    owned = isinstance(env, str)
    env = rendering_env(env)
    try:
        check_agent_env(agent, env)
        decisions, rewards, ending = _play_episode(agent, env, seed, max_steps or DEFAULT_MAX_STEPS)
        name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        space, bounds = env.action_space, None
        if isinstance(space, gym.spaces.Box) and np.isfinite(space.low).all():
            bounds = (np.asarray(space.low, float), np.asarray(space.high, float))
        episode: _Episode = (decisions, rewards, ending, action_labels(env), bounds)
        cap, qualities = max_frames, list(ANIMATION_JPEG_QUALITIES)
        frames: dict[int, np.ndarray] = {}
        while True:  # at most ANIMATION_MAX_BYTES: lower qualities first, then fewer frames
            stride, shown = _shown_steps(len(decisions), cap)
            if not frames.keys() >= set(shown):
                frames = _replay_frames(env, seed, decisions, shown)
            html = _animation_html(frames, shown, episode, fps, qualities[0])
            size = _stored_bytes(html)
            if size <= ANIMATION_MAX_BYTES or len(shown) <= 2:
                break
            if len(qualities) > 1:
                qualities.pop(0)
            else:
                cap = max(2, min(len(shown) - 1, int(len(shown) * ANIMATION_MAX_BYTES / size)))
    finally:
        if owned:
            env.close()
    return EpisodeAnimation(html, name, seed, decisions, rewards, ending, tuple(shown), stride)


def _stored_bytes(html: str) -> int:
    """What the animation's output takes in a notebook file: nbformat stores it as JSON
    (escaped), one string per line, indented by 7 (the ``text/html`` of an output of a cell)."""
    lines = f"{ANIMATION_BEGIN}\n{html}\n{ANIMATION_END}".splitlines(keepends=True)
    return len(json.dumps(lines, indent=1, ensure_ascii=False).encode()) + 6 * len(lines)


def _check_animation_args(seed: Any, max_frames: Any, fps: Any, max_steps: Any) -> None:
    def whole(x: Any) -> bool:
        return isinstance(x, int | np.integer) and not isinstance(x, bool)

    if not whole(seed) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if not whole(max_frames) or max_frames < 2:
        raise ValueError(
            f"max_frames must be an integer >= 2 (the first and the last), got {max_frames!r}"
        )
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not 0 < fps <= 100:
        raise ValueError(f"fps must be a number of frames per second in (0, 100], got {fps!r}")
    if max_steps is not None and (not whole(max_steps) or max_steps < 1):
        raise ValueError(f"max_steps must be a positive integer or None, got {max_steps!r}")


def _play_episode(
    agent: Any, env: gym.Env, seed: int, limit: int
) -> tuple[list[Decision], np.ndarray, str]:
    """The episode seeded ``seed``: a decision per step, the rewards ``[T]`` and how it
    ended ("terminated", "truncated" or "max_steps")."""
    obs, _ = env.reset(seed=seed)
    decisions: list[Decision] = []
    rewards: list[float] = []
    ending = "max_steps"
    for _ in range(limit):
        decision = decide(agent, obs)
        obs, reward, terminated, truncated, _ = env.step(decision.action)
        decisions.append(decision)
        rewards.append(float(reward))
        if terminated or truncated:
            ending = "terminated" if terminated else "truncated"
            break
    return decisions, np.array(rewards, dtype=np.float64), ending


def _shown_steps(steps: int, max_frames: int) -> tuple[int, list[int]]:
    """``(stride, time steps)``: every ``stride``-th of ``0 .. steps - 1`` and ``steps``
    (the last state), at most ``max_frames`` of them."""
    stride = max(1, math.ceil(steps / (max_frames - 1)))
    return stride, [*range(0, steps, stride), steps]


def _replay_frames(
    env: gym.Env, seed: int, decisions: list[Decision], shown: list[int]
) -> dict[int, np.ndarray]:
    """The rgb frames ``[H, W, 3]`` of the states ``S_t``, ``t`` in ``shown``: the episode
    played again from the same seed with the recorded actions (so that only the frames
    shown are ever drawn and kept)."""
    obs, _ = env.reset(seed=seed)
    wanted, frames = set(shown), {}
    for t in range(max(shown) + 1):
        if t in wanted:
            frames[t] = np.array(env.render())
        if t == len(decisions):
            break
        seen = decisions[t].observation
        if not np.array_equal(np.asarray(obs, dtype=seen.dtype), seen):
            raise RuntimeError(
                f"replaying the episode from seed {seed} reached another state at step {t}: "
                "the env must give the same episode for the same seed and actions"
            )
        obs, *_ = env.step(decisions[t].action)
    return frames


def _decision_ylim(
    decisions: list[Decision], bounds: tuple[np.ndarray, np.ndarray] | None
) -> tuple[float, float]:
    """One y-range for the whole episode's bars (with room for the numbers on them)."""
    kind = decisions[0].kind
    if kind == "probs":
        return 0.0, 1.15
    values = np.stack([d.values for d in decisions]).astype(float)  # [T, A]
    lo, hi = float(values.min()), float(values.max())
    if kind == "gaussian":
        std = np.stack([d.std for d in decisions]).astype(float)
        actions = np.stack([np.asarray(d.action, float) for d in decisions])
        lo = min(lo, float((values - std).min()), float(actions.min()))
        hi = max(hi, float((values + std).max()), float(actions.max()))
        if bounds is not None:
            lo, hi = min(lo, float(bounds[0].min())), max(hi, float(bounds[1].max()))
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    pad = 0.15 * (hi - lo) or 1.0
    return lo - (pad if lo < 0 else 0.0), hi + pad


def _decision_title(d: Decision) -> str:
    what = {"q": "Q(s, a)", "probs": "π(a|s)", "gaussian": "π(a|s): mean ± std"}[d.kind]
    if d.value is None:
        return what
    return f"{what};  {'max_a Q(s,a)' if d.kind == 'q' else 'V(s)'} = {_short(d.value)}"


def _animation_html(
    frames: dict[int, np.ndarray], shown: list[int], episode: _Episode, fps: float, quality: int
) -> str:
    """Draw the shown time steps on one small figure, updating its artists in place, and
    return matplotlib's JavaScript HTML player with the frames embedded as JPEG."""
    decisions, rewards, ending, labels, bounds = episode
    n, kind = len(decisions), decisions[0].kind
    returns = np.concatenate([[0.0], np.cumsum(rewards)])  # return so far at t = 0 .. n
    fig = Figure(figsize=ANIMATION_FIGSIZE, dpi=ANIMATION_DPI)  # never shown by pyplot
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(
        1, 2, width_ratios=(1.2, 1.0), left=0.02, right=0.97, bottom=0.14, top=0.8, wspace=0.15
    )
    ax_env, ax_bar = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    ax_env.set_axis_off()
    image = ax_env.imshow(frames[shown[0]])
    header = fig.text(0.02, 0.96, "", fontsize=9, va="top")
    x = np.arange(len(labels))
    bars = ax_bar.bar(x, np.zeros(len(x)), width=0.6, color=_NOT_TAKEN)
    numbers = [ax_bar.text(i, 0.0, "", ha="center", fontsize=7) for i in x]
    ax_bar.set_xticks(x, labels, fontsize=8)
    ax_bar.tick_params(axis="y", labelsize=7)
    ax_bar.set_xlim(-0.6, len(x) - 0.4)
    ax_bar.set_ylim(*_decision_ylim(decisions, bounds))
    ax_bar.axhline(0.0, color="#999999", linewidth=0.8)
    title = ax_bar.set_title("", fontsize=8)
    moving: list[Any] = [*bars, *numbers]
    if kind == "gaussian":
        spread = ax_bar.vlines(x, 0.0, 0.0, colors="black", linewidth=1.5)
        (taken,) = ax_bar.plot(x, np.zeros(len(x)), "D", color=_TAKEN, markersize=6)
        moving += [spread, taken]
        if bounds is not None:
            for edge in bounds:
                ax_bar.hlines(edge, x - 0.4, x + 0.4, colors="#777777", linestyles="dashed")
    over = ax_bar.text(0.5, 0.5, "", transform=ax_bar.transAxes, ha="center", fontsize=9)

    def draw(t: int) -> None:
        image.set_data(frames[t])
        text = figure_tr("step {t} of {n}", t=t, n=n)
        if t > 0:
            text += "   ·   " + figure_tr("reward {reward}", reward=_short(rewards[t - 1]))
        header.set_text(text + "   ·   " + figure_tr("return so far {g}", g=_short(returns[t])))
        for artist in moving:
            artist.set_visible(t < n)
        if t == n:  # the last state: no decision there
            over.set_text(figure_tr("episode over: {ending}", ending=figure_tr(_ENDINGS[ending])))
            title.set_text("")
            return
        over.set_text("")
        d = decisions[t]
        title.set_text(_decision_title(d))
        values = np.asarray(d.values, float)
        for i, (bar, number) in enumerate(zip(bars, numbers, strict=True)):
            bar.set_height(values[i])
            if kind != "gaussian":
                bar.set_color(_TAKEN if i == d.action else _NOT_TAKEN)
            number.set_text(_short(values[i]))
            number.set_position((i, values[i]))
            number.set_verticalalignment("bottom" if values[i] >= 0 else "top")
        if kind == "gaussian":
            std = np.asarray(d.std, float)
            ends = zip(x, values - std, values + std, strict=True)
            spread.set_segments([[(i, lo), (i, hi)] for i, lo, hi in ends])
            taken.set_data(x, np.asarray(d.action, float))

    writer = HTMLWriter(fps=fps, embed_frames=True, default_mode="once")
    writer.frame_format = "jpeg"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "episode.html")
        with figure_font(), writer.saving(fig, path, ANIMATION_DPI):
            for t in shown:
                draw(t)
                writer.grab_frame(pil_kwargs={"quality": quality, "optimize": True})
        return path.read_text()
