"""Policy-gradient methods: REINFORCE (Williams, 1992), with and without a learned
baseline, and synchronous advantage actor-critic, A2C (Mnih et al., 2016).

Notation of Sutton & Barto: the reward ``R_{t+1}`` follows the action ``A_t`` taken in
``S_t``; in the code's ``[T, N]`` arrays, ``rewards[t]`` holds ``R_{t+1}``, and the return
from step ``t`` on is ``G_t = sum_{k>=t} gamma^(k-t) R_{k+1}``.

The gradient of the discounted objective ``J(theta) = E[G_0]`` is (log-derivative trick)

    grad J(theta) = E[ sum_t gamma^t * grad log pi_theta(A_t|S_t) * (G_t - b(S_t)) ].

Both algorithms here follow the common practical estimator instead, the same sum
*without* ``gamma^t``: every step's action counts as much as the first one's, and
``gamma`` only shortens the horizon of ``G_t``. It is not the gradient of ``J`` (it is
biased with respect to it: Thomas, 2014; Nota & Thomas, 2020), but on tasks like
CartPole, where the goal is to do well at every step of a long episode, ``gamma^t``
would leave the late steps almost no weight (``0.99^300 < 0.05``). A baseline ``b`` that
depends only on the state leaves either expectation unchanged and can cut its variance
a lot; the usual choice is a learned state value ``V(s)``.

* **REINFORCE** plays complete episodes with the current policy, then takes one
  gradient step with ``G_t`` the Monte Carlo reward-to-go and ``b = 0`` or ``b = V(S_t)``
  (trained by regression on ``G_t``).
* **A2C** updates after every ``n_steps`` steps of ``num_envs`` environments, with the
  advantage ``G_{t:t+n} - V(S_t)`` of the n-step return bootstrapped from ``V``
  at the rollout's end (generalised advantage estimation with ``lam = 1``, or any
  ``lam``) and one loss for actor and critic, ``L = L_pi + c_V L_V - c_H H[pi]``
  (:func:`a2c_loss`).

Categorical policies for discrete actions, Gaussian ones (state-independent log-std,
actions clipped to the bounds when stepping the env) for continuous actions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from rlcourse.agent import (
    EvaluationSchedule,
    PolicyAgent,
    TrainingConfig,
    TrainingHistory,
    action_bound,
    actor_critic_setup,
)
from rlcourse.buffers import RolloutBuffer, collect_rollout, discounted_reward_to_go
from rlcourse.envs.vector import Transitions
from rlcourse.nets import ActorCritic, FlatParameters
from rlcourse.utils import close_bar, torch_threads

#: REINFORCE cuts an episode that has not ended after this many steps (as a time limit)
MAX_EPISODE_STEPS = 10_000


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _validate(cfg: Any, positive: Iterable[str], unit: Iterable[str]) -> None:
    """The checks both configs share: positive integers, values in [0, 1], lr, layers."""
    name = type(cfg).__name__
    for attr in positive:
        value = getattr(cfg, attr)
        if not _is_int(value, 1):
            raise ValueError(f"{name}.{attr} must be a positive integer, got {value!r}")
    for attr in unit:
        if not 0.0 <= getattr(cfg, attr) <= 1.0:  # also rejects NaN
            raise ValueError(f"{name}.{attr} must be in [0, 1], got {getattr(cfg, attr)}")
    if not cfg.lr > 0:
        raise ValueError(f"{name}.lr must be positive, got {cfg.lr}")
    if cfg.max_grad_norm is not None and not cfg.max_grad_norm > 0:
        raise ValueError(f"{name}.max_grad_norm must be positive or None, got {cfg.max_grad_norm}")
    if not cfg.hidden or not all(_is_int(h, 1) for h in cfg.hidden):
        raise ValueError(f"{name}.hidden must list positive layer sizes, got {cfg.hidden}")


@dataclass(frozen=True)
class REINFORCEConfig(TrainingConfig):
    """Hyperparameters of REINFORCE; the defaults solve CartPole-v1.

    Each update plays one complete episode in each of the ``num_envs`` environments, so
    ``num_envs`` is also the number of episodes per gradient step. With ``baseline`` the
    policy and the value function have their own learning rates (``lr`` and ``value_lr``),
    as the two step sizes of REINFORCE with baseline in Sutton & Barto (section 13.4).
    Clipping the policy gradient and standardising ``G_t - b(S_t)`` keep the step size
    the same whatever the scale of the returns (up to ``(1 - 0.99^500) / 0.01 = 99.3`` on
    CartPole with ``gamma = 0.99``).

    Steps (``total_steps``, evaluations, ``history.episodes``) count the steps of the
    episodes learned from; ``history.simulated`` also counts the steps of copies stepped
    on while waiting for the batch's last episode to end.
    """

    total_steps: int = 100_000  #: steps of the episodes learned from, in all
    num_envs: int = 8  #: environments stepped at once = episodes per update
    lr: float = 5e-3  #: Adam learning rate of the policy
    value_lr: float = 1e-2  #: Adam learning rate of the baseline V(s)
    gamma: float = 0.99  #: discount
    baseline: bool = True  #: subtract a learned V(s_t) from G_t
    normalize_advantages: bool = True  #: standardise G_t - b(s_t) over each batch
    max_grad_norm: float | None = 1.0  #: clip the policy gradient's norm (None: never)
    hidden: tuple[int, ...] = (64, 64)  #: hidden layers of policy and value networks
    log_std_init: float = 0.0  #: initial log standard deviation (continuous actions)

    def __post_init__(self) -> None:
        super().__post_init__()
        _validate(self, ("total_steps", "num_envs"), ("gamma",))
        if not self.value_lr > 0:
            raise ValueError(f"REINFORCEConfig.value_lr must be positive, got {self.value_lr}")


@dataclass(frozen=True)
class A2CConfig(TrainingConfig):
    """Hyperparameters of A2C. With the defaults, ``train_a2c`` hands back a solved
    CartPole-v1 agent (mean >= 475 over 100 held-out episodes) for each of seeds 0-9
    (``benchmarks/cartpole.py``).

    Each update learns from ``n_steps`` steps of each of ``num_envs`` environments, with
    one gradient step. ``lam = 1`` gives A2C's n-step advantages; ``lam < 1`` is GAE.
    RMSprop, as in the paper (Mnih et al. 2016 used ``t_max = 5`` steps and sampled the
    learning rate of each run). Stable-Baselines3's A2C defaults, which the RL Zoo keeps
    for CartPole-v1 (with 8 environments and ``ent_coef = 0``), are 5 steps and a learning
    rate of 7e-4; the course's defaults are 8 steps and 2e-3. No entropy bonus by default
    (``ent_coef = 0``, as in that Zoo setting): the sampled policy explores by itself, and
    the defaults solve CartPole without one.
    """

    total_steps: int = 100_000  #: environment steps in all
    num_envs: int = 8  #: environments stepped at once
    n_steps: int = 8  #: steps per environment between updates
    lr: float = 2e-3  #: learning rate
    optimizer: str = "rmsprop"  #: "rmsprop" (as in the paper) or "adam"
    gamma: float = 0.99  #: discount
    lam: float = 1.0  #: GAE lambda (1: n-step returns)
    ent_coef: float = 0.0  #: entropy bonus weight c_H (0: no bonus)
    vf_coef: float = 0.5  #: value loss weight c_V
    max_grad_norm: float | None = 0.5  #: clip the norm of the whole gradient (None: never)
    normalize_advantages: bool = False  #: standardise the advantages over each batch
    hidden: tuple[int, ...] = (64, 64)  #: hidden layers of actor and critic
    log_std_init: float = 0.0  #: initial log standard deviation (continuous actions)

    def __post_init__(self) -> None:
        super().__post_init__()
        _validate(self, ("total_steps", "num_envs", "n_steps"), ("gamma", "lam"))
        if self.optimizer not in ("rmsprop", "adam"):
            raise ValueError(
                f"A2CConfig.optimizer must be 'rmsprop' or 'adam', got {self.optimizer!r}"
            )
        for name in ("ent_coef", "vf_coef"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"A2CConfig.{name} must be >= 0, got {getattr(self, name)}")

    @property
    def batch_size(self) -> int:
        """Steps per update, over all environments."""
        return self.n_steps * self.num_envs


@dataclass
class PGHistory(TrainingHistory):
    """Training record of REINFORCE and A2C (see ``TrainingHistory``), one entry per update:
    ``(step, value)`` of the policy loss, value loss (empty for REINFORCE without baseline),
    the policy's mean entropy, and ``grad_norm``, the norm of the gradient on the policy's
    parameters before clipping (the variance of the estimator shows in its spread).

    ``simulated``: ``(step, environment steps simulated so far)`` after each update. A2C
    learns from every step it simulates (both numbers are equal); REINFORCE also steps the
    copies whose episode has ended while it waits for the batch's last one, and learns
    only from the first episode of each copy."""

    policy_loss: list[tuple[int, float]] = field(default_factory=list)
    value_loss: list[tuple[int, float]] = field(default_factory=list)
    entropy: list[tuple[int, float]] = field(default_factory=list)
    grad_norm: list[tuple[int, float]] = field(default_factory=list)
    simulated: list[tuple[int, int]] = field(default_factory=list)

    def simulated_at(self, step: int) -> int:
        """The environment steps simulated by the update that reached ``step``."""
        for learned, simulated in self.simulated:
            if learned >= step:
                return simulated
        raise ValueError(
            f"no update reached step {step} (the last one reached "
            f"{self.simulated[-1][0] if self.simulated else 0})"
        )


class PGAgent(PolicyAgent):
    """A trained policy (see ``PolicyAgent``). Use :class:`REINFORCEAgent` or
    :class:`A2CAgent`."""

    network_class = ActorCritic


class REINFORCEAgent(PGAgent):
    """The policy trained by :func:`train_reinforce`."""

    algorithm = "reinforce"


class A2CAgent(PGAgent):
    """The policy trained by :func:`train_a2c`."""

    algorithm = "a2c"


# ---------------------------------------------------------------------------
# the losses


def masked_mean(x: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean of ``x`` over the entries where ``mask`` (bool, same shape) is True."""
    if mask is None:
        return x.mean()
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp(min=1.0)


