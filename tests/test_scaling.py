"""Tests of the paths that scale the course's algorithms up: many PPO seeds trained at once
(``ppo.AgentStack``, per-agent losses and gradient clipping, ``ppo.train_seeds``), sparse
MDPs built straight from successor lists (``TabularMDP.from_successors``), environment
throughput (``steps_per_second``) and the copy that finished each episode
(``Transitions.episode_copies``)."""

from __future__ import annotations

import copy
import dataclasses
import math
import time

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from test_vector_env import walk_counting_episodes

from rlcourse import dp, ppo
from rlcourse.buffers import RolloutBuffer
from rlcourse.envs import TorchCartPole
from rlcourse.envs.batched import steps_per_second
from rlcourse.envs.vector import Transitions
from rlcourse.mdp import TabularMDP
from rlcourse.nets import ActorCritic, FlatParameters, policy_entropy, policy_log_prob
from rlcourse.utils import seed_everything

K, N, M = 3, 2, 4  # agents, env copies per agent, vector steps
OBS_DIM = 4


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny tensors on a busy 2-core machine: one intra-op thread is fastest."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------
# AgentStack: K actor-critics evaluated as one


def _nets(continuous: bool = False, n_actions: int = 3) -> list[ActorCritic]:
    """K networks of one architecture with different weights (and log-stds). The actor's
    last layer starts near zero (gain 0.01); it is scaled up so that the agents' policies
    differ visibly, and a mix-up of agents cannot hide in a tolerance."""
    nets = []
    for k in range(K):
        torch.manual_seed(100 + k)
        if continuous:
            net = ActorCritic(OBS_DIM, action_dim=2)
        else:
            net = ActorCritic(OBS_DIM, n_actions=n_actions)
        with torch.no_grad():
            net.actor[-1].weight.mul_(100.0)
            if continuous:
                net.log_std.copy_(torch.tensor([-0.3 * k, 0.2 * k]))
        nets.append(net)
    return nets


def _rows(x: torch.Tensor, k: int, n_per_agent: int = N) -> torch.Tensor:
    """Agent k's rows of a flattened ``[M * K * N, ...]`` tensor ordered (m, k, n), as
    ``[M * N, ...]`` in (m, n) order."""
    x = x.reshape(-1, K, n_per_agent, *x.shape[1:])[:, k]
    return x.reshape(-1, *x.shape[2:])


def _obs(seed: int = 0, rows: int = M * K * N) -> torch.Tensor:
    return torch.randn(rows, OBS_DIM, generator=torch.Generator().manual_seed(seed))


def test_rows_helper_follows_the_m_k_n_order() -> None:
    """Row m * K * N + k * N + n belongs to agent k (copy k * N + n of the vector env)."""
    index = torch.arange(M * K * N)
    assert _rows(index, 1).tolist() == [m * K * N + 1 * N + n for m in range(M) for n in range(N)]


@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
def test_stack_value_is_each_agents_own_value(continuous: bool) -> None:
    nets = _nets(continuous)
    stack = ppo.AgentStack(nets, N)
    obs = _obs()
    with torch.no_grad():
        values = stack.value(obs)
        assert values.shape == (M * K * N,)
        for k, net in enumerate(nets):
            torch.testing.assert_close(_rows(values, k), net.value(_rows(obs, k)))
        # the agents differ, so a mix-up of rows would show
        assert not torch.allclose(nets[0].value(_rows(obs, 0)), nets[1].value(_rows(obs, 0)))


@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
def test_stack_sample_log_probs_and_values_are_each_agents_own(continuous: bool) -> None:
    nets = _nets(continuous)
    stack = ppo.AgentStack(nets, N)
    obs = _obs(1)
    torch.manual_seed(0)
    with torch.no_grad():
        action, log_prob, value = stack.sample(obs)
        shape = (M * K * N, 2) if continuous else (M * K * N,)
        assert action.shape == shape and log_prob.shape == value.shape == (M * K * N,)
        assert action.is_floating_point() == continuous
        for k, net in enumerate(nets):
            obs_k, action_k = _rows(obs, k), _rows(action, k)
            expected = policy_log_prob(net.actor(obs_k), action_k, net.policy_log_std)
            torch.testing.assert_close(_rows(log_prob, k), expected)
            torch.testing.assert_close(_rows(value, k), net.value(obs_k))
            # the same number as the distribution object's
            dist = net.distribution(obs_k)
            torch.testing.assert_close(_rows(log_prob, k), net.log_prob(dist, action_k))


