"""DQN: the loss against hand-computed values, the replay buffer, the vector-env
transitions, errors, save/load, seeded determinism, and learning (a bandit and CartPole)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from rlcourse import dqn
from rlcourse.buffers import ReplayBuffer
from rlcourse.envs.vector import Transitions
from rlcourse.nets import QNetwork, polyak_update

# ---------------------------------------------------------------------------
# config


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("gamma", 1.5, "gamma must be in"),
        ("total_steps", 0, "total_steps must be a positive integer"),
        ("num_envs", -1, "num_envs must be a positive integer"),
        ("tau", 0.0, "tau must be in"),
        ("lr", 0.0, "lr must be positive"),
        ("epsilon_end", 1.2, "epsilon_end must be in"),
        ("batch_size", 10**7, "batch_size cannot exceed buffer_size"),
        ("hidden", (), "hidden must list positive layer sizes"),
    ],
)
def test_config_rejects_bad_values(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dqn.DQNConfig(**{field: value})


def test_epsilon_schedule_is_linear_then_constant() -> None:
    cfg = dqn.DQNConfig(epsilon_start=1.0, epsilon_end=0.1, epsilon_decay_steps=1000)
    assert cfg.epsilon(0) == 1.0
    assert cfg.epsilon(500) == pytest.approx(0.55)
    assert cfg.epsilon(1000) == pytest.approx(0.1)
    assert cfg.epsilon(10**6) == pytest.approx(0.1)


def test_replay_ratio_and_samples_per_transition() -> None:
    """The defaults: 32 gradient steps every 16 steps of 8 environments (1 per 4 environment
    steps), each transition sampled 16 times (batch 64); without replay, once."""
    cfg = dqn.DQNConfig()
    assert cfg.replay_ratio == 0.25 and cfg.samples_per_transition == 16
    assert cfg.target_update_interval == cfg.gradient_steps  # once per training phase
    assert dqn.DQNConfig(gradient_steps=2).samples_per_transition == 1
    online = dqn.DQNConfig(replay=False)
    assert online.replay_ratio == 1 / 8 and online.samples_per_transition == 1


def test_an_early_stop_finishes_the_progress_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stored notebook must not show a bar stuck below 100% after a confirmed solve."""
    bars = []

    class Bar:
        disable = False

        def __init__(self, total: int, **_: object) -> None:
            self.total, self.n, self.closed = total, 0, False
            bars.append(self)

        def refresh(self) -> None:
            pass

        def update(self, k: int) -> None:
            self.n += k

        def set_postfix(self, **_: object) -> None:
            pass

        def close(self) -> None:
            self.closed = True

    monkeypatch.setattr(dqn, "tqdm", Bar)
    cfg = dqn.DQNConfig(total_steps=4_000, eval_every=1_000, solve_threshold=0.0)
    _, history = dqn.train("CartPole-v1", cfg, seed=0)
    (bar,) = bars
    assert history.solved_step is not None and history.solved_step < cfg.total_steps
    assert bar.closed and bar.n == bar.total == history.solved_step


# ---------------------------------------------------------------------------
# the loss, by hand


class TableQ(torch.nn.Module):
    """A 'network' whose output is a learnable table row per one-hot observation."""

    def __init__(self, table: list[list[float]]) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(torch.tensor(table))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return obs @ self.table


def _batch(states, actions, rewards, next_states, terminated, n_states=3):
    eye = torch.eye(n_states)
    return (
        eye[states],
        torch.tensor(actions),
        torch.tensor(rewards, dtype=torch.float32),
        eye[next_states],
        torch.tensor(terminated, dtype=torch.float32),
    )


def test_td_loss_matches_a_hand_calculation() -> None:
    """Q_online rows and Q_target rows by hand; gamma 0.5; squared error (huber=False).

    sample 1: s=0, a=1, r=1, s'=1 not terminal: Double DQN picks a'=argmax online(1)=0,
              target values it at Q_target(1,0)=4 -> y = 1 + 0.5*4 = 3; Q(0,1)=2 -> error 1
    sample 2: s=2, a=0, r=-1, s'=0, terminated: y = -1; Q(2,0)=0.5 -> error -1.5
    loss = (1^2 + 1.5^2) / 2 = 1.625
    """
    online = TableQ([[0.0, 2.0], [5.0, 1.0], [0.5, 0.0]])
    target = TableQ([[9.0, 9.0], [4.0, 7.0], [0.0, 0.0]])
    batch = _batch([0, 2], [1, 0], [1.0, -1.0], [1, 0], [0.0, 1.0])
    cfg = dqn.DQNConfig(gamma=0.5, huber=False, double_dqn=True)
    loss = dqn._td_loss(online, target, batch, cfg)
    assert loss.item() == pytest.approx(1.625)
    # plain DQN takes max_a Q_target(1, a) = 7: y = 4.5, error 2.5 -> (6.25 + 2.25) / 2
    cfg_plain = dqn.DQNConfig(gamma=0.5, huber=False, double_dqn=False)
    assert dqn._td_loss(online, target, batch, cfg_plain).item() == pytest.approx(4.25)


