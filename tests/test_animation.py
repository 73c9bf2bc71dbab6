"""rlcourse.plots.episode_animation: one episode of an agent replayed as an inline HTML
animation, with the agent's own numbers at every step, small enough to keep in a notebook."""

from __future__ import annotations

import math
import re
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pytest
import torch
from nbval.plugin import IPyNbCell, get_sanitize_patterns

from rlcourse import dp, from_gymnasium, plots
from rlcourse.dqn import DQNAgent
from rlcourse.evaluate import evaluate
from rlcourse.nets import ActorCritic, QNetwork
from rlcourse.pg import A2CAgent
from rlcourse.ppo import PPOAgent

ROOT = Path(__file__).resolve().parents[1]
FRAME = re.compile(r'frames\[\d+\] = "data:image/jpeg;base64,')


def balancing_agent() -> DQNAgent:
    """A DQN agent whose linear Q-network is set by hand so that its greedy action is a
    balancing rule, push right iff k . s > 0: it keeps CartPole up for all 500 steps."""
    net = QNetwork(4, 2, hidden=())
    k = torch.tensor([0.1, 0.5, 10.0, 2.0])  # cart position, velocity, pole angle, angular vel.
    with torch.no_grad():
        net.body[0].weight.copy_(torch.stack([-k / 2, k / 2]))  # Q(s, right) - Q(s, left) = k . s
        net.body[0].bias.fill_(1.0)
    return DQNAgent(net)


@pytest.fixture(scope="module")
def cartpole() -> tuple[DQNAgent, plots.EpisodeAnimation, list[int]]:
    agent = balancing_agent()
    figures = plt.get_fignums()
    animation = plots.episode_animation(agent, "CartPole-v1", seed=0)
    return agent, animation, figures


def frozen_lake_q(**kwargs) -> torch.Tensor:
    mdp = from_gymnasium("FrozenLake-v1", gamma=0.99, **kwargs)
    return dp.q_from_v(mdp, dp.value_iteration(mdp).V)


def test_dqn_decisions_are_the_agents_q_values(cartpole) -> None:
    agent, animation, _ = cartpole
    assert animation.steps == 500 and animation.ending == "truncated"
    assert len(animation.decisions) == len(animation.rewards) == 500
    for d in animation.decisions:
        assert d.kind == "q"
        q = agent.q_values(d.observation)
        assert torch.equal(torch.as_tensor(d.values), q)
        assert d.action == int(q.argmax()) and d.value == pytest.approx(float(q.max()))
    # the recorded observations are the episode's: gymnasium's seeded episode, step by step
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=0)
    for d in animation.decisions:
        np.testing.assert_array_equal(d.observation, obs)
        obs, *_ = env.step(d.action)


def test_return_is_evaluates_for_the_same_seed(cartpole) -> None:
    agent, animation, _ = cartpole
    assert animation.episode_return == 500.0
    assert animation.episode_return == evaluate(agent, "CartPole-v1", 1, seed=0)[0]
    np.testing.assert_array_equal(animation.rewards, np.ones(500))


def test_500_step_cartpole_episode_stays_under_a_megabyte(cartpole, tmp_path) -> None:
    """Under 1 MB as HTML and as stored in a notebook file (JSON, one string per line)."""
    _, animation, figures = cartpole
    size = len(animation._repr_html_().encode())
    assert size < 1_000_000, f"{size:,} bytes of HTML"
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("plots.episode_animation(agent, 'CartPole-v1')")
    data = {"text/html": animation._repr_html_(), "text/plain": repr(animation)}
    cell.outputs = [nbformat.v4.new_output("execute_result", data=data, execution_count=1)]
    notebook.cells = [cell]
    nbformat.write(notebook, tmp_path / "episode.ipynb")
    stored = (tmp_path / "episode.ipynb").stat().st_size
    assert stored < 1_000_000, f"{stored:,} bytes in the notebook file"
    assert 0 < stored - plots._stored_bytes(animation.html) < 1_000  # the estimate the cap uses
    assert len(FRAME.findall(animation.html)) == animation.frames
    assert plt.get_fignums() == figures, "the animation left a pyplot figure open"