def reinforce_loss(
    log_probs: Tensor,
    returns: Tensor,
    baselines: Tensor | None = None,
    *,
    mask: Tensor | None = None,
    normalize: bool = False,
) -> Tensor:
    """``-mean_t log pi(A_t|S_t) * (G_t - b(S_t))``: minimising it follows the practical
    policy-gradient estimator (without ``gamma^t``, see the module's docstring).

    ``log_probs`` are the log-probabilities of the actions taken (with gradient);
    ``returns`` the reward-to-go ``G_t`` of each step (not the whole episode's return);
    ``baselines`` ``b(S_t)`` or None (``b = 0``). All have the same shape (``[T]``,
    ``[T, N]``...). ``returns`` and ``baselines`` are constants: no gradient flows into
    them. ``mask`` (bool) selects the steps that count; ``normalize`` standardises
    ``G_t - b(S_t)`` over those steps. The mean over the steps, not their sum, only
    scales the batch's gradient (by one number per batch).
    """
    if log_probs.shape != returns.shape:
        raise ValueError(
            f"log_probs has shape {tuple(log_probs.shape)} but returns {tuple(returns.shape)}: "
            "one return per action taken"
        )
    weights = returns.detach() - (0.0 if baselines is None else baselines.detach())
    if normalize:
        m = torch.ones_like(weights, dtype=torch.bool) if mask is None else mask
        mean = masked_mean(weights, m)
        var = masked_mean((weights - mean) ** 2, m) * m.sum() / (m.sum() - 1).clamp(min=1)
        weights = (weights - mean) / (var.sqrt() + 1e-8)
    return -masked_mean(log_probs * weights, mask)


