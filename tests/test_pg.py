"""REINFORCE and A2C: the loss and the returns against hand-computed values (and the classic
mistakes of PITFALLS 3 and 13), episode collection from a vector env, errors, save/load,
seeded determinism, and learning (a contextual bandit and CartPole)."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

import rlcourse
from rlcourse import pg
from rlcourse.buffers import RolloutBuffer, collect_rollout, discounted_reward_to_go
from rlcourse.envs.vector import Transitions, make_vector_env
from rlcourse.nets import ActorCritic


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """These networks are tiny: one thread runs them fastest, and on a busy 2-core machine a
    second intra-op thread waiting for a core makes every operation many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------
# the REINFORCE loss on a hand example
#
# A 2-action policy whose logits are (ln 3, 0) in every state: pi = (0.75, 0.25).
# A 3-step episode takes actions 0, 1, 0 and receives rewards 1, 0, 2; gamma = 0.9.
#
# reward-to-go, discounted from each step:
#   G_2 = 2
#   G_1 = 0 + 0.9 * 2    = 1.8
#   G_0 = 1 + 0.9 * 1.8  = 2.62
# log-probabilities of the actions taken: ln 0.75, ln 0.25, ln 0.75
#   = -0.2876821, -1.3862944, -0.2876821
# loss = -(1/3) * (2.62 * ln 0.75 + 1.8 * ln 0.25 + 2 * ln 0.75)
#      = -(1/3) * (4.62 * -0.2876821 + 1.8 * -1.3862944)
#      = -(1/3) * (-1.3290913 - 2.4953299) = 1.2748071
# gradient wrt the logits z_t of step t: d/dz_j [-ln softmax(z)_a * G / 3] = (p_j - [j = a]) G / 3
#   step 0 (a = 0): (0.75 - 1, 0.25) * 2.62 / 3 = (-0.2183333,  0.2183333)
#   step 1 (a = 1): (0.75, 0.25 - 1) * 1.8 / 3  = ( 0.45,      -0.45)
#   step 2 (a = 0): (0.75 - 1, 0.25) * 2 / 3    = (-0.1666667,  0.1666667)
# The whole-episode mistake weights every step by G_0 = 2.62:
#   loss = -(1/3) * 2.62 * (2 ln 0.75 + ln 0.25) = -(1/3) * 2.62 * -1.9616586 = 1.7131818

ACTIONS = torch.tensor([0, 1, 0])
REWARDS = torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64)


def _logits() -> torch.Tensor:
    return torch.tensor([[math.log(3.0), 0.0]] * 3, dtype=torch.float64, requires_grad=True)


def _log_probs(logits: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits, -1)[torch.arange(3), ACTIONS]  # of the actions taken


def test_reinforce_loss_and_its_gradient_match_a_hand_calculation() -> None:
    dones = torch.tensor([[False], [False], [True]])  # [T, N] with one env
    returns = discounted_reward_to_go(REWARDS[:, None], dones, 0.9)[:, 0]
    assert torch.allclose(returns, torch.tensor([2.62, 1.8, 2.0], dtype=torch.float64))
    logits = _logits()
    loss = pg.reinforce_loss(_log_probs(logits), returns)
    assert loss.item() == pytest.approx(1.2748071, abs=1e-6)
    loss.backward()
    expected = torch.tensor(
        [[-0.2183333, 0.2183333], [0.45, -0.45], [-0.1666667, 0.1666667]], dtype=torch.float64
    )
    assert torch.allclose(logits.grad, expected, atol=1e-6)


def test_whole_episode_return_for_every_step_gives_another_loss() -> None:
    """PITFALL 13: weighting every step by the episode's return is not REINFORCE's estimator."""
    whole = torch.full((3,), 2.62, dtype=torch.float64)
    wrong = pg.reinforce_loss(_log_probs(_logits()), whole)
    assert wrong.item() == pytest.approx(1.7131818, abs=1e-6)
    assert wrong.item() != pytest.approx(1.2748071, abs=1e-3)


