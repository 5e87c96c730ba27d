"""Summarise issue 13's design runs: final return and the step size over training, per candidate, eta_0 and seed.

    PYTHONPATH=. python experiments/issue13/optim_csv.py experiments/results/design_adamloss_rel/*/
    PYTHONPATH=. python experiments/issue13/design_table.py experiments/results/design_adamloss_rel

Per run: final return (the last evaluation, 10 episodes), the step after the first rollout (first logged value after
training started), its maximum, and its final value (``optim/policy/effective_lr`` from each run's optim.csv).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from experiments.issue13.loader import optim_rows


def references(root: str) -> None:
    """Grid 1's Adam and AdamLoss and the AdamLossFade grid on the design runs' (eta_0, seed) pairs, for comparison."""
    pairs = set()
    for run in Path(root).glob("*/*/config.json"):
        cfg = json.loads(run.read_text())
        pairs.add((float(cfg["lr"]), cfg["seed"]))
    print("== references on the same (eta_0, seed): final return")
    for grid, opts in (("pendulum_ppo", ("adam", "adamloss")), ("pendulum_ppo_fade", ("adamloss-fade",))):
        for opt in opts:
            cells = []
            for lr, seed in sorted(pairs):
                path = Path("experiments/results") / grid / f"Pendulum-v1__ppo__{opt}__lr{lr:g}__s{seed}" / "result.json"
                if path.exists():
                    final = json.loads(path.read_text())["final_return_mean"]
                    cells.append(f"{lr:g} s{seed}: {'none' if final is None else round(final)}")
            print(f"  {opt}: " + "; ".join(cells))


def main(root: str) -> None:
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        scale = (
            json.loads((folder / "reward_scale.json").read_text())["reward_scale"]
            if (folder / "reward_scale.json").exists()
            else 1.0
        )
        print(f"== {folder.name} (training reward scale x{scale:g})")
        print("  optimizer eta_0 seed | status final_return | step: rollout 2, max, final")
        rows = []
        for run in sorted(p for p in folder.iterdir() if p.is_dir() and (p / "result.json").exists()):
            res = json.loads((run / "result.json").read_text())
            cfg = json.loads((run / "config.json").read_text())
            steps = []
            for r in optim_rows(run):
                v = r.get("optim/policy/effective_lr", "")
                if v:
                    steps.append(float(v))
            lr = float(cfg["lr"])
            step_txt = f"{steps[1]:.2e}, {max(steps):.2e}, {steps[-1]:.2e}" if len(steps) > 1 else "n/a"
            final = res["final_return_mean"]
            final_txt = "none" if final is None else round(final)
            opt = cfg["optimizer"]
            rows.append((opt, lr, cfg["seed"], f"  {opt} {lr:g} s{cfg['seed']} | {res['status']} {final_txt} | {step_txt}"))
        for *_, text in sorted(rows):
            print(text)


if __name__ == "__main__":
    main(sys.argv[1])
    references(sys.argv[1])
