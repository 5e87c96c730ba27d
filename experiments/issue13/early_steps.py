"""AdamLossRel's step size at every optimizer update of a run's first ``train()`` calls, which ``optim.csv`` (one row
per ``train()``) does not record.

Rebuilds a sweep run exactly as ``rl-adaloss sweep`` does (same factory, seed and preset), trains it for ``--steps``
environment steps, and prints the step size per window of updates. The last value printed for each run is the step
after the last update; ``optim.csv`` of the committed run logs the same quantity at the start of the next
``train()``, so the two must agree to every digit on the machine that ran the sweep (the script prints both).

    PYTHONPATH=. python experiments/issue13/early_steps.py experiments/results/eval13_cartpole_ppo \
        --lrs 1e-5 2.5e-4 0.1 1 --seeds 0 1 --steps 16384
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from experiments.issue13.loader import optim_rows

WINDOWS = ((1, 1), (2, 8), (9, 32), (33, 128), (129, 640), (641, 2560), (2561, 10**9))


def _logged_step(run_dir: Path, timesteps: int) -> float | None:
    """The step ``optim.csv`` logged at its first row after ``timesteps`` (the start of the next ``train()``: each row
    is logged before that ``train()``'s updates), if any."""
    for row in optim_rows(run_dir):
        if int(row["timesteps"]) > timesteps and row.get("optim/policy/effective_lr"):
            return float(row["optim/policy/effective_lr"])
    return None


def probe(run_dir: Path, steps: int) -> tuple[list[float], int]:
    """Step sizes after each update of the policy optimizer, and the env steps the probe ran."""
    from rl_adaloss.agents import make_agent
    from rl_adaloss.experiment.config import parse_hyperparams
    from rl_adaloss.experiment.run import read_config

    config = read_config(run_dir)
    if config is None:
        raise SystemExit(f"{run_dir}: no readable config.json")
    torch.set_num_threads(1)
    model, _ = make_agent(
        config["algo"], config["env"], config["optimizer"], config["lr"], b0=config.get("b0"),
        alpha=config.get("alpha"), c=config.get("c"), seed=config["seed"], device="cpu", n_envs=config.get("n_envs"),
        hyperparams=parse_hyperparams(config.get("hyperparams") or []),
    )  # fmt: skip
    out: list[float] = []
    model.policy.optimizer.register_step_post_hook(lambda opt, args, kwargs: out.append(opt.effective_lrs()[0]))
    model.learn(steps)
    return out, int(model.num_timesteps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="sweep folder with the committed runs")
    parser.add_argument("--optimizer", default="adamloss-rel")
    parser.add_argument("--lrs", nargs="+", required=True, help="eta_0 values, spelled as in the run folder names")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--steps", type=int, default=16384, help="environment steps to train (one PPO rollout: 16384)")
    args = parser.parse_args()
    head = "  ".join(f"{a}-{b}" if b < 10**9 else f">{a - 1}" for a, b in WINDOWS)
    print(f"median step size per window of updates ({head}); max; last; optim.csv's logged value")
    for lr in args.lrs:
        for seed in args.seeds:
            runs = sorted(args.folder.glob(f"*__{args.optimizer}__lr{lr}__s{seed}"))
            if len(runs) != 1:
                raise SystemExit(f"no single run for lr={lr!r} seed={seed} in {args.folder} (found {len(runs)})")
            steps, done = probe(runs[0], args.steps)
            arr = np.asarray(steps)
            cells = [arr[a - 1 : b] for a, b in WINDOWS]
            meds = "  ".join(f"{np.median(c):.2e}" if c.size else "-" for c in cells)
            logged = _logged_step(runs[0], done)
            match = "n/a" if logged is None else ("equal" if logged == float(np.float32(arr[-1])) else "DIFFERENT")
            print(
                f"eta_0={lr:<8} seed {seed}: {meds}; max {arr.max():.2e}; last {arr[-1]:.7e} "
                f"({len(arr)} updates); optim.csv after {done}: {logged if logged is None else f'{logged:.7e}'} [{match}]"
            )


if __name__ == "__main__":
    main()