@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
def test_stack_each_agent_acts_with_its_own_policy(continuous: bool) -> None:
    """Agent k's policy puts (almost) all its mass on action k (discrete), or on the mean
    10 (k + 1) with a tiny standard deviation (continuous): its rows must show it."""
    nets = _nets(continuous)
    with torch.no_grad():
        for k, net in enumerate(nets):
            last = net.actor[-1]
            last.weight.zero_()
            if continuous:
                last.bias.fill_(10.0 * (k + 1))
                net.log_std.fill_(-10.0)
            else:
                last.bias.zero_()
                last.bias[k] = 50.0
    stack = ppo.AgentStack(nets, N)
    torch.manual_seed(0)
    with torch.no_grad():
        action, log_prob, _ = stack.sample(_obs(2))
    for k in range(K):
        if continuous:
            torch.testing.assert_close(
                _rows(action, k), torch.full((M * N, 2), 10.0 * (k + 1)), rtol=0, atol=1e-3
            )
        else:
            assert (_rows(action, k) == k).all()
            assert (_rows(log_prob, k) > -1e-6).all()  # log pi(k) ~ 0


def test_stack_sync_copies_the_stacked_parameters_into_the_nets() -> None:
    nets = _nets()
    stack = ppo.AgentStack(nets, N)
    with torch.no_grad():
        for p in stack.parameters():
            p.add_(torch.arange(1.0, K + 1).view(-1, *[1] * (p.dim() - 1)))  # agent k: + k + 1
    before = [copy.deepcopy(net.state_dict()) for net in nets]
    assert stack.sync() is stack.nets
    for k, net in enumerate(nets):
        for name, p in net.named_parameters():
            torch.testing.assert_close(p.detach(), stack.params[name][k].detach())
            torch.testing.assert_close(p.detach(), before[k][name] + (k + 1))
    # a copy, not a view: later changes of the stack do not reach the nets
    with torch.no_grad():
        stack.params["critic.0.bias"].add_(1.0)
    assert not torch.equal(nets[0].critic[0].bias, stack.params["critic.0.bias"][0])


# ---------------------------------------------------------------------------
# per-agent gradients: clipping, independence, the stacked optimisation step


def test_clip_per_agent_matches_clip_grad_norm_per_agent() -> None:
    g = torch.Generator().manual_seed(0)
    shapes = [(K, 3, 4), (K, 5), (K, 2)]
    params = [torch.zeros(s, requires_grad=True) for s in shapes]
    scale = torch.tensor([10.0, 0.01, 3.0])  # agent 1's norm below max_norm, the others above
    for p in params[:2]:  # the last parameter has no gradient, as clip_grad_norm_ allows
        p.grad = torch.randn(p.shape, generator=g) * scale.view(-1, *[1] * (p.dim() - 1))
    max_norm = 1.0
    norms = torch.stack([p.grad.flatten(1).square().sum(1) for p in params[:2]]).sum(0).sqrt()
    assert norms[0] > max_norm and norms[1] < max_norm and norms[2] > max_norm
    original = [p.grad.clone() for p in params[:2]]

    ppo._clip_per_agent(params, max_norm)

    assert params[2].grad is None
    for k in range(K):
        separate = [torch.zeros(s[1:], requires_grad=True) for s in shapes]
        for p, grad in zip(separate, original, strict=False):
            p.grad = grad[k].clone()
        total = torch.nn.utils.clip_grad_norm_(separate, max_norm)
        torch.testing.assert_close(total, norms[k])
        for p, ref in zip(params[:2], separate, strict=False):
            torch.testing.assert_close(p.grad[k], ref.grad)
    torch.testing.assert_close(params[0].grad[1], original[0][1])  # below max_norm: untouched
    clipped = torch.stack([p.grad.flatten(1).square().sum(1) for p in params[:2]]).sum(0).sqrt()
    torch.testing.assert_close(clipped[[0, 2]], torch.tensor([max_norm, max_norm]))


