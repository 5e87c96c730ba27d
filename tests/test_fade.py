"""The fading b0 (rl_adaloss.optim.fade) of AdamLossFade and AdamLossRel: schedule, validation, skip rule, old state dicts.

Torch only (no SB3): AdamLossFade's SB3 behaviour is in tests/test_sb3.py.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch

from rl_adaloss.optim import AdamLoss, AdamLossFade, AdamLossRel
from rl_adaloss.optim._base import ACCUMULATOR, NONFINITE_SKIPS
from rl_adaloss.optim.adamloss_fade import B0_REMAINING
from rl_adaloss.optim.fade import HALF_LIFE, check_half_life

FADING = [AdamLossFade, AdamLossRel]
FIXTURES = Path(__file__).with_name("fixtures") / "fade_state_dicts.pt"


def _param(*values: float) -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.tensor(values, dtype=torch.float64))


def _fixture_maker():
    """tests/fixtures/make_fade_state_dicts.py, the script that wrote the fixtures (its loss sequence and loop)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_fade_state_dicts", FIXTURES.with_name("make_fade_state_dicts.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _device_mode(opt: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The test seam: run the accelerator's arithmetic (device tensors, masked skips) on the CPU."""
    opt._device_mode = lambda device: True  # type: ignore[method-assign]
    return opt


# ---------------------------------------------------------------- AdamLossFade by hand
def test_adamloss_fade_matches_hand_schedule_and_adam():
    """b_t = b0 2^(-t/h) + sum alpha|f|, and the update is Adam's with lr = 1/sqrt(b_t) at every step."""
    torch.manual_seed(0)
    w, ref = _param(0.5, -1.0, 2.0), _param(0.5, -1.0, 2.0)
    opt = AdamLossFade([w], lr=1e-3, b0_half_life=7.0, alpha=0.5, c=1.0)
    adam = torch.optim.Adam([ref], lr=1.0)
    b0, total = 1e6, 0.0
    for t in range(1, 61):
        f = float(torch.rand(()) * 10)
        grad = torch.randn(3, dtype=torch.float64)
        w.grad, ref.grad = grad.clone(), grad.clone()
        total += 0.5 * abs(f - 1.0)
        expected_b = b0 * 2.0 ** (-t / 7.0) + total
        adam.param_groups[0]["lr"] = expected_b**-0.5
        opt.step(loss=f)
        adam.step()
        assert opt.accumulators()[0] == pytest.approx(expected_b, rel=1e-12)
        torch.testing.assert_close(w, ref, rtol=1e-12, atol=1e-14)


def test_adamloss_fade_lets_a_too_small_step_grow_adamloss_cannot():
    fade_w, plain_w = _param(1.0), _param(1.0)
    fade = AdamLossFade([fade_w], lr=1e-5, b0_half_life=10.0)
    plain = AdamLoss([plain_w], lr=1e-5)
    for _ in range(400):
        for w, opt in ((fade_w, fade), (plain_w, plain)):
            w.grad = torch.ones(1, dtype=torch.float64)
            opt.step(loss=100.0)
    assert plain.effective_lrs()[0] <= 1e-5
    # b0 = 1e10 has faded (2^-40) and only the losses remain: 1 / sqrt(400 * 100)
    assert fade.effective_lrs()[0] == pytest.approx(1 / math.sqrt(4e4), rel=1e-3)
    assert 1.0 - fade_w.item() > 100 * (1.0 - plain_w.item())


def test_adamloss_fade_with_infinite_half_life_is_adamloss():
    torch.manual_seed(0)
    a, b = _param(1.0, 2.0), _param(1.0, 2.0)
    fade, plain = AdamLossFade([a], lr=0.1, b0_half_life=math.inf), AdamLoss([b], lr=0.1)
    for _ in range(20):
        grad, f = torch.randn(2, dtype=torch.float64), float(torch.rand(()))
        a.grad, b.grad = grad.clone(), grad.clone()
        fade.step(loss=f)
        plain.step(loss=f)
    assert fade.accumulators() == plain.accumulators()  # h = inf is AdamLoss, bit for bit
    torch.testing.assert_close(a, b, rtol=0.0, atol=0.0)


def test_adamloss_fade_skipped_loss_fades_nothing_and_lazy_start_uses_first_lr():
    w = _param(1.0)
    opt = AdamLossFade([w], lr=0.0, b0_half_life=1.0)  # SB3's Policy.load: lr=0 first
    w.grad = torch.ones(1, dtype=torch.float64)
    opt.step(loss=1.0)
    assert w.item() == 1.0 and opt.param_groups[0][B0_REMAINING] is None
    opt.param_groups[0]["lr"] = 0.1  # b0 = 100
    opt.step(loss=float("nan"))
    opt.step(loss=4.0)
    assert opt.param_groups[0][NONFINITE_SKIPS] == 1
    assert opt.param_groups[0][B0_REMAINING] == pytest.approx(50.0)  # one step taken: 100 / 2
    assert opt.accumulators() == [pytest.approx(54.0)]


# ---------------------------------------------------------------- one mechanism: key, validator, skip rule
@pytest.mark.parametrize("cls", FADING)
def test_one_key_and_one_validator(cls):
    opt = cls([_param(1.0)], lr=0.1, b0_half_life=4.0)
    assert opt.param_groups[0][HALF_LIFE] == 4.0 and opt.param_groups[0][B0_REMAINING] is None
    assert cls([_param(1.0)], lr=0.1, b0_half_life=math.inf).param_groups[0][HALF_LIFE] == math.inf
    for bad in (0.0, -1.0, math.nan, -math.inf, None, True, "4"):
        with pytest.raises(ValueError, match=f"Invalid b0_half_life value: {bad}"):
            cls([_param(1.0)], lr=0.1, b0_half_life=bad)
        with pytest.raises(ValueError, match="Invalid b0_half_life value"):
            cls([{"params": [_param(1.0)], "b0_half_life": bad}], lr=0.1)
    check_half_life(math.inf)


@pytest.mark.parametrize("cls", FADING)
@pytest.mark.parametrize("device", [False, True])
def test_a_skipped_step_fades_nothing(cls, device):
    """A non-finite loss leaves accumulator, remaining b0, moments and parameters as if the step never happened."""
    kwargs = dict(lr=0.1, b0_half_life=2.0, alpha=1.0)
    w, ref = _param(1.0, -1.0), _param(1.0, -1.0)
    opt, twin = cls([w], **kwargs), cls([ref], **kwargs)
    if device:
        _device_mode(opt), _device_mode(twin)
    for t, f in enumerate([3.0, 1.0, float("nan"), 2.0, float("inf"), 0.5]):
        w.grad = torch.tensor([0.3, -0.2 + t], dtype=torch.float64)
        opt.step(loss=f)
        if math.isfinite(f):
            ref.grad = w.grad.clone()
            twin.step(loss=f)
    torch.testing.assert_close(w, ref, rtol=0.0, atol=0.0)
    assert opt.accumulators() == twin.accumulators()
    assert float(opt.param_groups[0][B0_REMAINING]) == float(twin.param_groups[0][B0_REMAINING])
    assert opt.nonfinite_skips() == [2] and twin.nonfinite_skips() == [0]


@pytest.mark.parametrize("cls", FADING)
def test_a_step_the_grad_scaler_skips_fades_nothing(cls):
    """Fused: GradScaler hands found_inf to step(); that step fades nothing and is not counted as non-finite."""
    w = _param(1.0, 2.0).float()
    w = torch.nn.Parameter(w.detach())
    opt = cls([w], lr=0.1, b0_half_life=2.0, fused=True)
    w.grad = torch.ones(2)
    opt.step(loss=1.0)
    before = (opt.accumulators(), float(opt.param_groups[0][B0_REMAINING]), w.detach().clone())
    opt.grad_scale, opt.found_inf = torch.tensor(1.0), torch.tensor(1.0)
    opt.step(loss=1.0)
    assert (opt.accumulators(), float(opt.param_groups[0][B0_REMAINING])) == before[:2]
    torch.testing.assert_close(w.detach(), before[2], rtol=0.0, atol=0.0)
    assert opt.nonfinite_skips() == [0]


@pytest.mark.parametrize("cls", FADING)
def test_device_mode_fades_as_the_host(cls):
    kwargs = dict(lr=0.05, b0_half_life=3.0)
    a, b = _param(0.5, -1.0), _param(0.5, -1.0)
    host, dev = cls([a], **kwargs), _device_mode(cls([b], **kwargs))
    for t in range(10):
        g = torch.tensor([0.1 * t, -0.3], dtype=torch.float64)
        a.grad, b.grad = g.clone(), g.clone()
        host.step(loss=1.0 + t)
        dev.step(loss=1.0 + t)
    assert isinstance(dev.param_groups[0][B0_REMAINING], torch.Tensor)
    assert isinstance(dev.param_groups[0][ACCUMULATOR], torch.Tensor)
    assert float(dev.param_groups[0][B0_REMAINING]) == pytest.approx(host.param_groups[0][B0_REMAINING], rel=1e-12)
    assert dev.accumulators() == pytest.approx(host.accumulators(), rel=1e-12)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)  # the fused kernel takes a device step size as float32


