"""Interactive widgets of the course (ipywidgets).

:class:`DPStepper` steps dynamic programming one sweep at a time on a grid
world: the value heatmap with the policy's arrows and the sweep count update in
place. The figure is an ``Image`` widget whose PNG is redrawn after every
click, so it works the same in JupyterLab, Notebook 7 and VS Code.

Labels, status lines and the dashboard's texts are in the package's language
(:mod:`rlcourse.i18n`), read when a widget is built or redrawn; the names that code
passes and compares (environments, algorithms, methods, perturbations) stay English and
only their shown labels are translated. The matplotlib figures keep English text.
"""

from __future__ import annotations

import html
import io
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import ipywidgets as W
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rlcourse import dp, plots, tabular
from rlcourse.envs import example_3_5, example_4_1
from rlcourse.i18n import (
    N_,
    figure_font,
    figure_language,
    figure_tr,
    get_language,
    label,
    tr,
)
from rlcourse.mdp import TabularMDP, from_gymnasium
from rlcourse.svgplot import Series, legend_html, svg_chart

DPI = 90


def _row() -> W.Layout:
    """A row of controls that wraps on narrow windows."""
    return W.Layout(flex_flow="row wrap", align_items="center")


LABELS = {"description_width": "initial"}  # labels never cut off


def _choices(names: Any) -> list[tuple[str, str]]:
    """Dropdown options: each name (the value code compares) shown in the current language."""
    return [(label(name), name) for name in names]