@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
def test_summed_loss_keeps_each_agents_gradient_its_own(continuous: bool) -> None:
    """The stack's loss summed over agents (vmap of ppo_loss) gives agent k exactly the
    gradient of agent k's own loss: advantage normalisation, clipping and the value loss
    are each agent's."""
    cfg = ppo.PPOConfig(ent_coef=0.01, clip_value=True)
    nets = _nets(continuous)
    stack = ppo.AgentStack(nets, N)
    g = torch.Generator().manual_seed(3)
    B = 16
    obs = torch.randn(K, B, OBS_DIM, generator=g)
    with torch.no_grad():
        if continuous:
            actions = torch.randn(K, B, 2, generator=g)
        else:
            actions = torch.randint(0, 3, (K, B), generator=g)
        new = torch.stack(
            [net.evaluate(obs[k], actions[k])[0] for k, net in enumerate(nets)]
        )  # old log-probs near the new ones, some ratios beyond the clip range
    mb = {
        "obs": obs,
        "actions": actions,
        "log_probs": new + 0.3 * torch.randn(K, B, generator=g),
        "values": torch.randn(K, B, generator=g),
        "advantages": torch.randn(K, B, generator=g) * torch.tensor([[1.0], [5.0], [0.2]]) + 1,
        "returns": torch.randn(K, B, generator=g),
    }

    def agent_loss(params, mb):
        out, value = torch.func.functional_call(stack.base, params, (mb["obs"],))
        log_std = params["log_std"] if continuous else None
        log_prob = policy_log_prob(out, mb["actions"], log_std)
        return ppo.ppo_loss(log_prob, policy_entropy(out, log_std), value, mb, cfg)

    losses, stats = torch.func.vmap(agent_loss)(stack.params, mb)
    assert losses.shape == (K,) and stats.shape == (K, ppo.N_LOSS_STATS)
    losses.sum().backward()
    for k, net in enumerate(nets):
        mb_k = {name: x[k] for name, x in mb.items()}
        log_prob, entropy, value = net.evaluate(mb_k["obs"], mb_k["actions"])
        loss_k, stats_k = ppo.ppo_loss(log_prob, entropy, value, mb_k, cfg)
        torch.testing.assert_close(losses[k], loss_k)
        torch.testing.assert_close(stats[k], stats_k)
        shift = ppo.policy_shift(log_prob.detach() - mb_k["log_probs"], cfg.clip_coef)
        assert shift[1] > 0  # the clip is exercised: some ratios lie outside 1 +/- eps
        net.zero_grad(set_to_none=True)
        loss_k.backward()
        for name, p in net.named_parameters():
            assert p.grad.abs().sum() > 0, name
            torch.testing.assert_close(stack.params[name].grad[k], p.grad, msg=name)


def _rollout(
    nets: list[ActorCritic], T: int, continuous: bool, seed: int = 0
) -> tuple[RolloutBuffer, list[RolloutBuffer]]:
    """A rollout of random observations for K * N copies, with actions, log-probabilities
    and values from the stacked nets, some episode ends, and its advantages; and for each
    agent k, a buffer of the same numbers for its copies k * N .. (k + 1) * N - 1 only."""
    g = torch.Generator().manual_seed(seed)
    stack = ppo.AgentStack(nets, N)
    action_shape = (2,) if continuous else ()
    dtype = torch.float32 if continuous else torch.long
    big = RolloutBuffer(T, K * N, (OBS_DIM,), action_shape, dtype)
    parts = [RolloutBuffer(T, N, (OBS_DIM,), action_shape, dtype) for _ in range(K)]
    torch.manual_seed(seed)
    for _ in range(T):
        obs = torch.randn(K * N, OBS_DIM, generator=g)
        with torch.no_grad():
            action, log_prob, value = stack.sample(obs)
        step = (
            obs,
            action,
            log_prob,
            value,
            torch.randn(K * N, generator=g),
            torch.randn(K * N, OBS_DIM, generator=g),
            torch.rand(K * N, generator=g) < 0.1,
            torch.zeros(K * N, dtype=torch.bool),
            torch.ones(K * N, dtype=torch.bool),
        )
        big.add(*step)
        for k, part in enumerate(parts):
            part.add(*(x[k * N : (k + 1) * N] for x in step))
    with torch.no_grad():
        next_values = stack.value(big.next_obs.flatten(0, 1)).view(T, K * N)
    big.compute_advantages(next_values, 0.98, 0.8)
    for k, part in enumerate(parts):
        part.compute_advantages(next_values[:, k * N : (k + 1) * N], 0.98, 0.8)
    return big, parts


