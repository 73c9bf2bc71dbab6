"""PPO: the clipped objective against hand values, the ratio against the behaviour policy,
advantages fixed during the epochs, errors, save/load, and learning (CartPole)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rlcourse
from rlcourse import ppo
from rlcourse.buffers import RolloutBuffer
from rlcourse.nets import ActorCritic, FlatParameters


def test_clipped_surrogate_hand_values() -> None:
    """eps = 0.2. For A = +1: min(r, clip(r)) -> r=0.5: 0.5, r=1: 1, r=1.5: 1.2 (clipped).
    For A = -1: min(-r, -clip(r)) -> r=0.5: -0.8 (clipped), r=1: -1, r=1.5: -1.5."""
    ratio = torch.tensor([0.5, 1.0, 1.5, 0.5, 1.0, 1.5])
    adv = torch.tensor([1.0, 1.0, 1.0, -1.0, -1.0, -1.0])
    got = ppo.clipped_surrogate(ratio, adv, 0.2)
    assert torch.allclose(got, torch.tensor([0.5, 1.0, 1.2, -0.8, -1.0, -1.5]))


def test_clipped_surrogate_gradient_vanishes_outside_the_trust_region() -> None:
    """Past 1 + eps with A > 0 (or below 1 - eps with A < 0) the objective is flat in r."""
    ratio = torch.tensor([1.5, 0.5, 1.1, 0.9], requires_grad=True)
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    ppo.clipped_surrogate(ratio, adv, 0.2).sum().backward()
    assert torch.allclose(ratio.grad, torch.tensor([0.0, 0.0, 1.0, -1.0]))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("gamma", 1.1, "gamma must be in"),
        ("lam", -0.1, "lam must be in"),
        ("clip_coef", 0.0, "clip_coef must be in"),
        ("n_steps", 0, "n_steps must be a positive integer"),
        ("lr", -1.0, "lr must be positive"),
        ("target_kl", 0.0, "target_kl must be positive or None"),
    ],
)
def test_config_rejects_bad_values(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ppo.PPOConfig(**{field: value})


def test_presets() -> None:
    assert ppo.PPOConfig.for_env("CartPole-v1") == ppo.PPOConfig()
    pendulum = ppo.PPOConfig.for_env("Pendulum-v1")
    assert pendulum.gamma == 0.95 and pendulum.total_steps == 300_000 and not pendulum.early_stop
    assert ppo.PPOConfig.for_env("Pendulum-v1", epochs=3).epochs == 3


def _filled_buffer(net: ActorCritic, T: int = 16, N: int = 4, seed: int = 0) -> RolloutBuffer:
    """A rollout of random observations with actions and log-probs from ``net`` itself."""
    g = torch.Generator().manual_seed(seed)
    buf = RolloutBuffer(T, N, (net.obs_dim,))
    for _ in range(T):
        obs = torch.randn(N, net.obs_dim, generator=g)
        with torch.no_grad():
            dist = net.distribution(obs)
            action = dist.sample()
            buf.add(
                obs,
                action,
                net.log_prob(dist, action),
                net.value(obs),
                torch.randn(N, generator=g),
                torch.randn(N, net.obs_dim, generator=g),
                torch.zeros(N, dtype=torch.bool),
                torch.zeros(N, dtype=torch.bool),
                torch.ones(N, dtype=torch.bool),
            )
    buf.compute_advantages(torch.zeros(T, N), 0.9, 0.9)
    return buf


def _epochs(
    net: ActorCritic,
    params: FlatParameters,
    optimizer: torch.optim.Optimizer,
    buf: RolloutBuffer,
    cfg: ppo.PPOConfig,
) -> dict[str, float]:
    """PPO's epochs on ``buf`` with a fixed minibatch order."""
    return ppo._optimise(net, params, optimizer, buf, cfg, torch.Generator().manual_seed(0))


def test_ratio_is_taken_against_the_behaviour_policy() -> None:
    """With a learning rate of 0 the policy never moves, so the ratio pi/pi_old stays exactly 1
    in every epoch: KL 0, nothing clipped. With a real learning rate it moves after the first
    minibatch, and the ratio, measured against the stored behaviour log-probs, shows it."""
    torch.manual_seed(0)
    net = ActorCritic(3, n_actions=2)
    buf = _filled_buffer(net)
    cfg = ppo.PPOConfig(epochs=4, minibatch_size=16)
    params = FlatParameters(net.parameters())
    frozen = _epochs(net, params, torch.optim.SGD([params.data], lr=0.0), buf, cfg)
    assert frozen["approx_kl"] == pytest.approx(0.0, abs=1e-7)
    assert frozen["clip_fraction"] == 0.0
    moving = _epochs(net, params, torch.optim.Adam([params.data], lr=0.05), buf, cfg)
    assert moving["approx_kl"] > 1e-4


def _shift_by_hand(net: ActorCritic, buf: RolloutBuffer, clip_coef: float) -> dict[str, float]:
    """KL(pi_old || pi) (k3), clip fraction and ratio range of ``net`` on the whole rollout,
    computed here from the stored behaviour log-probabilities."""
    with torch.no_grad():
        obs, actions = buf.obs.flatten(0, 1), buf.actions.flatten(0, 1)
        log_ratio = net.log_prob(net.distribution(obs), actions) - buf.log_probs.flatten()
    ratio = log_ratio.exp()
    return {
        "approx_kl": float(((ratio - 1) - log_ratio).mean()),
        "clip_fraction": float(((ratio - 1).abs() > clip_coef).float().mean()),
        "min_ratio": float(ratio.min()),
        "max_ratio": float(ratio.max()),
    }