def test_frames_stride_and_last_step(cartpole) -> None:
    _, animation, _ = cartpole
    assert animation.stride == math.ceil(500 / 99) == 6
    assert animation.shown == (*range(0, 500, 6), 500)  # every 6th state, and the last one
    assert animation.frames == math.ceil(500 / 6) + 1 == 85 <= 100
    for steps in (1, 2, 7, 99, 100, 101, 500, 9_999):
        for max_frames in (2, 3, 10, 100):
            stride, shown = plots._shown_steps(steps, max_frames)
            assert len(shown) <= max_frames and shown[0] == 0 and shown[-1] == steps
            assert len(shown) == math.ceil(steps / stride) + 1
            assert set(np.diff(shown[:-1])) <= {stride} and 0 < shown[-1] - shown[-2] <= stride


def test_repr_is_a_stable_sentence_and_html_has_the_markers(cartpole) -> None:
    _, animation, _ = cartpole
    assert repr(animation) == (
        "Episode of CartPole-v1 (seed 0): return 500.0 in 500 steps (truncated); "
        "85 frames, every 6th step"
    )
    html = animation._repr_html_()
    assert html.startswith(plots.ANIMATION_BEGIN) and html.rstrip().endswith(plots.ANIMATION_END)
    assert html.count(plots.ANIMATION_BEGIN) == html.count(plots.ANIMATION_END) == 1
    assert "<script" in animation.html and "ffmpeg" not in animation.html


def test_nbval_sanitize_replaces_the_whole_animation(cartpole) -> None:
    """nbval applies every pattern of nbval_sanitize.cfg with re.sub, in order: the
    animation (random ids, pixel data) becomes one placeholder, the text around it stays."""
    patterns = get_sanitize_patterns((ROOT / "nbval_sanitize.cfg").read_text(encoding="utf-8"))
    cell = SimpleNamespace(parent=SimpleNamespace(sanitize_patterns=dict(patterns)))

    def sanitize(text: str) -> str:
        return IPyNbCell.sanitize(cell, text)  # nbval's own method

    assert patterns[0][1] == "[ANIMATION]", "the animation's pattern must run first (speed)"
    animation = cartpole[1]
    assert sanitize(repr(animation)) == repr(animation)  # the text/plain form is compared as is
    html = animation._repr_html_()
    other = html.replace("_anim_img", "_anim_img0").replace("frames[0] =", "frames[0]  =")
    assert sanitize(f"before\n{html}\nafter") == "before\n[ANIMATION]\nafter"
    assert sanitize(html) == sanitize(other) == "[ANIMATION]"
    # two animations in one output are replaced one by one, not with what lies between
    assert sanitize(f"{html}<p>between</p>{other}") == "[ANIMATION]<p>between</p>[ANIMATION]"


@torch.no_grad()
def test_gaussian_policy_on_pendulum() -> None:
    torch.manual_seed(0)
    net = ActorCritic(3, action_dim=1)
    agent = PPOAgent(net, low=[-2.0], high=[2.0])
    animation = plots.episode_animation(agent, "Pendulum-v1", seed=3)
    assert animation.steps == 200 and animation.ending == "truncated"
    for d in animation.decisions:
        x = torch.as_tensor(d.observation).unsqueeze(0)
        dist = net.distribution(x)
        assert d.kind == "gaussian"
        np.testing.assert_array_equal(d.values, dist.mean[0].numpy())
        np.testing.assert_array_equal(d.std, dist.stddev[0].numpy())
        np.testing.assert_array_equal(d.action, np.clip(d.values, -2.0, 2.0))
        assert d.value == pytest.approx(float(net.value(x)[0]))
    expected = evaluate(agent, "Pendulum-v1", 1, seed=3)[0]
    assert animation.episode_return == pytest.approx(expected, rel=1e-12)
    assert animation.frames <= 100 and animation.shown[-1] == 200
    assert len(animation.html.encode()) < 1_000_000


@torch.no_grad()
def test_categorical_policy_probabilities() -> None:
    torch.manual_seed(1)
    net = ActorCritic(4, n_actions=2)
    agent = A2CAgent(net)
    animation = plots.episode_animation(agent, "CartPole-v1", seed=5, max_frames=20)
    assert animation.frames <= 20
    for d in animation.decisions:
        x = torch.as_tensor(d.observation).unsqueeze(0)
        probs = net.distribution(x).probs[0].numpy()
        assert d.kind == "probs"
        np.testing.assert_array_equal(d.values, probs)
        assert d.action == int(probs.argmax())
        assert d.value == pytest.approx(float(net.value(x)[0]))
    assert animation.episode_return == evaluate(agent, "CartPole-v1", 1, seed=5)[0]
    assert animation.ending == "terminated" and animation.shown[-1] == animation.steps


