"""The loss-driven optimizers where torch users put them: schedulers, state dicts, AMP, DDP, checkpointing, NaNs."""

from __future__ import annotations

import copy
import io
import math
import os
import pickle
import socket
import subprocess
import sys

import pytest
import torch
from torch.utils.checkpoint import checkpoint

from rl_adaloss import AdaLoss, AdamLoss, AdamSqrt, MissingLossError
from rl_adaloss.optim import AdamLossFade

LR = 1e-3


def _net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))


def _batch(seed=0, n=32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g), torch.randn(n, 1, generator=g)


def _mse(net, x, y):
    return torch.nn.functional.mse_loss(net(x), y)


# ---------------------------------------------------------------- 1. LR schedulers
SCHEDULERS = {
    "OneCycleLR": lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=40),
    "CyclicLR": lambda opt: torch.optim.lr_scheduler.CyclicLR(opt, base_lr=LR / 10, max_lr=LR, step_size_up=5),
    "LambdaLR": lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1 / (1 + t)),
    "CosineAnnealingLR": lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=40),
    "SequentialLR": lambda opt: torch.optim.lr_scheduler.SequentialLR(
        opt,
        [
            torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=10),
            torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9),
        ],
        milestones=[10],
    ),
}


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_scheduler_sets_the_step_exactly(name):
    """With alpha = 0, b stays 1/lr_0^2: the effective step must equal the scheduled lr, as Adam's does."""
    nets = [_net(), _net()]
    ours = AdamLoss(nets[0].parameters(), lr=LR, alpha=0.0)
    adam = torch.optim.Adam(nets[1].parameters(), lr=LR)
    scheds = [SCHEDULERS[name](ours), SCHEDULERS[name](adam)]
    x, y = _batch()
    for _ in range(40):
        for net, opt in zip(nets, (ours, adam)):
            opt.zero_grad()
            _mse(net, x, y).backward()
        scheduled = adam.param_groups[0]["lr"]
        assert ours.param_groups[0]["lr"] == scheduled
        assert ours.effective_lrs()[0] == pytest.approx(scheduled, rel=1e-12)
        ours.step()
        adam.step()
        for sched in scheds:
            sched.step()
    for a, b in zip(*(n.parameters() for n in nets)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_sb3_lr_schedule_multiplies_the_step():
    from stable_baselines3.common.utils import LinearSchedule, update_learning_rate

    net = _net()
    opt = AdamLoss(net.parameters(), lr=LR, alpha=0.0)
    schedule = LinearSchedule(LR, LR / 10, 1.0)
    for progress_remaining in (1.0, 0.6, 0.2, 0.0):
        update_learning_rate(opt, schedule(progress_remaining))  # what SB3's _update_learning_rate does
        assert opt.effective_lrs()[0] == pytest.approx(schedule(progress_remaining), rel=1e-12)


# ---------------------------------------------------------------- 2. one hook per parameter, always
def _hook_count(p):
    return len(getattr(p, "_post_accumulate_grad_hooks", None) or {})


def test_one_hook_per_parameter_after_loads_copies_and_pickling():
    net = _net()
    opt = AdamLoss(net.parameters(), lr=LR)
    x, y = _batch()
    _mse(net, x, y).backward()
    opt.step()
    first = next(net.parameters())
    assert _hook_count(first) == 1
    state = opt.state_dict()
    for _ in range(100):
        opt.load_state_dict(state)
    assert _hook_count(first) == 1
    clone = copy.deepcopy(opt)
    assert _hook_count(first) == 1 and _hook_count(clone.param_groups[0]["params"][0]) == 1
    restored = pickle.loads(pickle.dumps(opt))
    assert _hook_count(restored.param_groups[0]["params"][0]) == 1
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    opt.load_state_dict(torch.load(buf, weights_only=True))
    assert _hook_count(first) == 1
    # and the reloaded optimizer is still fed exactly once per backward
    opt.zero_grad()
    before = opt.accumulators()[0]
    loss = _mse(net, x, y)
    loss.backward()
    opt.step()
    assert opt.accumulators()[0] == pytest.approx(before + loss.item(), rel=1e-12)


# ---------------------------------------------------------------- 3. foreign checkpoints
def _train(net, opt, steps, seed=1, scheduler=None):
    x, y = _batch(seed)
    for _ in range(steps):
        opt.zero_grad()
        _mse(net, x, y).backward()
        opt.step()


def test_adam_checkpoint_is_adopted_by_adamloss():
    """Adam's moments and step counts are kept; b starts from the loaded lr as a fresh AdamLoss's would."""
    net = _net()
    adam = torch.optim.Adam(net.parameters(), lr=3e-3, eps=1e-5)
    _train(net, adam, 5)
    twin = copy.deepcopy(net)
    twin_adam = torch.optim.Adam(twin.parameters(), lr=3e-3, eps=1e-5)
    twin_adam.load_state_dict(copy.deepcopy(adam.state_dict()))  # torch's load shares tensors

    ours = AdamLoss(net.parameters(), lr=0.1, alpha=0.0, eps=1e-5)  # built with another lr: the checkpoint's wins
    ours.load_state_dict(copy.deepcopy(adam.state_dict()))
    assert ours.param_groups[0]["lr"] == 3e-3
    assert ours.accumulators() == [pytest.approx(1 / 3e-3**2)]
    assert ours.param_groups[0]["alpha"] == 0.0  # a hyperparameter Adam does not have keeps its value
    _train(net, ours, 5)
    _train(twin, twin_adam, 5)
    for a, b in zip(net.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)
    assert int(ours.state[next(net.parameters())]["step"]) == 10


def test_adamloss_checkpoint_loads_into_adam():
    net = _net()
    ours = AdamLoss(net.parameters(), lr=3e-3, alpha=0.0)
    _train(net, ours, 5)
    twin = copy.deepcopy(net)
    adam = torch.optim.Adam(twin.parameters(), lr=3e-3)
    adam.load_state_dict(copy.deepcopy(ours.state_dict()))
    _train(net, ours, 5)
    _train(twin, adam, 5)
    for a, b in zip(net.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)


def test_sgd_checkpoint_is_adopted_by_adaloss():
    net = _net()
    sgd = torch.optim.SGD(net.parameters(), lr=0.05)
    _train(net, sgd, 2)
    ours = AdaLoss(net.parameters(), lr=1.0, b0=2.0)
    ours.load_state_dict(sgd.state_dict())
    assert ours.param_groups[0]["lr"] == 0.05 and ours.accumulators() == [4.0]
    _train(net, ours, 2)


@pytest.mark.parametrize(
    "make, target, match",
    [
        (lambda p: torch.optim.Adam(p, lr=1e-3, amsgrad=True), AdamLoss, "amsgrad=True"),
        (lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9), AdaLoss, r"momentum_buffer"),
        (lambda p: torch.optim.Adam(p, lr=1e-3), AdaLoss, r"exp_avg"),
        (lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.1), AdamLoss, "decoupled weight decay"),
    ],
)
def test_state_dict_that_cannot_be_adopted_raises_and_changes_nothing(make, target, match):
    net = _net()
    foreign = make(net.parameters())
    _train(net, foreign, 2)
    ours = target(net.parameters(), lr=1e-2)
    _train(net, ours, 1)
    before = copy.deepcopy(ours.state_dict())
    with pytest.raises(ValueError, match=match):
        ours.load_state_dict(foreign.state_dict())
    after = ours.state_dict()
    assert after["param_groups"] == before["param_groups"]
    assert after["state"].keys() == before["state"].keys()


