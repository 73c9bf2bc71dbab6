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

The clip removes the incentive to move a ratio past ``1 +/- eps``; it does not bound the
ratio. What an update did is measured after its epochs, on the whole rollout: the
approximate KL of the updated policy from the behaviour policy, the fraction of ratios
outside ``[1 - eps, 1 + eps]`` and the smallest and largest ratio (:func:`policy_shift`).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import torch
from gymnasium.vector import AutoresetMode
from torch import Tensor
from tqdm.auto import tqdm

from rlcourse.agent import (
    EvaluationSchedule,
    PolicyAgent,
    TrainingClock,
    TrainingConfig,
    TrainingHistory,
    action_bound,
    actor_critic_setup,
)
from rlcourse.buffers import RolloutBuffer, collect_rollout
from rlcourse.envs.vector import Transitions
from rlcourse.nets import (
    ActorCritic,
    FlatParameters,
    policy_entropy,
    policy_log_prob,
    policy_sample,
)
from rlcourse.utils import close_bar, seed_everything, torch_threads

SAME_STEP = AutoresetMode.SAME_STEP


@dataclass(frozen=True)
class PPOConfig(TrainingConfig):
    """Hyperparameters of PPO. With the defaults, ``train`` hands back a solved CartPole-v1
    agent (mean >= 475 over 100 held-out episodes) for each of seeds 0-9
    (``benchmarks/cartpole.py``). They follow the RL Zoo's tuned CartPole-v1 PPO (8 envs x
    32 steps, one minibatch of 256, lr 1e-3 decayed linearly to 0, no entropy bonus) with
    three changes: the PPO paper's gamma 0.99 and lambda 0.95 in place of the Zoo's 0.98 and
    0.8, 6 epochs per rollout in place of the Zoo's 20 (under a third of its gradient steps
    per rollout), and a fixed clip range of 0.2 where the Zoo anneals it linearly from 0.2
    to 0. Their first confirmed solve came after a median of 30,016 steps over seeds 0-9
    (SB3 with the Zoo's settings: 25,000; ``benchmarks/README.md``).
    ``PPOConfig.for_env("Pendulum-v1")`` gives the Pendulum settings, which hand back a
    policy with mean >= -200 over 100 held-out episodes for seeds 0-9: gamma 0.95 (the
    Zoo's is 0.9), lambda 0.95, rollouts of 8 x 512 steps, 10 epochs of minibatches of 256,
    initial log-std -0.5, and the whole 300k-step budget (no early stop: a policy that only
    just clears -200 on the confirmation episodes can fall below it on new ones; the best
    confirmed one is kept). Neither preset uses ``ent_coef``, ``clip_value`` or
    ``target_kl``."""

    total_steps: int = 100_000  #: environment steps in all
    num_envs: int = 8  #: environments stepped at once
    n_steps: int = 32  #: steps per environment in each rollout
    epochs: int = 6  #: passes over each rollout
    minibatch_size: int = 256  #: samples per gradient step
    lr: float = 1e-3  #: Adam learning rate
    anneal_lr: bool = True  #: decay the learning rate linearly to 0
    gamma: float = 0.99  #: discount
    lam: float = 0.95  #: GAE lambda
    clip_coef: float = 0.2  #: epsilon of the clipped surrogate
    #: clip the value loss as the policy's: no gain from moving V(s) further than clip_coef
    #: from the value stored with the rollout
    clip_value: bool = False
    ent_coef: float = 0.0  #: entropy bonus weight (0: no bonus)
    vf_coef: float = 0.5  #: value loss weight
    max_grad_norm: float = 0.5  #: gradient-norm clipping
    norm_adv: bool = True  #: normalise advantages in each minibatch
    #: stop an update's epochs once the updated policy's approximate KL from the behaviour
    #: policy, measured on the rollout after an epoch, exceeds it (None: run every epoch)
    target_kl: float | None = None
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
        if self.target_kl is not None and not self.target_kl > 0:
            raise ValueError(f"PPOConfig.target_kl must be positive or None, got {self.target_kl}")

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
                "total_steps": 300_000,
                "num_envs": 8,
                "n_steps": 512,
                "epochs": 10,
                "minibatch_size": 256,
                "lr": 1e-3,
                "gamma": 0.95,
                "lam": 0.95,
                "ent_coef": 0.0,
                "log_std_init": -0.5,
                "eval_every": 20_000,
                "early_stop": False,
            },
        }
        return dataclasses.replace(cls(**presets.get(env_id, {})), **changes)


