"""Issue 14: the fused implementation of the Adam family, parity with foreach/loop and torch's fused Adam."""

from __future__ import annotations

import copy

import pytest
import torch

from rl_adaloss import AdaLoss, AdamLoss, AdamSqrt
from rl_adaloss.optim import AdamLossFade

IMPLS = {"loop": dict(foreach=False), "foreach": dict(foreach=True), "fused": dict(fused=True)}


def _net(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 32), torch.nn.Tanh(), torch.nn.Linear(32, 2)).to(dtype)


def _train(net, opt, steps, seed=0, nan_at=()):
    g = torch.Generator().manual_seed(seed)
    for t in range(steps):
        x = torch.randn(16, 5, generator=g, dtype=next(net.parameters()).dtype)
        opt.zero_grad()
        loss = net(x).pow(2).mean() * 10
        if t in nan_at:
            loss = loss * float("nan")
        loss.backward()
        opt.step()


@pytest.mark.parametrize("cls", [AdamLoss, AdamSqrt, AdamLossFade])
@pytest.mark.parametrize("impl", ["foreach", "fused"])
def test_implementations_agree_with_the_loop(cls, impl):
    """float64: the three implementations take the same steps, non-finite losses and weight decay included."""
    nets = [_net(dtype=torch.float64) for _ in range(2)]
    kw = dict(lr=3e-2, weight_decay=0.01)
    ref, opt = cls(nets[0].parameters(), **kw, **IMPLS["loop"]), cls(nets[1].parameters(), **kw, **IMPLS[impl])
    nan_at = () if cls is AdamSqrt else (3, 7)
    _train(nets[0], ref, 15, nan_at=nan_at)
    _train(nets[1], opt, 15, nan_at=nan_at)
    assert opt.accumulators() == pytest.approx(ref.accumulators(), rel=1e-12)
    assert opt.nonfinite_skips() == ref.nonfinite_skips()
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_fused_matches_torch_fused_adam_at_negligible_alpha():
    nets = [_net(), _net()]
    ours = AdamLoss(nets[0].parameters(), lr=1e-3, alpha=1e-12, fused=True)
    adam = torch.optim.Adam(nets[1].parameters(), lr=1e-3, fused=True)
    _train(nets[0], ours, 20)
    _train(nets[1], adam, 20)
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)


def test_default_is_fused_on_cpu_and_explicit_foreach_is_respected():
    net = _net()
    default = AdamLoss(net.parameters())
    assert default._use_fused(default.param_groups[0], 0)
    for kw in (dict(foreach=True), dict(foreach=False), dict(fused=False)):
        opt = AdamLoss(net.parameters(), **kw)
        assert not opt._use_fused(opt.param_groups[0], 0) and not opt._step_supports_amp_scaling


@pytest.mark.parametrize("order", [("fused", "foreach", "loop", "fused"), ("loop", "fused", "foreach", "torch")])
def test_state_dict_moves_between_implementations(order):
    """A state saved by one implementation loads into the others (and into torch.optim.Adam) and training goes on
    exactly as an uninterrupted run."""
    nets = [_net(dtype=torch.float64), _net(dtype=torch.float64)]
    uninterrupted = AdamLoss(nets[0].parameters(), lr=1e-2, alpha=0.0)
    _train(nets[0], uninterrupted, 4 * len(order))
    state = None
    for i, impl in enumerate(order):
        if impl == "torch":
            opt = torch.optim.Adam(nets[1].parameters(), lr=1e-2)
        else:
            opt = AdamLoss(nets[1].parameters(), lr=1e-2, alpha=0.0, **IMPLS[impl])
        if state is not None:
            opt.load_state_dict(state)
        _train(nets[1], opt, 4, seed=0) if i == 0 else _train_from(nets[1], opt, i)
        state = copy.deepcopy(opt.state_dict())
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def _train_from(net, opt, chunk):
    """Steps 4*chunk .. 4*chunk+3 of _train's data stream."""
    g = torch.Generator().manual_seed(0)
    for t in range(4 * chunk + 4):
        x = torch.randn(16, 5, generator=g, dtype=next(net.parameters()).dtype)
        if t < 4 * chunk:
            continue
        opt.zero_grad()
        (net(x).pow(2).mean() * 10).backward()
        opt.step()


def test_fused_true_with_unsupported_parameters_or_foreach_is_an_error():
    with pytest.raises(ValueError, match="fused=True with foreach=True"):
        AdamLoss(_net().parameters(), fused=True, foreach=True)
    bad = torch.nn.Parameter(torch.zeros(3, dtype=torch.complex64))
    with pytest.raises(ValueError, match="Invalid fused=True"):
        AdamLoss([bad], fused=True)


# ---------------------------------------------------------------- torch.compile
def _compiled_vs_eager(cls, kw, backend, steps=20, whole_step=False):
    """Train two copies for ``steps`` steps, one with ``opt.step`` (or the whole train step) compiled."""
    from torch._dynamo.testing import CompileCounterWithBackend

    torch._dynamo.reset()
    nets = [_net(), _net()]
    opts = [cls(n.parameters(), **kw) for n in nets]
    counter = CompileCounterWithBackend(backend)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(16, 5, generator=g), torch.randn(16, 2, generator=g)) for _ in range(steps)]

    def train_step(net, opt, x, y):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(net(x), y)
        loss.backward()
        opt.step()
        return loss

    compiled_step = torch.compile(opts[1].step, backend=counter, fullgraph=True)  # fullgraph: no graph break inside
    compiled_train = torch.compile(train_step, backend=counter)
    frames = []
    for x, y in batches:
        train_step(nets[0], opts[0], x, y)
        if whole_step:
            compiled_train(nets[1], opts[1], x, y)
        else:
            opts[1].zero_grad()
            torch.nn.functional.mse_loss(nets[1](x), y).backward()
            compiled_step()
        frames.append(counter.frame_count)
    return nets, opts, frames


