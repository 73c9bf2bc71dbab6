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
    latest = buf.latest(2)[0][:, 0].tolist()
    assert latest == [8.0, 7.0]


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
