"""What the viewer and the episode animation say about an environment: a rendering copy of
it, and names for its observation components and actions, read from the env itself where
it has them (the course's grid worlds, gymnasium's toy_text constants)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from rlcourse.envs.tabular import _action_names

#: names of the observation components of gymnasium's classic-control envs (their docs)
OBSERVATION_LABELS: dict[str, tuple[str, ...]] = {
    "CartPoleEnv": ("cart position", "cart velocity", "pole angle", "pole angular velocity"),
    "PendulumEnv": ("cos θ", "sin θ", "angular velocity"),
    "MountainCarEnv": ("position", "velocity"),
    "Continuous_MountainCarEnv": ("position", "velocity"),
    "AcrobotEnv": ("cos θ1", "sin θ1", "cos θ2", "sin θ2", "θ1 velocity", "θ2 velocity"),
}
#: names of the actions of gymnasium's classic-control envs (their docs)
ACTION_LABELS: dict[str, tuple[str, ...]] = {
    "CartPoleEnv": ("push left", "push right"),
    "MountainCarEnv": ("push left", "no push", "push right"),
    "AcrobotEnv": ("torque -1", "torque 0", "torque +1"),
    "PendulumEnv": ("torque",),
    "Continuous_MountainCarEnv": ("force",),
}


def rendering_env(env: str | gym.Env, **make_kwargs: Any) -> gym.Env:
    """``env`` as an env that renders RGB frames: an id is made with
    ``render_mode="rgb_array"``; an env made with another render mode is refused, with
    the fix named."""
    if isinstance(env, str):
        try:
            return gym.make(env, render_mode="rgb_array", **make_kwargs)
        except (gym.error.Error, TypeError, ValueError) as err:
            raise ValueError(f"{env} cannot render RGB frames ({err})") from err
    if not isinstance(env, gym.Env):
        raise TypeError(f"expected a gymnasium env or an env id, got {type(env).__name__}")
    if env.render_mode != "rgb_array":
        name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        raise ValueError(
            f"{name} was made with render_mode={env.render_mode!r}, so it draws no frames: "
            f'make it with gymnasium.make({name!r}, render_mode="rgb_array"), or pass its id'
        )
    return env


def observation_labels(env: gym.Env) -> tuple[str, ...]:
    """A name per observation component (``("state",)`` for a Discrete observation)."""
    space = env.observation_space
    if isinstance(space, gym.spaces.Discrete):
        return ("state",)
    names = OBSERVATION_LABELS.get(type(env.unwrapped).__name__)
    n = int(space.shape[0]) if space.shape else 1
    return names if names is not None and len(names) == n else tuple(f"obs[{i}]" for i in range(n))


def action_labels(env: gym.Env) -> tuple[str, ...]:
    """A name per discrete action, or per component of a continuous action, in the env's
    own numbering."""
    unwrapped = env.unwrapped
    names = getattr(unwrapped, "action_names", None) or _action_names(unwrapped)
    names = names or ACTION_LABELS.get(type(unwrapped).__name__)
    space = env.action_space
    n = int(space.n) if isinstance(space, gym.spaces.Discrete) else int(space.shape[0])
    if names is not None and len(names) == n:
        return tuple(names)
    return tuple(f"action {i}" for i in range(n))
