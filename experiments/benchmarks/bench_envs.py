"""Env steps per second of the swing-up ids beside Gymnasium's Pendulum-v1 and InvertedPendulum-v5, in one run.

Each env is made with ``rl_adaloss.envs.make_env`` (so the Bullet id resolves when the ``bullet`` extra is
installed), reset with a fixed seed and stepped with pre-sampled seeded random actions (resetting on episode
end); the timing covers ``step`` and ``reset`` only. Ids whose extra is missing are reported as skipped.

    python experiments/benchmarks/bench_envs.py --steps 20000 --repeats 3
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from rl_adaloss.envs import BULLET_SWINGUP_ID, SWINGUP_IDS, make_env

REFERENCE_IDS = ("Pendulum-v1", "InvertedPendulum-v5", "InvertedDoublePendulum-v5")


@dataclass(frozen=True)
class Args:
    steps: int = 20_000
    """Env steps timed per env and repeat."""
    repeats: int = 3
    """Timed repeats per env; the best (fastest) is reported."""
    seed: int = 0
    """Seed of the env resets and of the random actions."""
    episodes: int = 10
    """Episodes of the uniform random policy whose mean return is reported (0 skips that table)."""


def steps_per_second(env_id: str, steps: int, repeats: int, seed: int) -> float:
    """Best-of-``repeats`` env steps per second under seeded random actions."""
    env = make_env(env_id)
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(steps)]
    best = 0.0
    for repeat in range(repeats):
        env.reset(seed=seed + repeat)
        start = time.perf_counter()
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
        best = max(best, steps / (time.perf_counter() - start))
    env.close()
    return best


def random_policy_returns(env_id: str, episodes: int, seed: int) -> np.ndarray:
    """Returns of ``episodes`` full episodes of uniform random actions; episode ``k`` uses seed ``seed + k``."""
    env = make_env(env_id)
    env.action_space.seed(seed)
    returns = np.zeros(episodes)
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        done = False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            returns[episode] += float(reward)
            done = terminated or truncated
    env.close()
    return returns


def main(args: Args) -> None:
    rates: dict[str, float | None] = {}
    for env_id in (*REFERENCE_IDS, *SWINGUP_IDS, BULLET_SWINGUP_ID):
        try:
            rates[env_id] = steps_per_second(env_id, args.steps, args.repeats, args.seed)
        except ImportError as error:  # a missing extra: report it and go on
            print(f"skipped {env_id}: {error}")
            rates[env_id] = None
    pendulum, inverted = rates["Pendulum-v1"], rates["InvertedPendulum-v5"]
    print(f"\n{args.steps} steps x best of {args.repeats}, seeded random actions\n")
    print(f"| {'env id':<40} | {'steps/s':>9} | {'vs Pendulum-v1':>14} | {'vs InvertedPendulum-v5':>22} |")
    print(f"|{'-' * 42}|{'-' * 10}:|{'-' * 15}:|{'-' * 23}:|")
    for env_id, rate in rates.items():
        if rate is None:
            print(f"| {env_id:<40} | {'skipped':>9} | {'':>14} | {'':>22} |")
            continue
        vs_pendulum = f"{rate / pendulum:.2f}" if pendulum else "n/a"
        vs_inverted = f"{rate / inverted:.2f}" if inverted else "n/a"
        print(f"| {env_id:<40} | {rate:>9.0f} | {vs_pendulum:>14} | {vs_inverted:>22} |")
    if args.episodes > 0:
        print(f"\nrandom-policy return, mean +- std over {args.episodes} episodes (seeds {args.seed}..)\n")
        print(f"| {'env id':<40} | {'return':>18} |")
        print(f"|{'-' * 42}|{'-' * 19}:|")
        for env_id, rate in rates.items():
            if rate is not None and env_id not in REFERENCE_IDS:
                returns = random_policy_returns(env_id, args.episodes, args.seed)
                print(f"| {env_id:<40} | {returns.mean():>8.1f} +- {returns.std():>6.1f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in vars(Args()).items():
        parser.add_argument(f"--{name}", type=int, default=default)
    main(Args(**vars(parser.parse_args())))
