"""experiments/issue28/candidates.py: the design prototype's accumulator, step bound and warmup, by hand."""

from __future__ import annotations

import math

import pytest
import torch

from experiments.issue28.candidates import AdamLossSurprise

pytestmark = pytest.mark.study  # a study's design tool: outside the default tier (pytest -m study)


def _feed(opt: torch.optim.Optimizer, w: torch.nn.Parameter, losses: tuple[float, ...]) -> None:
    for f in losses:
        opt.zero_grad()
        (0 * w + f).sum().backward()
        opt.step()


def test_reference_keeps_learning_and_the_floor_is_added_once():
    w = torch.nn.Parameter(torch.tensor([1.0]))
    opt = AdamLossSurprise([w], lr=0.1, alpha=100.0, ref_steps=2, b0_half_life=math.inf, lr_max=0.01, ref_time=10)
    _feed(opt, w, (50.0, 150.0, 25.0, 25.0))
    # reference: 50, then (50+150)/2 = 100; then 25 is measured against 100 and moves it to 100 + (25-100)/10 = 92.5
    assert opt.accumulators() == [pytest.approx(1 / 0.1**2 + 1 / 0.01**2 + 100 * (1 + 1.5 + 25 / 100 + 25 / 92.5))]
    assert opt.param_groups[0]["proto_ref"] == pytest.approx(92.5 + (25 - 92.5) / 10)


def test_frozen_reference_is_adamlossrel():
    from rl_adaloss.optim import AdamLossRel

    w1, w2 = torch.nn.Parameter(torch.tensor([1.0])), torch.nn.Parameter(torch.tensor([1.0]))
    a = AdamLossSurprise([w1], lr=0.1, alpha=10.0, ref_steps=2, ref_time=None)
    b = AdamLossRel([w2], lr=0.1, alpha=10.0, ref_steps=2)
    losses = (3.0, 1.0, 9.0, 0.5, 2.0)
    _feed(a, w1, losses)
    _feed(b, w2, losses)
    assert a.accumulators() == pytest.approx(b.accumulators(), rel=1e-12)


def test_warmup_bounds_the_step_and_ramps_linearly():
    w = torch.nn.Parameter(torch.tensor([1.0]))
    opt = AdamLossSurprise([w], lr=1.0, alpha=1.0, lr_max=0.01, warmup=4, b0_half_life=math.inf)
    steps = []
    for _ in range(6):
        before = float(w)
        opt.zero_grad()
        (w * w).sum().backward()
        opt.step()
        steps.append(before - float(w))  # Adam's first steps move by the step size (sign of the gradient)
    assert steps == pytest.approx([0.0025, 0.005, 0.0075, 0.01, 0.01, 0.01], rel=5e-3)
    assert opt.effective_lrs() == [pytest.approx(0.01)]
    with pytest.raises(ValueError, match="warmup"):
        AdamLossSurprise([w], warmup="auto")  # a warmup needs lr_max