def reinforce_returns(
    rewards: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
    next_values: Tensor | None = None,
) -> Tensor:
    """The reward-to-go ``G_t`` of complete episodes (``[T, N]``, time first;
    ``rewards[t]`` holds ``R_{t+1}``).

    An episode cut by a time limit (``truncated``) has not really ended: given
    ``next_values`` (``V`` of the observation each step led to, the final one on a
    truncated step), the return there is bootstrapped, ``G_t = R_{t+1} + gamma V(S_{t+1})``.
    Without a value function the sum stops at the cut, a bias we accept (on CartPole the
    cut comes at 500 steps, when the policy is already as good as it gets).
    """
    if next_values is not None:  # bootstrap on truncation only, never on termination
        rewards = torch.where(truncated & ~terminated, rewards + gamma * next_values, rewards)
    return discounted_reward_to_go(rewards, terminated | truncated, gamma)


# ---------------------------------------------------------------------------
# set-up shared by both algorithms


def _policy_parameters(net: ActorCritic) -> list[nn.Parameter]:
    """The parameters of ``pi`` (the actor and, if continuous, the log-std), not of ``V``."""
    return [p for name, p in net.named_parameters() if not name.startswith("critic.")]


def _grad_norm(params: Iterable[nn.Parameter]) -> Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