def _show_figure(image: W.Image, fig: Figure) -> None:
    """Put ``fig`` into ``image`` as a PNG shown at its own pixel size (never stretched)."""
    buf = io.BytesIO()
    with figure_font():  # Chinese text needs a font that has its glyphs
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
    N_("Example 4.1 (4x4, terminal corners)"): (lambda g: example_4_1().to_mdp(g), 1.0),
    N_("Example 3.5 (5x5, A and B)"): (lambda g: example_3_5().to_mdp(g), 0.9),
    "FrozenLake 4x4": (lambda g: from_gymnasium("FrozenLake-v1", gamma=g), 0.99),
    "FrozenLake 8x8": (lambda g: from_gymnasium("FrozenLake-v1", gamma=g, map_name="8x8"), 0.99),
    "CliffWalking": (lambda g: from_gymnasium("CliffWalking-v1", gamma=g), 0.99),
}
DP_ALGORITHMS = (
    N_("value iteration"),
    N_("policy iteration"),
    N_("policy evaluation (random policy)"),
)


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
            options=_choices(DP_ENVIRONMENTS),
            value=env,
            description=tr("environment"),
            style=LABELS,
            layout=W.Layout(width="360px"),
        )
        self.algorithm_choice = W.Dropdown(
            options=_choices(DP_ALGORITHMS),
            value=algorithm,
            description=tr("algorithm"),
            style=LABELS,
            layout=W.Layout(width="360px"),
        )
        self.gamma_slider = W.FloatSlider(
            value=default_gamma if gamma is None else gamma,
            min=0.0,
            max=1.0,
            step=0.01,
            description=tr("gamma"),
            readout_format=".2f",
            continuous_update=False,
        )
        self.step_button = W.Button(description=tr("Step sweep"), icon="step-forward")
        self.run_button = W.Button(
            description=tr("Run to convergence"),
            icon="fast-forward",
            layout=W.Layout(width="180px"),
        )
        self.reset_button = W.Button(description=tr("Reset"), icon="undo")
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
        text = tr("<b>sweep {sweep}</b>", sweep=self.sweep)
        if self.delta is not None and self.phase != "improvement":
            text += f" &nbsp; max |ΔV| = {self.delta:.3g}"
        if self.phase == "improvement":
            text += tr(" &nbsp; policy improved")
        if self.converged:
            text += tr(" &nbsp; <b>converged</b>")
        if self.error:
            text += f" &nbsp; <span style='color:#b00'>{self.error}</span>"
        return text

    def _redraw(self) -> None:
        self.status.value = self._status_text()
        pi_arrows = True if self.algorithm_choice.value != "policy iteration" else self.policy
        title = figure_tr(
            "{algorithm}, sweep {sweep}, γ = {gamma:g}",
            # the name as the dropdown shows it, if the figure can show that language
            algorithm=(
                self.algorithm_choice.label
                if figure_language() == get_language()
                else self.algorithm_choice.value
            ),
            sweep=self.sweep,
            gamma=self.mdp.gamma,
        )
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
    N_("CliffWalking (Example 6.6)"): ("CliffWalking-v1", 1.0, 0.5, 0.1),
    N_("Windy grid world (Example 6.5)"): ("rlcourse/WindyGridWorld-v0", 1.0, 0.5, 0.1),
    N_("FrozenLake 4x4 (slippery)"): ("FrozenLake-v1", 0.99, 0.1, 0.1),
    N_("Example 4.1 (4x4, terminal corners)"): ("rlcourse/GridWorld4x4-v0", 1.0, 0.5, 0.1),
}
AGENT_METHODS = {
    N_("Q-learning"): "q_learning",
    "SARSA": "sarsa",
    N_("Expected SARSA"): "expected_sarsa",
}


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
            options=_choices(AGENT_ENVIRONMENTS),
            value=env,
            description=tr("environment"),
            style=LABELS,
            layout=wide,
        )
        self.method_choice = W.ToggleButtons(options=_choices(AGENT_METHODS), value=method)
        self.alpha_slider = W.FloatSlider(
            value=alpha,
            min=0.01,
            max=1.0,
            step=0.01,
            description=tr("alpha"),
            continuous_update=False,
        )
        self.epsilon_slider = W.FloatSlider(
            value=epsilon,
            min=0.0,
            max=1.0,
            step=0.01,
            description=tr("epsilon"),
            continuous_update=False,
        )
        self.gamma_slider = W.FloatSlider(
            value=gamma,
            min=0.0,
            max=1.0,
            step=0.01,
            description=tr("gamma"),
            continuous_update=False,
        )
        self.step_button = W.Button(description=tr("Step"), icon="step-forward")
        self.episode_button = W.Button(description=tr("Play episode"), icon="play")
        self.run_button = W.Button(
            description=tr("Run N episodes"), icon="fast-forward", layout=W.Layout(width="160px")
        )
        self.n_episodes = W.BoundedIntText(
            value=100, min=1, max=10_000, description="N", layout=W.Layout(width="150px")
        )
        self.reset_button = W.Button(description=tr("Reset"), icon="undo")
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
            return tr("<i>no update yet: press Step</i>")
        names = self.mdp.action_names or tuple(str(a) for a in range(self.mdp.n_actions))
        s, a, s2 = int(u.state[0]), int(u.action[0]), int(u.next_state[0])
        r, target = float(u.reward[0]), float(u.td_target[0])
        end = (
            tr(" (terminated: no bootstrap)")
            if u.terminated[0]
            else (tr(" (truncated: bootstrap from S')") if u.truncated[0] else "")
        )
        rule = {
            "q_learning": "max<sub>a</sub> Q(S′, a)",
            "sarsa": "Q(S′, A′)",
            "expected_sarsa": "Σ<sub>a</sub> π(a|S′) Q(S′, a)",
        }[self.agent.method]
        return (
            f"S = {s} {self.mdp.grid.cells[s]}, A = {names[a]}, R = {r:g}, S′ = {s2}"
            f" {self.mdp.grid.cells[s2]}{end}<br>"
            + tr(
                "TD target = R + γ·{rule} = {target:.3f} &nbsp; "
                "TD error = target − Q(S, A) = {error:.3f}",
                rule=rule,
                target=target,
                error=float(u.td_error[0]),
            )
            + "<br>"
            + tr(
                "Q(S, A): {old:.3f} → {new:.3f} (= old + α·TD error, α = {alpha:g})",
                old=float(u.q_old[0]),
                new=float(u.q_new[0]),
                alpha=self.agent.alpha,
            )
        )

    def _redraw(self) -> None:
        finished = self.agent.returns[0, : self.episodes]
        last = tr(", last return {G:g}", G=finished[-1]) if len(finished) else ""
        self.status.value = tr(
            "<b>episode {episode}</b>, step {step}{last} &nbsp; "
            "({method}, α = {alpha:g}, ε = {epsilon:g}, γ = {gamma:g})",
            episode=self.episodes,
            step=self.steps,
            last=last,
            method=label(self.method_choice.value),
            alpha=self.agent.alpha,
            epsilon=self.epsilon_slider.value,
            gamma=self.agent.gamma,
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
            title=figure_tr("max_a Q(s, a) and greedy actions"),
        )
        right.plot(
            np.arange(1, len(finished) + 1),
            finished,
            ".",
            markersize=3,
            color=plots.COLOURS.get(self.method_choice.value.lower(), "C0"),
        )
        right.set_xlim(0, max(10, len(finished) + 1))
        right.set_xlabel(figure_tr("episode"))
        right.set_ylabel(figure_tr("return"))
        right.set_title(figure_tr("returns so far"))
        right.grid(alpha=0.3)
        _show_figure(self.image, fig)

    def __repr__(self) -> str:
        return (
            f"AgentStepper(env={self.env_choice.value!r}, method={self.method_choice.value!r}, "
            f"episodes={self.episodes}, steps={self.steps})"
        )


