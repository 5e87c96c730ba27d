"""Optimizer semantics: hand-computed steps, descent, validation, state_dict, foreach parity."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch

from rl_adaloss import AdaGradNorm, AdaLoss, AdamLoss, AdamSqrt, SGDDecaySqrt
from rl_adaloss.optim import AdamLossFade
from rl_adaloss.optim._base import ACCUMULATOR, NONFINITE_SKIPS

ALL = [AdaLoss, AdamLoss, AdaGradNorm, AdamSqrt, SGDDecaySqrt, AdamLossFade]
ADAM_LIKE = [AdamLoss, AdamSqrt]


def _param(*values: float) -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.tensor(values, dtype=torch.float64))


# ---------------------------------------------------------------- (1) hand-computed steps
def test_adaloss_two_steps_by_hand():
    w = _param(1.0, -2.0)
    opt = AdaLoss([w], lr=0.5, b0=2.0, alpha=0.5, c=1.0)
    # step 1: f = w0^2 + w1^2 = 5, grad = (2, -4); b^2 = 4 + 0.5*|5-1| = 6
    loss = (w**2).sum()
    loss.backward()
    opt.step()
    b = math.sqrt(6.0)
    expected = torch.tensor([1.0 - 0.5 / b * 2.0, -2.0 + 0.5 / b * 4.0], dtype=torch.float64)
    torch.testing.assert_close(w.detach(), expected)
    # step 2
    w.grad = None
    f2 = float((expected**2).sum())
    (w**2).sum().backward()
    opt.step()
    b2 = math.sqrt(6.0 + 0.5 * abs(f2 - 1.0))
    expected = expected - 0.5 / b2 * 2 * expected
    torch.testing.assert_close(w.detach(), expected)
    assert opt.accumulators() == [pytest.approx(6.0 + 0.5 * abs(f2 - 1.0))]
    assert opt.effective_lrs() == [pytest.approx(0.5 / b2)]


def test_adagrad_norm_uses_whole_group_norm():
    w1, w2 = _param(3.0), _param(4.0, 0.0)
    opt = AdaGradNorm([w1, w2], lr=2.0, b0=1.0)
    w1.grad = torch.tensor([3.0], dtype=torch.float64)
    w2.grad = torch.tensor([4.0, 12.0], dtype=torch.float64)
    opt.step()
    b = math.sqrt(1.0 + 9 + 16 + 144)  # 13.04
    torch.testing.assert_close(w1.detach(), torch.tensor([3.0 - 2.0 / b * 3.0], dtype=torch.float64))
    torch.testing.assert_close(w2.detach(), torch.tensor([4.0 - 2.0 / b * 4.0, -2.0 / b * 12.0], dtype=torch.float64))
    assert opt.accumulators() == [pytest.approx(170.0)]


def test_sgd_decay_sqrt_by_hand():
    w = _param(1.0)
    opt = SGDDecaySqrt([w], lr=1.0, b0=2.0)
    for t in (1, 2, 3):
        w.grad = torch.ones(1, dtype=torch.float64)
        before = w.item()
        opt.step()
        assert w.item() == pytest.approx(before - 1.0 / math.sqrt(4.0 + t))


def _adam_reference(grads, lrs, betas=(0.9, 0.999), eps=1e-8, w0=1.0):
    """Plain-Python Adam with a given step size per step."""
    w, m, v = w0, 0.0, 0.0
    out = []
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        mhat, vhat = m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)
        w = w - lr * mhat / (math.sqrt(vhat) + eps)
        out.append(w)
    return out


def test_adamloss_by_hand():
    w = _param(1.0)
    opt = AdamLoss([w], lr=0.1, alpha=2.0, c=0.5)  # b0 = 1/0.1^2 = 100
    b, grads, lrs, values = 100.0, [], [], []
    for _ in range(3):
        opt.zero_grad()
        loss = (w**2).sum()  # f = w^2, grad = 2w
        loss.backward()
        f, g = loss.item(), w.grad.item()
        b += 2.0 * abs(f - 0.5)
        grads.append(g)
        lrs.append(1 / math.sqrt(b))
        expected = _adam_reference(grads, lrs)[-1]
        opt.step()
        values.append(w.item())
        assert w.item() == pytest.approx(expected, rel=1e-12)
    assert opt.accumulators() == [pytest.approx(b)]
    assert opt.effective_lrs() == [pytest.approx(1 / math.sqrt(b))]


def test_adamsqrt_by_hand():
    w = _param(1.0)
    opt = AdamSqrt([w], lr=0.5)  # b0 = 4
    grads = [1.0, -2.0, 0.5]
    for t, g in enumerate(grads, start=1):
        w.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
        expected = _adam_reference(grads[:t], [1 / math.sqrt(4 + k) for k in range(1, t + 1)])[-1]
        assert w.item() == pytest.approx(expected, rel=1e-12)


def test_adamloss_first_step_equals_adam_when_losses_are_negligible():
    torch.manual_seed(0)
    net = torch.nn.Linear(5, 3)
    ref = copy.deepcopy(net)
    opt = AdamLoss(net.parameters(), lr=1e-3, alpha=1e-12)
    ref_opt = torch.optim.Adam(ref.parameters(), lr=1e-3)
    x = torch.randn(8, 5)
    for _ in range(5):
        for model, o in ((net, opt), (ref, ref_opt)):
            o.zero_grad()
            model(x).pow(2).mean().backward()
            o.step()
    for p, q in zip(net.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q)


def test_schedule_multiplies_the_step():
    """SB3 rewrites group['lr'] every train(): the step must scale by lr_t/lr_0, not restart from 1/lr_t^2."""
    w = _param(1.0)
    opt = AdamLoss([w], lr=0.1)
    opt.param_groups[0]["lr"] = 0.05
    (w**2).sum().backward()
    opt.step()
    b = 100.0 + 1.0
    assert opt.effective_lrs() == [pytest.approx(0.5 / math.sqrt(b))]
    assert w.item() == pytest.approx(1.0 - 0.5 / math.sqrt(b), rel=1e-9)
    sgd_like = AdaLoss([_param(1.0)], lr=0.3)
    sgd_like.param_groups[0]["lr"] = 0.6
    assert sgd_like.effective_lrs() == [pytest.approx(0.6)]


def test_float64_accumulation_keeps_tiny_losses():
    w = torch.nn.Parameter(torch.ones(3))  # float32 parameters
    opt = AdamLoss([w], lr=1e-4)  # b0 = 1e8: float32 has a spacing of 8 there
    w.grad = torch.zeros_like(w)
    for _ in range(1000):
        opt.step(loss=1e-3)
    assert isinstance(opt.param_groups[0][ACCUMULATOR], float)  # float64 on the host
    assert opt.accumulators()[0] - 1e8 == pytest.approx(1.0, rel=1e-4)  # float64 rounding at 1e8; float32 gives 0


def test_param_groups_keep_their_own_accumulators():
    a, b = _param(1.0), _param(2.0)
    opt = AdamLoss([{"params": [a]}, {"params": [b], "lr": 0.5, "alpha": 3.0}], lr=0.1)
    (a**2 + b**2).sum().backward()
    opt.step()  # f = 5
    assert opt.accumulators() == [pytest.approx(100 + 5), pytest.approx(4 + 15)]
    assert opt.effective_lrs() == [pytest.approx(1 / math.sqrt(105)), pytest.approx(1 / math.sqrt(19))]
    c = _param(3.0)
    opt.add_param_group({"params": [c], "b0": 9.0})
    assert opt.accumulators()[2] == 9.0


def test_lr_zero_construction_does_not_crash_and_starts_lazily():
    """SB3's Policy.load rebuilds optimizers with lr=0.0."""
    w = _param(1.0)
    opt = AdamLoss([w], lr=0.0)
    assert opt.effective_lrs() == [0.0]
    w.grad = torch.ones(1, dtype=torch.float64)
    opt.step(loss=1.0)
    assert w.item() == 1.0  # lr = 0: nothing moves
    opt.param_groups[0]["lr"] = 0.1  # SB3 sets the real lr at train()
    opt.step(loss=1.0)
    assert opt.accumulators() == [pytest.approx(101.0)]
    assert w.item() < 1.0


