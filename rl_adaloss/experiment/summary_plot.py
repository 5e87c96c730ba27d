"""The cross-grid summary's figure (final return vs eta_0, one panel per task) and its markdown page."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rl_adaloss.experiment.summary import GridInfo

__all__ = ["plot_summary", "summary_markdown"]


def plot_summary(cells: Any, infos: Sequence[GridInfo], path: Path) -> None:
    """Small multiples: one panel per grid, final return (cell mean, 95% bootstrap CI) vs eta_0, one line per arm.

    Args:
        cells: ``score_table`` rows of every grid, with columns ``grid`` and ``lr_free`` added.
        infos: the grids, in panel order (their ``task`` titles the panel, ``tuned_lr`` draws a dotted vertical
            line and ``threshold`` a dash-dotted horizontal one).
        path: the PNG to write.
    """
    import matplotlib.pyplot as plt

    arms = sorted(cells["optimizer"].unique())
    colors = {arm: f"C{i % 10}" for i, arm in enumerate(arms)}
    markers = {arm: "osD^vP*X"[i % 8] for i, arm in enumerate(arms)}
    # Arms whose cells coincide (e.g. every run diverged) would hide each other: spread them by a few % of a decade.
    dodge = {arm: 10 ** (0.06 * (i - (len(arms) - 1) / 2)) for i, arm in enumerate(arms)}
    ncols = min(4, len(infos))
    nrows = -(-len(infos) // ncols)
    spare_legend = len(infos) % ncols != 0
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.0 * ncols, 3.1 * nrows + (0 if spare_legend else 0.9)), squeeze=False)
    handles: dict[str, Any] = {}
    for ax, info in zip(axes.flat, infos):
        sel = cells[cells["grid"] == info.folder.name]
        for arm, group in sel.groupby("optimizer", sort=True):
            if bool(group["lr_free"].iloc[0]):
                row = group.iloc[0]
                ax.axhspan(row["ci_low"], row["ci_high"], color=colors[arm], alpha=0.15)
                handles[f"{arm} (lr-free, band)"] = ax.axhline(row["mean"], ls="--", color=colors[arm], lw=1.2)
                continue
            group = group.sort_values("lr")
            err = np.vstack([group["mean"] - group["ci_low"], group["ci_high"] - group["mean"]]).clip(min=0)
            handles[str(arm)] = ax.errorbar(group["lr"] * dodge[arm], group["mean"], yerr=err, marker=markers[arm], ms=3.5,
                                            capsize=2, color=colors[arm], lw=1.2, alpha=0.9)  # fmt: skip
        if info.tuned_lr is not None:
            handles["preset's tuned eta_0"] = ax.axvline(info.tuned_lr, color="k", ls=":", lw=1.2)
        if info.threshold is not None:
            handles["success threshold"] = ax.axhline(info.threshold, color="0.5", ls="-.", lw=0.9)
        ax.set_xscale("log")
        ax.set_title(info.task, fontsize=9)
        ax.set_xlabel("eta_0", fontsize=8)
        ax.set_ylabel("final eval return", fontsize=8)
        ax.tick_params(labelsize=7)
    spare = list(axes.flat)[len(infos) :]
    for ax in spare:
        ax.set_visible(False)
    fig.suptitle("Final return vs eta_0 per task (cell mean, 95% bootstrap CI over seeds)", fontsize=10)
    if spare:  # the legend takes the first empty panel
        fig.tight_layout()
        spare[0].set_visible(True)
        spare[0].axis("off")
        spare[0].legend(list(handles.values()), list(handles), loc="center", fontsize=8, frameon=False)
    else:
        fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(6, len(handles)), fontsize=8)
        fig.tight_layout(rect=(0, 0.9 / (3.1 * nrows + 0.9) + 0.03, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _pivot(frame: Any, infos: Sequence[GridInfo], cell: Any) -> list[str]:
    """A markdown table: one row per arm, one column per grid, ``cell(row)`` in each (``-`` where the arm is absent)."""
    names = [info.folder.name for info in infos]
    lines = ["| arm | " + " | ".join(info.task for info in infos) + " |", "|---|" + "---|" * len(infos)]
    for arm in sorted(frame["arm"].unique()):
        found = {r["grid"]: r for r in frame[frame["arm"] == arm].to_dict("records")}
        lines.append(f"| {arm} | " + " | ".join(cell(found[n]) if n in found else "-" for n in names) + " |")
    return lines


def _headline_cell(row: dict[str, Any]) -> str:
    if row["lr_free"]:
        return f"{_fmt(row['headline'], 3)} (one cell)"
    if row["headline"] is None:
        return "-"
    return f"{_fmt(row['headline'], 3)} [{_fmt(row['low'], 3)}, {_fmt(row['high'], 3)}] at {row['worst_lr']:g}"


def _poi_cell(row: dict[str, Any]) -> str:
    return (
        "-"
        if row["poi_tuned"] is None or _fmt(row["poi_tuned"]) == "-"
        else (f"{_fmt(row['poi_tuned'])} [{_fmt(row['poi_low'])}, {_fmt(row['poi_high'])}]")
    )


def _success_cell(row: dict[str, Any]) -> str:
    if row["success"] is None or _fmt(float(row["success"])) == "-":
        return "-"
    tuned = (
        ""
        if row["success_tuned"] is None or _fmt(float(row["success_tuned"])) == "-"
        else (f" (tuned {int(row['success_tuned'])}/{int(row['runs_tuned'])})")
    )
    return f"{int(row['success'])}/{int(row['runs'])}{tuned}"


def summary_markdown(frame: Any, infos: Sequence[GridInfo], figure: str, command: str, reps: int, seed: int) -> str:
    """The summary page: the command, the figure, the grids, then the three arm x grid tables."""
    text = ["# Summary across grids\n", "Regenerate (every number and the figure on this page):\n",
            f"```bash\n{command}\n```\n" if command else "", f"![summary]({figure})\n",
            "Final return vs eta_0, one panel per task: cell mean over seeds with its 95% bootstrap interval (each "
            "grid's `table.csv`); dotted vertical line: the preset's tuned eta_0; learning-rate-free arms as bands "
            "(mean, interval); dash-dotted: the success threshold.\n",
            "## Grids\n", "| task | folder | runs | aggregate | best cell | tuned eta_0 | success threshold |",
            "|---|---|---|---|---|---|---|"]  # fmt: skip
    for info in infos:
        first = frame[frame["grid"] == info.folder.name].iloc[0]
        folders = f"`{info.folder}`" + "".join(f" + `{p}`" for p in info.include)
        tuned = "-" if info.tuned_lr is None else f"{info.tuned_lr:g}"
        threshold = (
            "-"
            if info.threshold is None
            else f"{info.threshold:g}" + (f" ({info.threshold_source})" if info.threshold_source else "")
        )
        cells = [info.task, folders, first["grid_runs"], first["metric"], first["best_cell"], tuned, threshold]
        text.append("| " + " | ".join(map(str, cells)) + " |")
    text += [
        "",
        f"\n## Robustness headline [95% bootstrap interval] at the worst eta_0 ({reps} reps, seed {seed})\n",
        "Worst cell over the whole eta_0 grid, as normalised aggregate relative to the grid's best cell (1 = as good as "
        "the best cell at every eta_0), as in each grid's `report.md`; a learning-rate-free arm has one cell.\n",
        *_pivot(frame, infos, _headline_cell),
        "\n## Probability of improvement over Adam at the preset's tuned eta_0 [95% stratified-bootstrap CI]\n",
        "P(a run of the arm beats an Adam run) at the tuned eta_0; a learning-rate-free arm against Adam's tuned cell.\n",
        *_pivot(frame, infos, _poi_cell),
        "\n## Successes: runs whose final return reaches the grid's threshold, all eta_0 (at the tuned eta_0)\n",
        *_pivot(frame, infos, _success_cell),
        "",
    ]
    return "\n".join(text)
