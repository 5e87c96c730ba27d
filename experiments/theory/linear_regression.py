"""Figure 1 of the AdaLoss paper: stochastic linear regression, loss and effective step size vs b0.

Over-determined, realizable least squares ``min_w 1/(2n) ||X w - y||^2`` with ``y = X w*`` (no noise at the
solution, the setting of Theorem 1 / Corollary 1 and of eq. (9)-(10)). Each iteration samples a mini-batch ``B`` and
steps on ``f_B(w) = 1/(2|B|) sum_{i in B} (x_i^T w - y_i)^2`` with AdaLoss, AdaGrad-Norm, SGD-Constant or
SGD-DecaySqrt (all from ``rl_adaloss`` / ``torch.optim``). With ``adaloss_alpha = 2`` and batch size 1 the AdaLoss
increment is exactly the paper's ``R_t = (x^T w_t - y)^2`` of eq. (10).

Run: ``python experiments/theory/linear_regression.py [--seeds 0 1 2] [--iterations 5000] [--out-dir DIR]``.
Writes ``DIR/linear_regression.csv``, ``DIR/linear_regression.png`` and ``DIR/linear_regression_config.json``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

if __package__ in (None, ""):  # run as a plain script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from experiments.theory.common import (
    ALGORITHMS,
    COLORS,
    effective_lr,
    fmt,
    make_optimizer,
    plot_clipped,
    save_config,
    scaled_windows,
    set_seed,
    window_means,
)

if TYPE_CHECKING:
    import pandas as pd

PAPER_WINDOWS: tuple[tuple[int, int], ...] = ((101, 200), (991, 1000), (4901, 5000))
DIVERGED = 1e20  # full-batch loss above this counts as divergence; the rest of the run is recorded as inf
PLOT_CAP = 1e8  # values above this (and divergence) are drawn at the cap with an X marker


@dataclass(frozen=True)
class Config:
    """Stochastic linear regression of Figure 1."""

    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds; each one draws its own problem (X, w*) and its own sample sequence, shared by all algorithms."""
    iterations: int = 5000
    """Optimizer steps per run (the paper's windows need 5000; fewer iterations scale the windows)."""
    n: int = 1000
    """Number of samples (rows of X)."""
    d: int = 100
    """Dimension (columns of X); n > d makes X^T X positive definite (over-determined)."""
    row_norm: float | None = 3.0
    """Every row of X is rescaled to this norm (None: raw N(0, 1) rows, ||x_i||^2 ~ d). With ||x_i|| = 1 and batch 1
    AdaLoss (alpha = 2) and AdaGrad-Norm would add the same increment; 3 puts the problem in the lambda_1 > 1 regime
    of Proposition 1 while SGD-Constant still converges for some b0 (eta / b0 < 2 / ||x_i||^2)."""
    batch_size: int = 1
    """Mini-batch size of each stochastic step (n or more: full-batch gradient descent)."""
    eta: float = 1.0
    """The paper's eta (numerator of every step size)."""
    b0s: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)
    """Initial b0 values (x axis of Figure 1)."""
    algorithms: tuple[str, ...] = ALGORITHMS
    """Which step-size rules to run."""
    adaloss_alpha: float = 2.0
    """AdaLoss alpha on the loss 1/2 mean (x^T w - y)^2; 2 gives the paper's increment (x^T w - y)^2 of eq. (10)."""
    out_dir: Path = field(default_factory=lambda: Path(__file__).resolve().parent / "out")
    """Output folder for the CSV, PNG and config."""


