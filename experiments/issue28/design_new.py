"""The new optimizer's design runs, one line each, beside issue 13's cells of the same task and eta_0.

    PYTHONPATH=. python experiments/issue28/design_new.py experiments/results/design28_new_*

Per run (design seeds): the prototype's kwargs, eta_0, the final return, and the mechanism read from the run's
``optim.csv`` (written by ``experiments/issue13/optim_csv.py`` from its TensorBoard events): on PPO the approx_kl of
the first ``train()`` and its maximum over the run, and the step (``optim/policy/effective_lr``, or the critic's on
SAC) after the first ``train()`` and at the end. Beside it, issue 13's cell of the same task and eta_0 (mean final
return over seeds 0-4) for Adam and AdamLossRel, from ``experiments/results/eval13_<task>/table.csv``: other seeds, so
context, not a paired comparison.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

from rl_adaloss.experiment.run import read_config, read_result

_EVAL13 = {
    ("Hopper-v4", "ppo"): "eval13_hopper_ppo",
    ("MountainCarContinuous-v0", "sac"): "eval13_mountaincar_sac",
    ("Pendulum-v1", "ppo"): "eval13_pendulum_ppo",
    ("Pendulum-v1", "sac"): "eval13_pendulum_sac",
    ("rl_adaloss/CartPoleSwingUp-v0", "ppo"): "eval13_cartpole_ppo",
    ("InvertedPendulumSwingupBulletEnv-v0", "ppo"): "eval13_bullet_ppo",
}


def _column(rows: list[dict[str, str]], *names: str) -> list[float]:
    for name in names:
        values = [float(r[name]) for r in rows if r.get(name) not in (None, "")]
        if values:
            return values
    return []


def mechanism(run: Path) -> dict[str, float]:
    """approx_kl (first ``train()``, max) and the step (after the first ``train()``, last) from ``optim.csv``."""
    path = run / "optim.csv"
    if not path.exists():
        return {}
    rows = list(csv.DictReader(path.open()))
    kl = _column(rows, "train/approx_kl")
    step = _column(rows, "optim/policy/effective_lr", "optim/critic/effective_lr", "optim/q_net/effective_lr")
    out = {}
    if kl:
        out["kl_first"], out["kl_max"] = kl[0], max(kl)
    if len(step) > 1:
        out["step_first"], out["step_last"] = step[1], step[-1]
    return out


def eval13_cells(root: Path, env: str, algo: str) -> dict[tuple[str, float], float]:
    """(optimizer, eta_0) -> mean final return of issue 13's cell."""
    folder = _EVAL13.get((env, algo))
    table = root / folder / "table.csv" if folder else None
    if table is None or not table.exists():
        return {}
    return {(r["optimizer"], float(r["lr"])): float(r["mean"]) for r in csv.DictReader(table.open())}


def main(folders: list[str]) -> None:
    results = Path("experiments/results")
    print("task | arm | eta_0 | seed | final | kl first / max | step first / last | eval13 cell Adam / Rel")
    for folder in folders:
        for run in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
            result, config = read_result(run), read_config(run)
            if result is None or config is None:
                continue
            agent = config["agent"]
            lr = float(config["lr"])
            kwargs = agent.get("optimizer_kwargs") or {}
            arm = ",".join(f"{k}={v}" for k, v in sorted(kwargs.items()) if k != "eps")
            m = mechanism(run)
            cells = eval13_cells(results, config["env"], config["algo"])
            adam, rel = cells.get(("adam", lr), math.nan), cells.get(("adamloss-rel", lr), math.nan)
            final = result["final_return_mean"]
            print(
                f"{config['env']} {config['algo']} | {arm} | {lr:g} | {config['seed']} | "
                f"{final if final is None else round(final, 1)} | "
                f"{m.get('kl_first', math.nan):.3g} / {m.get('kl_max', math.nan):.3g} | "
                f"{m.get('step_first', math.nan):.2e} / {m.get('step_last', math.nan):.2e} | {adam:.1f} / {rel:.1f}"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
