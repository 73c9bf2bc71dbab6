"""What every trained deep-RL agent of the course shares: acting on observations given
as arrays or tensors, and checkpoints that say what they hold."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from rlcourse.evaluate import SOLVE_EPISODES, reward_threshold
from rlcourse.utils import resolve_device


class Agent:
    """A trained network that acts: subclasses set ``algorithm``, ``network_class`` and
    implement ``_act(obs [B, ...]) -> actions [B, ...]``."""

    algorithm: ClassVar[str] = ""
    network_class: ClassVar[type[nn.Module]]

    def __init__(self, net: nn.Module, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device)

    def _obs_tensor(self, obs: Any) -> Tensor:
        """``obs`` (an array, a list or a tensor on any device) as float32 on the net's device."""
        if isinstance(obs, Tensor):
            return obs.to(self.device, torch.float32)
        return torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device)

    @torch.no_grad()
    def act(self, obs: Any) -> Any:
        """The agent's (deterministic) action for one observation ``[*obs_shape]`` or a batch
        ``[B, *obs_shape]``, answered in the form it was asked in, wherever the net is:

        * a tensor gives a tensor on the tensor's device (``[]`` or ``[action_dim]`` for one
          observation, ``[B]`` or ``[B, action_dim]`` for a batch);
        * anything else (a NumPy array, a list) gives NumPy: a Python ``int`` for one
          observation and discrete actions, an array otherwise, ready for a gymnasium env.
        """
        x = self._obs_tensor(obs)
        single = x.dim() == len(self.observation_shape)
        actions = self._act(x.unsqueeze(0) if single else x)
        actions = actions[0] if single else actions
        if isinstance(obs, Tensor):
            return actions.to(obs.device)
        actions = actions.cpu().numpy()  # one copy to the host, whatever the device
        if actions.ndim == 0 and actions.dtype.kind in "iu":
            return int(actions)
        return actions

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return (self.net.obs_dim,)

    def _act(self, obs: Tensor) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def decide(self, obs: Any) -> Decision:
        """What the agent makes of one observation ``[*obs_shape]``: the action it takes
        and the numbers behind it (see :class:`Decision`)."""
        raise NotImplementedError

    def extras(self) -> dict[str, Any]:
        """Constructor arguments besides the network that a checkpoint must keep."""
        return {}

    def save(self, path: str | Path) -> None:
        """Write the network, its architecture and the agent's extras to ``path``."""
        checkpoint = {
            "algorithm": self.algorithm,
            "architecture": self.net.architecture(),
            "state_dict": self.net.state_dict(),
            "extras": self.extras(),
        }
        torch.save(checkpoint, path)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> Agent:
        """Read an agent written by :meth:`save`; a clear error for anything else."""
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as err:  # truncated, or not a torch file at all
            raise ValueError(
                f"{path} is not a readable checkpoint ({type(err).__name__}: {err})"
            ) from err
        if not isinstance(data, dict) or data.get("algorithm") != cls.algorithm:
            found = data.get("algorithm") if isinstance(data, dict) else type(data).__name__
            raise ValueError(
                f"{path} is not a {cls.algorithm.upper()} checkpoint (it holds {found!r})"
            )
        try:
            net = cls.network_class(**data["architecture"])
            net.load_state_dict(data["state_dict"])
        except (RuntimeError, TypeError, KeyError) as err:
            raise ValueError(
                f"{path}: the weights do not fit the network it describes: {err}"
            ) from err
        return cls(net, resolve_device(device), **data.get("extras", {}))


def action_bound(x: Any, device: torch.device | str) -> Tensor | None:
    """An action bound as a float tensor on ``device`` (None stays None)."""
    return None if x is None else torch.as_tensor(x, dtype=torch.float32, device=device)


