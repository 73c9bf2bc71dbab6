"""The GPU path: ``device="auto"`` follows the environment, ``Agent.act`` answers on the
device and in the type it was asked in, the code of chapters 5 (DQN) and 6 (policy
gradients) runs with networks on a GPU, checkpoints move between devices, and no training
step waits for the GPU.

The tests of ``Agent.act``'s contract run everywhere (CPU tensors, and PyTorch's "meta"
device, whose tensors cannot be read from the host); the others need a CUDA GPU and are
skipped without one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import rlcourse
from rlcourse import dqn, pg, ppo
from rlcourse.agent import Agent
from rlcourse.buffers import ReplayBuffer, RolloutBuffer, collect_rollout
from rlcourse.envs import TorchCartPole
from rlcourse.envs.vector import Transitions, make_vector_env
from rlcourse.nets import ActorCritic, QNetwork, policy_sample
from rlcourse.utils import resolve_device

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny networks: one CPU thread runs them fastest on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _dqn_agent(device: str | torch.device = "cpu") -> dqn.DQNAgent:
    torch.manual_seed(0)
    return dqn.DQNAgent(QNetwork(4, 3, hidden=(16,)), device)


def _pendulum_agent(device: str | torch.device = "cpu") -> ppo.PPOAgent:
    torch.manual_seed(0)
    net = ActorCritic(3, action_dim=1, hidden=(16,))
    torch.nn.init.normal_(net.actor[-1].weight)  # means well away from 0
    return ppo.PPOAgent(net, device, low=[-2.0], high=[2.0])


# ---------------------------------------------------------------------------
# Agent.act: the type and the device it was asked in (no GPU needed)


def check_act_contract(agent: Agent, obs_dim: int, continuous: bool, device: Any) -> None:
    """NumPy in, NumPy out (an int for one discrete observation); a tensor in, a tensor out
    on the tensor's device, wherever ``agent.net`` is; both give the same actions."""
    rng = np.random.default_rng(0)
    batch = rng.standard_normal((6, obs_dim))  # float64, as gymnasium's CartPole gives
    shape = (6, 1) if continuous else (6,)

    one = agent.act(batch[0])
    if continuous:
        assert isinstance(one, np.ndarray) and one.shape == (1,)
    else:
        assert type(one) is int
    many = agent.act(batch)
    assert isinstance(many, np.ndarray) and many.shape == shape
    assert isinstance(agent.act(batch.tolist()), np.ndarray)  # a list counts as NumPy

    x = torch.as_tensor(batch, device=device)
    out = agent.act(x)
    assert isinstance(out, torch.Tensor) and out.device == x.device and out.shape == shape
    single = agent.act(x[0])
    assert isinstance(single, torch.Tensor) and single.device == x.device
    assert single.shape == ((1,) if continuous else ())
    np.testing.assert_array_equal(out.cpu().numpy(), many)
    np.testing.assert_array_equal(single.cpu().numpy(), one)
    if continuous:
        assert (np.abs(many) <= 2.0).all()  # the Gaussian's mean clipped to the bounds


def test_act_answers_in_the_type_it_was_asked_in_on_the_cpu() -> None:
    check_act_contract(_dqn_agent(), 4, continuous=False, device=CPU)
    check_act_contract(_pendulum_agent(), 3, continuous=True, device=CPU)


def test_act_on_tensors_stays_on_their_device() -> None:
    """With the net and the observations on a device that cannot be read from the host
    ("meta"), acting on a tensor gives a tensor there: nothing was copied to the host."""
    for agent, dim, shape in ((_dqn_agent("meta"), 4, (5,)), (_pendulum_agent("meta"), 3, (5, 1))):
        actions = agent.act(torch.zeros(5, dim, device="meta"))
        assert actions.device.type == "meta" and actions.shape == shape


def test_act_on_an_integer_action_is_an_int_not_a_numpy_scalar() -> None:
    """A single discrete action from NumPy is a Python int, as gymnasium's spaces expect."""
    action = _dqn_agent().act(np.zeros(4, dtype=np.float32))
    assert type(action) is int and gym.spaces.Discrete(3).contains(action)


# ---------------------------------------------------------------------------
# device="auto" and the GPU


@needs_cuda
def test_auto_follows_the_env_on_a_gpu_machine() -> None:
    """'auto' is the GPU for a torch env there, the CPU for gymnasium's envs."""
    assert resolve_device("auto", TorchCartPole(2, device="cuda")).type == "cuda"
    assert resolve_device("auto", "CartPole-v1") == CPU
    assert resolve_device("auto", make_vector_env("CartPole-v1", 2)) == CPU
    assert resolve_device("auto").type == "cuda"  # no env: whole-tensor work goes to the GPU
    agent, _ = ppo.train(
        "CartPole-v1", ppo.PPOConfig(total_steps=512, eval_every=0), seed=0, progress=False
    )
    assert agent.device == CPU


