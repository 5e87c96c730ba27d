"""Issue 13's reward-scale check against its pre-registered predictions, on paired seeds.

    PYTHONPATH=. python experiments/issue13/reward_scale_table.py

Cells: final return (the last evaluation, 10 episodes, on the unscaled env), mean and 95% Student-t interval over the
finished seeds (listed); x1 is ``eval13_pendulum_ppo`` (the same configuration, unscaled). Steps
(``optim/policy/effective_lr`` from each run's ``optim.csv``): after the first rollout (the first value logged after an
update) and at the end, as the range over the seeds. The x0.01-vs-x1 check uses the seeds both scales have. Then the
pre-registered checks, each printed with its outcome:

- x0.01 vs x1: each AdamLossRel cell mean at x0.01 lies within the x1 cell's 95% interval (both eta_0);
- at eta_0 = 0.1 AdamLossRel's step after the first rollout is below 0.01 at x0.01 and x1;
- x100: every arm's runs end below -1000; AdamLossRel's final step >= 1e-4.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from experiments.issue13.loader import optim_rows
from rl_adaloss.experiment.stats import mean_ci

ROOT = Path("experiments/results")
FOLDERS = {"x0.01": ROOT / "eval13_reward_scale" / "x0.01", "x1": ROOT / "eval13_pendulum_ppo",
           "x100": ROOT / "eval13_reward_scale" / "x100"}  # fmt: skip
ARMS = ("adam", "adamloss", "adamloss-rel")
LRS = (1e-3, 0.1)
SEEDS = range(5)


def _run(scale: str, opt: str, lr: float, seed: int) -> dict | None:
    """Final return and steps of one run (None if it has not finished)."""
    run = FOLDERS[scale] / f"Pendulum-v1__ppo__{opt}__lr{lr:g}__s{seed}"
    try:
        result = json.loads((run / "result.json").read_text())
    except OSError:
        return None
    first = end = None
    if (run / "optim.csv").exists():
        rows = [r for r in optim_rows(run) if r.get("optim/policy/effective_lr")]
        trained = [float(r["optim/policy/effective_lr"]) for r in rows if r.get("train/loss")]  # after an update
        first, end = (trained[0], trained[-1]) if trained else (None, None)
    return {"final": result["final_return_mean"], "first": first, "end": end}


def _fmt_range(values: list[float | None]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    low, high = f"{min(values):.1e}", f"{max(values):.1e}"
    return low if low == high else f"{low}-{high}"


def _cell(scale: str, opt: str, lr: float, seeds: list[int]) -> list[dict]:
    return [r for s in seeds if (r := _run(scale, opt, lr, s)) is not None]


def main() -> None:
    for opt in ARMS:
        for lr in LRS:
            print(f"== {opt}, eta_0 = {lr:g}")
            for scale in FOLDERS:
                seeds = [s for s in SEEDS if _run(scale, opt, lr, s) is not None]
                cell = _cell(scale, opt, lr, seeds)
                if not cell:
                    continue
                finals = np.array([r["final"] if r["final"] is not None else np.nan for r in cell])
                mean, low, high = mean_ci(finals)
                runs = ", ".join(f"{v:.0f}" for v in finals)
                print(f"  {scale:>5} seeds {seeds}: {mean:.0f} [{low:.0f}, {high:.0f}]; runs {runs}"
                      f"; step after rollout 1 {_fmt_range([r['first'] for r in cell])}, "
                      f"final {_fmt_range([r['end'] for r in cell])}")  # fmt: skip
    print("== pre-registered checks")
    for lr in LRS:
        paired = [s for s in SEEDS if all(_run(sc, "adamloss-rel", lr, s) for sc in ("x0.01", "x1"))]
        if len(paired) < 2:
            print(f"  eta_0 {lr:g}: fewer than 2 paired seeds at x0.01 and x1")
            continue
        mean = float(np.mean([r["final"] for r in _cell("x0.01", "adamloss-rel", lr, paired)]))
        _, lo, hi = mean_ci(np.array([r["final"] for r in _cell("x1", "adamloss-rel", lr, paired)]))
        print(f"  eta_0 {lr:g}: AdamLossRel's x0.01 mean {mean:.0f} within x1's 95% interval [{lo:.0f}, {hi:.0f}]: "
              f"{'yes' if lo <= mean <= hi else 'NO'} (paired seeds {paired})")  # fmt: skip
    for scale in ("x0.01", "x1"):
        cell = _cell(scale, "adamloss-rel", 0.1, list(SEEDS))
        ok = bool(cell) and all(r["first"] is not None and r["first"] < 0.01 for r in cell)
        print(f"  {scale}, eta_0 0.1: AdamLossRel's step after rollout 1 < 0.01 in all {len(cell)} runs: "
              f"{'yes' if ok else 'NO'}")  # fmt: skip
    x100 = [r for opt in ARMS for lr in LRS for r in _cell("x100", opt, lr, list(SEEDS))]
    print(f"  x100: every run ends below -1000: {'yes' if all(r['final'] < -1000 for r in x100) else 'NO'} ({len(x100)} runs)")
    ends = [r["end"] for lr in LRS for r in _cell("x100", "adamloss-rel", lr, list(SEEDS))]
    ok = bool(ends) and all(e is not None and e >= 1e-4 for e in ends)
    print(f"  x100: AdamLossRel's final step >= 1e-4 in all {len(ends)} runs: {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    main()
