"""Optimizer step-time benchmark: loss-driven optimizers vs their torch counterparts, measured side by side.

Ratios (ours / torch) of the median time per call, measured interleaved in one process (A B A B ...) so machine
noise hits both arms alike:

* ``step``: ``optimizer.step()`` alone (gradients prepared once; AdamLoss/AdaLoss get ``loss=`` the loss tensor);
* ``backward+step``: ``loss.backward(); optimizer.step()``, which includes the automatic loss feed's hooks.

AdamLoss (default implementation: fused on the CPU) is compared with torch's fused ``Adam`` (the fastest torch Adam),
with torch's default ``Adam`` (what SB3 builds: the for-loop on the CPU) and, foreach against foreach, with
``Adam(foreach=True)``; AdaLoss and AdaGradNorm with ``SGD``.

Usage::

    python experiments/benchmarks/bench_optim.py            # ~5k-param SB3-sized MLP and a ~10M-param MLP, CPU
    python experiments/benchmarks/bench_optim.py --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from rl_adaloss import AdaGradNorm, AdaLoss, AdamLoss
from rl_adaloss.optim import AdamLossFade

SIZES = {"sb3-mlp (~5k params)": (3, [64, 64], 1), "mlp (~10M params)": (256, [2048, 2048, 2048], 256)}


def _mlp(sizes: tuple[int, list[int], int], device: str) -> torch.nn.Module:
    inp, hidden, out = sizes
    layers: list[torch.nn.Module] = []
    for h in hidden:
        layers += [torch.nn.Linear(inp, h), torch.nn.Tanh()]
        inp = h
    layers.append(torch.nn.Linear(inp, out))
    torch.manual_seed(0)
    return torch.nn.Sequential(*layers).to(device)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timer(device: str, fn: Callable[[], None], reps: int) -> float:
    _sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / reps


def _arm(name: str, size: tuple[int, list[int], int], device: str, mode: str) -> Callable[[], None]:
    model = _mlp(size, device)
    x = torch.randn(64, size[0], device=device)
    makers: dict[str, Callable[[], torch.optim.Optimizer]] = {
        "Adam(foreach)": lambda: torch.optim.Adam(model.parameters(), lr=1e-4, foreach=True),
        "Adam(fused)": lambda: torch.optim.Adam(model.parameters(), lr=1e-4, fused=True),
        "Adam(default)": lambda: torch.optim.Adam(model.parameters(), lr=1e-4),
        "AdamLoss": lambda: AdamLoss(model.parameters(), lr=1e-4),
        "AdamLoss(fused)": lambda: AdamLoss(model.parameters(), lr=1e-4, fused=True),
        "AdamLoss(foreach)": lambda: AdamLoss(model.parameters(), lr=1e-4, foreach=True),
        "AdamLossFade": lambda: AdamLossFade(model.parameters(), lr=1e-4),
        "SGD": lambda: torch.optim.SGD(model.parameters(), lr=1e-4),
        "AdaLoss": lambda: AdaLoss(model.parameters(), lr=1e-4),
        "AdaGradNorm": lambda: AdaGradNorm(model.parameters(), lr=1e-4),
    }
    opt = makers[name]()
    loss = model(x).pow(2).mean()
    loss.backward()
    loss_driven = isinstance(opt, (AdaLoss, AdamLoss))
    if mode == "step":
        return (lambda: opt.step(loss=loss)) if loss_driven else opt.step  # type: ignore[return-value]

    def backward_step() -> None:
        out = model(x).pow(2).mean()
        out.backward()
        opt.step()

    return backward_step


def measure(size: tuple[int, list[int], int], names: list[str], device: str, mode: str, rounds: int, reps: int) -> dict:
    arms = {n: _arm(n, size, device, mode) for n in names}
    times: dict[str, list[float]] = {n: [] for n in names}
    for fn in arms.values():  # warm-up: lazy state
        _timer(device, fn, 3)
    for _ in range(rounds):
        for n, fn in arms.items():
            times[n].append(_timer(device, fn, reps))
    return {n: statistics.median(t) for n, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"device={args.device} torch={torch.__version__} threads={torch.get_num_threads()}")
    print(
        "AdamLoss (default) uses:",
        "fused"
        if AdamLoss(_mlp(SIZES["sb3-mlp (~5k params)"], args.device).parameters())._step_supports_amp_scaling
        else "foreach",
    )
    print(f"{'size':22} {'mode':14} {'comparison':36} {'ours us':>9} {'torch us':>9} {'ratio':>6}")
    for size_name, size in SIZES.items():
        n_params = sum(p.numel() for p in _mlp(size, "cpu").parameters())
        reps = 200 if n_params < 1e5 else 3
        for mode in ("step", "backward+step"):
            t = measure(size, list(_arm_names()), args.device, mode, args.rounds, reps)
            rows = [
                ("AdamLoss(fused)", "Adam(fused)", t["AdamLoss(fused)"], t["Adam(fused)"]),
                ("AdamLoss", "Adam(default)", t["AdamLoss"], t["Adam(default)"]),
                ("AdamLoss(foreach)", "Adam(foreach)", t["AdamLoss(foreach)"], t["Adam(foreach)"]),
                ("AdamLossFade", "Adam(fused)", t["AdamLossFade"], t["Adam(fused)"]),
            ]
            rows.append(("AdaLoss", "SGD", t["AdaLoss"], t["SGD"]))
            rows.append(("AdaGradNorm", "SGD", t["AdaGradNorm"], t["SGD"]))
            for ours, ref, a, b in rows:
                label = f"{ours} vs {ref}"
                print(f"{size_name:22} {mode:14} {label:36} {a * 1e6:9.1f} {b * 1e6:9.1f} {a / b:6.3f}")
        print(f"{'':22} ({n_params:,} params)")


def _arm_names() -> tuple[str, ...]:
    return (
        "Adam(foreach)",
        "Adam(fused)",
        "Adam(default)",
        "AdamLoss",
        "AdamLoss(fused)",
        "AdamLoss(foreach)",
        "AdamLossFade",
        "SGD",
        "AdaLoss",
        "AdaGradNorm",
    )


if __name__ == "__main__":
    main()
