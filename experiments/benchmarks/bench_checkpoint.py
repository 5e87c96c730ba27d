"""Checkpoint overhead: wall time of the same seeded run with and without checkpoints, interleaved, side by side.

Usage (the numbers in docs/checkpoints.md):

    python experiments/benchmarks/bench_checkpoint.py --reps 3

For each case (the Bullet PPO preset, a SAC preset) it runs pairs of identical runs, one with ``checkpoint_freq=0``
and one with checkpoints every ``--every`` steps, in alternating order (off/on, on/off, ...) so that load drifting
on a shared machine hits both alike; prints each pair's wall times, the ratio of the medians, the time and size of
one checkpoint, and checks that both runs ended with the same evaluation curve (checkpoints change nothing). The
preset budgets (500k steps) are too long for a shared 2-core machine: ``--ppo-steps`` / ``--sac-steps`` reduce them;
checkpoint cost grows with the replay buffer (SAC), so the per-checkpoint time at the largest buffer is printed too.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from rl_adaloss.experiment import RunConfig, run_dir_name, run_one

DEFAULT_EVERY = RunConfig().checkpoint_freq


def _one(config: RunConfig) -> tuple[float, dict, str]:
    start = time.perf_counter()
    result = run_one(config)
    wall = time.perf_counter() - start
    assert result["status"] == "ok", result.get("error")
    return wall, result, (Path(config.log_folder) / run_dir_name(config) / "eval.csv").read_text()


def bench(name: str, base: RunConfig, every: int, reps: int, root: Path) -> float:
    """Print the interleaved comparison for one case; return the seconds per env step without checkpoints."""
    walls: dict[bool, list[float]] = {False: [], True: []}
    per_ckpt, sizes = [], []
    for rep in range(reps):
        order = (False, True) if rep % 2 == 0 else (True, False)
        curves = {}
        for on in order:
            folder = root / f"{name}-{'on' if on else 'off'}-{rep}"
            config = RunConfig(**{**base.__dict__, "checkpoint_freq": every if on else 0, "log_folder": str(folder)})
            wall, result, curves[on] = _one(config)
            walls[on].append(wall)
            if on:
                ck = result["checkpoints"]
                per_ckpt.append(ck["seconds"] / max(ck["written"], 1))
                sizes.append(ck["max_bytes"])
                print(f"  {name} rep {rep}: {ck['written']} checkpoints, {ck['seconds']:.2f} s in all, "
                      f"largest {ck['max_bytes'] / 1e6:.2f} MB")  # fmt: skip
        assert curves[False] == curves[True], "checkpoints changed the evaluation curve"
        print(f"  {name} rep {rep}: off {walls[False][-1]:.1f} s, on {walls[True][-1]:.1f} s")
    off, on = statistics.median(walls[False]), statistics.median(walls[True])
    one = statistics.median(per_ckpt)
    assert base.n_timesteps is not None
    per_step = off / base.n_timesteps
    print(f"{name}: median wall time off {off:.1f} s, on {on:.1f} s, ratio on/off {on / off:.3f}; one checkpoint "
          f"{one * 1e3:.0f} ms (median), {max(sizes) / 1e6:.2f} MB at most; every {every} steps of {base.n_timesteps}; "
          f"at the default interval ({DEFAULT_EVERY} steps) checkpoints take {one / (DEFAULT_EVERY * per_step):.3%} of "
          f"training time ({per_step * 1e3:.2f} ms per env step here)")  # fmt: skip
    return per_step


def full_buffer(per_step: float) -> None:
    """Time one checkpoint of SAC on Hopper-v4 with its full 1M-step replay buffer (the worst case of the presets)."""
    from rl_adaloss.agents import make_agent
    from rl_adaloss.experiment.checkpoint import checkpoint_state, save_checkpoint

    model, _ = make_agent("sac", "Hopper-v4", "adamloss", 1e-3, seed=0, hyperparams={"buffer_size": 1_000_000})
    buf = model.replay_buffer
    rng = np.random.default_rng(0)
    for key in ("observations", "next_observations", "actions", "rewards"):
        arr = getattr(buf, key)
        arr[:] = rng.standard_normal(arr.shape).astype(arr.dtype)
    buf.full, buf.pos = True, 0
    eval_env = model.get_env()
    with tempfile.TemporaryDirectory() as tmp:
        times, size = [], 0
        for _ in range(3):
            start = time.perf_counter()
            size = save_checkpoint(Path(tmp) / "checkpoint.pkl", checkpoint_state(model, eval_env, [], {"config_hash": "x"}))
            times.append(time.perf_counter() - start)
    one = statistics.median(times)
    print(f"sac-hopper-full-buffer: one checkpoint {one:.2f} s (median of 3), {size / 1e6:.0f} MB; at the default interval "
          f"({DEFAULT_EVERY} steps) and the SAC time per step measured: {one / (DEFAULT_EVERY * per_step):.3%}")  # fmt: skip


def main() -> None:
    """Run both cases."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--ppo-steps", type=int, default=49_152, help="Bullet PPO budget (preset: 500k)")
    parser.add_argument("--ppo-every", type=int, default=16_384, help="PPO checkpoint interval (16384: every rollout)")
    parser.add_argument("--sac-steps", type=int, default=6_000, help="SAC Pendulum budget (preset: 20k)")
    parser.add_argument("--sac-every", type=int, default=1_000, help="SAC checkpoint interval")
    parser.add_argument("--no-full-buffer", action="store_true", help="skip the full 1M-step Hopper buffer timing")
    parser.add_argument("--only-full-buffer", type=float, default=None, metavar="S_PER_STEP",
                        help="only time the full-buffer checkpoint, against this SAC time per env step")  # fmt: skip
    args = parser.parse_args()
    if args.only_full_buffer is not None:
        full_buffer(args.only_full_buffer)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ppo = RunConfig(algo="ppo", env="InvertedPendulumSwingupBulletEnv-v0", optimizer="adamloss", lr=1e-3,
                        n_timesteps=args.ppo_steps, eval_freq=16_384)  # fmt: skip
        bench("bullet-ppo", ppo, args.ppo_every, args.reps, root)
        sac = RunConfig(algo="sac", env="Pendulum-v1", optimizer="adamloss", lr=1e-3, n_timesteps=args.sac_steps,
                        eval_freq=1_000)  # fmt: skip
        per_step = bench("pendulum-sac", sac, args.sac_every, args.reps, root)
    if not args.no_full_buffer:
        full_buffer(per_step)


if __name__ == "__main__":
    main()
