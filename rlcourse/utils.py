"""Seeding and device selection, shared by every algorithm of the course."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch


def resolve_device(device: str | torch.device = "auto", env: Any = None) -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``... into a ``torch.device``.

    ``"auto"`` follows the environment ``env`` when one is given: the device of the course's
    torch batched envs (``rlcourse.envs.TorchCartPole(..., device="cuda")`` keeps its copies
    on the GPU, and the networks go there too), and the CPU for envs that step on the host
    (an env id, a gymnasium env or vector env: their NumPy arrays would cross to the GPU
    and back at every step, and the course's small networks run faster on the CPU than
    that costs). Without ``env`` (whole-tensor work such as dynamic programming),
    ``"auto"`` picks CUDA when a GPU is present and the CPU otherwise. Asking for CUDA
    on a machine without a GPU is an error, not a silent fall-back.
    """
    if isinstance(device, str) and device == "auto":
        if env is not None:
            return env_device(env)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}"
        ) from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device={device!r} was requested but no CUDA GPU is available here; "
                "use device='cpu', or device='auto' to pick the GPU only when there is one"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RuntimeError(
                f"device={device!r} was requested but only {torch.cuda.device_count()} "
                "CUDA device(s) exist"
            )
    return dev


def env_device(env: Any) -> torch.device:
    """Where ``env`` keeps its arrays: ``env.device`` for the course's torch batched envs
    (``torch_native``), the CPU for everything else (env ids, gymnasium envs)."""
    if getattr(env, "torch_native", False):
        return torch.device(env.device)
    return torch.device("cpu")


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python's, NumPy's and torch's global generators; return a fresh NumPy generator.

    Environments are seeded separately, through ``env.reset(seed=...)``.
    """
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)  # noqa: NPY002 -- seeds code that uses the legacy API
    torch.manual_seed(int(seed))
    return np.random.default_rng(int(seed))


def device_summary() -> str:
    """One line on what this machine offers: torch version, CPU threads, GPU if any."""
    parts = [f"torch {torch.__version__}", f"{torch.get_num_threads()} CPU threads"]
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        parts.append("CUDA: " + ", ".join(names))
    else:
        parts.append("no CUDA GPU (everything runs on the CPU)")
    return "; ".join(parts)


class RandomStreams:
    """One independent random stream per seed, drawn a block at a time (NumPy).

    ``uniform(k)`` returns ``[N, k]`` numbers in ``[0, 1)``, row ``i`` from the stream of
    ``seeds[i]``. Each row depends only on its own seed and on how many numbers that row
    has consumed, so run ``i`` of a batch gives exactly the numbers it would give alone:
    seeds are independent and reproducible whatever the batch size.
    """

    def __init__(self, seeds: list[int | tuple[int, ...]], block: int | None = None) -> None:
        if len(seeds) == 0:
            raise ValueError("RandomStreams needs at least one seed")
        self.block = block or max(256, 2**20 // len(seeds))  # about 8 MB of numbers at a time
        # an int seed, or a tuple of ints (NumPy's SeedSequence entropy) for a distinct stream
        self._generators = [np.random.default_rng(s) for s in seeds]
        self._buffer = np.empty((len(seeds), 0))
        self._pos = 0

    def __len__(self) -> int:
        return len(self._generators)

    def uniform(self, k: int = 1) -> np.ndarray:
        """``[N, k]`` uniforms, the next ``k`` of every stream."""
        if self._pos + k > self._buffer.shape[1]:
            fresh = np.stack([g.random(self.block + k) for g in self._generators])
            self._buffer = np.concatenate([self._buffer[:, self._pos :], fresh], axis=1)
            self._pos = 0
        out = self._buffer[:, self._pos : self._pos + k]
        self._pos += k
        return out


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (``None``: leave the setting alone), then
    restore the previous number.

    The course's networks are small: one thread trains them as fast as several, gives
    the same numbers on machines with different core counts, and cannot stall when
    another process is busy on the other cores.
    """
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def close_bar(bar: Any) -> None:
    """Close a tqdm progress bar, finished at the steps run: a training loop that stopped early
    (a confirmed solve, a callback) would otherwise leave it below 100%, in the notebook's live
    widget and in its stored text alike."""
    if not bar.disable and bar.n < (bar.total or 0):
        bar.total = bar.n
        container = getattr(bar, "container", None)  # tqdm.notebook: the widget's own maximum
        if container is not None:
            container.children[1].max = bar.n
        bar.refresh()
    bar.close()
