"""What every trained deep-RL agent of the course shares: acting on observations given
as arrays or tensors, and checkpoints that say what they hold."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

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
        x = obs if isinstance(obs, Tensor) else torch.as_tensor(np.asarray(obs))
        return x.to(self.device, torch.float32)

    @torch.no_grad()
    def act(self, obs: Any) -> Any:
        """The agent's (deterministic) action: a scalar for one observation, an array (or a
        tensor, for tensor input) for a batch."""
        x = self._obs_tensor(obs)
        single = x.dim() == len(self.observation_shape)
        actions = self._act(x.unsqueeze(0) if single else x)
        if single:
            a = actions[0]
            return int(a) if a.dim() == 0 and not a.is_floating_point() else a.cpu().numpy()
        return actions if isinstance(obs, Tensor) else actions.cpu().numpy()

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return (self.net.obs_dim,)

    def _act(self, obs: Tensor) -> Tensor:
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


@dataclass(frozen=True)
class TrainingConfig:
    """The fields every deep-RL config of the course shares: the evaluation schedule, the
    device and the CPU threads. (Subclasses list their own hyperparameters after these.)"""

    eval_every: int = 10_000  #: steps between greedy evaluations (0: never)
    eval_episodes: int = 20  #: seeded episodes per evaluation
    solve_threshold: float | None = None  #: stop once an evaluation's mean reaches it
    device: str = "auto"  #: "auto", "cpu", "cuda", "cuda:N"
    num_threads: int | None = 1  #: torch CPU threads while training (None: leave as set)

    def __post_init__(self) -> None:
        name = type(self).__name__
        for attr, minimum in (("eval_every", 0), ("eval_episodes", 1)):
            value = getattr(self, attr)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name}.{attr} must be an integer >= {minimum}, got {value!r}")
        n = self.num_threads
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ValueError(f"{name}.num_threads must be a positive integer or None, got {n!r}")


@dataclass
class TrainingHistory:
    """What every training run records; lists are indexed by environment steps."""

    episodes: list[tuple[int, float, int]] = field(default_factory=list)  #: (step, return, length)
    evaluations: list[tuple[int, float, float]] = field(default_factory=list)  #: (step, mean, std)
    train_time: float = 0.0  #: seconds spent training (evaluations excluded)
    solved_step: int | None = None  #: first evaluation that reached the solve threshold
    solved_time: float | None = None  #: training seconds up to then

    def returns(self) -> np.ndarray:
        """Training-episode returns in order (with exploration: not the agent's score)."""
        return np.array([r for _, r, _ in self.episodes])


class TrainingClock:
    """Wall time spent training: started when made, paused while evaluations run."""

    def __init__(self) -> None:
        self.start, self.paused = time.perf_counter(), 0.0

    def train_time(self) -> float:
        return time.perf_counter() - self.start - self.paused


class EvaluationSchedule:
    """Greedy evaluations during training, every ``every`` environment steps, with the
    training clock paused while they run; tracks when a ``threshold`` is first reached.
    Agents trained side by side share one ``clock``, so that no agent's training time
    counts another's evaluations."""

    def __init__(
        self,
        env: Any,
        every: int,
        episodes: int,
        seed: int,
        threshold: float | None,
        history: TrainingHistory,
        clock: TrainingClock | None = None,
    ) -> None:
        self.env, self.every, self.episodes, self.seed = env, every, episodes, seed
        self.threshold, self.history = threshold, history
        self.next = every
        self.clock = clock or TrainingClock()

    @classmethod
    def for_training(
        cls,
        eval_env: Any,
        cfg: TrainingConfig,
        seed: int,
        history: TrainingHistory,
        clock: TrainingClock | None = None,
    ) -> EvaluationSchedule:
        """The schedule a config asks for; evaluation episodes are seeded ``10_000 + seed``."""
        return cls(
            eval_env,
            cfg.eval_every,
            cfg.eval_episodes,
            10_000 + seed,
            cfg.solve_threshold,
            history,
            clock,
        )

    def train_time(self) -> float:
        return self.clock.train_time()

    def due(self, step: int) -> bool:
        return bool(self.every) and self.env is not None and step >= self.next

    def should_stop(self, step: int, agent: Agent, callback: Any = None, bar: Any = None) -> bool:
        """After an update: evaluate if one is due; True when training should stop (the
        threshold was reached, or ``callback(step, history, agent)`` returned True)."""
        if not self.due(step):
            return False
        solved = self.evaluate(agent, step)
        if bar is not None:
            bar.set_postfix(eval=f"{self.history.evaluations[-1][1]:.0f}")
        return solved or bool(callback is not None and callback(step, self.history, agent))

    def evaluate(self, agent: Agent, step: int) -> bool:
        """Evaluate now; True if this evaluation reached the threshold."""
        from rlcourse.evaluate import evaluate

        self.next += self.every
        t0 = time.perf_counter()
        returns = evaluate(agent, self.env, self.episodes, seed=self.seed)
        self.clock.paused += time.perf_counter() - t0
        self.history.evaluations.append((step, float(returns.mean()), float(returns.std())))
        self.history.train_time = self.train_time()
        solved = self.threshold is not None and returns.mean() >= self.threshold
        if solved and self.history.solved_step is None:
            self.history.solved_step, self.history.solved_time = step, self.history.train_time
        return solved


def actor_critic_setup(
    env: Any, cfg: Any, seed: int, eval_env: str | None, algorithm: str
) -> tuple[Any, ...]:
    """What PPO, A2C and REINFORCE do first: the device, the seeded vector env, a fresh
    ``ActorCritic`` for its spaces, the action bounds and the evaluation env id.

    Returns ``(device, envs, net, low, high, eval_env)``.
    """
    from rlcourse.envs.vector import make_vector_env
    from rlcourse.nets import ActorCritic, actor_critic_spec
    from rlcourse.utils import seed_everything

    device = resolve_device(cfg.device)
    seed_everything(seed)
    envs = make_vector_env(env, cfg.num_envs)
    spec = actor_critic_spec(envs, algorithm)
    low, high = spec.pop("low", None), spec.pop("high", None)
    net = ActorCritic(**spec, hidden=cfg.hidden, log_std_init=cfg.log_std_init).to(device)
    return device, envs, net, low, high, eval_env or (env if isinstance(env, str) else None)