def test_q_table_on_frozen_lake() -> None:
    """A [S, A] Q-table on a gymnasium env made with render_mode="rgb_array" (the
    deterministic lake: the same episode as evaluate's, which samples with its own streams)."""
    Q = frozen_lake_q(is_slippery=False)
    env = gym.make("FrozenLake-v1", is_slippery=False, render_mode="rgb_array")
    animation = plots.episode_animation(Q, env, seed=4)
    assert animation.steps == 6 and animation.ending == "terminated"
    assert animation.episode_return == 1.0
    expected = evaluate(Q, gym.make("FrozenLake-v1", is_slippery=False), 1, seed=4)[0]
    assert animation.episode_return == expected
    assert animation.stride == 1 and animation.shown == tuple(range(7))
    for d in animation.decisions:
        row = Q[int(d.observation)].numpy()
        assert d.kind == "q" and d.action == int(row.argmax())
        np.testing.assert_array_equal(d.values, row)
    assert repr(animation).startswith("Episode of FrozenLake-v1 (seed 4): return 1.0 in 6 steps")
    # the slippery lake by its id: the rows of the table, whatever the episode
    slippery = frozen_lake_q()
    animation = plots.episode_animation(slippery, "FrozenLake-v1", seed=1, max_frames=10)
    assert animation.frames <= 10 and animation.shown[-1] == animation.steps
    for d in animation.decisions:
        np.testing.assert_array_equal(d.values, slippery[int(d.observation)].numpy())


def test_max_steps_cuts_the_episode() -> None:
    animation = plots.episode_animation(balancing_agent(), "CartPole-v1", max_steps=30)
    assert animation.steps == 30 and animation.ending == "max_steps"
    assert animation.stride == 1 and animation.frames == 31
    assert repr(animation) == (
        "Episode of CartPole-v1 (seed 0): return 30.0 in 30 steps (cut at max_steps); "
        "31 frames, every step"
    )


def test_a_byte_budget_lowers_the_quality_then_the_frames(monkeypatch) -> None:
    monkeypatch.setattr(plots, "ANIMATION_MAX_BYTES", 60_000)
    animation = plots.episode_animation(balancing_agent(), "CartPole-v1", max_steps=15)
    assert plots._stored_bytes(animation.html) <= 60_000
    assert 2 <= animation.frames < 16 and animation.shown[-1] == 15
    assert len(FRAME.findall(animation.html)) == animation.frames


def test_a_non_rendering_env_is_refused() -> None:
    with pytest.raises(ValueError, match=r"render_mode=None, so it draws no frames"):
        plots.episode_animation(balancing_agent(), gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match="cannot render RGB frames"):
        plots.episode_animation(balancing_agent(), "NoSuchEnv-v0")


def test_an_agent_for_another_env_is_refused() -> None:
    with pytest.raises(ValueError, match=r"observations of shape \[4\].*Pendulum-v1's are \[3\]"):
        plots.episode_animation(balancing_agent(), "Pendulum-v1")
    continuous = PPOAgent(ActorCritic(4, action_dim=1), low=[-1.0], high=[1.0])
    with pytest.raises(ValueError, match="CartPole-v1 has 2 discrete actions, but the PPO"):
        plots.episode_animation(continuous, "CartPole-v1")
    with pytest.raises(ValueError, match=r"the Q-table has shape \[16, 3\]"):
        plots.episode_animation(torch.zeros(16, 3), "FrozenLake-v1")
    with pytest.raises(ValueError, match="a Q-table acts in Discrete state and action spaces"):
        plots.episode_animation(torch.zeros(16, 2), "CartPole-v1")


def test_what_is_not_an_agent_is_refused() -> None:
    with pytest.raises(TypeError, match=r"expected a trained course agent .* got str"):
        plots.episode_animation("dqn", "CartPole-v1")
    with pytest.raises(TypeError, match=r"expected a trained course agent .* got QNetwork"):
        plots.episode_animation(QNetwork(4, 2), "CartPole-v1")


def test_bad_arguments_are_refused() -> None:
    agent = balancing_agent()
    with pytest.raises(ValueError, match="max_frames must be an integer >= 2"):
        plots.episode_animation(agent, "CartPole-v1", max_frames=1)
    with pytest.raises(ValueError, match="max_steps must be a positive integer"):
        plots.episode_animation(agent, "CartPole-v1", max_steps=0)
    with pytest.raises(ValueError, match="fps must be a number"):
        plots.episode_animation(agent, "CartPole-v1", fps=0)
    with pytest.raises(ValueError, match="seed must be an integer"):
        plots.episode_animation(agent, "CartPole-v1", seed=-1)
