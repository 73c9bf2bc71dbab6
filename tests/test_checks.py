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
        checks.check_td0_update(stub)


def test_checker_reports_a_crash_as_a_check_error() -> None:
    """A student's exception is reported with its type, not as a bare traceback."""

    def crashes(V, s, r, s_next, terminated, alpha, gamma):
        return V[s, s_next]

    with pytest.raises(checks.CheckError, match="td0_update raised IndexError"):
        checks.check_td0_update(crashes)


# ------------------------------------------------- wrong implementations, by chapter
# chapter 1: Bellman expectation backup and the exact solve
def backup_without_gamma(P, R, gamma, policy, V):
    return (policy * (R + P @ V)).sum(1)


def backup_with_max(P, R, gamma, policy, V):
    return (R + gamma * P @ V).max(1).values


def backup_uniform_over_actions(P, R, gamma, policy, V):
    return (R + gamma * P @ V).mean(1)


def backup_transitions_ignore_action(P, R, gamma, policy, V):
    return (policy * (R + gamma * (P.mean(1) @ V)[:, None])).sum(1)


def backup_reward_by_state(P, R, gamma, policy, V):
    r = R.mean(1, keepdim=True)  # one reward per state, whatever the action
    return (policy * (r + gamma * P @ V)).sum(1)


def v_pi_transposed(P, R, gamma, policy):
    P_pi = torch.einsum("sa,sat->st", policy, P)
    r_pi = (policy * R).sum(1)
    return torch.linalg.solve(torch.eye(len(R), dtype=P.dtype) - gamma * P_pi.T, r_pi)


def v_pi_ignores_policy(P, R, gamma, policy):
    eye = torch.eye(len(R), dtype=P.dtype)
    return torch.linalg.solve(eye - gamma * P.mean(1), R.mean(1))


# chapter 2: value iteration and the greedy policy
def sweep_mean_over_actions(P, R, gamma, V):
    return (R + gamma * P @ V).mean(1)


def sweep_returns_argmax(P, R, gamma, V):
    return (R + gamma * P @ V).argmax(1).to(P.dtype)


def sweep_without_gamma(P, R, gamma, V):
    return (R + P @ V).max(1).values


def sweep_transitions_ignore_action(P, R, gamma, V):
    return (R + gamma * (P.mean(1) @ V)[:, None]).max(1).values


def sweep_reward_by_state(P, R, gamma, V):
    return (R.mean(1, keepdim=True) + gamma * P @ V).max(1).values


def greedy_on_reward_only(P, R, gamma, V):
    return torch.nn.functional.one_hot(R.argmax(1), R.shape[1]).to(P.dtype)


# chapter 3: returns and TD(0)
def _returns(rewards, gamma):
    G, out = 0.0, np.zeros(len(rewards))
    for t in reversed(range(len(rewards))):
        G = rewards[t] + gamma * G
        out[t] = G
    return out


def returns_whole_episode(rewards, gamma):
    return np.full(len(rewards), _returns(rewards, gamma)[0])


def returns_undiscounted(rewards, gamma):
    return _returns(rewards, 1.0)


def returns_discounted_from_start(rewards, gamma):
    return _returns(rewards, gamma) * gamma ** np.arange(len(rewards))


def td0_no_terminal_masking(V, s, r, s_next, terminated, alpha, gamma):
    V[s] += alpha * (r + gamma * V[s_next] - V[s])
    return V


def td0_alpha_as_gamma(V, s, r, s_next, terminated, alpha, gamma):
    V[s] += alpha * (r + alpha * (0.0 if terminated else V[s_next]) - V[s])
    return V


def td0_updates_next_state(V, s, r, s_next, terminated, alpha, gamma):
    target = r + gamma * (0.0 if terminated else V[s_next])
    V[s_next] += alpha * (target - V[s_next])
    return V


# chapter 4: epsilon-greedy, Q-learning, SARSA
def greedy_only(q, epsilon, rng):
    return int(np.argmax(q))


def explores_with_one_minus_epsilon(q, epsilon, rng):
    return int(rng.integers(len(q))) if rng.random() > epsilon else int(np.argmax(q))


def fixed_epsilon(q, epsilon, rng):
    return int(rng.integers(len(q))) if rng.random() < 0.1 else int(np.argmax(q))


def random_action_excludes_greedy(q, epsilon, rng):
    if rng.random() < epsilon:
        others = [a for a in range(len(q)) if a != int(np.argmax(q))]
        return int(rng.choice(others))
    return int(np.argmax(q))


def epsilon_greedy_unseeded(q, epsilon, rng):
    own = np.random.default_rng()  # a fresh, unseeded generator instead of the rng given
    return int(own.integers(len(q))) if own.random() < epsilon else int(np.argmax(q))


def q_update(Q, s, a, r, s_next, terminated, alpha, gamma, *, mask=True, discount=None):
    discount = gamma if discount is None else discount
    bootstrap = 0.0 if terminated and mask else Q[s_next].max()
    Q[s, a] += alpha * (r + discount * bootstrap - Q[s, a])
    return Q


def q_update_greedy_action(Q, s, a, r, s_next, terminated, alpha, gamma):
    return q_update(Q, s, int(Q[s].argmax()), r, s_next, terminated, alpha, gamma)


def q_update_no_terminal_masking(Q, s, a, r, s_next, terminated, alpha, gamma):
    return q_update(Q, s, a, r, s_next, terminated, alpha, gamma, mask=False)


