"""Section 4 of the AdaLoss paper: an over-parameterized two-layer ReLU network (Du et al., 2019), full batch.

``f(W, a, x) = 1/sqrt(m) sum_r a_r relu(w_r^T x)``, first layer trained from ``w_r ~ N(0, I)``, ``a_r`` uniform in
``{-1, +1}`` and fixed, unit-norm inputs, loss ``L = 1/2 ||u - y||^2``. The script computes ``H^inf`` (Definition 1),
its ``lambda_min`` and ``||H^inf||``, then trains with

* GD (``torch.optim.SGD``) with ``eta = k / ||H^inf||`` (Theorem 2): linear convergence, fitted rate reported;
* AdaLoss in Theorem 3's form ``b^2 <- b^2 + alpha sqrt(n) ||y - u||^2`` (library ``AdaLoss`` with its alpha set to
  ``2 alpha sqrt(n)``, fed the full-batch loss ``L`` by ``backward()``), for every ``b0``;
* AdaGrad-Norm (``b^2 <- b^2 + ||grad||^2``) beside it.

Run: ``python experiments/theory/two_layer.py [--seed 0] [--iterations 4000] [--out-dir DIR]``.
Writes ``DIR/two_layer.csv`` (per-iteration loss and step), ``DIR/two_layer_summary.csv``, ``DIR/two_layer.png``
and ``DIR/two_layer_config.json``.
"""

from __future__ import annotations

import math
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

from experiments.theory.common import COLORS, effective_lr, fmt, make_optimizer, save_config, set_seed

if TYPE_CHECKING:
    import pandas as pd

STOP_LOSS = 1e-28  # float64 floor: runs stop once the loss is below this
DIVERGED = 1e20  # ... or above this


@dataclass(frozen=True)
class Config:
    """Two-layer ReLU network of Section 4 (Theorems 2 and 3)."""

    seed: int = 0
    """Seed of the data (x_i, y_i) and of the initialization (W(0), a), shared by every method."""
    n: int = 30
    """Number of training points."""
    d: int = 20
    """Input dimension; inputs are Gaussian, normalised to ||x_i|| = 1 (Assumption 1)."""
    m: int = 2000
    """Hidden width (over-parameterization keeps H(k) close to H^inf)."""
    iterations: int = 4000
    """Full-batch steps per run (a run stops early once its loss is below 1e-28)."""
    gd_multiples: tuple[float, ...] = (0.5, 1.0, 1.5)
    """GD step sizes as multiples k of 1/||H^inf||."""
    eta: float = 1.0
    """The paper's eta for AdaLoss and AdaGrad-Norm (step eta / b_k)."""
    b0s: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)
    """Initial b0 values for AdaLoss and AdaGrad-Norm."""
    alpha: float = 1.0
    """Theorem 3's alpha in b^2 <- b^2 + alpha sqrt(n) ||y - u||^2 (the paper writes it alpha^2)."""
    fit_floor: float = 1e-20
    """The linear fit of log L uses iterations where the loss is between this and 1e-2 L(0)."""
    out_dir: Path = field(default_factory=lambda: Path(__file__).resolve().parent / "out")
    """Output folder for the CSVs, PNG and config."""


