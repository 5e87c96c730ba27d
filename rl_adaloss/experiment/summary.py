"""Cross-grid summary: one table arm x grid (robustness headline, tuned-eta_0 PoI against Adam, successes), one figure.

Every number is computed as ``rl-adaloss report <folder>`` computes it (same scores, normalisation, bootstrap reps
and seed), so the summary agrees with each grid's ``report.md``:

- **headline**: the worst cell over the whole eta_0 grid, as normalised IQM (the mean below 4 scores per arm) relative
  to the grid's best cell, with its percentile-bootstrap interval (``report.md``'s "Robustness headline"); a
  learning-rate-free arm has one cell: its IQM over the best cell's, without an interval;
- **PoI at the tuned eta_0**: probability that a run of the arm beats an Adam run at the preset's tuned eta_0 (a
  learning-rate-free arm: its one cell against Adam's tuned cell), stratified-bootstrap interval (rliable);
- **successes**: runs whose final evaluation return is at or above the grid's stated threshold, over all of an arm's
  runs and at the tuned eta_0 (a run that diverged before any evaluation has none and never counts).

What a results folder does not record, the preset's tuned eta_0 and the grid's success threshold, comes from a small
YAML mapping, folder name -> ``task`` (label), ``tuned_lr``, ``threshold``, ``threshold_source`` and ``include``
(names of sibling folders whose runs are read alongside, as ``rl-adaloss report --include`` does).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rl_adaloss.experiment.report import _headline_rows, aggregates, load_sweep, score_table
from rl_adaloss.experiment.stats import poi_estimate

__all__ = ["GridInfo", "load_grid_info", "success_count", "summarize_grid", "tuned_cell", "write_summary"]

_INFO_KEYS = {"task", "tuned_lr", "threshold", "threshold_source", "include"}


@dataclass(frozen=True)
class GridInfo:
    """What the summary needs to know about one grid beyond its runs."""

    folder: Path
    """the grid's results folder."""
    task: str
    """label of the grid's column and panel."""
    tuned_lr: float | None = None
    """the preset's tuned eta_0 (None: no PoI or tuned-cell counts)."""
    threshold: float | None = None
    """success threshold on the final evaluation return (None: no success counts)."""
    threshold_source: str = ""
    """where the threshold is stated."""
    include: tuple[Path, ...] = ()
    """other folders whose runs are read alongside (a run name already present is taken from ``folder``)."""


def _number(name: str, key: str, value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"Invalid {key} value for grid {name}: {value!r} (expected a finite number)")
    return number


def load_grid_info(folders: Sequence[str | Path], mapping: str | Path | None = None) -> list[GridInfo]:
    """One :class:`GridInfo` per folder, from the YAML ``mapping`` (keyed by folder name); unmapped folders get defaults.

    Raises:
        ValueError: a folder that is not a directory, a mapping that is not a dict of dicts, an unknown key, or a
            non-numeric ``tuned_lr`` / ``threshold``.
    """
    from rl_adaloss.experiment.config import load_yaml

    table: dict[str, Any] = {}
    if mapping is not None:
        table = load_yaml(Path(mapping).read_text()) or {}
        if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
            raise ValueError(f"Invalid grid mapping {mapping}: expected folder name -> {{task, tuned_lr, threshold, ...}}")
    infos = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise ValueError(f"Invalid sweep folder: {folder} (not a directory)")
        entry = table.get(folder.name, {})
        unknown = sorted(set(entry) - _INFO_KEYS)
        if unknown:
            raise ValueError(f"Invalid key {unknown[0]!r} for grid {folder.name} (valid: {', '.join(sorted(_INFO_KEYS))})")
        infos.append(
            GridInfo(
                folder=folder,
                task=str(entry.get("task", folder.name)),
                tuned_lr=_number(folder.name, "tuned_lr", entry.get("tuned_lr")),
                threshold=_number(folder.name, "threshold", entry.get("threshold")),
                threshold_source=str(entry.get("threshold_source", "")),
                include=tuple(folder.parent / str(name) for name in entry.get("include", ())),
            )
        )
    return infos


def success_count(final_returns: np.ndarray, threshold: float) -> tuple[int, int]:
    """``(successes, runs)``: how many of the final returns (shape (`num_runs`,)) are finite and >= ``threshold``.

    Example:
        >>> success_count(np.array([95.0, 90.0, -92.8, np.nan]), 90.0)
        (2, 4)
    """
    values = np.asarray(final_returns, dtype=np.float64)
    return int((np.isfinite(values) & (values >= threshold)).sum()), int(values.size)