@dataclass
class PPOHistory(TrainingHistory):
    """Training record of PPO (see ``TrainingHistory``), one ``(step, value)`` entry per
    update. ``policy_loss``, ``value_loss`` and ``entropy`` are means over the update's
    minibatch steps, each measured before its step. ``approx_kl`` (of the updated policy
    from the behaviour policy), ``clip_fraction`` (of the rollout's ratios outside
    ``[1 - eps, 1 + eps]``), ``min_ratio`` and ``max_ratio`` describe the policy the update
    ended with, measured on the whole rollout after the epochs (:func:`policy_shift`)."""

    policy_loss: list[tuple[int, float]] = field(default_factory=list)
    value_loss: list[tuple[int, float]] = field(default_factory=list)
    entropy: list[tuple[int, float]] = field(default_factory=list)
    approx_kl: list[tuple[int, float]] = field(default_factory=list)
    clip_fraction: list[tuple[int, float]] = field(default_factory=list)
    min_ratio: list[tuple[int, float]] = field(default_factory=list)
    max_ratio: list[tuple[int, float]] = field(default_factory=list)


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
    params = FlatParameters(net.parameters())  # one tensor: one Adam kernel, one norm
    optimizer = torch.optim.Adam([params.data], lr=cfg.lr, eps=1e-5, fused=True)
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
        stats = _optimise(net, params, optimizer, buffer, cfg, shuffle)
        step = steps.env_steps
        for name, value in stats.items():
            getattr(history, name).append((step, value))
        bar.update(cfg.batch_size)
        if schedule.should_stop(step, agent, callback, bar, steps):
            break
    close_bar(bar)  # at 100% of the steps run, also after an early stop
    history.episodes = steps.episodes
    schedule.finish(steps.env_steps, agent)
    return agent, history


#: the quantities PPO logs at each update, in the order of :func:`ppo_loss`'s statistics
STAT_NAMES = (
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "clip_fraction",
    "min_ratio",
    "max_ratio",
)
#: how many of them (the first ones) are losses averaged over the minibatch steps; the rest
#: are :func:`policy_shift`'s, measured after the epochs
N_LOSS_STATS = 3


def policy_shift(log_ratio: Tensor, clip_coef: float) -> Tensor:
    """How far a policy moved from the behaviour policy, from the log-ratios
    ``log pi(a|s) - log pi_old(a|s)`` ``[B]`` of actions the behaviour policy took.

    Returns ``[4]``: the approximate ``KL(pi_old || pi)`` (the k3 estimator
    ``E[(r - 1) - log r]``: unbiased, since ``E_old[r] = 1``, and never negative), the
    fraction of ratios ``r`` outside ``[1 - eps, 1 + eps]``, and the smallest and largest
    ``r``.
    """
    ratio = log_ratio.exp()
    return torch.stack(
        [
            ((ratio - 1) - log_ratio).mean(),
            ((ratio - 1).abs() > clip_coef).float().mean(),
            ratio.min(),
            ratio.max(),
        ]
    )