# ---------------------------------------------------------------------------------------
# deep agents: stepping a trained agent, and watching training live


def _png(frame: np.ndarray) -> bytes:
    """An RGB frame ``[H, W, 3]`` as PNG bytes."""
    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.fromarray(frame).save(buf, format="png")
    return buf.getvalue()


#: what the viewer's "perturb" control can do to an env: name -> (state index, change),
#: applied to ``env.unwrapped.state`` (the env's physical state, not a copy of it)
PERTURBATIONS: dict[str, dict[str, tuple[int, float]]] = {
    "CartPoleEnv": {
        N_("push the cart left"): (1, -1.0),  # cart velocity, m/s
        N_("push the cart right"): (1, 1.0),
        N_("tilt the pole left"): (2, -0.1),  # pole angle, rad (positive: leaning right)
        N_("tilt the pole right"): (2, 0.1),
    },
    "PendulumEnv": {
        N_("kick it anticlockwise"): (1, 2.0),  # angular velocity, rad/s (positive: anticlockwise)
        N_("kick it clockwise"): (1, -2.0),
        N_("turn it by +45°"): (0, np.pi / 4),  # angle, rad (0: upright)
        N_("turn it by -45°"): (0, -np.pi / 4),
    },
}


def _current_observation(env: Any) -> np.ndarray:
    """The observation of ``env``'s current physical state (after a perturbation)."""
    unwrapped = env.unwrapped
    if hasattr(unwrapped, "_get_obs"):
        return np.asarray(unwrapped._get_obs(), dtype=np.float32)
    return np.asarray(unwrapped.state, dtype=np.float32)


BOLD = ' style="font-weight:bold"'


def _bar(fraction: float, colour: str) -> str:
    width = round(120 * min(max(fraction, 0.0), 1.0))
    return (
        f'<span style="display:inline-block;width:{width}px;height:0.8em;'
        f'background:{colour};vertical-align:middle"></span>'
    )


