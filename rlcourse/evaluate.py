"""Evaluate a policy on fresh, seeded episodes, separate from training.

The score of an agent is the return of its greedy (deterministic) policy on
episodes it did not train on, not the epsilon-greedy returns seen during
training: exploration costs reward, and training episodes are not independent
of what was learned from them.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from rlcourse.envs.tabular import as_tabular_env
from rlcourse.envs.vector import TabularVectorEnv


def _greedy_table(agent: Any) -> np.ndarray | None:
    """``argmax_a`` of a ``[S, A]`` Q-table or policy tensor/array, else None."""
    if isinstance(agent, torch.Tensor | np.ndarray):
        table = np.asarray(agent.detach().cpu() if isinstance(agent, torch.Tensor) else agent)
        if table.ndim != 2:
            raise ValueError(
                f"a table agent must be a [S, A] Q-table or policy, got shape {list(table.shape)}"
            )
        return table.argmax(1)
    return None


#: episodes of an env without a time limit are cut here (a greedy policy can loop forever)
DEFAULT_MAX_STEPS = 10_000


def evaluate(
    agent: Any,
    env: Any,
    n_episodes: int = 100,
    seed: int = 0,
    *,
    max_episode_steps: int | None = None,
) -> np.ndarray:
    """Returns ``[n_episodes]`` of the agent's greedy policy on seeded episodes.

    ``agent`` is a ``[S, A]`` table (a Q-table or a policy; its argmax is played) or an
    object whose ``act(obs)`` maps a batch of observations to a batch of actions.
    ``env`` is an env id or an environment. Episode ``i`` runs in its own copy of the
    env seeded ``seed + i``, so two agents evaluated with the same seed meet the same
    start states and the same random outcomes wherever they act alike.

    Episodes end at the env's own time limit; an env without one (CliffWalking, where
    a greedy policy can walk into a wall forever) is cut after ``max_episode_steps``
    (default 10,000) steps, and the return collected until then counts.
    """
    if not isinstance(n_episodes, int) or isinstance(n_episodes, bool) or n_episodes < 1:
        raise ValueError(f"n_episodes must be a positive integer, got {n_episodes!r}")
    greedy = _greedy_table(agent)
    if greedy is None and not callable(getattr(agent, "act", None)):
        raise TypeError("agent must be a [S, A] table or have an act(obs) method")
    try:
        tab = as_tabular_env(env)
    except ValueError:
        tab = None
    if tab is not None:
        vec = TabularVectorEnv(tab, n_episodes)
        if greedy is not None and len(greedy) != vec.S:
            raise ValueError(f"the table has {len(greedy)} rows but the env has {vec.S} states")
        act = (lambda obs: greedy[obs]) if greedy is not None else agent.act
    else:
        if not isinstance(env, str):
            raise ValueError("pass the env id, so that one seeded copy per episode can be made")
        vec = gym.make_vec(env, num_envs=n_episodes, vectorization_mode="sync",
                           vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})  # fmt: skip
        act = (lambda obs: greedy[np.asarray(obs)]) if greedy is not None else agent.act
    return _first_episode_returns(vec, act, seed, max_episode_steps or DEFAULT_MAX_STEPS)


def _first_episode_returns(vec: Any, act: Any, seed: int, max_steps: int) -> np.ndarray:
    """Run every copy until its first episode ends (or ``max_steps``); the undiscounted
    return of each."""
    n = vec.num_envs
    obs, _ = vec.reset(seed=seed)
    returns, running = np.zeros(n), np.ones(n, dtype=bool)
    for _ in range(max_steps):
        if not running.any():
            break
        actions = act(obs)
        if isinstance(actions, torch.Tensor):
            actions = actions.detach().cpu().numpy()
        obs, reward, terminated, truncated, _ = vec.step(np.asarray(actions))
        returns += np.asarray(reward, dtype=np.float64) * running
        running &= ~(np.asarray(terminated) | np.asarray(truncated))
    vec.close()
    return returns