def test_td_loss_is_a_semi_gradient() -> None:
    """The gradient reaches only Q(s, a) of the actions taken; the target net gets none,
    and the online net's rows used only for choosing a' get none either."""
    online = TableQ([[0.0, 2.0], [5.0, 1.0], [0.5, 0.0]])
    target = TableQ([[9.0, 9.0], [4.0, 7.0], [0.0, 0.0]])
    batch = _batch([0, 2], [1, 0], [1.0, -1.0], [1, 0], [0.0, 1.0])
    loss = dqn._td_loss(online, target, batch, dqn.DQNConfig(gamma=0.5, huber=False))
    loss.backward()
    grad = online.table.grad
    # d/dQ of mean((Q - y)^2) = (Q - y): sample 1 at (0, 1): 2 - 3 = -1; sample 2 at (2, 0): 1.5
    expected = torch.tensor([[0.0, -1.0], [0.0, 0.0], [1.5, 0.0]])
    assert torch.allclose(grad, expected)
    assert target.table.grad is None


def test_huber_loss_is_linear_for_large_errors() -> None:
    online = TableQ([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    target = TableQ([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    batch = _batch([0], [0], [10.0], [1], [1.0])  # error 10
    assert dqn._td_loss(online, target, batch, dqn.DQNConfig()).item() == pytest.approx(9.5)


def test_polyak_update() -> None:
    a, b = QNetwork(2, 2, (4,)), QNetwork(2, 2, (4,))
    before = [p.clone() for p in a.parameters()]
    polyak_update(a, b, 0.25)
    for p_new, p_old, p_b in zip(a.parameters(), before, b.parameters(), strict=True):
        assert torch.allclose(p_new, 0.75 * p_old + 0.25 * p_b)
    polyak_update(a, b, 1.0)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_dueling_head_centres_advantages() -> None:
    """Q = V + A - mean A: the mean over actions of Q equals V."""
    net = QNetwork(3, 4, (8, 8), dueling=True)
    obs = torch.randn(5, 3)
    h = net.body(obs)
    assert torch.allclose(net(obs).mean(1), net.value(h).squeeze(1), atol=1e-6)


# ---------------------------------------------------------------------------
# replay buffer


def test_replay_buffer_wraps_around_and_samples_stored_rows() -> None:
    buf = ReplayBuffer(5, (2,), seed=0)
    for k in range(3):  # 3 batches of 3: 9 transitions into 5 slots
        obs = torch.full((3, 2), float(k * 3)) + torch.arange(3.0).unsqueeze(1)
        buf.add(obs, torch.zeros(3, dtype=torch.long), obs[:, 0], obs + 1, torch.zeros(3))
    assert len(buf) == 5
    stored = set(buf.obs[:, 0].tolist())
    assert stored == {4.0, 5.0, 6.0, 7.0, 8.0}  # the 5 most recent
    obs, _, rewards, next_obs, _ = buf.sample(64)
    assert set(obs[:, 0].tolist()) <= stored
    assert torch.equal(rewards, obs[:, 0]) and torch.equal(next_obs, obs + 1)
    latest = buf.latest(3)[0][:, 0].tolist()
    assert latest == [6.0, 7.0, 8.0]  # the 3 added last, oldest first, across the wrap
    assert buf.latest(0)[0].shape == (0, 2)


def test_replay_buffer_latest_refuses_more_than_it_holds() -> None:
    buf = ReplayBuffer(5, (2,))
    buf.add(
        torch.zeros(2, 2),
        torch.zeros(2, dtype=torch.long),
        torch.zeros(2),
        torch.zeros(2, 2),
        torch.zeros(2),
    )
    with pytest.raises(ValueError, match="between 0 and the 2 transitions stored"):
        buf.latest(3)


def test_replay_buffer_sampling_is_seeded() -> None:
    def draw(seed: int) -> torch.Tensor:
        buf = ReplayBuffer(100, (1,), seed=seed)
        x = torch.arange(100.0).unsqueeze(1)
        buf.add(x, torch.zeros(100, dtype=torch.long), x[:, 0], x, torch.zeros(100))
        return buf.sample(10)[0]

    assert torch.equal(draw(3), draw(3))
    assert not torch.equal(draw(3), draw(4))


def test_replay_buffer_errors() -> None:
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0, (2,))
    with pytest.raises(RuntimeError, match="empty"):
        ReplayBuffer(4, (2,)).sample(1)


def test_without_replay_each_transition_is_learnt_from_once_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The "no replay" ablation is online Q-learning: after every vector step, one gradient
    step on exactly the transitions that step produced, so the batches, in order, are the
    stream of transitions, each once (not one batch of the latest transitions over and over,
    nor only some of them)."""
    produced: list[torch.Tensor] = []  # next_obs of each vector step's transitions
    learnt: list[torch.Tensor] = []  # next_obs of each gradient step's batch

    class Recording(Transitions):
        def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
            out = super().step(actions)
            next_obs, valid = out[0], out[4]
            produced.append(next_obs[valid].clone())
            return out

    td_loss = dqn._td_loss

    def recording_loss(q_net, target_net, batch, cfg):
        learnt.append(batch[3].clone())
        return td_loss(q_net, target_net, batch, cfg)

    monkeypatch.setattr(dqn, "Transitions", Recording)
    monkeypatch.setattr(dqn, "_td_loss", recording_loss)
    cfg = dqn.DQNConfig(total_steps=600, num_envs=4, replay=False, eval_every=0)
    dqn.train("CartPole-v1", cfg, seed=0, progress=False)
    steps_with_data = [x for x in produced if len(x)]
    assert any(len(x) < cfg.num_envs for x in produced)  # some copies were resetting
    assert len(learnt) == len(steps_with_data)  # one gradient step per vector step
    assert all(torch.equal(a, b) for a, b in zip(learnt, steps_with_data, strict=True))
    assert sum(map(len, learnt)) >= cfg.total_steps  # every transition, from the first


# ---------------------------------------------------------------------------
# transitions from vector envs: both autoreset modes


def _run_transitions(envs, n_steps: int):
    steps = Transitions(envs, torch.device("cpu"))
    steps.reset(seed=0)
    rows = []
    for _ in range(n_steps):
        obs = steps.obs.clone()
        out = steps.step(torch.zeros(envs.num_envs, dtype=torch.long))  # always push left
        rows.append((obs, *out))
    return steps, rows


def test_next_step_mode_skips_the_reset_step_and_keeps_the_final_observation() -> None:
    """CartPoleVectorEnv resets on the step after an episode ends: that step is marked invalid,
    and the terminating step's next_obs is the real final state (|angle| past the limit)."""
    envs = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="vector_entry_point")
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    steps, rows = _run_transitions(envs, 40)
    terminal = [(t, i) for t, r in enumerate(rows) for i in range(2) if r[3][i]]
    assert terminal, "pushing left always must end an episode within 40 steps"
    for t, i in terminal:
        next_obs = rows[t][1][i]
        assert abs(next_obs[2]) > 0.2095 or abs(next_obs[0]) > 2.4  # a real terminal state
        assert not rows[t + 1][5][i]  # the reset step is not a transition
        assert rows[t + 1][5][1 - i] or rows[t][3][1 - i]
    lengths = [length for _, _, length in steps.episodes]
    returns = [ret for _, ret, _ in steps.episodes]
    assert lengths == returns  # CartPole pays +1 per step, none for the reset step


def test_same_step_mode_takes_next_obs_from_final_obs() -> None:
    envs = gym.make_vec(
        "CartPole-v1",
        num_envs=2,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
    )
    _, rows = _run_transitions(envs, 40)
    for _obs, next_obs, _, terminated, _, valid in rows:
        assert valid.all()
        for i in range(2):
            if terminated[i]:
                assert abs(next_obs[i][2]) > 0.2095 or abs(next_obs[i][0]) > 2.4


# ---------------------------------------------------------------------------
# errors, devices, checkpoints


def test_continuous_actions_are_rejected() -> None:
    with pytest.raises(ValueError, match="Discrete action space"):
        dqn.train("Pendulum-v1", dqn.DQNConfig(total_steps=100), progress=False)


def test_unknown_env_id() -> None:
    with pytest.raises(ValueError, match="unknown environment id 'CartPol-v1'"):
        dqn.train("CartPol-v1", progress=False)


def test_cuda_without_gpu_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="no CUDA GPU is available"):
        dqn.train("CartPole-v1", dqn.DQNConfig(total_steps=100, device="cuda"), progress=False)
    agent, _ = dqn.train(
        "CartPole-v1", dqn.DQNConfig(total_steps=64, device="auto", eval_every=0), progress=False
    )
    assert agent.device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("device", ["auto", "cuda"])
@pytest.mark.parametrize(
    "change", [{"replay": False}, {"target_network": False}, {"dueling": True}], ids=str
)
def test_chapter_5_ablations_on_a_gpu(device: str, change: dict, tmp_path) -> None:
    """Chapter 5's ablations (online Q-learning, no target network, dueling) on ``device``,
    and what the chapter does with their agents: Q at start states, greedy scores, a
    checkpoint loaded on the agent's own device computing the very same numbers. (The
    default DQN on a GPU: tests/test_cuda.py.)"""
    import rlcourse

    cfg = dqn.DQNConfig(total_steps=2_000, eval_every=0, device=device, **change)
    agent, history = dqn.train("CartPole-v1", cfg, seed=0, progress=False)
    assert history.episodes
    start_states = gym.make_vec("CartPole-v1", 20).reset(seed=0)[0]
    assert np.isfinite(float(agent.q_values(start_states).max()))
    assert rlcourse.evaluate(agent, "CartPole-v1", n_episodes=5, seed=60_000).shape == (5,)
    obs = np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32)
    agent.save(tmp_path / "agent.pt")
    loaded = dqn.DQNAgent.load(tmp_path / "agent.pt", device=str(agent.device))
    assert loaded.device == agent.device
    assert torch.equal(loaded.q_values(obs), agent.q_values(obs))
    assert np.array_equal(loaded.act(obs), agent.act(obs))