# ---------------------------------------------------------------- state dicts, today's and older
@pytest.mark.parametrize("case", ["fade/host", "fade/device", "rel/host", "rel/device", "rel_inf/host", "rel_inf/device"])
def test_state_dicts_of_the_older_keys_load_and_continue_identically(case):
    """State dicts written before the fade was shared (cd49ae1: Fade's ``b0_half_life``, Rel's
    ``rl_adaloss_b0_half_life``, remaining b0 as a float or a tensor) load, and the run continues bit for bit."""
    maker = _fixture_maker()
    fixture = torch.load(FIXTURES, weights_only=False)[case]
    cls = AdamLossFade if case.startswith("fade") else AdamLossRel
    w = torch.nn.Parameter(fixture["w"].clone())
    opt = cls([w], **fixture["kwargs"])
    if case.endswith("device"):
        _device_mode(opt)
    opt.load_state_dict(copy.deepcopy(fixture["state_dict"]))
    group = opt.param_groups[0]
    assert group[HALF_LIFE] == fixture["kwargs"]["b0_half_life"] and "rl_adaloss_b0_half_life" not in group
    maker._run(opt, w, maker.LOSSES[::-1])
    torch.testing.assert_close(w.detach(), fixture["w_after"], rtol=0.0, atol=0.0)


