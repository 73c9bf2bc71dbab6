"""Proximal Policy Optimization (Schulman et al., 2017), clipped-surrogate version.

Each update collects ``n_steps`` steps from ``num_envs`` environments with the
current policy (the *behaviour* policy), computes advantages with GAE, then takes
several epochs of minibatch gradient steps on

    L = -E[min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t)] + c_v L_V - c_H H[pi],
    r_t = pi_theta(a_t|s_t) / pi_old(a_t|s_t),

where ``pi_old``'s log-probabilities and the advantages were computed once, before
the epochs, and stay fixed while the policy changes. Categorical policies for
discrete actions, Gaussian ones (state-independent log-std, actions clipped to the
bounds when stepping the env) for continuous actions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from rlcourse.agent import (
    EvaluationSchedule,
    PolicyAgent,
    TrainingConfig,
    TrainingHistory,
    action_bound,
    actor_critic_setup,
)
from rlcourse.buffers import RolloutBuffer, collect_rollout
from rlcourse.envs.vector import Transitions
from rlcourse.nets import ActorCritic
from rlcourse.utils import torch_threads


@dataclass(frozen=True)
class PPOConfig(TrainingConfig):
    """Hyperparameters of PPO; the defaults solve CartPole-v1 (they are the RL Zoo's tuned
    CartPole settings). ``PPOConfig.for_env("Pendulum-v1")`` gives the Pendulum settings:
    gamma 0.9, lambda 0.95, rollouts of 8 x 512 steps, 10 epochs of minibatches of 256,
    initial log-std -0.5."""

    total_steps: int = 100_000  #: environment steps in all
    num_envs: int = 8  #: environments stepped at once
    n_steps: int = 32  #: steps per environment in each rollout
    epochs: int = 20  #: passes over each rollout
    minibatch_size: int = 256  #: samples per gradient step
    lr: float = 1e-3  #: Adam learning rate
    anneal_lr: bool = True  #: decay the learning rate linearly to 0
    gamma: float = 0.98  #: discount
    lam: float = 0.8  #: GAE lambda
    clip_coef: float = 0.2  #: epsilon of the clipped surrogate
    clip_value: bool = False  #: clip the value update as the policy's
    ent_coef: float = 0.0  #: entropy bonus weight
    vf_coef: float = 0.5  #: value loss weight
    max_grad_norm: float = 0.5  #: gradient-norm clipping
    norm_adv: bool = True  #: normalise advantages in each minibatch
    target_kl: float | None = None  #: stop the epochs early above this approximate KL
    hidden: tuple[int, ...] = (64, 64)  #: hidden layers of actor and critic
    log_std_init: float = 0.0  #: initial log standard deviation (continuous actions)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in (
            "total_steps",
            "num_envs",
            "n_steps",
            "epochs",
            "minibatch_size",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"PPOConfig.{name} must be a positive integer, got {value!r}")
        for name in ("gamma", "lam"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"PPOConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.clip_coef < 1.0:
            raise ValueError(f"PPOConfig.clip_coef must be in (0, 1), got {self.clip_coef}")
        if not self.lr > 0:
            raise ValueError(f"PPOConfig.lr must be positive, got {self.lr}")

    @property
    def batch_size(self) -> int:
        """Steps per rollout, over all environments."""
        return self.n_steps * self.num_envs

    @classmethod
    def for_env(cls, env_id: str, **changes: Any) -> PPOConfig:
        """The tuned settings for ``env_id`` (CartPole-v1: the defaults; Pendulum-v1), with
        ``changes`` applied on top."""
        presets: dict[str, dict[str, Any]] = {
            "Pendulum-v1": {
                "total_steps": 200_000,
                "num_envs": 8,
                "n_steps": 512,
                "epochs": 10,
                "minibatch_size": 256,
                "lr": 1e-3,
                "gamma": 0.9,
                "lam": 0.95,
                "ent_coef": 0.0,
                "log_std_init": -0.5,
                "eval_every": 20_000,
            },
        }
        return dataclasses.replace(cls(**presets.get(env_id, {})), **changes)


@dataclass
class PPOHistory(TrainingHistory):
    """Training record of PPO (see ``TrainingHistory``), one entry per update:
    ``(step, value)`` of the policy loss, value loss, entropy, approximate KL between the
    behaviour policy and the updated one, and the fraction of samples whose ratio was
    clipped."""

    policy_loss: list[tuple[int, float]] = field(default_factory=list)
    value_loss: list[tuple[int, float]] = field(default_factory=list)
    entropy: list[tuple[int, float]] = field(default_factory=list)
    approx_kl: list[tuple[int, float]] = field(default_factory=list)
    clip_fraction: list[tuple[int, float]] = field(default_factory=list)


class PPOAgent(PolicyAgent):
    """The policy trained by :func:`train`: deterministic actions (see ``PolicyAgent``)."""

    algorithm = "ppo"
    network_class = ActorCritic


def clipped_surrogate(ratio: Tensor, advantages: Tensor, clip_coef: float) -> Tensor:
    """``min(r A, clip(r, 1 - eps, 1 + eps) A)`` elementwise: the objective PPO maximises."""
    return torch.min(
        ratio * advantages, torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef) * advantages
    )


def train(
    env: Any,
    config: PPOConfig | None = None,
    seed: int = 0,
    *,
    eval_env: str | None = None,
    callback: Callable[[int, PPOHistory, PPOAgent], bool | None] | None = None,
    progress: bool = True,
) -> tuple[PPOAgent, PPOHistory]:
    """Train PPO on ``env`` (an env id, or a vector env); return ``(agent, history)``.

    ``config`` defaults to ``PPOConfig.for_env(env)``. Evaluation, early stop and callback
    work as in :func:`rlcourse.dqn.train`.
    """
    cfg = config or PPOConfig.for_env(env if isinstance(env, str) else "")
    with torch_threads(cfg.num_threads):
        return _train(env, cfg, seed, eval_env, callback, progress)


def _train(
    env: Any, cfg: PPOConfig, seed: int, eval_env: str | None, callback: Any, progress: bool
) -> tuple[PPOAgent, PPOHistory]:
    device, envs, net, low, high, eval_env = actor_critic_setup(env, cfg, seed, eval_env, "PPO")
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, eps=1e-5, fused=True)
    agent = PPOAgent(net, device, low, high)
    continuous = net.continuous
    action_shape = (net.action_dim,) if continuous else ()
    buffer = RolloutBuffer(
        cfg.n_steps,
        cfg.num_envs,
        (net.obs_dim,),
        action_shape,
        torch.float32 if continuous else torch.long,
        device,
    )
    history = PPOHistory()
    steps = Transitions(envs, device)
    obs = steps.reset(seed=seed)
    shuffle = torch.Generator(device).manual_seed(seed + 1)
    low_t, high_t = action_bound(low, device), action_bound(high, device)
    n_updates = max(1, cfg.total_steps // cfg.batch_size)
    schedule = EvaluationSchedule.for_training(eval_env, cfg, seed, history)
    bar = tqdm(total=n_updates * cfg.batch_size, disable=not progress, unit="step")

    for update in range(n_updates):
        if cfg.anneal_lr:  # linear decay to 0 over training
            optimizer.param_groups[0]["lr"] = cfg.lr * (1.0 - update / n_updates)
        # 1. rollout with the behaviour policy pi_old; 2. its advantages, once (GAE)
        obs = collect_rollout(buffer, net, steps, obs, low_t, high_t, cfg.gamma, cfg.lam)
        # 3. several epochs of minibatch steps on the clipped surrogate
        stats = _optimise(net, optimizer, buffer, cfg, shuffle)
        step = steps.env_steps
        for name, value in stats.items():
            getattr(history, name).append((step, value))
        bar.update(cfg.batch_size)
        if schedule.should_stop(step, agent, callback, bar):
            break
    bar.close()
    history.episodes = steps.episodes
    history.train_time = schedule.train_time()
    return agent, history


def _optimise(
    net: ActorCritic,
    optimizer: torch.optim.Optimizer,
    buffer: RolloutBuffer,
    cfg: PPOConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """The PPO epochs on one rollout; returns the means of the logged quantities."""
    names = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")
    sums = torch.zeros(len(names), device=buffer.obs.device)  # summed on the device: no syncs
    n = 0
    for _ in range(cfg.epochs):
        epoch_kl = []
        for mb in buffer.minibatches(cfg.minibatch_size, generator):
            dist = net.distribution(mb["obs"])
            new_log_prob = net.log_prob(dist, mb["actions"])
            log_ratio = new_log_prob - mb["log_probs"]  # against the behaviour policy, fixed
            ratio = log_ratio.exp()
            advantages = mb["advantages"]
            if cfg.norm_adv and advantages.numel() > 1:
                advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
            policy_loss = -clipped_surrogate(ratio, advantages, cfg.clip_coef).mean()
            value = net.value(mb["obs"])
            if cfg.clip_value:  # keep the new value within clip_coef of the old one
                clipped = mb["values"] + torch.clamp(
                    value - mb["values"], -cfg.clip_coef, cfg.clip_coef
                )
                value_loss = (
                    0.5
                    * torch.max((value - mb["returns"]) ** 2, (clipped - mb["returns"]) ** 2).mean()
                )
            else:
                value_loss = 0.5 * ((value - mb["returns"]) ** 2).mean()
            entropy = net.entropy(dist).mean()
            loss = policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
            optimizer.step()
            with torch.no_grad():
                approx_kl = ((ratio - 1) - log_ratio).mean()  # k3 estimator of KL(old || new)
                clip_fraction = ((ratio - 1).abs() > cfg.clip_coef).float().mean()
                sums += torch.stack([policy_loss, value_loss, entropy, approx_kl, clip_fraction])
            epoch_kl.append(approx_kl)
            n += 1
        if cfg.target_kl is not None and float(torch.stack(epoch_kl).mean()) > cfg.target_kl:
            break
    return dict(zip(names, (sums / max(n, 1)).tolist(), strict=True))


def config_dict(config: PPOConfig) -> dict[str, Any]:
    """The config as a plain dict (for printing and saving)."""
    return dataclasses.asdict(config)
