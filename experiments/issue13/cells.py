"""Per-cell final returns of a sweep folder, finished or not: mean, 95% Student-t interval and the seeds that finished.

For a sweep still running, where ``rl-adaloss report`` (which normalises over the whole grid) would mislead:

    PYTHONPATH=. python experiments/issue13/cells.py experiments/results/eval13_pendulum_ppo [--threshold -400]

One line per (optimizer, eta_0): mean [low, high] over the finished seeds, the runs themselves (diverged runs score
their last finite evaluation, as in the report; a run with none is shown as "none"), and with ``--threshold`` how many
runs end at or above it.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from rl_adaloss.experiment.stats import mean_ci


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--threshold", type=float, default=None, help="count runs ending at or above this return")
    args = parser.parse_args(argv)
    with open(Path(args.folder) / "results.csv") as f:
        rows = list(csv.DictReader(f))
    cells: dict[tuple[str, float], list[tuple[int, float | None]]] = defaultdict(list)
    for row in rows:
        final = float(row["final_return_mean"]) if row["final_return_mean"] not in ("", "None") else None
        cells[(row["optimizer"], float(row["lr"]))].append((int(row["seed"]), final))
    for (opt, lr), runs in sorted(cells.items()):
        runs.sort()
        seeds = [s for s, _ in runs]
        finals = np.array([np.nan if v is None else v for _, v in runs])
        text = ", ".join("none" if v is None else f"{v:.0f}" for _, v in runs)
        if np.isfinite(finals).all() and len(finals) > 1:
            mean, low, high = mean_ci(finals)
            summary = f"{mean:7.0f} [{low:.0f}, {high:.0f}]"
        elif np.isfinite(finals).any():
            summary = f"{np.nanmean(finals):7.0f} (n={np.isfinite(finals).sum()})"
        else:
            summary = "no finite evaluation"
        hits = ""
        if args.threshold is not None:
            hits = f"; >= {args.threshold:g}: {int((finals >= args.threshold).sum())}/{len(runs)}"
        print(f"{opt:>13} {lr:<8g} seeds {seeds}: {summary}; runs {text}{hits}")


if __name__ == "__main__":
    main()