def test_save_load_round_trip_and_clear_errors(tmp_path) -> None:
    net = QNetwork(4, 2, (16, 16), dueling=True)
    agent = dqn.DQNAgent(net)
    path = tmp_path / "agent.pt"
    agent.save(path)
    loaded = dqn.DQNAgent.load(path)
    obs = torch.randn(50, 4)
    assert torch.equal(loaded.q_values(obs), agent.q_values(obs))
    assert loaded.act(np.zeros(4, dtype=np.float32)) == agent.act(np.zeros(4, dtype=np.float32))

    (tmp_path / "junk.pt").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        dqn.DQNAgent.load(tmp_path / "junk.pt")
    torch.save({"algorithm": "ppo", "state_dict": {}}, tmp_path / "ppo.pt")
    with pytest.raises(ValueError, match="not a DQN checkpoint"):
        dqn.DQNAgent.load(tmp_path / "ppo.pt")
    data = torch.load(path, weights_only=True)
    data["architecture"]["hidden"] = [32, 32]  # claims another network than its weights
    torch.save(data, tmp_path / "mismatch.pt")
    with pytest.raises(ValueError, match="do not fit"):
        dqn.DQNAgent.load(tmp_path / "mismatch.pt")


# ---------------------------------------------------------------------------
# learning


