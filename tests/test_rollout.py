"""Reward-to-go, GAE and the rollout buffer: hand examples, a plain-Python reference,
the classic mistakes (PITFALLS 13 and 15, terminal masking), and the buffer's minibatches."""

from __future__ import annotations

import math

import pytest
import torch

from rlcourse.buffers import RolloutBuffer, discounted_reward_to_go, gae

F, T_ = False, True  # short names for the flag tables below

# ---------------------------------------------------------------------------
# a plain-Python reference (lists, one env at a time), with switches for the classic mistakes


def gae_reference(
    r: list[list[float]],
    v: list[list[float]],
    nv: list[list[float]],
    term: list[list[bool]],
    trunc: list[list[bool]],
    gamma: float,
    lam: float,
    *,
    bootstrap_terminated: bool = False,
    bootstrap_truncated: bool = True,
    cut_trace: bool = True,
) -> list[list[float]]:
    """A[t][n] for [T][N] lists. The defaults are right; the switches reproduce mistakes."""
    T, N = len(r), len(r[0])
    A = [[0.0] * N for _ in range(T)]
    for n in range(N):
        a_next = 0.0
        for t in reversed(range(T)):
            bootstrap = (bootstrap_terminated or not term[t][n]) and (
                bootstrap_truncated or not trunc[t][n]
            )
            delta = r[t][n] + (gamma * nv[t][n] if bootstrap else 0.0) - v[t][n]
            ended = cut_trace and (term[t][n] or trunc[t][n])
            a_next = delta + (0.0 if ended else gamma * lam * a_next)
            A[t][n] = a_next
    return A


def col(*rows: tuple) -> list[list]:
    """Rows given per env (N tuples of length T) -> [T][N] lists."""
    return [list(x) for x in zip(*rows, strict=True)]


def t64(x: list) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


def tbool(x: list) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.bool)


# ---------------------------------------------------------------------------
# the hand example: T=5, N=2, gamma=0.9, lam=0.8 (gamma * lam = 0.72)
#
# env 0 terminates at t=1 (its next_values there, 5.0, must be ignored);
# env 1 is truncated at t=2: next_values there is V(final obs) = 2.0, chosen unlike
# values[3][1] = 0.1 (the next episode's first observation).

GAMMA, LAM = 0.9, 0.8
R = col((1.0, 2.0, 0.0, 1.0, 3.0), (0.0, 1.0, 1.0, 2.0, -1.0))
V = col((0.5, 1.0, 0.2, 0.4, 0.6), (0.3, 0.6, 0.9, 0.1, 0.2))
NV = col((1.0, 5.0, 0.4, 0.6, 0.7), (0.6, 0.9, 2.0, 0.2, 0.5))
TERM = col((F, T_, F, F, F), (F, F, F, F, F))
TRUNC = col((F, F, F, F, F), (F, F, T_, F, F))

# env 0:  delta_t = r_t + 0.9 * (1 - term_t) * nv_t - v_t
#   delta_0 = 1 + 0.9*1.0 - 0.5 = 1.4
#   delta_1 = 2 + 0 - 1.0       = 1.0    (terminated: no bootstrap from 5.0)
#   delta_2 = 0 + 0.9*0.4 - 0.2 = 0.16
#   delta_3 = 1 + 0.9*0.6 - 0.4 = 1.14
#   delta_4 = 3 + 0.9*0.7 - 0.6 = 3.03
#   A_4 = 3.03
#   A_3 = 1.14 + 0.72*3.03     = 3.3216
#   A_2 = 0.16 + 0.72*3.3216   = 2.551552
#   A_1 = 1.0                           (episode ended: trace cut)
#   A_0 = 1.4 + 0.72*1.0       = 2.12
# env 1:
#   delta_0 = 0 + 0.9*0.6 - 0.3  = 0.24
#   delta_1 = 1 + 0.9*0.9 - 0.6  = 1.21
#   delta_2 = 1 + 0.9*2.0 - 0.9  = 1.9   (truncated: bootstrap from the final obs)
#   delta_3 = 2 + 0.9*0.2 - 0.1  = 2.08
#   delta_4 = -1 + 0.9*0.5 - 0.2 = -0.75
#   A_4 = -0.75
#   A_3 = 2.08 + 0.72*(-0.75)  = 1.54
#   A_2 = 1.9                           (trace cut at the truncation)
#   A_1 = 1.21 + 0.72*1.9      = 2.578
#   A_0 = 0.24 + 0.72*2.578    = 2.09616
A_HAND = col((2.12, 1.0, 2.551552, 3.3216, 3.03), (2.09616, 2.578, 1.9, 1.54, -0.75))