def tuned_cell(lrs: Sequence[float], tuned_lr: float) -> float:
    """The grid's eta_0 equal to ``tuned_lr`` (relative tolerance 1e-6, e.g. RL Zoo's 9.80828e-05 given as 9.80828e-5).

    Raises:
        ValueError: no eta_0 of the grid matches.
    """
    for lr in sorted(set(lrs)):
        if math.isclose(lr, tuned_lr, rel_tol=1e-6):
            return float(lr)
    raise ValueError(
        f"Invalid tuned_lr value: {tuned_lr:g} (not an eta_0 of the grid: {', '.join(f'{v:g}' for v in sorted(set(lrs)))})"
    )


def summarize_grid(runs: Any, info: GridInfo, reps: int = 2000, seed: int = 0) -> list[dict[str, Any]]:
    """One row per arm (optimizer) of one grid, from ``load_sweep``'s runs; see the module docstring for the columns."""
    matrices, metric, iqms = aggregates(runs, reps, seed)
    headline = {row["optimizer"]: row for row in _headline_rows(iqms, matrices, metric, None, reps, seed)}
    best_cell = max(iqms, key=lambda k: iqms[k][0]) if iqms else None
    best = iqms[best_cell][0] if best_cell is not None else math.nan
    swept_lrs = runs.loc[~runs["lr_free"], "lr"].astype(float).tolist()
    tuned = tuned_cell(swept_lrs, info.tuned_lr) if info.tuned_lr is not None else None
    adam_tuned = matrices.get(f"adam@{tuned:g}") if tuned is not None else None
    rows = []
    for opt, arm_runs in runs.groupby("optimizer", sort=True):
        lr_free = bool(arm_runs["lr_free"].iloc[0])
        row: dict[str, Any] = dict(grid=info.folder.name, task=info.task, arm=str(opt), lr_free=lr_free, metric=metric,
                                   best_cell=best_cell, grid_runs=len(runs))  # fmt: skip
        if lr_free:
            value = iqms[str(opt)][0] if str(opt) in iqms else math.nan
            row.update(headline=value / best if best > 0 else None, low=None, high=None, worst_lr=None)
        else:
            found = headline.get(str(opt), {})
            row.update(
                headline=found.get("relative"), low=found.get("low"), high=found.get("high"), worst_lr=found.get("worst_lr")
            )
        arm = str(opt) if lr_free else f"{opt}@{tuned:g}" if tuned is not None else None
        if adam_tuned is not None and arm in matrices and opt != "adam":
            row.update(zip(("poi_tuned", "poi_low", "poi_high"), poi_estimate(matrices[arm], adam_tuned, reps, seed)))
        else:
            row.update(poi_tuned=None, poi_low=None, poi_high=None)
        finals = arm_runs.loc[arm_runs["status"] != "failed", "final_return_mean"].astype(float).to_numpy()
        at_tuned = arm_runs[(arm_runs["status"] != "failed") & np.isclose(arm_runs["lr"].astype(float), tuned or math.nan)]
        if info.threshold is not None:
            row["success"], row["runs"] = success_count(finals, info.threshold)
            row["success_tuned"], row["runs_tuned"] = (
                success_count(at_tuned["final_return_mean"].astype(float).to_numpy(), info.threshold)
                if tuned is not None and not lr_free
                else (None, None)
            )
        else:
            row.update(success=None, runs=len(finals), success_tuned=None, runs_tuned=None)
        rows.append(row)
    return rows


def write_summary(
    folders: Sequence[str | Path],
    out: str | Path,
    *,
    mapping: str | Path | None = None,
    reps: int = 2000,
    seed: int = 0,
    command: str = "",
) -> Any:
    """Write ``out`` (markdown), and beside it ``<stem>.png`` (the figure) and ``<stem>.csv`` (one row per grid x arm).

    Args:
        folders: results folders, one column and one panel each, in this order.
        out: path of the markdown file.
        mapping: YAML grid mapping (see the module docstring).
        reps: bootstrap replications for every interval (the report's default).
        seed: bootstrap seed (the report's default).
        command: the command line printed at the top of the markdown.

    Returns:
        The rows as a DataFrame.
    """
    import matplotlib
    import pandas as pd

    from rl_adaloss.experiment.summary_plot import plot_summary, summary_markdown

    matplotlib.use("Agg")
    out = Path(out)
    infos = load_grid_info(folders, mapping)
    rows, cells = [], []
    for info in infos:
        runs, _ = load_sweep(info.folder, info.include)
        rows += summarize_grid(runs, info, reps, seed)
        table = score_table(runs, reps, seed)
        table["lr_free"] = table["optimizer"].isin(set(runs.loc[runs["lr_free"], "optimizer"]))
        cells.append(table.assign(grid=info.folder.name))
    frame = pd.DataFrame(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out.with_suffix(".csv"), index=False)
    plot_summary(pd.concat(cells, ignore_index=True), infos, out.with_suffix(".png"))
    out.write_text(summary_markdown(frame, infos, out.with_suffix(".png").name, command, reps, seed))
    return frame