@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
def test_optimise_stack_equals_each_agent_optimised_alone(continuous: bool) -> None:
    """With one minibatch per epoch (the whole of each agent's rollout, so that the shuffle
    does not matter), the stacked PPO epochs leave every agent's weights, and log the
    statistics, that ``_optimise`` on that agent's own copies with its own Adam gives."""
    T = 8
    cfg = ppo.PPOConfig(epochs=3, minibatch_size=T * N, max_grad_norm=0.5, device="cpu")
    nets = _nets(continuous)
    alone = copy.deepcopy(nets)
    big, parts = _rollout(nets, T, continuous)
    stack = ppo.AgentStack(nets, N)
    start = {name: p.detach().clone() for name, p in stack.params.items()}

    optimizer = torch.optim.Adam(stack.parameters(), lr=cfg.lr, eps=1e-5)
    stats = ppo._optimise_stack(stack, optimizer, big, cfg, torch.Generator().manual_seed(0))
    stack.sync()

    assert stats.shape == (K, len(ppo.STAT_NAMES))
    for k, (net, part) in enumerate(zip(alone, parts, strict=True)):
        params = FlatParameters(net.parameters())
        opt = torch.optim.Adam([params.data], lr=cfg.lr, eps=1e-5)
        stats_k = ppo._optimise(net, params, opt, part, cfg, torch.Generator().manual_seed(0))
        torch.testing.assert_close(
            stats[k], torch.tensor([stats_k[s] for s in ppo.STAT_NAMES]), rtol=1e-4, atol=1e-5
        )
        for name, p in net.named_parameters():
            trained = nets[k].get_parameter(name).detach()
            torch.testing.assert_close(trained, p.detach(), rtol=1e-4, atol=1e-5, msg=name)
            assert not torch.allclose(trained, start[name][k]), f"{name} did not move"


def test_optimise_stack_rejects_steps_that_are_not_transitions() -> None:
    nets = _nets()
    big, _ = _rollout(nets, 4, False)
    big.valid[1, 3] = False
    stack = ppo.AgentStack(nets, N)
    optimizer = torch.optim.Adam(stack.parameters(), lr=1e-3)
    with pytest.raises(RuntimeError, match="SAME_STEP"):
        ppo._optimise_stack(stack, optimizer, big, ppo.PPOConfig(), torch.Generator())


# ---------------------------------------------------------------------------
# train_seeds: many PPO agents in one batched run

SEEDS = [0, 1, 2]
LEARN_CFG = ppo.PPOConfig(
    eval_every=5000, eval_episodes=10, solve_threshold=None, total_steps=30_000, device="cpu"
)


@pytest.fixture(scope="module")
def trained() -> tuple[list[ppo.PPOAgent], list[ppo.PPOHistory]]:
    """The default PPO on CartPole for 30,000 steps per agent, three seeds at once."""
    env = TorchCartPole(len(SEEDS) * LEARN_CFG.num_envs)
    return ppo.train_seeds(env, LEARN_CFG, seeds=SEEDS, eval_env="CartPole-v1", progress=False)


def test_train_seeds_returns_one_agent_and_history_per_seed(trained) -> None:
    agents, histories = trained
    assert len(agents) == len(histories) == len(SEEDS)
    assert all(isinstance(a, ppo.PPOAgent) for a in agents)
    assert all(isinstance(h, ppo.PPOHistory) for h in histories)
    n_updates = LEARN_CFG.total_steps // LEARN_CFG.batch_size
    steps = [(u + 1) * LEARN_CFG.batch_size for u in range(n_updates)]
    for h in histories:
        for name in ppo.STAT_NAMES:
            record = getattr(h, name)
            assert [s for s, _ in record] == steps, name
            assert all(math.isfinite(v) for _, v in record), name
        assert all(v >= 0 for _, v in h.approx_kl)  # the k3 estimator is never negative
        assert all(0 <= v <= 1 for _, v in h.clip_fraction)
        assert all(0 < v <= math.log(2) + 1e-6 for _, v in h.entropy)  # two actions
        assert h.train_time > 0


