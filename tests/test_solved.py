"""The course's one definition of solved: thresholds, disjoint episode sets, refusals,
and the fast exact CartPole evaluation against gymnasium's own env."""

from __future__ import annotations

import importlib

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from rlcourse import dqn, pg, ppo
from rlcourse.agent import EvaluationSchedule, TrainingHistory
from rlcourse.evaluate import SOLVE_EPISODES, reward_threshold
from rlcourse.nets import QNetwork

evaluate_module = importlib.import_module("rlcourse.evaluate")


def test_thresholds_are_gymnasium_s_and_the_course_s() -> None:
    assert SOLVE_EPISODES == 100
    assert reward_threshold("CartPole-v1") == 475.0
    assert reward_threshold("Pendulum-v1") == -200.0
    assert reward_threshold("no-such-env-v0") is None


@pytest.mark.parametrize("config", [dqn.DQNConfig, ppo.PPOConfig, pg.A2CConfig])
def test_threshold_without_evaluations_is_refused(config: type) -> None:
    with pytest.raises(ValueError, match=r"solve_threshold=475.*eval_every=0"):
        config(eval_every=0, solve_threshold=475)


def test_zero_evaluation_episodes_is_refused() -> None:
    with pytest.raises(ValueError, match="eval_episodes"):
        ppo.PPOConfig(eval_episodes=0)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"held_out_seed": 10_005}, "held_out_seed"),
        ({"confirm_seed": 10_019}, "confirm_seed"),
        ({"held_out_seed": 20_050}, "held_out_seed"),
    ],
)
def test_overlapping_episode_sets_are_refused(changes: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"{field}.*overlap"):
        ppo.PPOConfig(**changes)


def test_a_training_seed_among_the_evaluation_seeds_is_refused() -> None:
    with pytest.raises(ValueError, match="overlap the training seed"):
        ppo.train("CartPole-v1", ppo.PPOConfig(total_steps=256), seed=30_050, progress=False)


def test_fast_cartpole_evaluation_equals_gymnasium_s() -> None:
    torch.manual_seed(0)
    net = QNetwork(4, 2, (16,))
    agent = dqn.DQNAgent(net)
    fast = evaluate_module.evaluate(agent, "CartPole-v1", 30, seed=123)
    vec = gym.make_vec("CartPole-v1", 30, vectorization_mode="sync",
                       vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})  # fmt: skip
    slow = evaluate_module._first_episode_returns(vec, agent.act, 123, 10_000)
    np.testing.assert_array_equal(fast, slow)


def test_history_says_which_policy_was_handed_back_and_its_held_out_score() -> None:
    cfg = ppo.PPOConfig(total_steps=4096, eval_every=1024, eval_episodes=5, device="cpu")
    agent, h = ppo.train("CartPole-v1", cfg, seed=0, progress=False)
    best = max(h.evaluations, key=lambda e: e[1]) if not h.confirmations else None
    assert h.threshold == 475.0 and h.selected_step is not None and h.selection
    if best is not None:
        assert h.selected_step == best[0]
    selection = evaluate_module.evaluate(agent, "CartPole-v1", 5, seed=cfg.eval_seed).mean()
    assert selection == pytest.approx(dict((s, m) for s, m, _ in h.evaluations)[h.selected_step])
    held = evaluate_module.evaluate(agent, "CartPole-v1", SOLVE_EPISODES, seed=cfg.held_out_seed)
    assert h.held_out_mean == pytest.approx(held.mean())
    assert h.solved == (held.mean() >= 475)


class _Scripted(EvaluationSchedule):
    """A schedule whose scores come from a script: ``{(n_episodes, seed): [means...]}``."""

    def __init__(self, cfg: ppo.PPOConfig, script: dict[int, list[float]]) -> None:
        super().__init__("CartPole-v1", cfg, TrainingHistory())
        self.script = {n: list(means) for n, means in script.items()}

    def _score(self, agent, n, seed):
        return self.script[n].pop(0), 0.0


class _Agent:
    def __init__(self) -> None:
        self.net = torch.nn.Linear(1, 1)


def _run(schedule: _Scripted, steps: list[int], final: int) -> tuple[_Agent, list[float]]:
    """Evaluate at ``steps`` (the weight set to the step), stop when told, then finish."""
    agent = _Agent()
    for step in steps:
        agent.net.weight.data.fill_(step)
        if schedule.evaluate(agent, step):
            break
    agent.net.weight.data.fill_(final)
    schedule.finish(final, agent)
    return agent, [s for s, _, _ in schedule.history.evaluations]


def test_the_rule_confirms_stops_at_a_confirmed_solve_and_keeps_that_policy() -> None:
    cfg = ppo.PPOConfig(eval_episodes=20, held_out_seed=None)
    # selection 400; 480 (confirmation 460: not a solve); 490 (confirmation 480: a solve)
    schedule = _Scripted(cfg, {20: [400, 480, 490, 500], 100: [460, 480]})
    agent, evaluated = _run(schedule, [1, 2, 3, 4], final=9)
    h = schedule.history
    assert evaluated == [1, 2, 3] and [s for s, _, _ in h.confirmations] == [2, 3]
    assert h.solved_step == 3 and h.selected_step == 3 and "confirmed solve" in h.selection
    assert agent.net.weight.item() == 3  # the kept policy, not the last one


def test_the_rule_keeps_the_best_confirmation_when_nothing_is_confirmed() -> None:
    cfg = ppo.PPOConfig(eval_episodes=20, held_out_seed=None)
    # 480 (conf 470), 300, 476 (conf 440), then the final policy 200
    schedule = _Scripted(cfg, {20: [480, 300, 476, 200], 100: [470, 440]})
    agent, evaluated = _run(schedule, [1, 2, 3], final=4)
    h = schedule.history
    assert evaluated == [1, 2, 3, 4] and h.solved_step is None
    assert h.selected_step == 1 and agent.net.weight.item() == 1
    assert "the best confirmation" in h.selection


def test_without_a_threshold_the_best_selection_score_is_kept_and_nothing_stops() -> None:
    cfg = ppo.PPOConfig(eval_episodes=20, held_out_seed=None, solve_threshold=None)
    schedule = _Scripted(cfg, {20: [100, 500, 300, 200], 100: []})
    agent, evaluated = _run(schedule, [1, 2, 3], final=4)
    assert evaluated == [1, 2, 3, 4] and schedule.history.solved_step is None
    assert schedule.history.selected_step == 2 and agent.net.weight.item() == 2


def test_keep_best_false_hands_back_the_final_policy() -> None:
    cfg = ppo.PPOConfig(eval_episodes=20, held_out_seed=None, keep_best=False)
    schedule = _Scripted(cfg, {20: [100, 500, 300, 200], 100: [400]})
    agent, _ = _run(schedule, [1, 2, 3], final=4)
    assert schedule.history.selected_step == 4 and agent.net.weight.item() == 4
