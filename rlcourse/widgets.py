"""Interactive widgets of the course (ipywidgets).

:class:`DPStepper` steps dynamic programming one sweep at a time on a grid
world: the value heatmap with the policy's arrows and the sweep count update in
place. The figure is an ``Image`` widget whose PNG is redrawn after every
click, so it works the same in JupyterLab, Notebook 7 and VS Code.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import ipywidgets as W
import matplotlib
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rlcourse import dp, plots
from rlcourse.envs import example_3_5, example_4_1
from rlcourse.mdp import TabularMDP, from_gymnasium


def _figure_png(draw: Callable[[Any], None], figsize: tuple[float, float]) -> bytes:
    """Render ``draw(ax)`` on an off-screen figure and return the PNG bytes."""
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    draw(fig.add_subplot())
    buf = io.BytesIO()
    with matplotlib.rc_context({"savefig.dpi": 90}):
        fig.savefig(buf, format="png")
    return buf.getvalue()


#: the grid worlds the stepper offers: label -> (MDP factory taking gamma, default gamma)
DP_ENVIRONMENTS: dict[str, tuple[Callable[[float], TabularMDP], float]] = {
    "Example 4.1 (4x4, terminal corners)": (lambda g: example_4_1().to_mdp(g), 1.0),
    "Example 3.5 (5x5, A and B)": (lambda g: example_3_5().to_mdp(g), 0.9),
    "FrozenLake 4x4": (lambda g: from_gymnasium("FrozenLake-v1", gamma=g), 0.99),
    "FrozenLake 8x8": (lambda g: from_gymnasium("FrozenLake-v1", gamma=g, map_name="8x8"), 0.99),
    "CliffWalking": (lambda g: from_gymnasium("CliffWalking-v1", gamma=g), 0.99),
}
DP_ALGORITHMS = ("value iteration", "policy iteration", "policy evaluation (random policy)")


class DPStepper:
    """Step value iteration, policy iteration or policy evaluation sweep by sweep.

    Buttons: *Step sweep* (one sweep; in policy iteration, an improvement step
    after the evaluation has converged), *Run to convergence*, *Reset*. Changing
    the environment, the algorithm or gamma starts again from ``V = 0``.

    The same actions are methods (``step``, ``run``, ``reset``) so the stepper
    can be driven from code; ``sweep``, ``V`` and ``policy`` give its state.
    """

    def __init__(
        self,
        env: str = "Example 4.1 (4x4, terminal corners)",
        algorithm: str = "value iteration",
        gamma: float | None = None,
        theta: float = 1e-6,
        max_sweeps: int = 2000,
    ) -> None:
        if env not in DP_ENVIRONMENTS:
            raise ValueError(f"unknown environment {env!r}; choose one of {list(DP_ENVIRONMENTS)}")
        if algorithm not in DP_ALGORITHMS:
            raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {DP_ALGORITHMS}")
        self.theta, self.max_sweeps = theta, max_sweeps
        default_gamma = DP_ENVIRONMENTS[env][1]
        self.env_choice = W.Dropdown(
            options=list(DP_ENVIRONMENTS),
            value=env,
            description="environment",
            layout=W.Layout(width="360px"),
        )
        self.algorithm_choice = W.Dropdown(
            options=list(DP_ALGORITHMS),
            value=algorithm,
            description="algorithm",
            layout=W.Layout(width="360px"),
        )
        self.gamma_slider = W.FloatSlider(
            value=default_gamma if gamma is None else gamma,
            min=0.0,
            max=1.0,
            step=0.01,
            description="gamma",
            readout_format=".2f",
            continuous_update=False,
        )
        self.step_button = W.Button(description="Step sweep", icon="step-forward")
        self.run_button = W.Button(
            description="Run to convergence", icon="fast-forward", layout=W.Layout(width="180px")
        )
        self.reset_button = W.Button(description="Reset", icon="undo")
        self.status = W.HTML()
        self.image = W.Image(format="png", layout=W.Layout(max_width="100%"))
        self.step_button.on_click(lambda _: self.step())
        self.run_button.on_click(lambda _: self.run())
        self.reset_button.on_click(lambda _: self.reset())
        self.env_choice.observe(self._on_env, names="value")
        self.algorithm_choice.observe(lambda _: self.reset(), names="value")
        self.gamma_slider.observe(lambda _: self.reset(), names="value")
        self.widget = W.VBox(
            [
                W.HBox([self.env_choice, self.algorithm_choice]),
                W.HBox([self.gamma_slider, self.step_button, self.run_button, self.reset_button]),
                self.status,
                self.image,
            ]
        )
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Start again from ``V = 0`` with the current environment, algorithm and gamma."""
        make, _ = DP_ENVIRONMENTS[self.env_choice.value]
        self.mdp = make(round(self.gamma_slider.value, 4))
        self.sweep = 0
        self.phase = ""
        self.delta: float | None = None
        self.converged = False
        self.error: str | None = None
        self.V = torch.zeros(self.mdp.n_states, dtype=torch.float64)
        self.policy = self.mdp.uniform_policy()
        self._sweeps = self._generator()
        self._redraw()

    def _generator(self) -> Iterator[dp.Sweep]:
        kw = {"max_sweeps": self.max_sweeps}
        algorithm = self.algorithm_choice.value
        if algorithm == "value iteration":
            return dp.value_iteration_sweeps(self.mdp, self.theta, **kw)
        if algorithm == "policy iteration":
            return dp.policy_iteration_sweeps(self.mdp, self.theta, **kw)
        return dp.policy_evaluation_sweeps(self.mdp, self.mdp.uniform_policy(), self.theta, **kw)

    def _advance(self) -> bool:
        """One sweep; False once the algorithm has finished (or failed)."""
        if self.converged or self.error:
            return False
        try:
            s = next(self._sweeps)
        except StopIteration:
            self.converged = True
            return False
        except RuntimeError as err:  # e.g. gamma = 1 on a task that never ends
            self.error = str(err)
            return False
        self.sweep, self.V, self.delta, self.policy, self.phase = (
            s.k,
            s.V,
            s.delta,
            s.policy,
            s.phase,
        )
        return True

    def step(self) -> None:
        """Do one sweep (or one policy-improvement step) and redraw."""
        self._advance()
        self._redraw()

    def run(self) -> None:
        """Sweep until the algorithm converges (or ``max_sweeps``), then redraw."""
        while self._advance():
            pass
        self._redraw()

    # ---------------------------------------------------------------- display
    def _on_env(self, change: dict[str, Any]) -> None:
        with self.gamma_slider.hold_trait_notifications():
            self.gamma_slider.value = DP_ENVIRONMENTS[change["new"]][1]
        self.reset()

    def _status_text(self) -> str:
        text = f"<b>sweep {self.sweep}</b>"
        if self.delta is not None and self.phase != "improvement":
            text += f" &nbsp; max |ΔV| = {self.delta:.3g}"
        if self.phase == "improvement":
            text += " &nbsp; policy improved"
        if self.converged:
            text += " &nbsp; <b>converged</b>"
        if self.error:
            text += f" &nbsp; <span style='color:#b00'>{self.error}</span>"
        return text

    def _redraw(self) -> None:
        self.status.value = self._status_text()
        pi_arrows = True if self.algorithm_choice.value != "policy iteration" else self.policy
        title = f"{self.algorithm_choice.value}, sweep {self.sweep}, γ = {self.mdp.gamma:g}"
        rows, cols = self.mdp.grid.shape
        self.image.value = _figure_png(
            lambda ax: plots.plot_value_grid(
                self.mdp,
                self.V,
                policy=pi_arrows,
                ax=ax,
                title=title,
                decimals=2 if cols > 5 else 1,
            ),
            (min(9.0, 0.75 * cols + 1.8), 0.75 * rows + 0.9),
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = repr(self)
        return bundle

    def __repr__(self) -> str:
        return (
            f"DPStepper(env={self.env_choice.value!r}, algorithm={self.algorithm_choice.value!r}, "
            f"gamma={self.mdp.gamma:g}, sweep={self.sweep})"
        )
