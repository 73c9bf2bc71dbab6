"""Tests of the deep-agent widgets: AgentViewer (what it shows is what the agent computes)
and TrainingMonitor (a callback that stops training cleanly and draws at a bounded rate)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import asyncio
import itertools
import re
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import rlcourse
from rlcourse import dqn, pg, ppo
from rlcourse.agent import Decision, check_agent_env, decide
from rlcourse.nets import ActorCritic, QNetwork
from rlcourse.widgets import MONITOR_PANELS, AgentViewer, TrainingMonitor


def dqn_agent(obs_dim: int = 4, n_actions: int = 2, seed: int = 0) -> dqn.DQNAgent:
    torch.manual_seed(seed)
    return dqn.DQNAgent(QNetwork(obs_dim, n_actions, (16,)))


def ppo_agent(
    obs_dim: int = 4, *, n_actions: int | None = 2, action_dim: int | None = None, seed: int = 0
) -> ppo.PPOAgent:
    torch.manual_seed(seed)
    net = ActorCritic(obs_dim, n_actions=n_actions, action_dim=action_dim, hidden=(16,))
    if action_dim is None:
        return ppo.PPOAgent(net)
    return ppo.PPOAgent(net, low=[-2.0] * action_dim, high=[2.0] * action_dim)


def shown_numbers(html: str) -> list[float]:
    """Every number with three decimals in the viewer's text (observation, values, V)."""
    return [float(x) for x in re.findall(r"[+-]?\d+\.\d{3}\b", html)]


# ---------------------------------------------------------------------------
# what the agent decides


def test_decide_dqn_is_its_q_values() -> None:
    agent = dqn_agent()
    obs = np.array([0.01, -0.2, 0.03, 0.4], dtype=np.float32)
    d = agent.decide(obs)
    q = agent.q_values(obs).numpy()
    np.testing.assert_array_equal(d.values, q)
    assert d.kind == "q" and d.action == int(q.argmax()) == agent.act(obs)
    assert d.value == pytest.approx(float(q.max()))