def _log(history: PGHistory, step: int, **stats: Tensor) -> None:
    """Append one ``(step, value)`` per statistic, with one device-to-host copy for all."""
    values = torch.stack([v.detach().float() for v in stats.values()]).tolist()
    for name, value in zip(stats, values, strict=True):
        getattr(history, name).append((step, value))


# ---------------------------------------------------------------------------
# REINFORCE


@dataclass
class Episodes:
    """One episode from each of ``N`` environments, time first (``[T, N, ...]``); ``mask``
    marks the steps that belong to them (a copy that finished early kept being stepped)."""

    obs: Tensor
    actions: Tensor
    rewards: Tensor
    next_obs: Tensor
    terminated: Tensor
    truncated: Tensor
    mask: Tensor

    def select(self, copies: slice | Tensor) -> Episodes:
        """The episodes of some of the copies (an index of the second dimension)."""
        return Episodes(*(getattr(self, f.name)[:, copies] for f in fields(self)))


@torch.no_grad()
def play_episodes(
    net: ActorCritic,
    steps: Transitions,
    low: Tensor | None = None,
    high: Tensor | None = None,
    seed: int | None = None,
) -> Episodes:
    """Reset every copy of the vector env and play one episode in each with ``pi``.

    A vector env steps all its copies together, so copies whose episode has ended are
    stepped on (into a new episode) until the last one ends; those steps are masked out.
    An episode still running after ``MAX_EPISODE_STEPS`` steps is cut there as truncated.
    """
    obs = steps.reset(seed=seed)
    running = torch.ones(steps.n, dtype=torch.bool, device=obs.device)
    rows: list[tuple[Tensor, ...]] = []
    for t in range(MAX_EPISODE_STEPS):
        action = net.distribution(obs).sample()
        env_action = torch.clamp(action, low, high) if net.continuous else action
        next_obs, reward, terminated, truncated, _ = steps.step(env_action)
        if t == MAX_EPISODE_STEPS - 1:
            truncated = truncated | running
        rows.append((obs, action, reward, next_obs, terminated, truncated, running))
        running = running & ~(terminated | truncated)  # the first episode of each copy only
        obs = steps.obs
        if not running.any():
            break
    return Episodes(*(torch.stack(column) for column in zip(*rows, strict=True)))


def train_reinforce(
    env: Any,
    config: REINFORCEConfig | None = None,
    seed: int = 0,
    *,
    eval_env: str | None = None,
    callback: Callable[[int, PGHistory, REINFORCEAgent], bool | None] | None = None,
    progress: bool = True,
) -> tuple[REINFORCEAgent, PGHistory]:
    """Train REINFORCE on ``env`` (an env id, or a vector env); return ``(agent, history)``.

    Steps count the steps of the episodes learned from (not the steps of copies that were
    stepped on after their episode ended; ``history.simulated`` counts those too). Every
    ``config.eval_every`` steps the greedy policy plays the ``eval_episodes`` selection
    episodes of ``eval_env`` (default: ``env`` when it is an id); choosing, confirming,
    stopping and the held-out score follow :class:`rlcourse.agent.TrainingConfig`, as in
    :func:`rlcourse.dqn.train`, and so does ``callback(step, history, agent)``, run after
    every update.
    """
    cfg = config or REINFORCEConfig()
    with torch_threads(cfg.num_threads):
        return _train_reinforce(env, cfg, seed, eval_env, callback, progress)