@needs_cuda
def test_act_answers_in_the_type_it_was_asked_in_on_a_gpu() -> None:
    """The same contract with the net on the GPU, for CPU and GPU tensors alike."""
    for device in (CPU, torch.device("cuda")):
        check_act_contract(_dqn_agent("cuda"), 4, continuous=False, device=device)
        check_act_contract(_pendulum_agent("cuda"), 3, continuous=True, device=device)
    cpu_agent = _dqn_agent()
    out = cpu_agent.act(torch.zeros(3, 4, device="cuda"))  # a CPU net asked on the GPU
    assert out.device.type == "cuda"


# ---------------------------------------------------------------------------
# chapter 5: DQN


def same_greedy_actions(a: Agent, b: Agent, obs: torch.Tensor, margin: float = 1e-3) -> bool:
    """Whether two DQN agents (on any devices) act alike on ``obs`` wherever the greedy
    action is clear (a GPU's float rounding may differ from a CPU's in the last bits)."""
    q = a.q_values(obs).cpu()
    top2 = q.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > margin
    return bool((a.act(obs) == b.act(obs))[clear].all()) and bool(clear.float().mean() > 0.5)


def check_chapter_5(agent: dqn.DQNAgent, tmp_path: Any) -> None:
    """What chapter 5 does with a trained agent: play a gymnasium episode, compare it with
    its checkpoint loaded on the CPU and on the GPU (the chapter loads it on the agent's own
    device), Q at start states, evaluate."""
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=7)
    for _ in range(20):
        action = agent.act(obs)
        assert type(action) is int
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    path = tmp_path / "cartpole_dqn.pt"
    agent.save(path)
    test_obs = torch.randn(100, 4, generator=torch.Generator().manual_seed(0))
    on_cpu = dqn.DQNAgent.load(path)  # the default device is the CPU
    assert on_cpu.device == CPU
    assert agent.act(test_obs).device == CPU  # asked on the CPU, answered on the CPU
    assert same_greedy_actions(agent, on_cpu, test_obs)
    on_gpu = dqn.DQNAgent.load(path, device="cuda")
    assert same_greedy_actions(agent, on_gpu, test_obs)
    if agent.device == on_gpu.device:  # the same weights on the same device: the same actions
        assert torch.equal(on_gpu.act(test_obs), agent.act(test_obs))
    start_states = torch.as_tensor(gym.make_vec("CartPole-v1", 20).reset(seed=0)[0])
    assert np.isfinite(float(agent.q_values(start_states).max()))
    returns = rlcourse.evaluate(agent, "CartPole-v1", n_episodes=5, seed=500)
    assert returns.shape == (5,) and (returns >= 8).all()


@needs_cuda
def test_chapter_5_dqn_on_the_gpu_env_with_auto(tmp_path) -> None:
    """device='auto' with the torch CartPole on the GPU: the Q-network trains there, with
    the evaluations and the held-out score of the selection rule, on CPU-stepped episodes."""
    cfg = dqn.DQNConfig(total_steps=4000, eval_every=2000, eval_episodes=3)
    agent, history = dqn.train(
        TorchCartPole(8, device="cuda"), cfg, seed=0, eval_env="CartPole-v1", progress=False
    )
    assert agent.device.type == "cuda"
    assert all(p.device.type == "cuda" for p in agent.net.parameters())
    assert [s for s, _, _ in history.evaluations] == [2000, 4000]
    assert history.held_out_mean is not None and history.episodes
    assert sum(n for _, _, n in history.episodes) <= 4000
    check_chapter_5(agent, tmp_path)


@needs_cuda
@pytest.mark.parametrize("device", ["auto", "cuda"])
def test_chapter_5_dqn_on_gymnasium(tmp_path, device: str) -> None:
    """A gymnasium env id: 'auto' trains on the CPU; 'cuda' on the GPU, with NumPy's
    observations crossing over at each step. Both give the same episodes' bookkeeping."""
    cfg = dqn.DQNConfig(total_steps=2000, eval_every=1000, eval_episodes=3, device=device)
    agent, history = dqn.train("CartPole-v1", cfg, seed=0, progress=False)
    assert agent.device.type == ("cpu" if device == "auto" else "cuda")
    assert history.episodes and history.episodes[-1][0] <= 2000 + cfg.num_envs
    check_chapter_5(agent, tmp_path)


# ---------------------------------------------------------------------------
# chapter 6: REINFORCE and A2C


