"""Tests of rlcourse.plots and rlcourse.widgets (DPStepper), drawn off-screen with Agg."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import re
from collections.abc import Iterator

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.quiver import Quiver

from rlcourse import dp, plots
from rlcourse.envs import GamblerEnv
from rlcourse.mdp import from_gymnasium
from rlcourse.widgets import DPStepper

# Example 4.1's optimal values (Sutton & Barto, Figure 4.1): minus the steps to a corner
EXAMPLE_4_1_OPTIMAL = torch.tensor(
    [[0, -1, -2, -3], [-1, -2, -3, -2], [-2, -3, -2, -1], [-3, -2, -1, 0]], dtype=torch.float64
).flatten()

# (d_col, d_row) of each direction on a grid whose row index grows downwards
SCREEN = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}


@pytest.fixture(autouse=True)
def close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def quiver_of(ax) -> Quiver:
    quivers = [c for c in ax.collections if isinstance(c, Quiver)]
    assert len(quivers) == 1
    return quivers[0]


def arrows(ax) -> set[tuple[int, int, int, int]]:
    """The drawn arrows as (row, col, d_col, d_row) with unit directions."""
    q = quiver_of(ax)
    out = set()
    for x, y, u, v in zip(q.X, q.Y, q.U, q.V, strict=True):
        out.add((round(float(y)), round(float(x)), int(np.sign(u)), int(np.sign(v))))
    return out


# ---------------------------------------------------------------------------
# plot_value_grid


@pytest.mark.parametrize("kwargs", [{}, {"map_name": "8x8"}], ids=["4x4", "8x8"])
def test_frozenlake_one_arrow_per_greedy_action(kwargs: dict) -> None:
    """One arrow per greedy action, ties counted, none on terminal cells."""
    mdp = from_gymnasium("FrozenLake-v1", gamma=0.99, **kwargs)
    V = dp.value_iteration(mdp, theta=1e-10).V
    tol = 1e-6
    ax = plots.plot_value_grid(mdp, V, tol=tol)
    ties = dp.greedy_ties(mdp, V, tol)
    expected = int(ties[~mdp.terminal].sum())
    q = quiver_of(ax)
    assert q.N == expected == len(q.get_offsets())
    assert expected > int((~mdp.terminal).sum())  # FrozenLake has ties: more arrows than states
    terminal_cells = {mdp.grid.cells[s] for s in torch.nonzero(mdp.terminal).flatten().tolist()}
    assert not {(r, c) for r, c, _, _ in arrows(ax)} & terminal_cells


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [("CliffWalking-v1", {}), ("FrozenLake-v1", {"is_slippery": False})],
    ids=["CliffWalking", "FrozenLake-deterministic"],
)
def test_arrows_point_where_the_env_moves(env_id: str, kwargs: dict) -> None:
    """Each arrow points to the cell the env's own table moves to under that action
    (CliffWalking numbers actions up, right, down, left; FrozenLake left, down, right, up)."""
    mdp = from_gymnasium(env_id, gamma=0.99, **kwargs)
    V = dp.value_iteration(mdp, theta=1e-10).V
    ax = plots.plot_value_grid(mdp, V)
    ties = dp.greedy_ties(mdp, V, 1e-6)
    ties[mdp.terminal] = False
    expected = set()
    for s, a in torch.nonzero(ties).tolist():
        r, c = mdp.grid.cells[s]
        r2, c2 = mdp.grid.cells[int(mdp.P[s, a].argmax())]
        assert (r2, c2) != (r, c)  # no optimal action bumps into an edge here
        expected.add((r, c, c2 - c, r2 - r))
    assert arrows(ax) == expected


def test_cliffwalking_start_arrow_points_up() -> None:
    """At CliffWalking's start (3, 0) the only optimal action is 'up' (action 0): one arrow
    with U = 0 and V < 0 in data coordinates (rows grow downwards, so it points up)."""
    mdp = from_gymnasium("CliffWalking-v1", gamma=0.99)
    V = dp.value_iteration(mdp).V
    assert dp.greedy_ties(mdp, V)[36].nonzero().flatten().tolist() == [0]
    assert mdp.action_names[0] == "up"
    ax = plots.plot_value_grid(mdp, V)
    q = quiver_of(ax)
    at_start = [
        (u, v) for x, y, u, v in zip(q.X, q.Y, q.U, q.V, strict=True) if (x, round(y)) == (0, 3)
    ]
    assert len(at_start) == 1
    u, v = at_start[0]
    assert u == 0 and v < 0
    # and the screen direction table agrees with the names
    np.testing.assert_array_equal(
        plots.action_directions(mdp), np.array([SCREEN[n] for n in mdp.action_names], float)
    )


def test_no_arrows_with_policy_false_and_explicit_policy() -> None:
    """policy=False draws no quiver; a given policy draws exactly its actions."""
    mdp = from_gymnasium("FrozenLake-v1", gamma=0.9)
    V = torch.zeros(16, dtype=torch.float64)
    ax = plots.plot_value_grid(mdp, V, policy=False)
    assert not [c for c in ax.collections if isinstance(c, Quiver)]
    left = torch.zeros(16, 4, dtype=torch.float64)
    left[:, 0] = 1.0
    ax = plots.plot_value_grid(mdp, V, policy=left)
    q = quiver_of(ax)
    assert q.N == int((~mdp.terminal).sum())
    assert set(np.sign(q.U).tolist()) == {-1.0}  # all point left
    assert set(q.V.tolist()) == {0.0}


def test_plot_value_grid_errors() -> None:
    """No grid (Taxi) and V of the wrong shape are ValueErrors."""
    taxi = from_gymnasium("Taxi-v4", gamma=0.9)
    with pytest.raises(ValueError, match="Taxi-v4 has no grid layout"):
        plots.plot_value_grid(taxi, torch.zeros(500))
    lake = from_gymnasium("FrozenLake-v1", gamma=0.9)
    with pytest.raises(ValueError, match=r"V must have shape \[S\] = \[16\], got \[15\]"):
        plots.plot_value_grid(lake, torch.zeros(15))
    with pytest.raises(ValueError, match=r"V must have shape \[S\] = \[16\]"):
        plots.plot_value_grid(lake, torch.zeros(4, 4))


def test_plot_value_grid_shows_values() -> None:
    """The heatmap holds V on its grid cells, and the cell texts are V rounded."""
    mdp = from_gymnasium("FrozenLake-v1", gamma=0.9)
    V = torch.arange(16, dtype=torch.float64) / 10
    ax = plots.plot_value_grid(mdp, V, policy=False, decimals=2)
    image = ax.images[0].get_array()
    np.testing.assert_allclose(np.asarray(image), V.numpy().reshape(4, 4))
    texts = {t.get_text() for t in ax.texts}
    assert {f"{v:.2f}" for v in V.tolist()} <= texts


# ---------------------------------------------------------------------------
# other figures


def test_plot_convergence_log_scale() -> None:
    """plot_convergence uses a log y axis and plots the deltas against k = 1, 2, ..."""
    deltas = [1.0, 0.5, 0.25, 1e-3]
    ax = plots.plot_convergence(deltas, theta=1e-2)
    assert ax.get_yscale() == "log"
    line = ax.lines[0]
    np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3, 4])
    np.testing.assert_array_equal(line.get_ydata(), deltas)
    ax2 = plots.plot_convergence({"value iteration": deltas, "policy iteration": deltas[:2]})
    assert ax2.get_yscale() == "log"
    assert len(ax2.lines) == 2
    assert [t.get_text() for t in ax2.get_legend().get_texts()] == [
        "value iteration",
        "policy iteration",
    ]


def test_plot_gambler_two_axes() -> None:
    """plot_gambler returns a figure with the two panels of Figure 4.3."""
    mdp = GamblerEnv(p_h=0.4, goal=20).to_mdp()
    V = dp.value_iteration(mdp, theta=1e-10).V
    fig = plots.plot_gambler(mdp, {"sweep 1": torch.zeros(21), "final": V})
    assert len(fig.axes) == 2
    top, bottom = fig.axes
    assert len(top.lines) == 2
    np.testing.assert_allclose(top.lines[1].get_ydata(), V.numpy()[1:-1])
    # the smallest optimal stakes line stays within the allowed stakes
    stakes = bottom.lines[0].get_ydata()
    capital = bottom.lines[0].get_xdata()
    assert all(1 <= a <= min(s, 20 - s) for s, a in zip(capital, stakes, strict=True))


# ---------------------------------------------------------------------------
# DPStepper


def test_stepper_steps_and_redraws() -> None:
    """A new stepper is at sweep 0; three steps -> sweep 3, status and image updated."""
    stepper = DPStepper()
    assert stepper.sweep == 0
    assert "sweep 0" in stepper.status.value
    first_image = stepper.image.value
    assert first_image[:8] == b"\x89PNG\r\n\x1a\n"
    for _ in range(3):
        stepper.step()
    assert stepper.sweep == 3
    assert "sweep 3" in stepper.status.value
    assert stepper.image.value != first_image
    # value iteration on Example 4.1 after 3 sweeps: max(-3, -(steps to a corner))
    torch.testing.assert_close(stepper.V, torch.clamp(EXAMPLE_4_1_OPTIMAL, min=-3.0))


def test_stepper_run_converges_and_resets() -> None:
    """run() ends converged at Example 4.1's optimal values; reset() goes back to sweep 0."""
    stepper = DPStepper()
    stepper.run()
    assert stepper.converged
    assert stepper.error is None
    assert "converged" in stepper.status.value
    torch.testing.assert_close(stepper.V, EXAMPLE_4_1_OPTIMAL, rtol=0, atol=1e-9)
    n = stepper.sweep
    stepper.step()  # nothing left to do
    assert stepper.sweep == n
    stepper.reset()
    assert stepper.sweep == 0
    assert not stepper.converged
    assert torch.equal(stepper.V, torch.zeros(16, dtype=torch.float64))
    assert "sweep 0" in stepper.status.value


