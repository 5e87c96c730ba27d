"""Cost of AdamLoss inside Stable-Baselines3: PPO on Pendulum-v1 with AdamLoss (loss fed automatically) vs Adam.

Both models are built from the same RL Zoo preset and identical, fresh ``policy_kwargs`` (they differ only in the
optimizer). They are trained side by side in one process, in alternating chunks (Adam, AdamLoss, Adam, ...), so that
machine noise hits both alike. Reported: the ratio of the total ``learn()`` wall time and of the time spent in
``train()`` (the gradient updates, where the loss feed and the optimizer run), plus the median per-chunk ratio.

Usage::

    python experiments/benchmarks/bench_sb3.py                  # CPU, 8 chunks of one rollout each
    python experiments/benchmarks/bench_sb3.py --device cuda --algo sac --env Pendulum-v1
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch

from rl_adaloss.agents import make_agent


def _timed_train(model: Any, sink: list[float]) -> None:
    train = model.train

    def timed() -> None:
        start = time.perf_counter()
        train()
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        sink.append(time.perf_counter() - start)

    model.train = timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--algo", default="ppo")
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--chunk-steps", type=int, default=4096, help="env steps per chunk (PPO preset: one rollout)")
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    arms = {}
    for name in ("adam", "adamloss"):
        model, _ = make_agent(args.algo, args.env, name, args.lr, seed=0, device=args.device)
        train_times: list[float] = []
        _timed_train(model, train_times)
        arms[name] = (model, train_times, [])
    for chunk in range(args.chunks):
        for model, _, learn_times in arms.values():
            start = time.perf_counter()
            model.learn(args.chunk_steps, reset_num_timesteps=chunk == 0)
            learn_times.append(time.perf_counter() - start)
    (_, adam_train, adam_learn), (_, al_train, al_learn) = arms["adam"], arms["adamloss"]
    per_chunk = [b / a for a, b in zip(adam_learn, al_learn)]
    print(f"{args.algo} on {args.env}, device={args.device}, {args.chunks} chunks x {args.chunk_steps} steps, lr={args.lr}")
    print(f"{'':18} {'adam s':>9} {'adamloss s':>11} {'ratio':>7}")
    print(f"{'learn() total':18} {sum(adam_learn):9.2f} {sum(al_learn):11.2f} {sum(al_learn) / sum(adam_learn):7.3f}")
    print(f"{'train() total':18} {sum(adam_train):9.2f} {sum(al_train):11.2f} {sum(al_train) / sum(adam_train):7.3f}")
    print(f"{'learn() median/chunk':18} {'':9} {'':11} {statistics.median(per_chunk):7.3f}")
    opt = arms["adamloss"][0].policy.optimizer
    print(f"AdamLoss effective lr at the end: {opt.effective_lrs()[0]:.3e} (eta_0 = {args.lr})")


if __name__ == "__main__":
    main()
