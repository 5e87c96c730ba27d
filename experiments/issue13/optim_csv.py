"""Write ``optim.csv`` in every run folder of a sweep: the optimizer's step size and the losses over training.

Read from the run's TensorBoard events (the values SB3's logger recorded: ``optim/<role>/effective_lr`` and
``accumulator`` from ``OptimizerLogger`` once per ``train()``, and the algorithm's ``train/*loss`` (and SAC's
``train/ent_coef``) of the last update of that ``train()``), one row per logged env step. Small (tens of rows per
run), so it is committed with the run's ``config.json`` / ``result.json`` / ``eval.csv`` while the events and the
model are not.

    PYTHONPATH=. python experiments/issue13/optim_csv.py experiments/results/<sweep folder> [...]
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

TAG_PREFIXES = (
    "optim/",
    "train/loss",
    "train/value_loss",
    "train/policy_gradient_loss",
    "train/actor_loss",
    "train/critic_loss",
    "train/ent_coef",  # SAC's entropy coefficient and its loss (its optimizer is SB3's Adam in every arm)
    "train/approx_kl",
    "train/std",
    "rollout/ep_rew_mean",
)


def run_table(run_dir: Path) -> tuple[list[str], list[list[object]]] | None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = sorted(run_dir.glob("events.out.tfevents.*"))
    if not events:
        return None
    rows: dict[int, dict[str, float]] = {}
    for path in events:
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            if not tag.startswith(TAG_PREFIXES) or tag.endswith("nonfinite_skips"):
                continue
            for ev in acc.Scalars(tag):
                rows.setdefault(int(ev.step), {})[tag] = float(ev.value)
    tags = sorted({t for r in rows.values() for t in r})
    header = ["timesteps", *tags]
    return header, [[step, *(rows[step].get(t, "") for t in tags)] for step in sorted(rows)]


def main(folders: list[str]) -> None:
    for folder in folders:
        for run_dir in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
            if not (run_dir / "result.json").exists():
                continue
            table = run_table(run_dir)
            if table is None:
                continue
            header, body = table
            with (run_dir / "optim.csv").open("w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(header)
                writer.writerows(body)


if __name__ == "__main__":
    main(sys.argv[1:])
