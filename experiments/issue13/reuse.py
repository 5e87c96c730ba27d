"""Reuse finished runs of an older sweep in an issue-13 evaluation grid, only where reruns reproduce them exactly.

The issue asks to reuse existing runs where the configuration is identical; the pre-registration adds "only once a
rerun of a few of them on the current code reproduces their result". A run of the older sweep (``--from``) is
copied into the evaluation folder (``--out``) when all of these hold:

- the evaluation spec has a run of that name that is not done yet in ``--out``;
- its recorded configuration equals the one the current code resolves, field by field (the resolved agent, budget,
  evaluation plan, evaluation seed, torch threads), package versions aside: the older sweep predates the hash;
- its optimizer has at least ``--min-verified`` runs that were *rerun* into ``--out`` by the current code (a normal
  ``rl-adaloss sweep`` of a subset spec) and whose evaluation curves (``eval.csv``) equal the older ones exactly,
  and no rerun of that optimizer differs. One mismatch refuses the whole optimizer.

A reused run gets ``eval.csv`` and ``result.json`` copied (``result.json`` gains ``reused_from`` and
``verified_by``) and a ``config.json`` with the current identity and hash, so that ``rl-adaloss sweep`` on the full
spec counts it as done. Runs that cannot be reused are listed and left to the sweep. Nothing already in ``--out`` is
overwritten. No ``optim.csv`` exists for a reused run (the older sweep kept no TensorBoard events).

    PYTHONPATH=. python experiments/issue13/reuse.py experiments/grids/eval13_pendulum_ppo.yaml \
        --out experiments/results/eval13_pendulum_ppo --from experiments/results/pendulum_ppo --optimizers adam adamsqrt
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

_COMPARED = ("n_timesteps", "eval_freq", "eval_episodes", "torch_threads")
_UNRECORDED = ("optimizer_class", "optimizer_kwargs", "preset_source")  # not in older records


def _normalised_old(saved: dict[str, Any], seed: int) -> dict[str, Any]:
    """An older run's recorded configuration in the current identity's layout (fields it did not record are absent).

    Older sweeps recorded ``learning_rate`` as a string and ``policy`` among the hyperparameters, and did not record
    ``optimizer_class``, ``optimizer_kwargs`` or ``preset_source``: those are left out of the comparison, and the exact
    reruns are what cover them.
    """
    from rl_adaloss.experiment.identity import EVAL_SEED_OFFSET

    agent = json.loads(json.dumps(saved.get("agent") or {}))
    hyper = agent.get("hyperparams", {})
    if "learning_rate" in hyper:
        try:
            hyper["learning_rate"] = float(hyper["learning_rate"])
        except (TypeError, ValueError):
            pass
    if "policy" in hyper and "policy" not in agent:
        agent["policy"] = hyper.pop("policy")
    old = {"agent": agent, **{k: saved.get(k) for k in _COMPARED}}
    old["n_timesteps"] = saved.get("n_timesteps_resolved", saved.get("n_timesteps"))
    old["eval_seed"] = saved.get("eval_seed", seed + EVAL_SEED_OFFSET)  # older sweeps: always seed + offset
    return old


def _differences(saved: dict[str, Any], identity: dict[str, Any], seed: int) -> list[str]:
    """Fields where an older run's record differs from the identity the current code resolves.

    Package versions and the fields the older record lacks are not compared (see :func:`_normalised_old`).
    """
    from rl_adaloss.experiment.identity import diff_fields

    old = _normalised_old(saved, seed)
    new = {k: v for k, v in identity.items() if k != "versions"}
    new["agent"] = {k: v for k, v in new["agent"].items() if k in old["agent"] or k not in _UNRECORDED}
    return diff_fields(old, new)


def reuse(spec_path: str, out: str, source: str, optimizers: list[str], min_verified: int = 2) -> dict[str, Any]:
    """Copy the reusable runs of ``source`` into ``out``; return what was reused, verified and refused (and why)."""
    from rl_adaloss.experiment.config import run_dir_name
    from rl_adaloss.experiment.identity import config_hash, resolve_run
    from rl_adaloss.experiment.run import read_config, read_result, write_json_atomic
    from rl_adaloss.experiment.spec import load_spec

    configs = [c for c in load_spec(spec_path).runs(out) if c.optimizer in optimizers]
    if not configs:
        raise ValueError(f"Invalid --optimizers: {optimizers} (none is an arm of {spec_path})")
    verified: dict[str, list[str]] = {opt: [] for opt in optimizers}
    mismatched: dict[str, list[str]] = {opt: [] for opt in optimizers}
    candidates = []
    for config in configs:
        name = run_dir_name(config)
        new_dir, old_dir = Path(out) / name, Path(source) / name
        old_result = read_result(old_dir)
        if old_result is None:
            continue
        if read_result(new_dir) is not None:  # rerun by the current code: a verification pair
            same = (new_dir / "eval.csv").read_text() == (old_dir / "eval.csv").read_text()
            (verified if same else mismatched)[config.optimizer].append(name)
        else:
            candidates.append((config, new_dir, old_dir, old_result))
    report: dict[str, Any] = {"verified": verified, "mismatched": mismatched, "reused": [], "refused": {}}
    for config, new_dir, old_dir, old_result in candidates:
        name = new_dir.name
        opt = config.optimizer
        if mismatched[opt]:
            report["refused"][name] = f"a rerun of {opt} did not reproduce the older sweep ({mismatched[opt][0]})"
            continue
        if len(verified[opt]) < min_verified:
            report["refused"][name] = f"only {len(verified[opt])} verified rerun(s) of {opt} (need {min_verified})"
            continue
        identity = resolve_run(config)
        diff = _differences(read_config(old_dir) or {}, identity, config.seed)
        if diff:
            report["refused"][name] = "configuration differs: " + "; ".join(diff[:4])
            continue
        if old_result.get("status") not in ("ok", "diverged"):
            report["refused"][name] = f"older run has status {old_result.get('status')!r}"
            continue
        new_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(old_dir / "eval.csv", new_dir / "eval.csv")
        digest = config_hash(identity)
        provenance = {"reused_from": str(old_dir), "verified_by": sorted(verified[opt])}
        write_json_atomic(new_dir / "config.json", {**asdict(config), "run_dir": name, "config_hash": digest,
                                                    "identity": identity, **provenance})  # fmt: skip
        write_json_atomic(new_dir / "result.json", {**old_result, "config_hash": digest, **provenance})
        report["reused"].append(name)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("--out", required=True, help="the evaluation sweep folder")
    parser.add_argument("--from", dest="source", required=True, help="the older sweep folder")
    parser.add_argument("--optimizers", nargs="+", required=True, help="arms to reuse (each needs verified reruns)")
    parser.add_argument("--min-verified", type=int, default=2)
    args = parser.parse_args(argv)
    report = reuse(args.spec, args.out, args.source, args.optimizers, args.min_verified)
    for opt in args.optimizers:
        print(f"{opt}: verified by {report['verified'][opt] or 'none'}; mismatched: {report['mismatched'][opt] or 'none'}")
    print(f"reused {len(report['reused'])} run(s)")
    for name, why in report["refused"].items():
        print(f"refused {name}: {why}")
    if report["reused"]:
        from rl_adaloss.experiment.sweep import write_results_csv

        write_results_csv(args.out)
    return 0 if not any(report["mismatched"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