class AgentViewer(_Stepper):
    """Step a trained agent through an episode and see what it sees and decides.

    ``agent``: a course agent (DQN, PPO, A2C, REINFORCE) or a ``[S, A]`` Q-table; ``env``:
    an env id or a gymnasium env made with ``render_mode="rgb_array"`` whose observation
    and action spaces are the agent's. Beside the rendered frame: the observation, the
    numbers the agent decides on (``Q(s, a)`` for every action, or ``pi(a|s)``, or the
    Gaussian's mean and standard deviation, and ``V(s)``), the action it takes, the last
    reward and the return so far.

    Buttons: *Step* (one step), *Play* / *Pause* (steps at the chosen speed), *Reset* (a
    new episode with the chosen seed); on CartPole and Pendulum, *Perturb* changes the
    physical state (push the cart, tilt the pole, kick the pendulum) to show how the
    policy reacts. The same actions are methods (``step``, ``play``, ``pause``, ``reset``,
    ``perturb``); ``decision`` is what is shown (a :class:`rlcourse.agent.Decision`).
    """

    def __init__(
        self, agent: Any, env: Any, seed: int = 0, *, speed: float = 10.0, max_steps: int = 10_000
    ) -> None:
        from rlcourse.agent import check_agent_env
        from rlcourse.envs.describe import action_labels, observation_labels, rendering_env

        self.env = rendering_env(env)
        check_agent_env(agent, self.env)
        self.agent, self.max_steps = agent, max_steps
        self.env_name = self.env.spec.id if self.env.spec is not None else type(self.env).__name__
        self.obs_labels = observation_labels(self.env)
        self.action_names = action_labels(self.env)
        self.perturbations = PERTURBATIONS.get(type(self.env.unwrapped).__name__, {})

        self.step_button = W.Button(description=tr("Step"), icon="step-forward")
        self.play_button = W.Button(description=tr("Play"), icon="play")
        self.pause_button = W.Button(description=tr("Pause"), icon="pause")
        self.reset_button = W.Button(description=tr("Reset"), icon="undo")
        self.seed_box = W.BoundedIntText(
            value=seed,
            min=0,
            max=2**31 - 1,
            description=tr("seed"),
            layout=W.Layout(width="170px"),
        )
        self.speed_slider = W.FloatSlider(
            value=speed, min=1.0, max=30.0, step=1.0, description=tr("steps/s"), style=LABELS
        )
        # the clock of Play: the page advances it, each tick is one step
        self.ticker = W.Play(value=0, min=0, max=max_steps, interval=round(1000 / speed))
        self.ticker.layout.display = "none"
        self.perturb_choice = W.Dropdown(
            options=[(tr(name), name) for name in self.perturbations],
            layout=W.Layout(width="210px"),
        )
        self.perturb_button = W.Button(description=tr("Perturb"), icon="hand-paper-o")
        self.image = W.Image(format="png")
        self.info = W.HTML()
        self.status = W.HTML()
        self.step_button.on_click(lambda _: self.step())
        self.play_button.on_click(lambda _: self.play())
        self.pause_button.on_click(lambda _: self.pause())
        self.reset_button.on_click(lambda _: self.reset())
        self.perturb_button.on_click(lambda _: self.perturb())
        self.speed_slider.observe(self._on_speed, names="value")
        self.ticker.observe(self._on_tick, names="value")
        controls = [self.step_button, self.play_button, self.pause_button, self.reset_button]
        rows = [
            W.HBox([*controls, self.seed_box], layout=_row()),
            W.HBox([self.speed_slider, self.ticker], layout=_row()),
        ]
        if self.perturbations:
            rows.append(W.HBox([self.perturb_choice, self.perturb_button], layout=_row()))
        rows += [self.status, W.HBox([self.image, self.info], layout=_row())]
        self.widget = W.VBox(rows)
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self, seed: int | None = None) -> None:
        """A new episode, seeded ``seed`` (default: the seed box's value)."""
        from rlcourse.agent import decide

        self.pause()
        self.ticker.value = 0  # the Play clock starts again (going back steps nothing)
        if seed is not None:
            self.seed_box.value = seed
        self.observation, _ = self.env.reset(seed=int(self.seed_box.value))
        self.steps, self.episode_return = 0, 0.0
        self.last_action: Any = None
        self.last_reward: float | None = None
        self.terminated = self.truncated = False
        self.decision = decide(self.agent, self.observation)
        self._redraw()

    @property
    def done(self) -> bool:
        """Whether the episode has ended (terminated, truncated, or ``max_steps`` reached)."""
        return self.terminated or self.truncated or self.steps >= self.max_steps

    def step(self) -> None:
        """The agent takes the action it decided on; the viewer shows the next state."""
        from rlcourse.agent import decide

        if self.done:
            self.pause()
            return
        action = self.decision.action
        self.observation, reward, self.terminated, self.truncated, _ = self.env.step(action)
        self.steps += 1
        self.last_action, self.last_reward = action, float(reward)
        self.episode_return += float(reward)
        self.decision = decide(self.agent, self.observation)
        if self.done:
            self.pause()
        self._redraw()

    def play(self) -> None:
        """Step at ``steps/s`` until Pause or the end of the episode."""
        if not self.done:
            self.ticker.playing = True

    def pause(self) -> None:
        self.ticker.playing = False

    def perturb(self, name: str | None = None, strength: float = 1.0) -> None:
        """Change the env's physical state by the perturbation ``name`` (default: the one
        chosen) times ``strength``; the agent then decides on the new observation."""
        from rlcourse.agent import decide

        if not self.perturbations:
            raise ValueError(f"the viewer has no perturbations for {self.env_name}")
        name = self.perturb_choice.value if name is None else name
        if name not in self.perturbations:
            raise ValueError(
                f"unknown perturbation {name!r}; choose one of {list(self.perturbations)}"
            )
        if self.done:
            return
        index, change = self.perturbations[name]
        unwrapped = self.env.unwrapped
        state = np.array(unwrapped.state, dtype=np.float64)
        state[index] += strength * change
        unwrapped.state = state
        self.observation = _current_observation(self.env)
        self.decision = decide(self.agent, self.observation)
        self._redraw(note=tr("perturbed: {name}", name=tr(name)))

    # ---------------------------------------------------------------- display
    def _on_speed(self, change: dict[str, Any]) -> None:
        self.ticker.interval = round(1000 / change["new"])

    def _on_tick(self, change: dict[str, Any]) -> None:
        if change["new"] > change["old"]:
            self.step()

    def _decision_html(self) -> str:
        d, names = self.decision, self.action_names
        rows = []
        if d.kind == "gaussian":
            std = d.std if d.std is not None else np.zeros_like(d.values)
            for name, mean, s in zip(names, d.values, std, strict=True):
                cells = tr("<td>mean {mean:+.3f}</td><td>std {std:.3f}</td>", mean=mean, std=s)
                rows.append(f"<tr><td>{name}</td>{cells}</tr>")
            head = tr("Gaussian policy π(a|s)")
        else:
            values = np.asarray(d.values, dtype=np.float64)
            low, high = (0.0, 1.0) if d.kind == "probs" else (values.min(), values.max())
            span = high - low or 1.0
            for a, (name, v) in enumerate(zip(names, values, strict=True)):
                taken = a == d.action
                fraction = v if d.kind == "probs" else 0.15 + 0.85 * (v - low) / span
                bar = _bar(fraction, "#DD8452" if taken else "#4C72B0")
                mark = tr(" ← takes it") if taken else ""
                rows.append(
                    f"<tr{BOLD if taken else ''}><td>{name}</td>"
                    f"<td style='text-align:right'>{v:.3f}</td><td>{bar}{mark}</td></tr>"
                )
            head = "Q(s, a)" if d.kind == "q" else "π(a|s)"
        if d.value is not None:
            what = "max<sub>a</sub> Q(s, a)" if d.kind == "q" else "V(s)"
            rows.append(f"<tr><td>{what}</td><td style='text-align:right'>{d.value:.3f}</td></tr>")
        return f"<b>{head}</b><table>{''.join(rows)}</table>"

    def _info_html(self) -> str:
        obs = np.atleast_1d(np.asarray(self.observation, dtype=np.float64))
        obs_rows = "".join(
            f"<tr><td>{name}</td><td style='text-align:right'>{x:+.3f}</td></tr>"
            if len(obs) > 1 or self.obs_labels != ("state",)
            else f"<tr><td>{name}</td><td style='text-align:right'>{int(x)}</td></tr>"
            for name, x in zip(self.obs_labels, obs, strict=True)
        )
        action = self.decision.action
        action_text = (
            self.action_names[action]
            if isinstance(action, int)
            else ", ".join(f"{x:+.3f}" for x in np.atleast_1d(action))
        )
        return tr(
            "<b>observation s</b><table>{rows}</table>{decision}<b>action</b>: {action}",
            rows=obs_rows,
            decision=self._decision_html(),
            action=action_text,
        )

    def _redraw(self, note: str = "") -> None:
        if self.terminated:
            end = tr(" · <b>episode over</b> (terminated): press Reset")
        elif self.truncated or self.steps >= self.max_steps:
            end = tr(" · <b>episode over</b> (time limit): press Reset")
        else:
            end = ""
        last = "" if self.last_reward is None else tr(" · last reward {r:g}", r=self.last_reward)
        self.status.value = tr(
            "<b>{env}</b>, episode seed {seed} · step {step}{last} · return so far {G:g}{end}",
            env=self.env_name,
            seed=self.seed_box.value,
            step=self.steps,
            last=last,
            G=self.episode_return,
            end=end,
        ) + (f" · <i>{note}</i>" if note else "")
        self.image.value = _png(self.env.render())
        self.info.value = self._info_html()

    def __repr__(self) -> str:
        kind = getattr(self.agent, "algorithm", "Q-table").upper()
        return f"AgentViewer({kind} agent on {self.env_name})"


