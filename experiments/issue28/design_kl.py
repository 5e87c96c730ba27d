"""The KL-adaptive anchor's design table: final return per candidate x eta_0 (mean of the design seeds) and the rule.

The selection rule (docs/issue28.md, written before three of the four candidates had run): the candidate with the
highest worst cell (lowest over eta_0 of the mean final return over the seeds); ties within 50 broken by the mean
over all runs.

    PYTHONPATH=. python experiments/issue28/design_kl.py experiments/results/design28_kl

It also prints the mechanism: the lr each run's optimizer held after every ``train()`` (``optim/policy/lr`` in the
run's ``optim.csv``, written by ``experiments/issue13/optim_csv.py`` from its TensorBoard events), pooled per
candidate: median, and the share of ``train()`` calls that ended at the clamp's floor (1e-5) or cap (1e-2).
"""

from __future__ import annotations

import csv
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from rl_adaloss.experiment.run import read_config, read_result


def table(root: Path) -> list[tuple[str, dict[float, list[float]]]]:
    """Per candidate folder (sorted): eta_0 -> the final returns of its finished runs (seeds in folder order)."""
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        cells: dict[float, list[float]] = defaultdict(list)
        for run in sorted(p for p in folder.iterdir() if p.is_dir()):
            result, config = read_result(run), read_config(run)
            if result is None or config is None or result["final_return_mean"] is None:
                continue
            cells[float(config["lr"])].append(float(result["final_return_mean"]))
        out.append((folder.name, dict(cells)))
    return out


def applied_lrs(folder: Path) -> list[float]:
    """The lr after every ``train()`` of every run in ``folder`` (the first row, before any update, left out)."""
    out: list[float] = []
    for path in sorted(folder.glob("*/optim.csv")):
        rows = list(csv.DictReader(path.open()))
        out += [float(r["optim/policy/lr"]) for r in rows[1:] if r.get("optim/policy/lr")]
    return out


def main(argv: list[str]) -> int:
    root = Path(argv[0] if argv else "experiments/results/design28_kl")
    rows = table(root)
    lrs = sorted({lr for _, cells in rows for lr in cells})
    print("candidate        " + "".join(f"{lr:>16g}" for lr in lrs) + "      worst       mean   runs")
    scored = []
    for name, cells in rows:
        means = {lr: sum(v) / len(v) for lr, v in cells.items()}
        runs = [x for v in cells.values() for x in v]
        worst, mean = min(means.values()), sum(runs) / len(runs)
        scored.append((worst, mean, name))
        shown = "".join(f"{means[lr]:>9.1f} ({len(cells[lr])} s)" if lr in means else f"{'-':>16}" for lr in lrs)
        print(f"{name:<17}{shown}{worst:>11.1f}{mean:>11.1f}{len(runs):>7}")
    best_worst = max(w for w, _, _ in scored)
    tied = [s for s in scored if s[0] >= best_worst - 50]
    print(f"chosen by the rule: {max(tied, key=lambda s: s[1])[2]} (tied within 50 of the best worst cell: "
          f"{', '.join(s[2] for s in tied)})")  # fmt: skip
    print("\nlr after each train(), pooled over a candidate's runs:")
    for name, _ in rows:
        lrs = applied_lrs(root / name)
        if lrs:
            floor, cap = sum(x <= 1.0001e-5 for x in lrs) / len(lrs), sum(x >= 0.9999e-2 for x in lrs) / len(lrs)
            print(f"  {name:<15} {len(lrs):>4} train() calls: median {statistics.median(lrs):.2e}, "
                  f"at the floor {floor:.0%}, at the cap {cap:.0%}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
