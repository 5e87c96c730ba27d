"""Run a sweep spec with the *training* rewards multiplied by a constant (issue 13's reward-scale check).

The runner has no reward-scale option (agents/factory.py rejects ``env_wrapper``), so this driver runs the spec's
runs in this process, one after the other, with ``agents.factory.make_vec_env_for`` patched to wrap every training
env in :class:`rl_adaloss.envs.ScaleReward` (below VecNormalize, above Monitor: ``rollout/ep_rew_mean`` stays
unscaled). Evaluation envs (``training=False``) are left unscaled, so returns are comparable across scales.
Resumable like ``rl-adaloss sweep``: runs with a final ``result.json`` are skipped; ``results.csv`` is rebuilt after
every run; ``reward_scale.json`` records the factor.

    PYTHONPATH=. python experiments/eval13/scaled_sweep.py SPEC --out DIR --reward-scale 0.01
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

_CALLS = {"training_envs": 0}  # how many training envs were wrapped (checked after every run)


def _factories() -> list[Any]:
    """Every loaded copy of the agent factory (``agents.factory`` and ``rl_adaloss.agents.factory`` are two modules)."""
    import importlib

    mods = []
    for name in ("rl_adaloss.agents.factory", "agents.factory"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        if all(mod is not m for m in mods):
            mods.append(mod)
    return mods


def patch_training_envs(scale: float) -> None:
    """Make the factory's ``make_vec_env_for`` scale the rewards of training envs by ``scale`` (not eval envs)."""
    import stable_baselines3.common.env_util as env_util

    from rl_adaloss.envs import ScaleReward

    for factory in _factories():
        original_for = factory.make_vec_env_for
        if getattr(original_for, "_reward_scale", None) is not None:
            raise RuntimeError("training envs are already patched")

        def scaled_for(
            *args: Any, training: bool = True, _original: Any = original_for, _factory: Any = factory, **kwargs: Any
        ) -> Any:
            if not training or scale == 1.0:
                return _original(*args, training=training, **kwargs)
            # The factory calls SB3's make_vec_env (imported in the module, or inside the function): patch both.
            owners = [m for m in (_factory, env_util) if hasattr(m, "make_vec_env")]
            originals = [m.make_vec_env for m in owners]
            sb3_make = originals[-1]

            def make(*a: Any, **kw: Any) -> Any:
                assert "wrapper_class" not in kw, "the factory now wraps envs itself: update this driver"
                _CALLS["training_envs"] += 1
                return sb3_make(*a, wrapper_class=ScaleReward, wrapper_kwargs={"scale": scale}, **kw)

            for m in owners:
                m.make_vec_env = make
            try:
                return _original(*args, training=training, **kwargs)
            finally:
                for m, original in zip(owners, originals, strict=True):
                    m.make_vec_env = original

        scaled_for._reward_scale = scale  # type: ignore[attr-defined]
        factory.make_vec_env_for = scaled_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec")
    parser.add_argument("--out", required=True)
    parser.add_argument("--reward-scale", type=float, required=True)
    parser.add_argument("--max-runs", type=int, default=None, help="stop after this many runs (resume later)")
    args = parser.parse_args()

    from rl_adaloss.experiment.run import run_one
    from rl_adaloss.experiment.spec import load_spec
    from rl_adaloss.experiment.sweep import pending_runs, write_results_csv

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    marker = out / "reward_scale.json"
    if marker.exists() and json.loads(marker.read_text())["reward_scale"] != args.reward_scale:
        raise SystemExit(f"{out} holds runs with another reward scale: {marker.read_text()}")
    marker.write_text(json.dumps({"reward_scale": args.reward_scale, "spec": args.spec}) + "\n")
    patch_training_envs(args.reward_scale)
    configs = load_spec(args.spec).runs(out)
    todo, skipped = pending_runs(configs)
    todo.sort(key=lambda c: c.seed)  # as rl-adaloss sweep: every cell's seed 0 first, then seed 1, ...
    if args.max_runs is not None:
        todo = todo[: args.max_runs]
    print(f"{len(todo)} runs to do, {skipped} done", flush=True)
    start = time.time()
    for i, config in enumerate(todo):
        before = _CALLS["training_envs"]
        result = run_one(config)
        write_results_csv(out)
        if args.reward_scale != 1.0 and _CALLS["training_envs"] == before and result.get("status") != "failed":
            raise SystemExit(
                f"the reward scale was not applied to {config}: the runner no longer uses the patched "
                "factory; fix experiments/eval13/scaled_sweep.py and delete that run's folder"
            )
        print(
            f"[{i + 1}/{len(todo)}] {result.get('status')} {result.get('final_return_mean')} "
            f"{config.optimizer} lr={config.lr} seed={config.seed} ({time.time() - start:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
