"""Sweep throughput (runs/min): local backend with 1 and 2 workers, and the Ray backend, on the same small grid.

    python experiments/benchmarks/bench_sweep.py [--runs 8] [--n-timesteps 2048] [--workers 2] [--no-ray]

Every backend runs the same grid into a fresh temporary folder; the wall time includes worker start-up (spawned
processes importing torch/SB3; Ray's workers) but not ``ray.init`` itself (done once, before timing).
The table reports runs/min and the speed-up over 1 local worker, next to the machine's own ceiling: the speed-up of
the same number of processes doing pure CPU work (shared VMs often give less than 2x for 2 vCPUs).
"""

from __future__ import annotations

import argparse
import tempfile
import time

from rl_adaloss.experiment.spec import spec_from_dict
from rl_adaloss.experiment.sweep import run_sweep


def grid(runs: int, n_timesteps: int) -> dict:
    return {
        "envs": ["Pendulum-v1"],
        "algos": ["ppo"],
        "optimizers": ["adam", "adamloss"],
        "lrs": [1e-3],
        "seeds": list(range(max(runs // 2, 1))),
        "n_timesteps": n_timesteps,
        "eval_freq": n_timesteps,
        "eval_episodes": 2,
        "hyperparams": {"n_envs": 1, "n_steps": 256, "batch_size": 64, "n_epochs": 4, "policy_kwargs": {"net_arch": [64, 64]}},
    }


def bench(backend: str, workers: int, spec) -> dict:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        summary = run_sweep(spec, out, backend=backend, workers=workers, progress=False)
        wall = time.perf_counter() - start
    assert summary["ok"] == summary["total"], summary
    return {"backend": backend, "workers": workers, "runs": summary["total"], "wall_s": wall,
            "runs_per_min": 60 * summary["total"] / wall}  # fmt: skip


def _spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def machine_ceiling(workers: int, n: int = 20_000_000) -> float:
    """Speed-up of ``workers`` spawned processes over one on pure CPU work: what the machine itself allows.

    Shared VMs often give less than ``workers`` x (noisy neighbours, vCPU throttling); the sweep's own speed-up is
    only meaningful next to this number, measured in the same run.
    """
    import multiprocessing

    start = time.perf_counter()
    for _ in range(workers):
        _spin(n)
    serial = time.perf_counter() - start
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.map(_spin, [0] * workers)  # start-up outside the timing
        start = time.perf_counter()
        pool.map(_spin, [n] * workers)
        parallel = time.perf_counter() - start
    return serial / parallel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--n-timesteps", type=int, default=2048)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    spec = spec_from_dict(grid(args.runs, args.n_timesteps))
    rows = [bench("local", 1, spec), bench("local", args.workers, spec)]
    if not args.no_ray:
        import ray

        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        try:
            rows.append(bench("ray", args.workers, spec))
        finally:
            ray.shutdown()
    ceiling = machine_ceiling(args.workers)
    base = rows[0]["runs_per_min"]
    print(f"grid: {rows[0]['runs']} PPO Pendulum-v1 runs of {args.n_timesteps} steps")
    print(f"machine ceiling: {args.workers} processes of pure CPU work run {ceiling:.2f}x faster than one")
    print(f"{'backend':8} {'workers':>7} {'runs':>5} {'wall_s':>8} {'runs/min':>9} {'x local-1':>9}")
    for r in rows:
        speedup = r["runs_per_min"] / base
        print(
            f"{r['backend']:8} {r['workers']:>7} {r['runs']:>5} {r['wall_s']:>8.1f} {r['runs_per_min']:>9.2f} {speedup:>9.2f}"
        )


if __name__ == "__main__":
    main()
