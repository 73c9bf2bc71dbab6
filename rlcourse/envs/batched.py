"""Batched environments written in torch: N copies stepped as tensors on any device.

A gymnasium vector env steps its copies in NumPy on the CPU, so on a GPU every step
crosses to the host and back. These envs keep the whole state on the device: one
``step`` is a handful of tensor operations over all copies, and with thousands of copies
a single step costs about as much as one. They follow gymnasium's vector-env API with
the ``SAME_STEP`` autoreset mode, in tensors instead of arrays:

* ``reset(seed=...)`` -> ``(obs, info)``; ``step(actions)`` ->
  ``(obs, reward, terminated, truncated, info)``, every value a tensor with the copies
  first, on ``env.device``;
* a copy whose episode ended (``terminated`` or ``truncated``) starts its next episode in
  the same step: ``obs`` is the new episode's first observation, and the observation
  that ended the old one is ``info["final_obs"]`` (where ``info["_final_obs"]`` is True).
  Bootstrap from it on ``truncated``, never on ``terminated``;
* ``reset(options={"reset_mask": mask})`` restarts only the copies in ``mask``, and
  ``options={"state": states}`` starts them in given states (to replay gymnasium's).

``rlcourse.dqn.train`` and ``rlcourse.ppo.train`` take these envs in place of an env id.
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from torch import Tensor

from rlcourse.envs.tabular import TabularEnv, as_tabular_env
from rlcourse.utils import resolve_device


class TorchVectorEnv(VectorEnv):
    """The autoreset, time limit, seeding and checks shared by the torch envs.

    A subclass defines ``_initial(n) -> state`` (``n`` fresh start states),
    ``_transition(state, actions) -> (next_state, reward, terminated)`` and
    ``_observe(state) -> obs``, with states as tensors whose *last* dimension is the copy
    (CartPole keeps ``[4, N]``: each state variable is one contiguous row, which makes
    every operation of a step a fast contiguous one).
    """

    torch_native = True  #: takes and returns tensors (see ``rlcourse.envs.vector.Transitions``)
    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self, num_envs: int, max_episode_steps: int | None, device: str | torch.device
    ) -> None:
        if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if max_episode_steps is not None and (
            not isinstance(max_episode_steps, int) or max_episode_steps < 1
        ):
            raise ValueError(
                f"max_episode_steps must be a positive integer or None, got {max_episode_steps!r}"
            )
        self.num_envs, self.max_episode_steps = num_envs, max_episode_steps
        self.device = resolve_device(device)
        self.generator = torch.Generator(self.device)
        self.steps = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self.state: Tensor | None = None

    # ------------------------------------------------------------- subclass API
    def _initial(self, n: int) -> Tensor:
        raise NotImplementedError

    def _transition(self, state: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        raise NotImplementedError

    def _observe(self, state: Tensor) -> Tensor:
        raise NotImplementedError

    def _check_state(self, state: Any, n: int) -> Tensor:
        raise NotImplementedError

    # ------------------------------------------------------------- gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Tensor, dict[str, Any]]:
        """Start every copy (or those in ``options["reset_mask"]``); ``seed`` seeds the env's
        generator, so the same seed gives the same start states on the same device."""
        if seed is not None:
            self.generator.manual_seed(int(seed))
        elif self.state is None:
            self.generator.seed()
        options = dict(options or {})
        unknown = set(options) - {"reset_mask", "state"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}: use reset_mask, state")
        mask = options.get("reset_mask")
        if mask is None:
            idx = torch.arange(self.num_envs, device=self.device)
        else:
            mask = torch.as_tensor(mask, device=self.device)
            if mask.dtype != torch.bool or tuple(mask.shape) != (self.num_envs,):
                raise ValueError(
                    f"reset_mask must be a bool tensor of shape ({self.num_envs},), got "
                    f"{mask.dtype} {tuple(mask.shape)}"
                )
            if self.state is None:
                raise RuntimeError("call reset() without reset_mask first, to start every copy")
            idx = torch.nonzero(mask).flatten()
        n = int(idx.numel())
        if "state" in options:
            start = self._check_state(options["state"], n)
        else:
            start = self._initial(n)
        self.state = start if self.state is None else _put(self.state, idx, start)
        self.steps[idx] = 0
        return self._observe(self.state), {}

    def step(self, actions: Any) -> tuple[Tensor, Tensor, Tensor, Tensor, dict[str, Any]]:
        """One step of every copy; finished copies restart at once (``SAME_STEP``)."""
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        actions = self._check_actions(actions)
        self.state, reward, terminated = self._transition(self.state, actions)
        self.steps += 1
        if self.max_episode_steps is None:
            truncated = torch.zeros_like(terminated)
        else:  # as gymnasium's TimeLimit: the limit sets truncated whatever terminated says
            truncated = self.steps >= self.max_episode_steps
        done = terminated | truncated
        final_obs = self._observe(self.state)
        if self.device.type == "cpu":  # few copies end at a step: draw start states for those
            idx = torch.nonzero(done).flatten()
            if idx.numel():
                self.state = _put(self.state, idx, self._initial(idx.numel()))
        else:  # every copy draws one, so that no step waits for the GPU to say which ended
            self.state = torch.where(done, self._initial(self.num_envs), self.state)
        self.steps.masked_fill_(done, 0)
        info = {"final_obs": final_obs, "_final_obs": done}
        return self._observe(self.state), reward, terminated, truncated, info

    def _check_actions(self, actions: Any) -> Tensor:
        a = torch.as_tensor(actions, device=self.device)
        space = self.single_action_space
        if isinstance(space, gym.spaces.Discrete):
            if a.shape != (self.num_envs,) or a.is_floating_point() or a.dtype == torch.bool:
                raise ValueError(
                    f"actions must be {self.num_envs} integers (one per copy), got "
                    f"{a.dtype} of shape {tuple(a.shape)}"
                )
            if a.device.type == "cpu":
                if int(a.min()) < 0 or int(a.max()) >= space.n:
                    raise ValueError(f"actions must lie in [0, {space.n}), got {a.tolist()}")
            else:  # checked on the device, without waiting for it
                torch._assert_async(((a >= 0) & (a < space.n)).all(), "action out of range")
        return a

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_envs={self.num_envs}, device={self.device})"


def _put(state: Tensor, idx: Tensor, values: Tensor) -> Tensor:
    """A copy of ``state`` with copies ``idx`` (its last dimension) set to ``values``: a new
    tensor, so that observations handed out earlier never change under the user."""
    out = state.clone()
    out[..., idx] = values
    return out


class TorchCartPole(TorchVectorEnv):
    """gymnasium's CartPole-v1 as a batched torch env: the same equations (Euler steps of
    0.02 s), constants, start states (uniform in ±0.05), termination (|x| > 2.4 or
    |theta| > 12°) and time limit (500 steps, ``truncated``), and reward 1 per step.

    The state is kept in ``dtype``: float64 by default, as gymnasium keeps it, which gives
    gymnasium's numbers exactly (same start states and actions, same observations and
    flags); float32 is about twice as fast, and drifts from gymnasium by about 1e-5 in
    short episodes, up to 1e-3 in long ones (the upright pole is unstable: errors grow).
    Observations are float32 ``[N, 4]``: ``(x, x_dot, theta, theta_dot)``.
    """

    gravity, masscart, masspole, length = 9.8, 1.0, 0.1, 0.5  # length: half the pole
    force_mag, tau = 10.0, 0.02
    total_mass = masspole + masscart
    polemass_length = masspole * length
    theta_threshold_radians = 12 * 2 * math.pi / 360
    x_threshold = 2.4

    def __init__(
        self,
        num_envs: int = 1,
        *,
        device: str | torch.device = "cpu",
        max_episode_steps: int | None = 500,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__(num_envs, max_episode_steps, device)
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.dtype = dtype
        high = np.array(
            [self.x_threshold * 2, np.inf, self.theta_threshold_radians * 2, np.inf],
            dtype=np.float32,
        )
        self.single_observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self.single_action_space = gym.spaces.Discrete(2)
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, num_envs
        )
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)

    def _initial(self, n: int) -> Tensor:
        u = torch.rand(4, n, generator=self.generator, device=self.device, dtype=self.dtype)
        return u * 0.1 - 0.05

    def _check_state(self, state: Any, n: int) -> Tensor:
        s = torch.as_tensor(state, device=self.device, dtype=self.dtype)
        if tuple(s.shape) != (n, 4):
            raise ValueError(f"state must have shape ({n}, 4), one row per copy reset")
        return s.T.clone(memory_format=torch.contiguous_format)

    def _transition(self, state: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x, x_dot, theta, theta_dot = state  # [4, N]: one row per state variable
        force = (2 * actions - 1).to(self.dtype) * self.force_mag  # action 1 pushes right
        xacc, thetaacc = self.accelerations(theta, theta_dot, force)
        # Euler integration
        state = torch.stack(
            (
                x + self.tau * x_dot,
                x_dot + self.tau * xacc,
                theta + self.tau * theta_dot,
                theta_dot + self.tau * thetaacc,
            ),
        )
        x, theta = state[0], state[2]
        terminated = (x.abs() > self.x_threshold) | (theta.abs() > self.theta_threshold_radians)
        reward = torch.ones(self.num_envs, device=self.device)
        return state, reward, terminated

    @classmethod
    def accelerations(
        cls, theta: Tensor, theta_dot: Tensor, force: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``(x_acc, theta_acc)`` ``[N]``: the equations of gymnasium's cartpole.py (Florian
        2005), in the same order, so that float64 gives gymnasium's numbers to the bit."""
        costheta, sintheta = torch.cos(theta), torch.sin(theta)
        temp = (force + cls.polemass_length * theta_dot.square() * sintheta) / cls.total_mass
        thetaacc = (cls.gravity * sintheta - costheta * temp) / (
            cls.length * (4.0 / 3.0 - cls.masspole * costheta.square() / cls.total_mass)
        )
        xacc = temp - cls.polemass_length * thetaacc * costheta / cls.total_mass
        return xacc, thetaacc

    def _observe(self, state: Tensor) -> Tensor:
        obs = torch.empty(self.num_envs, 4, device=self.device)  # [N, 4] float32, never a view
        return obs.copy_(state.T)