def test_legacy_rl_adaloss_state_dict_is_migrated():
    """State dicts written before the keys were namespaced (accumulator, initial_lr, nonfinite_skips) still load."""
    net = _net()
    ours = AdamLoss(net.parameters(), lr=0.1)
    sd = ours.state_dict()
    group = sd["param_groups"][0]
    for key in [k for k in group if k.startswith("rl_adaloss_")]:
        del group[key]
    group.update(accumulator=123.0, initial_lr=0.05, nonfinite_skips=2)
    ours.load_state_dict(sd)
    assert ours.accumulators() == [123.0] and ours.nonfinite_skips() == [2]
    assert ours.effective_lrs()[0] == pytest.approx((0.1 / 0.05) / math.sqrt(123.0))


def test_sb3_model_saved_with_adam_loads_with_adamloss(tmp_path):
    from stable_baselines3 import PPO

    kwargs = dict(n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model = PPO("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[16]), **kwargs)
    model.learn(64)
    model.save(tmp_path / "adam.zip")
    loaded = PPO.load(
        tmp_path / "adam.zip",
        custom_objects={"policy_kwargs": dict(net_arch=[16], optimizer_class=AdamLoss)},
        device="cpu",
        env=model.get_env(),
    )
    opt = loaded.policy.optimizer
    assert isinstance(opt, AdamLoss)
    p = next(loaded.policy.parameters())
    torch.testing.assert_close(
        opt.state[p]["exp_avg"], model.policy.optimizer.state[next(model.policy.parameters())]["exp_avg"]
    )
    loaded.learn(128, reset_num_timesteps=False)
    assert opt.accumulators()[0] > 1 / loaded.learning_rate**2


# ---------------------------------------------------------------- 4. mixed precision
def _amp_run(scaler_enabled, steps=6, poison_at=None, unscale_first=False, fused=None):
    net = _net()
    opt = AdamLoss(net.parameters(), lr=1e-2, fused=fused, foreach=None if fused is not False else True)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16, enabled=scaler_enabled)
    x, y = _batch()
    losses, snapshots = [], []
    for t in range(steps):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = _mse(net, x, y)
        if t == poison_at:
            loss = loss * float("inf")  # inf loss, inf/NaN gradients: the scaler must skip this step
        scaler.scale(loss).backward()
        if unscale_first:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1e9)
        snapshots.append(
            (opt.accumulators()[0], copy.deepcopy(opt.state_dict()["state"]), [p.clone() for p in net.parameters()])
        )
        scaler.step(opt)
        scaler.update()
        losses.append(loss.item())
    return net, opt, losses, snapshots, scaler


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("unscale_first", [False, True])
def test_grad_scaler_feeds_the_unscaled_loss(unscale_first, fused):
    """Non-fused: the scaler unscales and skips; fused: it hands grad_scale/found_inf to the kernel (its protocol)."""
    net_ref, ref, losses, _, _ = _amp_run(scaler_enabled=False, fused=fused)
    net, opt, scaled_losses, _, scaler = _amp_run(scaler_enabled=True, unscale_first=unscale_first, fused=fused)
    assert opt._step_supports_amp_scaling is fused
    assert scaler.get_scale() == 2.0**16
    assert losses == scaled_losses
    assert opt.accumulators()[0] == pytest.approx(1e4 + sum(losses), rel=1e-9)
    assert opt.accumulators()[0] == pytest.approx(ref.accumulators()[0], rel=1e-9)
    for a, b in zip(net.parameters(), net_ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("fused", [False, True])
def test_step_skipped_by_the_grad_scaler_leaves_everything_untouched(fused):
    _, opt, losses, snaps, scaler = _amp_run(scaler_enabled=True, steps=4, poison_at=2, fused=fused)
    acc_before, state_before, params_before = snaps[2]
    acc_next, state_next, params_next = snaps[3]  # taken before step 3: after the skipped step 2
    assert acc_next == acc_before
    for a, b in zip(params_before, params_next):
        assert torch.equal(a, b)
    for key in state_before:
        for name in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(state_before[key][name], state_next[key][name])
        assert int(state_before[key]["step"]) == int(state_next[key]["step"])
    assert scaler.get_scale() == 2.0**15  # the scaler backed off
    assert opt.accumulators()[0] == pytest.approx(1e4 + losses[0] + losses[1] + losses[3], rel=1e-9)


# ---------------------------------------------------------------- 5. DistributedDataParallel
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, out_dir):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        model = torch.nn.parallel.DistributedDataParallel(_net(0))
        opt = AdamLoss(model.parameters(), lr=1e-2)
        x, y = _batch(seed=10 + rank)  # each rank its own data, so its own local loss
        x = x * (rank + 1) * 3
        local, mean = [], []
        for _ in range(20):
            opt.zero_grad()
            loss = _mse(model, x, y)
            loss.backward()
            opt.step()
            t = loss.detach().double().clone()
            dist.all_reduce(t)
            local.append(loss.item())
            mean.append(t.item() / world)
        torch.save(
            {"params": [p.detach() for p in model.parameters()], "acc": opt.accumulators()[0], "mean": mean, "local": local},
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


def test_ddp_replicas_stay_bit_identical(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    assert r0["local"] != r1["local"]  # the ranks really saw different losses
    assert r0["acc"] == r1["acc"]
    assert r0["acc"] == pytest.approx(1e4 + sum(r0["mean"]), rel=1e-9)  # grown by the mean loss over the ranks
    for a, b in zip(r0["params"], r1["params"]):
        assert torch.equal(a, b)


# ---------------------------------------------------------------- 7. activation checkpointing
@pytest.mark.parametrize("use_reentrant", [True, False])
def test_checkpointed_model_feeds_the_outer_loss(use_reentrant):
    net = _net()
    opt = AdamLoss(net.parameters(), lr=LR)
    x, y = _batch()
    x.requires_grad_(use_reentrant)  # reentrant checkpointing needs an input that requires grad
    out = checkpoint(net, x, use_reentrant=use_reentrant)
    loss = torch.nn.functional.mse_loss(out, y) * 3.0
    loss.backward()
    opt.step()
    assert opt.accumulators() == [pytest.approx(1 / LR**2 + loss.item(), rel=1e-12)]


@pytest.mark.parametrize("use_reentrant", [True, False])
def test_loss_computed_inside_a_checkpoint_feeds_the_outer_loss(use_reentrant):
    net = _net()
    opt = AdamLoss(net.parameters(), lr=LR)
    x, y = _batch()
    x.requires_grad_(use_reentrant)
    inner = checkpoint(lambda a: _mse(net, a, y), x, use_reentrant=use_reentrant)
    outer = inner * 5.0 + 1.0
    outer.backward()
    opt.step()
    assert opt.accumulators() == [pytest.approx(1 / LR**2 + outer.item(), rel=1e-12)]


# ---------------------------------------------------------------- 8. non-finite losses skip the whole step
@pytest.mark.parametrize("cls", [AdamLoss, AdaLoss, AdamLossFade])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_loss_skips_the_whole_step(cls, bad):
    net = _net()
    opt = cls(net.parameters(), lr=1e-2)
    _train(net, opt, 2)
    x, y = _batch()
    opt.zero_grad()
    (_mse(net, x, y) * bad).backward()  # NaN/inf gradients too
    acc = opt.accumulators()
    state = copy.deepcopy(opt.state_dict()["state"])
    params = [p.clone() for p in net.parameters()]
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(params, net.parameters()))
    assert opt.accumulators() == acc  # a skipped step fades nothing either (AdamLossFade)
    for key, s in state.items():
        for name, value in s.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(opt.state_dict()["state"][key][name])), name
    assert opt.nonfinite_skips() == [1]
    _train(net, opt, 1)  # and training goes on
    assert all(torch.isfinite(p).all() for p in net.parameters())


