"""Small neural networks of the course: MLPs, Q-networks (plain or dueling)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int,
    activation: type[nn.Module] = nn.ReLU,
    out_gain: float = 1.0,
) -> nn.Sequential:
    """``in_dim -> hidden... -> out_dim`` with ``activation`` between layers.

    Weights are orthogonally initialised (as in most PPO/DQN reference code), the last
    layer with gain ``out_gain``; biases are zero.
    """
    sizes = [in_dim, *hidden, out_dim]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        linear = nn.Linear(a, b)
        last = i == len(sizes) - 2
        nn.init.orthogonal_(
            linear.weight, gain=out_gain if last else float(nn.init.calculate_gain("relu"))
        )
        nn.init.zeros_(linear.bias)
        layers.append(linear)
        if not last:
            layers.append(activation())
    return nn.Sequential(*layers)


class QNetwork(nn.Module):
    """``Q(s, .)``: observations ``[B, obs_dim]`` -> action values ``[B, n_actions]``.

    With ``dueling=True`` the head splits into a state value ``V(s)`` and advantages
    ``A(s, a)``, combined as ``Q = V + A - mean_a A`` (Wang et al., 2016).
    """

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden: Sequence[int] = (128, 128),
        dueling: bool = False,
    ) -> None:
        super().__init__()
        self.obs_dim, self.n_actions, self.hidden, self.dueling = (
            obs_dim,
            n_actions,
            tuple(hidden),
            dueling,
        )
        if dueling:
            self.body = mlp(obs_dim, hidden[:-1], hidden[-1])
            self.body.append(nn.ReLU())
            self.value = mlp(hidden[-1], (), 1)
            self.advantage = mlp(hidden[-1], (), n_actions)
        else:
            self.body = mlp(obs_dim, hidden, n_actions)

    def forward(self, obs: Tensor) -> Tensor:
        if not self.dueling:
            return self.body(obs)
        h = self.body(obs)
        advantage = self.advantage(h)
        return self.value(h) + advantage - advantage.mean(dim=-1, keepdim=True)

    def architecture(self) -> dict[str, object]:
        """What a checkpoint must match to be loaded into this network."""
        return {
            "obs_dim": self.obs_dim,
            "n_actions": self.n_actions,
            "hidden": list(self.hidden),
            "dueling": self.dueling,
        }


class FlatParameters:
    """Parameters re-homed into one contiguous tensor ``data`` ``[P]``, with their gradients
    in another, ``grad`` ``[P]``; each parameter becomes a view into them.

    An optimiser over ``[data]`` and gradient clipping then cost a few tensor operations,
    not a few per layer: for the small networks of the course on a CPU, where every
    operation costs microseconds of overhead, that is about a sixth of a PPO step.
    Backpropagation accumulates into ``grad`` in place, so clear it with
    :meth:`zero_grad`, never with ``optimizer.zero_grad()`` (which would unlink the views).
    Every parameter should take part in the loss: one that does not gets a zero gradient
    (an optimiser would still move it by its momentum), not ``None``.
    """

    def __init__(self, params: Sequence[nn.Parameter] | Any) -> None:
        params = list(params)
        if not params:
            raise ValueError("FlatParameters needs at least one parameter")
        kinds = {(p.device, p.dtype) for p in params}
        if len(kinds) > 1:
            raise ValueError(
                f"parameters must share one device and dtype, got {sorted(map(str, kinds))}"
            )
        self.params = params
        with torch.no_grad():
            self.data = torch.cat([p.detach().reshape(-1) for p in params])
        self.grad = torch.zeros_like(self.data)
        self.data.grad = self.grad
        offset = 0
        for p in params:
            n = p.numel()
            p.data = self.data[offset : offset + n].view_as(p)
            p.grad = self.grad[offset : offset + n].view_as(p)
            offset += n

    def zero_grad(self) -> None:
        """Clear every parameter's gradient (in place: the views stay linked)."""
        self.grad.zero_()

    @torch.no_grad()
    def clip_grad_norm_(self, max_norm: float | None) -> Tensor:
        """Scale the gradient down to norm ``max_norm`` where it is longer, as
        ``torch.nn.utils.clip_grad_norm_`` does (None: leave it). Returns the norm before
        clipping (a 0-d tensor, not synchronised)."""
        norm = torch.linalg.vector_norm(self.grad)
        if max_norm is not None:
            self.grad.mul_(torch.clamp(max_norm / (norm + 1e-6), max=1.0))
        return norm


