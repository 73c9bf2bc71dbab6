"""Each exercise checker accepts the notebooks' reference solution, rejects the student
edition's stub with its hint, and rejects the classic wrong implementations of
PITFALLS.md (the chapters' "common mistakes" boxes) with a message that names the mistake.

The wrong implementations below are small, independent re-implementations with one
mistake each; the comment on each names the classic mistake it makes (PITFALLS.md
numbering, where one applies)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
import torch

from rlcourse import checks

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CHECKERS = sorted(name for name in dir(checks) if name.startswith("check_"))
CHECK_CALL = re.compile(r"checks\.(check_\w+)\((\w+)\)")


# ------------------------------------------------------------ reference solutions
def _reference_solutions() -> list[tuple[str, str, Callable[..., Any]]]:
    """``(notebook, checker, function)`` for every exercise, defined by its notebook's code.

    Each exercise cell runs up to its ``# END SOLUTION`` line (its ``def``), in notebook
    order, so that a solution may call an earlier one (chapter 5's loss calls its targets).
    """
    found = []
    for path in NOTEBOOKS:
        namespace: dict[str, Any] = {"np": np, "torch": torch}
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code" or "# END SOLUTION" not in cell.source:
                continue
            head, tail = cell.source.rsplit("# END SOLUTION", 1)
            exec(compile(head, f"{path.name}", "exec"), namespace)
            for checker, function in CHECK_CALL.findall(tail):
                found.append((path.stem, checker, namespace[function]))
    return found


REFERENCES = _reference_solutions()


def test_every_checker_has_an_exercise() -> None:
    """Every checker is used by a notebook, and every chapter 1-7 has two exercises or more."""
    assert sorted({checker for _, checker, _ in REFERENCES}) == CHECKERS
    per_chapter = {path.stem: 0 for path in NOTEBOOKS[1:]}
    for notebook, _, _ in REFERENCES:
        per_chapter[notebook] += 1
    assert all(count >= 2 for count in per_chapter.values()), per_chapter


@pytest.mark.parametrize(
    ("checker", "solution"),
    [(checker, fn) for _, checker, fn in REFERENCES],
    ids=[f"{nb}-{checker}" for nb, checker, _ in REFERENCES],
)
def test_checker_accepts_the_reference_solution(checker: str, solution: Callable, capsys) -> None:
    getattr(checks, checker)(solution)
    assert "checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("checker", CHECKERS)
def test_checker_rejects_the_stub_with_its_hint(checker: str) -> None:
    """The student edition's stub fails as NotImplementedError carrying the stub's hint."""

    def stub(*args):
        raise NotImplementedError("Exercise: implement it -- see the equation above")

    with pytest.raises(NotImplementedError, match="not implemented yet") as info:
        getattr(checks, checker)(stub)
    assert "see the equation above" in str(info.value)


def test_checker_rejects_a_bare_stub() -> None:
    def stub(*args):
        raise NotImplementedError

    with pytest.raises(NotImplementedError, match="not implemented yet -- replace"):
        checks.check_n_step_td_episode(stub)


def test_checker_reports_a_crash_as_a_check_error() -> None:
    """A student's exception is reported with its type, not as a bare traceback."""

    def crashes(V, states, rewards, n, alpha, gamma):
        return V[states[n + len(rewards)]]

    with pytest.raises(checks.CheckError, match="n_step_td_episode raised IndexError"):
        checks.check_n_step_td_episode(crashes)


# ------------------------------------------------- wrong implementations, by chapter
# chapter 1: the expected return over a horizon, and q_pi by one linear solve
def _policy_matrices(P, R, policy):
    return torch.einsum("sa,sat->st", policy, P), (policy * R).sum(1)


def expected_return(P, R, gamma, policy, start, horizon, *, mistake=""):
    P_pi, r_pi = _policy_matrices(P, R, policy)
    if mistake == "uniform":
        P_pi, r_pi = P.mean(1), R.mean(1)
    if mistake == "state-reward":
        r_pi = R.mean(1)  # one reward per state, whatever the action
    d, G = start.clone(), 0.0
    steps = horizon + 1 if mistake == "one-too-many" else horizon
    for t in range(steps):
        if mistake == "on-arrival":
            d = d @ P_pi
        power = t + 1 if mistake == "first-discounted" else t
        G += (1.0 if mistake == "undiscounted" else gamma**power) * float(d @ r_pi)
        if mistake != "on-arrival":
            d = P_pi @ d if mistake == "transposed" else d @ P_pi
    return G


def expected_return_variant(mistake: str) -> Callable:
    return lambda *args: expected_return(*args, mistake=mistake)


def exact_q_pi(P, R, gamma, policy, *, mistake=""):
    S, A = R.shape
    if mistake == "current-state-policy":
        M = torch.einsum("sat,sb->satb", P, policy)  # pi(a'|s) instead of pi(a'|s')
    elif mistake == "uniform":
        M = torch.einsum("sat,tb->satb", P, torch.full_like(policy, 1 / A))
    else:
        M = torch.einsum("sat,tb->satb", P, policy)
    M = M.reshape(S * A, S * A)
    if mistake == "transposed":
        M = M.T
    r = R.mean(1, keepdim=True).expand(S, A) if mistake == "state-reward" else R
    eye = torch.eye(S * A, dtype=P.dtype)
    return torch.linalg.solve(eye - gamma * M, r.reshape(-1)).reshape(S, A)


def exact_q_pi_variant(mistake: str) -> Callable:
    return lambda *args: exact_q_pi(*args, mistake=mistake)


def q_pi_with_max(P, R, gamma, policy):
    Q = torch.zeros_like(R)
    for _ in range(2000):  # iterates the optimality equation: q_*, whatever the policy
        Q = R + gamma * P @ Q.amax(1)
    return Q


# chapter 2: value iteration, and policy iteration on action values
def value_iteration(P, R, gamma, theta, *, mistake=""):
    V = torch.zeros(R.shape[0], dtype=P.dtype)
    while True:
        if mistake == "action-blind":
            q = R + gamma * (P.mean(1) @ V)[:, None]
        elif mistake == "state-reward":
            q = R.mean(1, keepdim=True) + gamma * P @ V
        elif mistake == "max-next-state":
            q = R + gamma * V.max()
        else:
            q = R + gamma * P @ V
        V_new = q.mean(1) if mistake == "average" else q.amax(1)
        delta = (V_new - V).abs().max()
        V = V_new
        if mistake == "one-sweep" or delta < theta:  # e.g. the test written the wrong way round
            break
    best = R if mistake == "greedy-on-reward" else R + gamma * P @ V
    return V, torch.nn.functional.one_hot(best.argmax(1), R.shape[1]).to(P.dtype)


def value_iteration_variant(mistake: str) -> Callable:
    return lambda *args: value_iteration(*args, mistake=mistake)


def q_policy_iteration(P, R, gamma, policy, *, mistake=""):
    S, A = R.shape
    policy = policy.clone()
    Q = torch.zeros_like(R)
    eye = torch.eye(S * A, dtype=P.dtype)
    while True:
        if mistake == "partial-evaluation":
            for _ in range(3):  # a few sweeps of the q backup, not to convergence
                Q = R + gamma * P @ (policy * Q).sum(1)
        else:
            M = torch.einsum("sat,tb->satb", P, policy).reshape(S * A, S * A)
            Q = torch.linalg.solve(eye - gamma * M, R.reshape(-1)).reshape(S, A)
        best = R if mistake == "greedy-on-reward" else Q
        if mistake == "ties-not-kept":
            new = torch.nn.functional.one_hot(best.argmax(1), A).to(P.dtype)
        else:
            keep = (best * policy).sum(1) >= best.max(1).values - 1e-9
            greedy = torch.nn.functional.one_hot(best.argmax(1), A).to(P.dtype)
            new = torch.where(keep[:, None], policy, greedy)
        if torch.equal(new, policy):
            return Q, policy
        policy = new


def q_policy_iteration_variant(mistake: str) -> Callable:
    return lambda *args: q_policy_iteration(*args, mistake=mistake)


# chapter 3: first-visit Monte Carlo and n-step TD
def _returns(rewards, gamma):
    G, out = 0.0, np.zeros(len(rewards))
    for t in reversed(range(len(rewards))):
        G = rewards[t] + gamma * G
        out[t] = G
    return out


def first_visit_mc(V, counts, states, rewards, gamma, *, returns=None, every=False, step=None):
    returns = _returns(rewards, gamma) if returns is None else returns
    seen = set()
    for t, s in enumerate(states[: len(rewards)]):  # states[T] is where it ended
        if s in seen and not every:
            continue
        seen.add(s)
        counts[s] += 1
        V[s] += (1.0 / counts[s] if step is None else step(counts[s])) * (returns[t] - V[s])
    return V


def mc_every_visit(V, counts, states, rewards, gamma):
    return first_visit_mc(V, counts, states, rewards, gamma, every=True)


def mc_last_visit_return(V, counts, states, rewards, gamma):
    returns = _returns(rewards, gamma)
    by_state = {s: returns[t] for t, s in enumerate(states[:-1])}  # later visits overwrite
    for s, G in by_state.items():
        counts[s] += 1
        V[s] += (G - V[s]) / counts[s]
    return V


def mc_whole_episode_return(V, counts, states, rewards, gamma):
    G0 = _returns(rewards, gamma)[0]
    return first_visit_mc(V, counts, states, rewards, gamma, returns=np.full(len(rewards), G0))


def mc_undiscounted(V, counts, states, rewards, gamma):
    return first_visit_mc(V, counts, states, rewards, 1.0)


def mc_return_without_next_reward(V, counts, states, rewards, gamma):
    G, returns = 0.0, np.zeros(len(rewards))
    for t in reversed(range(len(rewards))):
        returns[t] = G  # stored before adding rewards[t], as if rewards[t] held R_t
        G = rewards[t] + gamma * G
    return first_visit_mc(V, counts, states, rewards, gamma, returns=returns)


def mc_counts_not_kept(V, counts, states, rewards, gamma):
    return first_visit_mc(V, counts.copy(), states, rewards, gamma)  # a copy: counts are lost


def mc_updates_final_state(V, counts, states, rewards, gamma):
    returns = np.append(_returns(rewards, gamma), 0.0)  # G_T = 0 for the final state S_T
    seen = set()
    for s, G in zip(states, returns, strict=True):
        if s not in seen:
            seen.add(s)
            counts[s] += 1
            V[s] += (G - V[s]) / counts[s]
    return V


def mc_step_one_over_n_plus_one(V, counts, states, rewards, gamma):
    return first_visit_mc(V, counts, states, rewards, gamma, step=lambda N: 1.0 / (N + 1))


def n_step_td(V, states, rewards, n, alpha, gamma, *, mistake=""):
    T, before = len(rewards), V.copy()
    discount = alpha if mistake == "alpha" else gamma
    for tau in range(T - n + 1 if mistake == "tail" else T):
        end = min(tau + n, T)
        if mistake == "skips":  # R_i read as rewards[i]
            G = sum(discount ** (i - tau - 1) * rewards[i] for i in range(tau + 1, min(end + 1, T)))
        else:
            G = sum(
                discount ** (i - tau + (mistake == "first")) * rewards[i] for i in range(tau, end)
            )
        values = before if mistake == "offline" else V
        if mistake == "terminal":  # bootstraps wherever the n steps end, S_T included
            G += discount ** (end - tau) * values[states[end]]
        elif tau + n < T:
            G += discount ** (n - 1 if mistake == "n-1" else n) * values[states[tau + n]]
        V[states[tau]] += alpha * (G - V[states[tau]])
    return V


def n_step_td_variant(mistake: str) -> Callable:
    return lambda *args: n_step_td(*args, mistake=mistake)


# chapter 4: epsilon-greedy, Expected SARSA, Double Q-learning
def _greedy(q, rng):
    return int(rng.choice(np.flatnonzero(q == q.max())))  # ties broken at random, as they should


def greedy_only(q, epsilon, rng):
    return _greedy(q, rng)


def explores_with_one_minus_epsilon(q, epsilon, rng):
    return int(rng.integers(len(q))) if rng.random() > epsilon else _greedy(q, rng)


def fixed_epsilon(q, epsilon, rng):
    return int(rng.integers(len(q))) if rng.random() < 0.1 else _greedy(q, rng)


def random_action_excludes_greedy(q, epsilon, rng):
    greedy = _greedy(q, rng)
    if rng.random() < epsilon:
        return int(rng.choice([a for a in range(len(q)) if a != greedy]))
    return greedy


def epsilon_greedy_unseeded(q, epsilon, rng):
    own = np.random.default_rng()  # a fresh, unseeded generator instead of the rng given
    return int(own.integers(len(q))) if own.random() < epsilon else _greedy(q, own)


def epsilon_greedy_first_of_ties(q, epsilon, rng):
    # right in every way but one: np.argmax breaks ties by taking the first best action
    return int(rng.integers(len(q))) if rng.random() < epsilon else int(np.argmax(q))


def expected_sarsa(Q, s, a, r, s_next, terminated, alpha, gamma, epsilon, *, mistake=""):
    q = Q[s_next]
    best = (q == q.max()).astype(float)
    pi = epsilon / len(q) + (1 - epsilon) * best / best.sum()
    if mistake == "max":  # Q-learning's target
        pi = np.eye(len(q))[q.argmax()]
    elif mistake == "uniform":  # epsilon ignored
        pi = np.full(len(q), 1 / len(q))
    elif mistake == "each-tie":  # 1 - epsilon to every tied action: pi sums to more than 1
        pi = epsilon / len(q) + (1 - epsilon) * best
    bootstrap = 0.0 if terminated and mistake != "no-masking" else pi @ q
    discount = alpha if mistake == "alpha" else gamma
    if mistake == "greedy-action":
        a = int(Q[s].argmax())
    Q[s, a] += alpha * (r + discount * bootstrap - Q[s, a])
    return Q


def expected_sarsa_variant(mistake: str) -> Callable:
    return lambda *args: expected_sarsa(*args, mistake=mistake)


def double_q(Q1, Q2, s, a, r, s_next, terminated, alpha, gamma, update_first, *, mistake=""):
    first = not update_first if mistake == "other-table" else update_first
    Qa, Qb = (Q1, Q2) if first else (Q2, Q1)  # update Qa, evaluate with Qb
    if mistake == "same-table":  # Q-learning on one table
        value = Qa[s_next].max()
    elif mistake == "other-max":
        value = Qb[s_next].max()
    elif mistake == "swapped":  # select with Qb, evaluate with Qa
        value = Qa[s_next, Qb[s_next].argmax()]
    else:
        value = Qb[s_next, Qa[s_next].argmax()]
    bootstrap = 0.0 if terminated and mistake != "no-masking" else value
    Qa[s, a] += alpha * (r + gamma * bootstrap - Qa[s, a])
    return Q1, Q2


def double_q_variant(mistake: str) -> Callable:
    return lambda *args: double_q(*args, mistake=mistake)


# chapter 5: DQN targets and loss
def targets_no_terminal_masking(rewards, next_q_target, terminated, gamma):
    return rewards + gamma * next_q_target.max(1).values


def targets_inverted_mask(rewards, next_q_target, terminated, gamma):
    return rewards + gamma * terminated * next_q_target.max(1).values


def targets_mean_over_actions(rewards, next_q_target, terminated, gamma):
    return rewards + gamma * (1 - terminated) * next_q_target.mean(1)


def dqn_loss(q_net, target_net, b, gamma, *, detach=True, online=False, greedy=False):
    q_all = q_net(b["obs"])
    q = q_all.max(1).values if greedy else q_all.gather(1, b["actions"][:, None]).squeeze(1)
    next_q = (q_net if online else target_net)(b["next_obs"]).max(1).values
    y = b["rewards"] + gamma * (1 - b["terminated"]) * (next_q.detach() if detach else next_q)
    return ((q - y) ** 2).mean()


def dqn_loss_target_not_detached(q_net, target_net, b, gamma):
    return dqn_loss(q_net, target_net, b, gamma, detach=False)


def dqn_loss_target_from_online_net(q_net, target_net, b, gamma):
    return dqn_loss(q_net, target_net, b, gamma, online=True)


def dqn_loss_at_greedy_action(q_net, target_net, b, gamma):
    return dqn_loss(q_net, target_net, b, gamma, greedy=True)


def dqn_loss_td_error_not_squared(q_net, target_net, b, gamma):
    q = q_net(b["obs"]).gather(1, b["actions"][:, None]).squeeze(1)
    with torch.no_grad():
        y = b["rewards"] + gamma * (1 - b["terminated"]) * target_net(b["next_obs"]).max(1).values
    return (q - y).mean()


def dqn_loss_no_terminal_masking(q_net, target_net, b, gamma):
    q = q_net(b["obs"]).gather(1, b["actions"][:, None]).squeeze(1)
    with torch.no_grad():
        y = b["rewards"] + gamma * target_net(b["next_obs"]).max(1).values
    return ((q - y) ** 2).mean()


# chapter 6: REINFORCE
def reinforce(logits, actions, rewards, gamma, *, G=None, log_pi=None):
    G = torch.as_tensor(_returns(rewards.numpy(), gamma), dtype=torch.float32) if G is None else G
    log_pi = torch.log_softmax(logits, 1) if log_pi is None else log_pi
    return -(log_pi[torch.arange(len(actions)), actions] * G).mean()


def reinforce_whole_episode_return(logits, actions, rewards, gamma):
    G0 = float(_returns(rewards.numpy(), gamma)[0])
    return reinforce(logits, actions, rewards, gamma, G=torch.full_like(rewards, G0))


def reinforce_undiscounted(logits, actions, rewards, gamma):
    return reinforce(logits, actions, rewards, gamma, G=rewards.flip(0).cumsum(0).flip(0))


def reinforce_log_pi_squared(logits, actions, rewards, gamma):
    G = torch.as_tensor(_returns(rewards.numpy(), gamma), dtype=torch.float32)
    taken = torch.log_softmax(logits, 1)[torch.arange(len(actions)), actions]
    return -(taken * taken * G).mean()


def reinforce_greedy_actions(logits, actions, rewards, gamma):
    return reinforce(logits, logits.argmax(1), rewards, gamma)


def reinforce_probabilities(logits, actions, rewards, gamma):
    return reinforce(logits, actions, rewards, gamma, log_pi=torch.softmax(logits, 1))


def reinforce_no_minus_sign(logits, actions, rewards, gamma):
    return -reinforce(logits, actions, rewards, gamma)


# two right answers: the gradient of the discounted objective, weighted by gamma^t ...
def reinforce_gamma_t(logits, actions, rewards, gamma):
    G = torch.as_tensor(_returns(rewards.numpy(), gamma), dtype=torch.float32)
    return reinforce(logits, actions, rewards, gamma, G=gamma ** torch.arange(len(G)) * G)


# ... which is every reward discounted from the episode's start: sum_{k>=t} gamma^k R_{k+1}
def reinforce_discounted_from_start(logits, actions, rewards, gamma):
    discounted = rewards * gamma ** torch.arange(len(rewards), dtype=rewards.dtype)
    return reinforce(logits, actions, rewards, gamma, G=discounted.flip(0).cumsum(0).flip(0))


# chapter 7: GAE and the PPO policy loss
def gae(rewards, values, next_values, terminated, truncated, gamma, lam, *, variant=""):
    advantages, last = torch.zeros_like(rewards), torch.zeros_like(rewards[0])
    T = rewards.shape[0]
    for t in reversed(range(T)):
        v_next = values[t + 1] if variant == "next-row" and t + 1 < T else next_values[t]
        bootstrap = ~terminated[t]
        carry = ~(terminated[t] | truncated[t])
        if variant == "no-boundaries":
            bootstrap = carry = torch.ones_like(bootstrap)
        elif variant == "no-masking":
            bootstrap = torch.ones_like(bootstrap)
        elif variant == "no-truncation-bootstrap":
            bootstrap = carry
        elif variant == "truncation-overrides-termination":
            bootstrap = ~terminated[t] | truncated[t]
        elif variant == "trace-across-truncation":
            carry = ~terminated[t]
        delta = rewards[t] + gamma * bootstrap * v_next - values[t]
        last = delta + gamma * lam * carry * last
        advantages[t] = last
    return advantages


def gae_variant(variant: str) -> Callable[..., torch.Tensor]:
    return lambda *args: gae(*args, variant=variant)


def ppo_loss(new, old, adv, eps, *, clip=True, combine=torch.min, behaviour=True):
    ratio = torch.exp(new - (old if behaviour else new.detach()))
    clipped = ratio.clamp(1 - eps, 1 + eps) if clip else ratio
    return -combine(ratio * adv, clipped * adv).mean()


def ppo_log_ratio(new, old, adv, eps):
    log_ratio = new - old
    return -torch.min(log_ratio * adv, log_ratio.clamp(1 - eps, 1 + eps) * adv).mean()


def _bad(checker: str, fn: Callable, words: str, mistake_id: str, pitfall: int | None = None):
    """One wrong implementation: ``checker`` must reject it with ``words`` in its message.

    ``pitfall``: the number of the classic mistake in PITFALLS.md it makes, if it is one.
    """
    return pytest.param(checker, fn, words, pitfall, id=mistake_id)


# chapter 8: CartPole for N copies, and gradient clipping for stacked agents
def cartpole_step_variant(mistake: str) -> Callable:
    def step(state, actions):
        gravity, m_cart, m_pole, length, tau = 9.8, 1.0, 0.1, 0.5, 0.02
        total = m_cart + m_pole
        x, x_dot, theta, theta_dot = state
        sign = -1.0 if mistake == "sign" else 1.0
        force = sign * (2 * actions - 1).to(state.dtype) * 10.0
        cos, sin = torch.cos(theta), torch.sin(theta)
        temp = (force + m_pole * length * theta_dot**2 * sin) / total
        theta_acc = (gravity * sin - cos * temp) / (length * (4 / 3 - m_pole * cos**2 / total))
        x_acc = temp - m_pole * length * theta_acc * cos / total
        if mistake == "semi-implicit":
            x_dot, theta_dot = x_dot + tau * x_acc, theta_dot + tau * theta_acc
            new = torch.stack((x + tau * x_dot, x_dot, theta + tau * theta_dot, theta_dot))
        else:
            new = torch.stack(
                (
                    x + tau * x_dot,
                    x_dot + tau * x_acc,
                    theta + tau * theta_dot,
                    theta_dot + tau * theta_acc,
                )
            )
        judged = state if mistake == "old-state" else new
        limit = 12.0 if mistake == "degrees" else 12 * 2 * np.pi / 360
        return new, (judged[0].abs() > 2.4) | (judged[2].abs() > limit)

    return step


def clip_variant(mistake: str) -> Callable:
    def clip(grads, max_norm):
        if mistake == "per-tensor":
            return [
                g
                * (max_norm / (g.flatten(1).norm(dim=1) + 1e-6))
                .clamp(max=1.0)
                .view(-1, *[1] * (g.dim() - 1))
                for g in grads
            ]
        if mistake == "global":
            norm = torch.sqrt(sum(g.square().sum() for g in grads))
            return [g * min(1.0, float(max_norm / (norm + 1e-6))) for g in grads]
        norms = torch.sqrt(sum(g.flatten(1).square().sum(1) for g in grads))
        scale = max_norm / (norms + 1e-6)  # "scale-up": no min with 1
        return [g * scale.view(-1, *[1] * (g.dim() - 1)) for g in grads]

    return clip


# chapter 6: A2C's bootstrapped returns
def n_step_variant(mistake: str) -> Callable:
    def returns_fn(rewards, terminated, truncated, next_values, gamma):
        T = rewards.shape[0]
        returns = torch.zeros_like(rewards)
        zero = torch.zeros_like(rewards[0])
        for t in reversed(range(T)):
            if t == T - 1:
                follow = zero if mistake == "no-end-bootstrap" else next_values[t]
            else:
                follow = returns[t + 1]
            if mistake not in ("carry", "carry-truncation") or t == T - 1:
                bootstrap = zero if mistake == "no-truncation" else next_values[t]
                follow = torch.where(truncated[t], bootstrap, follow)
            if mistake != "carry" or t == T - 1:
                after_end = next_values[t] if mistake == "no-masking" else zero
                follow = torch.where(terminated[t], after_end, follow)
            returns[t] = rewards[t] + gamma * follow
        return returns

    return returns_fn


def n_step_returns_or_truncated(rewards, terminated, truncated, next_values, gamma):
    # the mask ~terminated | truncated: a step both terminated and truncated (a pole that
    # falls at CartPole's 500th step) bootstraps from V(final observation)
    T = rewards.shape[0]
    returns = torch.zeros_like(rewards)
    for t in reversed(range(T)):
        after = next_values[t] if t == T - 1 else returns[t + 1]
        follow = torch.where(truncated[t], next_values[t], after)
        returns[t] = rewards[t] + gamma * (~terminated[t] | truncated[t]) * follow
    return returns


BUGGY = [
    _bad(
        "check_n_step_returns",
        n_step_variant("no-end-bootstrap"),
        "did not bootstrap at the end of the rollout",
        "a2c-returns-without-bootstrap-at-rollout-end",
    ),
    _bad(
        "check_n_step_returns",
        n_step_variant("no-masking"),
        "no terminal masking",
        "a2c-returns-bootstrap-after-termination",
        9,
    ),
    _bad(
        "check_n_step_returns",
        n_step_variant("carry"),
        "carried the return across an episode end",
        "a2c-returns-across-episode-end",
        15,
    ),
    _bad(
        "check_n_step_returns",
        n_step_variant("carry-truncation"),
        "carried the return across a truncation",
        "a2c-returns-across-truncation",
        15,
    ),
    _bad(
        "check_n_step_returns",
        n_step_variant("no-truncation"),
        "did not bootstrap at a truncation",
        "a2c-returns-truncation-as-termination",
        9,
    ),
    _bad(
        "check_n_step_returns",
        n_step_returns_or_truncated,
        "both terminated and truncated (a mask like ~terminated | truncated)",
        "a2c-returns-bootstrap-when-terminated-and-truncated",
        9,
    ),
    _bad(
        "check_cartpole_step",
        cartpole_step_variant("sign"),
        "pushed the wrong way",
        "cartpole-force-sign-flipped",
    ),
    _bad(
        "check_cartpole_step",
        cartpole_step_variant("semi-implicit"),
        "semi-implicit Euler",
        "cartpole-semi-implicit-euler",
    ),
    _bad(
        "check_cartpole_step",
        cartpole_step_variant("old-state"),
        "termination on the state before the step",
        "cartpole-terminates-on-old-state",
    ),
    _bad(
        "check_cartpole_step",
        cartpole_step_variant("degrees"),
        "12 (degrees)",
        "cartpole-threshold-in-degrees",
    ),
    _bad(
        "check_clip_per_agent",
        clip_variant("global"),
        "norm over all agents together",
        "clip-with-one-norm-for-all-agents",
    ),
    _bad(
        "check_clip_per_agent",
        clip_variant("per-tensor"),
        "each parameter tensor separately",
        "clip-each-tensor-separately",
    ),
    _bad(
        "check_clip_per_agent",
        clip_variant("scale-up"),
        "clipping only ever scales down",
        "clip-scales-small-gradients-up",
    ),
    # chapter 1
    _bad(
        "check_expected_return",
        expected_return_variant("transposed"),
        "wrong side (P_pi @ d)",
        "expected-return-distribution-times-P-transposed",
    ),
    _bad(
        "check_expected_return",
        expected_return_variant("first-discounted"),
        "discounted the first reward",
        "expected-return-discounts-the-first-reward",
    ),
    _bad(
        "check_expected_return",
        expected_return_variant("one-too-many"),
        "one reward too many",
        "expected-return-horizon-off-by-one",
    ),
    _bad(
        "check_expected_return",
        expected_return_variant("undiscounted"),
        "forgot the discount gamma",
        "expected-return-without-gamma",
    ),
    _bad(
        "check_expected_return",
        expected_return_variant("on-arrival"),
        "paid the reward after moving",
        "expected-return-reward-of-the-next-state",
    ),
    _bad(
        "check_expected_return",
        expected_return_variant("uniform"),
        "weighted the actions uniformly",
        "expected-return-ignores-policy",
    ),
    _bad(
        "check_expected_return",
        expected_return_variant("state-reward"),
        "indexed the reward by the state alone",
        "expected-return-reward-by-state",
        16,
    ),
    _bad(
        "check_exact_q_pi",
        q_pi_with_max,
        "took the max over the next actions",
        "q-pi-solves-the-optimality-equation",
    ),
    _bad(
        "check_exact_q_pi",
        exact_q_pi_variant("uniform"),
        "weighted the next actions uniformly",
        "q-pi-ignores-policy",
    ),
    _bad(
        "check_exact_q_pi",
        exact_q_pi_variant("current-state-policy"),
        "pi(a'|s) of the current state",
        "q-pi-policy-at-the-current-state",
    ),
    _bad(
        "check_exact_q_pi",
        exact_q_pi_variant("transposed"),
        "transpose of the state-action transition matrix",
        "q-pi-transposed-matrix",
    ),
    _bad(
        "check_exact_q_pi",
        exact_q_pi_variant("state-reward"),
        "indexed the reward by the state alone",
        "q-pi-reward-by-state",
        16,
    ),
    # chapter 2
    _bad(
        "check_value_iteration",
        value_iteration_variant("average"),
        "averaged over the actions",
        "value-iteration-averages-instead-of-max",
    ),
    _bad(
        "check_value_iteration",
        value_iteration_variant("one-sweep"),
        "stopped after 1 sweep",
        "value-iteration-stops-after-one-sweep",
    ),
    _bad(
        "check_value_iteration",
        value_iteration_variant("max-next-state"),
        "max over next states",
        "value-iteration-max-over-next-states",
    ),
    _bad(
        "check_value_iteration",
        value_iteration_variant("action-blind"),
        "ignored the action in the transitions",
        "value-iteration-transitions-ignore-action",
        16,
    ),
    _bad(
        "check_value_iteration",
        value_iteration_variant("state-reward"),
        "indexed the reward by the state alone",
        "value-iteration-reward-by-state",
        16,
    ),
    _bad(
        "check_value_iteration",
        value_iteration_variant("greedy-on-reward"),
        "maximised the immediate reward",
        "value-iteration-policy-greedy-on-reward",
    ),
    _bad(
        "check_q_policy_iteration",
        q_policy_iteration_variant("ties-not-kept"),
        "Keep the current action wherever it ties",
        "policy-iteration-without-tie-rule-can-cycle",
    ),
    _bad(
        "check_q_policy_iteration",
        q_policy_iteration_variant("partial-evaluation"),
        "evaluate each policy to convergence",
        "policy-iteration-evaluation-not-converged",
    ),
    _bad(
        "check_q_policy_iteration",
        q_policy_iteration_variant("greedy-on-reward"),
        "maximised the immediate reward",
        "policy-iteration-improves-on-immediate-reward",
    ),
    # chapter 3
    _bad("check_first_visit_mc", mc_every_visit, "at every visit", "mc-every-visit-as-first-visit"),
    _bad(
        "check_first_visit_mc",
        mc_last_visit_return,
        "return of the last visit",
        "mc-first-visit-keeps-last-return",
    ),
    _bad(
        "check_first_visit_mc",
        mc_whole_episode_return,
        "whole episode's return",
        "mc-whole-episode-return-for-every-state",
        13,
    ),
    _bad(
        "check_first_visit_mc", mc_undiscounted, "did not discount", "mc-returns-undiscounted", 13
    ),
    _bad(
        "check_first_visit_mc",
        mc_return_without_next_reward,
        "rewards[t] holds R_{t+1}",
        "mc-return-misses-the-next-reward",
    ),
    _bad("check_first_visit_mc", mc_counts_not_kept, "in place", "mc-counts-not-kept"),
    _bad(
        "check_first_visit_mc",
        mc_updates_final_state,
        "updated S_T too",
        "mc-updates-the-final-state",
    ),
    _bad(
        "check_first_visit_mc",
        mc_step_one_over_n_plus_one,
        "1 / (N + 1)",
        "mc-sample-average-off-by-one",
    ),
    _bad(
        "check_n_step_td_episode",
        n_step_td_variant("tail"),
        "left out the last updates",
        "n-step-td-forgets-the-episode-tail",
    ),
    _bad(
        "check_n_step_td_episode",
        n_step_td_variant("terminal"),
        "V(S_T) of the terminal state",
        "n-step-td-bootstraps-from-terminal",
        9,
    ),
    _bad(
        "check_n_step_td_episode",
        n_step_td_variant("offline"),
        "values from before the episode",
        "n-step-td-targets-from-stale-values",
    ),
    _bad(
        "check_n_step_td_episode",
        n_step_td_variant("n-1"),
        "gamma^(n-1)",
        "n-step-td-bootstrap-discount-off-by-one",
    ),
    _bad(
        "check_n_step_td_episode",
        n_step_td_variant("skips"),
        "rewards[t] holds R_{t+1}",
        "n-step-td-rewards-off-by-one",
    ),
    _bad(
        "check_n_step_td_episode",
        n_step_td_variant("first"),
        "discounted the first reward",
        "n-step-td-discounts-first-reward",
    ),
    _bad(
        "check_n_step_td_episode",
        n_step_td_variant("alpha"),
        "learning rate alpha as the discount",
        "n-step-td-alpha-as-gamma",
        8,
    ),
    # chapter 4
    _bad(
        "check_epsilon_greedy",
        greedy_only,
        "always act greedily",
        "epsilon-greedy-never-explores",
        10,
    ),
    _bad(
        "check_epsilon_greedy",
        explores_with_one_minus_epsilon,
        "wrong way round",
        "epsilon-greedy-explores-with-one-minus-epsilon",
        10,
    ),
    _bad(
        "check_epsilon_greedy",
        fixed_epsilon,
        "use the epsilon argument",
        "epsilon-greedy-ignores-epsilon",
        10,
    ),
    _bad(
        "check_epsilon_greedy",
        random_action_excludes_greedy,
        "never picks the greedy one",
        "epsilon-greedy-random-excludes-greedy",
    ),
    _bad(
        "check_epsilon_greedy",
        epsilon_greedy_unseeded,
        "from the rng argument",
        "epsilon-greedy-ignores-seeded-rng",
    ),
    _bad(
        "check_epsilon_greedy",
        epsilon_greedy_first_of_ties,
        "np.argmax returns the first",
        "epsilon-greedy-first-of-tied-actions",
    ),
    _bad(
        "check_expected_sarsa_update",
        expected_sarsa_variant("max"),
        "that is Q-learning",
        "expected-sarsa-bootstraps-from-max",
        12,
    ),
    _bad(
        "check_expected_sarsa_update",
        expected_sarsa_variant("uniform"),
        "epsilon ignored",
        "expected-sarsa-uniform-average",
    ),
    _bad(
        "check_expected_sarsa_update",
        expected_sarsa_variant("each-tie"),
        "to each of the tied best actions",
        "expected-sarsa-greedy-mass-to-every-tie",
    ),
    _bad(
        "check_expected_sarsa_update",
        expected_sarsa_variant("no-masking"),
        "no terminal masking",
        "expected-sarsa-no-terminal-masking",
        9,
    ),
    _bad(
        "check_expected_sarsa_update",
        expected_sarsa_variant("alpha"),
        "learning rate alpha as the discount",
        "expected-sarsa-alpha-as-gamma",
        8,
    ),
    _bad(
        "check_expected_sarsa_update",
        expected_sarsa_variant("greedy-action"),
        "instead of the action actually taken",
        "expected-sarsa-updates-greedy-action",
        12,
    ),
    _bad(
        "check_double_q_update",
        double_q_variant("same-table"),
        "that is Q-learning",
        "double-q-max-of-updated-table",
    ),
    _bad(
        "check_double_q_update",
        double_q_variant("other-max"),
        "max of the other table",
        "double-q-max-of-other-table",
    ),
    _bad(
        "check_double_q_update",
        double_q_variant("swapped"),
        "roles swapped",
        "double-q-select-and-evaluate-swapped",
    ),
    _bad(
        "check_double_q_update",
        double_q_variant("other-table"),
        "updated the other table",
        "double-q-updates-the-wrong-table",
    ),
    _bad(
        "check_double_q_update",
        double_q_variant("no-masking"),
        "no terminal masking",
        "double-q-no-terminal-masking",
        9,
    ),
    # chapter 5
    _bad(
        "check_dqn_targets",
        targets_no_terminal_masking,
        "no terminal masking",
        "dqn-targets-no-terminal-masking",
        9,
    ),
    _bad(
        "check_dqn_targets",
        targets_inverted_mask,
        "instead of (1 - terminated)",
        "dqn-targets-inverted-terminal-mask",
        9,
    ),
    _bad(
        "check_dqn_targets",
        targets_mean_over_actions,
        "instead of taking the max",
        "dqn-targets-average-next-actions",
    ),
    _bad(
        "check_dqn_loss",
        dqn_loss_target_not_detached,
        "TD target is not detached",
        "target-not-detached",
        11,
    ),
    _bad(
        "check_dqn_loss",
        dqn_loss_target_from_online_net,
        "online network instead of the target",
        "dqn-target-from-online-network",
        11,
    ),
    _bad(
        "check_dqn_loss",
        dqn_loss_at_greedy_action,
        "greedy action instead of the action taken",
        "dqn-loss-wrong-action",
        12,
    ),
    _bad(
        "check_dqn_loss",
        dqn_loss_td_error_not_squared,
        "minimise the squared TD error",
        "dqn-update-is-theta-minus-alpha-td-error",
        7,
    ),
    _bad(
        "check_dqn_loss",
        dqn_loss_no_terminal_masking,
        "no terminal masking",
        "dqn-loss-no-terminal-masking",
        9,
    ),
    # chapter 6
    _bad(
        "check_reinforce_loss",
        reinforce_whole_episode_return,
        "whole episode's return",
        "reinforce-whole-episode-return",
        13,
    ),
    _bad(
        "check_reinforce_loss",
        reinforce_undiscounted,
        "did not discount",
        "reinforce-undiscounted-return",
        13,
    ),
    _bad(
        "check_reinforce_loss",
        reinforce_log_pi_squared,
        "log pi * log pi",
        "reinforce-log-pi-times-log-pi",
        3,
    ),
    _bad(
        "check_reinforce_loss",
        reinforce_greedy_actions,
        "not of the actions taken",
        "reinforce-log-probs-of-actions-not-taken",
        13,
    ),
    _bad(
        "check_reinforce_loss",
        reinforce_probabilities,
        "instead of the log-probabilities",
        "reinforce-probabilities-not-log-probabilities",
        3,
    ),
    _bad(
        "check_reinforce_loss",
        reinforce_no_minus_sign,
        "forgot the minus sign",
        "reinforce-ascends-the-loss",
    ),
    # chapter 7
    _bad(
        "check_gae",
        gae_variant("no-boundaries"),
        "ignored episode boundaries",
        "gae-ignores-boundaries",
        15,
    ),
    _bad(
        "check_gae",
        gae_variant("trace-across-truncation"),
        "across a truncation",
        "gae-carries-trace-across-truncation",
        15,
    ),
    _bad(
        "check_gae",
        gae_variant("next-row"),
        "values[t + 1] instead of next_values[t]",
        "gae-bootstraps-from-next-episode",
        15,
    ),
    _bad(
        "check_gae", gae_variant("no-masking"), "no terminal masking", "gae-no-terminal-masking", 9
    ),
    _bad(
        "check_gae",
        gae_variant("no-truncation-bootstrap"),
        "did not bootstrap at a truncation",
        "gae-truncation-treated-as-termination",
        9,
    ),
    _bad(
        "check_gae",
        gae_variant("truncation-overrides-termination"),
        "both terminated and truncated",
        "gae-bootstraps-when-terminated-and-truncated",
        9,
    ),
    _bad(
        "check_ppo_policy_loss",
        lambda *a: ppo_loss(*a, behaviour=False),
        "against the current policy",
        "ppo-ratio-against-current-policy",
        14,
    ),
    _bad(
        "check_ppo_policy_loss",
        lambda *a: ppo_loss(*a, clip=False),
        "forgot the clipping",
        "ppo-without-clipping",
        4,
    ),
    _bad(
        "check_ppo_policy_loss",
        lambda *a: ppo_loss(*a, combine=torch.max),
        "max instead of the min",
        "ppo-max-instead-of-min",
        4,
    ),
    _bad(
        "check_ppo_policy_loss",
        ppo_log_ratio,
        "log-ratio instead of the ratio",
        "ppo-log-ratio-as-ratio",
        4,
    ),
]


@pytest.mark.parametrize(("checker", "buggy", "words", "pitfall"), BUGGY)
def test_checker_names_the_mistake(
    checker: str, buggy: Callable, words: str, pitfall: int | None
) -> None:
    with pytest.raises(checks.CheckError) as info:
        getattr(checks, checker)(buggy)
    message = str(info.value)
    assert words in message, f"the message does not name the mistake ({words!r}):\n{message}"


def test_enough_distinct_wrong_implementations() -> None:
    """At least 15 wrong implementations, each its own function, most of them PITFALLS.md's."""
    ids = [param.id for param in BUGGY]
    assert len(set(ids)) == len(ids) >= 15
    assert len({id(param.values[1]) for param in BUGGY}) == len(BUGGY)
    pitfalls = {param.values[3] for param in BUGGY} - {None}
    assert pitfalls <= set(range(1, 23))  # PITFALLS.md has 22 items
    assert pitfalls >= {3, 4, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, sorted(pitfalls)


# chapter 6: the REINFORCE checker accepts both right forms, and says which it recognised
@pytest.mark.parametrize("fn", [reinforce_gamma_t, reinforce_discounted_from_start])
def test_reinforce_checker_accepts_the_gradient_of_the_discounted_objective(fn, capsys) -> None:
    checks.check_reinforce_loss(fn)
    out = capsys.readouterr().out
    assert "all 4 checks passed" in out
    assert "recognised the gradient of the discounted objective" in out, out


def test_reinforce_checker_names_the_practical_form(capsys) -> None:
    checks.check_reinforce_loss(reinforce)
    out = capsys.readouterr().out
    assert "all 4 checks passed" in out and "recognised the practical estimator" in out, out


def test_reinforce_checker_rejects_a_mix_of_the_two_forms() -> None:
    def mixed(logits, actions, rewards, gamma):
        form = reinforce_gamma_t if len(actions) % 2 else reinforce
        return form(logits, actions, rewards, gamma)

    with pytest.raises(checks.CheckError, match="on some episodes and not on others"):
        checks.check_reinforce_loss(mixed)