def test_decide_policy_is_its_distribution_and_critic() -> None:
    agent = ppo_agent()
    obs = np.array([0.01, -0.2, 0.03, 0.4], dtype=np.float32)
    d = agent.decide(obs)
    x = torch.as_tensor(obs)[None]
    probs = agent.net.distribution(x).probs[0].detach().numpy()
    np.testing.assert_allclose(d.values, probs, rtol=1e-6)
    assert d.kind == "probs" and d.action == agent.act(obs) == int(probs.argmax())
    assert d.value == pytest.approx(float(agent.net.value(x)[0].detach()))

    gauss = ppo_agent(3, n_actions=None, action_dim=1)
    obs = np.array([1.0, 0.0, 0.5], dtype=np.float32)
    d = gauss.decide(obs)
    dist = gauss.net.distribution(torch.as_tensor(obs)[None])
    assert d.kind == "gaussian"
    np.testing.assert_allclose(d.values, dist.mean[0].detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(d.std, dist.stddev[0].detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(d.action, gauss.act(obs))


def test_decide_q_table_and_not_an_agent() -> None:
    table = torch.arange(12.0).reshape(3, 4).flip(1)
    d = decide(table, 1)
    assert d == Decision(np.asarray(1), 0, "q", d.values, value=7.0)
    np.testing.assert_array_equal(d.values, [7.0, 6.0, 5.0, 4.0])
    with pytest.raises(TypeError, match=r"trained course agent.*got str"):
        decide("agent", 0)


# ---------------------------------------------------------------------------
# AgentViewer


@pytest.mark.parametrize(
    ("env_id", "make"),
    [
        ("CartPole-v1", dqn_agent),
        ("CartPole-v1", ppo_agent),
        ("Pendulum-v1", lambda: ppo_agent(3, n_actions=None, action_dim=1)),
        ("Acrobot-v1", lambda: dqn_agent(6, 3)),
    ],
    ids=["dqn-cartpole", "ppo-cartpole", "ppo-pendulum", "dqn-acrobot"],
)
def test_viewer_shows_the_agents_own_numbers(env_id: str, make: Any) -> None:
    """At every step the decision shown is the agent's for the observation shown, and the
    text shows those numbers."""
    agent = make()
    viewer = AgentViewer(agent, env_id, seed=3)
    for _ in range(6):
        expected = agent.decide(viewer.observation)
        d = viewer.decision
        np.testing.assert_array_equal(d.values, expected.values)
        np.testing.assert_array_equal(d.action, agent.act(viewer.observation))
        assert d.value == expected.value
        shown = shown_numbers(viewer.info.value)
        for v in np.concatenate([np.atleast_1d(viewer.observation), d.values, [d.value]]):
            assert round(float(v), 3) in shown, f"{v:.3f} is not shown in {viewer.info.value}"
        assert f"step {viewer.steps}" in viewer.status.value
        viewer.step()


def test_viewer_episode_is_the_evaluated_episode() -> None:
    """Stepping to the end plays the same seeded greedy episode as ``evaluate``."""
    agent = dqn_agent(seed=1)
    viewer = AgentViewer(agent, "CartPole-v1", seed=11)
    frame_before = bytes(viewer.image.value)
    for _ in range(5):
        viewer.step()
    assert bytes(viewer.image.value) != frame_before, "the frame was not redrawn"
    while not viewer.done:
        viewer.step()
    expected = rlcourse.evaluate(agent, "CartPole-v1", n_episodes=1, seed=11)
    assert viewer.episode_return == expected[0]
    assert viewer.steps == int(expected[0])  # CartPole pays 1 a step
    assert "episode over" in viewer.status.value
    steps = viewer.steps
    viewer.step()  # nothing more to step
    assert viewer.steps == steps
    viewer.reset(seed=11)
    assert viewer.steps == 0 and viewer.episode_return == 0 and not viewer.done


def test_viewer_buttons_and_play_ticks() -> None:
    agent = dqn_agent()
    viewer = AgentViewer(agent, "CartPole-v1", seed=0, speed=5)
    assert viewer.ticker.interval == 200
    viewer.speed_slider.value = 20
    assert viewer.ticker.interval == 50
    viewer.step_button.click()
    viewer.step_button.click()
    assert viewer.steps == 2
    viewer.play_button.click()
    assert viewer.ticker.playing
    for k in range(1, 4):  # the page advances the Play clock: each tick is one step
        viewer.ticker.value = k
    assert viewer.steps == 5
    viewer.pause_button.click()
    assert not viewer.ticker.playing
    viewer.reset_button.click()
    assert viewer.steps == 0 and viewer.ticker.value == 0


def test_viewer_q_table_on_frozenlake() -> None:
    mdp = rlcourse.from_gymnasium("FrozenLake-v1", gamma=0.99)
    q = torch.rand(mdp.n_states, mdp.n_actions, generator=torch.Generator().manual_seed(0))
    viewer = AgentViewer(q, "FrozenLake-v1", seed=0)
    assert viewer.decision.kind == "q"
    np.testing.assert_array_equal(viewer.decision.values, q[int(viewer.observation)].numpy())
    for name in ("left", "down", "right", "up"):  # FrozenLake's own action names
        assert name in viewer.info.value
    assert repr(viewer) == "AgentViewer(Q-TABLE agent on FrozenLake-v1)"
    with pytest.raises(ValueError, match="no perturbations for FrozenLake-v1"):
        viewer.perturb("tilt the pole left")


def test_viewer_perturbation_changes_the_state_and_the_decision() -> None:
    agent = dqn_agent()
    viewer = AgentViewer(agent, "CartPole-v1", seed=0)
    before = viewer.observation.copy()
    viewer.perturb("tilt the pole right", strength=2.0)
    assert viewer.observation[2] == pytest.approx(before[2] + 0.2, abs=1e-6)
    np.testing.assert_array_equal(viewer.observation[[0, 1, 3]], before[[0, 1, 3]])
    np.testing.assert_array_equal(viewer.decision.values, agent.q_values(viewer.observation))
    assert "perturbed: tilt the pole right" in viewer.status.value
    viewer.step()  # the env goes on from the perturbed state
    assert abs(viewer.observation[2] - (before[2] + 0.2)) < 0.05

    pendulum = AgentViewer(ppo_agent(3, n_actions=None, action_dim=1), "Pendulum-v1", seed=0)
    theta, _ = pendulum.env.unwrapped.state
    pendulum.perturb("turn it by +45°")
    assert pendulum.env.unwrapped.state[0] == pytest.approx(theta + np.pi / 4)
    np.testing.assert_allclose(
        pendulum.observation[:2], [np.cos(theta + np.pi / 4), np.sin(theta + np.pi / 4)], atol=1e-6
    )
    with pytest.raises(ValueError, match="unknown perturbation 'push'"):
        pendulum.perturb("push")


def test_viewer_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="render_mode=None, so it draws no frames"):
        AgentViewer(dqn_agent(), gym.make("CartPole-v1"))
    with pytest.raises(
        ValueError, match=r"observations of shape \[4\], but Pendulum-v1's are \[3\]"
    ):
        AgentViewer(dqn_agent(), "Pendulum-v1")
    with pytest.raises(ValueError, match=r"Pendulum-v1 has continuous actions.*DQN agent has 2"):
        AgentViewer(dqn_agent(3, 2), "Pendulum-v1")
    with pytest.raises(ValueError, match=r"CartPole-v1 has 2 discrete actions.*continuous actions"):
        AgentViewer(ppo_agent(4, n_actions=None, action_dim=1), "CartPole-v1")
    with pytest.raises(ValueError, match=r"CartPole-v1 has 2 discrete actions.*has 3 actions"):
        AgentViewer(dqn_agent(4, 3), "CartPole-v1")
    with pytest.raises(ValueError, match=r"Q-table has shape \[15, 4\].*16 states"):
        AgentViewer(torch.zeros(15, 4), "FrozenLake-v1")
    with pytest.raises(TypeError, match="trained course agent"):
        AgentViewer(object(), "CartPole-v1")
    with pytest.raises(ValueError, match="cannot render RGB frames"):
        AgentViewer(dqn_agent(), "NoSuchEnv-v0")
    check_agent_env(dqn_agent(), gym.make("CartPole-v1"))  # a match passes


# ---------------------------------------------------------------------------
# the training callback and TrainingMonitor

SMALL_DQN = dqn.DQNConfig(total_steps=6_000, eval_every=2_000, learning_starts=500)
SMALL_PPO = ppo.PPOConfig(total_steps=4_096, eval_every=1_024)


class Recorder:
    """A callback that records what each call saw; stops at call ``stop_at``."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.calls: list[tuple[int, int, int]] = []  # (step, episodes, evaluations)
        self.stop_at = stop_at

    def __call__(self, step: int, history: Any, agent: Any) -> bool:
        self.calls.append((step, len(history.episodes), len(history.evaluations)))
        assert all(s <= step for s, _, _ in history.episodes), "an episode from the future"
        return self.stop_at is not None and len(self.calls) >= self.stop_at


def test_callback_runs_after_every_update_with_the_history_up_to_date() -> None:
    rec = Recorder()
    _, history = ppo.train("CartPole-v1", SMALL_PPO, seed=0, progress=False, callback=rec)
    n_updates = SMALL_PPO.total_steps // SMALL_PPO.batch_size
    steps = [s for s, _, _ in rec.calls]
    assert len(steps) == n_updates, "one call per update"
    assert steps == sorted(set(steps)), "steps grow from call to call"
    # gymnasium's copies restart on the step after an episode ends: that step is no transition
    assert steps[-1] <= SMALL_PPO.total_steps and steps[0] > 0.9 * SMALL_PPO.batch_size
    episodes = [n for _, n, _ in rec.calls]
    assert episodes == sorted(episodes) and episodes[-1] == len(history.episodes)
    # each call saw exactly the episodes that had ended by its step
    for step, n, _ in rec.calls:
        assert n == sum(1 for s, _, _ in history.episodes if s <= step)
    assert history.stop_reason == "budget"


@pytest.mark.parametrize("algo", ["dqn", "a2c", "reinforce"])
def test_a_stop_leaves_a_consistent_agent_and_history(algo: str) -> None:
    """Returning True mid-training ends it: the kept policy is handed back and scored on the
    held-out episodes, like after a full run."""
    train, cfg = {
        "dqn": (dqn.train, SMALL_DQN),
        "a2c": (pg.train_a2c, pg.A2CConfig(total_steps=20_000, eval_every=2_000)),
        "reinforce": (pg.train_reinforce, pg.REINFORCEConfig(total_steps=20_000, eval_every=2_000)),
    }[algo]
    rec = Recorder(stop_at=None)
    # stop at the first call after the second evaluation
    rec.stop_at = 10**9

    def stop_after_two_evaluations(step: int, history: Any, agent: Any) -> bool:
        rec(step, history, agent)
        return len(history.evaluations) >= 2

    agent, history = train(
        "CartPole-v1", cfg, seed=0, progress=False, callback=stop_after_two_evaluations
    )
    last_step = rec.calls[-1][0]
    assert history.stop_reason == "callback"
    assert last_step < cfg.total_steps
    assert len(history.evaluations) == 2, "no evaluation after the stop (it was just done)"
    assert history.selected_step in [s for s, _, _ in history.evaluations]
    assert all(s <= last_step for s, _, _ in history.episodes)
    held_out = rlcourse.evaluate(agent, "CartPole-v1", n_episodes=100, seed=cfg.held_out_seed)
    assert history.held_out_mean == pytest.approx(held_out.mean())
    assert isinstance(agent.act(np.zeros(4, dtype=np.float32)), int)


def test_monitor_gives_the_same_training_and_panels_by_algorithm() -> None:
    plain_agent, plain = dqn.train("CartPole-v1", SMALL_DQN, seed=0, progress=False)
    monitor = TrainingMonitor("DQN", min_interval=0.0, max_overhead=0.3)
    agent, history = asyncio.run(monitor.run(dqn.train, "CartPole-v1", SMALL_DQN, seed=0))
    assert history.evaluations == plain.evaluations
    assert history.held_out_mean == plain.held_out_mean
    assert history.episodes == plain.episodes
    for a, b in zip(agent.net.parameters(), plain_agent.net.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert monitor.calls > 10 and monitor.draws >= 2  # live draws and the final one
    assert monitor.panels == ["losses", "epsilon"]
    assert monitor.charts.value.count("<svg") == 3  # the learning curve and two panels
    assert "ran its whole step budget" in monitor.status.value
    assert f"held-out mean {history.held_out_mean:.1f}" in monitor.status.value
    assert repr(monitor) == "TrainingMonitor('DQN')"

    ppo_monitor = TrainingMonitor("PPO", min_interval=0.0, max_overhead=0.3)
    asyncio.run(ppo_monitor.run(ppo.train, "CartPole-v1", SMALL_PPO, seed=0))
    assert ppo_monitor.panels == [
        "policy_loss",
        "value_loss",
        "entropy",
        "approx_kl",
        "clip_fraction",
    ]
    assert set(MONITOR_PANELS) >= set(ppo_monitor.panels)
    assert ppo_monitor.charts.value.count("<svg") == 6


def test_monitor_stop_button_from_another_thread_ends_training() -> None:
    """Training runs in a worker thread; a click on Stop (here from the event loop's thread,
    as the kernel does when the page sends it) ends it at the next update."""
    cfg = dqn.DQNConfig(total_steps=200_000, eval_every=2_000, early_stop=False)
    monitor = TrainingMonitor("DQN")

    async def click_stop_after_calls(n: int) -> None:
        while monitor.calls < n:
            await asyncio.sleep(0.01)
        monitor.stop_button.click()

    async def main() -> tuple[Any, Any]:
        clicker = asyncio.create_task(click_stop_after_calls(300))
        result = await monitor.run(dqn.train, "CartPole-v1", cfg, seed=0)
        await clicker
        return result

    agent, history = asyncio.run(main())
    assert history.stop_reason == "callback"
    assert 300 <= monitor.calls < 310, "training went on after Stop"
    assert monitor.step < cfg.total_steps
    assert history.held_out_mean is not None
    assert monitor.stop_button.disabled and monitor.stop_button.description == "Stopped"
    assert "stopped by you" in monitor.status.value
    assert isinstance(agent.act(np.zeros(4, dtype=np.float32)), int)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_monitor_draws_at_a_bounded_rate() -> None:
    """Redraws are at least min_interval apart and take at most max_overhead of the time
    since training began, whatever the callback's rate."""
    clock = FakeClock()
    monitor = TrainingMonitor("rate", min_interval=0.5, max_overhead=0.05)
    monitor.clock = clock
    draws: list[float] = []

    def fake_redraw(final: bool = False) -> None:  # a redraw that takes 0.1 s
        draws.append(clock.now)
        clock.now += 0.1
        monitor._draw_cost = 0.1
        monitor.draw_time += 0.1

    monitor.redraw = fake_redraw  # type: ignore[method-assign]
    guess = monitor._draw_cost  # the cost assumed before a redraw was measured
    history = dqn.DQNHistory()
    for _ in range(20_000):  # an update every 5 ms for 100 s
        monitor(0, history, None)
        clock.now += 0.005
    assert draws, "never drew"
    assert draws[0] >= guess / 0.05, "drew before the time allowed a first redraw"
    assert all(b - a >= 0.5 for a, b in itertools.pairwise(draws))
    assert monitor.draw_time <= 0.05 * clock.now + 0.1
    assert monitor.draw_time >= 0.04 * clock.now, "draws far less often than allowed"


def test_monitor_argument_errors() -> None:
    with pytest.raises(ValueError, match="max_overhead must be in"):
        TrainingMonitor(max_overhead=0)
    with pytest.raises(ValueError, match="min_interval must be >= 0"):
        TrainingMonitor(min_interval=-1)


def test_monitor_run_reports_a_failed_training() -> None:
    monitor = TrainingMonitor("bad")
    with pytest.raises(ValueError, match="Discrete action space"):
        asyncio.run(monitor.run(dqn.train, "Pendulum-v1"))
    assert "training failed or was interrupted" in monitor.status.value
