"""AdamLossRel's step sizes per cell of a sweep folder, from the committed ``optim.csv`` files (issue 13's mechanism
predictions: the final step, and the largest step at eta_0 >= 0.1).

    PYTHONPATH=. python experiments/issue13/final_steps.py experiments/results/eval13_pendulum_sac [--optimizer adamloss-rel]

One line per (optimizer group, eta_0): the step (``optim/<group>/effective_lr``) at the last logged point of each
finished run, as median [min, max] over its seeds, and the largest step logged after the first update in those runs
(rows with a ``train/`` value: SB3 dumps a train() call's losses with the next log, so the step beside them was set by
at least one update; the first PPO row shows eta_0 itself, before any). The logs hold one value per ``train()`` (or
log interval), so larger steps between them, such as inside PPO's first ``train()``, are not seen here:
``early_steps.py`` records every update. Runs that diverged before their first log have no ``optim.csv`` rows and
are counted as "no log".
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from experiments.issue13.loader import optim_rows


def run_steps(run_dir: Path) -> dict[str, tuple[float, float]]:
    """``{group: (final step, largest step after the first update)}`` of one run, from its ``optim.csv`` (finite values
    only)."""
    rows = [r for r in optim_rows(run_dir) if any(v not in ("", None) for k, v in r.items() if k.startswith("train/"))]
    out = {}
    for key in rows[0] if rows else ():
        if key.startswith("optim/") and key.endswith("/effective_lr"):
            values = [float(r[key]) for r in rows if r[key] not in ("", None) and math.isfinite(float(r[key]))]
            if values:
                out[key.split("/")[1]] = (values[-1], max(values))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--optimizer", default="adamloss-rel")
    args = parser.parse_args(argv)
    cells: dict[tuple[str, float], list[tuple[float, float]]] = defaultdict(list)
    no_log: dict[float, int] = defaultdict(int)
    for run_dir in sorted(Path(args.folder).iterdir()):
        if not (run_dir / "result.json").exists():
            continue
        config = json.loads((run_dir / "config.json").read_text())
        if config["optimizer"] != args.optimizer:
            continue
        steps = run_steps(run_dir)
        if not steps:
            no_log[float(config["lr"])] += 1
        for group, values in steps.items():
            cells[(group, float(config["lr"]))].append(values)
    print(f"{args.optimizer} in {args.folder}: final step median [min, max] over seeds; largest logged after the first update")
    for (group, lr), values in sorted(cells.items()):
        final, largest = np.array([v[0] for v in values]), max(v[1] for v in values)
        print(f"  {group:>8} eta_0={lr:<7g} n={len(values)}: final {np.median(final):.2e} "
              f"[{final.min():.2e}, {final.max():.2e}]; largest {largest:.2e}")  # fmt: skip
    for lr, n in sorted(no_log.items()):
        print(f"  eta_0={lr:g}: {n} run(s) with no log (diverged before the first)")


if __name__ == "__main__":
    main()
