"""How the loss reaches step(): closure, loss=, automatic from backward(), errors, threads."""

from __future__ import annotations

import threading

import pytest
import torch

from rl_adaloss import AdaLoss, AdamLoss, MissingLossError
from rl_adaloss.optim.loss_feed import loss_feed_installed


def _net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Linear(3, 1)


def test_automatic_loss_from_backward():
    net = _net()
    opt = AdaLoss(net.parameters(), lr=0.1, b0=1.0)
    assert loss_feed_installed()
    x = torch.randn(5, 3)
    loss = net(x).pow(2).mean()
    loss.backward()
    opt.step()
    assert opt.accumulators() == [pytest.approx(1.0 + loss.item())]


def test_closure_and_explicit_loss():
    net = _net()
    opt = AdamLoss(net.parameters(), lr=0.1, alpha=2.0)
    x = torch.randn(5, 3)
    seen = []

    def closure():
        opt.zero_grad()
        loss = net(x).pow(2).mean()
        loss.backward()
        seen.append(loss.item())
        return loss

    out = opt.step(closure)
    assert out.item() == seen[0]
    opt.step(loss=torch.tensor(0.25))
    opt.step(loss=-0.5)  # |f - c| is used
    assert opt.accumulators() == [pytest.approx(100 + 2 * seen[0] + 2 * 0.25 + 2 * 0.5)]


def test_missing_loss_raises_and_leaves_params_untouched():
    net = _net()
    opt = AdamLoss(net.parameters(), lr=0.1)
    for p in net.parameters():
        p.grad = torch.ones_like(p)
    before = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(MissingLossError, match=r"loss.backward\(\).*step\(closure\).*step\(loss=...\)"):
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert opt.accumulators() == [pytest.approx(100.0)]


def test_loss_is_consumed_by_step():
    net = _net()
    opt = AdaLoss(net.parameters(), lr=0.1)
    net(torch.randn(2, 3)).sum().backward()
    opt.step()
    with pytest.raises(MissingLossError):
        opt.step()


def test_backward_reaching_other_params_is_not_taken():
    a, b = _net(0), _net(1)
    opt_a = AdaLoss(a.parameters(), lr=0.1)
    x = torch.randn(4, 3)
    a(x).pow(2).mean().backward()
    loss_a = a(x).pow(2).mean().item()
    b(x).pow(2).mean().mul(100).backward()  # only b's parameters
    opt_a.step()
    assert opt_a.accumulators() == [pytest.approx(1.0 + loss_a)]


def test_losses_whose_gradients_are_in_grad_are_summed():
    """Gradient accumulation: two backwards without zero_grad feed the sum of their losses, as .grad holds both."""
    net = _net(0)
    opt = AdamLoss(net.parameters(), lr=0.1)
    x = torch.randn(4, 3)
    first = net(x).sum() * 7
    first.backward()
    second = net(x).pow(2).mean()
    second.backward()
    opt.step()
    assert opt.accumulators() == [pytest.approx(100 + abs(first.item() + second.item()), rel=1e-12)]  # alpha|sum f - c|


def test_gradient_accumulation_feeds_the_full_batch_loss():
    """Four micro-batches of mean/4 losses accumulate the full-batch gradient; the step gets the full-batch loss."""
    torch.manual_seed(0)
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    nets = [_net(0), _net(0)]
    opts = [AdamLoss(n.parameters(), lr=1e-2) for n in nets]
    full = torch.nn.functional.mse_loss(nets[0](x), y)
    full.backward()
    opts[0].step()
    for xb, yb in zip(x.chunk(4), y.chunk(4)):
        (torch.nn.functional.mse_loss(nets[1](xb), yb) / 4).backward()
    opts[1].step()
    assert opts[1].accumulators()[0] == pytest.approx(opts[0].accumulators()[0], rel=1e-9)
    assert opts[0].accumulators()[0] == pytest.approx(1e4 + full.item(), rel=1e-12)
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad_discards_pending_losses(set_to_none):
    net = _net(0)
    opt = AdaLoss(net.parameters(), lr=0.1)
    x = torch.randn(4, 3)
    net(x).sum().mul(1000).backward()
    opt.zero_grad(set_to_none=set_to_none)
    with pytest.raises(MissingLossError):
        opt.step()
    loss = net(x).pow(2).mean()
    loss.backward()
    opt.step()
    assert opt.accumulators() == [pytest.approx(1 + loss.item(), rel=1e-12)]