class PolicyAgent(Agent):
    """A trained actor-critic (PPO, A2C, REINFORCE) that acts deterministically: the most
    likely action, or the Gaussian's mean clipped to the action bounds ``low``/``high``
    (kept in the checkpoint)."""

    def __init__(
        self, net: nn.Module, device: torch.device | str = "cpu", low: Any = None, high: Any = None
    ) -> None:
        super().__init__(net, device)
        self.low, self.high = action_bound(low, self.device), action_bound(high, self.device)

    def extras(self) -> dict[str, Any]:
        if self.low is None:
            return {}
        return {"low": self.low.cpu().tolist(), "high": self.high.cpu().tolist()}

    def _act(self, obs: Tensor) -> Tensor:
        action = self.net.deterministic_action(obs)
        if self.net.continuous and self.low is not None:
            action = torch.clamp(action, self.low, self.high)
        return action

    @torch.no_grad()
    def decide(self, obs: Any) -> Decision:
        """The policy ``pi(.|s)`` (probabilities, or the Gaussian's mean and std), ``V(s)``
        and the deterministic action, for one observation ``[obs_dim]``."""
        x = self._obs_tensor(obs).unsqueeze(0)
        dist = self.net.distribution(x)
        if self.net.continuous:
            kind, values, std = "gaussian", dist.mean[0], dist.stddev[0].cpu().numpy()
        else:
            kind, values, std = "probs", dist.probs[0], None
        return Decision(
            observation=x[0].cpu().numpy(),
            action=_host_action(self._act(x)[0]),
            kind=kind,
            values=values.cpu().numpy(),
            std=std,
            value=float(self.net.value(x)[0]),
        )


def _host_action(action: Tensor) -> int | np.ndarray:
    """One action as a gymnasium env takes it: an ``int``, or an array ``[action_dim]``."""
    a = action.cpu().numpy()
    return int(a) if a.ndim == 0 else a


@dataclass(frozen=True)
class Decision:
    """What an agent sees and decides at one step: what the viewer and the episode
    animation show.

    ``kind`` says what ``values`` holds: ``"q"``, ``Q(s, a)`` for every action ``[A]``
    (DQN, a Q-table; ``value`` is then ``max_a Q(s, a)``); ``"probs"``, ``pi(a|s)``
    ``[A]`` (a categorical policy; ``value`` is the critic's ``V(s)``); ``"gaussian"``, the
    mean ``[action_dim]`` of a Gaussian policy with standard deviation ``std``.
    """

    observation: np.ndarray  #: what the agent saw ``[obs_dim]`` (a Q-table: the state, ``[]``)
    action: int | np.ndarray  #: the action it takes (greedy or deterministic)
    kind: str  #: "q", "probs" or "gaussian"
    values: np.ndarray  #: Q(s, .) or pi(.|s) ``[A]``, or the Gaussian's mean ``[action_dim]``
    std: np.ndarray | None = None  #: the Gaussian's standard deviation ``[action_dim]``
    value: float | None = None  #: V(s) (actor-critic) or max_a Q(s, a) (Q-values)


def decide(agent: Any, obs: Any) -> Decision:
    """``agent.decide(obs)`` for a course agent; for a ``[S, A]`` Q-table (tensor or array),
    the row of state ``obs`` and its greedy action (the first of tied ones, as
    :func:`rlcourse.evaluate.evaluate` plays it)."""
    if isinstance(agent, Agent):
        return agent.decide(obs)
    if isinstance(agent, Tensor | np.ndarray):
        table = np.asarray(agent.detach().cpu() if isinstance(agent, Tensor) else agent)
        q = table[int(obs)].astype(np.float64)
        return Decision(np.asarray(int(obs)), int(q.argmax()), "q", q, value=float(q.max()))
    raise _not_an_agent(agent)


def _not_an_agent(agent: Any) -> TypeError:
    return TypeError(
        "expected a trained course agent (DQN, PPO, A2C, REINFORCE) or a [S, A] Q-table, "
        f"got {type(agent).__name__}"
    )


