"""Sweep report: learning curves per eta_0 (AdamLoss paper, Figure 3), eta-sensitivity, rliable aggregates, table.

Scoring rule (used everywhere in the report): a run's score is its final evaluation return (mean over the
evaluation episodes). A ``diverged`` run scores its last finite evaluation return and, if it never had one, the
*floor* of its env: the lowest finite evaluation return of any run of that env in the sweep. ``failed`` runs are
left out (and counted in the table). Aggregates (IQM, probability of improvement) use per-env min-max normalised
scores (min and max over all scored runs of that env), tasks = (env, algo) pairs, and only the seeds present in
every compared cell. Intervals over seeds are percentile-bootstrap intervals of the mean, which never leave the range
of the runs' returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rl_adaloss.experiment.stats import (
    bootstrap_mean_ci,
    interval_estimates,
    min_max_normalize,
    poi_estimate,
    worst_case_relative,
    worst_case_relative_ci,
)
from rl_adaloss.experiment.sweep import collect_results

__all__ = ["aggregates", "load_sweep", "make_report", "score_table"]

_CELL = ["env", "algo", "optimizer", "lr"]


def load_sweep(out: str | Path, include: Sequence[str | Path] = ()) -> tuple[Any, Any]:
    """Return ``(runs, curves)`` DataFrames: one row per finished run (with ``score``), one per evaluation point.

    ``include`` adds the runs of other sweep folders (e.g. a variant's grid reported next to the main grid); a run
    folder name already present is taken from the first folder that has it (``runs.attrs["shadowed"]`` counts, per
    included folder, the finished runs left out that way). ``curves`` has columns
    ``run_dir, timesteps, mean`` where diverged runs' curves carry their last finite value (or the env's floor)
    forward to the cell's last evaluation step.
    """
    import pandas as pd

    from rl_adaloss.sb3 import LR_FREE

    rows: list[dict[str, Any]] = []
    shadowed: dict[str, int] = {}
    for folder in (out, *include):
        if not Path(folder).is_dir():
            raise ValueError(f"Invalid sweep folder: {folder} (not a directory)")
        seen = {row["run_dir"] for row in rows}
        found = collect_results(folder)
        rows += [dict(row, folder=str(folder)) for row in found if row["run_dir"] not in seen]
        shadowed[str(folder)] = sum(row["run_dir"] in seen for row in found)
    runs = pd.DataFrame(rows)
    runs.attrs["shadowed"] = shadowed
    if runs.empty:
        raise ValueError(f"Invalid sweep folder: no finished run under {out}")
    runs["lr"] = runs["lr"].astype(float)
    if (runs["status"] == "failed").all():
        _no_finite_evaluation(out, runs)
    runs["lr_free"] = runs["optimizer"].isin(LR_FREE)
    frames = []
    for folder, run_dir in runs.loc[runs["status"] != "failed", ["folder", "run_dir"]].itertuples(index=False):
        curve = pd.read_csv(Path(folder) / run_dir / "eval.csv")
        frames.append(curve.assign(run_dir=run_dir))
    frames = [f for f in frames if not f.empty]  # a run that diverged before its first evaluation has no curve
    curves = pd.concat(frames) if frames else pd.DataFrame(columns=["timesteps", "mean", "std", "run_dir"])
    curves = curves.merge(runs[["run_dir", "env", *_CELL[1:], "seed"]], on="run_dir")
    finite = curves[np.isfinite(curves["mean"])]
    floor = finite.groupby("env")["mean"].min()
    runs["score"] = runs["final_return_mean"].astype(float)
    no_score = (runs["status"] == "diverged") & runs["score"].isna()
    runs.loc[no_score, "score"] = runs.loc[no_score, "env"].map(floor)
    runs.loc[runs["status"] == "failed", "score"] = np.nan
    if finite.empty or runs["score"].isna().all():
        _no_finite_evaluation(out, runs)
    return runs, _fill_curves(curves, floor)


def _no_finite_evaluation(out: str | Path, runs: Any) -> None:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(runs["status"].value_counts().items()))
    raise ValueError(
        f"Invalid sweep folder: no run under {out} has a finite evaluation ({len(runs)} runs: {counts}); nothing to "
        "report (each run's result.json holds its error)"
    )


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


def score_table(runs: Any, reps: int = 2000, seed: int = 0) -> Any:
    """One row per cell (env, algo, optimizer, lr): mean score, 95% bootstrap CI, seeds, diverged and failed counts."""
    import pandas as pd

    rows = []
    for key, cell in runs.groupby(_CELL, dropna=False, sort=True):
        mean, low, high = bootstrap_mean_ci(cell["score"].to_numpy(dtype=float), reps, seed)
        status = cell["status"]
        rows.append(dict(zip(_CELL, key), mean=mean, ci_low=low, ci_high=high, n_seeds=int(cell["score"].notna().sum())))
        rows[-1].update(diverged=int((status == "diverged").sum()), failed=int((status == "failed").sum()))
    return pd.DataFrame(rows)


def _score_matrices(runs: Any) -> dict[str, np.ndarray]:
    """Arm name -> normalised (`num_seeds` x `num_tasks`) scores; tasks = (env, algo); swept arms as ``opt@lr``.

    Empty when no env has two distinct scores (min-max normalisation would map everything to 0).
    """
    scored = runs[runs["score"].notna()].copy()
    spans = scored.groupby("env")["score"].agg(lambda v: v.max() - v.min())
    if not (spans > 0).any():
        return {}
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


def aggregates(runs: Any, reps: int = 2000, seed: int = 0) -> tuple[dict[str, np.ndarray], str, dict[str, Any]]:
    """The report's aggregates of ``load_sweep``'s runs: ``(matrices, metric, iqms)``.

    ``matrices``: arm -> normalised (`num_seeds` x `num_tasks`) scores; ``metric``: ``"IQM"``, or ``"mean"`` when an
    arm has fewer than 4 scores (rliable's IQM would trim nothing); ``iqms``: arm -> ``(value, low, high)``.
    """
    matrices = _score_matrices(runs)
    metric = "IQM" if matrices and min(m.size for m in matrices.values()) >= 4 else "mean"
    iqms = interval_estimates(matrices, reps=reps, seed=seed) if matrices else {}
    return matrices, metric, iqms


def _poi_rows(matrices: dict[str, np.ndarray], reps: int, seed: int) -> list[dict[str, Any]]:
    """Probability of improvement of each swept optimizer over Adam, per eta_0 and over the whole eta_0 grid."""
    rows = []
    swept = sorted({k.split("@")[0] for k in matrices if "@" in k} - {"adam"})
    for opt in swept:
        pairs = [(k.split("@")[1], matrices[k], matrices["adam@" + k.split("@")[1]])
                 for k in sorted(matrices, key=_arm_key)
                 if k.startswith(opt + "@") and "adam@" + k.split("@")[1] in matrices]  # fmt: skip
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


def _panels(runs: Any) -> list[tuple[str, str, float | None]]:
    """One panel per (env, algo, eta_0); lr-free optimizers only (no eta_0 grid) give one panel per (env, algo)."""
    panels: list[tuple[str, str, float | None]] = []
    for (env, algo), group in runs.groupby(["env", "algo"], sort=True):
        lrs = sorted(group.loc[~group["lr_free"], "lr"].unique())
        panels += [(env, algo, float(lr)) for lr in lrs] or [(env, algo, None)]
    return panels


def _plot_curves(curves: Any, runs: Any, path: Path, reps: int, seed: int) -> list[str]:
    """Draw one panel per (env, algo, eta_0), 3 per row; return the titles of the panels where every run diverged."""
    import matplotlib.pyplot as plt

    panels = _panels(runs)
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
    free = set(runs.loc[runs["lr_free"], "optimizer"])
    colors = {opt: f"C{i}" for i, opt in enumerate(sorted(runs["optimizer"].unique()))}
    first_ax: dict[tuple[str, str], Any] = {}
    all_diverged = []
    for ax, (env, algo, lr) in zip(axes.flat, panels):
        if (env, algo) in first_ax:
            ax.sharey(first_ax[(env, algo)])  # one y-axis per task: panels of one env compare at a glance
        else:
            first_ax[(env, algo)] = ax
        in_panel = (runs["env"] == env) & (runs["algo"] == algo) & ((runs["lr"] == lr) | runs["lr_free"])
        sel = curves[curves["run_dir"].isin(runs.loc[in_panel & (runs["status"] != "failed"), "run_dir"])]
        for opt, group in sel.groupby("optimizer", sort=True):
            stats = [(t, *bootstrap_mean_ci(g["mean"].to_numpy(float), reps, seed)) for t, g in group.groupby("timesteps")]
            t, m, lo, hi = (np.array(v) for v in zip(*stats))
            ax.plot(t, m, label=opt, ls="--" if opt in free else "-", color=colors[opt])
            ax.fill_between(t, lo, hi, color=colors[opt], alpha=0.2)
        statuses = runs.loc[in_panel & ~runs["lr_free"], "status"]
        title = f"{env} {algo}" + ("" if lr is None else f"  eta_0={lr:g}")
        if len(statuses) and (statuses == "diverged").all():
            ax.text(0.5, 0.5, "every run diverged", transform=ax.transAxes, ha="center", va="center", color="red")
            all_diverged.append(title)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("env steps")
        ax.set_ylabel("eval return")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle("Evaluation return (mean over seeds, 95% bootstrap CI)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return all_diverged


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
            err = np.vstack([group["mean"] - group["ci_low"], group["ci_high"] - group["mean"]]).clip(min=0)
            ax.errorbar(group["lr"], group["mean"], yerr=err, marker="o", capsize=3, label=opt)
        ax.set_xscale("log")
        ax.set_xlabel("eta_0")
        ax.set_ylabel("final eval return")
        ax.set_title(f"{env} {algo}: final return vs eta_0 (mean, 95% bootstrap CI)", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _arm_key(name: str) -> tuple[str, float]:
    """Sort arms by optimizer, then numerically by eta_0 (``adam@1e-05`` before ``adam@0.0001``)."""
    opt, _, lr = name.partition("@")
    return opt, float(lr) if lr else -1.0


def _plot_iqm(iqms: dict[str, tuple[float, float, float]], path: Path, metric: str) -> None:
    import matplotlib.pyplot as plt

    names = sorted(iqms, key=_arm_key)
    optimizers = sorted({n.partition("@")[0] for n in names})
    colors = {opt: f"C{i}" for i, opt in enumerate(optimizers)}
    fig, ax = plt.subplots(figsize=(6.5, 0.4 * len(names) + 1.6))
    for y, name in enumerate(names):
        point, low, high = iqms[name]
        opt = name.partition("@")[0]
        ax.errorbar([point], [y], xerr=[[point - low], [high - point]], fmt="o", capsize=3, color=colors[opt])
    ax.set_yticks(np.arange(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel(f"{metric} of normalised final return (95% stratified-bootstrap CI)")
    ax.set_title(f"Aggregate {metric} per arm (optimizer@eta_0); 1 = best run of the env, 0 = worst", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _md_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(none)\n"
    cols = list(rows[0])
    fmt = [{k: (f"{v:.4g}" if isinstance(v, float) else "n/a" if v is None else str(v)) for k, v in r.items()} for r in rows]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    return "\n".join(lines + ["| " + " | ".join(r[c] for c in cols) + " |" for r in fmt]) + "\n"


def _headline_rows(
    iqms: dict[str, tuple[float, float, float]],
    matrices: dict[str, np.ndarray],
    metric: str,
    min_lr: float | None,
    reps: int,
    seed: int,
) -> list[dict[str, Any]]:
    """The robustness headline rows with the bootstrap interval of ``relative`` (``low``, ``high``)."""
    rows = worst_case_relative({k: v[0] for k, v in iqms.items()}, min_lr)
    cis = worst_case_relative_ci(matrices, min_lr, metric=metric, reps=reps, seed=seed)
    for row in rows:
        row["low"], row["high"] = cis[str(row["optimizer"])] if row["relative"] is not None else (None, None)
    return rows


def _headline_text(rows: list[dict[str, Any]], metric: str, min_lr: float | None, reps: int, seed: int) -> list[str]:
    window = "over the whole eta_0 grid" if min_lr is None else f"over eta_0 >= {min_lr:g}"
    text = [f"## Robustness headline ({window}): worst cell relative to the best cell, normalised {metric}\n"]
    if rows and all(r["relative"] is None for r in rows):
        return [*text, "Not defined: the best cell's normalised score is 0 (every run scored the same).\n"]
    text += [
        f"low, high: 95% percentile-bootstrap interval of `relative` ({reps} reps, seed {seed}); each replicate "
        "resamples the seeds (the same for every arm) and chooses the worst and the best cell again.\n"
    ]
    names = {"worst_iqm": f"worst_{metric}", "best_iqm": f"best_{metric}"}
    return [*text, _md_table([{names.get(k, k): v for k, v in row.items()} for row in rows])]


def make_report(
    out: str | Path,
    *,
    reps: int = 2000,
    seed: int = 0,
    include: Sequence[str | Path] = (),
    headline_min_lr: float | None = None,
) -> dict[str, Any]:
    """Write ``report.md``, ``curves.png``, ``sensitivity.png``, ``iqm.png`` and ``table.csv`` into the sweep folder.

    Args:
        out: sweep folder (run folders with ``result.json``), or a ``--log-folder`` of single ``train`` runs.
        include: other sweep folders whose runs are reported alongside (read only; nothing is written there).
        reps: bootstrap replications for every CI.
        seed: bootstrap seed (the report is reproducible for a fixed seed).
        headline_min_lr: also give the robustness headline over ``eta_0 >= headline_min_lr`` (the whole grid is
            always given).

    Returns:
        ``{"iqm": name -> (value, low, high), "metric": "IQM" or "mean", "poi": [rows], "table": DataFrame,
        "headline": [rows over the whole grid], "headline_window": [rows] or None, "all_diverged_panels": [titles]}``.

    Raises:
        ValueError: no finished run, or no run with a finite evaluation.
    """
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out)
    runs, curves = load_sweep(out, include)
    table = score_table(runs, reps, seed)
    table.to_csv(out / "table.csv", index=False)
    matrices, metric, iqms = aggregates(runs, reps, seed)
    poi = _poi_rows(matrices, reps, seed) if any(k.startswith("adam@") for k in matrices) else []
    all_diverged = _plot_curves(curves, runs, out / "curves.png", reps, seed)
    _plot_sensitivity(table, out / "sensitivity.png")
    if iqms:
        _plot_iqm(iqms, out / "iqm.png", metric)
    counts = runs["status"].value_counts().to_dict()
    text = [
        f"# Sweep report: {out.name}\n",
        f"{len(runs)} runs: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + "\n",
    ]
    if include:
        sources = []
        for folder in include:
            n = runs.attrs["shadowed"].get(str(folder), 0)
            left_out = f" ({n} of its finished runs left out: a run of the same name was read from an earlier folder)"
            sources.append(f"`{folder}`" + (left_out if n else ""))
        text += ["Runs included from: " + ", ".join(sources) + "\n"]
    text += [(__doc__ or "").split("\n\n", 1)[1].strip() + "\n"]
    text += ["## Learning curves per eta_0 (mean, 95% bootstrap CI over seeds)\n", "![curves](curves.png)\n"]
    if all_diverged:
        text += ["Panels where every run diverged: " + "; ".join(all_diverged) + "\n"]
    text += [
        "## eta_0 sensitivity (final return, 95% bootstrap CI; lr-free optimizers as bands)\n",
        "![sensitivity](sensitivity.png)\n",
    ]
    if metric == "mean" and matrices:
        text += ["Fewer than 4 scores per arm: the aggregate below is their **mean** (an IQM would trim nothing).\n"]
    text += [f"## Aggregate {metric} (normalised score, 95% stratified-bootstrap CI, {reps} reps, seed {seed})\n"]
    if not matrices:
        text += ["Not defined: no env has two distinct scores to normalise between.\n"]
    text += [
        _md_table(
            [
                dict(arm=k, **{metric: v[0]}, low=v[1], high=v[2])
                for k, v in sorted(iqms.items(), key=lambda kv: _arm_key(kv[0]))
            ]
        )
    ]
    text += ["![iqm](iqm.png)\n" if iqms else "", "## Probability of improvement over Adam\n", _md_table(poi)]
    headline = _headline_rows(iqms, matrices, metric, None, reps, seed)
    window = _headline_rows(iqms, matrices, metric, headline_min_lr, reps, seed) if headline_min_lr else None
    if iqms:
        text += _headline_text(headline, metric, None, reps, seed)
        if window is not None:
            text += _headline_text(window, metric, headline_min_lr, reps, seed)
    text += ["## Results per cell (final return, mean and 95% bootstrap CI over seeds)\n", _md_table(table.to_dict("records"))]
    (out / "report.md").write_text("\n".join(text))
    return {"iqm": iqms, "metric": metric, "poi": poi, "table": table, "headline": headline, "headline_window": window,
            "all_diverged_panels": all_diverged}  # fmt: skip
