"""FlatParameters: one tensor for an optimiser and for gradient clipping, the same steps
as the per-parameter way; policy_sample's Gumbel-max draws."""

from __future__ import annotations

import copy

import pytest
import torch

from rlcourse.nets import ActorCritic, FlatParameters, QNetwork, policy_sample


def _loss(net: ActorCritic, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    log_prob, entropy, value = net.evaluate(obs, actions)
    return -(log_prob * 3.0).mean() + 0.5 * (value - 1.0).square().mean() - 0.01 * entropy.mean()


@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize("max_norm", [None, 0.05, 1e6])
def test_flat_steps_match_per_parameter_steps(continuous: bool, max_norm: float | None) -> None:
    torch.manual_seed(0)
    kind = {"action_dim": 2} if continuous else {"n_actions": 3}
    ref = ActorCritic(4, **kind)
    net = copy.deepcopy(ref)
    flat = FlatParameters(net.parameters())
    ref_opt = torch.optim.Adam(ref.parameters(), lr=1e-2, eps=1e-5)
    opt = torch.optim.Adam([flat.data], lr=1e-2, eps=1e-5)
    for step in range(5):
        obs = torch.randn(32, 4, generator=torch.Generator().manual_seed(step))
        actions = torch.randn(32, 2) if continuous else torch.randint(0, 3, (32,))
        ref_opt.zero_grad()
        _loss(ref, obs, actions).backward()
        ref_norm = torch.nn.utils.clip_grad_norm_(ref.parameters(), max_norm or float("inf"))
        ref_opt.step()
        flat.zero_grad()
        _loss(net, obs, actions).backward()
        norm = flat.clip_grad_norm_(max_norm)
        opt.step()
        torch.testing.assert_close(norm, ref_norm)
        for (name, p), q in zip(net.named_parameters(), ref.parameters(), strict=True):
            torch.testing.assert_close(p, q, msg=f"{name} differs after step {step}")
            torch.testing.assert_close(p.grad, q.grad, msg=f"{name}'s gradient differs")
    if max_norm == 0.05:  # the clip did bite
        assert torch.linalg.vector_norm(flat.grad) == pytest.approx(0.05, rel=1e-4)


def test_parameters_become_views_and_keep_their_values() -> None:
    net = QNetwork(4, 2, (8, 8))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    flat = FlatParameters(net.parameters())
    assert flat.data.numel() == sum(p.numel() for p in net.parameters())
    for name, p in net.named_parameters():
        torch.testing.assert_close(p, before[name])
        assert p.untyped_storage().data_ptr() == flat.data.untyped_storage().data_ptr()
        assert p.grad is not None
        assert p.grad.untyped_storage().data_ptr() == flat.grad.untyped_storage().data_ptr()
    with torch.no_grad():
        flat.data.add_(1.0)  # an optimiser's in-place step moves every parameter
    for name, p in net.named_parameters():
        torch.testing.assert_close(p, before[name] + 1.0)
    assert flat.data.grad is flat.grad


def test_backward_accumulates_into_the_flat_gradient_and_zero_grad_clears_it() -> None:
    net = QNetwork(3, 2, (5,))
    flat = FlatParameters(net.parameters())
    net(torch.ones(1, 3)).sum().backward()
    first = flat.grad.clone()
    assert first.abs().sum() > 0
    net(torch.ones(1, 3)).sum().backward()
    torch.testing.assert_close(flat.grad, 2 * first)  # accumulated in place, still linked
    flat.zero_grad()
    assert flat.grad.abs().sum() == 0
    net(torch.ones(1, 3)).sum().backward()
    torch.testing.assert_close(flat.grad, first)


def test_state_dict_round_trip_after_flattening(tmp_path) -> None:
    net = QNetwork(4, 2, (8,))
    FlatParameters(net.parameters())
    torch.save(net.state_dict(), tmp_path / "q.pt")
    other = QNetwork(4, 2, (8,))
    other.load_state_dict(torch.load(tmp_path / "q.pt"))
    for p, q in zip(net.parameters(), other.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_mixed_dtypes_and_no_parameters_are_errors() -> None:
    net = QNetwork(4, 2, (8,))
    net.body[0].double()
    with pytest.raises(ValueError, match="share one device and dtype"):
        FlatParameters(net.parameters())
    with pytest.raises(ValueError, match="at least one parameter"):
        FlatParameters([])


def test_policy_sample_draws_from_the_softmax_of_the_logits() -> None:
    torch.manual_seed(0)
    logits = torch.tensor([[0.0, 1.0, -1.0, 2.0], [3.0, 0.0, 0.0, -5.0]])
    draws = policy_sample(logits.unsqueeze(0).expand(50_000, 2, 4))
    assert draws.shape == (50_000, 2) and draws.dtype == torch.long
    for row in range(2):
        freq = torch.bincount(draws[:, row], minlength=4) / 50_000
        torch.testing.assert_close(freq, logits[row].softmax(-1), atol=0.01, rtol=0)
    torch.manual_seed(1)
    first = policy_sample(logits)
    torch.manual_seed(1)
    assert torch.equal(policy_sample(logits), first)  # seeded by torch's generator


def test_policy_sample_survives_an_exponential_draw_of_zero(monkeypatch) -> None:
    """exponential_() can return exactly 0: -log 0 = inf must not make logits + g infinite,
    nor NaN where a logit is -inf (argmax would pick that action of probability 0)."""
    logits = torch.tensor([[0.0, 1.0, -torch.inf], [-torch.inf, 2.0, 0.5]])
    monkeypatch.setattr(torch.Tensor, "exponential_", lambda self, *a, **k: self.zero_())
    assert policy_sample(logits).tolist() == [1, 1]  # every E = 0: the argmax of the logits

    def one_zero(self: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        self.fill_(1.0)
        self[:, -1] = 0.0  # the last action draws E = 0: it wins where it is possible at all
        return self

    monkeypatch.setattr(torch.Tensor, "exponential_", one_zero)
    assert policy_sample(logits).tolist() == [1, 2]


def test_policy_sample_is_the_unclamped_gumbel_max_where_no_draw_is_zero() -> None:
    """The clamp changes no draw but a zero: the same actions as argmax(logits - log E)."""
    logits = torch.randn(20_000, 6, generator=torch.Generator().manual_seed(0)) * 3
    torch.manual_seed(5)
    actions = policy_sample(logits)
    torch.manual_seed(5)
    E = torch.empty_like(logits).exponential_()
    assert bool((E > 0).all())
    assert torch.equal(actions, (logits - E.log()).argmax(-1))