def gradient_estimate(net: ActorCritic, steps: Transitions, seed: int) -> torch.Tensor:
    """Chapter 6's policy-gradient estimate from 8 episodes (cell 3), on the net's device."""
    episodes = pg.play_episodes(net, steps, seed=seed)
    actor = [p for name, p in net.named_parameters() if name.startswith("actor")]
    G = pg.reinforce_returns(episodes.rewards, episodes.terminated, episodes.truncated, 0.99)
    b = net.value(episodes.obs).detach()
    log_probs = net.log_prob(net.distribution(episodes.obs), episodes.actions)
    loss = pg.reinforce_loss(log_probs, G, b, mask=episodes.mask)
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, actor)])


@needs_cuda
def test_chapter_6_with_auto_on_a_gpu_machine() -> None:
    """Chapter 6 trains on a gymnasium env id and steps CPU Transitions through the trained
    nets: with 'auto' the nets are on the CPU, so the chapter's cell runs as written."""
    agent, _ = pg.train_reinforce(
        "CartPole-v1", pg.REINFORCEConfig(total_steps=1000, eval_every=0), seed=0, progress=False
    )
    assert agent.device == CPU
    steps = Transitions(make_vector_env("CartPole-v1", 8), torch.device("cpu"))
    estimate = gradient_estimate(agent.net, steps, seed=1000)
    assert estimate.device == CPU and bool(torch.isfinite(estimate).all())


GPU_ENVS = {"gym": lambda: "CartPole-v1", "torch": lambda: TorchCartPole(8, device="cuda")}


@needs_cuda
@pytest.mark.parametrize("make_env", list(GPU_ENVS.values()), ids=list(GPU_ENVS))
def test_chapter_6_with_the_nets_on_the_gpu(make_env, tmp_path) -> None:
    """REINFORCE and A2C with their nets on the GPU: training, the gradient estimate over
    Transitions on the net's device, acting on NumPy and on tensors, save/load, evaluate."""
    env = make_env()
    device = "cuda" if isinstance(env, str) else "auto"
    cfg = pg.REINFORCEConfig(total_steps=1500, eval_every=750, eval_episodes=2, device=device)
    agent, history = pg.train_reinforce(env, cfg, seed=0, eval_env="CartPole-v1", progress=False)
    assert agent.device.type == "cuda" and history.episodes and history.grad_norm
    vec = (
        make_vector_env("CartPole-v1", 8)
        if isinstance(env, str)
        else TorchCartPole(8, device="cuda")
    )
    estimate = gradient_estimate(agent.net, Transitions(vec, agent.device), seed=1000)
    assert estimate.device.type == "cuda" and bool(torch.isfinite(estimate).all())
    check_act_contract(agent, 4, continuous=False, device=CPU)

    env = make_env()
    a2c_cfg = pg.A2CConfig(total_steps=1024, eval_every=512, eval_episodes=2, device=device)
    agent, history = pg.train_a2c(env, a2c_cfg, seed=0, eval_env="CartPole-v1", progress=False)
    assert agent.device.type == "cuda" and len(history.policy_loss) == 1024 // 64
    path = tmp_path / "a2c.pt"
    agent.save(path)
    obs = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(pg.A2CAgent.load(path, device="cuda").act(obs), agent.act(obs))
    assert pg.A2CAgent.load(path).act(obs).shape == (50,)
    assert rlcourse.evaluate(agent, "CartPole-v1", n_episodes=3, seed=500).shape == (3,)


# ---------------------------------------------------------------------------
# PPO (chapters 7 and 8) and checkpoints across devices


@needs_cuda
def test_ppo_on_the_gpu_and_checkpoints_across_devices(tmp_path) -> None:
    cfg = ppo.PPOConfig(total_steps=4096, eval_every=2048, eval_episodes=3)
    agent, history = ppo.train(
        TorchCartPole(8, device="cuda"), cfg, seed=0, eval_env="CartPole-v1", progress=False
    )
    assert agent.device.type == "cuda" and history.held_out_mean is not None
    assert len(history.approx_kl) == 4096 // cfg.batch_size
    path = tmp_path / "ppo.pt"
    agent.save(path)
    on_cpu = ppo.PPOAgent.load(path)
    obs = torch.randn(100, 4, generator=torch.Generator().manual_seed(0))
    logits_gpu = agent.net.actor(obs.cuda()).cpu()
    logits_cpu = on_cpu.net.actor(obs)
    torch.testing.assert_close(logits_gpu, logits_cpu, atol=1e-4, rtol=1e-4)
    clear = (logits_cpu[:, 0] - logits_cpu[:, 1]).abs() > 1e-3
    assert torch.equal(on_cpu.act(obs)[clear], agent.act(obs)[clear])
    # and back: a CPU-trained agent loaded onto the GPU acts on NumPy observations
    cpu_agent, _ = ppo.train(
        "CartPole-v1", ppo.PPOConfig(total_steps=512, eval_every=0), seed=0, progress=False
    )
    cpu_agent.save(path)
    on_gpu = ppo.PPOAgent.load(path, device="cuda")
    assert on_gpu.net.actor[0].weight.device.type == "cuda"
    assert type(on_gpu.act(obs.numpy()[0])) is int
    assert on_gpu.act(obs.numpy()).shape == (100,)

    agents, histories = ppo.train_seeds(
        TorchCartPole(2 * cfg.num_envs, device="cuda"),
        ppo.PPOConfig(total_steps=2048, eval_every=1024, eval_episodes=2, solve_threshold=None),
        seeds=(0, 1),
        eval_env="CartPole-v1",
        progress=False,
    )
    assert all(a.device.type == "cuda" for a in agents)
    assert all(h.episodes and len(h.evaluations) == 2 for h in histories)


