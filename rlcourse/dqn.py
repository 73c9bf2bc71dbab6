"""Deep Q-Network (Mnih et al., 2015) with Double DQN (van Hasselt et al., 2016).

The tabular Q-learning update of chapter 4, with a neural network in place of the
table and the two ideas that make it stable:

* **experience replay**: transitions go into a buffer; each gradient step learns from
  a minibatch drawn uniformly from it, which breaks the correlation between
  consecutive steps and reuses every transition many times;
* **a target network**: the TD target ``r + gamma * max_a Q_target(s', a)`` comes from a
  copy of the network that is synchronised only now and then (or slowly, by Polyak
  averaging), and is a constant for the gradient.

The loss is the Huber loss of the TD error at the action taken; its gradient flows
through ``Q_online(s, a)`` only (the semi-gradient update). Several environments
are stepped at once, and everything stays on the chosen device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from rlcourse.agent import Agent, Decision, EvaluationSchedule, TrainingConfig, TrainingHistory
from rlcourse.buffers import ReplayBuffer
from rlcourse.envs.vector import Transitions, make_vector_env
from rlcourse.nets import FlatParameters, QNetwork, polyak_update
from rlcourse.utils import close_bar, resolve_device, seed_everything, torch_threads


@dataclass(frozen=True)
class DQNConfig(TrainingConfig):
    """Hyperparameters of DQN. With the defaults, ``train`` hands back a solved CartPole-v1
    agent (mean >= 475 over 100 held-out episodes) for each of seeds 0-9
    (``benchmarks/cartpole.py``).

    DQN's greedy policy swings between good and bad ones from one evaluation to the next,
    so it is evaluated often (every 2,500 steps), the best confirmed policy is kept, and
    training stops at the first confirmed solve (seeds 0-9: after 20k-100k steps, median
    29k, in ``benchmarks/README.md``).

    Steps are environment steps summed over all ``num_envs`` copies. The defaults take from
    the RL Zoo's tuned CartPole settings (``hyperparams/dqn.yml``) Adam 2.3e-3, batch 64, a
    100k buffer, 1,000 steps before learning, gamma 0.99, epsilon decayed to 0.04 over 8,000
    steps, and a target network refreshed once per training phase. They differ in how much
    they train: a phase of 32 gradient steps every 128 environment steps (8 environments
    stepped 16 times), one gradient step per 4 environment steps, so each transition is
    sampled 16 times on average (64 / 4); the Zoo runs 128 gradient steps every 256
    environment steps, one per 2, 32 samples per transition. And the network is 128x128,
    a quarter of the weights of the Zoo's 256x256.
    """

    total_steps: int = 100_000  #: environment steps in all (training stops at a confirmed solve)
    num_envs: int = 8  #: environments stepped at once
    hidden: tuple[int, ...] = (128, 128)  #: hidden layer sizes of the Q-network
    dueling: bool = False  #: dueling head V(s) + A(s, a)
    lr: float = 2.3e-3  #: Adam learning rate
    gamma: float = 0.99  #: discount
    batch_size: int = 64  #: transitions per gradient step
    buffer_size: int = 100_000  #: replay capacity
    learning_starts: int = 1_000  #: steps of data before the first gradient step (replay)
    train_every: int = 16  #: vector steps (of num_envs env steps each) between training phases
    gradient_steps: int = 32  #: gradient steps per training phase
    target_update_interval: int = 32  #: gradient steps between target updates
    tau: float = 1.0  #: 1.0: copy the online network; < 1: Polyak averaging
    double_dqn: bool = True  #: the online network picks a', the target network values it
    huber: bool = True  #: Huber (smooth L1) loss instead of the squared error
    max_grad_norm: float = 10.0  #: gradient-norm clipping
    epsilon_start: float = 1.0  #: exploration at the start...
    epsilon_end: float = 0.04  #: ...decayed linearly to this...
    epsilon_decay_steps: int = 8_000  #: ...over this many environment steps
    #: False (ablation): online Q-learning, no replay: after each vector step, one gradient
    #: step on the (up to ``num_envs``) transitions it produced, each used once, in order,
    #: from the first step on (``batch_size``, ``train_every``, ``gradient_steps`` and
    #: ``learning_starts`` are then unused)
    replay: bool = True
    target_network: bool = True  #: False: bootstrap from the online network (ablation)
    eval_every: int = 2_500  #: steps between greedy evaluations (0: never)

    def __post_init__(self) -> None:
        super().__post_init__()
        positive = (
            "total_steps",
            "num_envs",
            "batch_size",
            "buffer_size",
            "train_every",
            "gradient_steps",
            "target_update_interval",
            "epsilon_decay_steps",
        )
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DQNConfig.{name} must be a positive integer, got {value!r}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"DQNConfig.gamma must be in [0, 1], got {self.gamma}")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"DQNConfig.tau must be in (0, 1], got {self.tau}")
        if not self.lr > 0:
            raise ValueError(f"DQNConfig.lr must be positive, got {self.lr}")
        for name in ("epsilon_start", "epsilon_end"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"DQNConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.batch_size > self.buffer_size:
            raise ValueError("DQNConfig.batch_size cannot exceed buffer_size")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(f"DQNConfig.hidden must list positive layer sizes, got {self.hidden}")

    @property
    def replay_ratio(self) -> float:
        """Gradient steps per environment step: ``gradient_steps / (train_every * num_envs)``
        (without replay one per vector step, ``1 / num_envs``)."""
        if not self.replay:
            return 1 / self.num_envs
        return self.gradient_steps / (self.train_every * self.num_envs)

    @property
    def samples_per_transition(self) -> float:
        """How many times a transition is drawn for a gradient step, on average (with a
        buffer that never fills): ``batch_size * replay_ratio`` (without replay: once)."""
        return self.batch_size * self.replay_ratio if self.replay else 1.0

    def epsilon(self, step: int) -> float:
        """Linear decay from ``epsilon_start`` to ``epsilon_end``, then constant."""
        fraction = min(1.0, step / self.epsilon_decay_steps)
        return self.epsilon_start + (self.epsilon_end - self.epsilon_start) * fraction


@dataclass
class DQNHistory(TrainingHistory):
    """Training record of DQN: episodes, evaluations and timing (see ``TrainingHistory``),
    plus the mean loss and epsilon every 500 gradient steps."""

    losses: list[tuple[int, float]] = field(default_factory=list)  #: (step, mean loss)
    epsilon: list[tuple[int, float]] = field(default_factory=list)  #: (step, epsilon)


class DQNAgent(Agent):
    """A trained Q-network that acts greedily: ``act(obs)`` -> action(s)."""

    algorithm = "dqn"
    network_class = QNetwork

    @property
    def q_net(self) -> QNetwork:
        return self.net

    @torch.no_grad()
    def q_values(self, obs: Any) -> Tensor:
        """``Q(s, .)`` for a batch ``[B, obs_dim]`` (or one observation ``[obs_dim]``)."""
        return self.net(self._obs_tensor(obs))

    def _act(self, obs: Tensor) -> Tensor:
        return self.net(obs).argmax(-1)

    @torch.no_grad()
    def decide(self, obs: Any) -> Decision:
        """``Q(s, .)``, ``max_a Q(s, a)`` and the greedy action for one observation."""
        q = self.q_values(obs)
        return Decision(
            observation=self._obs_tensor(obs).cpu().numpy(),
            action=int(q.argmax()),
            kind="q",
            values=q.cpu().numpy(),
            value=float(q.max()),
        )


def _check_spaces(envs: gym.vector.VectorEnv) -> tuple[int, int]:
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    if not isinstance(act_space, gym.spaces.Discrete):
        raise ValueError(
            f"DQN needs a Discrete action space, got {act_space}: DQN takes max_a Q(s, a) over a "
            "list of actions; for continuous actions use PPO (chapter 7)"
        )
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        raise ValueError(f"this DQN takes flat Box observations, got {obs_space}")
    return int(obs_space.shape[0]), int(act_space.n)


def train(
    env: Any,
    config: DQNConfig | None = None,
    seed: int = 0,
    *,
    eval_env: str | None = None,
    callback: Callable[[int, DQNHistory, DQNAgent], bool | None] | None = None,
    progress: bool = True,
) -> tuple[DQNAgent, DQNHistory]:
    """Train DQN on ``env`` (an env id, or a vector env); return ``(agent, history)``.

    Every ``config.eval_every`` steps the greedy policy plays the ``eval_episodes``
    selection episodes of ``eval_env`` (default: ``env`` when it is an id); one that
    reaches the threshold there is confirmed on 100 other episodes, and a confirmed solve
    stops training. The best policy found is handed back, with its score on 100 held-out
    episodes in ``history.held_out_mean`` (the rule: :class:`rlcourse.agent.TrainingConfig`).
    ``callback(step, history, agent)`` runs after every training phase (and its
    evaluation, if one was due), with ``history`` up to date; returning True stops training
    cleanly: the policy to hand back is chosen and scored as after a full run
    (``history.stop_reason == "callback"``). :class:`rlcourse.widgets.TrainingMonitor` is
    such a callback.
    """
    cfg = config or DQNConfig()
    with torch_threads(cfg.num_threads):
        return _train(env, cfg, seed, eval_env, callback, progress)


def _train(
    env: Any, cfg: DQNConfig, seed: int, eval_env: str | None, callback: Any, progress: bool
) -> tuple[DQNAgent, DQNHistory]:
    device = resolve_device(cfg.device, env)  # "auto": where the env lives
    seed_everything(seed)
    envs = make_vector_env(env, cfg.num_envs)
    obs_dim, n_actions = _check_spaces(envs)
    eval_env = eval_env or (env if isinstance(env, str) else None)

    q_net = QNetwork(obs_dim, n_actions, cfg.hidden, cfg.dueling).to(device)
    target_net = QNetwork(obs_dim, n_actions, cfg.hidden, cfg.dueling).to(device)
    target_net.load_state_dict(q_net.state_dict())
    target_net.requires_grad_(False)
    params = FlatParameters(q_net.parameters())  # one tensor: one Adam kernel, one norm
    optimizer = torch.optim.Adam([params.data], lr=cfg.lr, fused=True)
    buffer = ReplayBuffer(cfg.buffer_size, (obs_dim,), device, seed=seed)
    agent = DQNAgent(q_net, device)
    history = DQNHistory()
    steps = Transitions(envs, device)
    obs = steps.reset(seed=seed)
    explore = torch.Generator(device).manual_seed(seed + 1)
    n_updates, loss_sum, loss_count = 0, 0.0, 0
    schedule = EvaluationSchedule.for_training(eval_env, cfg, seed, history)
    bar = tqdm(total=cfg.total_steps, disable=not progress, unit="step")

    vector_step = 0
    while steps.env_steps < cfg.total_steps:
        # epsilon-greedy behaviour: a random action with probability epsilon
        epsilon = cfg.epsilon(steps.env_steps)
        with torch.inference_mode():
            greedy = q_net(obs).argmax(1)
        u = torch.rand(steps.n, generator=explore, device=device)
        random_actions = torch.randint(0, n_actions, (steps.n,), generator=explore, device=device)
        actions = torch.where(u < epsilon, random_actions, greedy)
        next_obs, reward, terminated, _truncated, valid = steps.step(actions)
        buffer.add(obs, actions, reward, next_obs, terminated, None if steps.all_valid else valid)
        obs = steps.obs
        vector_step += 1

        batches: Iterable[tuple[Tensor, ...]] = ()
        if not cfg.replay:  # ablation: online Q-learning, one step on the transitions just added
            n_new = steps.n_valid  # each transition is learnt from once, as it arrives
            batches = (buffer.latest(n_new),) if n_new else ()
        elif steps.env_steps >= cfg.learning_starts and vector_step % cfg.train_every == 0:
            batches = (buffer.sample(cfg.batch_size) for _ in range(cfg.gradient_steps))
        for batch in batches:
            loss = _td_loss(q_net, target_net if cfg.target_network else q_net, batch, cfg)
            params.zero_grad()
            loss.backward()
            params.clip_grad_norm_(cfg.max_grad_norm)
            optimizer.step()
            n_updates += 1
            if n_updates % 50 == 0:
                loss_sum, loss_count = loss_sum + float(loss.detach()), loss_count + 1
            if cfg.target_network and n_updates % cfg.target_update_interval == 0:
                polyak_update(target_net, q_net, cfg.tau)
            if n_updates % 500 == 0:
                history.losses.append((steps.env_steps, loss_sum / loss_count))
                history.epsilon.append((steps.env_steps, epsilon))
                loss_sum, loss_count = 0.0, 0
        bar.update(steps.env_steps - bar.n)

        if schedule.should_stop(steps.env_steps, agent, callback, bar, steps):
            break
    close_bar(bar)  # at 100% of the steps run, also after an early stop
    history.episodes = steps.episodes
    schedule.finish(steps.env_steps, agent)
    return agent, history


def _td_loss(
    q_net: QNetwork, target_net: QNetwork, batch: tuple[Tensor, ...], cfg: DQNConfig
) -> Tensor:
    """Huber (or squared) TD error at the actions taken; the target is a constant."""
    obs, actions, rewards, next_obs, terminated = batch
    q_taken = q_net(obs).gather(1, actions.unsqueeze(1)).squeeze(1)  # Q(s, a) of the action taken
    with torch.no_grad():  # the TD target is not differentiated
        q_next = target_net(next_obs)
        if cfg.double_dqn:  # the online net chooses a', the target net evaluates it
            a_next = q_net(next_obs).argmax(1, keepdim=True)
            bootstrap = q_next.gather(1, a_next).squeeze(1)
        else:
            bootstrap = q_next.max(1).values
        td_target = (
            rewards + cfg.gamma * (1.0 - terminated) * bootstrap
        )  # no bootstrap past termination
    if cfg.huber:
        return F.smooth_l1_loss(q_taken, td_target)
    return F.mse_loss(q_taken, td_target)


def config_dict(config: DQNConfig) -> dict[str, Any]:
    """The config as a plain dict (for printing and saving)."""
    return dataclasses.asdict(config)