def test_stepper_policy_iteration() -> None:
    """Switching the algorithm to policy iteration restarts, and run() gives the same v*."""
    stepper = DPStepper()
    stepper.step()
    stepper.algorithm_choice.value = "policy iteration"
    assert stepper.sweep == 0
    stepper.run()
    assert stepper.converged
    assert stepper.phase == "improvement"
    torch.testing.assert_close(stepper.V, EXAMPLE_4_1_OPTIMAL, rtol=0, atol=1e-5)


def test_stepper_gamma_one_on_continuing_task_reports_error() -> None:
    """Policy evaluation with gamma = 1 on Example 3.5 (never ends) shows an error message
    about gamma in the status instead of raising."""
    stepper = DPStepper()
    stepper.env_choice.value = "Example 3.5 (5x5, A and B)"
    assert stepper.gamma_slider.value == pytest.approx(0.9)  # the env's default gamma
    stepper.gamma_slider.value = 1.0
    stepper.algorithm_choice.value = "policy evaluation (random policy)"
    assert stepper.mdp.gamma == 1.0
    assert stepper.mdp.n_states == 25
    stepper.run()  # must not raise
    assert stepper.error is not None
    assert not stepper.converged
    assert "gamma" in stepper.error
    assert "gamma" in stepper.status.value