def hand_gae(**kwargs: object) -> torch.Tensor:
    args = {"next_values": t64(NV), "terminated": tbool(TERM), "truncated": tbool(TRUNC)}
    args.update(kwargs)
    return gae(t64(R), t64(V), gamma=GAMMA, lam=LAM, **args)


def test_gae_hand_example() -> None:
    A = hand_gae()
    assert A.shape == (5, 2) and A.dtype == torch.float64
    torch.testing.assert_close(A, t64(A_HAND))
    torch.testing.assert_close(A, t64(gae_reference(R, V, NV, TERM, TRUNC, GAMMA, LAM)))
    # the reference agrees with the hand numbers too (so neither is checked against itself)
    torch.testing.assert_close(t64(gae_reference(R, V, NV, TERM, TRUNC, GAMMA, LAM)), t64(A_HAND))


def test_gae_random_batch_matches_reference() -> None:
    g = torch.Generator().manual_seed(3)
    T, N = 7, 4
    r, v, nv = (torch.randn(T, N, generator=g, dtype=torch.float64) for _ in range(3))
    term = torch.rand(T, N, generator=g) < 0.2
    trunc = (torch.rand(T, N, generator=g) < 0.2) & ~term
    assert term.any() and trunc.any()
    ref = gae_reference(
        r.tolist(), v.tolist(), nv.tolist(), term.tolist(), trunc.tolist(), 0.97, 0.9
    )
    torch.testing.assert_close(gae(r, v, nv, term, trunc, 0.97, 0.9), t64(ref))


def values_shifted() -> list[list[float]]:
    """next_values taken as values[t+1] (the last step keeps its bootstrap value)."""
    return [*V[1:], NV[-1]]