def test_gradients_cleared_elsewhere_by_set_to_none_drop_earlier_losses():
    """model.zero_grad() (set_to_none=True) and p.grad = None are seen at the next backward; in-place zeroing is not."""
    net = _net(0)
    opt = AdaLoss(net.parameters(), lr=0.1)
    x = torch.randn(4, 3)
    net(x).sum().mul(1000).backward()
    net.zero_grad()  # the model's, not the optimizer's
    loss = net(x).pow(2).mean()
    loss.backward()
    opt.step()
    assert opt.accumulators() == [pytest.approx(1 + loss.item(), rel=1e-12)]

    net(x).sum().mul(1000).backward()
    for p in net.parameters():
        p.grad = None
    loss2 = net(x).pow(2).mean()
    loss2.backward()
    opt.step()
    assert opt.accumulators() == [pytest.approx(1 + loss.item() + loss2.item(), rel=1e-12)]

    # documented limit: zeroing in place cannot be seen, the earlier loss still counts
    stale = net(x).sum().mul(1000)
    stale.backward()
    net.zero_grad(set_to_none=False)
    loss3 = net(x).pow(2).mean()
    loss3.backward()
    before = opt.accumulators()[0]
    opt.step()
    assert opt.accumulators()[0] == pytest.approx(before + abs(stale.item() + loss3.item()), rel=1e-12)


def test_actor_loss_reaching_the_critic_after_its_step_never_feeds_its_next_step():
    """SAC/TD3: critic step, then the actor loss back-propagates through the critic, then critic.zero_grad()."""
    critic, actor = _net(0), torch.nn.Linear(3, 3)
    critic_opt = AdamLoss(critic.parameters(), lr=0.1)
    actor_opt = AdamLoss(actor.parameters(), lr=0.1)
    x = torch.randn(4, 3)
    total = 100.0
    for _ in range(3):
        critic_opt.zero_grad()
        critic_loss = critic(x).pow(2).mean()
        critic_loss.backward()
        critic_opt.step()
        total += critic_loss.item()
        actor_loss = -critic(actor(x)).mean() * 50
        actor_opt.zero_grad()
        actor_loss.backward()  # also fills the critic's .grad
        actor_opt.step()
    assert critic_opt.accumulators() == [pytest.approx(total, rel=1e-12)]


def test_gradient_argument_scales_the_loss():
    """loss.backward(g) accumulates the gradient of g * loss, so g * loss is what feeds the step."""
    net = _net(0)
    opt = AdaLoss(net.parameters(), lr=0.1)
    loss = net(torch.randn(4, 3)).pow(2).mean()
    loss.backward(torch.tensor(0.25))
    opt.step()
    assert opt.accumulators() == [pytest.approx(1 + 0.25 * loss.item(), rel=1e-12)]


def test_non_scalar_backward_is_not_taken():
    net = _net()
    opt = AdaLoss(net.parameters(), lr=0.1)
    out = net(torch.randn(4, 3))
    out.backward(torch.ones_like(out))  # a vector backward: no loss value
    with pytest.raises(MissingLossError):
        opt.step()


def test_torch_autograd_backward_of_a_list_is_fed():
    net = _net()
    opt = AdaLoss(net.parameters(), lr=0.1)
    loss = net(torch.randn(4, 3)).pow(2).mean()
    torch.autograd.backward([loss])
    opt.step()
    assert opt.accumulators() == [pytest.approx(1 + loss.item())]


def test_leaf_loss_is_fed():
    w = torch.nn.Parameter(torch.tensor(2.0))
    opt = AdaLoss([w], lr=0.1)
    w.backward()
    opt.step()
    assert opt.accumulators() == [pytest.approx(3.0)]


def test_parameters_added_later_are_fed():
    a, b = _net(0), _net(1)
    opt = AdaLoss(a.parameters(), lr=0.1)
    opt.add_param_group({"params": list(b.parameters())})
    loss = b(torch.randn(2, 3)).pow(2).sum()
    loss.backward()
    opt.step()
    assert opt.accumulators()[1] == pytest.approx(1 + loss.item())


