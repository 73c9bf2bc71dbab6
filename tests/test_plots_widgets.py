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
    ties[~dp.reachable_states(mdp)] = False  # no arrows where no episode goes
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


# ---------------------------------------------------------------------------
# learning curves: smoothing, confidence intervals


def test_smooth_is_a_trailing_mean() -> None:
    """Window 3 over 1..6: [1, (1+2)/2, (1+2+3)/3, (2+3+4)/3, (3+4+5)/3, (4+5+6)/3], row by
    row for a 2-D array; window 1 returns the data."""
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    np.testing.assert_allclose(plots.smooth(x, 3), [1.0, 1.5, 2.0, 3.0, 4.0, 5.0])
    runs = np.stack([x, 10 * x[::-1]])
    np.testing.assert_allclose(
        plots.smooth(runs, 2), [[1, 1.5, 2.5, 3.5, 4.5, 5.5], [60, 55, 45, 35, 25, 15]]
    )
    np.testing.assert_array_equal(plots.smooth(x, 1), x)
    np.testing.assert_allclose(plots.smooth(x, 10), np.cumsum(x) / np.arange(1, 7))


def test_t_critical_values() -> None:
    """Student's t table: t_{0.975} for 1, 4, 9, 30 degrees of freedom; about 1.96 for many."""
    assert plots.t_critical_95(1) == 12.706
    assert plots.t_critical_95(4) == 2.776
    assert plots.t_critical_95(9) == 2.262
    assert plots.t_critical_95(30) == 2.042
    assert plots.t_critical_95(10_000) == pytest.approx(1.96, abs=0.001)
    with pytest.raises(ValueError, match="at least two runs"):
        plots.t_critical_95(0)