@pytest.mark.parametrize(
    "cls, kw",
    [
        (AdamLoss, dict(lr=1e-2)),
        (AdamLoss, dict(lr=1e-2, foreach=True)),
        pytest.param(AdamLoss, dict(lr=1e-2, foreach=False), marks=pytest.mark.slow),
        pytest.param(AdamSqrt, dict(lr=1e-2), marks=pytest.mark.slow),
        (AdamLossFade, dict(lr=1e-2, b0_half_life=5.0)),
        (AdaLoss, dict(lr=0.1)),
    ],
)
def test_compiled_step_has_no_graph_break_and_no_recompile_after_two(cls, kw):
    nets, opts, frames = _compiled_vs_eager(cls, kw, backend="aot_eager")  # AOTAutograd: fake kernels needed
    assert frames[-1] == frames[1], frames  # compiled at step 1 (no state yet) and step 2 (with state); never again
    assert opts[1].accumulators() == pytest.approx(opts[0].accumulators(), rel=1e-7)
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):  # float32 device arithmetic vs the host path
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_compiled_training_step_with_inductor_matches_eager():
    """The real compiler on a whole training step (graph breaks at backward(), as for any optimizer)."""
    nets, opts, frames = _compiled_vs_eager(AdamLoss, dict(lr=1e-2), backend="inductor", steps=20, whole_step=True)
    assert frames[-1] == frames[1], frames  # nothing compiles after the first two steps
    assert opts[1].accumulators() == pytest.approx(opts[0].accumulators(), rel=1e-9)
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("impl", list(IMPLS))
def test_parameters_that_get_gradients_late_and_reloads_are_handled(impl):
    """Step-kind checks are cached per group: a parameter whose first gradient comes late, and a state dict loaded
    from another implementation mid-run, must still work."""
    a, b = torch.nn.Linear(3, 3), torch.nn.Linear(3, 1)
    opt = AdamLoss([*a.parameters(), *b.parameters()], lr=1e-2, **IMPLS[impl])
    x = torch.randn(8, 3)
    for _ in range(3):
        opt.zero_grad()
        a(x).pow(2).mean().backward()  # b has no gradient yet
        opt.step()
    for _ in range(3):
        opt.zero_grad()
        b(a(x)).pow(2).mean().backward()
        opt.step()
    assert int(opt.state[b.weight]["step"]) == 3 and int(opt.state[a.weight]["step"]) == 6
    other = AdamLoss([*a.parameters(), *b.parameters()], lr=1e-2, **IMPLS["fused" if impl != "fused" else "loop"])
    other.load_state_dict(copy.deepcopy(opt.state_dict()))
    opt.load_state_dict(copy.deepcopy(other.state_dict()))
    opt.zero_grad()
    b(a(x)).pow(2).mean().backward()
    opt.step()
    assert int(opt.state[b.weight]["step"]) == 4


def test_compiled_step_under_an_lr_schedule_does_not_recompile_when_the_lr_changes():
    """The scheduler wraps opt.step in a function dynamo will not trace (as for torch.optim.Adam), so the step is
    compiled without fullgraph; the lr changes at every step and nothing recompiles after the first two."""
    from torch._dynamo.testing import CompileCounterWithBackend

    torch._dynamo.reset()
    net = _net()
    opt = AdamLoss(net.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1 / (1 + t))
    counter = CompileCounterWithBackend("aot_eager")
    step = torch.compile(lambda: opt.step(), backend=counter)
    x, y = torch.randn(16, 5), torch.randn(16, 2)
    frames, lrs = [], []
    for _ in range(10):
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        step()
        sched.step()
        frames.append(counter.frame_count)
        lrs.append(opt.effective_lrs()[0])
    assert frames[-1] == frames[1], frames
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] < lrs[0] / 5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("cls", [AdamLoss, AdamSqrt, AdamLossFade])
def test_cuda_fused_matches_foreach_without_host_sync(cls):
    nets = [_net().cuda(), _net().cuda()]
    opts = [cls(nets[0].parameters(), lr=1e-2, fused=True), cls(nets[1].parameters(), lr=1e-2, foreach=True)]
    x = torch.randn(16, 5, device="cuda")
    for t in range(8):
        for i, (net, opt) in enumerate(zip(nets, opts)):
            opt.zero_grad()
            loss = net(x).pow(2).mean() * (float("nan") if t == 4 and cls is not AdamSqrt else 1.0)
            loss.backward()
            if t >= 2 and i == 0:
                torch.cuda.set_sync_debug_mode("error")
            try:
                opt.step()
            finally:
                torch.cuda.set_sync_debug_mode("default")
    assert opts[0].accumulators() == pytest.approx(opts[1].accumulators(), rel=1e-9)
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
