"""AdamLossRel (issue 13): loss-scale invariance, hand-computed steps, the brake, two-sidedness, state, errors.

Torch only; its SB3 integration is tested in tests/test_sb3.py, its fade in tests/test_fade.py.
"""

from __future__ import annotations

import copy
import io
import math

import numpy as np
import pytest
import torch

from rl_adaloss.optim import AdamLoss, AdamLossRel

# ---------------------------------------------------------------------------------------------------- helpers


def _problem(seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """A small deterministic regression problem in float64 (a 2-layer MLP on fixed data)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 3, generator=gen, dtype=torch.float64)
    y = torch.sin(x.sum(dim=1, keepdim=True))
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()
    return net, x, y


def _trajectory(opt_cls: type, k: float, steps: int = 40, **kwargs: object) -> tuple[list[float], list[torch.Tensor]]:
    """Train with every loss multiplied by ``k``; return the step sizes after each step and the final parameters."""
    net, x, y = _problem()
    opt = opt_cls(net.parameters(), **kwargs)
    lrs = []
    for _ in range(steps):
        opt.zero_grad()
        loss = k * ((net(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        lrs.append(opt.effective_lrs()[0])
    return lrs, [p.detach().clone() for p in net.parameters()]


def _step_losses(opt: torch.optim.Optimizer, w: torch.nn.Parameter, losses: list[float]) -> list[float]:
    """Step once per loss value (the gradient is 1 everywhere); return the effective step after each step."""
    out = []
    for f in losses:
        opt.zero_grad()
        (w.sum() * 0 + w.sum() - w.detach().sum() + f).backward()  # value f, gradient 1
        opt.step()
        out.append(opt.effective_lrs()[0])
    return out


# ---------------------------------------------------------------------------------------------------- invariance


@pytest.mark.parametrize("k", [1e-4, 1.0, 1e4])
def test_invariant_to_loss_scale(k: float) -> None:
    """Multiplying every loss by k leaves the step sizes unchanged and, with eps=0, the parameter trajectory too."""
    kwargs = dict(lr=0.05, alpha=100.0, ref_steps=4, b0_half_life=8.0, eps=0.0)
    ref_lrs, ref_params = _trajectory(AdamLossRel, 1.0, **kwargs)
    lrs, params = _trajectory(AdamLossRel, k, **kwargs)
    np.testing.assert_allclose(lrs, ref_lrs, rtol=1e-12)
    for p, q in zip(params, ref_params):
        torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-12)
    # the step moved: the invariance is not that of a constant step
    assert max(ref_lrs) / min(ref_lrs) > 1.5


def test_invariant_up_to_eps() -> None:
    """With Adam's eps > 0 the direction changes slightly with the scale, so do the losses: invariant up to eps."""
    kwargs = dict(lr=0.05, alpha=100.0, ref_steps=4, b0_half_life=8.0, eps=1e-8)
    ref_lrs, ref_params = _trajectory(AdamLossRel, 1.0, **kwargs)
    lrs, params = _trajectory(AdamLossRel, 1e2, **kwargs)
    np.testing.assert_allclose(lrs, ref_lrs, rtol=1e-6)
    for p, q in zip(params, ref_params):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_adamloss_is_not_invariant_to_loss_scale() -> None:
    """The same test on the paper's AdamLoss: its step sizes change with the loss scale by orders of magnitude."""
    kwargs = dict(lr=0.05, alpha=1.0, eps=0.0)
    small, _ = _trajectory(AdamLoss, 1e-4, **kwargs)
    large, _ = _trajectory(AdamLoss, 1e4, **kwargs)
    assert small[-1] > 0.049  # b barely moved from 1/lr^2 = 400
    assert large[-1] < 0.01  # 1e4-sized losses collapse the step
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(large, small, rtol=1e-3)


# ---------------------------------------------------------------------------------------------------- hand-computed


def test_single_step_by_hand_no_fade() -> None:
    """b1 = 1/lr^2 + alpha * |f1|/|f1|; Adam's first step (eps=0) moves every coordinate by exactly 1/sqrt(b1)."""
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = AdamLossRel([w], lr=0.1, alpha=44.0, b0_half_life=math.inf, eps=0.0)
    loss = (3.0 * w).sum() + 7.0  # f = 3 - 6 + 7 = 4, gradient (3, 3)
    loss.backward()
    opt.step()
    assert opt.accumulators() == [pytest.approx(100.0 + 44.0)]
    assert opt.reference_losses() == [pytest.approx(4.0)]
    torch.testing.assert_close(w.detach(), torch.tensor([1.0, -2.0], dtype=torch.float64) - 1.0 / 12.0)


def test_steps_by_hand_with_fade_and_reference() -> None:
    """Three steps: the reference is the running mean of the first K losses, then frozen; b0 halves every h steps."""
    w = torch.nn.Parameter(torch.tensor([0.0], dtype=torch.float64))
    opt = AdamLossRel([w], lr=0.01, alpha=10.0, ref_steps=2, b0_half_life=1.0, c=1.0)
    lrs = _step_losses(opt, w, [5.0, 9.0, 3.0])  # |f - c| = 4, 8, 2; reference 4, 6, 6
    b1 = 1e4 / 2 + 10 * 4 / 4
    b2 = 1e4 / 4 + 10 * (4 / 4 + 8 / 6)
    b3 = 1e4 / 8 + 10 * (4 / 4 + 8 / 6 + 2 / 6)
    np.testing.assert_allclose(lrs, [b1**-0.5, b2**-0.5, b3**-0.5], rtol=1e-12)
    assert opt.reference_losses() == [pytest.approx(6.0)]


def test_lr_schedule_multiplies_the_step() -> None:
    """As AdamLoss: a rewritten group lr multiplies the step (lr_t / lr_0), it does not reset b."""
    w = torch.nn.Parameter(torch.tensor([0.0], dtype=torch.float64))
    opt = AdamLossRel([w], lr=0.1, alpha=1.0, b0_half_life=math.inf)
    _step_losses(opt, w, [2.0])
    opt.param_groups[0]["lr"] = 0.05
    assert opt.effective_lrs() == [pytest.approx(0.5 / math.sqrt(101.0))]


# ---------------------------------------------------------------------------------------------------- the brake


def test_brake_for_a_too_large_eta0() -> None:
    """At eta_0 = 1 the first step is already <= 1/sqrt(alpha); losses that stay near the first ones keep shrinking it,
    and once the losses fall the step stops shrinking."""
    w = torch.nn.Parameter(torch.tensor([0.0], dtype=torch.float64))
    opt = AdamLossRel([w], lr=1.0, alpha=1000.0, ref_steps=4, b0_half_life=math.inf)
    lrs = _step_losses(opt, w, [100.0] * 50 + [1.0] * 50)
    assert lrs[0] <= 1000.0**-0.5
    assert lrs[49] == pytest.approx((1.0 + 1000.0 * 50) ** -0.5)  # 50 reference-sized losses
    assert lrs[99] > 0.99 * lrs[49]  # 50 losses 100x smaller barely move it
    # the same losses in units 1e-6 give the same brake (loss-scale free)
    w2 = torch.nn.Parameter(torch.tensor([0.0], dtype=torch.float64))
    opt2 = AdamLossRel([w2], lr=1.0, alpha=1000.0, ref_steps=4, b0_half_life=math.inf)
    np.testing.assert_allclose(_step_losses(opt2, w2, [1e-4] * 50 + [1e-6] * 50), lrs, rtol=1e-12)


def test_brake_depends_on_early_losses_relative_to_later_ones() -> None:
    """Large early losses relative to later ones shrink the step more than the same losses in the reverse order."""

    def final(losses: list[float]) -> float:
        w = torch.nn.Parameter(torch.tensor([0.0], dtype=torch.float64))
        opt = AdamLossRel([w], lr=0.1, alpha=100.0, ref_steps=4, b0_half_life=math.inf)
        return _step_losses(opt, w, losses)[-1]

    falling = final([10.0] * 20 + [1.0] * 20)
    rising = final([1.0] * 20 + [10.0] * 20)
    assert falling > rising  # rising losses (relative to the first ones) brake harder: a sign of a too-large step


# ---------------------------------------------------------------------------------------------------- two-sided


def test_too_small_eta0_costs_only_a_delay() -> None:
    """At eta_0 = 1e-5 the fade brings the step up to the loss-driven 1/sqrt(alpha * S); AdamLoss stays at 1e-5."""
    w = torch.nn.Parameter(torch.tensor([0.0], dtype=torch.float64))
    opt = AdamLossRel([w], lr=1e-5, alpha=100.0, ref_steps=4, b0_half_life=16.0)
    lrs = _step_losses(opt, w, [1.0] * 1000)
    # b0 = 1e10 halves every 16 steps: after 1000 steps 1e10 * 2^-62.5, negligible
    assert lrs[-1] == pytest.approx((100.0 * 1000) ** -0.5, rel=1e-6)
    assert lrs[-1] > 300 * 1e-5
    w2 = torch.nn.Parameter(torch.tensor([0.0], dtype=torch.float64))
    plain = _step_losses(AdamLoss([w2], lr=1e-5, alpha=1.0), w2, [1.0] * 1000)
    assert plain[-1] <= 1e-5


def test_too_small_eta0_still_solves_a_problem() -> None:
    """On the regression problem a too-small eta_0 (1e-6) still learns; AdamLoss at 1e-6 does not move."""

    def final_loss(opt_cls: type, lr: float, steps: int, **kwargs: object) -> float:
        net, x, y = _problem()
        opt = opt_cls(net.parameters(), lr=lr, **kwargs)
        for _ in range(steps):
            opt.zero_grad()
            loss = ((net(x) - y) ** 2).mean()
            loss.backward()
            opt.step()
        return float(((net(x) - y) ** 2).mean().detach())

    start = final_loss(AdamLossRel, 1e-6, 0)
    tiny = final_loss(AdamLossRel, 1e-6, 1000, alpha=100.0, b0_half_life=16.0)
    tiny_adamloss = final_loss(AdamLoss, 1e-6, 1000)
    assert tiny < 0.05 * start  # the losses of the slow start stay in the sum: slower than a good eta_0, not stuck
    assert tiny_adamloss > 0.95 * start


def test_no_fade_never_grows_the_step() -> None:
    w = torch.nn.Parameter(torch.tensor([0.0], dtype=torch.float64))
    opt = AdamLossRel([w], lr=1e-3, alpha=1.0, b0_half_life=math.inf)
    lrs = _step_losses(opt, w, [1.0, 0.0, 5.0, 0.1] * 10)
    assert all(b <= a for a, b in zip([0.001, *lrs], lrs))


# ---------------------------------------------------------------------------------------------------- edge cases


def test_zero_losses_keep_the_reference_learning() -> None:
    w = torch.nn.Parameter(torch.tensor([0.0], dtype=torch.float64))
    opt = AdamLossRel([w], lr=0.1, alpha=10.0, ref_steps=2, b0_half_life=math.inf)
    _step_losses(opt, w, [0.0, 0.0, 0.0])
    assert opt.accumulators() == [pytest.approx(100.0)]
    _step_losses(opt, w, [3.0, 3.0])  # the reference is the mean up to the first nonzero loss, (0+0+0+3)/4, then frozen
    assert opt.accumulators() == [pytest.approx(100.0 + 10 * 3 / (3 / 4) * 2)]


def test_nonfinite_loss_is_skipped_without_touching_the_reference() -> None:
    w = torch.nn.Parameter(torch.tensor([0.0], dtype=torch.float64))
    opt = AdamLossRel([w], lr=0.1, alpha=10.0, ref_steps=8, b0_half_life=4.0)
    _step_losses(opt, w, [2.0])
    before = (opt.accumulators(), opt.reference_losses(), opt.param_groups[0]["rl_adaloss_b0_remaining"])
    _step_losses(opt, w, [math.nan])
    after = (opt.accumulators(), opt.reference_losses(), opt.param_groups[0]["rl_adaloss_b0_remaining"])
    assert after == before


def test_device_path_matches_the_host_path() -> None:
    """The tensor (accelerator) code path, run on the CPU, gives the same accumulators as the float path."""
    losses = [5.0, 0.0, 9.0, 3.0, 40.0, 0.5]
    w1 = torch.nn.Parameter(torch.tensor([0.0], dtype=torch.float64))
    host = AdamLossRel([w1], lr=0.01, alpha=10.0, ref_steps=3, b0_half_life=2.0, c=1.0)
    expected = _step_losses(host, w1, losses)
    w2 = torch.nn.Parameter(torch.tensor([0.0], dtype=torch.float64))
    dev = AdamLossRel([w2], lr=0.01, alpha=10.0, ref_steps=3, b0_half_life=2.0, c=1.0)
    dev._device_mode = lambda device: True  # type: ignore[method-assign]  # the test seam: device arithmetic on the CPU
    got = _step_losses(dev, w2, losses)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert isinstance(dev.param_groups[0]["rl_adaloss_ref_sum"], torch.Tensor)
    np.testing.assert_allclose(dev.reference_losses(), host.reference_losses(), rtol=1e-12)


# ---------------------------------------------------------------------------------------------------- state


def _run(opt: AdamLossRel, net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> None:
    for _ in range(steps):
        opt.zero_grad()
        ((net(x) - y) ** 2).mean().backward()
        opt.step()


def test_state_dict_round_trip() -> None:
    """save after 3 steps (inside the reference window), load into a fresh optimizer, continue: identical runs."""
    net, x, y = _problem()
    opt = AdamLossRel(net.parameters(), lr=0.05, alpha=50.0, ref_steps=5, b0_half_life=4.0)
    _run(opt, net, x, y, 3)
    buf = io.BytesIO()
    torch.save({"net": net.state_dict(), "opt": opt.state_dict()}, buf)
    twin = copy.deepcopy(net)
    twin_opt = AdamLossRel(twin.parameters(), lr=0.05)  # defaults differ: the state dict brings the group's values
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    twin.load_state_dict(saved["net"])
    twin_opt.load_state_dict(saved["opt"])
    assert twin_opt.param_groups[0]["rl_adaloss_ref_steps"] == 5
    assert twin_opt.param_groups[0]["b0_half_life"] == 4.0
    _run(opt, net, x, y, 6)
    _run(twin_opt, twin, x, y, 6)
    assert twin_opt.accumulators() == opt.accumulators()
    assert twin_opt.reference_losses() == opt.reference_losses()
    for p, q in zip(net.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_deepcopy_and_param_group_overrides() -> None:
    a = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    b = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    opt = AdamLossRel([{"params": [a]}, {"params": [b], "ref_steps": 1, "b0_half_life": math.inf}], lr=0.1)
    assert opt.param_groups[0]["rl_adaloss_ref_steps"] == 32
    assert opt.param_groups[1]["rl_adaloss_ref_steps"] == 1
    assert "ref_steps" not in opt.param_groups[1]
    clone = copy.deepcopy(opt)
    assert clone.param_groups[1]["b0_half_life"] == math.inf


# ---------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(ref_steps=0), "ref_steps"),
        (dict(ref_steps=-3), "ref_steps"),
        (dict(ref_steps=2.5), "ref_steps"),
        (dict(ref_steps=True), "ref_steps"),
        (dict(b0_half_life=0.0), "b0_half_life"),
        (dict(b0_half_life=-1.0), "b0_half_life"),
        (dict(b0_half_life=math.nan), "b0_half_life"),
        (dict(b0_half_life=None), "b0_half_life"),
        (dict(alpha=-1.0), "alpha"),
        (dict(alpha=math.inf), "alpha"),
        (dict(b0=0.0), "b0"),
        (dict(lr=-1e-3), "learning rate"),
        (dict(betas=(0.9, 1.0)), "beta"),
        (dict(eps=-1.0), "epsilon"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, object], match: str) -> None:
    w = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(ValueError, match=match):
        AdamLossRel([w], **kwargs)  # type: ignore[arg-type]


def test_invalid_param_group_value() -> None:
    w = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(ValueError, match="ref_steps"):
        AdamLossRel([{"params": [w], "ref_steps": 0}])


# ---------------------------------------------------------------------------------------------------- CUDA


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("ref_steps", [2, 64])  # after the reference froze / while it is still learning
def test_cuda_step_has_no_host_sync(ref_steps: int) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1)).cuda()
    opt = AdamLossRel(model.parameters(), lr=1e-2, ref_steps=ref_steps, b0_half_life=4.0)
    x = torch.randn(64, 8, device="cuda")
    for _ in range(3):  # lazy state init outside the checked region
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert opt.param_groups[0]["rl_adaloss_ref_sum"].device.type == "cuda"
    assert all(math.isfinite(v) and v > 0 for v in opt.effective_lrs())