class ContextualBandit(gym.Env):
    """One-step episodes: observe a one-hot state k of 4, reward 1 for action k, else 0."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(0.0, 1.0, (4,), np.float32)
        self.action_space = gym.spaces.Discrete(4)
        self.k = 0

    def _obs(self) -> np.ndarray:
        return np.eye(4, dtype=np.float32)[self.k]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.k = int(self.np_random.integers(4))
        return self._obs(), {}

    def step(self, action):
        reward = float(action == self.k)
        self.k = int(self.np_random.integers(4))
        return self._obs(), reward, True, False, {}


def test_dqn_solves_a_contextual_bandit() -> None:
    """An env where the right action is visible in the observation: the greedy policy must
    pick it in every state, and Q(s, right action) ~ 1 (one-step episodes, nothing to
    bootstrap)."""
    cfg = dqn.DQNConfig(
        total_steps=2000,
        num_envs=1,
        learning_starts=200,
        train_every=1,
        gradient_steps=1,
        epsilon_decay_steps=1000,
        hidden=(32,),
        lr=5e-3,
        eval_every=0,
    )
    agent, _ = dqn.train(ContextualBandit(), cfg, seed=0, progress=False)
    states = torch.eye(4)
    assert agent.act(states).tolist() == [0, 1, 2, 3]
    q = agent.q_values(states)
    assert torch.allclose(q.diagonal(), torch.ones(4), atol=0.15)


def test_training_is_seeded() -> None:
    cfg = dqn.DQNConfig(total_steps=3000, eval_every=0)
    (a1, h1), (a2, h2) = (dqn.train("CartPole-v1", cfg, seed=5, progress=False) for _ in range(2))
    assert h1.episodes == h2.episodes
    assert all(
        torch.equal(p, q) for p, q in zip(a1.q_net.parameters(), a2.q_net.parameters(), strict=True)
    )
    _, h3 = dqn.train("CartPole-v1", cfg, seed=6, progress=False)
    assert h3.episodes != h1.episodes


def test_dqn_solves_cartpole() -> None:
    """The defaults, seed 0: training stops at a confirmed solve, and the agent handed back is
    solved (mean >= 475 over 100 held-out episodes), also on 100 episodes of other seeds."""
    import rlcourse

    agent, history = dqn.train("CartPole-v1", seed=0, progress=False)
    assert history.solved_step is not None, history.evaluations
    assert history.solved and history.held_out_mean >= 475, history.selection
    assert "confirmed solve" in history.selection
    assert rlcourse.evaluate(agent, "CartPole-v1", n_episodes=100, seed=900_000).mean() >= 475
