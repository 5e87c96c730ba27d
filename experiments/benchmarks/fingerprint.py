"""Behaviour fingerprint: SHA-256 of parameters and optimizer state after fixed seeded work (refactors must keep it).

Cases: every optimizer of this package in each implementation it offers (loop, foreach, fused), 40 steps on a small
seeded MLP with the loss fed by ``backward`` (plus one case per optimizer with a NaN loss at step 10, the step a
fading optimizer may legitimately change: issue 30's one intended exception), the same in device mode (the
accelerator's tensor/masked arithmetic, run on the CPU), with an explicit ``step(loss=...)``, through a
``state_dict`` round trip (20 steps of the loop, then 20 of the default implementation in a new optimizer), and
under a ``GradScaler``; and short seeded PPO and SAC runs on Pendulum-v1 with AdamLoss, AdamLossFade and AdamLossRel
built by the agent factory. CPU, one thread.

    python experiments/benchmarks/fingerprint.py --out experiments/benchmarks/out/fingerprint.json   # record
    python experiments/benchmarks/fingerprint.py --check experiments/benchmarks/out/fingerprint.json # rc 1 on a change
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

OPTIMIZERS = ("AdaLoss", "AdaGradNorm", "SGDDecaySqrt", "AdamLoss", "AdamLossFade", "AdamLossRel", "AdamSqrt")
IMPLS: dict[str, dict[str, Any]] = {
    "loop": {"foreach": False},
    "foreach": {"foreach": True},
    "fused": {"fused": True},
    "default": {},
}


def _digest(*tensors_or_objs: Any) -> str:
    h = hashlib.sha256()
    for obj in tensors_or_objs:
        buf = io.BytesIO()
        torch.save(obj, buf)
        h.update(buf.getvalue())
    return h.hexdigest()


def _params_digest(params: list[torch.Tensor], opt: torch.optim.Optimizer) -> str:
    state = opt.state_dict()
    digest = _digest([p.detach().clone() for p in params], state["state"], state["param_groups"])
    _PARAMS_ONLY[digest] = _digest([p.detach().clone() for p in params])
    return digest


# The digest of the parameters alone, by full digest: a "/params" case says whether a changed case changed the
# trajectory or only how the state dict is written (a renamed key, a float kept as a tensor).
_PARAMS_ONLY: dict[str, str] = {}


LOSS_DRIVEN = ("AdaLoss", "AdamLoss", "AdamLossFade", "AdamLossRel")
ADAM_LIKE = ("AdamLoss", "AdamLossFade", "AdamLossRel", "AdamSqrt")


def _build(name: str, net: torch.nn.Module, impl: str, device_mode: bool) -> torch.optim.Optimizer:
    import rl_adaloss.optim as ro

    cls = getattr(ro, name)
    if device_mode:  # the accelerator's arithmetic (tensor accumulator, masked kernels) on the CPU
        cls = type(cls.__name__, (cls,), {"_device_mode": lambda self, device: True, "_device_accumulator_on_cpu": True})
    lr = 1.0 if name in ("AdaLoss", "AdaGradNorm", "SGDDecaySqrt") else 1e-2
    return cls(net.parameters(), lr=lr, **IMPLS[impl])


def _optimizer_case(
    name: str, impl: str, nan_at: int | None, *, device_mode: bool = False, explicit: bool = False, roundtrip: bool = False
) -> str:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    x, y = torch.randn(64, 6), torch.randn(64, 1)
    try:
        opt = _build(name, net, impl, device_mode)
    except (TypeError, ValueError, RuntimeError) as err:
        return f"unsupported: {type(err).__name__}"
    params = list(net.parameters())
    for step in range(40):
        if roundtrip and step == 20:
            saved = io.BytesIO()
            torch.save(opt.state_dict(), saved)
            saved.seek(0)
            opt = _build(name, net, "default", device_mode)
            opt.load_state_dict(torch.load(saved, weights_only=False))
        opt.zero_grad()
        loss = ((net(x) - y) ** 2).mean()
        if nan_at is not None and step == nan_at:
            loss = loss * float("nan")
        loss.backward()
        if explicit:  # a float on even steps, the tensor (times 1.5: not what the feed saw) on odd ones
            opt.step(loss=float(loss.detach()) if step % 2 == 0 else loss.detach() * 1.5)  # type: ignore[call-arg]
        else:
            opt.step()
    return _params_digest(params, opt)


def _scaler_case(name: str, impl: str) -> str:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    x, y = torch.randn(64, 6), torch.randn(64, 1)
    try:
        opt = _build(name, net, impl, False)
    except (TypeError, ValueError, RuntimeError) as err:
        return f"unsupported: {type(err).__name__}"
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12, growth_interval=5)
    for step in range(30):
        opt.zero_grad()
        loss = ((net(x) - y) ** 2).mean()
        if step == 7:
            loss = loss * float("inf")  # the scaler skips this step (inf gradients) and halves its scale
        scaler.scale(loss).backward()
        if step % 3 == 0:
            scaler.unscale_(opt)  # as when clipping
        scaler.step(opt)
        scaler.update()
    return _params_digest(list(net.parameters()), opt)


def _sb3_case(algo: str, optimizer: str) -> str:
    from rl_adaloss.agents import make_agent

    hyper: dict[str, Any] = {"n_envs": 1, "policy_kwargs": {"net_arch": [32, 32]}}
    if algo == "ppo":
        hyper.update(n_steps=128, batch_size=32, n_epochs=3)
        budget = 512
    else:
        hyper.update(learning_starts=100, batch_size=32, buffer_size=1000)
        budget = 300
    model, _ = make_agent(algo, "Pendulum-v1", optimizer, 3e-3, seed=1, device="cpu", hyperparams=hyper)
    model.learn(budget)
    owners = (model.policy, getattr(model, "actor", None), getattr(model, "critic", None))
    opts = [o for o in (getattr(m, "optimizer", None) for m in owners) if o is not None]
    digest = _digest([p.detach().clone() for p in model.policy.parameters()], *[o.state_dict() for o in opts])
    _PARAMS_ONLY[digest] = _digest([p.detach().clone() for p in model.policy.parameters()])
    return digest


PARAMS_CASES = ("optim/AdamLossFade/", "optim/AdamLossRel/", "sb3/")  # cases that also record a parameters-only digest


def cases() -> dict[str, Callable[[], str]]:
    """Every case by name (a zero-argument function returning its digest)."""
    out: dict[str, Callable[[], str]] = {}
    for name in OPTIMIZERS:
        for impl in ("loop", "foreach", "fused"):
            out[f"optim/{name}/{impl}"] = lambda n=name, i=impl: _optimizer_case(n, i, None)
            out[f"optim/{name}/device/{impl}"] = lambda n=name, i=impl: _optimizer_case(n, i, None, device_mode=True)
        out[f"optim/{name}/loop/nan_at_10"] = lambda n=name: _optimizer_case(n, "loop", 10)
        out[f"optim/{name}/fused/nan_at_10"] = lambda n=name: _optimizer_case(n, "fused", 10)
        out[f"optim/{name}/device/loop/nan_at_10"] = lambda n=name: _optimizer_case(n, "loop", 10, device_mode=True)
        out[f"optim/{name}/roundtrip"] = lambda n=name: _optimizer_case(n, "loop", None, roundtrip=True)
        out[f"optim/{name}/device/roundtrip"] = lambda n=name: _optimizer_case(
            n, "loop", None, device_mode=True, roundtrip=True
        )
        if name in LOSS_DRIVEN:
            for impl in ("loop", "foreach", "fused"):
                out[f"optim/{name}/explicit_loss/{impl}"] = lambda n=name, i=impl: _optimizer_case(n, i, None, explicit=True)
            out[f"optim/{name}/device/explicit_loss"] = lambda n=name: _optimizer_case(
                n, "loop", None, device_mode=True, explicit=True
            )
        for impl in ("loop", "fused") if name in ADAM_LIKE else ("loop",):
            out[f"optim/{name}/scaler/{impl}"] = lambda n=name, i=impl: _scaler_case(n, i)
    for algo in ("ppo", "sac"):
        for optimizer in ("adam", "adamloss", "adamloss-fade", "adamloss-rel"):
            out[f"sb3/{algo}/{optimizer}"] = lambda a=algo, o=optimizer: _sb3_case(a, o)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the fingerprint here (JSON)")
    parser.add_argument("--check", type=Path, help="compare with this recorded fingerprint; rc 1 on any difference")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    got = {}
    for name, fn in cases().items():
        got[name] = fn()
        if name.startswith(PARAMS_CASES):
            got[f"{name}/params"] = _PARAMS_ONLY.get(got[name], got[name])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    if args.check:
        want = json.loads(args.check.read_text())
        changed = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
        for key in changed:
            print(f"CHANGED {key}: {want.get(key)} -> {got.get(key)}")
        print(f"{len(got) - len(changed)} of {len(got)} cases identical")
        return 1 if changed else 0
    if not args.out:
        json.dump(got, sys.stdout, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
