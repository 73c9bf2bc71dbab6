"""Tests of rlcourse.utils: device selection and seeding."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from rlcourse.envs import example_4_1
from rlcourse.utils import device_summary, resolve_device, seed_everything


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend this machine has no CUDA GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_auto_without_gpu_is_cpu(no_gpu: None) -> None:
    """'auto' picks the CPU when no GPU is available."""
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device() == torch.device("cpu")


def test_auto_with_gpu_is_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """'auto' picks CUDA when a GPU is available."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


@pytest.mark.parametrize("device", ["cuda", "cuda:0", torch.device("cuda")])
def test_cuda_without_gpu_is_an_error(no_gpu: None, device: str | torch.device) -> None:
    """Asking for CUDA without a GPU is a RuntimeError that says so and suggests 'auto'."""
    with pytest.raises(RuntimeError, match=r"no CUDA GPU is available.*device='auto'"):
        resolve_device(device)


def test_mdp_to_cuda_without_gpu_is_an_error(no_gpu: None) -> None:
    """TabularMDP.to('cuda') goes through resolve_device and fails clearly without a GPU."""
    mdp = example_4_1().to_mdp()
    with pytest.raises(RuntimeError, match="no CUDA GPU is available"):
        mdp.to("cuda")


@pytest.mark.parametrize("device", ["gpu", "bogus", "cuda:x", ""])
def test_bogus_device_string(device: str) -> None:
    """A string that is not a device is a ValueError listing the accepted forms."""
    with pytest.raises(ValueError, match=r"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"):
        resolve_device(device)


def test_cpu_device() -> None:
    """'cpu' and torch.device('cpu') resolve to the CPU."""
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_device_summary_mentions_torch(no_gpu: None) -> None:
    """device_summary names the torch version and says when there is no GPU."""
    text = device_summary()
    assert torch.__version__ in text
    assert "no CUDA GPU" in text


def draw() -> tuple[torch.Tensor, np.ndarray, float]:
    # seed_everything seeds the legacy global NumPy generator, so draw from it on purpose
    return torch.rand(5), np.random.rand(5), random.random()  # noqa: NPY002


def test_seed_everything_reproducible() -> None:
    """Re-seeding gives the same torch, NumPy and Python random numbers; another seed differs."""
    rng_a = seed_everything(123)
    t1, n1, p1 = draw()
    g1 = rng_a.random(3)
    rng_b = seed_everything(123)
    t2, n2, p2 = draw()
    g2 = rng_b.random(3)
    assert torch.equal(t1, t2)
    np.testing.assert_array_equal(n1, n2)
    assert p1 == p2
    np.testing.assert_array_equal(g1, g2)
    seed_everything(124)
    t3, n3, p3 = draw()
    assert not torch.equal(t1, t3)
    assert not np.array_equal(n1, n3)
    assert p1 != p3


def test_seed_everything_accepts_numpy_and_large_ints() -> None:
    """NumPy integers and seeds beyond 2**32 are accepted (NumPy's legacy seed is reduced)."""
    seed_everything(np.int64(5))
    a = torch.rand(3)
    seed_everything(5)
    assert torch.equal(a, torch.rand(3))
    seed_everything(2**40 + 1)


@pytest.mark.parametrize("seed", [1.5, 2.0, "3", None, True])
def test_seed_everything_rejects_non_integers(seed: object) -> None:
    """Floats, strings, None and bools are not seeds."""
    with pytest.raises(TypeError, match="seed must be an integer"):
        seed_everything(seed)  # type: ignore[arg-type]