def q_update_alpha_as_gamma(Q, s, a, r, s_next, terminated, alpha, gamma):
    return q_update(Q, s, a, r, s_next, terminated, alpha, gamma, discount=alpha)


def sarsa(Q, s, a, r, s_next, a_next, terminated, alpha, gamma, *, use_max=False, mask=True):
    q_next = Q[s_next].max() if use_max else Q[s_next, a_next]
    Q[s, a] += alpha * (r + gamma * (0.0 if terminated and mask else q_next) - Q[s, a])
    return Q


def sarsa_bootstraps_from_max(Q, s, a, r, s_next, a_next, terminated, alpha, gamma):
    return sarsa(Q, s, a, r, s_next, a_next, terminated, alpha, gamma, use_max=True)


def sarsa_no_terminal_masking(Q, s, a, r, s_next, a_next, terminated, alpha, gamma):
    return sarsa(Q, s, a, r, s_next, a_next, terminated, alpha, gamma, mask=False)


def sarsa_updates_greedy_action(Q, s, a, r, s_next, a_next, terminated, alpha, gamma):
    return sarsa(Q, s, int(Q[s].argmax()), r, s_next, a_next, terminated, alpha, gamma)


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
        "check_bellman_expectation_backup",
        backup_without_gamma,
        "forgot the discount gamma",
        "bellman-backup-without-gamma",
    ),
    _bad(
        "check_bellman_expectation_backup",
        backup_with_max,
        "took the max over actions",
        "bellman-expectation-backup-takes-max",
    ),
    _bad(
        "check_bellman_expectation_backup",
        backup_uniform_over_actions,
        "averaged over actions uniformly",
        "bellman-backup-ignores-policy",
    ),
    _bad(
        "check_bellman_expectation_backup",
        backup_transitions_ignore_action,
        "ignored the action in the transitions",
        "bellman-backup-transitions-ignore-action",
        16,
    ),
    _bad(
        "check_bellman_expectation_backup",
        backup_reward_by_state,
        "indexed the reward by the state alone",
        "bellman-backup-reward-by-state",
        16,
    ),
    _bad(
        "check_exact_v_pi", v_pi_transposed, "used the transpose of P_pi", "exact-v-pi-transposed-P"
    ),
    _bad(
        "check_exact_v_pi",
        v_pi_ignores_policy,
        "weighted the actions uniformly",
        "exact-v-pi-ignores-policy",
    ),
    # chapter 2
    _bad(
        "check_value_iteration_sweep",
        sweep_mean_over_actions,
        "averaged over actions",
        "value-iteration-averages-instead-of-max",
    ),
    _bad(
        "check_value_iteration_sweep",
        sweep_returns_argmax,
        "returned the argmax",
        "value-iteration-returns-argmax",
    ),
    _bad(
        "check_value_iteration_sweep",
        sweep_without_gamma,
        "forgot the discount gamma",
        "value-iteration-without-gamma",
    ),
    _bad(
        "check_value_iteration_sweep",
        sweep_transitions_ignore_action,
        "ignored the action in the transitions",
        "value-iteration-transitions-ignore-action",
        16,
    ),
    _bad(
        "check_value_iteration_sweep",
        sweep_reward_by_state,
        "indexed the reward by the state alone",
        "value-iteration-reward-by-state",
        16,
    ),
    _bad(
        "check_greedy_policy",
        greedy_on_reward_only,
        "maximised the immediate reward",
        "greedy-policy-on-reward-only",
    ),
    # chapter 3
    _bad(
        "check_discounted_returns",
        returns_whole_episode,
        "whole episode's return",
        "returns-whole-episode-for-every-step",
        13,
    ),
    _bad(
        "check_discounted_returns",
        returns_undiscounted,
        "did not discount",
        "returns-undiscounted",
        13,
    ),
    _bad(
        "check_discounted_returns",
        returns_discounted_from_start,
        "discounted from the start of the episode",
        "returns-discounted-from-episode-start",
        13,
    ),
    _bad(
        "check_td0_update",
        td0_alpha_as_gamma,
        "learning rate alpha as the discount",
        "td-target-uses-alpha-as-gamma",
        8,
    ),
    _bad(
        "check_td0_update",
        td0_no_terminal_masking,
        "no terminal masking",
        "td0-no-terminal-masking",
        9,
    ),
    _bad("check_td0_update", td0_updates_next_state, "instead of V(S)", "td0-updates-next-state"),
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
        "check_q_learning_update",
        q_update_greedy_action,
        "instead of the action actually taken",
        "q-update-wrong-action",
        12,
    ),
    _bad(
        "check_q_learning_update",
        q_update_no_terminal_masking,
        "no terminal masking",
        "q-learning-no-terminal-masking",
        9,
    ),
    _bad(
        "check_q_learning_update",
        q_update_alpha_as_gamma,
        "learning rate alpha as the discount",
        "q-learning-alpha-as-gamma",
        8,
    ),
    _bad(
        "check_sarsa_update",
        sarsa_bootstraps_from_max,
        "that is Q-learning",
        "sarsa-bootstraps-from-max",
        12,
    ),
    _bad(
        "check_sarsa_update",
        sarsa_no_terminal_masking,
        "no terminal masking",
        "sarsa-no-terminal-masking",
        9,
    ),
    _bad(
        "check_sarsa_update",
        sarsa_updates_greedy_action,
        "instead of the action actually taken",
        "sarsa-updates-greedy-action",
        12,
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
    assert pitfalls <= set(range(1, 18))
    assert pitfalls >= {3, 4, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, sorted(pitfalls)
