"""Print the losses that reach each AdamLoss optimizer of an agent, averaged over windows of optimizer steps.

Used for issue 13's design (how PPO's loss falls on grid 1's task) and for its SAC prediction (how SAC's actor and
critic losses move relative to their first values). Not a grid: one seeded run of the preset, AdamLoss at ``lr``.

    PYTHONPATH=. python experiments/issue13/loss_probe.py ppo Pendulum-v1 1e-3 100000
    PYTHONPATH=. python experiments/issue13/loss_probe.py sac Pendulum-v1 1e-3 6000
"""

from __future__ import annotations

import itertools
import sys

import numpy as np
import torch

from rl_adaloss.agents import make_agent
from rl_adaloss.optim import AdamLoss

WINDOWS = (0, 1, 8, 32, 128, 640, 1280, 2560, 5120, 10240)


def main(algo: str, env: str, lr: float, n: int) -> None:
    torch.set_num_threads(1)
    losses: dict[int, list[float]] = {}
    original = AdamLoss._increment

    def spy(self, group, grads, loss):  # type: ignore[no-untyped-def]
        losses.setdefault(id(self), []).append(float(loss))
        return original(self, group, grads, loss)

    AdamLoss._increment = spy  # type: ignore[method-assign]
    model, _ = make_agent(algo, env, "adamloss", lr, seed=0, hyperparams={"ent_coef_optimizer": "sb3"})  # as issue 13 ran it
    model.learn(n)
    names = {
        id(o): role
        for role, o in (
            ("policy", getattr(model.policy, "optimizer", None)),
            ("actor", getattr(getattr(model, "actor", None), "optimizer", None)),
            ("critic", getattr(getattr(model, "critic", None), "optimizer", None)),
        )
        if o is not None
    }
    for key, values in losses.items():
        a = np.abs(np.asarray(values))
        print(f"{names.get(key, key)}: {len(a)} steps; mean |loss| over optimizer steps [lo, hi)")
        bounds = [w for w in WINDOWS if w < len(a)] + [len(a)]
        for lo, hi in itertools.pairwise(bounds):
            print(f"  [{lo}, {hi}): {a[lo:hi].mean():.4g}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