def check_agent_env(agent: Any, env: Any) -> None:
    """Refuse, with the mismatch named, an agent that cannot act in ``env`` (a gymnasium
    env): another observation shape, or another action space."""
    import gymnasium as gym

    obs_space, act_space = env.observation_space, env.action_space
    name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    if isinstance(agent, Tensor | np.ndarray):
        S, A = agent.shape if agent.ndim == 2 else (None, None)
        if not (
            isinstance(obs_space, gym.spaces.Discrete)
            and isinstance(act_space, gym.spaces.Discrete)
        ):
            raise ValueError(
                f"a Q-table acts in Discrete state and action spaces; {name} has "
                f"{obs_space} and {act_space}"
            )
        if (S, A) != (obs_space.n, act_space.n):
            raise ValueError(
                f"the Q-table has shape {list(agent.shape)}, but {name} has "
                f"{obs_space.n} states and {act_space.n} actions"
            )
        return
    if not isinstance(agent, Agent):
        raise _not_an_agent(agent)
    if obs_space.shape != agent.observation_shape:
        raise ValueError(
            f"the {agent.algorithm.upper()} agent takes observations of shape "
            f"{list(agent.observation_shape)}, but {name}'s are {list(obs_space.shape or ())} "
            f"({obs_space}): was it trained on another env?"
        )
    net = agent.net
    n_actions, action_dim = getattr(net, "n_actions", None), getattr(net, "action_dim", None)
    if isinstance(act_space, gym.spaces.Discrete):
        if n_actions != act_space.n:
            has = f"{n_actions} actions" if n_actions else f"continuous actions [{action_dim}]"
            raise ValueError(
                f"{name} has {act_space.n} discrete actions, but the "
                f"{agent.algorithm.upper()} agent has {has}"
            )
    elif isinstance(act_space, gym.spaces.Box):
        if action_dim != act_space.shape[0]:
            has = f"{n_actions} discrete actions" if n_actions else f"actions [{action_dim}]"
            raise ValueError(
                f"{name} has continuous actions {act_space}, but the "
                f"{agent.algorithm.upper()} agent has {has}"
            )
    else:
        raise ValueError(f"{name}'s action space {act_space} is not one a course agent acts in")


def _seed_range(start: int | None, n: int) -> range:
    return range(0) if start is None else range(start, start + n)


