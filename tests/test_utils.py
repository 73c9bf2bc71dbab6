"""Tests of rlcourse.utils: device selection and seeding."""

from __future__ import annotations

import io
import random

import gymnasium as gym
import numpy as np
import pytest
import torch
from tqdm import tqdm

from rlcourse import dqn, pg, ppo
from rlcourse.envs import TorchCartPole, example_4_1
from rlcourse.envs.vector import make_vector_env
from rlcourse.utils import (
    close_bar,
    device_summary,
    env_device,
    resolve_device,
    seed_everything,
)


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


@pytest.fixture
def gpu_claimed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend this machine has a CUDA GPU (any tensor actually put on it would fail)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


class _EnvOn:
    """Stands for one of the course's torch envs whose copies live on ``device``."""

    torch_native = True

    def __init__(self, device: str) -> None:
        self.device = torch.device(device)


def test_auto_follows_the_env(gpu_claimed: None) -> None:
    """With an env, 'auto' is where the env steps: the device of a torch env, the CPU for
    env ids and gymnasium envs (host-side NumPy), even when a GPU is present."""
    assert resolve_device("auto", _EnvOn("cuda")) == torch.device("cuda")
    assert resolve_device("auto", _EnvOn("cuda:1")) == torch.device("cuda:1")
    assert resolve_device("auto", TorchCartPole(2)) == torch.device("cpu")
    for env in ("CartPole-v1", make_vector_env("CartPole-v1", 2), gym.make("CartPole-v1")):
        assert resolve_device("auto", env) == torch.device("cpu")
        assert env_device(env) == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda")  # no env: whole-tensor work


def test_an_explicit_device_overrides_the_env(no_gpu: None) -> None:
    """'cpu' is the CPU whatever the env; 'cuda' still fails clearly without a GPU."""
    assert resolve_device("cpu", _EnvOn("cuda")) == torch.device("cpu")
    with pytest.raises(RuntimeError, match="no CUDA GPU is available"):
        resolve_device("cuda", "CartPole-v1")


QUIET = {"seed": 0, "progress": False}


@pytest.mark.parametrize(
    "train",
    [
        lambda: dqn.train("CartPole-v1", dqn.DQNConfig(total_steps=200, eval_every=0), **QUIET),
        lambda: ppo.train("CartPole-v1", ppo.PPOConfig(total_steps=256, eval_every=0), **QUIET),
        lambda: pg.train_a2c("CartPole-v1", pg.A2CConfig(total_steps=128, eval_every=0), **QUIET),
        lambda: pg.train_reinforce(
            "CartPole-v1", pg.REINFORCEConfig(total_steps=100, eval_every=0), **QUIET
        ),
    ],
    ids=["dqn", "ppo", "a2c", "reinforce"],
)
def test_auto_trains_beside_a_gymnasium_env_on_the_cpu(gpu_claimed: None, train) -> None:
    """device='auto' (every config's default) keeps the networks of a gymnasium env on the
    CPU even when a GPU is present: nothing here touches the (pretended) GPU."""
    agent, _ = train()
    assert agent.device == torch.device("cpu")
    assert all(p.device.type == "cpu" for p in agent.net.parameters())


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


@pytest.mark.parametrize(("done", "expected"), [(30, (30, 30)), (100, (100, 100))])
def test_close_bar_finishes_a_bar_that_stopped_early(done: int, expected: tuple) -> None:
    """An early stop (a confirmed solve) must not leave a bar below 100%; a full bar stays."""
    bar = tqdm(total=100, file=io.StringIO())
    bar.update(done)
    close_bar(bar)
    assert (bar.n, bar.total) == expected
    assert bar.fp.getvalue().strip().split("\r")[-1].startswith("100%")  # as last drawn


def test_close_bar_leaves_a_disabled_bar_alone() -> None:
    bar = tqdm(total=100, disable=True)
    close_bar(bar)
    assert bar.total == 100
