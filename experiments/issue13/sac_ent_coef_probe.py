"""Does SAC fail at eta_0 = 1 because of its entropy coefficient's optimizer rather than the arm's?

In every arm of ``eval13_pendulum_sac`` the actor and the critic use the arm's optimizer, while SAC's entropy
coefficient keeps SB3's own Adam, built at the same ``lr`` (SB3 rewrites it at every ``train()``). This probe runs
the grid's preset (RL Zoo's SAC on Pendulum-v1) with one optimizer at one eta_0 and, with ``--ent-coef-lr X``,
pins the entropy coefficient's Adam to ``X`` after every lr update; nothing else changes. A post-hoc diagnostic,
not part of the pre-registered evaluation. Prints, every 200 env steps, the entropy coefficient, the actor's and the
critic's step size (for AdamLossRel, the actor's reference loss too), the mean return of the last 5 training
episodes, and how the run ended. Output of the commands below: ``experiments/issue13/out/sac_ent_coef_probe.txt``.

    PYTHONPATH=. python experiments/issue13/sac_ent_coef_probe.py adamloss-rel 1.0 --steps 3000
    PYTHONPATH=. python experiments/issue13/sac_ent_coef_probe.py adamloss-rel 1.0 --steps 3000 --ent-coef-lr 1e-3
    PYTHONPATH=. python experiments/issue13/sac_ent_coef_probe.py adam 1.0 --steps 3000 --ent-coef-lr 1e-3
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

from rl_adaloss.agents import make_agent


def _step_size(optimizer: Any) -> float:
    lrs = optimizer.effective_lrs() if hasattr(optimizer, "effective_lrs") else [g["lr"] for g in optimizer.param_groups]
    return float(np.mean([float(v) for v in np.atleast_1d(lrs)]))


def _reference(optimizer: Any) -> str:
    """AdamLossRel's reference loss (the mean |loss| of its first ``ref_steps`` losses), once it is set."""
    group = optimizer.param_groups[0]
    count = group.get("rl_adaloss_ref_count")
    if not count:
        return ""
    return f" (its reference loss {float(group['rl_adaloss_ref_sum']) / float(count):.3g})"


class _Trace(BaseCallback):
    def __init__(self, every: int) -> None:
        super().__init__()
        self.every = every

    def _on_step(self) -> bool:
        if self.num_timesteps % self.every == 0:
            m = self.model
            ent = float(torch.exp(m.log_ent_coef.detach()).item()) if m.log_ent_coef is not None else float("nan")
            rets = [ep["r"] for ep in list(m.ep_info_buffer)[-5:]]
            print(
                f"  step {self.num_timesteps:6d}: ent_coef {ent:.3g}, actor step {_step_size(m.actor.optimizer):.2e}"
                f"{_reference(m.actor.optimizer)},"
                f" critic step {_step_size(m.critic.optimizer):.2e}, last-5 episode return "
                f"{np.mean(rets) if rets else float('nan'):.0f}",
                flush=True,
            )
        return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("optimizer")
    parser.add_argument("lr", type=float)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ent-coef-lr", type=float, default=None, help="pin the entropy coefficient's Adam to this lr")
    parser.add_argument("--every", type=int, default=200)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    # SB3's Adam on the coefficient, as issue 13 ran it (loss-driven arms drive it by default since issue 28)
    model, _ = make_agent(
        "sac", "Pendulum-v1", args.optimizer, args.lr, seed=args.seed, hyperparams={"ent_coef_optimizer": "sb3"}
    )
    if args.ent_coef_lr is not None:
        original = model._update_learning_rate

        def pinned(optimizers: Any) -> None:
            original(optimizers)
            for group in model.ent_coef_optimizer.param_groups:
                group["lr"] = args.ent_coef_lr

        model._update_learning_rate = pinned  # type: ignore[method-assign]
    pin = "SB3's (= eta_0)" if args.ent_coef_lr is None else f"{args.ent_coef_lr:g}"
    print(f"SAC Pendulum-v1, {args.optimizer} at eta_0 = {args.lr:g}, seed {args.seed}, entropy coefficient's lr {pin}")
    try:
        model.learn(args.steps, callback=_Trace(args.every))
        print(f"finished {model.num_timesteps} steps")
    except ValueError as err:
        print(f"diverged at {model.num_timesteps} steps: {str(err)[:90]}")


if __name__ == "__main__":
    main()
