"""Experience storage: a replay buffer for DQN, reward-to-go for REINFORCE, and a rollout
buffer with generalised advantage estimation (GAE) for actor-critic and PPO."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor


class ReplayBuffer:
    """A ring buffer of transitions ``(obs, action, reward, next_obs, terminated)``.

    Tensors are preallocated on ``device`` (``capacity`` rows) so that adding and
    sampling never copy data to another device. ``sample`` draws uniformly, with a
    seeded generator, from the transitions stored so far.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: Sequence[int],
        device: torch.device | str = "cpu",
        seed: int = 0,
        obs_dtype: torch.dtype = torch.float32,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity, self.device = capacity, torch.device(device)
        self.obs = torch.zeros((capacity, *obs_shape), dtype=obs_dtype, device=self.device)
        self.next_obs = torch.zeros_like(self.obs)
        self.actions = torch.zeros(capacity, dtype=torch.long, device=self.device)
        self.rewards = torch.zeros(capacity, dtype=torch.float32, device=self.device)
        self.terminated = torch.zeros(capacity, dtype=torch.float32, device=self.device)
        self.pos, self.size = 0, 0
        self.generator = torch.Generator(self.device).manual_seed(seed)

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: Tensor,
        actions: Tensor,
        rewards: Tensor,
        next_obs: Tensor,
        terminated: Tensor,
        valid: Tensor | None = None,
    ) -> None:
        """Store a batch of ``B`` transitions (first dimension ``B``), overwriting the oldest.

        ``valid`` (bool ``[B]``) marks the rows that are transitions (see
        :class:`rlcourse.envs.vector.Transitions`); only those are stored, in order. None:
        every row is one, and nothing waits for the device (counting a mask on a GPU does:
        pass None when :attr:`Transitions.all_valid` says every row is a transition).
        """
        batch = (obs, actions, rewards, next_obs, terminated)
        if valid is not None and not bool(valid.all()):
            keep = torch.nonzero(valid).squeeze(1)
            batch = tuple(x[keep] for x in batch)
        B = batch[0].shape[0]
        if B == 0:
            return
        if B > self.capacity:
            raise ValueError(f"cannot add {B} transitions to a buffer of capacity {self.capacity}")
        # rows pos .. pos + B - 1 of the ring, as slices (no index tensor to build)
        first = min(B, self.capacity - self.pos)
        self._write(slice(self.pos, self.pos + first), batch, slice(0, first))
        if first < B:  # the ring wraps around: the rest goes to its start
            self._write(slice(0, B - first), batch, slice(first, B))
        self.pos = (self.pos + B) % self.capacity
        self.size = min(self.size + B, self.capacity)

    def _write(self, rows: slice, batch: tuple[Tensor, ...], part: slice) -> None:
        stores = (self.obs, self.actions, self.rewards, self.next_obs, self.terminated)
        for store, x in zip(stores, batch, strict=True):
            store[rows] = x[part]  # terminated: bool -> float32

    def sample(self, batch_size: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """``batch_size`` transitions drawn uniformly with replacement."""
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        idx = torch.randint(
            0, self.size, (batch_size,), device=self.device, generator=self.generator
        )
        return (
            self.obs[idx],
            self.actions[idx],
            self.rewards[idx],
            self.next_obs[idx],
            self.terminated[idx],
        )

    def latest(self, n: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The ``n`` transitions added last, oldest first (``0 <= n <= len(self)``): what
        learning without replay trains on, each transition once, as it arrives."""
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= self.size:
            raise ValueError(
                f"latest(n) needs an integer n between 0 and the {self.size} transitions "
                f"stored, got {n!r}"
            )
        idx = (self.pos - n + torch.arange(n, device=self.device)) % self.capacity
        return (
            self.obs[idx],
            self.actions[idx],
            self.rewards[idx],
            self.next_obs[idx],
            self.terminated[idx],
        )


# ---------------------------------------------------------------------------
# returns and advantages over batched rollouts (time first: [T, N])


def _check_unit_interval(name: str, x: float) -> None:
    if not 0.0 <= x <= 1.0:  # also rejects NaN
        raise ValueError(f"{name} must be in [0, 1], got {x}")


def _check_same_shape(**tensors: Tensor) -> None:
    (first, ref), *rest = tensors.items()
    if ref.dim() < 1:
        raise ValueError(f"{first} must have a time dimension first ([T, N]), got a scalar")
    for name, x in rest:
        if x.shape != ref.shape:
            raise ValueError(
                f"{name} has shape {tuple(x.shape)} but {first} has shape {tuple(ref.shape)}: "
                "all inputs must be [T, N]"
            )


#: what ``RolloutBuffer.add`` stores at each step, in its argument order
_STEP_FIELDS = (
    "obs",
    "actions",
    "log_probs",
    "values",
    "rewards",
    "next_obs",
    "terminated",
    "truncated",
    "valid",
)


def _check_bool(**tensors: Tensor) -> None:
    for name, x in tensors.items():
        if x.dtype != torch.bool:
            raise TypeError(f"{name} must be a bool tensor of flags, got {x.dtype}")


def _check_float(**tensors: Tensor) -> None:
    for name, x in tensors.items():
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")


def discounted_reward_to_go(rewards: Tensor, dones: Tensor, gamma: float) -> Tensor:
    """Reward-to-go for REINFORCE: the return from each step on, discounted from that step.

    ``G_t = r_t + gamma * (1 - done_t) * G_{t+1}`` computed backwards, with ``G_T = 0``
    after the last step. ``rewards`` and ``dones`` are ``[T, N]`` (``dones`` bool: the
    episode ended at step ``t``), so a sum never crosses into the next episode. Steps of
    an episode still running at ``T`` get a truncated sum: use complete episodes.
    Returns ``[T, N]``.
    """
    _check_unit_interval("gamma", gamma)
    _check_same_shape(rewards=rewards, dones=dones)
    _check_bool(dones=dones)
    _check_float(rewards=rewards)
    not_done = (~dones).to(rewards.dtype)
    returns = torch.empty_like(rewards)
    G = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        G = rewards[t] + gamma * not_done[t] * G
        returns[t] = G
    return returns


def gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
    lam: float,
) -> Tensor:
    """Generalised advantage estimation (Schulman et al. 2016) over a batched rollout.

    All inputs are ``[T, N]``; ``values[t] = V(s_t)`` and ``next_values[t] = V(s_{t+1})``
    of the observation step ``t`` led to (on a truncated step, the episode's final
    observation, not the next episode's first one). ``terminated`` and ``truncated`` are
    bool. ``terminated`` stops bootstrapping; ``truncated`` bootstraps but, like
    ``terminated``, cuts the trace so that no advantage mixes two episodes. Returns the
    advantages ``[T, N]``.
    """
    _check_unit_interval("gamma", gamma)
    _check_unit_interval("lam", lam)
    _check_same_shape(
        rewards=rewards,
        values=values,
        next_values=next_values,
        terminated=terminated,
        truncated=truncated,
    )
    _check_bool(terminated=terminated, truncated=truncated)
    _check_float(rewards=rewards, values=values, next_values=next_values)
    not_terminated = (~terminated).to(values.dtype)
    not_done = (~(terminated | truncated)).to(values.dtype)
    # delta_t = r_t + gamma * (1 - terminated_t) * V(s_{t+1}) - V(s_t)
    deltas = rewards + gamma * not_terminated * next_values - values
    advantages = torch.empty_like(deltas)
    A = torch.zeros_like(deltas[0])
    for t in reversed(range(deltas.shape[0])):
        # A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}
        A = deltas[t] + gamma * lam * not_done[t] * A
        advantages[t] = A
    return advantages


class RolloutBuffer:
    """One rollout of ``n_steps`` vector steps from ``num_envs`` copies, for actor-critic/PPO.

    Tensors are preallocated on ``device``, time first: ``obs`` and ``next_obs``
    ``[T, N, *obs_shape]``, ``actions`` ``[T, N, *action_shape]`` (``action_dtype``:
    ``torch.long`` for discrete actions, ``torch.float32`` for continuous ones),
    ``log_probs``, ``values``, ``rewards`` ``[T, N]`` and the bool flags ``terminated``,
    ``truncated`` and ``valid`` ``[T, N]``. A step with ``valid`` False (the reset step of
    gymnasium's ``NEXT_STEP`` autoreset mode, see :class:`rlcourse.envs.vector.Transitions`)
    is not a transition: it gets advantage 0 and no minibatch contains it.

    Fill it with :meth:`add`, then call :meth:`compute_advantages` once, then iterate
    :meth:`minibatches` for each epoch; :meth:`reset` starts the next rollout.
    """

    def __init__(
        self,
        n_steps: int,
        num_envs: int,
        obs_shape: Sequence[int],
        action_shape: Sequence[int] = (),
        action_dtype: torch.dtype = torch.long,
        device: torch.device | str = "cpu",
        obs_dtype: torch.dtype = torch.float32,
    ) -> None:
        for name, n in (("n_steps", n_steps), ("num_envs", num_envs)):
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ValueError(f"{name} must be a positive integer, got {n!r}")
        self.n_steps, self.num_envs, self.device = n_steps, num_envs, torch.device(device)
        self.obs_shape, self.action_shape = tuple(obs_shape), tuple(action_shape)
        T, N = n_steps, num_envs

        def zeros(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
            return torch.zeros(shape, dtype=dtype, device=self.device)

        self.obs = zeros(T, N, *self.obs_shape, dtype=obs_dtype)
        self.next_obs = torch.zeros_like(self.obs)
        self.actions = zeros(T, N, *self.action_shape, dtype=action_dtype)
        self.log_probs = zeros(T, N)
        self.values = zeros(T, N)
        self.rewards = zeros(T, N)
        self.terminated = zeros(T, N, dtype=torch.bool)
        self.truncated = zeros(T, N, dtype=torch.bool)
        self.valid = zeros(T, N, dtype=torch.bool)
        self.advantages = zeros(T, N)
        self.returns = zeros(T, N)
        self.pos = 0
        self._has_advantages, self._rows = False, None

    @property
    def full(self) -> bool:
        """Whether all ``n_steps`` steps have been added."""
        return self.pos == self.n_steps

    @property
    def valid_count(self) -> int:
        """How many of the steps added so far are transitions (``valid`` True)."""
        return int(self.valid[: self.pos].sum())

    def reset(self) -> None:
        """Start a new rollout (the storage is reused, not cleared)."""
        self.pos = 0
        self._has_advantages, self._rows = False, None

    def add(
        self,
        obs: Tensor,
        actions: Tensor,
        log_probs: Tensor,
        values: Tensor,
        rewards: Tensor,
        next_obs: Tensor,
        terminated: Tensor,
        truncated: Tensor,
        valid: Tensor,
    ) -> None:
        """Store one vector step: ``obs``/``next_obs`` ``[N, *obs_shape]``, ``actions``
        ``[N, *action_shape]``, the rest ``[N]`` (``terminated``, ``truncated``, ``valid``
        bool). ``log_probs`` and ``values`` are the behaviour policy's, stored detached."""
        if self.full:
            raise RuntimeError(
                f"the rollout buffer is full ({self.n_steps} steps): call compute_advantages, "
                "train on its minibatches, then reset() before adding more"
            )
        given = (obs, actions, log_probs, values, rewards, next_obs, terminated, truncated, valid)
        for name, x in zip(_STEP_FIELDS, given, strict=True):
            store = getattr(self, name)
            if x.shape != store.shape[1:]:
                raise ValueError(
                    f"{name} must have shape {tuple(store.shape[1:])} (one row per env copy), "
                    f"got {tuple(x.shape)}"
                )
        _check_bool(terminated=terminated, truncated=truncated, valid=valid)
        if actions.is_floating_point() != self.actions.is_floating_point():
            raise TypeError(
                f"actions have dtype {actions.dtype} but the buffer stores {self.actions.dtype}: "
                "discrete actions are integers, continuous actions floats"
            )
        self._store(dict(zip(_STEP_FIELDS, (x.detach() for x in given), strict=True)))

    def _store(self, fields: dict[str, Tensor]) -> None:
        """:meth:`add` without its checks, for :func:`collect_rollout`, whose tensors come
        detached from the policy and ``Transitions`` with the right shapes and dtypes."""
        t = self.pos
        for name, x in fields.items():
            getattr(self, name)[t].copy_(x)
        self.pos += 1
        self._has_advantages, self._rows = False, None

    def compute_advantages(self, next_values: Tensor, gamma: float, lam: float) -> None:
        """Fill ``advantages`` with :func:`gae` and ``returns = advantages + values``.

        ``next_values`` ``[T, N]`` is ``V(next_obs)`` for every stored step, computed with
        the same value function as ``values`` (before any update on this rollout).
        Invalid steps get advantage 0 (and return equal to their value).
        """
        if not self.full:
            raise RuntimeError(
                f"the rollout holds {self.pos} of {self.n_steps} steps: fill it before "
                "computing advantages"
            )
        if tuple(next_values.shape) != (self.n_steps, self.num_envs):
            raise ValueError(
                f"next_values must have shape {(self.n_steps, self.num_envs)} (V(next_obs) "
                f"for every step), got {tuple(next_values.shape)}"
            )
        advantages = gae(
            self.rewards,
            self.values,
            next_values.detach().to(self.values),
            self.terminated,
            self.truncated,
            gamma,
            lam,
        )
        self.advantages.copy_(advantages.masked_fill(~self.valid, 0.0))
        torch.add(self.advantages, self.values, out=self.returns)
        self._has_advantages, self._rows = True, None

    def _valid_rows(self) -> dict[str, Tensor]:
        """The valid steps' fields flattened over ``T`` and ``N`` (views when every step is
        valid), gathered once per rollout however many epochs read them."""
        if self._rows is None:
            flat = {
                "obs": self.obs.flatten(0, 1),
                "actions": self.actions.flatten(0, 1),
                "log_probs": self.log_probs.flatten(),
                "values": self.values.flatten(),
                "advantages": self.advantages.flatten(),
                "returns": self.returns.flatten(),
            }
            valid = self.valid.flatten()
            if not bool(valid.all()):
                idx = torch.nonzero(valid).squeeze(1)
                flat = {name: x[idx] for name, x in flat.items()}
            self._rows = flat
        return self._rows

    def minibatches(
        self, batch_size: int, generator: torch.Generator
    ) -> Iterator[dict[str, Tensor]]:
        """One shuffled pass over the valid steps, flattened over ``T`` and ``N``.

        Yields dicts with ``obs``, ``actions``, ``log_probs``, ``values``, ``advantages``
        and ``returns``, each with ``batch_size`` rows first (the last batch may be smaller).
        The order depends only on ``generator``'s state. When one batch holds every valid
        step it comes in storage order, without drawing from ``generator``: a loss that
        averages over the batch does not depend on the order, and skipping the shuffle
        and the copies it needs saves a tenth of a PPO step on a CPU.
        """
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not self._has_advantages:
            raise RuntimeError("call compute_advantages() before minibatches()")
        rows = self._valid_rows()
        n = len(rows["obs"])
        if batch_size >= n:  # one batch: the whole rollout, as it is stored
            yield dict(rows)  # a new dict: a caller may rebind its entries
            return
        perm = torch.randperm(n, generator=generator, device=generator.device).to(self.device)
        for start in range(0, n, batch_size):
            b = perm[start : start + batch_size]
            yield {name: x[b] for name, x in rows.items()}


@torch.no_grad()
def collect_rollout(
    buffer: RolloutBuffer,
    net: Any,
    steps: Any,
    obs: Tensor,
    low: Tensor | None,
    high: Tensor | None,
    gamma: float,
    lam: float,
) -> Tensor:
    """Fill ``buffer`` with one rollout of the policy ``net`` (an ``ActorCritic``) through
    ``steps`` (a ``Transitions``), starting at ``obs``, then compute its GAE advantages with
    the behaviour policy's values. Returns the observation to continue from.

    Continuous actions are sampled unclipped (their log-probability is the sample's) and
    clipped to ``[low, high]`` only when sent to the environment.
    """
    buffer.reset()
    while not buffer.full:
        action, log_prob = net.sample_actions(obs)
        env_action = torch.clamp(action, low, high) if low is not None else action
        next_obs, reward, terminated, truncated, valid = steps.step(env_action)
        buffer._store(
            {
                "obs": obs,
                "actions": action,
                "log_probs": log_prob,
                "rewards": reward,
                "next_obs": next_obs,
                "terminated": terminated,
                "truncated": truncated,
                "valid": valid,
            }
        )
        obs = steps.obs
    # V(s_t) and V(s_t') of every step in one pass: the same numbers as one step at a time
    # (the behaviour policy's value function does not change during the rollout), for one
    # network call instead of T
    T, N = buffer.rewards.shape
    both = torch.cat([buffer.obs.flatten(0, 1), buffer.next_obs.flatten(0, 1)])
    values, next_values = net.value(both).view(2, T, N)
    buffer.values.copy_(values)
    buffer.compute_advantages(next_values, gamma, lam)
    return obs