@needs_cuda
def test_pendulum_on_the_gpu_with_gymnasium_copies() -> None:
    """Continuous actions: a GPU Gaussian policy stepping gymnasium's Pendulum (NumPy)."""
    cfg = ppo.PPOConfig(total_steps=2048, n_steps=256, eval_every=0, device="cuda")
    agent, history = ppo.train("Pendulum-v1", cfg, seed=0, progress=False)
    assert agent.device.type == "cuda" and history.episodes
    check_act_contract(agent, 3, continuous=True, device=CPU)


# ---------------------------------------------------------------------------
# no step waits for the GPU


@needs_cuda
def test_no_training_step_waits_for_the_gpu() -> None:
    """With CUDA's sync debug mode set to raise, DQN's steps (act, step the torch env, store
    in the replay buffer) and a PPO/A2C rollout (sample, step, store, GAE) run: nothing
    reads a value back from the GPU. The episodes logged on the GPU meanwhile are then
    those counted by hand from the rewards and flags recorded at each step."""
    gpu = torch.device("cuda")
    n = 64
    steps = Transitions(TorchCartPole(n, device=gpu), gpu)
    steps.reset(seed=0)
    q_net = QNetwork(4, 2).to(gpu)
    buffer = ReplayBuffer(10_000, (4,), gpu)
    actor_critic = ActorCritic(4, n_actions=2).to(gpu)
    rollout = RolloutBuffer(16, n, (4,), device=gpu)

    def dqn_step(obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        actions = q_net(obs).argmax(1)
        next_obs, reward, terminated, truncated, valid = steps.step(actions)
        buffer.add(obs, actions, reward, next_obs, terminated, None if steps.all_valid else valid)
        return reward, terminated | truncated

    for _ in range(3):  # warm-up: CUDA and cuBLAS initialise outside the checked part
        dqn_step(steps.obs)
    collect_rollout(rollout, actor_critic, steps, steps.obs, None, None, 0.99, 0.95)
    steps.reset(seed=1)  # every copy starts an episode: the counts by hand start at 0
    torch.cuda.synchronize()
    start_steps, start_episodes = steps.env_steps, len(steps.episodes)
    recorded = []
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(300):
            recorded.append(dqn_step(steps.obs))
        collect_rollout(rollout, actor_critic, steps, steps.obs, None, None, 0.99, 0.95)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert steps.env_steps == start_steps + 316 * n
    assert bool(torch.isfinite(rollout.advantages).all())
    # the episodes that ended in the 300 DQN steps, counted by hand on the host
    rewards = torch.stack([r for r, _ in recorded]).double().cpu().numpy()
    dones = torch.stack([d for _, d in recorded]).cpu().numpy()
    ret, length = np.zeros(n), np.zeros(n, dtype=np.int64)
    by_hand, copies = [], []
    for t in range(300):
        ret += rewards[t]
        length += 1
        for i in np.flatnonzero(dones[t]):
            by_hand.append((start_steps + (t + 1) * n, float(ret[i]), int(length[i])))
            copies.append(int(i))
            ret[i], length[i] = 0, 0
    assert len(by_hand) > n  # an untrained greedy policy's episodes are short
    k = start_episodes + len(by_hand)
    assert steps.episodes[start_episodes:k] == by_hand
    assert steps.episode_copies[start_episodes:k] == copies
    assert all(s > start_steps + 300 * n for s, _, _ in steps.episodes[k:])  # the rollout's


@needs_cuda
def test_policy_sample_on_the_gpu() -> None:
    """Gumbel-max on the GPU: finite, and distributed as the softmax of the logits."""
    torch.manual_seed(0)
    logits = torch.tensor([[0.0, 1.0, -1.0, 2.0], [3.0, 0.0, -torch.inf, -5.0]], device="cuda")
    draws = policy_sample(logits.unsqueeze(0).expand(100_000, 2, 4))
    assert draws.device.type == "cuda"
    for row in range(2):
        freq = torch.bincount(draws[:, row], minlength=4).cpu() / 100_000
        torch.testing.assert_close(freq, logits[row].softmax(-1).cpu(), atol=0.01, rtol=0)
    assert int((draws[:, 1] == 2).sum()) == 0  # an action of probability 0 is never drawn