def test_rl_adaloss_0_1_0_keys_load():
    w = _param(1.0)
    opt = AdamLossFade([w], lr=0.1, b0_half_life=2.0)
    state = opt.state_dict()
    group = state["param_groups"][0]
    for old, new in (("accumulator", ACCUMULATOR), ("nonfinite_skips", NONFINITE_SKIPS), ("b0_remaining", B0_REMAINING)):
        group[old] = group.pop(new)
    group["accumulator"], group["b0_remaining"] = 77.0, 25.0
    opt.load_state_dict(state)
    assert opt.accumulators() == [77.0] and opt.param_groups[0][B0_REMAINING] == 25.0
    assert "b0_remaining" not in opt.param_groups[0]


@pytest.mark.parametrize("cls", FADING)
def test_an_adamloss_state_dict_loads_into_a_fading_optimizer(cls):
    w = _param(1.0, 2.0)
    plain = AdamLoss([w], lr=0.1)
    w.grad = torch.ones(2, dtype=torch.float64)
    plain.step(loss=1.0)
    opt = cls([w], lr=0.1, b0_half_life=5.0)
    opt.load_state_dict(plain.state_dict())
    assert opt.param_groups[0][HALF_LIFE] == 5.0
    opt.step(loss=1.0)
    assert math.isfinite(opt.accumulators()[0]) and opt.param_groups[0][B0_REMAINING] < 100.0
