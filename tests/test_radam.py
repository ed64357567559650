"""RAdam as the reference recipes use it: skipped steps while ρ_t < 5, then rectified Adam steps."""
import math

import pytest
import torch

from fairseq_admin.radam import RAdam


def _rho(t, beta2):
    rho_inf = 2 / (1 - beta2) - 1
    return rho_inf - 2 * t * beta2 ** t / (1 - beta2 ** t)


def test_rectification_by_hand():
    beta2 = 0.98
    first = next(t for t in range(1, 50) if _rho(t, beta2) >= 5)
    assert first == 6  # with β2 = 0.98 the first five steps are skipped
    assert all(RAdam.rectification(t, beta2) == 0.0 for t in range(1, first))
    rho_inf, rho = 2 / (1 - beta2) - 1, _rho(10, beta2)
    r = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
    assert RAdam.rectification(10, beta2) == pytest.approx(r)
    assert 0 < r < 1


def test_skips_then_steps_with_decoupled_weight_decay():
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(5))
    start = p.detach().clone()
    opt = RAdam([p], lr=0.1, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.01)
    grads = [torch.randn(5) for _ in range(6)]
    for g in grads[:5]:
        p.grad = g.clone()
        opt.step()
    assert torch.equal(p.detach(), start)  # no update, no weight decay while skipping
    state = opt.state[p]
    assert state["step"] == 5 and state["exp_avg"].abs().sum() > 0
    m, v = state["exp_avg"].clone(), state["exp_avg_sq"].clone()
    p.grad = grads[5].clone()
    opt.step()
    m = 0.9 * m + 0.1 * grads[5]
    v = 0.98 * v + 0.02 * grads[5] ** 2
    r = RAdam.rectification(6, 0.98)
    expected = start * (1 - 0.1 * 0.01) - 0.1 * r * math.sqrt(1 - 0.98 ** 6) / (1 - 0.9 ** 6) * m / (v.sqrt() + 1e-8)
    assert torch.allclose(p.detach(), expected, atol=1e-6)


def test_differs_from_torch_radam_in_the_early_phase():
    torch.manual_seed(1)
    a = torch.nn.Parameter(torch.randn(4))
    b = torch.nn.Parameter(a.detach().clone())
    a0 = a.detach().clone()
    ours = RAdam([a], lr=0.1, betas=(0.9, 0.98))
    theirs = torch.optim.RAdam([b], lr=0.1, betas=(0.9, 0.98), decoupled_weight_decay=True)
    g = torch.randn(4)
    a.grad, b.grad = g.clone(), g.clone()
    ours.step()
    theirs.step()
    assert torch.equal(a.detach(), a0)  # ours skips the first step
    assert not torch.allclose(b.detach(), a0)  # torch.optim.RAdam takes an SGD-like step
