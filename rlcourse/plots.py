"""Figures of the course: value heatmaps with policy arrows, convergence curves,
the gambler's problem.

Every function draws on a matplotlib ``Axes`` (a new figure when ``ax`` is None)
and returns it, so figures can be combined with ``plt.subplots``. Arrows are
read from the MDP's own action names (FrozenLake's action 0 is *left*,
CliffWalking's is *up*), never from an assumed order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from rlcourse import dp
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