def _train_reinforce(
    env: Any, cfg: REINFORCEConfig, seed: int, eval_env: str | None, callback: Any, progress: bool
) -> tuple[REINFORCEAgent, PGHistory]:
    device, envs, net, low, high, eval_env = actor_critic_setup(
        env, cfg, seed, eval_env, "REINFORCE"
    )
    policy_params = _policy_parameters(net)
    groups = [{"params": policy_params, "lr": cfg.lr}]
    if cfg.baseline:  # two step sizes: alpha^theta for pi, alpha^w for V
        groups.append({"params": list(net.critic.parameters()), "lr": cfg.value_lr})
    optimizer = torch.optim.Adam(groups)
    agent = REINFORCEAgent(net, device, low, high)
    low_t, high_t = action_bound(low, device), action_bound(high, device)
    history = PGHistory()
    steps = Transitions(envs, device)
    schedule = EvaluationSchedule.for_training(eval_env, cfg, seed, history)
    bar = tqdm(total=cfg.total_steps, disable=not progress, unit="step")
    step, first = 0, True

    while step < cfg.total_steps:
        # 1. one complete episode in each env with the current policy pi_theta
        ep = play_episodes(net, steps, low_t, high_t, seed=seed if first else None)
        first = False
        # 2. the reward-to-go G_t of every step, discounted from that step. A time-limit cut
        #    is not an ending: with a baseline, G_t is bootstrapped from V(final obs) there;
        #    without one, the truncation bias is accepted (see reinforce_returns)
        with torch.no_grad():
            next_values = net.value(ep.next_obs) if cfg.baseline else None
        returns = reinforce_returns(ep.rewards, ep.terminated, ep.truncated, cfg.gamma, next_values)
        # 3. one gradient step on -mean log pi(A_t|S_t) (G_t - b(S_t)), and V(S_t) -> G_t
        dist = net.distribution(ep.obs)
        log_probs = net.log_prob(dist, ep.actions)  # of the actions taken
        values = net.value(ep.obs) if cfg.baseline else None
        policy_loss = reinforce_loss(
            log_probs, returns, values, mask=ep.mask, normalize=cfg.normalize_advantages
        )
        stats = {"policy_loss": policy_loss, "entropy": masked_mean(net.entropy(dist), ep.mask)}
        loss = policy_loss
        if values is not None:
            stats["value_loss"] = 0.5 * masked_mean((values - returns) ** 2, ep.mask)
            loss = loss + stats["value_loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        stats["grad_norm"] = nn.utils.clip_grad_norm_(policy_params, cfg.max_grad_norm or math.inf)
        optimizer.step()

        lengths = ep.mask.sum(0).tolist()
        for ret, length in zip((ep.rewards * ep.mask).sum(0).tolist(), lengths, strict=True):
            step += length
            history.episodes.append((step, ret, length))
        _log(history, step, **stats)
        history.simulated.append((step, steps.env_steps))
        bar.update(min(sum(lengths), bar.total - bar.n))
        if schedule.should_stop(step, agent, callback, bar):
            break
    close_bar(bar)
    schedule.finish(step, agent)
    return agent, history


# ---------------------------------------------------------------------------
# A2C


def a2c_loss(
    net: ActorCritic, buffer: RolloutBuffer, cfg: A2CConfig
) -> tuple[Tensor, dict[str, Tensor]]:
    """A2C's loss on one rollout (``buffer`` holding its returns), and its three parts.

    ``L = L_pi + c_V L_V - c_H H``, means over the rollout's valid steps ``[T, N]``:

    * ``L_pi = -mean log pi(A_t|S_t) * adv_t`` with ``adv_t = G_{t:t+n} - V_old(S_t)``, the
      n-step return bootstrapped at the rollout's end minus the behaviour critic's value
      (REINFORCE's loss with ``G_{t:t+n}`` for ``G_t`` and ``V`` for the baseline);
    * ``L_V = mean 0.5 (V(S_t) - G_{t:t+n})^2``, the critic's regression on the returns;
    * ``H = mean H[pi(.|S_t)]``, the policy's entropy (a bonus when ``c_H > 0``).

    Returns ``(loss, {"policy_loss", "value_loss", "entropy"})``.
    """
    valid = buffer.valid
    log_probs, entropy, values = net.evaluate(buffer.obs, buffer.actions)
    policy_loss = reinforce_loss(
        log_probs, buffer.returns, buffer.values, mask=valid, normalize=cfg.normalize_advantages
    )
    value_loss = 0.5 * masked_mean((values - buffer.returns) ** 2, valid)
    entropy = masked_mean(entropy, valid)
    loss = policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy
    return loss, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy}


