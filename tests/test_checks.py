"""Each exercise checker accepts a correct solution and rejects a classic mistake with a
message that names it (the notebooks hold the reference solutions; these are independent
re-implementations)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlcourse import checks


def _returns(rewards, gamma):
    G, out = 0.0, np.zeros(len(rewards))
    for t in reversed(range(len(rewards))):
        G = rewards[t] + gamma * G
        out[t] = G
    return out


def _reinforce(logits, actions, rewards, gamma, whole=False):
    G = torch.as_tensor(_returns(rewards.numpy(), gamma), dtype=torch.float32)
    if whole:
        G = torch.full_like(G, float(G[0]))
    log_pi = torch.log_softmax(logits, 1)[torch.arange(len(actions)), actions]
    return -(log_pi * G).mean()


def _q_update(Q, s, a, r, s2, term, alpha, gamma, greedy_action=False):
    a = int(Q[s].argmax()) if greedy_action else a
    Q[s, a] += alpha * (r + gamma * (0.0 if term else Q[s2].max()) - Q[s, a])
    return Q


def _sarsa(Q, s, a, r, s2, a2, term, alpha, gamma, use_max=False):
    boot = Q[s2].max() if use_max else Q[s2, a2]
    Q[s, a] += alpha * (r + gamma * (0.0 if term else boot) - Q[s, a])
    return Q


def _td0(V, s, r, s2, term, alpha, gamma, mask=True):
    V[s] += alpha * (r + gamma * (0.0 if term and mask else V[s2]) - V[s])
    return V


def _dqn_loss(q_net, target_net, b, gamma, detach=True):
    q = q_net(b["obs"]).gather(1, b["actions"][:, None]).squeeze(1)
    nxt = target_net(b["next_obs"]).max(1).values
    y = b["rewards"] + gamma * (1 - b["terminated"]) * (nxt.detach() if detach else nxt)
    return ((q - y) ** 2).mean()


def _ppo_loss(new, old, adv, eps, clip=True):
    r = (new - old).exp()
    if not clip:
        return -(r * adv).mean()
    return -torch.min(r * adv, r.clamp(1 - eps, 1 + eps) * adv).mean()


CASES = [
    (
        "check_discounted_returns",
        _returns,
        lambda r, g: np.full(len(r), _returns(r, g)[0]),
        "whole episode's return",
    ),
    ("check_td0_update", _td0, lambda *a: _td0(*a, mask=False), "no terminal masking"),
    (
        "check_q_learning_update",
        _q_update,
        lambda *a: _q_update(*a, greedy_action=True),
        "greedy action's value",
    ),
    ("check_sarsa_update", _sarsa, lambda *a: _sarsa(*a, use_max=True), "that is Q-learning"),
    (
        "check_reinforce_loss",
        _reinforce,
        lambda *a: _reinforce(*a, whole=True),
        "whole episode's return",
    ),
    ("check_dqn_loss", _dqn_loss, lambda *a: _dqn_loss(*a, detach=False), "target network"),
    (
        "check_ppo_policy_loss",
        _ppo_loss,
        lambda *a: _ppo_loss(*a, clip=False),
        "forgot the clipping",
    ),
]


@pytest.mark.parametrize(("checker", "good", "bad", "message"), CASES, ids=[c[0] for c in CASES])
def test_checker_accepts_a_solution_and_names_a_mistake(checker, good, bad, message, capsys):
    check = getattr(checks, checker)
    check(good)
    assert "checks passed" in capsys.readouterr().out
    with pytest.raises(checks.CheckError, match=message):
        check(bad)


def test_checkers_reject_the_stub() -> None:
    def stub(*args):
        raise NotImplementedError

    with pytest.raises(checks.CheckError, match="not implemented yet"):
        checks.check_td0_update(stub)


def test_epsilon_greedy_checker() -> None:
    def good(q, eps, rng):
        return int(rng.integers(len(q))) if rng.random() < eps else int(np.argmax(q))

    checks.check_epsilon_greedy(good)
    with pytest.raises(checks.CheckError, match="always act greedily"):
        checks.check_epsilon_greedy(lambda q, eps, rng: int(np.argmax(q)))
