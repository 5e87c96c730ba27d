"""Cost of the loss feed's hooks: forward + backward of a 4.5k-parameter MLP with a live AdamLoss vs with torch Adam.

Rounds of ``--reps`` iterations alternate (A B A B ...) so machine noise hits both alike; prints the median per-round
ratio (AdamLoss / Adam) and the ratio of the fastest rounds. Only ``zero_grad()`` + forward + ``backward()`` are timed:
the difference is what the feed adds (the wrapped ``torch.autograd.backward`` and the post-accumulate-grad hooks).

Usage::

    PYTHONPATH=. python experiments/benchmarks/bench_hooks.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from rl_adaloss import AdamLoss


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(3, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1)
    )


def _iteration(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        opt.zero_grad()
        model(x).pow(2).mean().backward()

    return run


def _time(fn: Callable[[], None], reps: int) -> float:
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--reps", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    x = torch.randn(64, 3)
    fed_model, adam_model = _mlp(), _mlp()
    fed = _iteration(fed_model, AdamLoss(fed_model.parameters(), lr=1e-4), x)
    plain = _iteration(adam_model, torch.optim.Adam(adam_model.parameters(), lr=1e-4, fused=True), x)
    for _ in range(100):  # warm-up
        fed()
        plain()
    ratios, fed_t, plain_t = [], [], []
    for _ in range(args.rounds):
        a, b = _time(fed, args.reps), _time(plain, args.reps)
        ratios.append(a / b)
        fed_t.append(a)
        plain_t.append(b)
    print(f"forward+backward, 4,481 params, {args.rounds} rounds x {args.reps}")
    fed_us, plain_us = statistics.median(fed_t) * 1e6, statistics.median(plain_t) * 1e6
    print(f"with AdamLoss (feed on): {fed_us:.0f} us; with Adam: {plain_us:.0f} us")
    print(f"median per-round ratio {statistics.median(ratios):.3f}; fastest-round ratio {min(fed_t) / min(plain_t):.3f}")


if __name__ == "__main__":
    main()
