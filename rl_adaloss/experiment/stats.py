"""Pure statistics over score arrays of shape (`num_runs` x `num_tasks`), rliable-style; rliable only for CIs."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterable, Iterator, Mapping

import numpy as np

__all__ = [
    "bootstrap_mean_ci",
    "interval_estimates",
    "iqm",
    "mean_ci",
    "min_max_normalize",
    "poi_estimate",
    "probability_of_improvement",
    "worst_case_relative",
    "worst_case_relative_ci",
]


@contextlib.contextmanager
def _seeded_global_rng(seed: int) -> Iterator[None]:
    """Seed NumPy's global RNG for the block, then restore it.

    rliable's StratifiedIndependentBootstrap (probability of improvement) draws part of its indices from the global
    ``np.random`` despite ``random_state``, so both are seeded for a reproducible report.
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of all scores: drop the lowest and highest ``floor(n/4)`` of the ``n`` values, average the rest.

    Args:
        scores: (`num_runs` x `num_tasks`) array (any shape; it is flattened).

    Returns:
        The IQM (equal to ``scipy.stats.trim_mean(scores, 0.25, axis=None)``, which rliable's ``aggregate_iqm`` uses).
    """
    return float(_aggregate_reps(np.asarray(scores, dtype=np.float64)[None], "IQM")[0])


def probability_of_improvement(scores_x: np.ndarray, scores_y: np.ndarray) -> float:
    """P(X > Y) + 0.5 P(X = Y) for a random run of each, per task, averaged over tasks (rliable's definition).

    Args:
        scores_x: (`num_runs_x` x `num_tasks`) scores of algorithm X.
        scores_y: (`num_runs_y` x `num_tasks`) scores of algorithm Y.

    Raises:
        ValueError: the two arrays have different numbers of tasks.
    """
    x, y = np.atleast_2d(np.asarray(scores_x, float)), np.atleast_2d(np.asarray(scores_y, float))
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"Invalid scores: {x.shape[1]} tasks for X but {y.shape[1]} for Y")
    per_task = []
    for m in range(x.shape[1]):
        diff = x[:, m, None] - y[None, :, m]
        per_task.append(float((diff > 0).mean() + 0.5 * (diff == 0).mean()))
    return float(np.mean(per_task))


def mean_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval of the mean over runs.

    Args:
        values: 1-D array of per-run values (NaNs are dropped).
        confidence: interval coverage.

    Returns:
        ``(mean, low, high)``; with fewer than 2 values the interval is ``(mean, mean)``; with none, all NaN.
    """
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if v.size < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return mean, mean - half, mean + half


def bootstrap_mean_ci(
    values: np.ndarray, reps: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap confidence interval of the mean over runs.

    Unlike a Student-t interval, a percentile-bootstrap interval of the mean never leaves ``[min, max]`` of the
    values, so it never leaves the achievable range of returns (with 2 seeds a t-interval is 12.7 standard errors
    wide). With few runs it is narrower than the truth: the report says how many seeds each cell has.

    Args:
        values: 1-D array of per-run values (NaNs are dropped).
        reps: bootstrap replications.
        seed: seed of the resampling.
        confidence: interval coverage.

    Returns:
        ``(mean, low, high)``; with one value the interval is ``(mean, mean)``; with none, all NaN.

    Example:
        >>> mean, low, high = bootstrap_mean_ci(np.array([-1500.0, -150.0]))
        >>> mean, -1500.0 <= low <= mean <= high <= -150.0
        (-825.0, True)
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if v.size < 2:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(reps, v.size))].mean(axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return mean, float(min(low, mean)), float(max(high, mean))


def min_max_normalize(scores: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Per-task normalisation ``(scores - low) / (high - low)`` of a (`num_runs` x `num_tasks`) array.

    ``low``/``high`` have shape (`num_tasks`,); a task with ``high == low`` maps to 0.
    """
    s, lo, hi = np.asarray(scores, float), np.asarray(low, float), np.asarray(high, float)
    span = np.where(hi > lo, hi - lo, 1.0)
    return (s - lo) / span


def interval_estimates(
    score_dict: Mapping[str, np.ndarray], reps: int = 2000, seed: int = 0, confidence: float = 0.95
) -> dict[str, tuple[float, float, float]]:
    """IQM with stratified-bootstrap percentile CIs per algorithm (rliable), reproducible through ``seed``.

    Args:
        score_dict: algorithm name -> (`num_runs` x `num_tasks`) scores.
        reps: bootstrap replications.
        seed: seed of the bootstrap's ``np.random.RandomState``.
        confidence: interval coverage.

    Returns:
        name -> ``(iqm, low, high)``.
    """
    from rliable import library as rly
    from rliable import metrics

    def func(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x)])

    with warnings.catch_warnings(), _seeded_global_rng(seed):  # arch deprecates random_state; rliable passes it
        warnings.simplefilter("ignore", FutureWarning)
        points, cis = rly.get_interval_estimates(
            dict(score_dict), func, reps=reps, confidence_interval_size=confidence, random_state=np.random.RandomState(seed)
        )
    return {k: (float(points[k][0]), float(cis[k][0, 0]), float(cis[k][1, 0])) for k in score_dict}


def poi_estimate(
    scores_x: np.ndarray, scores_y: np.ndarray, reps: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Probability of improvement of X over Y with a stratified-bootstrap CI (rliable), seeded.

    Returns:
        ``(poi, low, high)``.
    """
    from rliable import library as rly
    from rliable import metrics

    def func(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.array([metrics.probability_of_improvement(x, y)])

    with warnings.catch_warnings(), _seeded_global_rng(seed):  # arch deprecates random_state; rliable passes it
        warnings.simplefilter("ignore", FutureWarning)
        points, cis = rly.get_interval_estimates(
            {"x,y": (np.asarray(scores_x, float), np.asarray(scores_y, float))},
            func,
            reps=reps,
            confidence_interval_size=confidence,
            random_state=np.random.RandomState(seed),
        )
    return float(points["x,y"][0]), float(cis["x,y"][0, 0]), float(cis["x,y"][1, 0])


def worst_case_relative(iqms: dict[str, float], min_lr: float | None = None) -> list[dict[str, float | str | None]]:
    """The robustness headline: per optimizer, its worst ``eta_0 >= min_lr`` cell relative to the best cell.

    Args:
        iqms: arm name -> aggregate (IQM or mean) of the normalised final return; swept arms are named
            ``"<optimizer>@<eta_0>"`` (other names, e.g. learning-rate-free optimizers, count only as candidates for
            the best cell).
        min_lr: smallest eta_0 considered (None: the whole eta_0 grid). A window is a choice made after seeing a
            grid; the report therefore always gives the whole grid too.

    Returns:
        One row per swept optimizer: ``optimizer``, ``worst_lr``, ``worst_iqm``, ``best_cell``, ``best_iqm`` and
        ``relative = worst_iqm / best_iqm`` (1.0: as good as the best cell everywhere in the range; None when the best
        cell's value is not positive, e.g. every run scored the same).
    """
    if not iqms:
        return []
    best_cell = max(iqms, key=lambda k: iqms[k])
    best = iqms[best_cell]
    worst: dict[str, tuple[float, float]] = {}
    for opt, cells in _swept_cells(iqms, min_lr).items():
        lr, name = min(cells, key=lambda cell: iqms[cell[1]])
        worst[opt] = (lr, iqms[name])
    return [
        {
            "optimizer": opt,
            "worst_lr": lr,
            "worst_iqm": value,
            "best_cell": best_cell,
            "best_iqm": best,
            "relative": value / best if best > 0 else None,
        }
        for opt, (lr, value) in sorted(worst.items())
    ]


def _swept_cells(names: Iterable[str], min_lr: float | None) -> dict[str, list[tuple[float, str]]]:
    """Swept arms ``"<optimizer>@<eta_0>"`` with ``eta_0 >= min_lr``, grouped: optimizer -> [(eta_0, arm name)]."""
    cells: dict[str, list[tuple[float, str]]] = {}
    for name in names:
        if "@" in name:
            opt, lr_text = name.split("@", 1)
            if min_lr is None or float(lr_text) >= min_lr:
                cells.setdefault(opt, []).append((float(lr_text), name))
    return cells


def _aggregate_reps(samples: np.ndarray, metric: str) -> np.ndarray:
    """IQM (or mean) of each bootstrap replicate: ``samples`` is (`reps` x `num_runs` x `num_tasks`)."""
    flat = np.sort(samples.reshape(samples.shape[0], -1), axis=1)
    cut = int(0.25 * flat.shape[1]) if metric == "IQM" else 0
    return flat[:, cut : flat.shape[1] - cut].mean(axis=1)


def worst_case_relative_ci(
    score_dict: Mapping[str, np.ndarray],
    min_lr: float | None = None,
    *,
    metric: str = "IQM",
    reps: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile-bootstrap interval of the robustness headline, the statistic of :func:`worst_case_relative`.

    Each replicate resamples the seeds with replacement, per task and with the *same* indices for every arm (the arms
    of a sweep are paired on seeds), recomputes every arm's aggregate, and takes again, per optimizer, its worst cell
    (``eta_0 >= min_lr``) over the best cell of all arms. Re-choosing both cells in every replicate is what makes it
    the interval of the headline as defined; it leans low (a maximum over many noisy cells is biased up).

    Args:
        score_dict: arm name -> normalised (`num_runs` x `num_tasks`) scores, the same runs (seeds) in the same rows
            for every arm; swept arms are named ``"<optimizer>@<eta_0>"``.
        min_lr: smallest eta_0 considered (None: the whole eta_0 grid).
        metric: ``"IQM"`` or ``"mean"``, the aggregate of the point estimate.
        reps: bootstrap replications.
        seed: seed of the resampling.
        confidence: interval coverage.

    Returns:
        optimizer -> ``(low, high)`` of ``worst / best``; replicates whose best cell is not positive are dropped
        (NaN interval when all are).

    Raises:
        ValueError: an unknown metric, or arms with different shapes (not paired).
    """
    if metric not in ("IQM", "mean"):
        raise ValueError(f"Invalid metric {metric!r}: expected 'IQM' or 'mean'")
    if not score_dict:
        return {}
    shapes = {np.shape(v) for v in score_dict.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"Invalid score_dict: arms must share one (num_runs x num_tasks) shape, got {sorted(shapes)}")
    n_runs, n_tasks = next(iter(shapes))
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, n_runs, size=(reps, n_runs, n_tasks))
    cols = np.broadcast_to(np.arange(n_tasks), rows.shape)
    agg = {k: _aggregate_reps(np.asarray(v, dtype=np.float64)[rows, cols], metric) for k, v in score_dict.items()}
    best = np.max(np.stack(list(agg.values())), axis=0)
    worst = {
        opt: np.min(np.stack([agg[name] for _, name in cells]), axis=0) for opt, cells in _swept_cells(agg, min_lr).items()
    }
    tail = 100 * (1 - confidence) / 2
    out = {}
    for opt, values in sorted(worst.items()):
        ratio = values[best > 0] / best[best > 0]
        low, high = np.percentile(ratio, [tail, 100 - tail]) if ratio.size else (math.nan, math.nan)
        out[opt] = (float(low), float(high))
    return out