def test_nonfinite_loss_is_skipped_and_counted():
    w = _param(1.0)
    opt = AdaLoss([w], lr=0.1)
    w.grad = torch.ones(1, dtype=torch.float64)
    opt.step(loss=float("nan"))
    opt.step(loss=torch.tensor(float("inf")))
    opt.step(loss=2.0)
    assert opt.accumulators() == [3.0]
    assert opt.param_groups[0][NONFINITE_SKIPS] == 2


# ---------------------------------------------------------------- (2) descent and validation
@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("lr", [1e-2, 1.0, 100.0])
def test_descends_on_quadratic(cls, lr, quadratic):
    if cls is SGDDecaySqrt and lr == 100.0:
        pytest.skip("SGD-DecaySqrt is not adaptive: lr=100 diverges on this problem, as the paper's Figure 1 shows")
    params, loss_fn = quadratic()
    kwargs = {"lr": lr}
    start = loss_fn().item()
    opt = cls(params, **kwargs)
    for _ in range(300):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    final = loss_fn().item()
    assert math.isfinite(final)
    assert final < start


@pytest.mark.parametrize("b0", [0.01, 1.0, 100.0])
def test_adagrad_norm_rosenbrock_robust_to_b0(b0):
    cls = AdaGradNorm
    xy = torch.nn.Parameter(torch.tensor([-1.5, 2.0], dtype=torch.float64))
    opt = cls([xy], lr=1.0, b0=b0)

    def rosen():
        return (1 - xy[0]) ** 2 + 100 * (xy[1] - xy[0] ** 2) ** 2

    start = rosen().item()
    for _ in range(3000):
        opt.zero_grad()
        rosen().backward()
        opt.step()
    assert rosen().item() < start * 0.05