def test_mean_and_ci_by_hand() -> None:
    """10 runs 0..9 at one point: mean 4.5, sample std sqrt(82.5 / 9), half-width
    t_{0.975, 9} * std / sqrt(10) = 2.262 * 3.0277 / 3.1623 = 2.1657; a constant point has
    width 0; one run gives width 0."""
    runs = np.stack([np.arange(10.0), np.full(10, 7.0)], axis=1)  # [10 runs, 2 points]
    mean, half = plots.mean_and_ci(runs)
    np.testing.assert_allclose(mean, [4.5, 7.0])
    np.testing.assert_allclose(half, [2.262 * np.sqrt(82.5 / 9) / np.sqrt(10), 0.0])
    assert half[0] == pytest.approx(2.1657, abs=1e-4)
    mean1, half1 = plots.mean_and_ci(np.array([[1.0, 2.0, 3.0]]))
    np.testing.assert_array_equal(mean1, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(half1, 0.0)


def test_plot_learning_curves_one_line_and_band_per_label() -> None:
    """Two labels: two lines (the mean of the smoothed runs), two bands (mean -/+ the
    t-interval), and a legend that counts the runs."""
    from matplotlib.collections import PolyCollection

    rng = np.random.default_rng(0)
    curves = {"SARSA": rng.normal(size=(5, 30)), "Q-learning": rng.normal(size=(3, 30)) + 2}
    ax = plots.plot_learning_curves(curves, smooth_window=4)
    assert len(ax.lines) == 2
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["SARSA (5 runs)", "Q-learning (3 runs)"]
    for line, band, runs in zip(ax.lines, bands, curves.values(), strict=True):
        # trailing mean of 4, by hand, then the mean over runs
        smoothed = np.stack([[r[max(0, t - 3) : t + 1].mean() for t in range(30)] for r in runs])
        mean = smoothed.mean(0)
        half = plots.t_critical_95(len(runs) - 1) * smoothed.std(0, ddof=1) / np.sqrt(len(runs))
        np.testing.assert_array_equal(line.get_xdata(), np.arange(1, 31))
        np.testing.assert_allclose(line.get_ydata(), mean)
        y = band.get_paths()[0].vertices[:, 1]
        assert y.min() == pytest.approx((mean - half).min())
        assert y.max() == pytest.approx((mean + half).max())
    assert ax.lines[0].get_color() != ax.lines[1].get_color()


# ---------------------------------------------------------------------------
# plot_q_grid


def test_plot_q_grid_hides_unvisited_states() -> None:
    """Unvisited non-terminal states are NaN (grey) with no arrow; visited ones show
    max_a Q and one arrow per greedy action (ties included)."""
    mdp = from_gymnasium("FrozenLake-v1", gamma=0.9)
    rng = np.random.default_rng(1)
    Q = torch.as_tensor(rng.uniform(0, 1, (16, 4)))
    Q[1] = torch.tensor([0.2, 0.7, 0.7, 0.1], dtype=torch.float64)  # a tie: two arrows
    visited = np.zeros(16, dtype=bool)
    visited[[0, 1, 2, 4, 8]] = True
    ax = plots.plot_q_grid(mdp, Q, visited=visited)
    image = np.asarray(ax.images[0].get_array().filled(np.nan)).flatten()
    terminal = mdp.terminal.numpy()
    hidden = ~visited & ~terminal
    assert np.isnan(image[hidden]).all()
    np.testing.assert_allclose(image[visited], Q.amax(1).numpy()[visited])
    cells = {(r, c) for r, c, _, _ in arrows(ax)}
    assert cells == {mdp.grid.cells[s] for s in (0, 1, 2, 4, 8)}
    assert quiver_of(ax).N == 6  # five visited states, one with two tied greedy actions
    with pytest.raises(ValueError, match=r"Q must have shape \[S, A\] = \[16, 4\]"):
        plots.plot_q_grid(mdp, torch.zeros(16, 3))


# ---------------------------------------------------------------------------
# AgentStepper


def test_agent_stepper_step_shows_the_update() -> None:
    """step() makes one transition; the text below the figure says 'TD target' and gives
    the numbers of agent.last, which follow Q-learning's rule from the table before the step."""
    from rlcourse.widgets import AgentStepper

    stepper = AgentStepper()
    assert stepper.steps == 0 and stepper.episodes == 0
    assert "no update yet" in stepper.update_text.value
    for n in range(1, 4):
        Q_before = stepper.agent.Q[0].copy()
        stepper.step()
        assert stepper.steps == n
        u = stepper.agent.last
        text = stepper.update_text.value
        assert "TD target" in text
        for value in (u.td_target[0], u.td_error[0], u.q_old[0], u.q_new[0]):
            assert f"{float(value):.3f}" in text
        s, a, s2 = int(u.state[0]), int(u.action[0]), int(u.next_state[0])
        bootstrap = 0.0 if u.terminated[0] else Q_before[s2].max()
        assert u.td_target[0] == pytest.approx(u.reward[0] + stepper.agent.gamma * bootstrap)
        assert u.q_new[0] == pytest.approx(Q_before[s, a] + stepper.agent.alpha * u.td_error[0])
        assert f"step {n}" in stepper.status.value


def test_agent_stepper_play_episode_ends_one_episode() -> None:
    """play_episode() stops exactly when the current episode ends (the last update ends it)."""
    from rlcourse.widgets import AgentStepper

    stepper = AgentStepper(env="Example 4.1 (4x4, terminal corners)")
    stepper.step()
    stepper.play_episode()
    assert stepper.episodes == 1
    u = stepper.agent.last
    assert u.terminated[0] or u.truncated[0]
    length = int(stepper.agent.lengths[0, 0])
    assert stepper.steps == length
    stepper.play_episode()
    assert stepper.episodes == 2
    assert stepper.steps == length + int(stepper.agent.lengths[0, 1])
    assert "episode 2" in stepper.status.value


def test_agent_stepper_sliders_and_method_switch() -> None:
    """The sliders set the agent's alpha, gamma and epsilon between steps; switching the
    method starts a new agent (Q = 0, no steps)."""
    from rlcourse.widgets import AgentStepper

    stepper = AgentStepper(env="Windy grid world (Example 6.5)")
    for _ in range(5):
        stepper.step()
    stepper.alpha_slider.value = 0.25
    stepper.gamma_slider.value = 0.8
    stepper.epsilon_slider.value = 0.3
    assert stepper.agent.alpha == 0.25
    assert stepper.agent.gamma == 0.8
    np.testing.assert_allclose(stepper.agent.epsilon(np.array([0, 7])), [0.3, 0.3])
    stepper.step()
    assert stepper.agent.last.q_new[0] == pytest.approx(
        stepper.agent.last.q_old[0] + 0.25 * stepper.agent.last.td_error[0]
    )
    stepper.method_choice.value = "SARSA"
    assert stepper.agent.method == "sarsa"
    assert stepper.steps == 0 and stepper.episodes == 0
    assert not stepper.agent.Q.any()
    assert stepper.agent.alpha == 0.25  # the new agent keeps the slider settings
    stepper.step()
    assert "Q(S′, A′)" in stepper.update_text.value


def test_agent_stepper_repr_is_stable() -> None:
    """text/plain is the same for two fresh steppers, has no memory address, and counts."""
    from rlcourse.widgets import AgentStepper

    a, b = AgentStepper(), AgentStepper()
    text = a._repr_mimebundle_()["text/plain"]
    assert text == b._repr_mimebundle_()["text/plain"]
    assert not re.search(r"0x[0-9a-fA-F]{4,}", text)
    assert "CliffWalking" in text and "steps=0" in text
    a.step()
    assert "steps=1" in a._repr_mimebundle_()["text/plain"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"env": "Example 9.9"}, "unknown environment 'Example 9.9'"),
        ({"method": "TD(lambda)"}, r"unknown method 'TD\(lambda\)'"),
    ],
)
def test_agent_stepper_unknown_names(kwargs: dict, message: str) -> None:
    from rlcourse.widgets import AgentStepper

    with pytest.raises(ValueError, match=message):
        AgentStepper(**kwargs)
