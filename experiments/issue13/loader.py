"""The study's one loader of a run's ``optim.csv`` (written by ``optim_csv.py`` from the run's TensorBoard events)."""

from __future__ import annotations

import csv
from pathlib import Path


def optim_rows(run_dir: str | Path) -> list[dict[str, str]]:
    """The rows of ``run_dir/optim.csv`` as strings (``""`` where a tag was not logged); [] if the run has none.

    One row per logging step (``timesteps``), one column per scalar: ``optim/<group>/effective_lr``,
    ``optim/<group>/accumulator``, ``train/<group>_loss``, ... (see ``optim_csv.py``).
    """
    path = Path(run_dir) / "optim.csv"
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))
