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
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rlcourse import dp, plots, tabular
from rlcourse.envs import example_3_5, example_4_1
from rlcourse.mdp import TabularMDP, from_gymnasium

DPI = 90


def _row() -> W.Layout:
    """A row of controls that wraps on narrow windows."""
    return W.Layout(flex_flow="row wrap", align_items="center")


LABELS = {"description_width": "initial"}  # labels never cut off


def _show_figure(image: W.Image, fig: Figure) -> None:
    """Put ``fig`` into ``image`` as a PNG shown at its own pixel size (never stretched)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    image.value = buf.getvalue()
    image.layout.width = f"{round(fig.get_figwidth() * DPI)}px"
    image.layout.max_width = "100%"  # shrinks (never stretches) in a narrow window


def _new_figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


#: the grid worlds the stepper offers: label -> (MDP factory taking gamma, default gamma)
DP_ENVIRONMENTS: dict[str, tuple[Callable[[float], TabularMDP], float]] = {
    "Example 4.1 (4x4, terminal corners)": (lambda g: example_4_1().to_mdp(g), 1.0),
    "Example 3.5 (5x5, A and B)": (lambda g: example_3_5().to_mdp(g), 0.9),
    "FrozenLake 4x4": (lambda g: from_gymnasium("FrozenLake-v1", gamma=g), 0.99),
    "FrozenLake 8x8": (lambda g: from_gymnasium("FrozenLake-v1", gamma=g, map_name="8x8"), 0.99),
    "CliffWalking": (lambda g: from_gymnasium("CliffWalking-v1", gamma=g), 0.99),
}
DP_ALGORITHMS = ("value iteration", "policy iteration", "policy evaluation (random policy)")


class _Stepper:
    """Shows ``self.widget``, with ``repr(self)`` as its plain-text form: short and the same
    on every run (the widget's own repr lists every trait)."""

    widget: W.Widget

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = repr(self)
        return bundle


class DPStepper(_Stepper):
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
            style=LABELS,
            layout=W.Layout(width="360px"),
        )
        self.algorithm_choice = W.Dropdown(
            options=list(DP_ALGORITHMS),
            value=algorithm,
            description="algorithm",
            style=LABELS,
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
        self.image = W.Image(format="png")
        self.step_button.on_click(lambda _: self.step())
        self.run_button.on_click(lambda _: self.run())
        self.reset_button.on_click(lambda _: self.reset())
        self.env_choice.observe(self._on_env, names="value")
        self.algorithm_choice.observe(lambda _: self.reset(), names="value")
        self.gamma_slider.observe(lambda _: self.reset(), names="value")
        self.widget = W.VBox(
            [
                W.HBox([self.env_choice, self.algorithm_choice], layout=_row()),
                W.HBox(
                    [self.gamma_slider, self.step_button, self.run_button, self.reset_button],
                    layout=_row(),
                ),
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
        fig = _new_figure((min(9.0, 0.75 * cols + 1.8), 0.75 * rows + 0.9))
        plots.plot_value_grid(
            self.mdp,
            self.V,
            policy=pi_arrows,
            ax=fig.add_subplot(),
            title=title,
            decimals=2 if cols > 5 else 1,
        )
        _show_figure(self.image, fig)

    def __repr__(self) -> str:
        return (
            f"DPStepper(env={self.env_choice.value!r}, algorithm={self.algorithm_choice.value!r}, "
            f"gamma={self.mdp.gamma:g}, sweep={self.sweep})"
        )


#: environments of the agent stepper: label -> (env id, gamma, alpha, epsilon)
AGENT_ENVIRONMENTS: dict[str, tuple[str, float, float, float]] = {
    "CliffWalking (Example 6.6)": ("CliffWalking-v1", 1.0, 0.5, 0.1),
    "Windy grid world (Example 6.5)": ("rlcourse/WindyGridWorld-v0", 1.0, 0.5, 0.1),
    "FrozenLake 4x4 (slippery)": ("FrozenLake-v1", 0.99, 0.1, 0.1),
    "Example 4.1 (4x4, terminal corners)": ("rlcourse/GridWorld4x4-v0", 1.0, 0.5, 0.1),
}
AGENT_METHODS = {"Q-learning": "q_learning", "SARSA": "sarsa", "Expected SARSA": "expected_sarsa"}


class AgentStepper(_Stepper):
    """Watch a tabular agent learn, one transition at a time.

    Buttons: *Step* (one transition and its update), *Play episode* (to the end of
    the current episode), *Run N episodes*, *Reset*. The figure shows ``max_a Q(s, a)``
    with the greedy actions and the agent (red ring), beside the returns of the
    episodes so far; the text below it writes out the last update in numbers.
    Sliders change alpha, epsilon and gamma as the agent learns; changing the
    environment or the method starts a new agent.
    """

    def __init__(
        self,
        env: str = "CliffWalking (Example 6.6)",
        method: str = "Q-learning",
        seed: int = 0,
        max_episodes: int = 100_000,
    ) -> None:
        if env not in AGENT_ENVIRONMENTS:
            raise ValueError(
                f"unknown environment {env!r}; choose one of {list(AGENT_ENVIRONMENTS)}"
            )
        if method not in AGENT_METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {list(AGENT_METHODS)}")
        self.seed, self.max_episodes = seed, max_episodes
        _, gamma, alpha, epsilon = AGENT_ENVIRONMENTS[env]
        wide = W.Layout(width="330px")
        self.env_choice = W.Dropdown(
            options=list(AGENT_ENVIRONMENTS),
            value=env,
            description="environment",
            style=LABELS,
            layout=wide,
        )
        self.method_choice = W.ToggleButtons(options=list(AGENT_METHODS), value=method)
        self.alpha_slider = W.FloatSlider(
            value=alpha, min=0.01, max=1.0, step=0.01, description="alpha", continuous_update=False
        )
        self.epsilon_slider = W.FloatSlider(
            value=epsilon,
            min=0.0,
            max=1.0,
            step=0.01,
            description="epsilon",
            continuous_update=False,
        )
        self.gamma_slider = W.FloatSlider(
            value=gamma, min=0.0, max=1.0, step=0.01, description="gamma", continuous_update=False
        )
        self.step_button = W.Button(description="Step", icon="step-forward")
        self.episode_button = W.Button(description="Play episode", icon="play")
        self.run_button = W.Button(
            description="Run N episodes", icon="fast-forward", layout=W.Layout(width="160px")
        )
        self.n_episodes = W.BoundedIntText(
            value=100, min=1, max=10_000, description="N", layout=W.Layout(width="150px")
        )
        self.reset_button = W.Button(description="Reset", icon="undo")
        self.status = W.HTML()
        self.update_text = W.HTML()
        self.image = W.Image(format="png")
        self.step_button.on_click(lambda _: self.step())
        self.episode_button.on_click(lambda _: self.play_episode())
        self.run_button.on_click(lambda _: self.run_episodes(self.n_episodes.value))
        self.reset_button.on_click(lambda _: self.reset())
        self.env_choice.observe(self._on_env, names="value")
        self.method_choice.observe(lambda _: self.reset(), names="value")
        for slider in (self.alpha_slider, self.epsilon_slider, self.gamma_slider):
            slider.observe(lambda _: self._apply_sliders(), names="value")
        self.widget = W.VBox(
            [
                W.HBox([self.env_choice, self.method_choice], layout=_row()),
                W.HBox([self.alpha_slider, self.epsilon_slider, self.gamma_slider], layout=_row()),
                W.HBox(
                    [
                        self.step_button,
                        self.episode_button,
                        self.run_button,
                        self.n_episodes,
                        self.reset_button,
                    ]
                ),
                self.status,
                self.image,
                self.update_text,
            ]
        )
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """A new agent with ``Q = 0`` on the chosen environment, with the chosen method."""
        env_id = AGENT_ENVIRONMENTS[self.env_choice.value][0]
        self.agent = tabular.TDControl(
            env_id,
            AGENT_METHODS[self.method_choice.value],
            n_episodes=self.max_episodes,
            alpha=self.alpha_slider.value,
            gamma=self.gamma_slider.value,
            epsilon=self.epsilon_slider.value,
            seed=self.seed,
        )
        self.mdp = self.agent.envs.env.to_mdp(gamma=1.0)  # for the grid and action names
        self._redraw()

    def _apply_sliders(self) -> None:
        self.agent.alpha = max(self.alpha_slider.value, 0.01)
        self.agent.gamma = self.gamma_slider.value
        self.agent.epsilon = tabular.constant_schedule(self.epsilon_slider.value)
        self._redraw()

    @property
    def episodes(self) -> int:
        return int(self.agent.episode[0])

    @property
    def steps(self) -> int:
        return self.agent.total_steps

    def step(self) -> None:
        """One transition and its update."""
        self.agent.step()
        self._redraw()

    def play_episode(self, max_steps: int = 100_000) -> None:
        """Step to the end of the current episode."""
        self.run_episodes(1, max_steps)

    def run_episodes(self, n: int, max_steps: int = 1_000_000) -> None:
        """Step until ``n`` more episodes have ended (or ``max_steps`` steps)."""
        target = min(self.episodes + n, self.max_episodes)
        for _ in range(max_steps):
            if self.episodes >= target:
                break
            self.agent.step()
        self._redraw()

    # ---------------------------------------------------------------- display
    def _on_env(self, change: dict[str, Any]) -> None:
        _, gamma, alpha, epsilon = AGENT_ENVIRONMENTS[change["new"]]
        for slider, value in (
            (self.gamma_slider, gamma),
            (self.alpha_slider, alpha),
            (self.epsilon_slider, epsilon),
        ):
            with slider.hold_trait_notifications():
                slider.value = value
        self.reset()

    def _update_html(self) -> str:
        u = self.agent.last
        if u is None:
            return "<i>no update yet: press Step</i>"
        names = self.mdp.action_names or tuple(str(a) for a in range(self.mdp.n_actions))
        s, a, s2 = int(u.state[0]), int(u.action[0]), int(u.next_state[0])
        r, target = float(u.reward[0]), float(u.td_target[0])
        end = (
            " (terminated: no bootstrap)"
            if u.terminated[0]
            else (" (truncated: bootstrap from S')" if u.truncated[0] else "")
        )
        rule = {
            "q_learning": "max<sub>a</sub> Q(S′, a)",
            "sarsa": "Q(S′, A′)",
            "expected_sarsa": "Σ<sub>a</sub> π(a|S′) Q(S′, a)",
        }[self.agent.method]
        return (
            f"S = {s} {self.mdp.grid.cells[s]}, A = {names[a]}, R = {r:g}, S′ = {s2}"
            f" {self.mdp.grid.cells[s2]}{end}<br>"
            f"TD target = R + γ·{rule} = {target:.3f} &nbsp; "
            f"TD error = target − Q(S, A) = {float(u.td_error[0]):.3f}<br>"
            f"Q(S, A): {float(u.q_old[0]):.3f} → {float(u.q_new[0]):.3f} "
            f"(= old + α·TD error, α = {self.agent.alpha:g})"
        )

    def _redraw(self) -> None:
        finished = self.agent.returns[0, : self.episodes]
        last = f", last return {finished[-1]:g}" if len(finished) else ""
        self.status.value = (
            f"<b>episode {self.episodes}</b>, step {self.steps}{last} &nbsp; "
            f"({self.method_choice.value}, α = {self.agent.alpha:g}, "
            f"ε = {self.epsilon_slider.value:g}, γ = {self.agent.gamma:g})"
        )
        self.update_text.value = self._update_html()
        rows, cols = self.mdp.grid.shape
        fig = _new_figure((min(6.5, 0.5 * cols + 1.3) + 2.8, 0.55 * rows + 1.3))
        left, right = fig.subplots(1, 2, width_ratios=[cols + 2, 7])
        plots.plot_q_grid(
            self.mdp,
            self.agent.Q[0],
            visited=self.agent.visits[0] > 0,
            ax=left,
            agent=int(self.agent.state[0]),
            decimals=1,
            title="max_a Q(s, a) and greedy actions",
        )
        right.plot(
            np.arange(1, len(finished) + 1),
            finished,
            ".",
            markersize=3,
            color=plots.COLOURS.get(self.method_choice.value.lower(), "C0"),
        )
        right.set_xlim(0, max(10, len(finished) + 1))
        right.set_xlabel("episode")
        right.set_ylabel("return")
        right.set_title("returns so far")
        right.grid(alpha=0.3)
        _show_figure(self.image, fig)

    def __repr__(self) -> str:
        return (
            f"AgentStepper(env={self.env_choice.value!r}, method={self.method_choice.value!r}, "
            f"episodes={self.episodes}, steps={self.steps})"
        )
