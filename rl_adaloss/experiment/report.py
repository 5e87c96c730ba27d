"""Sweep report: learning curves per eta_0 (AdamLoss paper, Figure 3), eta-sensitivity, rliable aggregates, table.

Scoring rule (used everywhere in the report): a run's score is its final evaluation return (mean over the
evaluation episodes). A ``diverged`` run scores its last finite evaluation return and, if it never had one, the
*floor* of its env: the lowest finite evaluation return of any run of that env in the sweep. ``failed`` runs are
left out (and counted in the table). Aggregates (IQM, probability of improvement) use per-env min-max normalised
scores (min and max over all scored runs of that env), tasks = (env, algo) pairs, and only the seeds present in
every compared cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rl_adaloss.experiment.stats import interval_estimates, mean_ci, min_max_normalize, poi_estimate, worst_case_relative
from rl_adaloss.experiment.sweep import collect_results

__all__ = ["load_sweep", "make_report", "score_table"]

_CELL = ["env", "algo", "optimizer", "lr"]


def load_sweep(out: str | Path, include: Sequence[str | Path] = ()) -> tuple[Any, Any]:
    """Return ``(runs, curves)`` DataFrames: one row per finished run (with ``score``), one per evaluation point.

    ``include`` adds the runs of other sweep folders (e.g. a variant's grid reported next to the main grid); a run
    folder name already present is taken from the first folder that has it. ``curves`` has columns
    ``run_dir, timesteps, mean`` where diverged runs' curves carry their last finite value (or the env's floor)
    forward to the cell's last evaluation step.
    """
    import pandas as pd

    from rl_adaloss.sb3 import LR_FREE

    rows: list[dict[str, Any]] = []
    for folder in (out, *include):
        if not Path(folder).is_dir():
            raise ValueError(f"Invalid sweep folder: {folder} (not a directory)")
        seen = {row["run_dir"] for row in rows}
        rows += [dict(row, folder=str(folder)) for row in collect_results(folder) if row["run_dir"] not in seen]
    runs = pd.DataFrame(rows)
    if runs.empty:
        raise ValueError(f"Invalid sweep folder: no finished run under {out}")
    runs["lr_free"] = runs["optimizer"].isin(LR_FREE)
    frames = []
    for folder, run_dir in runs.loc[runs["status"] != "failed", ["folder", "run_dir"]].itertuples(index=False):
        curve = pd.read_csv(Path(folder) / run_dir / "eval.csv")
        frames.append(curve.assign(run_dir=run_dir))
    curves = pd.concat(frames) if frames else pd.DataFrame(columns=["timesteps", "mean", "std", "run_dir"])
    curves = curves.merge(runs[["run_dir", "env", *_CELL[1:], "seed"]], on="run_dir")
    finite = curves[np.isfinite(curves["mean"])]
    floor = finite.groupby("env")["mean"].min()
    runs["score"] = runs["final_return_mean"].astype(float)
    no_score = (runs["status"] == "diverged") & runs["score"].isna()
    runs.loc[no_score, "score"] = runs.loc[no_score, "env"].map(floor)
    runs.loc[runs["status"] == "failed", "score"] = np.nan
    return runs, _fill_curves(curves, floor)


def _fill_curves(curves: Any, floor: Any) -> Any:
    import pandas as pd

    filled = []
    for _, cell in curves.groupby(_CELL, dropna=False):
        steps = np.sort(cell["timesteps"].unique())
        for run_dir, one in cell.groupby("run_dir"):
            series = one.set_index("timesteps")["mean"].where(np.isfinite(one.set_index("timesteps")["mean"]))
            series = series[~series.index.duplicated()].reindex(steps).ffill().fillna(floor[one["env"].iloc[0]])
            meta = one.iloc[0]
            filled.append(pd.DataFrame({"timesteps": steps, "mean": series.to_numpy(), "run_dir": run_dir,
                                        **{k: meta[k] for k in [*_CELL, "seed"]}}))  # fmt: skip
    return pd.concat(filled, ignore_index=True) if filled else curves


def score_table(runs: Any) -> Any:
    """One row per cell (env, algo, optimizer, lr): mean score, 95% t-CI, seeds, diverged and failed counts."""
    import pandas as pd

    rows = []
    for key, cell in runs.groupby(_CELL, dropna=False, sort=True):
        mean, low, high = mean_ci(cell["score"].to_numpy(dtype=float))
        status = cell["status"]
        rows.append(dict(zip(_CELL, key), mean=mean, ci_low=low, ci_high=high, n_seeds=int(cell["score"].notna().sum())))
        rows[-1].update(diverged=int((status == "diverged").sum()), failed=int((status == "failed").sum()))
    return pd.DataFrame(rows)


def _score_matrices(runs: Any) -> dict[str, np.ndarray]:
    """Arm name -> normalised (`num_seeds` x `num_tasks`) scores; tasks = (env, algo); swept arms as ``opt@lr``."""
    scored = runs[runs["score"].notna()].copy()
    lo, hi = scored.groupby("env")["score"].transform("min"), scored.groupby("env")["score"].transform("max")
    scored["norm"] = min_max_normalize(scored["score"].to_numpy(), lo.to_numpy(), hi.to_numpy())
    scored["arm"] = [o if free else f"{o}@{lr:g}" for o, lr, free in zip(scored["optimizer"], scored["lr"], scored["lr_free"])]
    seeds = sorted(set.intersection(*(set(g["seed"]) for _, g in scored.groupby(["arm", "env", "algo"]))))
    tasks = sorted(set(zip(scored["env"], scored["algo"])))
    out = {}
    for arm, group in scored.groupby("arm", sort=True):
        table = group.pivot_table(index="seed", columns=["env", "algo"], values="norm")
        if all(t in table.columns for t in tasks) and seeds:
            out[str(arm)] = table.loc[seeds, tasks].to_numpy(dtype=float)
    return out


def _poi_rows(matrices: dict[str, np.ndarray], reps: int, seed: int) -> list[dict[str, Any]]:
    """Probability of improvement of each swept optimizer over Adam, per eta_0 and over the whole eta_0 grid."""
    rows = []
    swept = sorted({k.split("@")[0] for k in matrices if "@" in k} - {"adam"})
    for opt in swept:
        pairs = [(k.split("@")[1], matrices[k], matrices["adam@" + k.split("@")[1]])
                 for k in sorted(matrices) if k.startswith(opt + "@") and "adam@" + k.split("@")[1] in matrices]  # fmt: skip
        for lr, x, y in pairs:
            rows.append(
                dict(comparison=f"{opt} > adam", lr=lr, **dict(zip(("poi", "low", "high"), poi_estimate(x, y, reps, seed))))
            )
        if len(pairs) > 1:  # every (task, eta_0) is a task
            x, y = np.hstack([p[1] for p in pairs]), np.hstack([p[2] for p in pairs])
            rows.append(
                dict(comparison=f"{opt} > adam", lr="all", **dict(zip(("poi", "low", "high"), poi_estimate(x, y, reps, seed))))
            )
    return rows


def _plot_curves(curves: Any, runs: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    lrs = sorted(runs.loc[~runs["lr_free"], "lr"].unique())
    combos = sorted(set(zip(runs["env"], runs["algo"])))
    fig, axes = plt.subplots(len(combos), max(len(lrs), 1), figsize=(4 * max(len(lrs), 1), 3 * len(combos)), squeeze=False)
    free = set(runs.loc[runs["lr_free"], "optimizer"])
    for (i, (env, algo)), (j, lr) in ((a, b) for a in enumerate(combos) for b in enumerate(lrs)):
        ax = axes[i, j]
        sel = curves[
            (curves["env"] == env) & (curves["algo"] == algo) & ((curves["lr"] == lr) | curves["optimizer"].isin(free))
        ]
        for opt, group in sel.groupby("optimizer", sort=True):
            stats = [(t, *mean_ci(g["mean"].to_numpy(float))) for t, g in group.groupby("timesteps")]
            t, m, lo, hi = (np.array(v) for v in zip(*stats))
            line = ax.plot(t, m, label=opt, ls="--" if opt in free else "-")[0]
            ax.fill_between(t, lo, hi, color=line.get_color(), alpha=0.2)
        ax.set_title(f"{env} {algo}  eta_0={lr:g}", fontsize=9)
        ax.set_xlabel("env steps")
        ax.set_ylabel("eval return")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_sensitivity(table: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    from rl_adaloss.sb3 import LR_FREE

    combos = sorted(set(zip(table["env"], table["algo"])))
    fig, axes = plt.subplots(1, len(combos), figsize=(5 * len(combos), 3.5), squeeze=False)
    for ax, (env, algo) in zip(axes[0], combos):
        sel = table[(table["env"] == env) & (table["algo"] == algo)]
        band_colors = iter(f"C{i}" for i in range(7, 100))  # axhline does not advance the colour cycle
        for opt, group in sel.groupby("optimizer", sort=True):
            if opt in LR_FREE:
                row, color = group.iloc[0], next(band_colors)
                ax.axhline(row["mean"], ls="--", color=color, label=f"{opt} (lr-free)")
                ax.axhspan(row["ci_low"], row["ci_high"], color=color, alpha=0.12)
                continue
            err = np.vstack([group["mean"] - group["ci_low"], group["ci_high"] - group["mean"]])
            ax.errorbar(group["lr"], group["mean"], yerr=err, marker="o", capsize=3, label=opt)
        ax.set_xscale("log")
        ax.set_xlabel("eta_0")
        ax.set_ylabel("final eval return")
        ax.set_title(f"{env} {algo}", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_iqm(iqms: dict[str, tuple[float, float, float]], path: Path) -> None:
    import matplotlib.pyplot as plt

    names = sorted(iqms)
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(names) + 1.2))
    points = np.array([iqms[n][0] for n in names])
    err = np.array([[iqms[n][0] - iqms[n][1], iqms[n][2] - iqms[n][0]] for n in names]).T
    ax.errorbar(points, np.arange(len(names)), xerr=err, fmt="o", capsize=3)
    ax.set_yticks(np.arange(len(names)), names)
    ax.set_xlabel("IQM of normalised final return (95% stratified-bootstrap CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _md_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(none)\n"
    cols = list(rows[0])
    fmt = [{k: (f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in r.items()} for r in rows]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    return "\n".join(lines + ["| " + " | ".join(r[c] for c in cols) + " |" for r in fmt]) + "\n"


def make_report(out: str | Path, *, reps: int = 2000, seed: int = 0, include: Sequence[str | Path] = ()) -> dict[str, Any]:
    """Write ``report.md``, ``curves.png``, ``sensitivity.png``, ``iqm.png`` and ``table.csv`` into the sweep folder.

    Args:
        out: sweep folder (run folders with ``result.json``).
        include: other sweep folders whose runs are reported alongside (read only; nothing is written there).
        reps: bootstrap replications for the rliable CIs.
        seed: bootstrap seed (the report is reproducible for a fixed seed).

    Returns:
        ``{"iqm": name -> (iqm, low, high), "poi": [rows], "table": DataFrame, "headline": [rows]}``.
    """
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out)
    runs, curves = load_sweep(out, include)
    table = score_table(runs)
    table.to_csv(out / "table.csv", index=False)
    matrices = _score_matrices(runs)
    iqms = interval_estimates(matrices, reps=reps, seed=seed) if matrices else {}
    poi = _poi_rows(matrices, reps, seed) if "adam" in " ".join(matrices) else []
    _plot_curves(curves, runs, out / "curves.png")
    _plot_sensitivity(table, out / "sensitivity.png")
    if iqms:
        _plot_iqm(iqms, out / "iqm.png")
    counts = runs["status"].value_counts().to_dict()
    text = [
        f"# Sweep report: {out.name}\n",
        f"{len(runs)} runs: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + "\n",
    ]
    if include:
        text += ["Runs included from: " + ", ".join(f"`{folder}`" for folder in include) + "\n"]
    text += [(__doc__ or "").split("\n\n", 1)[1].strip() + "\n"]
    text += ["## Learning curves per eta_0 (mean, 95% t-CI over seeds)\n", "![curves](curves.png)\n"]
    text += [
        "## eta_0 sensitivity (final return, 95% t-CI; lr-free optimizers as bands)\n",
        "![sensitivity](sensitivity.png)\n",
    ]
    text += [f"## Aggregate IQM (normalised score, 95% stratified-bootstrap CI, {reps} reps, seed {seed})\n"]
    text += [_md_table([dict(arm=k, iqm=v[0], low=v[1], high=v[2]) for k, v in sorted(iqms.items())])]
    text += ["![iqm](iqm.png)\n" if iqms else "", "## Probability of improvement over Adam\n", _md_table(poi)]
    headline = worst_case_relative({k: v[0] for k, v in iqms.items()})
    text += [
        "## Robustness headline (worst eta_0 >= 3e-4 relative to the best cell, normalised IQM)\n",
        _md_table(headline),
    ]
    text += ["## Results per cell (final return)\n", _md_table(table.to_dict("records"))]
    (out / "report.md").write_text("\n".join(text))
    return {"iqm": iqms, "poi": poi, "table": table, "headline": headline}