@pytest.mark.parametrize(
    "cls,kwargs,match",
    [
        (AdaLoss, {"lr": -1.0}, "Invalid learning rate: -1.0"),
        (AdamLoss, {"lr": float("nan")}, "Invalid learning rate: nan"),
        (AdaLoss, {"b0": 0.0}, "Invalid b0 value: 0.0"),
        (AdamLoss, {"b0": -2.0}, "Invalid b0 value: -2.0"),
        (AdamSqrt, {"b0": float("inf")}, "Invalid b0 value: inf"),
        (AdaLoss, {"alpha": -0.1}, "Invalid alpha value: -0.1"),
        (AdamLoss, {"alpha": float("nan")}, "Invalid alpha value: nan"),
        (AdamLoss, {"c": float("nan")}, "Invalid c value: nan"),
        (AdamLoss, {"betas": (1.0, 0.999)}, "Invalid beta parameter at index 0: 1.0"),
        (AdamSqrt, {"betas": (0.9, -0.1)}, "Invalid beta parameter at index 1: -0.1"),
        (AdamLoss, {"eps": -1e-8}, "Invalid epsilon value: -1e-08"),
        (AdaGradNorm, {"weight_decay": -1.0}, "Invalid weight_decay value: -1.0"),
        (SGDDecaySqrt, {"b0": float("nan")}, "Invalid b0 value: nan"),
    ],
)
def test_invalid_arguments(cls, kwargs, match):
    with pytest.raises(ValueError, match=match.replace("(", r"\(").replace(")", r"\)")):
        cls([_param(1.0)], **kwargs)


def test_invalid_group_value_is_named():
    with pytest.raises(ValueError, match="Invalid b0 value: -1"):
        AdamLoss([{"params": [_param(1.0)], "b0": -1}], lr=0.1)


# ---------------------------------------------------------------- (3) state_dict, deepcopy
def _train(model, opt, x, steps):
    for _ in range(steps):
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("cls", ALL)
def test_state_dict_roundtrip_lockstep(cls):
    torch.manual_seed(0)
    x = torch.randn(16, 4)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    opt = cls(model.parameters(), lr=0.05)
    _train(model, opt, x, 5)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    clone = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    clone.load_state_dict(saved["model"])
    clone_opt = cls(clone.parameters(), lr=0.05)
    clone_opt.load_state_dict(saved["opt"])
    assert clone_opt.accumulators() == opt.accumulators()
    assert isinstance(clone_opt.param_groups[0][ACCUMULATOR], float)
    for _ in range(20):
        _train(model, opt, x, 1)
        _train(clone, clone_opt, x, 1)
        for p, q in zip(model.parameters(), clone.parameters()):
            assert torch.equal(p, q)
    assert clone_opt.effective_lrs() == opt.effective_lrs()


@pytest.mark.parametrize("cls", ALL)
def test_deepcopy_is_independent_and_fed(cls):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = cls(model.parameters(), lr=0.1)
    x = torch.randn(4, 3)
    _train(model, opt, x, 2)
    before = opt.accumulators()
    opt2 = copy.deepcopy(opt)
    # the deep copy owns copies of the parameters: train the copy through its own params
    params2 = opt2.param_groups[0]["params"]
    for _ in range(3):
        opt2.zero_grad()
        (params2[0].sum() ** 2 + params2[1].sum() ** 2).backward()
        opt2.step()
    assert opt.accumulators() == before
    assert opt2.accumulators() != before


# ---------------------------------------------------------------- (4) foreach parity
@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_foreach_matches_single_tensor(cls, weight_decay):
    torch.manual_seed(0)
    x = torch.randn(32, 6)
    models = [torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    opts = [cls(m.parameters(), lr=0.05, weight_decay=weight_decay, foreach=fe) for m, fe in zip(models, (False, True))]
    for _ in range(25):
        for m, o in zip(models, opts):
            _train(m, o, x, 1)
    for p, q in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    assert opts[0].accumulators() == pytest.approx(opts[1].accumulators())


# ---------------------------------------------------------------- (6) no host sync on CUDA
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("foreach", [False, True])
def test_cuda_step_has_no_host_sync(cls, foreach):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1)).cuda()
    opt = cls(model.parameters(), lr=1e-2, foreach=foreach)
    x = torch.randn(64, 8, device="cuda")
    _train(model, opt, x, 2)  # lazy state init outside the checked region
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            opt.zero_grad()
            loss = model(x).pow(2).mean()
            loss.backward()
            opt.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(math.isfinite(v) for v in opt.effective_lrs())
    assert opt.param_groups[0][ACCUMULATOR].device.type == "cuda"