#: the panels of the training monitor: the history's field -> (title, y label); a panel is
#: drawn when the history has the field (DQN: losses, epsilon; PPO, A2C, REINFORCE: the rest)
MONITOR_PANELS: dict[str, tuple[str, str]] = {
    "losses": (N_("TD loss"), "Huber loss"),
    "epsilon": (N_("exploration"), "ε"),
    "policy_loss": (N_("policy loss"), "loss"),
    "value_loss": (N_("value loss"), "loss"),
    "entropy": (N_("entropy of π"), "nats"),
    "approx_kl": (N_("KL(π_old ‖ π) per update"), "approx. KL"),
    "clip_fraction": (N_("clip fraction"), "fraction"),
}
STOP_REASONS = {
    "budget": N_("ran its whole step budget"),
    "solved": N_("stopped at a confirmed solve"),
    "callback": N_("stopped by you"),
}


class TrainingMonitor(_Stepper):
    """A live dashboard of a training run, passed as its callback.

    ``dqn.train``, ``ppo.train``, ``pg.train_a2c`` and ``pg.train_reinforce`` call it after
    every update with ``(step, history, agent)``; it redraws the learning curve (training
    episodes and the greedy evaluations, with the solve threshold), the losses, epsilon or
    the entropy, and PPO's KL and clip fraction, in place, at a bounded rate: at most one
    redraw per ``min_interval`` seconds, and only while the time spent drawing stays within
    ``max_overhead`` of the time since training began (a run of a few seconds is drawn
    when it ends).

    The *Stop* button ends training cleanly at the next update: the policy to hand back is
    chosen and scored as after a full run. For the button to reach the kernel while
    training runs, run training with :meth:`run` (in a background thread, awaited)::

        monitor = TrainingMonitor("DQN on CartPole-v1")
        display(monitor)
        agent, history = await monitor.run(dqn.train, "CartPole-v1", seed=0)

    (Passed directly as ``callback=monitor`` the dashboard updates, but the page can only
    reach the kernel after the cell ends, too late for *Stop*.)
    """

    def __init__(
        self,
        title: str = "training",
        *,
        min_interval: float = 0.5,
        max_overhead: float = 0.05,
    ) -> None:
        if not min_interval >= 0:
            raise ValueError(f"min_interval must be >= 0 seconds, got {min_interval}")
        if not 0 < max_overhead <= 1:
            raise ValueError(f"max_overhead must be in (0, 1], got {max_overhead}")
        self.title, self.min_interval, self.max_overhead = title, min_interval, max_overhead
        self.clock: Callable[[], float] = time.perf_counter
        self.stop_requested = False
        self.step = 0
        self.history: Any = None
        self.agent: Any = None
        self.calls = self.draws = 0
        self.draw_time = self.callback_time = 0.0  #: seconds spent drawing / in the callback
        self._start: float | None = None  # the clock at the first call
        self._last_draw = -math.inf
        self._draw_cost = 0.02  # seconds a redraw takes: a guess until one is measured
        self.stop_button = W.Button(description=tr("Stop"), icon="stop", button_style="danger")
        self.stop_button.on_click(lambda _: self.stop())
        self.status = W.HTML(
            tr("<b>{title}</b>: waiting for the first update", title=html.escape(title))
        )
        self.charts = W.HTML()
        self.widget = W.VBox([W.HBox([self.stop_button, self.status], layout=_row()), self.charts])

    def stop(self) -> None:
        """Ask training to stop at its next update (what the Stop button does)."""
        self.stop_requested = True
        self.stop_button.disabled = True
        self.stop_button.description = tr("Stopping…")

    # --------------------------------------------------------------- callback
    def __call__(self, step: int, history: Any, agent: Any) -> bool:
        """The training callback: record, redraw when due; True once Stop was pressed."""
        start = self.clock()
        self.calls += 1
        self.step, self.history, self.agent = step, history, agent
        if self._start is None:
            self._start = start
        elapsed = start - self._start
        # draw when min_interval has passed and the drawing so far, plus one more, stays
        # within max_overhead of the time since training began
        if (
            start - self._last_draw >= self.min_interval
            and self.draw_time + self._draw_cost <= self.max_overhead * elapsed
        ):
            self.redraw()
            self._last_draw = start
        self.callback_time += self.clock() - start
        return self.stop_requested

    async def run(self, train: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``train(*args, callback=self, progress=False, **kwargs)`` in a background thread,
        awaited: the kernel stays free to hear the Stop button. Returns what ``train``
        returns, after a last redraw with the final history."""
        import asyncio

        kwargs.setdefault("progress", False)
        try:
            result = await asyncio.to_thread(train, *args, callback=self, **kwargs)
        except BaseException:  # an error or an interrupt: end the training thread too
            self.stop()
            self.status.value += tr(" · <b>training failed or was interrupted</b>")
            raise
        self.finish(*result)
        return result

    def finish(self, agent: Any, history: Any) -> None:
        """Show the end of training: why it ended, the policy handed back, its score."""
        self.agent, self.history = agent, history
        self.step = max([self.step] + [s for s, *_ in history.evaluations])
        self.redraw(final=True)
        self.stop_button.disabled = True
        self.stop_button.description = (
            tr("Stopped") if history.stop_reason == "callback" else tr("Done")
        )

    # ---------------------------------------------------------------- drawing
    def redraw(self, final: bool = False) -> None:
        """Draw the dashboard for the history seen last (called at the bounded rate): the
        charts as inline SVG, a few milliseconds of work (:mod:`rlcourse.svgplot`)."""
        h = self.history
        if h is None:
            return
        start = self.clock()
        self.draws += 1
        self.status.value = self._status_html(final)
        self.charts.value = self._charts_html(h, final)
        self._draw_cost = self.clock() - start
        self.draw_time += self._draw_cost

    @property
    def panels(self) -> list[str]:
        """The history's series drawn in small charts beside the learning curve."""
        return [name for name in MONITOR_PANELS if getattr(self.history, name, None) is not None]

    def _charts_html(self, h: Any, final: bool) -> str:
        """The learning curve, and a small chart for each series the history has."""
        episodes = np.array(h.episodes, dtype=np.float64).reshape(-1, 3)
        curve = [Series(episodes[:, 0], episodes[:, 1], "#999999", "dots", tr("training episodes"))]
        window = min(20, len(episodes))
        if window:
            smooth = np.convolve(episodes[:, 1], np.ones(window) / window, mode="valid")
            curve.append(
                Series(
                    episodes[window - 1 :, 0],
                    smooth,
                    "#4C72B0",
                    "line",
                    tr("mean of the last {window} training episodes", window=window),
                )
            )
        ev = np.array(h.evaluations, dtype=np.float64).reshape(-1, 3)
        curve.append(
            Series(ev[:, 0], ev[:, 1] - ev[:, 2], "#DD8452", "bars", y2=ev[:, 1] + ev[:, 2])
        )
        curve.append(
            Series(ev[:, 0], ev[:, 1], "#DD8452", "markers", tr("greedy evaluation (± std)"))
        )
        cf = np.array(h.confirmations, dtype=np.float64).reshape(-1, 3)
        curve.append(
            Series(cf[:, 0], cf[:, 1], "#55A868", "markers", tr("confirmation (100 episodes)"))
        )
        if final and h.selected_step is not None and h.held_out_mean is not None:
            curve.append(
                Series(
                    np.array([h.selected_step]),
                    np.array([h.held_out_mean]),
                    "#C44E52",
                    "markers",
                    tr("handed back: held-out mean"),
                )
            )
        hlines = [] if h.threshold is None else [(h.threshold, "#C44E52")]
        extra = (
            []
            if h.threshold is None
            else [("#C44E52", tr("solved: {threshold:g} (dashed)", threshold=h.threshold))]
        )
        main = svg_chart(
            curve,
            width=460,
            height=270,
            title=tr("return"),
            xlabel=tr("environment steps"),
            hlines=hlines,
        )
        small = []
        for name in self.panels:
            title = tr(MONITOR_PANELS[name][0])
            series = np.array(getattr(h, name), dtype=np.float64).reshape(-1, 2)
            small.append(
                svg_chart(
                    [Series(series[:, 0], series[:, 1], "#4C72B0")],
                    width=215,
                    height=130,
                    title=title,
                )
            )
        grid = (
            '<div style="display:grid;grid-template-columns:repeat(auto-fill,215px);gap:4px;'
            'flex:1;min-width:215px">' + "".join(small) + "</div>"
        )
        return (
            f'<div style="display:flex;flex-wrap:wrap;gap:6px;align-items:flex-start">{main}'
            f"{grid}</div><div style='font-size:11px'>{legend_html(curve, extra)}</div>"
        )

    def _status_html(self, final: bool) -> str:
        h = self.history
        parts = [f"<b>{html.escape(self.title)}</b>", tr("step {step:,}", step=self.step)]
        parts.append(tr("{n:,} training episodes", n=len(h.episodes)))
        if h.evaluations:
            parts.append(tr("last evaluation {score:.1f}", score=h.evaluations[-1][1]))
        parts.append(tr("{seconds:.1f} s training", seconds=h.train_time))
        if final:
            reason = h.stop_reason
            parts.append(f"<b>{tr(STOP_REASONS[reason]) if reason in STOP_REASONS else reason}</b>")
            if h.selected_step is not None:
                parts.append(tr("handed back the policy of step {step:,}", step=h.selected_step))
            if h.held_out_mean is not None:
                verdict = tr("solved") if h.solved else tr("not solved")
                parts.append(
                    tr(
                        "held-out mean {mean:.1f} ({verdict})",
                        mean=h.held_out_mean,
                        verdict=verdict,
                    )
                )
        elif self.stop_requested:
            parts.append(tr("<b>stopping…</b>"))
        return " · ".join(parts)

    def __repr__(self) -> str:
        return f"TrainingMonitor({self.title!r})"