def test_log_pi_squared_is_not_the_policy_gradient() -> None:
    """PITFALL 3: ``log pi * log pi * G`` has another gradient than ``log pi * G``."""
    returns = torch.tensor([2.62, 1.8, 2.0], dtype=torch.float64)
    logits_a, logits_b = _logits(), _logits()
    pg.reinforce_loss(_log_probs(logits_a), returns).backward()
    lp = _log_probs(logits_b)
    (-(lp * lp * returns).mean()).backward()
    assert not torch.allclose(logits_a.grad, logits_b.grad, atol=1e-3)


def test_baseline_is_subtracted_and_gets_no_gradient() -> None:
    # with b = (1, 1, 1): weights G - b = (1.62, 0.8, 1.0)
    #   loss = -(1/3) * (1.62 * ln 0.75 + 0.8 * ln 0.25 + 1.0 * ln 0.75)
    #        = -(1/3) * (-0.7537270 - 1.1090355) = 0.6209208
    returns = torch.tensor([2.62, 1.8, 2.0], dtype=torch.float64)
    baselines = torch.ones(3, dtype=torch.float64, requires_grad=True)
    loss = pg.reinforce_loss(_log_probs(_logits()), returns, baselines)
    assert loss.item() == pytest.approx(0.6209208, abs=1e-6)
    loss.backward()
    assert baselines.grad is None  # a baseline is a constant of the policy gradient


def test_normalised_weights_and_masked_steps() -> None:
    # G = (2.62, 1.8, 2.0): mean 2.14, deviations (0.48, -0.34, -0.14),
    # sample std = sqrt((0.2304 + 0.1156 + 0.0196) / 2) = sqrt(0.1828) = 0.4275512
    # standardised: (0.48, -0.34, -0.14) / 0.4275512 = (1.1226726, -0.7952265, -0.3274462)
    returns = torch.tensor([2.62, 1.8, 2.0], dtype=torch.float64)
    z = torch.tensor([1.1226726, -0.7952265, -0.3274462], dtype=torch.float64)
    lp = _log_probs(_logits()).detach()
    normalised = pg.reinforce_loss(lp, returns, normalize=True)
    assert normalised.item() == pytest.approx(pg.reinforce_loss(lp, z).item(), abs=1e-6)
    # steps outside the mask change neither the mean, nor the normalisation, nor the loss
    lp5 = torch.cat([lp, torch.tensor([-5.0, -0.1], dtype=torch.float64)])
    returns5 = torch.cat([returns, torch.tensor([100.0, -40.0], dtype=torch.float64)])
    mask = torch.tensor([True, True, True, False, False])
    for normalize in (False, True):
        masked = pg.reinforce_loss(lp5, returns5, mask=mask, normalize=normalize)
        plain = pg.reinforce_loss(lp, returns, normalize=normalize)
        assert masked.item() == pytest.approx(plain.item(), abs=1e-9)
    with pytest.raises(ValueError, match="one return per action"):
        pg.reinforce_loss(lp, returns5)


def test_returns_bootstrap_on_truncation_only() -> None:
    # T = 3, two envs, gamma = 0.5, rewards 1 everywhere.
    # env 0 terminates at t=2: G = (1 + 0.5 * 1.5, 1 + 0.5 * 1, 1) = (1.75, 1.5, 1), whatever
    #   V(final obs) = 8 says (no bootstrap after termination, PITFALL 9);
    # env 1 is truncated at t=1 (time limit, V(final obs) = 4) and a new episode runs at t=2:
    #   G_1 = 1 + 0.5 * 4 = 3, G_0 = 1 + 0.5 * 3 = 2.5, G_2 = 1 (cut by the rollout's end).
    rewards = torch.ones(3, 2)
    terminated = torch.tensor([[False, False], [False, False], [True, False]])
    truncated = torch.tensor([[False, False], [False, True], [False, False]])
    next_values = torch.tensor([[0.0, 0.0], [0.0, 4.0], [8.0, 0.0]])
    G = pg.reinforce_returns(rewards, terminated, truncated, 0.5, next_values)
    assert torch.allclose(G, torch.tensor([[1.75, 2.5], [1.5, 3.0], [1.0, 1.0]]))
    # without a value function the sum stops at the time limit
    G = pg.reinforce_returns(rewards, terminated, truncated, 0.5)
    assert torch.allclose(G, torch.tensor([[1.75, 1.5], [1.5, 1.0], [1.0, 1.0]]))