def test_logged_kl_is_that_of_the_updated_policy() -> None:
    """One epoch of one minibatch: a KL measured before the (only) gradient step is exactly 0,
    whatever the step did. The logged KL, clip fraction and ratio range are those of the
    policy the update ended with, against the behaviour policy, on the whole rollout."""
    torch.manual_seed(2)
    net = ActorCritic(3, n_actions=2)
    buf = _filled_buffer(net)
    cfg = ppo.PPOConfig(epochs=1, minibatch_size=buf.n_steps * buf.num_envs)
    params = FlatParameters(net.parameters())
    before = params.data.clone()
    stats = _epochs(net, params, torch.optim.Adam([params.data], lr=0.05), buf, cfg)
    assert not torch.equal(params.data, before)  # the policy moved
    by_hand = _shift_by_hand(net, buf, cfg.clip_coef)
    assert by_hand["approx_kl"] > 1e-4
    for name, value in by_hand.items():
        assert stats[name] == pytest.approx(value, rel=1e-5, abs=1e-7), name
    assert stats["min_ratio"] < 1 < stats["max_ratio"]
    assert set(stats) == set(ppo.STAT_NAMES)


def _adam_steps(optimizer: torch.optim.Optimizer) -> int:
    return int(next(iter(optimizer.state.values()))["step"])


def test_target_kl_stops_the_epochs_once_the_updated_policy_exceeds_it() -> None:
    """With one minibatch per epoch, each epoch is one Adam step. Without target_kl all 5 run;
    with a target the first epoch's step already exceeds, the epochs stop after it, and
    the logged KL is that of the policy after that one step."""
    torch.manual_seed(3)
    full = ActorCritic(3, n_actions=2)
    buf = _filled_buffer(full)
    stopped = ActorCritic(3, n_actions=2)
    stopped.load_state_dict(full.state_dict())
    results = []
    for net, target_kl in ((full, None), (stopped, 1e-6)):
        cfg = ppo.PPOConfig(
            epochs=5, minibatch_size=buf.n_steps * buf.num_envs, target_kl=target_kl
        )
        params = FlatParameters(net.parameters())
        optimizer = torch.optim.Adam([params.data], lr=0.01)
        stats = _epochs(net, params, optimizer, buf, cfg)
        results.append((_adam_steps(optimizer), stats))
        assert stats["approx_kl"] == pytest.approx(
            _shift_by_hand(net, buf, cfg.clip_coef)["approx_kl"], rel=1e-5
        )
    (steps_full, stats_full), (steps_stopped, stats_stopped) = results
    assert steps_full == 5 and steps_stopped == 1
    assert 1e-6 < stats_stopped["approx_kl"] < stats_full["approx_kl"]


def test_advantages_are_fixed_during_the_epochs() -> None:
    """The epochs must not recompute advantages with the new value function."""
    torch.manual_seed(1)
    net = ActorCritic(3, n_actions=2)
    buf = _filled_buffer(net)
    before = buf.advantages.clone(), buf.returns.clone(), buf.log_probs.clone()
    params = FlatParameters(net.parameters())
    _epochs(net, params, torch.optim.Adam([params.data], lr=0.01), buf, ppo.PPOConfig(epochs=3))
    for a, b in zip(before, (buf.advantages, buf.returns, buf.log_probs), strict=True):
        assert torch.equal(a, b)


def test_continuous_actions_stay_within_bounds_and_save_load(tmp_path) -> None:
    cfg = ppo.PPOConfig.for_env("Pendulum-v1", total_steps=2048, n_steps=128, eval_every=0)
    agent, history = ppo.train("Pendulum-v1", cfg, seed=0, progress=False)
    obs = torch.randn(100, 3) * 5
    actions = agent.act(obs)
    assert actions.shape == (100, 1)
    assert (actions >= -2.0).all() and (actions <= 2.0).all()
    assert len(history.approx_kl) == 2  # 2048 steps = 2 updates of 8 envs x 128 steps
    path = tmp_path / "pendulum.pt"
    agent.save(path)
    loaded = ppo.PPOAgent.load(path)
    assert torch.allclose(
        torch.as_tensor(loaded.net.deterministic_action(obs)), agent.net.deterministic_action(obs)
    )
    torch.save({"algorithm": "dqn"}, tmp_path / "dqn.pt")
    with pytest.raises(ValueError, match="not a PPO checkpoint"):
        ppo.PPOAgent.load(tmp_path / "dqn.pt")


def test_unsupported_spaces_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="flat Box observations"):
        ppo.train("FrozenLake-v1", ppo.PPOConfig(total_steps=256), progress=False)


def test_training_is_seeded() -> None:
    cfg = ppo.PPOConfig(total_steps=2048, eval_every=0)
    (_, h1), (_, h2) = (ppo.train("CartPole-v1", cfg, seed=3, progress=False) for _ in range(2))
    assert h1.episodes == h2.episodes and h1.approx_kl == h2.approx_kl


def test_ppo_solves_cartpole() -> None:
    """The defaults, seed 0: a confirmed solve, and the agent handed back is solved (mean >=
    475 over 100 held-out episodes), also on 100 episodes of other seeds."""
    agent, history = ppo.train("CartPole-v1", seed=0, progress=False)
    assert history.solved_step is not None, history.evaluations
    assert history.solved and history.held_out_mean >= 475, history.selection
    assert rlcourse.evaluate(agent, "CartPole-v1", n_episodes=100, seed=900_000).mean() >= 475
    kl = np.array([v for _, v in history.approx_kl])
    assert (kl >= 0).all() and kl.mean() < 0.1  # small policy steps, as PPO intends
