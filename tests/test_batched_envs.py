"""Tests of rlcourse.envs.batched: TorchCartPole against gymnasium's CartPole-v1 step for
step (replaying gymnasium's start states), the SAME_STEP autoreset convention, seeding, the
clear errors, TorchTabularEnv against the tables it samples, and the torch envs inside
rlcourse's training loops (Transitions, PPO, DQN)."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import rlcourse  # noqa: F401 -- registers the rlcourse/ env ids
from rlcourse import dqn, ppo
from rlcourse.envs.batched import TorchCartPole, TorchTabularEnv
from rlcourse.envs.vector import Transitions

THETA_LIMIT = 12 * 2 * math.pi / 360  # CartPole terminates beyond 12 degrees
X_LIMIT = 2.4
LEFT, DOWN, RIGHT, UP = 0, 1, 2, 3  # FrozenLake's action numbering


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny tensors: one intra-op thread is fastest, and on a busy 2-core machine a second
    thread waiting for a core makes every operation many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------
# TorchCartPole against gymnasium's CartPole-v1


def _states(envs: list[gym.Env]) -> np.ndarray:
    """The float64 states ``[n, 4]`` of gymnasium CartPoles (what they keep internally)."""
    return np.stack([e.unwrapped.state for e in envs])


def _replay_gymnasium(
    dtype: torch.dtype, n: int, vector_steps: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Step ``n`` gymnasium CartPole-v1 envs and a TorchCartPole started in their states with
    the same random actions; whenever gymnasium's copies end, reseed them and copy their new
    start states into the torch env (``reset_mask`` + ``state``).

    Asserts identical flags and rewards at every step, and returns the torch env's final
    observations, gymnasium's observations (both ``[vector_steps, n, 4]``), the step of
    the episode each one is (``[vector_steps, n]``, from 1) and the number of finished
    episodes.
    """
    gym_envs = [gym.make("CartPole-v1") for _ in range(n)]
    for i, e in enumerate(gym_envs):
        e.reset(seed=seed + i)
    next_seed = seed + n
    env = TorchCartPole(n, dtype=dtype)
    env.reset(options={"state": _states(gym_envs)})
    rng = np.random.default_rng(seed)
    torch_final = np.empty((vector_steps, n, 4), dtype=np.float32)
    gym_obs = np.empty((vector_steps, n, 4), dtype=np.float32)
    episode_step = np.empty((vector_steps, n), dtype=np.int64)
    length = np.zeros(n, dtype=np.int64)
    episodes = 0
    for t in range(vector_steps):
        actions = rng.integers(0, 2, n)
        _, reward, terminated, truncated, info = env.step(torch.from_numpy(actions))
        results = [e.step(int(a)) for e, a in zip(gym_envs, actions, strict=True)]
        gym_obs[t] = np.stack([r[0] for r in results])
        torch_final[t] = info["final_obs"].numpy()
        length += 1
        episode_step[t] = length
        g_reward = np.array([r[1] for r in results], dtype=np.float32)
        g_term = np.array([r[2] for r in results])
        g_trunc = np.array([r[3] for r in results])
        np.testing.assert_array_equal(terminated.numpy(), g_term, err_msg=f"step {t}")
        np.testing.assert_array_equal(truncated.numpy(), g_trunc, err_msg=f"step {t}")
        np.testing.assert_array_equal(reward.numpy(), g_reward, err_msg=f"step {t}")
        done = g_term | g_trunc
        np.testing.assert_array_equal(info["_final_obs"].numpy(), done)
        if done.any():
            idx = np.flatnonzero(done)
            for i in idx:
                gym_envs[i].reset(seed=next_seed)
                next_seed += 1
            episodes += len(idx)
            length[idx] = 0
            env.reset(
                options={
                    "reset_mask": torch.from_numpy(done),
                    "state": _states([gym_envs[i] for i in idx]),
                }
            )
    return torch_final, gym_obs, episode_step, episodes


def test_cartpole_matches_gymnasium_step_for_step() -> None:
    """16 copies x 3000 vector steps of random actions (over 1000 episodes): with float64
    state the observations are gymnasium's to 1e-5 (in fact equal), and terminated,
    truncated and reward are identical at every step."""
    torch_final, gym_obs, episode_step, episodes = _replay_gymnasium(
        torch.float64, 16, 3000, seed=0
    )
    assert episodes > 1000 and episode_step.max() > 60
    np.testing.assert_allclose(torch_final, gym_obs, rtol=0, atol=1e-5)