@torch.no_grad()
def polyak_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """``theta_target <- tau * theta_online + (1 - tau) * theta_target`` (tau = 1: a copy)."""
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        t.lerp_(o, tau)


class ActorCritic(nn.Module):
    """A policy ``pi(a|s)`` and a value function ``V(s)`` as two separate MLPs (tanh).

    Discrete actions: a categorical distribution over ``n_actions`` logits. Continuous
    actions (``action_dim``): a Gaussian with a state-independent, learned log standard
    deviation. The actor's last layer starts near zero (gain 0.01) so that the first
    policy is close to uniform; weights are orthogonally initialised, as in the
    reference PPO implementations.
    """

    def __init__(
        self,
        obs_dim: int,
        n_actions: int | None = None,
        action_dim: int | None = None,
        hidden: Sequence[int] = (64, 64),
        log_std_init: float = 0.0,
    ) -> None:
        super().__init__()
        if (n_actions is None) == (action_dim is None):
            raise ValueError("give exactly one of n_actions (discrete) or action_dim (continuous)")
        self.obs_dim, self.n_actions, self.action_dim = obs_dim, n_actions, action_dim
        self.hidden, self.log_std_init = tuple(hidden), log_std_init
        self.continuous = action_dim is not None
        out = action_dim if self.continuous else n_actions
        self.actor = mlp(obs_dim, hidden, out, activation=nn.Tanh, out_gain=0.01)
        self.critic = mlp(obs_dim, hidden, 1, activation=nn.Tanh, out_gain=1.0)
        if self.continuous:
            self.log_std = nn.Parameter(torch.full((action_dim,), float(log_std_init)))

    def distribution(self, obs: Tensor) -> torch.distributions.Distribution:
        """``pi(. | s)`` for a batch of observations ``[B, obs_dim]``."""
        out = self.actor(obs)
        if self.continuous:
            return torch.distributions.Normal(
                out, self.log_std.exp().expand_as(out), validate_args=False
            )
        return torch.distributions.Categorical(logits=out, validate_args=False)

    def log_prob(self, dist: torch.distributions.Distribution, actions: Tensor) -> Tensor:
        """``log pi(a|s)`` ``[B]`` (summed over action dimensions when continuous)."""
        logp = dist.log_prob(actions)
        return logp.sum(-1) if self.continuous else logp

    def entropy(self, dist: torch.distributions.Distribution) -> Tensor:
        h = dist.entropy()
        return h.sum(-1) if self.continuous else h

    def value(self, obs: Tensor) -> Tensor:
        """``V(s)`` ``[B]``."""
        return self.critic(obs).squeeze(-1)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """``(actor output, V(s))``: the logits (or the Gaussian's mean) ``[B, n]`` and the
        values ``[B]``."""
        return self.actor(obs), self.value(obs)

    @property
    def policy_log_std(self) -> Tensor | None:
        """The Gaussian's log standard deviation ``[action_dim]``; None when discrete."""
        return self.log_std if self.continuous else None

    def sample_actions(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Act with the stochastic policy: ``(a ~ pi(.|s), log pi(a|s))``.

        ``obs`` ``[B, obs_dim]``; actions ``[B]`` (discrete) or ``[B, action_dim]``
        (continuous, unclipped), log-probabilities ``[B]``. The same distribution as
        ``distribution(obs).sample()`` and the same ``log_prob``, without building a
        distribution object: the rollouts of PPO and A2C call this at every step (and ``V``
        once per rollout, for all its steps at once).
        """
        out = self.actor(obs)
        action = policy_sample(out, self.policy_log_std)
        return action, policy_log_prob(out, action, self.policy_log_std)

    def sample(self, obs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(a ~ pi(.|s), log pi(a|s), V(s))``: :meth:`sample_actions` and :meth:`value`."""
        return *self.sample_actions(obs), self.value(obs)

    def evaluate(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(log pi(a|s), H[pi(.|s)], V(s))``, each ``[B]``, for the actions taken in a
        batch (``obs`` ``[B, obs_dim]``, or any leading shape): what the PPO and A2C losses
        need, with gradient."""
        out, value = self(obs)
        log_std = self.policy_log_std
        return policy_log_prob(out, actions, log_std), policy_entropy(out, log_std), value

    def deterministic_action(self, obs: Tensor) -> Tensor:
        """The mode of the policy: the most likely action, or the Gaussian's mean."""
        out = self.actor(obs)
        return out if self.continuous else out.argmax(-1)

    def architecture(self) -> dict[str, object]:
        """What a checkpoint must match to be loaded into this network."""
        return {
            "obs_dim": self.obs_dim,
            "n_actions": self.n_actions,
            "action_dim": self.action_dim,
            "hidden": list(self.hidden),
            "log_std_init": self.log_std_init,
        }


def policy_sample(out: Tensor, log_std: Tensor | None = None) -> Tensor:
    """Actions drawn from the policy given by the actor's output ``out`` ``[..., n]``:
    categorical over logits when ``log_std`` is None, else Gaussian with mean ``out`` and
    log standard deviation ``log_std`` (broadcast against ``out``)."""
    if log_std is not None:
        return out + log_std.exp() * torch.randn_like(out)
    # the Gumbel-max trick: argmax(logits + g), g i.i.d. Gumbel(0, 1), is distributed as
    # softmax(logits); -log E with E ~ Exp(1) is such a g. A few tensor operations, less than
    # half the time of torch.multinomial at the batch sizes of a rollout. exponential_() can
    # return exactly 0 (its uniforms have a finite resolution): g = -log 0 = +inf, and then
    # logits + g is inf, or NaN for a logit of -inf, which argmax picks: an action of
    # probability 0. Clamping E to the smallest positive normal float keeps g finite (87 in
    # float32; the action still wins almost surely, as with an E just above 0) and changes
    # no other draw (no nonzero E comes anywhere near 1e-38)
    log_e = torch.empty_like(out).exponential_().clamp_(min=torch.finfo(out.dtype).tiny).log_()
    return (out - log_e).argmax(-1)  # logits + g, with g = -log E


def policy_log_prob(out: Tensor, actions: Tensor, log_std: Tensor | None = None) -> Tensor:
    """``log pi(a|s)`` ``[...]`` of ``actions`` under the policy of :func:`policy_sample`
    (summed over action dimensions for a Gaussian)."""
    if log_std is not None:
        z = (actions - out) * torch.exp(-log_std)
        return (-0.5 * z.square() - log_std - _HALF_LOG_2PI).sum(-1)
    return out.log_softmax(-1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)


def policy_entropy(out: Tensor, log_std: Tensor | None = None) -> Tensor:
    """``H[pi(.|s)]`` ``[...]`` of the policy of :func:`policy_sample`."""
    if log_std is not None:  # a Gaussian's entropy does not depend on its mean
        return (0.5 + _HALF_LOG_2PI + log_std).expand_as(out).sum(-1)
    log_p = out.log_softmax(-1)
    return -(log_p.exp() * log_p).sum(-1)


def actor_critic_spec(envs: Any, algorithm: str) -> dict[str, Any]:
    """``ActorCritic`` arguments (and the action bounds ``low``/``high`` of a continuous
    space) for a vector env's spaces; a clear error naming ``algorithm`` otherwise."""
    import gymnasium as gym

    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        raise ValueError(f"this {algorithm} takes flat Box observations, got {obs_space}")
    if isinstance(act_space, gym.spaces.Discrete):
        return {"obs_dim": obs_space.shape[0], "n_actions": int(act_space.n)}
    if isinstance(act_space, gym.spaces.Box) and len(act_space.shape) == 1:
        return {
            "obs_dim": obs_space.shape[0],
            "action_dim": act_space.shape[0],
            "low": act_space.low,
            "high": act_space.high,
        }
    raise ValueError(f"{algorithm} needs a Discrete or a 1-D Box action space, got {act_space}")