# ---------------------------------------------------------------------------
# collecting episodes


class Countdown(gym.Env):
    """Episodes of exactly ``length`` steps; reward = the step's index; obs = steps left."""

    def __init__(self, length: int) -> None:
        self.length, self.t = length, 0
        self.observation_space = gym.spaces.Box(0.0, 100.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def _obs(self) -> np.ndarray:
        return np.array([self.length - self.t], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        reward = float(self.t)
        self.t += 1
        return self._obs(), reward, self.t >= self.length, False, {}


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_play_episodes_keeps_the_first_episode_of_each_copy(mode: AutoresetMode) -> None:
    envs = gym.vector.SyncVectorEnv(
        [lambda n=n: Countdown(n) for n in (1, 3, 2)], autoreset_mode=mode
    )
    net = ActorCritic(1, n_actions=2, hidden=(8,))
    ep = pg.play_episodes(net, Transitions(envs, torch.device("cpu")), seed=0)
    assert ep.mask.shape == (3, 3)  # runs until the longest episode ends
    assert ep.mask.T.tolist() == [[True, False, False], [True, True, True], [True, True, False]]
    assert ep.obs[:, 1, 0].tolist() == [3.0, 2.0, 1.0]  # copy 1 from its reset to its end
    assert ((ep.rewards * ep.mask).sum(0)).tolist() == [0.0, 3.0, 1.0]
    assert (ep.terminated & ep.mask).sum(0).tolist() == [1, 1, 1]  # each ends exactly once
    two = ep.select(slice(1, 3))  # the episodes of copies 1 and 2
    assert two.mask.T.tolist() == [[True, True, True], [True, True, False]]
    assert torch.equal(two.obs, ep.obs[:, 1:3])


@pytest.mark.parametrize(
    ("mode", "simulated"), [(AutoresetMode.NEXT_STEP, 7), (AutoresetMode.SAME_STEP, 9)]
)
def test_reinforce_counts_the_steps_it_simulates_but_does_not_learn_from(
    mode: AutoresetMode, simulated: int
) -> None:
    """Episodes of 1, 3 and 2 steps: REINFORCE learns from 6 steps, while the copies that
    finished first are stepped on until the 3-step episode ends. NEXT_STEP: copy 0 resets
    (not a transition) and plays 1 more step, copy 2 only resets: 7 steps simulated.
    SAME_STEP: copies 0 and 2 play 2 and 1 more steps: 9."""
    envs = gym.vector.SyncVectorEnv(
        [lambda n=n: Countdown(n) for n in (1, 3, 2)], autoreset_mode=mode
    )
    cfg = pg.REINFORCEConfig(total_steps=6, eval_every=0, hidden=(8,))
    _, history = pg.train_reinforce(envs, cfg, progress=False)
    assert [(s, n) for s, _, n in history.episodes] == [(1, 1), (4, 3), (6, 2)]
    assert history.simulated == [(6, simulated)]
    assert history.simulated_at(6) == simulated
    with pytest.raises(ValueError, match="no update reached step 7"):
        history.simulated_at(7)


# ---------------------------------------------------------------------------
# config, errors, checkpoints


@pytest.mark.parametrize(
    ("cls", "field", "value", "message"),
    [
        (pg.REINFORCEConfig, "gamma", 1.5, "gamma must be in"),
        (pg.REINFORCEConfig, "total_steps", 0, "total_steps must be a positive integer"),
        (pg.REINFORCEConfig, "num_envs", 2.0, "num_envs must be a positive integer"),
        (pg.REINFORCEConfig, "lr", 0.0, "lr must be positive"),
        (pg.REINFORCEConfig, "value_lr", -1e-3, "value_lr must be positive"),
        (pg.REINFORCEConfig, "max_grad_norm", 0.0, "max_grad_norm must be positive"),
        (pg.REINFORCEConfig, "hidden", (), "hidden must list positive layer sizes"),
        (pg.REINFORCEConfig, "eval_every", -1, "eval_every must be an integer >= 0"),
        (pg.A2CConfig, "lam", 1.1, "lam must be in"),
        (pg.A2CConfig, "gamma", float("nan"), "gamma must be in"),
        (pg.A2CConfig, "n_steps", 0, "n_steps must be a positive integer"),
        (pg.A2CConfig, "optimizer", "sgd", "optimizer must be 'rmsprop' or 'adam'"),
        (pg.A2CConfig, "ent_coef", -0.01, "ent_coef must be >= 0"),
        (pg.A2CConfig, "hidden", (64, 0), "hidden must list positive layer sizes"),
    ],
)
def test_config_rejects_bad_values(cls: type, field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cls(**{field: value})


def test_configs_are_frozen() -> None:
    with pytest.raises(AttributeError):
        pg.A2CConfig().lr = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("train", [pg.train_reinforce, pg.train_a2c])
def test_unsuitable_envs_are_clear_errors(train) -> None:
    with pytest.raises(ValueError, match="flat Box observations"):
        train("FrozenLake-v1", progress=False)
    with pytest.raises(ValueError, match="unknown environment id"):
        train("CartPol-v1", progress=False)


def test_save_load_round_trip_and_wrong_algorithm(tmp_path) -> None:
    obs = torch.randn(64, 4)
    for cls, other in ((pg.REINFORCEAgent, pg.A2CAgent), (pg.A2CAgent, pg.REINFORCEAgent)):
        torch.manual_seed(0)
        net = ActorCritic(4, n_actions=3, hidden=(16, 16))
        torch.nn.init.normal_(net.actor[-1].weight)  # a policy that is not uniform
        agent = cls(net)
        path = tmp_path / f"{cls.algorithm}.pt"
        agent.save(path)
        loaded = cls.load(path)
        assert type(loaded) is cls
        assert torch.equal(loaded.act(obs), agent.act(obs))
        assert len(set(agent.act(obs).tolist())) > 1
        with pytest.raises(ValueError, match=f"not a {other.algorithm.upper()} checkpoint"):
            other.load(path)


# ---------------------------------------------------------------------------
# training runs


def test_continuous_actions_on_pendulum() -> None:
    """A Gaussian policy: a few hundred steps of each, actions of the right shape in bounds.
    Every Pendulum episode is cut by its 200-step time limit (REINFORCE bootstraps there)."""
    agent, history = pg.train_a2c(
        "Pendulum-v1", pg.A2CConfig(total_steps=320, num_envs=4, eval_every=0), progress=False
    )
    obs, _ = gym.make("Pendulum-v1").reset(seed=0)
    action = agent.act(obs)
    assert action.shape == (1,) and -2.0 <= action[0] <= 2.0
    assert agent.act(np.stack([obs] * 5)).shape == (5, 1)
    assert len(history.policy_loss) == 320 // (4 * 8)
    assert all(math.isfinite(v) for _, v in history.value_loss + history.grad_norm)

    agent, history = pg.train_reinforce(
        "Pendulum-v1", pg.REINFORCEConfig(total_steps=400, num_envs=2, eval_every=0), progress=False
    )
    assert [(step, length) for step, _, length in history.episodes] == [(200, 200), (400, 200)]
    assert agent.act(obs).shape == (1,)
    assert all(math.isfinite(v) for _, v in history.value_loss + history.policy_loss)


def test_a2c_loss_is_the_three_terms_written_out() -> None:
    """``a2c_loss`` on a rollout with an invalid step (NEXT_STEP's reset) and an entropy
    bonus: the same numbers as the loss written out with its tensors, and the A2C updates
    record what they simulated."""
    cfg = pg.A2CConfig(n_steps=5, num_envs=3, ent_coef=0.1, vf_coef=0.7, hidden=(8,))
    envs = gym.vector.SyncVectorEnv([lambda n=n: Countdown(n) for n in (1, 3, 2)])
    steps = Transitions(envs, torch.device("cpu"))
    torch.manual_seed(0)
    net = ActorCritic(1, n_actions=2, hidden=(8,))
    buffer = RolloutBuffer(5, 3, (1,))
    collect_rollout(buffer, net, steps, steps.reset(seed=0), None, None, 0.9, 1.0)
    assert not bool(buffer.valid.all())  # the resets are in the rollout, masked out
    loss, parts = pg.a2c_loss(net, buffer, cfg)
    m = buffer.valid
    log_probs, entropy, values = net.evaluate(buffer.obs, buffer.actions)
    advantages = buffer.returns - buffer.values
    policy_loss = -(log_probs * advantages)[m].mean()
    value_loss = 0.5 * ((values - buffer.returns)[m] ** 2).mean()
    by_hand = policy_loss + 0.7 * value_loss - 0.1 * entropy[m].mean()
    assert torch.allclose(loss, by_hand) and torch.allclose(parts["policy_loss"], policy_loss)
    assert torch.allclose(parts["value_loss"], value_loss)
    assert torch.allclose(parts["entropy"], entropy[m].mean())

    _, history = pg.train_a2c(
        "CartPole-v1", pg.A2CConfig(total_steps=640, eval_every=0), progress=False
    )
    assert history.simulated == [(s, s) for s, _ in history.policy_loss]


def test_grad_norm_is_recorded_before_clipping() -> None:
    cfg = pg.REINFORCEConfig(total_steps=500, max_grad_norm=1e-6, eval_every=0, device="cpu")
    _, history = pg.train_reinforce("CartPole-v1", cfg, progress=False)
    assert history.grad_norm and all(v > 1e-6 for _, v in history.grad_norm)


@pytest.mark.parametrize(
    ("train", "cfg"),
    [
        (pg.train_reinforce, pg.REINFORCEConfig(total_steps=3000, eval_every=0)),
        (pg.train_a2c, pg.A2CConfig(total_steps=3000, eval_every=0)),
    ],
)
def test_training_is_seeded(train, cfg) -> None:
    (a1, h1), (a2, h2) = (train("CartPole-v1", cfg, seed=3, progress=False) for _ in range(2))
    assert h1.episodes and h1.episodes == h2.episodes
    assert h1.policy_loss == h2.policy_loss and h1.grad_norm == h2.grad_norm
    assert all(
        torch.equal(p, q) for p, q in zip(a1.net.parameters(), a2.net.parameters(), strict=True)
    )
    _, h3 = train("CartPole-v1", cfg, seed=4, progress=False)
    assert h3.episodes != h1.episodes


class ContextualBandit(gym.Env):
    """One-step episodes: observe a one-hot state k of 3, reward 1 for action k, else 0."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(0.0, 1.0, (3,), np.float32)
        self.action_space = gym.spaces.Discrete(3)
        self.k = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.k = int(self.np_random.integers(3))
        return np.eye(3, dtype=np.float32)[self.k], {}

    def step(self, action):
        return np.eye(3, dtype=np.float32)[self.k], float(action == self.k), True, False, {}


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
@pytest.mark.parametrize("algorithm", ["reinforce", "a2c"])
def test_learns_a_contextual_bandit(algorithm: str, mode: AutoresetMode) -> None:
    """The right action is visible in the observation: the greedy policy must pick it in every
    state, with high probability, and the value of each state must approach 1."""
    envs = gym.vector.SyncVectorEnv([ContextualBandit] * 8, autoreset_mode=mode)
    if algorithm == "reinforce":
        cfg = pg.REINFORCEConfig(total_steps=1600, lr=1e-2, hidden=(32,), eval_every=0)
        agent, _ = pg.train_reinforce(envs, cfg, seed=0, progress=False)
    else:
        cfg = pg.A2CConfig(total_steps=3200, lr=1e-2, hidden=(32,), eval_every=0)
        agent, _ = pg.train_a2c(envs, cfg, seed=0, progress=False)
    states = torch.eye(3)
    assert agent.act(states).tolist() == [0, 1, 2]
    with torch.no_grad():
        assert (agent.net.distribution(states).probs.diagonal() > 0.95).all()
        assert torch.allclose(agent.net.value(states), torch.ones(3), atol=0.15)


@pytest.mark.parametrize(
    ("train", "cfg"),
    [
        (pg.train_reinforce, pg.REINFORCEConfig()),
        (pg.train_a2c, pg.A2CConfig()),
    ],
)
def test_solves_cartpole(train, cfg) -> None:
    """The defaults, seed 0: a confirmed solve, and the agent handed back is solved (mean >=
    475 over 100 held-out episodes), also on 100 episodes of other seeds."""
    agent, history = train("CartPole-v1", cfg, seed=0, progress=False)
    assert history.solved_step is not None, history.evaluations
    assert history.solved and history.held_out_mean >= 475, history.selection
    assert rlcourse.evaluate(agent, "CartPole-v1", n_episodes=100, seed=900_000).mean() >= 475


# ---------------------------------------------------------------------------
# the GPU path (skipped without CUDA)

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
@pytest.mark.parametrize("device", ["auto", "cuda"])
def test_chapter_6_code_paths_on_the_device(device: str) -> None:
    """What chapter 6 runs, with the net wherever ``device`` puts it: training, acting on
    NumPy and tensor observations, episodes played through a ``Transitions`` on the net's
    device, the REINFORCE gradient estimate with and without a baseline, and A2C's loss."""
    cfg = pg.REINFORCEConfig(total_steps=2000, eval_every=0, device=device)
    agent, history = pg.train_reinforce("CartPole-v1", cfg, progress=False)
    assert history.simulated[-1][1] >= history.simulated[-1][0] >= 2000
    net, on = agent.net, next(agent.net.parameters()).device
    obs, _ = gym.make("CartPole-v1").reset(seed=0)
    assert agent.act(obs) in (0, 1)
    steps = Transitions(make_vector_env("CartPole-v1", 16), on)
    ep = pg.play_episodes(net, steps, seed=1000)
    assert ep.obs.device == on
    for copies in (slice(0, 8), slice(8, 16)):
        part = ep.select(copies)
        G = pg.reinforce_returns(part.rewards, part.terminated, part.truncated, 0.99)
        log_probs = net.log_prob(net.distribution(part.obs), part.actions)
        for b in (None, net.value(part.obs).detach()):
            loss = pg.reinforce_loss(log_probs, G, b, mask=part.mask)
            grads = torch.autograd.grad(loss, list(net.actor.parameters()), retain_graph=True)
            assert all(g.device == on and torch.isfinite(g).all() for g in grads)

    a2c_cfg = pg.A2CConfig(total_steps=640, eval_every=0, device=device)
    a2c, _ = pg.train_a2c("CartPole-v1", a2c_cfg, progress=False)
    on = next(a2c.net.parameters()).device
    steps = Transitions(make_vector_env("CartPole-v1", 8), on)
    buffer = RolloutBuffer(8, 8, (4,), device=on)
    collect_rollout(buffer, a2c.net, steps, steps.reset(seed=0), None, None, 0.99, 1.0)
    loss, _ = pg.a2c_loss(a2c.net, buffer, a2c_cfg)
    assert loss.device == on and torch.isfinite(loss)