def make_problem(n: int, d: int, seed: int, row_norm: float | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw a realizable regression problem in float64.

    Returns:
        ``(X, y, w_star)`` with X of shape (``n`` x ``d``) (Gaussian, rows rescaled to ``row_norm`` if given),
        ``w_star ~ N(0, I/d)`` and ``y = X w_star`` exactly.
    """
    g = torch.Generator().manual_seed(10_000 + seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    if row_norm is not None:
        x = x * (row_norm / x.norm(dim=1, keepdim=True))
    w_star = torch.randn(d, generator=g, dtype=torch.float64) / d**0.5
    return x, x @ w_star, w_star


def run_one(
    x: torch.Tensor,
    y: torch.Tensor,
    algorithm: str,
    b0: float,
    *,
    iterations: int,
    eta: float = 1.0,
    alpha: float = 2.0,
    batch_size: int = 1,
    seed: int = 0,
    windows: list[tuple[int, int]] | None = None,
    check_every: int = 50,
) -> tuple[np.ndarray, np.ndarray]:
    """Train ``w`` (from 0) for ``iterations`` steps.

    Returns:
        ``(loss, step)``, each of shape (``iterations``,): the full objective ``1/(2n)||Xw - y||^2`` after step ``t``
        and the step size used at step ``t`` (``eta / b_t``). The loss is evaluated only inside ``windows`` (all
        iterations if None), every ``check_every`` steps and at the last step (``nan`` elsewhere); from the first
        evaluation above ``DIVERGED`` (or non-finite) on, it is ``inf`` at every step.
    """
    n, d = x.shape
    w = nn.Parameter(torch.zeros(d, dtype=torch.float64))
    opt = make_optimizer(algorithm, [w], eta=eta, b0=b0, alpha=alpha)
    g = torch.Generator().manual_seed(seed)
    batches = None if batch_size >= n else torch.randint(n, (iterations, batch_size), generator=g)
    record = np.zeros(iterations, dtype=bool)  # where the full loss is evaluated (it costs n*d per call)
    for first, last in windows or [(1, iterations)]:
        record[first - 1 : last] = True
    record[::check_every] = True
    record[-1] = True
    loss = np.full(iterations, np.nan)
    step = np.empty(iterations)
    diverged = False
    for t in range(iterations):
        xb, yb = (x, y) if batches is None else (x[batches[t]], y[batches[t]])
        opt.zero_grad(set_to_none=True)
        f = 0.5 * (xb @ w - yb).square().mean()
        f.backward()
        opt.step()  # diverged runs keep stepping (on inf/nan) so that the step-size schedule stays honest
        step[t] = effective_lr(opt)
        if record[t] and not diverged:
            with torch.no_grad():
                value = float(0.5 * (x @ w - y).square().mean())
            diverged = not value <= DIVERGED  # also catches nan
        if diverged:
            loss[t] = np.inf
        elif record[t]:
            loss[t] = value
    return loss, step


def run_grid(cfg: Config) -> pd.DataFrame:
    """Run every algorithm x b0 x seed and aggregate the windows over seeds.

    Returns:
        One row per (algorithm, b0, window) with ``loss_mean/std``, ``step_mean/std`` over seeds and ``n_diverged``.
    """
    import pandas as pd

    windows = scaled_windows(cfg.iterations, PAPER_WINDOWS)
    rows = []
    for seed in cfg.seeds:
        set_seed(seed)
        x, y, _ = make_problem(cfg.n, cfg.d, seed, cfg.row_norm)
        for algorithm in cfg.algorithms:
            for b0 in cfg.b0s:
                loss, step = run_one(
                    x, y, algorithm, b0, iterations=cfg.iterations, eta=cfg.eta, alpha=cfg.adaloss_alpha,
                    batch_size=cfg.batch_size, seed=seed, windows=windows,
                )  # fmt: skip
                lw, sw = window_means(loss, windows)[0], window_means(step, windows)[0]
                for (first, last), lm, sm in zip(windows, lw, sw):
                    rows.append(dict(algorithm=algorithm, b0=b0, window=f"[{first},{last}]", window_start=first,
                                     window_end=last, seed=seed, loss=lm, step=sm, final_loss=loss[-1]))  # fmt: skip
    per_seed = pd.DataFrame(rows)
    with np.errstate(invalid="ignore"):
        agg = per_seed.groupby(["algorithm", "b0", "window", "window_start", "window_end"], sort=False).agg(
            loss_mean=("loss", "mean"),
            loss_std=("loss", "std"),
            step_mean=("step", "mean"),
            step_std=("step", "std"),
            final_loss_mean=("final_loss", "mean"),
            n_seeds=("seed", "nunique"),
            n_diverged=("loss", lambda s: int((~np.isfinite(s)).sum())),
        )
    return agg.reset_index()


def plot_figure1(df: pd.DataFrame, path: Path, title: str = "") -> Path:
    """Figure 1 layout: top row loss vs b0, bottom row effective step vs b0, one column per window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    windows = list(dict.fromkeys(df["window"]))
    fig, axes = plt.subplots(2, len(windows), figsize=(4.2 * len(windows), 7), squeeze=False)
    for j, window in enumerate(windows):
        sub = df[df["window"] == window]
        for algorithm in dict.fromkeys(sub["algorithm"]):
            a = sub[sub["algorithm"] == algorithm].sort_values("b0")
            kw = dict(color=COLORS.get(algorithm), label=algorithm)
            plot_clipped(axes[0, j], a["b0"], a["loss_mean"], PLOT_CAP, **kw)
            plot_clipped(axes[1, j], a["b0"], a["step_mean"], np.inf, **kw)
        axes[0, j].set_title(f"iterations {window}")
        axes[0, j].axhline(PLOT_CAP, color="grey", lw=0.6, ls=":")
        axes[1, j].set_xlabel("$b_0$")
    axes[0, 0].set_ylabel(f"mean loss (X: diverged or > {PLOT_CAP:.0e})")
    axes[1, 0].set_ylabel("mean effective step size $\\eta/b_t$")
    axes[0, 0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(cfg: Config) -> pd.DataFrame:
    """Run the grid, write CSV + PNG + config, print a summary of the last window."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    df = run_grid(cfg)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    df.to_csv(cfg.out_dir / "linear_regression.csv", index=False)
    rows = "raw N(0,1) rows" if cfg.row_norm is None else f"||x_i|| = {cfg.row_norm}"
    title = (f"linear regression n={cfg.n}, d={cfg.d}, {rows}, batch {cfg.batch_size}, eta={cfg.eta}, "
             f"seeds {list(cfg.seeds)}")  # fmt: skip
    plot_figure1(df, cfg.out_dir / "linear_regression.png", title)
    save_config(cfg, cfg.out_dir).rename(cfg.out_dir / "linear_regression_config.json")
    last = df[df["window"] == df["window"].iloc[-1]]
    print(f"mean loss over iterations {last['window'].iloc[0]} (mean over {len(cfg.seeds)} seeds; inf = diverged)")
    table = last.pivot(index="algorithm", columns="b0", values="loss_mean").reindex(list(cfg.algorithms))
    print(table.map(fmt).to_string())
    print(f"done in {time.perf_counter() - start:.1f}s -> {cfg.out_dir}")
    return df


if __name__ == "__main__":
    import tyro

    main(tyro.cli(Config))