MISTAKES = {
    # PITFALL 15: one long episode per column, bootstrapping and tracing across resets
    "ignores episode boundaries": lambda: gae_reference(
        R, V, NV, TERM, TRUNC, GAMMA, LAM, bootstrap_terminated=True, cut_trace=False
    ),
    # PITFALL 9: bootstraps from the terminal observation's value
    "bootstraps after termination": lambda: gae_reference(
        R, V, NV, TERM, TRUNC, GAMMA, LAM, bootstrap_terminated=True
    ),
    # treats the time limit as a real ending
    "does not bootstrap on truncation": lambda: gae_reference(
        R, V, NV, TERM, TRUNC, GAMMA, LAM, bootstrap_truncated=False
    ),
    # bootstraps a truncated step from the next episode's first observation
    "uses values[t+1] at a truncation": lambda: gae_reference(
        R, V, values_shifted(), TERM, TRUNC, GAMMA, LAM
    ),
    # masks with the flags of step t+1 (CleanRL's dones describe the *next* obs)
    "masks off by one step": lambda: gae_reference(
        R, V, NV, [*TERM[1:], [F, F]], [*TRUNC[1:], [F, F]], GAMMA, LAM
    ),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_gae_mistakes_differ_from_the_right_answer(mistake: str) -> None:
    wrong = t64(MISTAKES[mistake]())
    right = t64(A_HAND)
    assert not torch.allclose(wrong, right), f"the example cannot tell a GAE that {mistake}"
    torch.testing.assert_close(hand_gae(), right)


def test_gae_mistake_values_shifted_shows_only_at_the_truncation() -> None:
    # with values[t+1] in place of next_values, env 1's truncated step bootstraps from 0.1:
    # delta_2 = 1 + 0.9*0.1 - 0.9 = 0.19 instead of 1.9
    wrong = hand_gae(next_values=t64(values_shifted()))
    assert wrong[2, 1].item() == pytest.approx(0.19)
    assert hand_gae()[2, 1].item() == pytest.approx(1.9)


def test_gae_lambda_one_is_monte_carlo_and_lambda_zero_is_td_error() -> None:
    g = torch.Generator().manual_seed(0)
    T, N, gamma = 6, 3, 0.9
    r = torch.randn(T, N, generator=g, dtype=torch.float64)
    v_all = torch.randn(T + 1, N, generator=g, dtype=torch.float64)  # V(s_0) .. V(s_T)
    values, next_values = v_all[:-1], v_all[1:]
    no = torch.zeros(T, N, dtype=torch.bool)
    rl, vl = r.tolist(), v_all.tolist()
    # G_t = sum_{k=t}^{T-1} gamma^(k-t) r_k + gamma^(T-t) V(s_T)
    mc = [
        [
            sum(gamma ** (k - t) * rl[k][n] for k in range(t, T)) + gamma ** (T - t) * vl[T][n]
            for n in range(N)
        ]
        for t in range(T)
    ]
    A1 = gae(r, values, next_values, no, no, gamma, 1.0)
    torch.testing.assert_close(A1, t64(mc) - values)
    td = [[rl[t][n] + gamma * vl[t + 1][n] - vl[t][n] for n in range(N)] for t in range(T)]
    torch.testing.assert_close(gae(r, values, next_values, no, no, gamma, 0.0), t64(td))


def test_gae_lambda_one_on_complete_episodes_is_reward_to_go_minus_values() -> None:
    # every episode ends with a termination inside the rollout, so no bootstrap remains
    g = torch.Generator().manual_seed(1)
    r = torch.randn(6, 2, generator=g, dtype=torch.float64)
    v_all = torch.randn(7, 2, generator=g, dtype=torch.float64)
    # within an episode V(s_{t+1}) is the next step's value, so the deltas telescope;
    # at a termination next_values is never used
    values, next_values = v_all[:-1], v_all[1:]
    term = tbool(col((F, T_, F, F, F, T_), (F, F, T_, F, F, T_)))
    no = torch.zeros_like(term)
    A = gae(r, values, next_values, term, no, 0.95, 1.0)
    torch.testing.assert_close(A + values, discounted_reward_to_go(r, term, 0.95))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"gamma": 1.5}, ValueError, r"gamma must be in \[0, 1\], got 1.5"),
        ({"gamma": math.nan}, ValueError, "gamma must be in"),
        ({"lam": -0.1}, ValueError, r"lam must be in \[0, 1\], got -0.1"),
        ({"next_values": torch.zeros(5, 3)}, ValueError, "next_values has shape"),
        ({"truncated": torch.zeros(4, 2, dtype=torch.bool)}, ValueError, "truncated has shape"),
        ({"terminated": torch.zeros(5, 2)}, TypeError, "terminated must be a bool tensor"),
    ],
)
def test_gae_rejects_bad_input(kwargs: dict, error: type, message: str) -> None:
    args = {
        "rewards": t64(R),
        "values": t64(V),
        "next_values": t64(NV),
        "terminated": tbool(TERM),
        "truncated": tbool(TRUNC),
        "gamma": GAMMA,
        "lam": LAM,
    }
    args.update(kwargs)
    with pytest.raises(error, match=message):
        gae(**args)


# ---------------------------------------------------------------------------
# reward-to-go