@dataclass(frozen=True)
class TrainingConfig:
    """The fields every deep-RL config of the course shares: the evaluation schedule, the
    rule that chooses the policy handed back, the device and the CPU threads. (Subclasses
    list their own hyperparameters after these.)

    Every ``eval_every`` steps the greedy policy plays the ``eval_episodes`` *selection*
    episodes (seeded ``eval_seed + i``). One that reaches ``solve_threshold`` there is
    confirmed on 100 *confirmation* episodes (``confirm_seed + i``); a confirmed solve ends
    training (``early_stop``). The policy handed back (``keep_best``) is the one with the
    best confirmation score, else the one with the best selection score; its score on 100
    *held-out* episodes (``held_out_seed + i``), never used to choose or to stop, is the
    agent's score (``history.held_out_mean``; see :mod:`rlcourse.evaluate`).
    """

    eval_every: int = 10_000  #: steps between greedy evaluations (0: never)
    eval_episodes: int = 20  #: seeded selection episodes per evaluation
    eval_seed: int = 10_000  #: selection episodes are seeded eval_seed + i
    #: a selection mean that reaches it is confirmed on 100 episodes; "auto": the env's
    #: reward_threshold (CartPole-v1: 475); None: no threshold (keep the best selection score)
    solve_threshold: float | str | None = "auto"
    confirm_seed: int = 20_000  #: the 100 confirmation episodes are seeded confirm_seed + i
    held_out_seed: int | None = 30_000  #: the 100 held-out episodes (None: no held-out score)
    early_stop: bool = True  #: stop at the first confirmed solve
    keep_best: bool = True  #: hand back the best policy found, not the last one
    device: str = "auto"  #: "auto", "cpu", "cuda", "cuda:N"
    num_threads: int | None = 1  #: torch CPU threads while training (None: leave as set)

    def __post_init__(self) -> None:
        name = type(self).__name__
        for attr, minimum in (("eval_every", 0), ("eval_episodes", 1), ("eval_seed", 0)):
            value = getattr(self, attr)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name}.{attr} must be an integer >= {minimum}, got {value!r}")
        for attr in ("confirm_seed", "held_out_seed"):
            value = getattr(self, attr)
            if value is None and attr == "held_out_seed":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}.{attr} must be an integer >= 0, got {value!r}")
        threshold = self.solve_threshold
        if not (threshold is None or threshold == "auto"):
            if isinstance(threshold, bool) or not isinstance(threshold, int | float):
                raise ValueError(
                    f"{name}.solve_threshold must be a number, 'auto' or None, got {threshold!r}"
                )
            if self.eval_every == 0:
                raise ValueError(
                    f"{name}.solve_threshold={threshold} needs evaluations, but eval_every=0: "
                    "set eval_every > 0, or solve_threshold=None"
                )
        self._check_disjoint(
            ("eval_seed", self.eval_seed, self.eval_episodes),
            ("confirm_seed", self.confirm_seed, SOLVE_EPISODES),
            ("held_out_seed", self.held_out_seed, SOLVE_EPISODES),
        )
        n = self.num_threads
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ValueError(f"{name}.num_threads must be a positive integer or None, got {n!r}")

    def _check_disjoint(self, *sets: tuple[str, int | None, int]) -> None:
        """Refuse episode sets (``(field, first seed, count)``) that share a seed."""
        for i, (a, start_a, n_a) in enumerate(sets):
            for b, start_b, n_b in sets[i + 1 :]:
                common = set(_seed_range(start_a, n_a)) & set(_seed_range(start_b, n_b))
                if common:
                    raise ValueError(
                        f"{type(self).__name__}.{b}: its episodes (seeds {start_b}.."
                        f"{start_b + n_b - 1}) overlap the {a} episodes (seeds {start_a}.."
                        f"{start_a + n_a - 1}) at seed {min(common)}; the sets that choose, "
                        "stop and report must be disjoint"
                    )

    def check_training_seed(self, seed: int) -> None:
        """Refuse a training seed whose first episodes (seeded ``seed + i`` for each of the
        ``num_envs`` copies) would be evaluation episodes."""
        n = getattr(self, "num_envs", 1)
        self._check_disjoint(
            ("training seed", seed, n),
            ("eval_seed", self.eval_seed, self.eval_episodes if self.eval_every else 0),
            ("confirm_seed", self.confirm_seed, SOLVE_EPISODES if self.eval_every else 0),
            ("held_out_seed", self.held_out_seed, SOLVE_EPISODES),
        )

    def threshold_for(self, env_id: str | None) -> float | None:
        """The solve threshold this config asks for on ``env_id`` (None: none)."""
        if self.solve_threshold == "auto":
            return reward_threshold(env_id) if self.eval_every else None
        return None if self.solve_threshold is None else float(self.solve_threshold)


@dataclass
class TrainingHistory:
    """What every training run records; lists are indexed by environment steps.

    ``evaluations`` are the greedy policy's scores on the selection episodes,
    ``confirmations`` those on the 100 confirmation episodes; ``selected_step`` says which
    policy was handed back and ``selection`` why; ``held_out_mean`` is its score on 100
    episodes used for nothing else, and ``solved`` whether that reaches ``threshold``.
    """

    episodes: list[tuple[int, float, int]] = field(default_factory=list)  #: (step, return, length)
    #: (step, mean, std) on the selection episodes
    evaluations: list[tuple[int, float, float]] = field(default_factory=list)
    #: (step, mean, std) on the confirmation episodes
    confirmations: list[tuple[int, float, float]] = field(default_factory=list)
    train_time: float = 0.0  #: seconds spent training (evaluations excluded)
    wall_time: float = 0.0  #: seconds in all, evaluations included
    threshold: float | None = None  #: the solve threshold used (None: none)
    solved_step: int | None = None  #: first confirmed solve (None: none)
    solved_time: float | None = None  #: training seconds up to then (evaluations excluded)
    solved_wall_time: float | None = None  #: seconds up to then, evaluations included
    selected_step: int | None = None  #: the step of the policy handed back
    selection: str = ""  #: why that policy was handed back
    held_out_mean: float | None = None  #: its mean return on the 100 held-out episodes
    held_out_std: float | None = None  #: and their standard deviation
    #: why training ended: "budget" (all its steps), "solved" (a confirmed solve, with
    #: early_stop) or "callback" (the callback returned True, e.g. a monitor's Stop button)
    stop_reason: str = "budget"

    def returns(self) -> np.ndarray:
        """Training-episode returns in order (with exploration: not the agent's score)."""
        return np.array([r for _, r, _ in self.episodes])

    @property
    def solved(self) -> bool:
        """Whether the agent handed back reaches the threshold on the held-out episodes."""
        return (
            self.threshold is not None
            and self.held_out_mean is not None
            and self.held_out_mean >= self.threshold
        )