def ppo_loss(
    new_log_prob: Tensor, entropy: Tensor, value: Tensor, mb: dict[str, Tensor], cfg: PPOConfig
) -> tuple[Tensor, Tensor]:
    """PPO's loss on one minibatch ``mb`` (from ``RolloutBuffer.minibatches``), given the
    current policy's ``log pi(a|s)``, entropy and ``V(s)`` ``[B]`` there.

    Returns ``(loss, stats)``: the scalar to minimise, and the detached policy loss, value
    loss and entropy ``[3]`` (the first :data:`N_LOSS_STATS` of :data:`STAT_NAMES`) on this
    minibatch, before its gradient step; ``_optimise`` logs their means, and
    :func:`policy_shift` of the policy the epochs ended with.
    """
    log_ratio = new_log_prob - mb["log_probs"]  # against the behaviour policy, fixed
    ratio = log_ratio.exp()
    advantages = mb["advantages"]
    if cfg.norm_adv and advantages.numel() > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    policy_loss = -clipped_surrogate(ratio, advantages, cfg.clip_coef).mean()
    if cfg.clip_value:  # keep the new value within clip_coef of the old one
        clipped = mb["values"] + torch.clamp(value - mb["values"], -cfg.clip_coef, cfg.clip_coef)
        value_loss = (
            0.5 * torch.max((value - mb["returns"]) ** 2, (clipped - mb["returns"]) ** 2).mean()
        )
    else:
        value_loss = 0.5 * ((value - mb["returns"]) ** 2).mean()
    entropy = entropy.mean()
    loss = policy_loss + cfg.vf_coef * value_loss
    if cfg.ent_coef:  # a term weighted 0 would still be differentiated, at every step
        loss = loss - cfg.ent_coef * entropy
    return loss, torch.stack([policy_loss, value_loss, entropy]).detach()


