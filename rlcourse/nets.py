"""Small neural networks of the course: MLPs, Q-networks (plain or dueling)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

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