def test_reward_to_go_hand_example_with_a_boundary() -> None:
    # gamma = 0.5
    # env 0: rewards 1, 2, 3 | 4, 5   (episodes end at t=2 and t=4)
    #   G_4 = 5;  G_3 = 4 + 0.5*5 = 6.5;  G_2 = 3;  G_1 = 2 + 0.5*3 = 3.5;  G_0 = 1 + 0.5*3.5 = 2.75
    # env 1: rewards 1 | 1, 1, 1, 1   (episodes end at t=0 and t=4)
    #   G_4 = 1;  G_3 = 1.5;  G_2 = 1.75;  G_1 = 1.875;  G_0 = 1
    rewards = t64(col((1, 2, 3, 4, 5), (1, 1, 1, 1, 1)))
    dones = tbool(col((F, F, T_, F, T_), (T_, F, F, F, T_)))
    G = discounted_reward_to_go(rewards, dones, 0.5)
    expected = t64(col((2.75, 3.5, 3.0, 6.5, 5.0), (1.0, 1.875, 1.75, 1.5, 1.0)))
    torch.testing.assert_close(G, expected)

    # PITFALL 13: the whole episode's return at every step of env 0's first episode
    # (discounted 2.75, or undiscounted 1 + 2 + 3 = 6) is not the reward-to-go
    for whole in (2.75, 6.0):
        assert not torch.allclose(G[:3, 0], torch.full((3,), whole, dtype=torch.float64))
    # discounting from the episode's start (sum_{k>=t} gamma^k r_k): G_1 would be 0.5*2 + 0.25*3
    assert G[1, 0].item() != pytest.approx(1.75)
    # ignoring the boundary: G_2 would be 3 + 0.5*6.5 = 6.25
    torch.testing.assert_close(
        discounted_reward_to_go(rewards, torch.zeros_like(dones), 0.5)[2, 0],
        torch.tensor(6.25, dtype=torch.float64),
    )
    assert G[2, 0].item() == 3.0


def test_reward_to_go_rejects_bad_input() -> None:
    r, d = torch.zeros(3, 2), torch.zeros(3, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match="gamma must be in"):
        discounted_reward_to_go(r, d, -0.5)
    with pytest.raises(ValueError, match="dones has shape"):
        discounted_reward_to_go(r, d[:2], 0.9)
    with pytest.raises(TypeError, match="dones must be a bool tensor"):
        discounted_reward_to_go(r, d.float(), 0.9)
    with pytest.raises(TypeError, match="rewards must be a floating-point tensor"):
        discounted_reward_to_go(r.long(), d, 0.9)


# ---------------------------------------------------------------------------
# RolloutBuffer
#
# Step (t, n) observes obs = [id, -id] with id = 100 t + n, so every field of a minibatch
# row can be traced back to its step. NEXT_STEP autoreset pattern with T=5, N=3:
# env 0 terminates at t=1, so t=2 is its reset step (invalid); env 2 is truncated at
# t=3, so t=4 is its reset step (invalid). 13 valid steps.

T, N = 5, 3
BUF_TERM = col((F, T_, F, F, F), (F, F, F, F, F), (F, F, F, F, F))
BUF_TRUNC = col((F, F, F, F, F), (F, F, F, F, F), (F, F, F, T_, F))
BUF_VALID = col((T_, T_, F, T_, T_), (T_, T_, T_, T_, T_), (T_, T_, T_, T_, F))
VALID_IDS = sorted(100 * t + n for t in range(T) for n in range(N) if BUF_VALID[t][n])


def step_fields(t: int, n: int) -> dict[str, float]:
    i = 100 * t + n
    return {
        "id": float(i),
        "log_prob": -i / 1000,
        "value": (i % 7) / 10,
        "reward": 0.0 if not BUF_VALID[t][n] else 1.0 + (i % 3),
        "next_value": (i % 5) / 10,
    }


def make_buffer(
    continuous: bool = False, device: str = "cpu", values_require_grad: bool = False
) -> RolloutBuffer:
    buf = RolloutBuffer(
        T,
        N,
        obs_shape=(2,),
        action_shape=(2,) if continuous else (),
        action_dtype=torch.float32 if continuous else torch.long,
        device=device,
    )
    for t in range(T):
        f = [step_fields(t, n) for n in range(N)]
        ids = torch.tensor([x["id"] for x in f])
        obs = torch.stack([ids, -ids], 1)
        if continuous:
            actions = torch.stack([ids / 1000, -ids / 1000], 1)
        else:
            actions = ids.long() % 2
        values = torch.tensor([x["value"] for x in f], requires_grad=values_require_grad)
        buf.add(
            obs=obs.to(device),
            actions=actions.to(device),
            log_probs=torch.tensor([x["log_prob"] for x in f], device=device),
            values=values.to(device),
            rewards=torch.tensor([x["reward"] for x in f], device=device),
            next_obs=(obs + 0.5).to(device),
            terminated=torch.tensor(BUF_TERM[t], device=device),
            truncated=torch.tensor(BUF_TRUNC[t], device=device),
            valid=torch.tensor(BUF_VALID[t], device=device),
        )
    return buf


