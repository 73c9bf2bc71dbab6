"""Seeding and device selection, shared by every algorithm of the course."""

from __future__ import annotations

import random

import numpy as np
import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``... into a ``torch.device``.

    ``"auto"`` picks CUDA when a GPU is present and the CPU otherwise. Asking for
    CUDA on a machine without a GPU is an error, not a silent fall-back.
    """
    if isinstance(device, str) and device == "auto":
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