def make_data(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``X`` (``n`` x ``d``) with unit-norm rows and labels ``y ~ N(0, 1)`` (|y_i| = O(1)), in float64."""
    g = torch.Generator().manual_seed(20_000 + seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    x = x / x.norm(dim=1, keepdim=True)
    return x, torch.randn(n, generator=g, dtype=torch.float64)


def h_infinity(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """Definition 1: ``H_ij = x_i^T x_j (pi - arccos(x_i^T x_j)) / (2 pi)`` for unit-norm rows of ``x``."""
    x = np.asarray(x, dtype=np.float64)
    gram = np.clip(x @ x.T, -1.0, 1.0)
    return gram * (np.pi - np.arccos(gram)) / (2 * np.pi)


def spectrum(h: np.ndarray) -> tuple[float, float]:
    """Return ``(lambda_min, ||H||)`` (smallest and largest eigenvalue of the symmetric matrix ``h``)."""
    eig = np.linalg.eigvalsh(h)
    return float(eig[0]), float(eig[-1])


class TwoLayerReLU(nn.Module):
    """``f(W, a, x) = 1/sqrt(m) sum_r a_r relu(w_r^T x)`` with trainable ``W`` and fixed ``a`` (eq. (11))."""

    def __init__(self, d: int, m: int, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(30_000 + seed)
        self.weight = nn.Parameter(torch.randn(m, d, generator=g, dtype=torch.float64))
        signs = torch.randint(0, 2, (m,), generator=g).to(torch.float64) * 2 - 1
        self.register_buffer("a", signs / math.sqrt(m))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predictions ``u`` of shape (``n``,)."""
        return torch.relu(x @ self.weight.T) @ self.a


def train(
    x: torch.Tensor,
    y: torch.Tensor,
    method: str,
    *,
    m: int,
    seed: int,
    iterations: int,
    eta: float,
    b0: float = 1.0,
    alpha: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Full-batch training of the first layer from the seeded initialization.

    Args:
        method: ``"GD"`` (SGD with step ``eta``), ``"AdaLoss"`` or ``"AdaGrad-Norm"`` (step ``eta / b_k``).
        alpha: Theorem 3's alpha; AdaLoss gets ``2 alpha sqrt(n)`` since it sees ``L = ||y - u||^2 / 2``.

    Returns:
        ``(loss, step)``: ``loss[k] = L(W(k))`` for ``k = 0..K`` and ``step[k]`` the step size of update ``k + 1``,
        ``K <= iterations`` (a run stops once ``L < STOP_LOSS`` or ``L > DIVERGED``).
    """
    net = TwoLayerReLU(x.shape[1], m, seed)
    if method == "GD":
        opt: torch.optim.Optimizer = torch.optim.SGD(net.parameters(), lr=eta)
    else:
        opt = make_optimizer(method, net.parameters(), eta=eta, b0=b0, alpha=2 * alpha * math.sqrt(x.shape[0]))
    losses, steps = [], []
    for _ in range(iterations):
        opt.zero_grad(set_to_none=True)
        loss = 0.5 * (net(x) - y).square().sum()
        value = float(loss.detach())
        losses.append(value)
        if not STOP_LOSS <= value <= DIVERGED:
            break
        loss.backward()  # AdaLoss takes this loss value from the backward (rl_adaloss.optim.loss_feed)
        opt.step()
        steps.append(effective_lr(opt))
    else:
        with torch.no_grad():
            losses.append(float(0.5 * (net(x) - y).square().sum()))
    return np.asarray(losses), np.asarray(steps)


def fit_log_rate(loss: np.ndarray, floor: float = 1e-20, top: float = 1e-2) -> tuple[float, float]:
    """Least-squares line through ``log L(k)`` on the iterations where ``floor < L(k) < top * L(0)``.

    Returns:
        ``(slope, r2)``: the slope is the per-iteration log-rate (``L(k) ~ exp(slope k)``); ``nan`` if < 3 points.
    """
    k = np.arange(len(loss))
    ok = np.isfinite(loss) & (loss > floor) & (loss < top * loss[0])
    if ok.sum() < 3:
        return float("nan"), float("nan")
    slope, intercept = np.polyfit(k[ok], np.log(loss[ok]), 1)
    resid = np.log(loss[ok]) - (slope * k[ok] + intercept)
    total = np.log(loss[ok]) - np.log(loss[ok]).mean()
    return float(slope), float(1 - (resid @ resid) / max(total @ total, 1e-300))


def run_all(cfg: Config) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """Train every method; return the per-iteration table, the per-run summary and the spectrum of H^inf."""
    import pandas as pd

    set_seed(cfg.seed)
    x, y = make_data(cfg.n, cfg.d, cfg.seed)
    lam_min, h_norm = spectrum(h_infinity(x))
    runs: list[tuple[str, float, float, float]] = [("GD", k, float("nan"), k / h_norm) for k in cfg.gd_multiples]
    runs += [(method, float("nan"), b0, cfg.eta) for method in ("AdaLoss", "AdaGrad-Norm") for b0 in cfg.b0s]
    curves, summary = [], []
    for method, multiple, b0, eta in runs:
        loss, step = train(x, y, method, m=cfg.m, seed=cfg.seed, iterations=cfg.iterations, eta=eta, b0=b0, alpha=cfg.alpha)
        slope, r2 = fit_log_rate(loss, cfg.fit_floor)
        label = f"GD eta={multiple:g}/||H||" if method == "GD" else f"{method} b0={b0:g}"
        step_full = np.append(step, np.nan)  # no update after the last recorded loss
        curves.append(pd.DataFrame(dict(run=label, method=method, b0=b0, eta=eta, iteration=np.arange(len(loss)),
                                        loss=loss, step=step_full)))  # fmt: skip
        # linearized rate at the final step s (u(k+1) - y ~ (I - s H^inf)(u(k) - y)): 2 log|1 - s lambda_min|
        predicted = 2 * math.log(abs(1 - step[-1] * lam_min)) if len(step) else float("nan")
        summary.append(dict(run=label, method=method, b0=b0, eta=eta, gd_multiple=multiple, iterations_run=len(loss) - 1,
                            final_loss=loss[-1], final_step=step[-1] if len(step) else float("nan"),
                            fitted_log_rate=slope, fit_r2=r2, linearized_log_rate=predicted))  # fmt: skip
    spec = dict(lambda_min=lam_min, h_norm=h_norm, h_norm_over_lambda_min=h_norm / lam_min)
    return pd.concat(curves, ignore_index=True), pd.DataFrame(summary), spec


def plot_two_layer(curves: pd.DataFrame, summary: pd.DataFrame, spec: dict[str, float], path: Path) -> Path:
    """Loss curves (log scale) and effective step vs iteration, one panel pair per method family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(curves["method"]))
    fig, axes = plt.subplots(2, len(methods), figsize=(5 * len(methods), 7.5), squeeze=False, sharey="row")
    for j, method in enumerate(methods):
        labels = list(dict.fromkeys(curves.loc[curves["method"] == method, "run"]))
        cmap = plt.get_cmap("viridis", max(len(labels), 2))
        for i, label in enumerate(labels):
            c = curves[curves["run"] == label]
            rate = summary.loc[summary["run"] == label, "fitted_log_rate"].iloc[0]
            kw = dict(color=cmap(i), label=f"{label} (rate {rate:.3g})")
            axes[0, j].plot(c["iteration"], c["loss"], **kw)
            axes[1, j].plot(c["iteration"], c["step"], **kw)
        axes[0, j].set_title(method, color=COLORS.get(method, "black"))
        axes[0, j].set_yscale("log")
        axes[1, j].set_yscale("log")
        axes[1, j].set_xlabel("iteration k")
        axes[0, j].legend(fontsize=7)
    axes[0, 0].set_ylabel("$L(W(k)) = \\|u(k) - y\\|^2 / 2$")
    axes[1, 0].set_ylabel("effective step size")
    text = (f"$\\lambda_{{min}}(H^\\infty)$ = {spec['lambda_min']:.4f}\n$\\|H^\\infty\\|$ = {spec['h_norm']:.4f}\n"
            "rate = fitted slope of log L per iteration")  # fmt: skip
    axes[0, 0].text(0.03, 0.03, text, transform=axes[0, 0].transAxes, fontsize=8, va="bottom",
                    bbox=dict(boxstyle="round", facecolor="white", alpha=0.85))  # fmt: skip
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(cfg: Config) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """Run everything, write CSVs + PNG + config, print the summary table."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    curves, summary, spec = run_all(cfg)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    curves.to_csv(cfg.out_dir / "two_layer.csv", index=False)
    summary.to_csv(cfg.out_dir / "two_layer_summary.csv", index=False)
    plot_two_layer(curves, summary, spec, cfg.out_dir / "two_layer.png")
    save_config(cfg, cfg.out_dir, extra=spec).rename(cfg.out_dir / "two_layer_config.json")
    print(f"n={cfg.n} d={cfg.d} m={cfg.m}: lambda_min(H_inf)={spec['lambda_min']:.4f}  ||H_inf||={spec['h_norm']:.4f}")
    cols = ["run", "eta", "iterations_run", "final_loss", "final_step", "fitted_log_rate", "fit_r2", "linearized_log_rate"]
    print(summary[cols].to_string(index=False, formatters={c: fmt for c in cols[3:]}))
    print(f"done in {time.perf_counter() - start:.1f}s -> {cfg.out_dir}")
    return curves, summary, spec


if __name__ == "__main__":
    import tyro

    main(tyro.cli(Config))