def next_values(device: str = "cpu") -> torch.Tensor:
    return torch.tensor(
        [[step_fields(t, n)["next_value"] for n in range(N)] for t in range(T)], device=device
    )


def ready_buffer(continuous: bool = False, device: str = "cpu") -> RolloutBuffer:
    buf = make_buffer(continuous, device)
    buf.compute_advantages(next_values(device), gamma=0.9, lam=0.8)
    return buf


def test_buffer_advantages_match_reference_and_zero_invalid_steps() -> None:
    buf = ready_buffer()
    assert buf.full and buf.valid_count == len(VALID_IDS) == 13
    fields = [[step_fields(t, n) for n in range(N)] for t in range(T)]
    ref = gae_reference(
        [[f["reward"] for f in row] for row in fields],
        [[f["value"] for f in row] for row in fields],
        [[f["next_value"] for f in row] for row in fields],
        BUF_TERM,
        BUF_TRUNC,
        0.9,
        0.8,
    )
    ref = [[a if BUF_VALID[t][n] else 0.0 for n, a in enumerate(row)] for t, row in enumerate(ref)]
    torch.testing.assert_close(buf.advantages, torch.tensor(ref))
    assert buf.advantages[2, 0] == 0 and buf.advantages[4, 2] == 0
    # env 0's terminated step (id 100): A = r - V = (1 + 100 % 3) - (100 % 7) / 10 = 2 - 0.2
    assert buf.advantages[1, 0].item() == pytest.approx(1.8)
    torch.testing.assert_close(buf.returns, buf.advantages + buf.values)


def collect(buf: RolloutBuffer, batch_size: int, seed: int) -> list[dict[str, torch.Tensor]]:
    return list(buf.minibatches(batch_size, torch.Generator().manual_seed(seed)))


def test_minibatches_cover_each_valid_step_once_per_pass_with_aligned_fields() -> None:
    buf = ready_buffer()
    g = torch.Generator().manual_seed(0)
    for _ in range(2):  # two epochs: each a full pass, in a new order
        batches = list(buf.minibatches(4, g))
        assert [len(b["obs"]) for b in batches] == [4, 4, 4, 1]
        ids = [int(i) for b in batches for i in b["obs"][:, 0].tolist()]
        assert sorted(ids) == VALID_IDS  # every valid step once, no invalid step
        for b in batches:
            assert set(b) == {"obs", "actions", "log_probs", "values", "advantages", "returns"}
            for row, i in enumerate(b["obs"][:, 0].long().tolist()):
                t, n = divmod(i, 100)
                assert b["obs"][row, 1] == -i
                assert b["actions"][row] == i % 2
                assert b["log_probs"][row].item() == pytest.approx(-i / 1000)
                assert b["values"][row].item() == pytest.approx((i % 7) / 10)
                assert b["advantages"][row] == buf.advantages[t, n]
                assert b["returns"][row] == buf.returns[t, n]


def test_minibatches_discrete_shapes_and_dtypes() -> None:
    (b, *_) = collect(ready_buffer(), 5, seed=0)
    assert b["obs"].shape == (5, 2) and b["obs"].dtype == torch.float32
    assert b["actions"].shape == (5,) and b["actions"].dtype == torch.long
    for key in ("log_probs", "values", "advantages", "returns"):
        assert b[key].shape == (5,) and b[key].dtype == torch.float32


def test_minibatches_continuous_shapes_and_dtypes() -> None:
    buf = ready_buffer(continuous=True)
    assert buf.actions.shape == (T, N, 2)
    (b, *_) = collect(buf, 5, seed=0)
    assert b["actions"].shape == (5, 2) and b["actions"].dtype == torch.float32
    torch.testing.assert_close(b["actions"][:, 0], b["obs"][:, 0] / 1000)


def test_minibatches_deterministic_given_the_seed() -> None:
    buf = ready_buffer()
    order = [b["obs"][:, 0].tolist() for b in collect(buf, 4, seed=7)]
    assert order == [b["obs"][:, 0].tolist() for b in collect(buf, 4, seed=7)]
    assert order != [b["obs"][:, 0].tolist() for b in collect(buf, 4, seed=8)]


