"""Run a sweep spec with the rewards multiplied by a constant (issue 13's reward-scale check).

Each run gets the preset key ``env_wrapper: {rl_adaloss.envs.ScaleReward: {scale: S}}`` (SB3's ``wrapper_class``),
so the factory wraps every env in :class:`rl_adaloss.envs.ScaleReward` above its ``Monitor``: ``rollout/ep_rew_mean``
and the evaluations (SB3's ``evaluate_policy`` reads the ``Monitor``'s episode returns) stay unscaled, so returns are
comparable across scales, while the losses the optimizers see are scaled. The key is in each new run's identity.
Resumable like ``rl-adaloss sweep``: runs with a final ``result.json`` are skipped; ``results.csv`` is rebuilt after
every run; ``reward_scale.json`` records the factor.

The committed runs (experiments/results/eval13_reward_scale/x*, design_adamloss_rel/a1e3_x*) were made by this
driver's first version, which patched the factory instead: their recorded identity has no ``env_wrapper`` (the factor
is in ``reward_scale.json``), so a run there whose hash is that of the unwrapped configuration counts as done too.

    PYTHONPATH=. python experiments/issue13/scaled_sweep.py SPEC --out DIR --reward-scale 0.01 [--dry-run]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from rl_adaloss.experiment.config import RunConfig, hyperparams_items, parse_hyperparams

WRAPPER = "rl_adaloss.envs.ScaleReward"


def scaled(config: RunConfig, scale: float) -> RunConfig:
    """``config`` with its envs' rewards multiplied by ``scale`` (the ``env_wrapper`` preset key; none at 1)."""
    if scale == 1.0:
        return config
    hyperparams: dict[str, Any] = parse_hyperparams(config.hyperparams)
    hyperparams["env_wrapper"] = [{WRAPPER: {"scale": scale}}]
    return dataclasses.replace(config, hyperparams=hyperparams_items(hyperparams))


def made_by_first_driver(config: RunConfig) -> bool:
    """A finished run of the unwrapped ``config`` in a folder of this driver (the first version's runs)."""
    from rl_adaloss.experiment.config import run_dir_name
    from rl_adaloss.experiment.identity import config_hash, resolve_run
    from rl_adaloss.experiment.run import read_config, read_result

    run_dir = Path(config.log_folder) / run_dir_name(config)
    if read_result(run_dir) is None:
        return False
    return (read_config(run_dir) or {}).get("config_hash") == config_hash(resolve_run(config))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec")
    parser.add_argument("--out", required=True)
    parser.add_argument("--reward-scale", type=float, required=True)
    parser.add_argument("--max-runs", type=int, default=None, help="stop after this many runs (resume later)")
    parser.add_argument("--dry-run", action="store_true", help="say how many runs are done and to do; run nothing")
    args = parser.parse_args()

    from rl_adaloss.experiment.run import run_one
    from rl_adaloss.experiment.spec import load_spec
    from rl_adaloss.experiment.sweep import pending_runs, write_results_csv

    out = Path(args.out)
    marker = out / "reward_scale.json"
    if marker.exists() and json.loads(marker.read_text())["reward_scale"] != args.reward_scale:
        raise SystemExit(f"{out} holds runs with another reward scale: {marker.read_text()}")
    configs = load_spec(args.spec).runs(out)
    first = [c for c in configs if marker.exists() and args.reward_scale != 1.0 and made_by_first_driver(c)]
    todo, skipped = pending_runs([scaled(c, args.reward_scale) for c in configs if c not in first])
    todo.sort(key=lambda c: c.seed)  # as rl-adaloss sweep: every cell's seed 0 first, then seed 1, ...
    if args.max_runs is not None:
        todo = todo[: args.max_runs]
    print(f"{len(todo)} runs to do, {skipped + len(first)} done", flush=True)
    if args.dry_run:
        return
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"reward_scale": args.reward_scale, "spec": args.spec}) + "\n")
    start = time.time()
    for i, config in enumerate(todo):
        result = run_one(config)
        write_results_csv(out)
        print(
            f"[{i + 1}/{len(todo)}] {result.get('status')} {result.get('final_return_mean')} "
            f"{config.optimizer} lr={config.lr} seed={config.seed} ({time.time() - start:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
