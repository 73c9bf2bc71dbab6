"""Small neural networks of the course: MLPs, Q-networks (plain or dueling)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn


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