def test_batch_size_larger_than_the_data_gives_one_batch() -> None:
    batches = collect(ready_buffer(), 1000, seed=0)
    assert len(batches) == 1 and len(batches[0]["obs"]) == 13


def test_stored_values_are_detached() -> None:
    buf = make_buffer(values_require_grad=True)
    assert not buf.values.requires_grad
    buf.compute_advantages(next_values().requires_grad_(), 0.9, 0.8)
    assert not buf.advantages.requires_grad and not buf.returns.requires_grad


def test_adding_beyond_capacity_raises_and_reset_starts_over() -> None:
    buf = make_buffer()
    step = {
        "obs": torch.zeros(N, 2),
        "actions": torch.zeros(N, dtype=torch.long),
        "log_probs": torch.zeros(N),
        "values": torch.zeros(N),
        "rewards": torch.zeros(N),
        "next_obs": torch.zeros(N, 2),
        "terminated": torch.zeros(N, dtype=torch.bool),
        "truncated": torch.zeros(N, dtype=torch.bool),
        "valid": torch.ones(N, dtype=torch.bool),
    }
    with pytest.raises(RuntimeError, match="buffer is full"):
        buf.add(**step)
    buf.reset()
    assert not buf.full and buf.valid_count == 0
    buf.add(**step)
    assert buf.valid_count == N
    with pytest.raises(RuntimeError, match="fill it before computing advantages"):
        buf.compute_advantages(next_values(), 0.9, 0.8)
    with pytest.raises(RuntimeError, match="call compute_advantages"):
        next(buf.minibatches(4, torch.Generator()))


@pytest.mark.parametrize(
    ("name", "bad", "error", "message"),
    [
        ("log_probs", torch.zeros(N + 1), ValueError, r"^log_probs must have shape \(3,\)"),
        ("obs", torch.zeros(N, 3), ValueError, r"^obs must have shape \(3, 2\)"),
        ("next_obs", torch.zeros(N), ValueError, r"^next_obs must have shape \(3, 2\)"),
        ("actions", torch.zeros(N, 1, dtype=torch.long), ValueError, r"^actions must have shape"),
        ("valid", torch.ones(N), TypeError, "valid must be a bool tensor"),
        ("actions", torch.zeros(N), TypeError, "discrete actions are integers"),
    ],
)
def test_add_rejects_bad_input_naming_the_argument(
    name: str, bad: torch.Tensor, error: type, message: str
) -> None:
    buf = RolloutBuffer(T, N, obs_shape=(2,))
    step = {
        "obs": torch.zeros(N, 2),
        "actions": torch.zeros(N, dtype=torch.long),
        "log_probs": torch.zeros(N),
        "values": torch.zeros(N),
        "rewards": torch.zeros(N),
        "next_obs": torch.zeros(N, 2),
        "terminated": torch.zeros(N, dtype=torch.bool),
        "truncated": torch.zeros(N, dtype=torch.bool),
        "valid": torch.ones(N, dtype=torch.bool),
    }
    step[name] = bad
    with pytest.raises(error, match=message):
        buf.add(**step)
    assert buf.pos == 0  # nothing half-stored


def test_buffer_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_steps must be a positive integer"):
        RolloutBuffer(0, 2, obs_shape=(4,))
    buf = make_buffer()
    with pytest.raises(ValueError, match=r"next_values must have shape \(5, 3\)"):
        buf.compute_advantages(torch.zeros(T, N + 1), 0.9, 0.8)
    buf.compute_advantages(next_values(), 0.9, 0.8)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        next(buf.minibatches(0, torch.Generator()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_buffer_stays_on_the_gpu() -> None:
    buf = ready_buffer(device="cuda")
    assert buf.advantages.is_cuda and buf.returns.is_cuda
    cpu = ready_buffer()
    torch.testing.assert_close(buf.advantages.cpu(), cpu.advantages)
    for gen in (torch.Generator(device="cuda").manual_seed(0), torch.Generator().manual_seed(0)):
        batches = list(buf.minibatches(4, gen))
        assert all(x.is_cuda for b in batches for x in b.values())
        ids = sorted(int(i) for b in batches for i in b["obs"][:, 0].tolist())
        assert ids == VALID_IDS