def _optimise(
    net: ActorCritic,
    params: FlatParameters,
    optimizer: torch.optim.Optimizer,
    buffer: RolloutBuffer,
    cfg: PPOConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """The PPO epochs on one rollout; returns the logged quantities (:data:`STAT_NAMES`):
    the losses' means over the minibatch steps, and :func:`policy_shift` of the policy the
    epochs ended with, on the whole rollout."""
    sums = torch.zeros(N_LOSS_STATS, device=buffer.obs.device)  # on the device: no syncs
    n = 0
    for epoch in range(cfg.epochs):
        for mb in buffer.minibatches(cfg.minibatch_size, generator):
            loss, stats = ppo_loss(*net.evaluate(mb["obs"], mb["actions"]), mb, cfg)
            params.zero_grad()
            loss.backward()
            params.clip_grad_norm_(cfg.max_grad_norm)
            optimizer.step()
            sums += stats
            n += 1
        if cfg.target_kl is not None or epoch == cfg.epochs - 1:
            shift = _rollout_shift(net, buffer, cfg, generator)
            if cfg.target_kl is not None and float(shift[0]) > cfg.target_kl:
                break  # the updated policy has moved far enough from pi_old
    stats = torch.cat([sums / max(n, 1), shift])
    return dict(zip(STAT_NAMES, stats.tolist(), strict=True))


@torch.no_grad()
def _rollout_shift(
    net: ActorCritic, buffer: RolloutBuffer, cfg: PPOConfig, generator: torch.Generator
) -> Tensor:
    """:func:`policy_shift` of ``net``'s policy against the behaviour policy on every valid
    step of the rollout (one forward pass of the actor, no gradient) ``[4]``."""
    rollout = next(buffer.minibatches(buffer.n_steps * buffer.num_envs, generator))  # no draw
    out = net.actor(rollout["obs"])
    log_prob = policy_log_prob(out, rollout["actions"], net.policy_log_std)
    return policy_shift(log_prob - rollout["log_probs"], cfg.clip_coef)


# --------------------------------------------------------------- many seeds at once
class AgentStack:
    """``K`` actor-critics of one architecture with their parameters stacked (each tensor
    ``[K, ...]``), evaluated together with ``torch.func.vmap``: one batched network pass
    serves every agent.

    Observations come flattened as ``[M * K * N, obs_dim]``, rows ordered ``(m, k, n)``:
    agent ``k`` owns copies ``k * N .. (k + 1) * N - 1`` of a vector env of ``K * N``
    copies. ``sample``, ``sample_actions`` and ``value`` match ``ActorCritic``'s, so
    ``collect_rollout`` fills one rollout buffer for all agents (the rollout's steps need
    only the actors; the critics run once, on the whole rollout).
    """

    def __init__(self, nets: list[ActorCritic], envs_per_agent: int) -> None:
        self.nets, self.K, self.N = nets, len(nets), envs_per_agent
        self.params, _ = torch.func.stack_module_state(nets)  # leaves [K, ...], trainable
        self.base = copy.deepcopy(nets[0]).to("meta")
        self.continuous = nets[0].continuous

    def parameters(self) -> list[Tensor]:
        return list(self.params.values())

    def _forward(self, obs: Tensor, part: str) -> Tensor:
        """Per-agent batches ``[K, B, obs_dim]`` -> the output ``[K, B, n]`` of every agent's
        ``part`` (``"actor"``: logits or means; ``"critic"``: values, ``n = 1``)."""
        module, prefix = getattr(self.base, part), part + "."
        params = {k[len(prefix) :]: v for k, v in self.params.items() if k.startswith(prefix)}

        def one(params: dict[str, Tensor], x: Tensor) -> Tensor:
            return torch.func.functional_call(module, params, (x,))

        return torch.func.vmap(one)(params, obs)

    def log_std(self) -> Tensor | None:
        return self.params["log_std"].unsqueeze(1) if self.continuous else None  # [K, 1, D]

    def _per_agent(self, x: Tensor) -> Tensor:
        """``[M * K * N, ...]`` -> ``[K, M * N, ...]``."""
        x = x.view(-1, self.K, self.N, *x.shape[1:]).transpose(0, 1)
        return x.reshape(self.K, -1, *x.shape[3:])

    def _flat(self, x: Tensor) -> Tensor:
        """Inverse of :meth:`_per_agent`."""
        x = x.view(self.K, -1, self.N, *x.shape[2:]).transpose(0, 1)
        return x.reshape(-1, *x.shape[3:])

    def sample(self, obs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return *self.sample_actions(obs), self.value(obs)

    def sample_actions(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        out = self._forward(self._per_agent(obs), "actor")  # the critic is not needed here
        action = policy_sample(out, self.log_std())
        return self._flat(action), self._flat(policy_log_prob(out, action, self.log_std()))

    def value(self, obs: Tensor) -> Tensor:
        return self._flat(self._forward(self._per_agent(obs), "critic").squeeze(-1))

    def sync(self) -> list[ActorCritic]:
        """Copy the stacked parameters into the ``K`` separate networks; return them."""
        with torch.no_grad():
            for k, net in enumerate(self.nets):
                for name, p in net.named_parameters():
                    p.copy_(self.params[name][k])
        return self.nets


def train_seeds(
    env: Any,
    config: PPOConfig | None = None,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    *,
    eval_env: str | None = None,
    progress: bool = True,
) -> tuple[list[PPOAgent], list[PPOHistory]]:
    """Train one independent PPO agent per seed, all in one batched run.

    ``env`` is a vector env of ``len(seeds) * config.num_envs`` copies whose steps are all
    transitions (``SAME_STEP`` autoreset, as the course's torch envs:
    ``TorchCartPole(5 * 8)``), or an env id (gymnasium's copies are then made in
    ``SAME_STEP`` mode). Agent ``k`` starts from the network ``train`` would build with
    seed ``seeds[k]``, acts in its own copies, and gets its own advantage normalisation,
    minibatches, gradient clipping and Adam state: the agents share only the device's
    time. Their results are not bit-identical to separate ``train`` runs (the env copies
    and sampling draw from shared generators). Returns one ``(agent, history)`` per seed,
    as two lists; training stops early once every agent reached the solve threshold.
    """
    cfg = config or PPOConfig.for_env(env if isinstance(env, str) else "")
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {seeds}")
    if cfg.target_kl is not None:
        raise ValueError(
            "train_seeds does not stop epochs early per agent: leave PPOConfig.target_kl "
            "at None, or train each seed with train()"
        )
    with torch_threads(cfg.num_threads):
        return _train_seeds(env, cfg, seeds, eval_env, progress)


def _train_seeds(
    env: Any, cfg: PPOConfig, seeds: list[int], eval_env: str | None, progress: bool
) -> tuple[list[PPOAgent], list[PPOHistory]]:
    K, N = len(seeds), cfg.num_envs
    if isinstance(env, str):
        eval_env = eval_env or env
        env = gym.make_vec(
            env, K * N, vectorization_mode="sync", vector_kwargs={"autoreset_mode": SAME_STEP}
        )
    if env.num_envs != K * N:
        raise ValueError(
            f"the env has {env.num_envs} copies but {K} seeds x num_envs={N} need {K * N}"
        )
    if env.metadata.get("autoreset_mode") != SAME_STEP:
        raise ValueError(
            "train_seeds needs an env whose every step is a transition (autoreset_mode "
            "SAME_STEP), such as rlcourse.envs.TorchCartPole"
        )
    nets, low, high, device = [], None, None, torch.device("cpu")
    for seed in seeds:  # each agent's network exactly as train(seed=seed) builds it
        device, envs, net, low, high, _ = actor_critic_setup(env, cfg, seed, eval_env, "PPO")
        nets.append(net)
    seed_everything(seeds[0])  # the sampling of actions, for the run as a whole
    stack = AgentStack(nets, N)
    optimizer = torch.optim.Adam(stack.parameters(), lr=cfg.lr, eps=1e-5, fused=True)
    agents = [PPOAgent(net, device, low, high) for net in nets]
    histories = [PPOHistory() for _ in seeds]
    clock = TrainingClock()
    schedules = [
        EvaluationSchedule.for_training(eval_env, cfg, seed, history, clock)
        for seed, history in zip(seeds, histories, strict=True)
    ]
    action_shape = (stack.nets[0].action_dim,) if stack.continuous else ()
    buffer = RolloutBuffer(
        cfg.n_steps,
        K * N,
        (nets[0].obs_dim,),
        action_shape,
        torch.float32 if stack.continuous else torch.long,
        device,
    )
    steps = Transitions(envs, device)
    obs = steps.reset(seed=seeds[0])
    shuffle = torch.Generator(device).manual_seed(seeds[0] + 1)
    low_t, high_t = action_bound(low, device), action_bound(high, device)
    n_updates = max(1, cfg.total_steps // cfg.batch_size)
    bar = tqdm(total=n_updates * cfg.batch_size, disable=not progress, unit="step/agent")
    for update in range(n_updates):
        if cfg.anneal_lr:
            optimizer.param_groups[0]["lr"] = cfg.lr * (1.0 - update / n_updates)
        obs = collect_rollout(buffer, stack, steps, obs, low_t, high_t, cfg.gamma, cfg.lam)
        stats = _optimise_stack(stack, optimizer, buffer, cfg, shuffle)  # [K, 5]
        step = (update + 1) * cfg.batch_size  # per agent
        for history, row in zip(histories, stats.tolist(), strict=True):
            for name, value in zip(STAT_NAMES, row, strict=True):
                getattr(history, name).append((step, value))
        bar.update(cfg.batch_size)
        if any(s.due(step) for s in schedules if not s.stopped):
            stack.sync()
            for schedule, agent in zip(schedules, agents, strict=True):
                if not schedule.stopped:  # an agent with a confirmed solve is done
                    schedule.evaluate(agent, step)
            bar.set_postfix(eval=" ".join(f"{h.evaluations[-1][1]:.0f}" for h in histories))
            if all(schedule.stopped for schedule in schedules):
                break
    close_bar(bar)  # at 100% of the steps run, also after an early stop
    stack.sync()
    for (done_at, ret, length), copy_ in zip(steps.episodes, steps.episode_copies, strict=True):
        histories[copy_ // N].episodes.append((done_at // K, ret, length))
    for schedule, agent in zip(schedules, agents, strict=True):
        schedule.finish(step, agent)
    return agents, histories


def _optimise_stack(
    stack: AgentStack,
    optimizer: torch.optim.Optimizer,
    buffer: RolloutBuffer,
    cfg: PPOConfig,
    generator: torch.Generator,
) -> Tensor:
    """:func:`_optimise` for ``K`` stacked agents: each agent's minibatches from its own
    copies, its own loss (summed over agents: their gradients stay apart) and its own
    gradient-norm clipping. Returns the logged statistics ``[K, 7]`` (:data:`STAT_NAMES`)."""
    if not bool(buffer.valid.all()):
        raise RuntimeError("train_seeds needs every step to be a transition (SAME_STEP envs)")
    K = stack.K
    data = {
        "obs": buffer.obs,
        "actions": buffer.actions,
        "log_probs": buffer.log_probs,
        "values": buffer.values,
        "advantages": buffer.advantages,
        "returns": buffer.returns,
    }
    # [T, K * N, ...] -> [K, T * N, ...]: each agent's own samples
    per_agent = {k: stack._per_agent(v.flatten(0, 1)) for k, v in data.items()}
    M = per_agent["obs"].shape[1]
    rows = torch.arange(K, device=buffer.device).unsqueeze(1)

    def agent_loss(params: dict[str, Tensor], mb: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        out, value = torch.func.functional_call(stack.base, params, (mb["obs"],))
        log_std = params["log_std"] if stack.continuous else None
        log_prob = policy_log_prob(out, mb["actions"], log_std)
        return ppo_loss(log_prob, policy_entropy(out, log_std), value, mb, cfg)

    sums, n = torch.zeros(K, N_LOSS_STATS, device=buffer.device), 0
    for _ in range(cfg.epochs):
        perm = torch.rand(K, M, generator=generator, device=generator.device).argsort(1)
        for start in range(0, M, cfg.minibatch_size):
            idx = perm[:, start : start + cfg.minibatch_size].to(buffer.device)
            mb = {name: x[rows, idx] for name, x in per_agent.items()}
            losses, stats = torch.func.vmap(agent_loss)(stack.params, mb)
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
            _clip_per_agent(stack.parameters(), cfg.max_grad_norm)
            optimizer.step()
            sums += stats
            n += 1

    def agent_shift(params: dict[str, Tensor], rollout: dict[str, Tensor]) -> Tensor:
        actor = {k[len("actor.") :]: v for k, v in params.items() if k.startswith("actor.")}
        out = torch.func.functional_call(stack.base.actor, actor, (rollout["obs"],))
        log_std = params["log_std"] if stack.continuous else None
        log_prob = policy_log_prob(out, rollout["actions"], log_std)
        return policy_shift(log_prob - rollout["log_probs"], cfg.clip_coef)

    with torch.no_grad():  # each agent's updated policy on its whole rollout
        shift = torch.func.vmap(agent_shift)(stack.params, per_agent)
    return torch.cat([sums / max(n, 1), shift], dim=1)


def _clip_per_agent(params: list[Tensor], max_norm: float) -> None:
    """``clip_grad_norm_`` for each agent of a stack: parameters ``[K, ...]``."""
    grads = [p.grad for p in params if p.grad is not None]
    sq = torch.stack([g.flatten(1).square().sum(1) for g in grads]).sum(0)  # [K]
    scale = (max_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *[1] * (g.dim() - 1)))


def config_dict(config: PPOConfig) -> dict[str, Any]:
    """The config as a plain dict (for printing and saving)."""
    return dataclasses.asdict(config)