def train_a2c(
    env: Any,
    config: A2CConfig | None = None,
    seed: int = 0,
    *,
    eval_env: str | None = None,
    callback: Callable[[int, PGHistory, A2CAgent], bool | None] | None = None,
    progress: bool = True,
) -> tuple[A2CAgent, PGHistory]:
    """Train A2C on ``env`` (an env id, or a vector env); return ``(agent, history)``.

    Evaluation, early stop and callback work as in :func:`train_reinforce`.
    """
    cfg = config or A2CConfig()
    with torch_threads(cfg.num_threads):
        return _train_a2c(env, cfg, seed, eval_env, callback, progress)


def _train_a2c(
    env: Any, cfg: A2CConfig, seed: int, eval_env: str | None, callback: Any, progress: bool
) -> tuple[A2CAgent, PGHistory]:
    device, envs, net, low, high, eval_env = actor_critic_setup(env, cfg, seed, eval_env, "A2C")
    params = FlatParameters(net.parameters())  # one tensor: one optimiser kernel, one norm
    if cfg.optimizer == "rmsprop":
        optimizer: torch.optim.Optimizer = torch.optim.RMSprop(
            [params.data], lr=cfg.lr, alpha=0.99, eps=1e-5
        )
    else:
        optimizer = torch.optim.Adam([params.data], lr=cfg.lr, eps=1e-5)
    agent = A2CAgent(net, device, low, high)
    policy_params = _policy_parameters(net)
    continuous = net.continuous
    buffer = RolloutBuffer(
        cfg.n_steps,
        cfg.num_envs,
        (net.obs_dim,),
        (net.action_dim,) if continuous else (),
        torch.float32 if continuous else torch.long,
        device,
    )
    low_t, high_t = action_bound(low, device), action_bound(high, device)
    history = PGHistory()
    steps = Transitions(envs, device)
    obs = steps.reset(seed=seed)
    n_updates = max(1, cfg.total_steps // cfg.batch_size)
    schedule = EvaluationSchedule.for_training(eval_env, cfg, seed, history)
    bar = tqdm(total=n_updates * cfg.batch_size, disable=not progress, unit="step")

    for _ in range(n_updates):
        # 1. n_steps steps in each of the num_envs envs with the current policy;
        # 2. advantages G_{t:t+n} - V(S_t): bootstrapped from V at the rollout's end and
        #    at time limits, not past a termination (GAE with lam = 1 gives exactly that)
        obs = collect_rollout(buffer, net, steps, obs, low_t, high_t, cfg.gamma, cfg.lam)
        # 3. one gradient step on L = L_pi + c_V L_V - c_H H[pi] over the valid steps
        loss, stats = a2c_loss(net, buffer, cfg)
        params.zero_grad()
        loss.backward()
        grad_norm = _grad_norm(policy_params)  # of the policy's part, before clipping
        params.clip_grad_norm_(cfg.max_grad_norm)
        optimizer.step()

        step = steps.env_steps
        _log(history, step, **stats, grad_norm=grad_norm)
        history.simulated.append((step, step))
        bar.update(cfg.batch_size)
        if schedule.should_stop(step, agent, callback, bar, steps):
            break
    close_bar(bar)
    history.episodes = steps.episodes
    schedule.finish(steps.env_steps, agent)
    return agent, history