class TorchTabularEnv(TorchVectorEnv):
    """``num_envs`` copies of a tabular env (a course grid world, or a gymnasium toy_text
    env such as FrozenLake) as tensors on ``device``.

    Observations are the state indices (``int64 [N]``), or with ``one_hot=True`` float32
    one-hot vectors ``[N, S]`` (a ``Box`` space, for DQN and PPO). Rewards are float32.
    Episodes are cut at ``max_episode_steps`` (default: the env's registered limit).
    """

    def __init__(
        self,
        env: Any,
        num_envs: int = 1,
        *,
        device: str | torch.device = "cpu",
        one_hot: bool = False,
        max_episode_steps: int | None = None,
    ) -> None:
        table: TabularEnv = as_tabular_env(env)
        if max_episode_steps is None:
            max_episode_steps = table.max_episode_steps
        super().__init__(num_envs, max_episode_steps, device)
        self.table, self.one_hot = table, one_hot
        self.S, self.A = table.P.shape[:2]
        cdf = np.cumsum(table.P, axis=-1)
        cdf[..., -1] = 1.0  # the last bin catches rounding
        initial_cdf = np.cumsum(table.initial)
        initial_cdf[-1] = 1.0
        self._cdf = torch.as_tensor(cdf, dtype=torch.float64, device=self.device)
        self._initial_cdf = torch.as_tensor(initial_cdf, dtype=torch.float64, device=self.device)
        self._reward = torch.as_tensor(table.reward, dtype=torch.float32, device=self.device)
        self._terminal = torch.as_tensor(table.terminal, device=self.device)
        self.single_action_space = gym.spaces.Discrete(self.A)
        if one_hot:
            self.single_observation_space = gym.spaces.Box(0.0, 1.0, (self.S,), np.float32)
        else:
            self.single_observation_space = gym.spaces.Discrete(self.S)
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, num_envs
        )
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)

    def _uniform(self, n: int) -> Tensor:
        return torch.rand(n, generator=self.generator, device=self.device, dtype=torch.float64)

    def _initial(self, n: int) -> Tensor:
        s = torch.searchsorted(self._initial_cdf, self._uniform(n), right=True)
        return s.clamp_max(self.S - 1)

    def _check_state(self, state: Any, n: int) -> Tensor:
        s = torch.as_tensor(state, device=self.device)
        if tuple(s.shape) != (n,) or s.is_floating_point():
            raise ValueError(f"state must be {n} integer states, one per copy reset")
        if n and (int(s.min()) < 0 or int(s.max()) >= self.S):
            raise ValueError(f"states must lie in [0, {self.S})")
        return s.long().clone()

    def _transition(self, state: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        cdf = self._cdf[state, actions]  # [N, S]
        s_next = torch.searchsorted(cdf, self._uniform(self.num_envs).unsqueeze(1), right=True)
        s_next = s_next.squeeze(1).clamp_max(self.S - 1)
        reward = self._reward[state, actions, s_next]
        return s_next, reward, self._terminal[s_next]

    def _observe(self, state: Tensor) -> Tensor:
        if self.one_hot:
            return torch.nn.functional.one_hot(state, self.S).to(torch.float32)
        return state.clone()


def steps_per_second(env: Any, n_steps: int = 200, repeats: int = 3, seed: int = 0) -> float:
    """Environment steps per second of ``env`` under uniformly random actions: the median
    over ``repeats`` timings of ``n_steps`` calls to ``step``, each stepping every copy.

    ``env`` is a single gymnasium env, a gymnasium vector env or a torch env; the actions
    are drawn before the clock starts, so only the env is timed (and, on a GPU, the clock
    waits for the device).
    """
    for name, value in (("n_steps", n_steps), ("repeats", repeats)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(env, VectorEnv):
        n_copies, space = env.num_envs, env.single_action_space
    else:
        n_copies, space = 1, env.action_space
    if not isinstance(space, gym.spaces.Discrete):
        raise ValueError(f"steps_per_second draws Discrete actions, got {space}")
    rng = np.random.default_rng(seed)
    batches = rng.integers(0, space.n, size=(16, n_copies))
    if getattr(env, "torch_native", False):
        actions: list[Any] = [torch.as_tensor(b, device=env.device) for b in batches]
    elif isinstance(env, VectorEnv):
        actions = list(batches)
    else:
        actions = [int(b[0]) for b in batches]
    single = not isinstance(env, VectorEnv)
    env.reset(seed=seed)
    device = getattr(env, "device", None)
    on_gpu = isinstance(device, torch.device) and device.type == "cuda"
    sync = torch.cuda.synchronize if on_gpu else lambda: None
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        for i in range(n_steps):
            if single:
                _, _, terminated, truncated, _ = env.step(actions[i % 16])
                if terminated or truncated:
                    env.reset()
            else:
                env.step(actions[i % 16])
        sync()
        times.append(time.perf_counter() - t0)
    return n_steps * n_copies / float(np.median(times))