def test_train_seeds_evaluates_at_the_configured_interval(trained) -> None:
    """An evaluation at the first update at or past each multiple of eval_every (5120,
    10240, 15104, 20224, 25088 for rollouts of 256 steps), and one of the final policy
    (29952), so that the best policy is chosen among all of them, for every agent."""
    _, histories = trained
    batch, last = LEARN_CFG.batch_size, (LEARN_CFG.total_steps // LEARN_CFG.batch_size)
    expected, target = [], LEARN_CFG.eval_every
    for step in range(batch, last * batch + 1, batch):
        if step >= target:
            expected.append(step)
            target += LEARN_CFG.eval_every
    assert expected == [5120, 10240, 15104, 20224, 25088]
    for h in histories:
        assert [s for s, _, _ in h.evaluations] == [*expected, last * batch]
        assert h.selected_step in [*expected, last * batch] and h.held_out_mean is not None
        assert all(8 <= mean <= 500 and std >= 0 for _, mean, std in h.evaluations)
        assert h.solved_step is None  # no threshold


def test_train_seeds_gives_each_agent_its_own_episodes(trained) -> None:
    """Each agent's episodes come from its own N copies: their lengths add up to its steps
    (30,000 // 256 * 256) less the unfinished episodes (under 500 steps in each copy)."""
    _, histories = trained
    per_agent = LEARN_CFG.total_steps // LEARN_CFG.batch_size * LEARN_CFG.batch_size
    for h in histories:
        steps = [s for s, _, _ in h.episodes]
        assert steps == sorted(steps) and 0 < steps[0] and steps[-1] <= per_agent
        assert all(ret == length and 1 <= length <= 500 for _, ret, length in h.episodes)
        played = sum(length for _, _, length in h.episodes)
        assert per_agent - 500 * LEARN_CFG.num_envs < played <= per_agent


def test_train_seeds_agents_differ_and_are_trained(trained) -> None:
    agents, _ = trained
    states = [a.net.state_dict() for a in agents]
    for i in range(len(agents)):
        seed_everything(SEEDS[i])  # the initial network, as train(seed=...) builds it
        initial = ActorCritic(OBS_DIM, n_actions=2, hidden=LEARN_CFG.hidden).state_dict()
        assert set(initial) == set(states[i])
        assert any(not torch.equal(initial[n], states[i][n]) for n in initial)
        for j in range(i + 1, len(agents)):
            assert all(not torch.equal(states[i][n], states[j][n]) for n in states[i])


def test_train_seeds_learns_cartpole(trained) -> None:
    """The training-episode returns of every agent rise far above the random policy's
    (about 22). Measured (torch 2.13, CPU): the last 20 episodes average 85, 132 and 192
    for seeds 0, 1, 2, from 16, 22 and 26 in the first 20 (a separate ``ppo.train`` of
    seed 0 gives 84 as well: 30,000 steps are not enough for every seed to master it)."""
    _, histories = trained
    first = [h.returns()[:20].mean() for h in histories]
    last = [h.returns()[-20:].mean() for h in histories]
    assert all(r >= 60 for r in last), last
    assert all(b >= 2.5 * a for a, b in zip(first, last, strict=True)), (first, last)
    assert np.mean(last) >= 100, last
    # the greedy policies too: a random one balances about 9 steps
    assert all(max(m for _, m, _ in h.evaluations) >= 100 for h in histories)


SMALL_CFG = ppo.PPOConfig(total_steps=2048, eval_every=1024, eval_episodes=2, device="cpu")


def test_train_seeds_is_deterministic() -> None:
    runs = [
        ppo.train_seeds(
            TorchCartPole(2 * SMALL_CFG.num_envs),
            SMALL_CFG,
            seeds=[3, 5],
            eval_env="CartPole-v1",
            progress=False,
        )
        for _ in range(2)
    ]
    (agents1, hist1), (agents2, hist2) = runs
    for h1, h2 in zip(hist1, hist2, strict=True):
        assert h1.episodes and h1.episodes == h2.episodes
        assert h1.evaluations == h2.evaluations and len(h1.evaluations) == 2
        for name in ppo.STAT_NAMES:
            assert getattr(h1, name) == getattr(h2, name)
    for a1, a2 in zip(agents1, agents2, strict=True):
        s1, s2 = a1.net.state_dict(), a2.net.state_dict()
        assert all(torch.equal(s1[n], s2[n]) for n in s1)
    assert hist1[0].policy_loss != hist1[1].policy_loss  # two seeds, two runs


def test_train_seeds_takes_an_env_id() -> None:
    """An env id: gymnasium's copies in SAME_STEP mode, evaluated on the same id."""
    agents, histories = ppo.train_seeds("CartPole-v1", SMALL_CFG, seeds=[0, 7], progress=False)
    assert len(agents) == len(histories) == 2
    for h in histories:
        assert [s for s, _, _ in h.evaluations] == [1024, 2048]
        assert len(h.policy_loss) == 8 and h.episodes


def test_train_seeds_continuous_actions() -> None:
    """Pendulum (Gaussian policies): each agent learns its own log-std, and acts within the
    action bounds."""
    cfg = ppo.PPOConfig.for_env(
        "Pendulum-v1", total_steps=4096, n_steps=64, eval_every=2048, eval_episodes=1, device="cpu"
    )
    agents, histories = ppo.train_seeds("Pendulum-v1", cfg, seeds=[0, 1], progress=False)
    log_stds = [a.net.log_std.detach() for a in agents]
    assert all(not torch.allclose(s, torch.tensor([cfg.log_std_init])) for s in log_stds)
    assert not torch.equal(log_stds[0], log_stds[1])
    for agent, h in zip(agents, histories, strict=True):
        assert [s for s, _, _ in h.evaluations] == [2048, 4096]
        assert len(h.policy_loss) == 4096 // cfg.batch_size
        obs = torch.randn(64, 3, generator=torch.Generator().manual_seed(0)) * 5
        actions = agent.act(obs)
        assert actions.shape == (64, 1) and bool((actions.abs() <= 2.0).all())


def test_train_seeds_stops_once_every_agent_is_solved() -> None:
    """A threshold every evaluation reaches: all agents solve at the first evaluation, and
    training stops there instead of running all 16 updates."""
    cfg = ppo.PPOConfig(
        total_steps=4096, eval_every=512, eval_episodes=1, solve_threshold=0.0, device="cpu"
    )
    _, histories = ppo.train_seeds(
        TorchCartPole(2 * cfg.num_envs), cfg, seeds=[0, 1], eval_env="CartPole-v1", progress=False
    )
    for h in histories:
        assert h.solved_step == 512 and h.solved_time is not None
        assert [s for s, _ in h.policy_loss] == [256, 512]


def test_train_seeds_rejects_the_wrong_number_of_copies() -> None:
    with pytest.raises(ValueError, match=r"has 10 copies.*2 seeds.*num_envs=8.*need 16"):
        ppo.train_seeds(TorchCartPole(10), SMALL_CFG, seeds=[0, 1], progress=False)


def test_train_seeds_rejects_a_next_step_env() -> None:
    env = gym.make_vec("CartPole-v1", 2 * 8, vectorization_mode="vector_entry_point")
    assert env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    with pytest.raises(ValueError, match="SAME_STEP"):
        ppo.train_seeds(env, SMALL_CFG, seeds=[0, 1], progress=False)


def test_train_seeds_rejects_target_kl_it_cannot_honour() -> None:
    config = dataclasses.replace(SMALL_CFG, target_kl=0.01)
    with pytest.raises(ValueError, match="target_kl"):
        ppo.train_seeds(TorchCartPole(16), config, seeds=[0, 1], progress=False)


@pytest.mark.parametrize("seeds", [[1, 1], [0, 2, 0], []], ids=["pair", "triple", "empty"])
def test_train_seeds_rejects_duplicate_or_no_seeds(seeds: list[int]) -> None:
    with pytest.raises(ValueError, match="seeds must be distinct and at least one"):
        ppo.train_seeds(TorchCartPole(16), SMALL_CFG, seeds=seeds, progress=False)


# ---------------------------------------------------------------------------
# TabularMDP.from_successors: a coalesced sparse P built directly


def _dense_by_loops(next_states: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    S, A, K_ = next_states.shape
    P = torch.zeros(S, A, S, dtype=torch.float64)
    for s in range(S):
        for a in range(A):
            for j in range(K_):
                P[s, a, next_states[s, a, j]] += probs[s, a, j]
    return P


def _random_probs(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    w = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    w = w + 0.1
    return w / w.sum(-1, keepdim=True)


def _assert_coalesced(mdp: TabularMDP) -> None:
    """Indices strictly increasing in (s, a, s'): sorted, no repeats."""
    P = mdp.P
    assert P.is_sparse and P.is_coalesced()
    S, A = mdp.n_states, mdp.n_actions
    i = P.indices()
    key = (i[0] * A + i[1]) * S + i[2]
    assert bool((key[1:] > key[:-1]).all())


def test_from_successors_sums_repeated_successors() -> None:
    S, A, K_ = 6, 2, 3
    next_states = torch.randint(0, S, (S, A, K_), generator=torch.Generator().manual_seed(0))
    next_states[0, 0] = torch.tensor([3, 1, 3])
    next_states[2, 1] = torch.tensor([5, 5, 5])
    next_states[4, 0] = torch.tensor([2, 0, 1])
    probs = _random_probs((S, A, K_), 1)
    R = torch.zeros(S, A, dtype=torch.float64)
    mdp = TabularMDP.from_successors(next_states, probs, R, 0.9)
    expected = _dense_by_loops(next_states, probs)
    torch.testing.assert_close(mdp.P.to_dense(), expected, rtol=0, atol=1e-15)
    assert mdp.P.to_dense()[0, 0, 3] == probs[0, 0, 0] + probs[0, 0, 2]
    assert mdp.P.to_dense()[0, 0, 1] == probs[0, 0, 1]
    torch.testing.assert_close(mdp.P.to_dense()[2, 1, 5], torch.tensor(1.0, dtype=torch.float64))
    _assert_coalesced(mdp)
    assert mdp.P.values().numel() == int((expected > 0).sum())  # one entry per successor


def test_from_successors_without_repeats() -> None:
    """Distinct but unsorted successors in every row: one entry each, sorted."""
    S, A, K_ = 7, 3, 4
    g = torch.Generator().manual_seed(2)
    next_states = torch.rand(S, A, S, generator=g).argsort(-1)[..., :K_]
    assert not bool((next_states[..., 1:] > next_states[..., :-1]).all())  # unsorted input
    probs = _random_probs((S, A, K_), 3)
    R = torch.randn(S, A, dtype=torch.float64, generator=g)
    mdp = TabularMDP.from_successors(next_states, probs, R, 0.5)
    torch.testing.assert_close(
        mdp.P.to_dense(), _dense_by_loops(next_states, probs), rtol=0, atol=0
    )
    _assert_coalesced(mdp)
    assert mdp.P.values().numel() == S * A * K_


def _random_successors(
    S: int, A: int, K_: int, repeats: bool, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A random MDP in successor lists whose state 0 is terminal (all K successors 0:
    repeats that must add up to exactly 1 for it to be absorbing)."""
    g = torch.Generator().manual_seed(seed)
    if repeats:
        next_states = torch.randint(0, S, (S, A, K_), generator=g)
    else:
        next_states = torch.rand(S, A, S, generator=g).argsort(-1)[..., :K_]
    probs = _random_probs((S, A, K_), seed + 1)
    R = torch.randn(S, A, generator=g, dtype=torch.float64)
    next_states[0] = 0
    R[0] = 0.0
    terminal = torch.zeros(S, dtype=torch.bool)
    terminal[0] = True
    return next_states, probs, R, terminal


@pytest.mark.parametrize("repeats", [True, False], ids=["repeats", "no-repeats"])
def test_from_successors_agrees_with_the_dense_mdp(repeats: bool) -> None:
    S, A, K_ = 200, 4, 5
    next_states, probs, R, terminal = _random_successors(S, A, K_, repeats, seed=4)
    sorted_rows = next_states.sort(-1).values
    has_repeat = (sorted_rows[..., 1:] == sorted_rows[..., :-1]).any(-1)
    assert int(has_repeat[1:].sum()) > (10 if repeats else -1)
    assert repeats or not bool(has_repeat[1:].any())
    sparse = TabularMDP.from_successors(next_states, probs, R, 0.9, terminal)
    dense = TabularMDP(_dense_by_loops(next_states, probs), R, 0.9, terminal)
    assert sparse.is_sparse and not dense.is_sparse
    _assert_coalesced(sparse)
    torch.testing.assert_close(sparse.P.to_dense(), dense.P, rtol=0, atol=1e-15)
    vs, vd = dp.value_iteration(sparse, 1e-12), dp.value_iteration(dense, 1e-12)
    torch.testing.assert_close(vs.V, vd.V, rtol=0, atol=1e-10)
    assert torch.equal(vs.policy, vd.policy)
    assert vs.V[0] == 0  # terminal


def test_from_successors_csr_uses_int32_indices_and_q_values_match() -> None:
    S, A, K_ = 50, 3, 4
    next_states, probs, R, terminal = _random_successors(S, A, K_, True, seed=5)
    mdp = TabularMDP.from_successors(next_states, probs, R, 0.8, terminal)
    P2 = mdp._P2
    assert P2.layout == torch.sparse_csr and tuple(P2.shape) == (S * A, S)
    assert P2.crow_indices().dtype == torch.int32 and P2.col_indices().dtype == torch.int32
    dense = _dense_by_loops(next_states, probs)
    torch.testing.assert_close(P2.to_dense(), dense.view(S * A, S), rtol=0, atol=1e-15)
    V = torch.randn(S, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    expected_next = torch.einsum("sat,t->sa", dense, V)
    torch.testing.assert_close(mdp.expected_next_values(V), expected_next, rtol=0, atol=1e-12)
    torch.testing.assert_close(mdp.q_values(V), R + 0.8 * expected_next, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------
# steps_per_second


class _CountingEnv(gym.Wrapper):
    """Counts the steps it is given, and checks each action is a valid int."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.n_steps = 0

    def step(self, action):
        assert isinstance(action, int) and self.action_space.contains(action)
        self.n_steps += 1
        return super().step(action)


class _CountingVectorEnv(gym.vector.VectorWrapper):
    def __init__(self, env: gym.vector.VectorEnv) -> None:
        super().__init__(env)
        self.n_steps = 0

    def step(self, actions):
        assert np.asarray(actions).shape == (self.num_envs,)
        self.n_steps += 1
        return super().step(actions)


class _CountingTorchCartPole(TorchCartPole):
    n_steps = 0

    def step(self, actions):
        assert isinstance(actions, torch.Tensor) and actions.device == self.device
        self.n_steps += 1
        return super().step(actions)


ENV_MAKERS = {
    "single": (lambda: _CountingEnv(gym.make("CartPole-v1")), 1),
    "gymnasium-vector": (
        lambda: _CountingVectorEnv(gym.make_vec("CartPole-v1", 3, vectorization_mode="sync")),
        3,
    ),
    "torch": (lambda: _CountingTorchCartPole(5), 5),
}


@pytest.mark.parametrize("kind", list(ENV_MAKERS))
def test_steps_per_second_is_a_positive_rate(kind: str) -> None:
    make, _ = ENV_MAKERS[kind]
    env = make()
    rate = steps_per_second(env, n_steps=60, repeats=2, seed=0)
    assert isinstance(rate, float) and math.isfinite(rate) and rate > 0
    assert env.n_steps == 60 * 2  # every timed step reached the env (the single env resets)


@pytest.mark.parametrize("kind", list(ENV_MAKERS))
def test_steps_per_second_counts_every_copy(kind: str, monkeypatch) -> None:
    """With a clock that advances 0.5 s per reading, each timing lasts 0.5 s: the rate is
    n_steps * copies / 0.5 exactly."""
    make, copies = ENV_MAKERS[kind]
    env = make()
    ticks = iter(np.arange(0.0, 1000.0, 0.5))
    monkeypatch.setattr(time, "perf_counter", lambda: float(next(ticks)))
    assert steps_per_second(env, n_steps=40, repeats=3, seed=1) == 40 * copies / 0.5


@pytest.mark.parametrize(
    "make",
    [lambda: gym.make("Pendulum-v1"), lambda: gym.make_vec("Pendulum-v1", 2)],
    ids=["single", "vector"],
)
def test_steps_per_second_rejects_continuous_actions(make) -> None:
    with pytest.raises(ValueError, match="Discrete"):
        steps_per_second(make(), n_steps=5, repeats=1)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [({"n_steps": 0}, "n_steps"), ({"repeats": 0}, "repeats"), ({"n_steps": 2.5}, "n_steps")],
)
def test_steps_per_second_rejects_bad_counts(kwargs: dict, words: str) -> None:
    with pytest.raises(ValueError, match=f"{words} must be a positive integer"):
        steps_per_second(TorchCartPole(2), **kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_steps_per_second_and_agent_stack() -> None:
    assert steps_per_second(TorchCartPole(64, device="cuda"), n_steps=20, repeats=2) > 0
    nets = _nets()
    obs = _obs()
    with torch.no_grad():
        cpu_values = ppo.AgentStack(nets, N).value(obs)
        cuda_values = ppo.AgentStack([n.to("cuda") for n in nets], N).value(obs.cuda())
    torch.testing.assert_close(cuda_values.cpu(), cpu_values, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------
# Transitions.episode_copies


EPISODE_ENVS = {
    "torch": lambda: TorchCartPole(4),
    "gymnasium-next-step": lambda: gym.make_vec(
        "CartPole-v1", 4, vectorization_mode="vector_entry_point"
    ),
    "gymnasium-same-step": lambda: gym.make_vec(
        "CartPole-v1",
        4,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
    ),
}


@pytest.mark.parametrize("kind", list(EPISODE_ENVS))
def test_episode_copies_name_the_copy_that_finished_each_episode(kind: str) -> None:
    env = EPISODE_ENVS[kind]()
    steps = Transitions(env, torch.device("cpu"))
    steps.reset(seed=0)
    episodes, copies, length = walk_counting_episodes(steps, 300, n_actions=2)
    assert len(steps.episode_copies) == len(steps.episodes) == len(episodes) > 20
    assert steps.episode_copies == copies
    assert steps.episodes == episodes
    assert set(copies) == {0, 1, 2, 3}
    # a copy's episodes and its unfinished one fill its steps (NEXT_STEP: less the resets)
    for c in range(4):
        played = sum(n for (_, _, n), cc in zip(steps.episodes, copies, strict=True) if cc == c)
        assert played + length[c] <= 300
        if kind != "gymnasium-next-step":
            assert played + length[c] == 300
