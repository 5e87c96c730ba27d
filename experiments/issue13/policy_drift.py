"""How far the first ``train()`` moves a PPO policy, and where its exploration noise ends, per cell of a sweep folder,
from the committed ``optim.csv`` files.

    PYTHONPATH=. python experiments/issue13/policy_drift.py experiments/results/eval13_hopper_ppo

One line per (optimizer, eta_0): over the cell's seeds, the range [min, max] of ``train/approx_kl`` at its first
logged value (SB3's estimate of the KL divergence between the policy before and after the first ``train()``) and of
``train/std`` at its last logged value (the policy's mean exploration standard deviation at the end), and the final
returns. Runs with no logged ``train/`` value (diverged before their first log) are counted as "no log". Non-finite
values are left out of the ranges and counted.
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from experiments.issue13.loader import optim_rows
from rl_adaloss.experiment.run import read_config, read_result

KL = "train/approx_kl"
STD = "train/std"


def _values(rows: list[dict[str, str]], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key) not in ("", None)]


def run_drift(run_dir: Path) -> tuple[float, float] | None:
    """``(first approx_kl, last std)`` of one run, from its ``optim.csv``; None where either was never logged."""
    rows = optim_rows(run_dir)
    kl, std = _values(rows, KL), _values(rows, STD)
    if not kl or not std:
        return None
    return kl[0], std[-1]


def _range(values: list[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    text = f"[{min(finite):.2g}, {max(finite):.3g}]" if finite else "[-]"
    return text + (f" ({len(values) - len(finite)} non-finite)" if len(finite) < len(values) else "")


def cell_lines(folder: Path) -> list[str]:
    """The report's lines, one per (optimizer, eta_0) cell of the finished runs in ``folder``, sorted."""
    cells: dict[tuple[str, float], list[tuple[int, Any, tuple[float, float] | None]]] = defaultdict(list)
    for run_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        config, result = read_config(run_dir), read_result(run_dir)
        if config is None or result is None:  # in flight, or not a run folder
            continue
        cells[(config["optimizer"], float(config["lr"]))].append(
            (int(config["seed"]), result.get("final_return_mean"), run_drift(run_dir))
        )
    lines = []
    for (optimizer, lr), runs in sorted(cells.items()):
        runs.sort(key=lambda run: run[0])
        logged = [drift for _, _, drift in runs if drift is not None]
        returns = ", ".join("none" if r is None else f"{r:.0f}" for _, r, _ in runs)
        head = f"{optimizer:>13} {lr:<9g} n={len(runs)}"
        if not logged:
            lines.append(f"{head}: no log in any run; returns {returns}")
            continue
        no_log = len(runs) - len(logged)
        lines.append(
            f"{head}: first approx_kl {_range([kl for kl, _ in logged])}; final std {_range([s for _, s in logged])}"
            f"{f'; no log: {no_log}' if no_log else ''}; returns (seeds {', '.join(str(s) for s, _, _ in runs)}) "
            f"{returns}"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    if not folder.is_dir():
        raise SystemExit(f"not a sweep folder: {folder}")
    print(f"{folder}: first logged {KL} and last logged {STD} per cell, [min, max] over seeds")
    for line in cell_lines(folder):
        print(line)


if __name__ == "__main__":
    main()
