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
from rlcourse.utils import env_device as env_device_of


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
    next, ``n_valid`` how many transitions the step gave (an int on the host: counted in
    NumPy for gymnasium's envs, one per copy in ``SAME_STEP`` mode), ``env_steps`` their
    running total. Completed episodes' returns and lengths are in ``episodes`` as
    ``(env_steps_so_far, return, length)``, in the order they ended, and the copy that
    played each in ``episode_copies``.

    Each copy's running return and length live where the env's arrays are (NumPy for
    gymnasium's envs, tensors on the env's device for the course's torch envs), and the
    episodes that end are logged there too, so that a step of a torch env on a GPU never
    waits for the device (a gymnasium env's arrays cross to it at every step anyway). The
    log is read out, in one copy, when ``episodes`` or ``episode_copies`` is read, and when
    it is full (every ``log_steps`` steps of a torch env: by default ``2**21 // num_envs``
    between 16 and 1,024, which keeps the log under 32 MB up to 131,072 copies; on the host,
    only the steps that end an episode are logged).
    """

    def __init__(
        self, envs: VectorEnv, device: torch.device, *, log_steps: int | None = None
    ) -> None:
        self.envs, self.device = envs, device
        self.mode = envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if self.mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
            raise ValueError(f"unsupported autoreset mode {self.mode}: use NEXT_STEP or SAME_STEP")
        self.n = envs.num_envs
        self.native = _is_torch_env(envs)
        if self.native:
            env_device = env_device_of(envs)

            def zeros(*shape: int, dtype: torch.dtype) -> Any:
                return torch.zeros(shape, dtype=dtype, device=env_device)

            self._restarting: Any = zeros(self.n, dtype=torch.bool)
            self._return: Any = zeros(self.n, dtype=torch.float64)
            self._length: Any = zeros(self.n, dtype=torch.long)
        else:

            def zeros(*shape: int, dtype: Any) -> Any:
                return np.zeros(shape, dtype=dtype)

            self._restarting = zeros(self.n, dtype=bool)
            self._return = zeros(self.n, dtype=np.float64)
            self._length = zeros(self.n, dtype=np.int64)
        # the episode log: row k holds, for the k-th step since the last read-out, the return
        # [0] and length [1] of each copy whose episode ended there (length 0: none ended)
        if log_steps is None:
            log_steps = max(16, min(1024, 2**21 // self.n))
        if isinstance(log_steps, bool) or not isinstance(log_steps, int) or log_steps < 1:
            raise ValueError(f"log_steps must be a positive integer, got {log_steps!r}")
        self.log_steps = log_steps  #: steps between read-outs of the episode log
        self._log = zeros(self.log_steps, 2, self.n, dtype=self._return.dtype)
        self._log_env_steps: list[int] = []  # env_steps after each logged step
        self._episodes: list[tuple[int, float, int]] = []
        self._episode_copies: list[int] = []
        self.obs: torch.Tensor | None = None
        self.env_steps = 0
        self.n_valid = 0

    @property
    def episodes(self) -> list[tuple[int, float, int]]:
        """Completed episodes ``(env_steps_so_far, return, length)``, in the order they ended."""
        self._read_log()
        return self._episodes

    @property
    def episode_copies(self) -> list[int]:
        """Which copy played each of :attr:`episodes`."""
        self._read_log()
        return self._episode_copies

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
            # free for NumPy; a torch env that resets on the next step (the course has
            # none) would make every step wait for its device here
            self.n_valid = int(valid.sum())
        else:
            valid = done | True  # every step is a transition
            self.n_valid = self.n
            if "_final_obs" in info:
                next_obs = _with_final_obs(obs, info["final_obs"], info["_final_obs"])
        self.env_steps += self.n_valid
        self._count(reward, done, None if self.n_valid == self.n else valid)
        self.obs = self._tensor(obs, torch.float32)
        return (
            self.obs if next_obs is obs else self._tensor(next_obs, torch.float32),
            self._tensor(reward, torch.float32),
            self._tensor(terminated, torch.bool),
            self._tensor(truncated, torch.bool),
            self._tensor(valid, torch.bool),
        )

    def _count(self, reward: Any, done: Any, valid: Any) -> None:
        """Add the step to each copy's return and length (``valid`` None: every copy's step
        is a transition), and log the episodes that ended; arrays or tensors alike."""
        if valid is None:
            self._return += reward
            self._length += 1
            ended = done
        else:
            self._return += reward * valid
            self._length += valid
            ended = done & valid
        if not (self.native or ended.any()):
            return  # on the host, asking costs nothing, and most steps end no episode
        row = self._log[len(self._log_env_steps)]
        row[0] = self._return * ended
        row[1] = self._length * ended
        self._log_env_steps.append(self.env_steps)
        _clear(self._return, ended)  # the copies that ended start counting again
        _clear(self._length, ended)
        if len(self._log_env_steps) == self.log_steps:
            self._read_log()

    def _read_log(self) -> None:
        """Move the logged episodes to :attr:`episodes` (one copy from the env's device)."""
        k = len(self._log_env_steps)
        if k == 0:
            return
        log = _numpy(self._log[:k])  # [k, 2, N]
        at, copies = np.nonzero(log[:, 1])  # by step, then by copy: the order they ended in
        returns, lengths = log[at, 0, copies].tolist(), log[at, 1, copies].tolist()
        self._episodes += [
            (self._log_env_steps[t], g, int(n))
            for t, g, n in zip(at.tolist(), returns, lengths, strict=True)
        ]
        self._episode_copies += copies.tolist()
        self._log_env_steps.clear()

    @property
    def all_valid(self) -> bool:
        """Whether every copy's last step was a transition (known on the host)."""
        return self.n_valid == self.n


def _clear(x: Any, mask: Any) -> None:
    """``x[mask] = 0`` in place, for an array or a tensor, without a boolean index (which,
    on a GPU, waits for the device to say how many entries it selects)."""
    if isinstance(x, torch.Tensor):
        x.masked_fill_(mask, 0)
    else:
        np.putmask(x, mask, 0)


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