def test_threads_never_feed_each_other():
    """Two threads train their own model at the same time: each accumulator sums exactly its own losses."""
    n_steps = 200
    results: dict[int, tuple[float, float]] = {}
    barrier = threading.Barrier(2)

    def worker(k: int) -> None:
        torch.manual_seed(k)
        net = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1))
        opt = AdaLoss(net.parameters(), lr=1e-3, b0=1.0)
        x = torch.randn(128, 8) * (k + 1) * 10
        total = 1.0
        barrier.wait()
        for _ in range(n_steps):
            opt.zero_grad()
            loss = net(x).pow(2).mean()
            loss.backward()
            total += abs(loss.item())
            opt.step()
        results[k] = (total, opt.accumulators()[0])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(2):
        expected, got = results[k]
        assert got == pytest.approx(expected, rel=1e-9)


def test_feeding_backward_leaves_gradients_exactly_as_autograd_computes_them():
    """With the feed installed and hooks on the parameters, .grad equals torch.autograd.grad's result exactly.

    The reference never goes through ``torch.autograd.backward`` (so a wrapper that altered gradients would fail
    this), and ``torch.autograd.grad`` itself must leave ``.grad`` alone.
    """
    net = _net()
    opt = AdamLoss(net.parameters(), lr=0.1)
    assert loss_feed_installed()
    x = torch.randn(4, 3)
    expected = torch.autograd.grad(net(x).pow(2).mean(), list(net.parameters()))
    assert all(p.grad is None for p in net.parameters())
    loss = net(x).pow(2).mean()
    loss.backward()
    for g, p in zip(expected, net.parameters()):
        assert torch.equal(g, p.grad)
    opt.step()
    assert opt.accumulators() == [pytest.approx(100 + loss.item(), rel=1e-12)]


# ---------------------------------------------------------------- the tap: what it patches, and undoing it
def test_tap_patches_only_what_it_lists_and_uninstalls():
    """install() replaces torch.autograd.backward and GradScaler.unscale_; uninstall() puts torch's own back."""
    from rl_adaloss.optim import autograd_tap

    _ = AdaLoss(_net().parameters(), lr=0.1)
    assert loss_feed_installed() and getattr(torch.amp.GradScaler.unscale_, "_rl_adaloss_feed", False)
    try:
        autograd_tap.uninstall()
        assert not loss_feed_installed()
        assert not getattr(torch.autograd.backward, "_rl_adaloss_feed", False)
        assert not getattr(torch.amp.GradScaler.unscale_, "_rl_adaloss_feed", False)
        net = _net()
        opt = AdaLoss(net.parameters(), lr=0.1, b0=1.0)  # a new loss-driven optimizer installs it again
        assert loss_feed_installed()
        loss = net(torch.ones(2, 3)).pow(2).mean()
        loss.backward()
        opt.step()
        assert opt.accumulators() == [pytest.approx(1.0 + loss.item())]
    finally:
        autograd_tap.install()
    assert loss_feed_installed()


def test_ddp_modules_are_found_without_a_heap_scan(tmp_path, monkeypatch):
    """The DDP module that owns an optimizer's parameters comes from the tap's registry; gc is never asked."""
    import gc

    import torch.distributed as dist

    from rl_adaloss.optim import autograd_tap
    from rl_adaloss.optim.loss_feed import _ddp_process_group

    monkeypatch.setattr(gc, "get_objects", lambda *a, **k: pytest.fail("heap scan"))
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        model = torch.nn.parallel.DistributedDataParallel(_net())
        assert any(m is model for m in autograd_tap.ddp_modules())
        monkeypatch.setattr(dist, "get_world_size", lambda group=None: 2)  # the lookup runs only with several ranks
        assert _ddp_process_group(list(model.parameters())) is model.process_group
        assert _ddp_process_group(list(_net().parameters())) is None
    finally:
        monkeypatch.undo()
        dist.destroy_process_group()


def test_foreign_adapter_keeps_its_old_import_path():
    from rl_adaloss.optim import foreign, loss_feed

    assert loss_feed.loss_fed is foreign.loss_fed and loss_feed.LossFedMixin is foreign.LossFedMixin
