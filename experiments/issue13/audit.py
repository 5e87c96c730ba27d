"""Recompute, from the committed runs under experiments/results/, the numbers behind issue 13's audit corrections.

    PYTHONPATH=. python experiments/issue13/audit.py

Prints: (1) when grid 1's Adam runs at eta_0 = 1 diverged; (2) seeds and evaluation episodes per grid; (3) SAC's
diverged runs and the score they get (the env's floor, as rl-adaloss report computes it); (4) the optimizer steps of
a 500k-step grid-2 run and the growth of b that a 7% step decay at eta_0 = 1e-2 implies; (5) the final returns at
eta_0 = 0.1 of grids 2, 2b and 4 against a swing-up threshold of 800; (6) the AdamLossFade comparison on paired seeds
0-2 (grid 1's Adam and AdamLoss restricted to the fade grid's seeds).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

R = Path("experiments/results")
SWING_UP = 800.0  # RL Zoo's PPO reaches about 870 on the Bullet swing-up after 2M steps


def runs(grid: str) -> list[dict]:
    out = []
    for d in sorted((R / grid).iterdir()):
        if (d / "result.json").exists():
            res = json.loads((d / "result.json").read_text())
            cfg = json.loads((d / "config.json").read_text())
            curve = list(csv.DictReader((d / "eval.csv").open())) if (d / "eval.csv").exists() else []
            out.append(dict(cfg=cfg, res=res, curve=curve, name=d.name))
    return out


def lr_of(r: dict) -> float:
    return float((r["cfg"].get("agent") or {}).get("lr", r["cfg"]["lr"]))


def main() -> None:
    print("(1) grid 1, Adam at eta_0 = 1: status, env steps reached, evaluations (timestep: mean)")
    for r in runs("pendulum_ppo"):
        if r["cfg"]["optimizer"] == "adam" and lr_of(r) == 1.0:
            evals = ", ".join(f"{int(float(e['timesteps']))}: {float(e['mean']):.0f}" for e in r["curve"])
            print(
                f"  seed {r['cfg']['seed']}: {r['res']['status']}, num_timesteps {r['res']['num_timesteps']}, evals [{evals}]"
            )

    print("(2) per grid: seeds, evaluation episodes, budget")
    for grid in ("pendulum_ppo", "pendulum_ppo_fade", "pendulum_sac", "bullet_ppo", "bullet_ppo_rawreward", "cartpole_ppo"):
        rs = runs(grid)
        seeds = sorted({r["cfg"]["seed"] for r in rs})
        eps = sorted({r["cfg"]["eval_episodes"] for r in rs})
        budget = sorted({r["cfg"]["n_timesteps"] for r in rs})
        print(f"  {grid}: {len(rs)} runs, seeds {seeds}, eval_episodes {eps}, n_timesteps {budget}")

    print("(3) SAC (grid 3) diverged runs and the env floor used to score them")
    sac = runs("pendulum_sac")
    finite = [float(e["mean"]) for r in sac for e in r["curve"] if e["mean"] not in ("", "nan", "inf", "-inf")]
    print(f"  floor = lowest finite evaluation of any run of the sweep: {min(finite):.0f}")
    for r in sac:
        if r["res"]["status"] == "diverged":
            print(
                f"  {r['name']}: final_return_mean {r['res']['final_return_mean']}, evaluations {len(r['curve'])}, "
                f"num_timesteps {r['res']['num_timesteps']}"
            )

    print("(4) grid 2: optimizer steps of one run, and what a 7% step decay at eta_0 = 1e-2 means for b")
    r = next(r for r in runs("bullet_ppo") if r["cfg"]["optimizer"] == "adamloss")
    a = r["cfg"]["agent"]
    hp = a["hyperparams"]
    rollout = a["n_envs"] * hp["n_steps"]
    n_rollouts = r["res"]["num_timesteps"] // rollout
    per_rollout = hp["n_epochs"] * (rollout // hp["batch_size"])
    print(
        f"  num_timesteps {r['res']['num_timesteps']} = {n_rollouts} rollouts of {a['n_envs']} x {hp['n_steps']}; "
        f"{hp['n_epochs']} epochs x {rollout // hp['batch_size']} minibatches = {per_rollout} updates per rollout; "
        f"{n_rollouts * per_rollout} optimizer steps"
    )
    b0 = 1 / 1e-2**2
    print(
        f"  step 0.0093 at eta_0 = 1e-2: b = 1/0.0093^2 = {1 / 0.0093**2:.0f}, b0 = {b0:.0f}, growth {1 / 0.0093**2 - b0:.0f}"
    )

    print(f"(5) final returns at eta_0 = 0.1 (seeds 0, 1, 2) against the swing-up threshold {SWING_UP:.0f}")
    for grid in ("bullet_ppo", "bullet_ppo_rawreward", "cartpole_ppo"):
        for opt in ("adam", "adamloss"):
            vals = [
                (r["cfg"]["seed"], r["res"]["final_return_mean"])
                for r in runs(grid)
                if r["cfg"]["optimizer"] == opt and lr_of(r) == 0.1
            ]
            ups = sum(v is not None and v >= SWING_UP for _, v in vals)
            print(f"  {grid} {opt}: {', '.join(f'{v:.0f}' for _, v in sorted(vals))}; >= {SWING_UP:.0f}: {ups} of {len(vals)}")
    for grid in ("bullet_ppo", "bullet_ppo_rawreward", "cartpole_ppo"):
        all_runs = runs(grid)
        ups = [
            (r["cfg"]["optimizer"], lr_of(r), r["cfg"]["seed"], round(r["res"]["final_return_mean"]))
            for r in all_runs
            if (r["res"]["final_return_mean"] or -1e9) >= SWING_UP
        ]
        print(f"  {grid}: runs >= {SWING_UP:.0f} at any eta_0: {ups}")

    print("(6) AdamLossFade section on paired seeds 0-2: mean final return per eta_0")
    fade_seeds = sorted({r["cfg"]["seed"] for r in runs("pendulum_ppo_fade")})
    rows: dict[str, dict[float, list[float]]] = {}
    for grid, opts in (("pendulum_ppo_fade", ("adamloss-fade",)), ("pendulum_ppo", ("adamloss", "adam"))):
        for r in runs(grid):
            if r["cfg"]["optimizer"] in opts and r["cfg"]["seed"] in fade_seeds:
                rows.setdefault(r["cfg"]["optimizer"], {}).setdefault(lr_of(r), []).append(r["res"]["final_return_mean"])
    lrs = sorted(rows["adamloss-fade"])
    print("  eta_0 | " + " | ".join(f"{lr:g}" for lr in lrs))
    for opt, cells in rows.items():
        print(f"  {opt} (seeds {fade_seeds}) | " + " | ".join(f"{sum(cells[lr]) / len(cells[lr]):.0f}" for lr in lrs))


if __name__ == "__main__":
    main()
