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


def test_most_recent_backward_that_reached_params_wins():
    """TD3/SAC: the actor loss reaches the critic too, but the critic's own loss comes last before its step."""
    critic = _net(0)
    opt = AdamLoss(critic.parameters(), lr=0.1)
    x = torch.randn(4, 3)
    (critic(x).sum() * 7).backward()  # 'actor' loss leaking into critic parameters
    critic_loss = critic(x).pow(2).mean()
    critic_loss.backward()
    opt.step()
    assert opt.accumulators() == [pytest.approx(100 + critic_loss.item())]


def test_non_scalar_and_grad_argument_backward_is_not_taken():
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


def test_optimizer_without_hooks_does_not_change_backward():
    net = _net()
    ref = _net()
    _ = AdamLoss(_net(2).parameters(), lr=0.1)  # installs the feed
    x = torch.randn(4, 3)
    net(x).pow(2).mean().backward()
    grads = [p.grad.clone() for p in net.parameters()]
    torch.manual_seed(0)
    loss = ref(x).pow(2).mean()
    torch.autograd.grad(loss, list(ref.parameters()))  # grad() is untouched and does not accumulate
    ref.zero_grad()
    ref(x).pow(2).mean().backward()
    for g, p in zip(grads, ref.parameters()):
        torch.testing.assert_close(g, p.grad)