class TrainingClock:
    """Wall time spent training: started when made, paused while evaluations run."""

    def __init__(self) -> None:
        self.start, self.paused = time.perf_counter(), 0.0

    def train_time(self) -> float:
        return time.perf_counter() - self.start - self.paused

    def wall_time(self) -> float:
        return time.perf_counter() - self.start


class EvaluationSchedule:
    """Greedy evaluations during training, every ``cfg.eval_every`` environment steps, with
    the training clock paused while they run, and the select-and-confirm rule of
    :class:`TrainingConfig`: which policy to keep, when to stop, and the held-out score of
    the one handed back. Agents trained side by side share one ``clock``, so that no agent's
    training time counts another's evaluations."""

    def __init__(
        self,
        env: Any,
        cfg: TrainingConfig,
        history: TrainingHistory,
        clock: TrainingClock | None = None,
    ) -> None:
        self.env, self.cfg, self.history = env, cfg, history
        self.every = cfg.eval_every if env is not None else 0
        self.threshold = cfg.threshold_for(env if isinstance(env, str) else None)
        history.threshold = self.threshold
        self.next = self.every
        self.clock = clock or TrainingClock()
        self.best: tuple[float, float] | None = None  # (confirmation, selection) of the kept one
        self.kept: dict[str, Tensor] | None = None  # its parameters
        self.last_step: int | None = None
        self.stopped = False  # a confirmed solve ended training (early_stop)

    @classmethod
    def for_training(
        cls,
        eval_env: Any,
        cfg: TrainingConfig,
        seed: int,
        history: TrainingHistory,
        clock: TrainingClock | None = None,
    ) -> EvaluationSchedule:
        """The schedule a config asks for, after checking that the training seed's own
        episodes are none of the evaluation episodes."""
        cfg.check_training_seed(seed)
        return cls(eval_env, cfg, history, clock)

    def train_time(self) -> float:
        return self.clock.train_time()

    def due(self, step: int) -> bool:
        return bool(self.every) and step >= self.next

    def should_stop(
        self,
        step: int,
        agent: Agent,
        callback: Any = None,
        bar: Any = None,
        steps: Any = None,
    ) -> bool:
        """After each update: evaluate if one is due, then call ``callback(step, history,
        agent)`` with the history up to date (the episodes logged by ``steps``, a
        :class:`~rlcourse.envs.vector.Transitions`, read out first). True when training
        should stop: a confirmed solve with ``early_stop``, or the callback returned True
        (``history.stop_reason`` says which)."""
        stop = False
        if self.due(step):
            stop = self.evaluate(agent, step)
            if bar is not None:
                bar.set_postfix(eval=f"{self.history.evaluations[-1][1]:.0f}")
            if stop:
                self.history.stop_reason = "solved"
        if callback is not None and not stop:
            if steps is not None:
                self.history.episodes = steps.episodes  # one read-out of the episode log
            self.history.train_time = self.train_time()
            if callback(step, self.history, agent):
                self.history.stop_reason = "callback"
                return True
        return stop

    def _score(self, agent: Agent, n: int, seed: int) -> tuple[float, float]:
        """Mean and std of the greedy returns on ``n`` episodes seeded ``seed + i``, with
        the training clock paused."""
        from rlcourse.evaluate import evaluate

        t0 = time.perf_counter()
        returns = evaluate(agent, self.env, n, seed=seed)
        self.clock.paused += time.perf_counter() - t0
        return float(returns.mean()), float(returns.std())

    def evaluate(self, agent: Agent, step: int) -> bool:
        """Evaluate now (selection episodes, and confirmation if they reach the threshold);
        keep the policy if it is the best so far. True if training should stop."""
        self.next = (step // self.every + 1) * self.every if self.every else self.next
        self.last_step = step
        h, threshold = self.history, self.threshold
        mean, std = self._score(agent, self.cfg.eval_episodes, self.cfg.eval_seed)
        h.evaluations.append((step, mean, std))
        h.train_time = self.train_time()
        if threshold is None:  # no threshold: the best selection score is kept
            candidate = (-math.inf, mean)
            reason = f"the best selection score ({mean:.1f} on {self.cfg.eval_episodes} episodes)"
        elif mean >= threshold:  # a candidate: confirm it on 100 other episodes
            confirmed, c_std = self._score(agent, SOLVE_EPISODES, self.cfg.confirm_seed)
            h.confirmations.append((step, confirmed, c_std))
            candidate = (confirmed, mean)
            reason = (
                f"{'a confirmed solve' if confirmed >= threshold else 'the best confirmation'}"
                f": {mean:.1f} on the {self.cfg.eval_episodes} selection episodes, "
                f"{confirmed:.1f} on the {SOLVE_EPISODES} confirmation episodes"
            )
        else:
            candidate = (-math.inf, mean)
            reason = (
                f"the best selection score ({mean:.1f} on {self.cfg.eval_episodes} episodes); "
                "no policy reached the threshold there"
            )
        if self.best is None or candidate > self.best:
            self.best = candidate
            self.kept = {k: v.detach().clone() for k, v in agent.net.state_dict().items()}
            h.selected_step, h.selection = step, f"step {step:,}: {reason}"
        solved = threshold is not None and candidate[0] >= threshold
        if solved and h.solved_step is None:
            h.solved_step, h.solved_time = step, h.train_time
            h.solved_wall_time = self.clock.wall_time()
        self.stopped = solved and self.cfg.early_stop
        return self.stopped

    def finish(self, step: int, agent: Agent) -> None:
        """At the end of training: evaluate the final policy (if not just done), hand back
        the kept one (``keep_best``), and score it on the held-out episodes."""
        h = self.history
        if self.every and self.last_step != step and not self.stopped:
            self.evaluate(agent, step)
        if self.cfg.keep_best and self.kept is not None:
            agent.net.load_state_dict(self.kept)
        else:
            h.selected_step, h.selection = step, f"step {step:,}: the final policy"
        h.train_time = self.train_time()
        if self.cfg.held_out_seed is not None and isinstance(self.env, str):
            h.held_out_mean, h.held_out_std = self._score(
                agent, SOLVE_EPISODES, self.cfg.held_out_seed
            )
        h.wall_time = self.clock.wall_time()


def actor_critic_setup(
    env: Any, cfg: Any, seed: int, eval_env: str | None, algorithm: str
) -> tuple[Any, ...]:
    """What PPO, A2C and REINFORCE do first: the device, the seeded vector env, a fresh
    ``ActorCritic`` for its spaces, the action bounds and the evaluation env id.

    ``cfg.device="auto"`` follows the env (:func:`rlcourse.utils.resolve_device`): the GPU
    for the course's torch envs on a GPU, the CPU for gymnasium's envs, which step on the host.

    Returns ``(device, envs, net, low, high, eval_env)``.
    """
    from rlcourse.envs.vector import make_vector_env
    from rlcourse.nets import ActorCritic, actor_critic_spec
    from rlcourse.utils import seed_everything

    seed_everything(seed)
    envs = make_vector_env(env, cfg.num_envs)
    device = resolve_device(cfg.device, envs)
    spec = actor_critic_spec(envs, algorithm)
    low, high = spec.pop("low", None), spec.pop("high", None)
    net = ActorCritic(**spec, hidden=cfg.hidden, log_std_init=cfg.log_std_init).to(device)
    return device, envs, net, low, high, eval_env or (env if isinstance(env, str) else None)