@pytest.mark.parametrize("cls", [AdamLoss, AdaLoss, AdamSqrt])
@pytest.mark.parametrize("impl", ["loop", "foreach", "fused"])
def test_device_masked_path_matches_the_host_path(cls, impl):
    """The accelerator path (accumulator on the device, masked skips, no sync) run on the CPU equals the host path."""
    if impl == "fused" and cls is AdaLoss:
        pytest.skip("fused is an Adam-family implementation")
    torch.manual_seed(0)
    nets = [_net(), _net()]
    kw = dict(foreach=impl == "foreach") if impl != "fused" else dict(fused=True)
    opts = [cls(n.parameters(), lr=1e-2, **kw) for n in nets]
    opts[1]._device_mode = lambda device: True  # the test seam: the accelerator's arithmetic on the CPU
    x, y = _batch()
    for t in range(12):
        for net, opt in zip(nets, opts):
            opt.zero_grad()
            loss = _mse(net, x, y)
            if t in (0, 5) and cls is not AdamSqrt:
                loss = loss * float("nan")  # a skipped first step, and one later
            loss.backward()
            opt.step()
    assert isinstance(opts[1].param_groups[0]["rl_adaloss_accumulator"], torch.Tensor)
    # float32 bias corrections and weights on the device path vs float64 ones on the host: equal up to rounding
    assert opts[0].accumulators()[0] == pytest.approx(opts[1].accumulators()[0], rel=1e-8)
    assert opts[0].nonfinite_skips() == opts[1].nonfinite_skips() == [0 if cls is AdamSqrt else 2]
    for a, b in zip(*(n.parameters() for n in nets)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- also: import cost and the private torch symbol
def _python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=os.getcwd())