def test_stepper_constructor_arguments() -> None:
    """env, algorithm and gamma given to the constructor are used."""
    stepper = DPStepper(
        env="Example 3.5 (5x5, A and B)", algorithm="policy evaluation (random policy)", gamma=0.5
    )
    assert stepper.mdp.gamma == 0.5
    assert stepper.mdp.n_states == 25
    stepper.run()
    assert stepper.converged
    mdp = stepper.mdp
    torch.testing.assert_close(
        stepper.V, dp.exact_policy_evaluation(mdp, mdp.uniform_policy()), rtol=0, atol=1e-5
    )


def test_stepper_repr_is_stable() -> None:
    """text/plain of the mime bundle is the same for two fresh steppers, with no address."""
    a, b = DPStepper(), DPStepper()
    text_a = a._repr_mimebundle_()["text/plain"]
    text_b = b._repr_mimebundle_()["text/plain"]
    assert text_a == text_b
    assert not re.search(r"0x[0-9a-fA-F]{4,}", text_a)
    assert "Example 4.1" in text_a and "sweep=0" in text_a
    a.step()
    assert "sweep=1" in a._repr_mimebundle_()["text/plain"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"env": "Example 9.9"}, "unknown environment 'Example 9.9'"),
        ({"algorithm": "sarsa"}, "unknown algorithm 'sarsa'"),
    ],
)
def test_stepper_unknown_names(kwargs: dict, message: str) -> None:
    """Unknown environment or algorithm names are ValueErrors that list the choices."""
    with pytest.raises(ValueError, match=message):
        DPStepper(**kwargs)
