"""The loop, foreach and fused AdamLoss, and the functional ``adamloss``, against the paper's Algorithm 2 as written.

Torch only (no SB3).
"""

from __future__ import annotations

import pytest
import torch

from rl_adaloss.optim import AdamLoss
from rl_adaloss.optim.adamloss_reference import AdamLossReference
from rl_adaloss.optim.functional import adamloss

IMPLS = {"loop": dict(foreach=False), "foreach": dict(foreach=True), "fused": dict(fused=True)}
KWARGS = dict(lr=0.05, alpha=0.5, c=0.25, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01)


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(32, 4, generator=g, dtype=torch.float64), torch.randn(32, 1, generator=g, dtype=torch.float64)


def _reference_run(steps: int) -> tuple[list[torch.Tensor], float]:
    net, (x, y) = _net(), _data()
    opt = AdamLossReference(net.parameters(), **KWARGS)
    for _ in range(steps):
        opt.zero_grad()
        loss = ((net(x) - y) ** 2).mean()
        loss.backward()
        opt.step(loss.detach())
    return [p.detach().clone() for p in net.parameters()], opt.param_groups[0]["b"]


@pytest.mark.parametrize("impl", IMPLS)
def test_optimizer_matches_algorithm_2(impl):
    want, b = _reference_run(30)
    net, (x, y) = _net(), _data()
    opt = AdamLoss(net.parameters(), **KWARGS, **IMPLS[impl])
    for _ in range(30):
        opt.zero_grad()
        ((net(x) - y) ** 2).mean().backward()
        opt.step()  # the loss comes from the feed
    assert opt.accumulators()[0] == pytest.approx(b, rel=1e-13)
    for got, ref in zip(net.parameters(), want):
        torch.testing.assert_close(got.detach(), ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_functional_matches_algorithm_2_and_the_optimizer(impl):
    want, b = _reference_run(30)
    net, (x, y) = _net(), _data()
    params = list(net.parameters())
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    steps = [torch.zeros((), dtype=torch.float32) for _ in params]
    acc = 1.0 / KWARGS["lr"] ** 2
    hyper = {k: KWARGS[k] for k in ("alpha", "c", "eps", "weight_decay")}
    for _ in range(30):
        net.zero_grad()
        loss = ((net(x) - y) ** 2).mean()
        loss.backward()
        grads = [p.grad for p in params]
        acc = adamloss(
            params, grads, m, v, steps, loss=loss, accumulator=acc, lr=KWARGS["lr"], lr0=KWARGS["lr"],
            beta1=0.8, beta2=0.99, **hyper, **IMPLS[impl],
        )  # fmt: skip
    assert acc == pytest.approx(b, rel=1e-13) and all(s.item() == 30 for s in steps)
    for got, ref in zip(params, want):
        torch.testing.assert_close(got.detach(), ref, rtol=1e-10, atol=1e-12)


def test_functional_skips_a_nonfinite_loss_and_checks_its_arguments():
    w, m, v, s = torch.ones(2), torch.zeros(2), torch.zeros(2), torch.zeros(())
    assert adamloss([w], [torch.ones(2)], [m], [v], [s], loss=float("nan"), accumulator=4.0, lr=0.5, lr0=0.5) == 4.0
    assert torch.equal(w, torch.ones(2)) and s.item() == 0 and not m.any()
    with pytest.raises(ValueError, match="foreach=True with fused=True"):
        adamloss([w], [w], [m], [v], [s], loss=1.0, accumulator=4.0, lr=0.5, lr0=0.5, foreach=True, fused=True)
    with pytest.raises(ValueError, match="Invalid lists"):
        adamloss([w], [], [m], [v], [s], loss=1.0, accumulator=4.0, lr=0.5, lr0=0.5)
