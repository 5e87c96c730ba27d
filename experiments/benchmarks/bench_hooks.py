"""Cost of the loss feed's hooks: forward + backward of a 4.5k-parameter MLP with a live AdamLoss vs with torch Adam.

300 interleaved rounds of 30 iterations each (A B A B ...); prints the median per-round ratio. Usage::

    PYTHONPATH=. python experiments/benchmarks/bench_hooks.py
"""

import statistics
import time

import torch

torch.set_num_threads(1)
from rl_adaloss import AdamLoss


def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(3, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1)
    )


m1, m2 = mlp(), mlp()
x = torch.randn(64, 3)
o1 = AdamLoss(m1.parameters(), lr=1e-4)
o2 = torch.optim.Adam(m2.parameters(), lr=1e-4, fused=True)


def f1():
    o1.zero_grad()
    m1(x).pow(2).mean().backward()


def f2():
    o2.zero_grad()
    m2(x).pow(2).mean().backward()


for _ in range(100):
    f1()
    f2()


def t(f, n=30):
    s = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - s) / n * 1e6


r = []
a = []
b = []
for _ in range(300):
    x1 = t(f1)
    x2 = t(f2)
    r.append(x1 / x2)
    a.append(x1)
    b.append(x2)
print(
    f"median ratio {statistics.median(r):.3f}  min-ratio {min(a) / min(b):.3f}  medians {statistics.median(a):.0f}/{statistics.median(b):.0f}us"
)
