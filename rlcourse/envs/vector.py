"""Many copies of a tabular environment stepped at once, with NumPy.

:class:`TabularVectorEnv` follows gymnasium's vector-env API with the
``SAME_STEP`` autoreset mode: when a copy's episode ends, ``step`` returns the
first observation of its next episode, and the observation that ended the
episode is in ``info["final_obs"]`` (valid where ``info["_final_obs"]`` is True).
Learning code must bootstrap from the final observation on ``truncated`` and
not at all on ``terminated``.

Copy ``i`` draws its randomness from its own stream seeded ``seed + i`` (as
gymnasium seeds the copies of a vector env), so a run gives the same numbers
whether it is stepped alone or beside others.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv

from rlcourse.envs.tabular import TabularEnv, as_tabular_env
from rlcourse.utils import RandomStreams


def seeds_for(seed: int | list[int] | None, n: int) -> list[int]:
    """Per-copy seeds: ``seed + i`` for an int (gymnasium's convention), or a list of n seeds."""
    if seed is None:
        return [int(s) for s in np.random.SeedSequence().generate_state(n)]
    if isinstance(seed, int | np.integer) and not isinstance(seed, bool):
        return [int(seed) + i for i in range(n)]
    seeds = [int(s) for s in seed]
    if len(seeds) != n:
        raise ValueError(f"expected {n} seeds, one per copy, got {len(seeds)}")
    return seeds


def sample_rows(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """One index per row of ``cdf [N, K]`` (cumulative probabilities) for ``u [N]``."""
    return np.minimum((cdf <= u[:, None]).sum(1), cdf.shape[1] - 1)


class TabularVectorEnv(VectorEnv):
    """``num_envs`` copies of a tabular env (a course env or a gymnasium toy_text env).

    Observations and actions are ``int64`` arrays ``[num_envs]``, rewards ``float64``.
    Episodes are cut at ``max_episode_steps`` (default: the env's registered time
    limit) with ``truncated=True``.
    """

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, env: Any, num_envs: int, *, max_episode_steps: int | None = None) -> None:
        if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.env: TabularEnv = as_tabular_env(env)
        self.num_envs = num_envs
        self.S, self.A = self.env.P.shape[:2]
        self._cdf = np.cumsum(self.env.P, axis=-1)
        self._cdf[..., -1] = 1.0  # the last bin catches rounding
        self._initial_cdf = np.cumsum(self.env.initial)
        self._initial_cdf[-1] = 1.0
        self.max_episode_steps = max_episode_steps or self.env.max_episode_steps
        self.single_observation_space = gym.spaces.Discrete(self.S)
        self.single_action_space = gym.spaces.Discrete(self.A)
        self.observation_space = gym.spaces.MultiDiscrete([self.S] * num_envs)
        self.action_space = gym.spaces.MultiDiscrete([self.A] * num_envs)
        self._streams: RandomStreams | None = None
        self.state = np.zeros(num_envs, dtype=np.int64)
        self.steps = np.zeros(num_envs, dtype=np.int64)

    def _sample_initial(self, u: np.ndarray) -> np.ndarray:
        return np.minimum(np.searchsorted(self._initial_cdf, u, side="right"), self.S - 1)

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start every copy; ``seed`` (int or list) seeds copy ``i``'s stream with ``seed + i``."""
        if seed is not None or self._streams is None:
            self._streams = RandomStreams(seeds_for(seed, self.num_envs))
        self.state = self._sample_initial(self._streams.uniform(2)[:, 1])
        self.steps[:] = 0
        return self.state.copy(), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """One step of every copy: ``(obs, reward, terminated, truncated, info)``."""
        if self._streams is None:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(actions)
        if a.shape != (self.num_envs,) or a.dtype.kind not in "iu":
            raise ValueError(
                f"actions must be {self.num_envs} integers (one per copy), got shape "
                f"{a.shape} and dtype {a.dtype}"
            )
        if a.min() < 0 or a.max() >= self.A:
            raise ValueError(f"actions must lie in [0, {self.A}), got {a.tolist()}")
        # two numbers per copy and step, always: the transition, and a start state if it ends
        u = self._streams.uniform(2)
        s = self.state
        s_next = sample_rows(self._cdf[s, a], u[:, 0])
        reward = self.env.reward[s, a, s_next]
        terminated = self.env.terminal[s_next]
        self.steps += 1
        truncated = np.zeros_like(terminated)
        if self.max_episode_steps is not None:
            truncated = (self.steps >= self.max_episode_steps) & ~terminated
        done = terminated | truncated
        info: dict[str, Any] = {}
        obs = s_next
        if done.any():
            info["final_obs"], info["_final_obs"] = s_next, done
            obs = np.where(done, self._sample_initial(u[:, 1]), s_next)
            self.steps[done] = 0
        self.state = obs
        return obs.copy(), reward, terminated, truncated, info


def tabular_vector_env(env: Any, num_envs: int) -> VectorEnv:
    """A vector env of ``num_envs`` copies for the tabular methods.

    Envs with a transition table (the course's, gymnasium's toy_text) become a
    :class:`TabularVectorEnv`; a gymnasium vector env is returned as it is (it must use
    the ``SAME_STEP`` autoreset mode); any other env id is vectorised with
    ``gymnasium.make_vec`` in ``SAME_STEP`` mode. Observation and action spaces must
    be discrete.
    """
    if isinstance(env, VectorEnv):
        vec = env
        mode = vec.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(
                f"the tabular methods need a vector env with autoreset_mode=SAME_STEP, got {mode}"
            )
        if vec.num_envs != num_envs:
            raise ValueError(
                f"the vector env's copies (num_envs={vec.num_envs}) do not match "
                f"num_runs={num_envs}: each run needs one copy"
            )
    else:
        try:
            return TabularVectorEnv(env, num_envs)
        except ValueError as err:
            if "no transition table" not in str(err):
                raise
        if not isinstance(env, str):
            raise ValueError(
                f"{env} has no transition table: pass its id (a string) so that several copies "
                "can be made with gymnasium.make_vec"
            ) from None
        vec = gym.make_vec(
            env,
            num_envs=num_envs,
            vectorization_mode="sync",
            vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
        )
    for name, space in (
        ("observation", vec.single_observation_space),
        ("action", vec.single_action_space),
    ):
        if not isinstance(space, gym.spaces.Discrete):
            raise ValueError(
                f"tabular methods need a Discrete {name} space, got {space}: a continuous "
                "space has no table to index (see the DQN chapter for function approximation)"
            )
    return vec


class Transitions:
    """Steps a gymnasium vector env and returns clean transitions as torch tensors.

    gymnasium's vector envs reset finished copies in one of two ways, and code that
    learns from their steps must know which:

    * ``NEXT_STEP`` (gymnasium's default, e.g. ``CartPoleVectorEnv``): the step that
      ends an episode returns its final observation; the *next* step resets that copy,
      ignores its action and returns the first observation with reward 0. That step is
      not a transition: ``valid`` is False for it.
    * ``SAME_STEP``: the step that ends an episode already returns the next episode's
      first observation; the final one is in ``info["final_obs"]``.

    ``step(actions)`` returns ``(next_obs, reward, terminated, truncated, valid)`` where
    ``next_obs`` is always the observation the transition led to (bootstrap from it on
    ``truncated``, never on ``terminated``); ``obs`` holds the observation to act on
    next. Completed episodes' returns and lengths are collected in ``episodes`` as
    ``(env_steps_so_far, return, length)``.
    """

    def __init__(self, envs: VectorEnv, device: torch.device) -> None:
        self.envs, self.device = envs, device
        self.mode = envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if self.mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
            raise ValueError(f"unsupported autoreset mode {self.mode}: use NEXT_STEP or SAME_STEP")
        self.n = envs.num_envs
        self.native = _is_torch_env(envs)
        # the bookkeeping lives where the env's arrays are: NumPy for gymnasium's envs,
        # tensors on the env's device for the course's torch envs (no copies per step)
        if self.native:
            env_device = getattr(envs, "device", device)
            self._restarting: Any = torch.zeros(self.n, dtype=torch.bool, device=env_device)
            self._return: Any = torch.zeros(self.n, dtype=torch.float64, device=env_device)
            self._length: Any = torch.zeros(self.n, dtype=torch.long, device=env_device)
        else:
            self._restarting = np.zeros(self.n, dtype=bool)
            self._return = np.zeros(self.n)
            self._length = np.zeros(self.n, dtype=np.int64)
        self.obs: torch.Tensor | None = None
        self.env_steps = 0
        self.episodes: list[tuple[int, float, int]] = []
        self.episode_copies: list[int] = []  #: which copy played each of ``episodes``

    def _tensor(self, x: Any, dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(x, dtype=dtype, device=self.device)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        obs, _ = self.envs.reset(seed=seed)
        self.obs = self._tensor(obs, torch.float32)
        self._restarting[:] = False
        self._return[:] = 0
        self._length[:] = 0
        return self.obs

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One step of every copy: ``(next_obs, reward, terminated, truncated, valid)``."""
        act = actions if self.native else actions.numpy(force=True)
        obs, reward, terminated, truncated, info = self.envs.step(act)
        done = terminated | truncated
        next_obs = obs
        if self.mode == AutoresetMode.NEXT_STEP:
            valid = ~self._restarting
            self._restarting = done & valid
        else:
            valid = done | True  # every step is a transition
            if "_final_obs" in info:
                next_obs = _with_final_obs(obs, info["final_obs"], info["_final_obs"])
        self.env_steps += int(valid.sum())
        self._return += reward * valid
        self._length += valid
        ended = done & valid
        if ended.any():
            idx = np.flatnonzero(_numpy(ended))
            returns, lengths = _numpy(self._return)[idx], _numpy(self._length)[idx]
            self.episodes += [
                (self.env_steps, float(g), int(n)) for g, n in zip(returns, lengths, strict=True)
            ]
            self.episode_copies += idx.tolist()
            self._return[ended] = 0
            self._length[ended] = 0
        self.obs = self._tensor(obs, torch.float32)
        return (
            self.obs if next_obs is obs else self._tensor(next_obs, torch.float32),
            self._tensor(reward, torch.float32),
            self._tensor(terminated, torch.bool),
            self._tensor(truncated, torch.bool),
            self._tensor(valid, torch.bool),
        )


def _numpy(x: Any) -> np.ndarray:
    """A NumPy view (or copy, from a device) of an array or tensor."""
    return x.cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _with_final_obs(obs: Any, final: Any, has_final: Any) -> Any:
    """``obs`` with the rows of copies that just ended replaced by their final observation.

    gymnasium gives ``final`` as an object array (``None`` where a copy did not end); the
    course's torch envs give a tensor like ``obs``.
    """
    if isinstance(obs, torch.Tensor):
        return torch.where(has_final.view(-1, *[1] * (obs.dim() - 1)), final, obs)
    merged = np.array(obs, copy=True)
    for i in np.flatnonzero(has_final):
        merged[i] = final[i]
    return merged


def _is_torch_env(envs: Any) -> bool:
    """Whether a vector env takes and returns torch tensors (the course's batched envs)."""
    return bool(getattr(envs, "torch_native", False))


def make_vector_env(env: Any, num_envs: int) -> gym.vector.VectorEnv:
    """A vector env of ``num_envs`` copies of an env id (gymnasium's fast vectorised version
    where it has one), or ``env`` itself if it is a vector env already."""
    if isinstance(env, gym.vector.VectorEnv):
        return env
    if isinstance(env, gym.Env):
        if num_envs != 1:
            raise ValueError("pass an env id (a string) to run several copies of an environment")
        return gym.vector.SyncVectorEnv([lambda: env])
    try:
        spec = gym.spec(env)
    except gym.error.Error as err:
        raise ValueError(f"unknown environment id {env!r}: {err}") from err
    mode = "vector_entry_point" if spec.vector_entry_point is not None else "sync"
    return gym.make_vec(env, num_envs=num_envs, vectorization_mode=mode)