def test_importing_the_optimizers_needs_torch_alone():
    proc = _python(
        "import sys\nfrom rl_adaloss.optim import AdamLoss\nimport rl_adaloss\n"
        "print(sorted(m for m in ('gymnasium', 'stable_baselines3', 'rl_adaloss.envs') if m in sys.modules))"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_missing_private_torch_symbol_is_a_clear_error_and_explicit_losses_still_work():
    proc = _python(
        "import torch\ndel torch._C._current_graph_task_id\n"
        "from rl_adaloss import AdamLoss, MissingLossError\n"
        "w = torch.nn.Parameter(torch.ones(2))\nopt = AdamLoss([w], lr=0.5)\n"
        "w.sum().backward()\nopt.step(loss=1.0)\nprint(opt.accumulators())\n"
        "try:\n    opt.step()\nexcept RuntimeError as e:\n    print(type(e).__name__, e)\n"
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "[5.0]"  # b0 = 1/0.5^2 = 4, plus the explicit loss
    assert lines[1].startswith("MissingLossError") and f"torch {torch.__version__}" in lines[1]
    assert "step(loss=...)" in lines[1]


def test_missing_loss_is_still_an_error():
    net = _net()
    opt = AdamLoss(net.parameters(), lr=LR)
    for p in net.parameters():
        p.grad = torch.ones_like(p)
    with pytest.raises(MissingLossError):
        opt.step()


# ---------------------------------------------------------------- CUDA: the same conventions without host syncs
def _no_sync_steps(opt):
    opt.register_step_pre_hook(lambda *_: torch.cuda.set_sync_debug_mode("error"))
    opt.register_step_post_hook(lambda *_: torch.cuda.set_sync_debug_mode("default"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("fused", [None, True])
def test_cuda_grad_scaler_and_nonfinite_skip_add_no_sync(fused):
    """Non-fused: GradScaler's own found-inf check is its one sync (as for torch.optim.Adam); AdamLoss.step() adds
    none. Fused: the scaler hands grad_scale/found_inf to the kernel, and nothing syncs."""
    net = _net().cuda()
    opt = AdamLoss(net.parameters(), lr=1e-2, fused=fused)
    scaler = torch.amp.GradScaler("cuda", init_scale=2.0**16)
    x, y = (t.cuda() for t in _batch())
    losses = []
    for t in range(6):
        opt.zero_grad()
        with torch.autocast("cuda", dtype=torch.float16):
            loss = _mse(net, x, y)
        scaler.scale(loss).backward()
        if t == 1:
            _no_sync_steps(opt)  # after the lazy state init of the first step
        scaler.step(opt)
        scaler.update()
        losses.append(loss.float().item())
    torch.cuda.set_sync_debug_mode("default")
    assert opt.accumulators()[0] == pytest.approx(1e4 + sum(losses), rel=1e-6)
    params = [p.clone() for p in net.parameters()]
    acc = opt.accumulators()
    opt.zero_grad()
    (_mse(net, x, y) * float("nan")).backward()
    torch.cuda.set_sync_debug_mode("error")
    try:
        opt.step()  # a NaN loss: skipped on the device, no sync
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert opt.accumulators() == acc and opt.nonfinite_skips() == [1]
    assert all(torch.equal(a, b) for a, b in zip(params, net.parameters()))