def test_cartpole_float32_matches_gymnasium_closely() -> None:
    """The float32 state drifts from gymnasium's float64 by rounding only, and flags are
    identical. CartPole is unstable, so the drift grows with the episode: within
    1e-4 (relative and absolute) over the first 60 steps of every episode, within 2e-3 over
    the rare long ones (random actions)."""
    torch_final, gym_obs, episode_step, episodes = _replay_gymnasium(
        torch.float32, 16, 3000, seed=1
    )
    assert episodes > 1000
    early = episode_step <= 60
    assert early.mean() > 0.9
    np.testing.assert_allclose(torch_final[early], gym_obs[early], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(torch_final, gym_obs, rtol=0, atol=2e-3)
    # and the typical observation is within a few float32 ulps
    err = np.abs(torch_final - gym_obs)
    assert np.median(err) < 1e-7 and np.quantile(err, 0.99) < 1e-5


def _balance(obs: np.ndarray) -> np.ndarray:
    """A linear controller that keeps CartPole's pole up for 500 steps and more."""
    x, x_dot, theta, theta_dot = obs.T
    return (theta + 0.3 * theta_dot + 0.01 * x + 0.1 * x_dot > 0).astype(np.int64)


def test_cartpole_truncates_at_500_like_gymnasium() -> None:
    """A balancing controller on gymnasium and on TorchCartPole (float64) for 1100 steps:
    both truncate at steps 500 and 1000 and never terminate, the observations agree, and
    the torch copies restart at once (step counter 0, a fresh start state)."""
    n, steps = 4, 1100
    gym_envs = [gym.make("CartPole-v1") for _ in range(n)]
    obs = np.stack([e.reset(seed=100 + i)[0] for i, e in enumerate(gym_envs)])
    next_seed = 100 + n
    env = TorchCartPole(n)
    env.reset(options={"state": _states(gym_envs)})
    truncations = []
    for t in range(1, steps + 1):
        actions = _balance(obs)
        t_obs, _, terminated, truncated, info = env.step(torch.from_numpy(actions))
        results = [e.step(int(a)) for e, a in zip(gym_envs, actions, strict=True)]
        obs = np.stack([r[0] for r in results])
        g_term = np.array([r[2] for r in results])
        g_trunc = np.array([r[3] for r in results])
        assert not g_term.any(), f"the controller let the pole fall at step {t}"
        np.testing.assert_array_equal(terminated.numpy(), g_term)
        np.testing.assert_array_equal(truncated.numpy(), g_trunc)
        np.testing.assert_allclose(info["final_obs"].numpy(), obs, rtol=0, atol=1e-5)
        if g_trunc.any():
            assert g_trunc.all()  # every copy started together
            truncations.append(t)
            assert (env.steps == 0).all()
            assert (t_obs.abs() <= 0.05).all()
            assert not torch.equal(t_obs, info["final_obs"])
            for i, e in enumerate(gym_envs):
                obs[i] = e.reset(seed=next_seed)[0]
                next_seed += 1
            env.reset(
                options={"reset_mask": torch.ones(n, dtype=torch.bool), "state": _states(gym_envs)}
            )
        else:
            assert (env.steps == t % 500).all()
    assert truncations == [500, 1000]


# ---------------------------------------------------------------------------
# conventions: dtypes, shapes, autoreset, seeding


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cartpole_step_conventions(dtype: torch.dtype) -> None:
    n = 8
    env = TorchCartPole(n, dtype=dtype)
    assert env.single_observation_space == gym.make("CartPole-v1").observation_space
    assert env.single_action_space == gym.spaces.Discrete(2)
    assert env.observation_space.shape == (n, 4)
    assert env.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    obs, info = env.reset(seed=0)
    assert obs.dtype == torch.float32 and obs.shape == (n, 4) and obs.device.type == "cpu"
    assert (obs.abs() <= 0.05).all() and info == {}
    g = torch.Generator().manual_seed(0)
    done_steps = 0
    for _ in range(200):
        actions = torch.randint(0, 2, (n,), generator=g)
        obs, reward, terminated, truncated, info = env.step(actions)
        assert obs.dtype == torch.float32 and obs.shape == (n, 4)
        assert reward.dtype == torch.float32 and reward.shape == (n,)
        assert (reward == 1).all()
        assert terminated.dtype == torch.bool and terminated.shape == (n,)
        assert truncated.dtype == torch.bool and truncated.shape == (n,)
        assert set(info) >= {"final_obs", "_final_obs"}
        final, has_final = info["final_obs"], info["_final_obs"]
        assert final.dtype == torch.float32 and final.shape == (n, 4)
        assert has_final.dtype == torch.bool
        done = terminated | truncated
        assert torch.equal(has_final, done)
        assert not truncated.any()  # a random policy never lasts 500 steps
        # copies that go on: the final observation is the observation
        assert torch.equal(final[~done], obs[~done])
        if done.any():
            done_steps += 1
            # copies that ended: a fresh start state, and the terminal one in final_obs
            assert (obs[done].abs() <= 0.05).all()
            x, theta = final[done, 0], final[done, 2]
            assert ((x.abs() > X_LIMIT) | (theta.abs() > THETA_LIMIT)).all()
            assert (env.steps[done] == 0).all()
        x, theta = final[~done, 0], final[~done, 2]
        assert ((x.abs() <= X_LIMIT) & (theta.abs() <= THETA_LIMIT)).all()
    assert done_steps > 20


def _trajectory(env: TorchCartPole, seed: int, steps: int) -> list[torch.Tensor]:
    obs, _ = env.reset(seed=seed)
    out = [obs]
    actions = torch.Generator().manual_seed(123)
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(
            torch.randint(0, 2, (env.num_envs,), generator=actions)
        )
        out += [obs, reward, terminated, truncated, info["final_obs"]]
    return out


def test_cartpole_seeding() -> None:
    """Same seed: the same start states and trajectory (autoresets included), also when an
    env is reseeded after use; different seeds: different start states."""
    a = _trajectory(TorchCartPole(6), seed=7, steps=150)
    b = _trajectory(TorchCartPole(6), seed=7, steps=150)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    used = TorchCartPole(6)
    _trajectory(used, seed=3, steps=40)
    c = _trajectory(used, seed=7, steps=150)
    assert all(torch.equal(x, y) for x, y in zip(a, c, strict=True))
    d = _trajectory(TorchCartPole(6), seed=8, steps=150)
    assert not torch.equal(a[0], d[0])
    assert not (a[0] == d[0]).any()
    # the copies of one env start in different states
    assert len(set(a[0][:, 0].tolist())) == 6


def _observation_views(env, steps: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Everything an env hands out over ``steps`` steps and a masked reset, each paired
    with a clone taken when it was handed out."""
    out = []

    def keep(*tensors: torch.Tensor) -> None:
        out.extend((x, x.clone()) for x in tensors)

    keep(env.reset(seed=seed)[0])
    g = torch.Generator().manual_seed(seed)
    n_actions = int(env.single_action_space.n)
    for t in range(steps):
        obs, reward, terminated, truncated, info = env.step(
            torch.randint(0, n_actions, (env.num_envs,), generator=g)
        )
        keep(obs, reward, terminated, truncated, info["final_obs"], info["_final_obs"])
        if t == steps // 2:
            mask = torch.zeros(env.num_envs, dtype=torch.bool)
            mask[::2] = True
            keep(env.reset(options={"reset_mask": mask})[0])
    return out


@pytest.mark.parametrize(
    "make",
    [
        lambda: TorchCartPole(5),
        lambda: TorchCartPole(5, dtype=torch.float32),
        lambda: TorchTabularEnv("FrozenLake-v1", 5),
        lambda: TorchTabularEnv("rlcourse/GridWorld4x4-v0", 5, one_hot=True),
    ],
    ids=["cartpole64", "cartpole32", "frozenlake", "gridworld-one-hot"],
)
def test_observations_handed_out_never_change(make) -> None:
    env = make()
    handed = _observation_views(env, 60, seed=0)
    # keep stepping and resetting: nothing handed out before may change
    g = torch.Generator().manual_seed(1)
    n_actions = int(env.single_action_space.n)
    for _ in range(60):
        env.step(torch.randint(0, n_actions, (env.num_envs,), generator=g))
    env.reset(options={"reset_mask": torch.ones(env.num_envs, dtype=torch.bool)})
    env.reset(seed=5)
    env.step(torch.zeros(env.num_envs, dtype=torch.long))
    for got, kept in handed:
        assert torch.equal(got, kept)


def test_reset_mask_restarts_only_the_masked_copies() -> None:
    env = TorchCartPole(6)
    env.reset(seed=0)
    for _ in range(5):
        before, *_ = env.step(torch.ones(6, dtype=torch.long))
    assert (env.steps == 5).all()
    mask = torch.tensor([True, False, True, False, False, True])
    states = np.array([[0.01, 0.02, 0.03, 0.04], [-0.01, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.1]])
    obs, _ = env.reset(options={"reset_mask": mask, "state": states})
    assert torch.equal(obs[~mask], before[~mask])
    assert torch.equal(obs[mask], torch.as_tensor(states, dtype=torch.float32))
    assert env.steps.tolist() == [0, 5, 0, 5, 5, 0]
    # a mask without states draws fresh start states for those copies
    obs2, _ = env.reset(options={"reset_mask": ~mask})
    assert torch.equal(obs2[mask], obs[mask])
    assert (obs2[~mask].abs() <= 0.05).all() and not torch.equal(obs2[~mask], obs[~mask])
    assert (env.steps == 0).all()


def test_time_limit_is_configurable() -> None:
    """max_episode_steps=7 truncates every 7 steps; None never truncates."""
    env = TorchCartPole(3, max_episode_steps=7)
    env.reset(seed=0)
    state = np.zeros((3, 4))
    env.reset(options={"state": state})
    truncated_at = []
    for t in range(1, 22):
        # alternate pushes keep the pole up for these few steps
        _, _, terminated, truncated, _ = env.step(torch.full((3,), t % 2, dtype=torch.long))
        assert not terminated.any()
        if truncated.any():
            assert truncated.all()
            truncated_at.append(t)
    assert truncated_at == [7, 14, 21]
    env = TorchCartPole(3, max_episode_steps=None)
    env.reset(options={"state": state})
    for t in range(600):
        _, _, terminated, truncated, _ = env.step(torch.full((3,), t % 2, dtype=torch.long))
        assert not truncated.any()


# ---------------------------------------------------------------------------
# errors


def test_step_before_reset() -> None:
    with pytest.raises(RuntimeError, match="reset"):
        TorchCartPole(2).step(torch.zeros(2, dtype=torch.long))
    with pytest.raises(RuntimeError, match="reset"):
        TorchTabularEnv("FrozenLake-v1", 2).step(torch.zeros(2, dtype=torch.long))
    with pytest.raises(RuntimeError, match="reset"):
        TorchCartPole(2).reset(options={"reset_mask": torch.ones(2, dtype=torch.bool)})


@pytest.mark.parametrize(
    ("actions", "message"),
    [
        (torch.zeros(4, dtype=torch.long), r"3 integers .*shape \(4,\)"),
        (torch.zeros(3, 1, dtype=torch.long), r"shape \(3, 1\)"),
        (torch.zeros((), dtype=torch.long), r"shape \(\)"),
        (torch.zeros(3), "float32"),
        (np.zeros(3), "float64"),
        (torch.zeros(3, dtype=torch.bool), "bool"),
        (torch.tensor([0, 1, 2]), r"\[0, 2\)"),
        ([0, -1, 1], r"\[0, 2\)"),
    ],
    ids=["too-many", "2d", "scalar", "float32", "numpy-float", "bool", "too-big", "negative"],
)
def test_bad_actions(actions, message: str) -> None:
    env = TorchCartPole(3)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(actions)
    env.step(torch.tensor([0, 1, 1]))  # still usable
    env.step(np.array([1, 0, 1]))  # NumPy integers and lists are fine
    env.step([1, 1, 0])


@pytest.mark.parametrize(
    ("options", "exception", "message"),
    [
        ({"start_state": 0}, ValueError, r"unknown reset options \['start_state'\]"),
        ({"reset_mask": torch.ones(3, dtype=torch.long)}, ValueError, "reset_mask .*int64"),
        ({"reset_mask": torch.ones(4, dtype=torch.bool)}, ValueError, r"reset_mask .*\(4,\)"),
        ({"reset_mask": torch.ones(3, 1, dtype=torch.bool)}, ValueError, "reset_mask"),
        ({"state": np.zeros((3, 3))}, ValueError, r"state must have shape \(3, 4\)"),
        ({"state": np.zeros((4, 3))}, ValueError, r"state must have shape \(3, 4\)"),
        ({"state": np.zeros(4)}, ValueError, "state must have shape"),
        (
            {"reset_mask": torch.tensor([True, False, True]), "state": np.zeros((3, 4))},
            ValueError,
            r"state must have shape \(2, 4\)",
        ),
    ],
    ids=[
        "unknown-option",
        "mask-dtype",
        "mask-length",
        "mask-2d",
        "state-3-columns",
        "state-transposed",
        "state-1d",
        "state-rows-vs-mask",
    ],
)
def test_bad_reset_options(options, exception, message: str) -> None:
    env = TorchCartPole(3)
    env.reset(seed=0)
    with pytest.raises(exception, match=message):
        env.reset(options=options)


@pytest.mark.parametrize("num_envs", [0, -1, True, 2.0, "4"])
def test_bad_num_envs(num_envs) -> None:
    with pytest.raises(ValueError, match="num_envs must be a positive integer"):
        TorchCartPole(num_envs)
    with pytest.raises(ValueError, match="num_envs must be a positive integer"):
        TorchTabularEnv("FrozenLake-v1", num_envs)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.int64, np.float64])
def test_bad_cartpole_dtype(dtype) -> None:
    with pytest.raises(ValueError, match=r"dtype must be torch\.float32 or torch\.float64"):
        TorchCartPole(2, dtype=dtype)


@pytest.mark.parametrize("limit", [0, -5, 2.5])
def test_bad_max_episode_steps(limit) -> None:
    with pytest.raises(ValueError, match="max_episode_steps must be a positive integer"):
        TorchCartPole(2, max_episode_steps=limit)


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (torch.zeros(2, dtype=torch.long), "3 integer states"),
        (torch.zeros(3), "3 integer states"),
        (torch.tensor([0, 16, 1]), r"\[0, 16\)"),
        (torch.tensor([0, -1, 1]), r"\[0, 16\)"),
    ],
)
def test_bad_tabular_states(state, message: str) -> None:
    env = TorchTabularEnv("FrozenLake-v1", 3)
    with pytest.raises(ValueError, match=message):
        env.reset(options={"state": state})


def test_tabular_env_needs_a_table() -> None:
    with pytest.raises(ValueError, match="no transition table"):
        TorchTabularEnv("CartPole-v1", 2)
    with pytest.raises(ValueError, match="unknown environment id"):
        TorchTabularEnv("NoSuchEnv-v0", 2)


def test_tabular_actions_checked_against_the_env() -> None:
    env = TorchTabularEnv("rlcourse/GridWorld4x4-v0", 2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        env.step(torch.tensor([0, 4]))


# ---------------------------------------------------------------------------
# TorchTabularEnv


def _reference(env_id: str, **kwargs):
    """A single env to replay transitions on: ``step_from(s, a) -> (s', r, terminated)``.

    gymnasium's own toy_text env (state set through ``unwrapped.s``) for its ids, the
    course's TabularEnv (``options={"start_state": s}``) for the course's."""
    e = gym.make(env_id, **kwargs).unwrapped
    e.reset(seed=0)
    if env_id.startswith("rlcourse/"):

        def step_from(s: int, a: int) -> tuple[int, float, bool]:
            e.reset(options={"start_state": s})
            s2, r, terminated, _, _ = e.step(a)
            return int(s2), float(r), bool(terminated)

    else:

        def step_from(s: int, a: int) -> tuple[int, float, bool]:
            e.s = s
            s2, r, terminated, _, _ = e.step(a)
            return int(s2), float(r), bool(terminated)

    return step_from


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("rlcourse/GridWorld4x4-v0", {}),
        ("rlcourse/WindyGridWorld-v0", {}),
        ("CliffWalking-v1", {}),
        ("FrozenLake-v1", {"is_slippery": False}),
    ],
    ids=["gridworld4x4", "windy", "cliffwalking", "frozenlake-not-slippery"],
)
def test_deterministic_tabular_envs_match_the_reference_step_for_step(env_id, kwargs) -> None:
    """32 copies x 150 steps of random actions: every next state (final_obs), reward and
    terminated flag is the reference env's from the same state and action; copies that
    ended restart in a start state."""
    n = 32
    env = TorchTabularEnv(gym.make(env_id, **kwargs), n)
    step_from = _reference(env_id, **kwargs)
    starts = set(np.flatnonzero(env.table.initial > 0).tolist())
    obs, _ = env.reset(seed=0)
    assert obs.dtype == torch.int64 and obs.shape == (n,)
    assert set(obs.tolist()) <= starts
    g = torch.Generator().manual_seed(0)
    ended = 0
    for _ in range(150):
        actions = torch.randint(0, env.A, (n,), generator=g)
        nxt, reward, terminated, truncated, info = env.step(actions)
        assert reward.dtype == torch.float32 and terminated.dtype == torch.bool
        expected = [step_from(s, a) for s, a in zip(obs.tolist(), actions.tolist(), strict=True)]
        assert info["final_obs"].tolist() == [e[0] for e in expected]
        assert reward.tolist() == [e[1] for e in expected]
        assert terminated.tolist() == [e[2] for e in expected]
        done = terminated | truncated
        assert torch.equal(info["_final_obs"], done)
        assert torch.equal(nxt[~done], info["final_obs"][~done])
        assert set(nxt[done].tolist()) <= starts
        ended += int(terminated.sum())
        obs = nxt
    if env_id != "rlcourse/WindyGridWorld-v0":  # random actions rarely cross the windy grid
        assert ended > 0


def test_cliffwalking_cliff_is_not_terminal() -> None:
    """Stepping right from CliffWalking's start falls off the cliff: reward -100, back at
    the start, and the episode goes on (gymnasium 1.x's CliffWalking-v1)."""
    env = TorchTabularEnv("CliffWalking-v1", 3)
    obs, _ = env.reset(seed=0)
    assert obs.tolist() == [36, 36, 36]
    nxt, reward, terminated, truncated, _ = env.step(torch.ones(3, dtype=torch.long))
    assert nxt.tolist() == [36, 36, 36]
    assert reward.tolist() == [-100.0] * 3
    assert not terminated.any() and not truncated.any()


def _gym_table(env_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``P``, ``reward`` and ``done`` ``[S, A, S]`` read straight from gymnasium's dict."""
    u = gym.make(env_id).unwrapped
    S, A = u.observation_space.n, u.action_space.n
    P, R, D = np.zeros((S, A, S)), np.zeros((S, A, S)), np.zeros((S, A, S), dtype=bool)
    for s in range(S):
        for a in range(A):
            for p, s2, r, done in u.P[s][a]:
                P[s, a, s2] += p
                R[s, a, s2] = r
                D[s, a, s2] = done
    return P, R, D


@pytest.mark.parametrize(("s", "a"), [(0, LEFT), (6, DOWN), (14, RIGHT), (9, UP)])
def test_frozenlake_transition_frequencies_match_gymnasium(s: int, a: int) -> None:
    """20,000 copies reset into state s take action a once: the frequency of each s' is
    gymnasium's P[s][a] within 5 standard errors; rewards and flags are the table's."""
    P, R, D = _gym_table("FrozenLake-v1")
    n = 20_000
    env = TorchTabularEnv("FrozenLake-v1", n)
    env.reset(seed=s * 10 + a, options={"state": torch.full((n,), s)})
    _, reward, terminated, _, info = env.step(torch.full((n,), a))
    s_next = info["final_obs"].numpy()
    freq = np.bincount(s_next, minlength=16) / n
    p = P[s, a]
    se = np.sqrt(p * (1 - p) / n)
    assert (np.abs(freq - p) <= 5 * se).all(), (freq, p)
    assert (freq[p == 0] == 0).all()
    assert (p > 0).sum() >= 2 and (freq[p > 0] > 0).all()  # slippery: every outcome seen
    np.testing.assert_array_equal(reward.numpy(), R[s, a, s_next])
    np.testing.assert_array_equal(terminated.numpy(), D[s, a, s_next])


def test_start_states_follow_the_initial_distribution() -> None:
    """GridWorld4x4 starts uniformly in its 14 non-terminal states: 14,000 copies give
    counts of 1000 each within 5 standard errors, and none in a terminal corner."""
    n = 14_000
    env = TorchTabularEnv("rlcourse/GridWorld4x4-v0", n)
    obs, _ = env.reset(seed=0)
    counts = np.bincount(obs.numpy(), minlength=16)
    assert counts[0] == 0 and counts[15] == 0
    p = 1 / 14
    assert (np.abs(counts[1:15] - n * p) <= 5 * math.sqrt(n * p * (1 - p))).all()


def test_one_hot_observations() -> None:
    """one_hot=True: float32 one-hot rows [N, S] in a Box space, the same trajectory as the
    index observations with the same seed and actions (final_obs one-hot too)."""
    n = 16
    idx_env = TorchTabularEnv("FrozenLake-v1", n)
    hot_env = TorchTabularEnv("FrozenLake-v1", n, one_hot=True)
    assert idx_env.single_observation_space == gym.spaces.Discrete(16)
    space = hot_env.single_observation_space
    assert isinstance(space, gym.spaces.Box)
    assert space.shape == (16,) and space.dtype == np.float32
    assert space.low.min() == 0.0 and space.high.max() == 1.0
    assert hot_env.observation_space.shape == (n, 16)
    i_obs, _ = idx_env.reset(seed=3)
    h_obs, _ = hot_env.reset(seed=3)
    g = torch.Generator().manual_seed(0)
    for _ in range(100):
        assert h_obs.dtype == torch.float32 and h_obs.shape == (n, 16)
        assert torch.equal(h_obs, torch.nn.functional.one_hot(i_obs, 16).float())
        assert space.contains(h_obs[0].numpy())
        actions = torch.randint(0, 4, (n,), generator=g)
        i_obs, i_r, i_te, i_tr, i_info = idx_env.step(actions)
        h_obs, h_r, h_te, h_tr, h_info = hot_env.step(actions)
        assert torch.equal(i_r, h_r) and torch.equal(i_te, h_te) and torch.equal(i_tr, h_tr)
        assert torch.equal(h_info["final_obs"].argmax(1), i_info["final_obs"])
        assert torch.equal(h_info["final_obs"].sum(1), torch.ones(n))


def test_tabular_time_limit() -> None:
    """Non-slippery FrozenLake, always LEFT from the start: the agent never moves, and the
    episode is truncated at the registered limit (100), or at max_episode_steps."""
    env = TorchTabularEnv(gym.make("FrozenLake-v1", is_slippery=False), 2)
    assert env.max_episode_steps == 100
    env.reset(seed=0)
    truncated_at = []
    for t in range(1, 251):
        obs, _, terminated, truncated, info = env.step(torch.full((2,), LEFT))
        assert obs.tolist() == [0, 0] and not terminated.any()
        if truncated.any():
            assert truncated.all() and info["_final_obs"].all()
            truncated_at.append(t)
    assert truncated_at == [100, 200]
    env = TorchTabularEnv(gym.make("FrozenLake-v1", is_slippery=False), 2, max_episode_steps=3)
    env.reset(seed=0)
    flags = [bool(env.step(torch.full((2,), LEFT))[3].all()) for _ in range(9)]
    assert flags == [False, False, True] * 3
    assert TorchTabularEnv("rlcourse/GridWorld4x4-v0", 1).max_episode_steps == 100


def test_tabular_seeding() -> None:
    def run(seed: int) -> list[list[int]]:
        env = TorchTabularEnv("FrozenLake-v1", 32)
        obs, _ = env.reset(seed=seed)
        g = torch.Generator().manual_seed(0)
        out = [obs.tolist()]
        for _ in range(50):
            obs, *_ = env.step(torch.randint(0, 4, (32,), generator=g))
            out.append(obs.tolist())
        return out

    assert run(1) == run(1)
    assert run(1) != run(2)


# ---------------------------------------------------------------------------
# inside the course's training loops


def test_transitions_with_a_torch_env() -> None:
    """Transitions over TorchCartPole(4): next_obs is info["final_obs"] (the observation
    the step led to), every step is valid, and the episodes recorded are the ones counted
    by hand on a twin env stepped with the same actions."""
    n = 4
    steps = Transitions(TorchCartPole(n), torch.device("cpu"))
    twin = TorchCartPole(n)
    obs = steps.reset(seed=0)
    twin_obs, _ = twin.reset(seed=0)
    assert torch.equal(obs, twin_obs)
    g = torch.Generator().manual_seed(0)
    length = np.zeros(n, dtype=int)
    expected = []
    ended_steps = 0
    for t in range(1, 301):
        actions = torch.randint(0, 2, (n,), generator=g)
        next_obs, reward, terminated, truncated, valid = steps.step(actions)
        twin_obs, t_reward, t_term, t_trunc, info = twin.step(actions)
        assert torch.equal(next_obs, info["final_obs"])
        assert torch.equal(steps.obs, twin_obs)
        assert torch.equal(reward, t_reward)
        assert torch.equal(terminated, t_term) and torch.equal(truncated, t_trunc)
        assert valid.all()
        length += 1
        done = (t_term | t_trunc).numpy()
        if done.any():
            ended_steps += 1
            assert not torch.equal(next_obs[done], steps.obs[done])
        for i in np.flatnonzero(done):
            expected.append((n * t, float(length[i]), int(length[i])))
            length[i] = 0
    assert ended_steps > 10
    assert steps.episodes == expected
    assert steps.env_steps == n * 300


def test_ppo_trains_on_torch_cartpole() -> None:
    config = ppo.PPOConfig(total_steps=2048, eval_every=10**9, device="cpu")
    agent, history = ppo.train(
        TorchCartPole(8), config, seed=0, eval_env="CartPole-v1", progress=False
    )
    assert len(history.episodes) > 20
    assert all(float(length) == ret for _, ret, length in history.episodes)
    assert all(1 <= length <= 500 for _, _, length in history.episodes)
    assert history.episodes[-1][0] <= 2048
    action = agent.act(np.zeros(4, dtype=np.float32))
    assert int(action) in (0, 1)


def test_dqn_trains_on_torch_cartpole() -> None:
    config = dqn.DQNConfig(
        total_steps=1000,
        num_envs=4,
        learning_starts=200,
        buffer_size=1000,
        train_every=4,
        gradient_steps=4,
        hidden=(32,),
        eval_every=0,
        device="cpu",
    )
    agent, history = dqn.train(TorchCartPole(config.num_envs), config, seed=0, progress=False)
    assert len(history.episodes) > 10
    assert all(float(length) == ret for _, ret, length in history.episodes)
    assert history.episodes[-1][0] <= 1000
    assert int(agent.act(np.zeros(4, dtype=np.float32))) in (0, 1)


# ---------------------------------------------------------------------------
# on a GPU


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cartpole_on_cuda_matches_cpu() -> None:
    """From the same start states with the same actions, TorchCartPole float64 on CUDA
    follows the CPU trajectory (flags identical, observations within 1e-6); start states
    after an autoreset come from each device's generator, so copies that end are put back
    into the same states on both."""
    n = 64
    cpu = TorchCartPole(n)
    gpu = TorchCartPole(n, device="cuda")
    rng = np.random.default_rng(0)
    states = rng.uniform(-0.05, 0.05, (n, 4))
    cpu.reset(options={"state": states})
    obs, _ = gpu.reset(seed=0, options={"state": states})
    assert obs.device.type == "cuda"
    episodes = 0
    for _ in range(1000):
        actions = torch.from_numpy(rng.integers(0, 2, n))
        _, c_reward, c_term, c_trunc, c_info = cpu.step(actions)
        g_obs, g_reward, g_term, g_trunc, g_info = gpu.step(actions.cuda())
        assert g_obs.device.type == "cuda" and g_term.device.type == "cuda"
        assert torch.equal(g_term.cpu(), c_term) and torch.equal(g_trunc.cpu(), c_trunc)
        assert torch.equal(g_reward.cpu(), c_reward)
        torch.testing.assert_close(
            g_info["final_obs"].cpu(), c_info["final_obs"], rtol=0, atol=1e-6
        )
        done = c_term | c_trunc
        if done.any():
            episodes += int(done.sum())
            states = rng.uniform(-0.05, 0.05, (int(done.sum()), 4))
            cpu.reset(options={"reset_mask": done, "state": states})
            gpu.reset(options={"reset_mask": done.cuda(), "state": states})
    assert episodes > 1000


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tabular_env_on_cuda_matches_cpu() -> None:
    """GridWorld4x4 (deterministic) on CUDA: the same next states, rewards and flags as on
    the CPU from the same states and actions; everything stays on the device."""
    n = 256
    cpu = TorchTabularEnv("rlcourse/GridWorld4x4-v0", n)
    gpu = TorchTabularEnv("rlcourse/GridWorld4x4-v0", n, device="cuda", one_hot=True)
    obs, _ = cpu.reset(seed=0)
    gpu.reset(seed=0, options={"state": obs.cuda()})
    g = torch.Generator().manual_seed(0)
    ended = 0
    for _ in range(200):
        actions = torch.randint(0, 4, (n,), generator=g)
        obs, c_reward, c_term, c_trunc, c_info = cpu.step(actions)
        g_obs, g_reward, g_term, g_trunc, g_info = gpu.step(actions.cuda())
        assert g_obs.device.type == "cuda" and g_obs.shape == (n, 16)
        assert torch.equal(g_info["final_obs"].argmax(1).cpu(), c_info["final_obs"])
        assert torch.equal(g_reward.cpu(), c_reward)
        assert torch.equal(g_term.cpu(), c_term) and torch.equal(g_trunc.cpu(), c_trunc)
        done = c_term | c_trunc
        ended += int(done.sum())
        # start states after an autoreset come from each device's generator: align them
        gpu.reset(options={"reset_mask": done.cuda(), "state": obs[done].cuda()})
    assert ended > 100
