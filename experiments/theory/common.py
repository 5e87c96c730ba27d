"""Shared pieces of the theory experiments: seeding, optimizer factory, window averages, config dump, plot helpers."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rl_adaloss import AdaGradNorm, AdaLoss, SGDDecaySqrt

#: Names used in CSVs and legends, in plotting order.
ALGORITHMS: tuple[str, ...] = ("AdaLoss", "AdaGrad-Norm", "SGD-Constant", "SGD-DecaySqrt")
COLORS: dict[str, str] = {
    "AdaLoss": "tab:red",
    "AdaGrad-Norm": "tab:blue",
    "SGD-Constant": "tab:green",
    "SGD-DecaySqrt": "tab:orange",
    "GD": "black",
}


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (the runs also use explicit generators; this is belt and braces)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(
    name: str, params: Iterable[nn.Parameter], eta: float, b0: float, alpha: float = 1.0
) -> torch.optim.Optimizer:
    """Build one of the paper's four step-size rules from the library (SGD-Constant is ``torch.optim.SGD``).

    Args:
        name: one of :data:`ALGORITHMS`.
        params: the parameters to train.
        eta: the paper's :math:`\\eta` (``lr``).
        b0: the paper's :math:`b_0`.
        alpha: AdaLoss' :math:`\\alpha` (ignored by the others).

    Returns:
        The optimizer; :func:`effective_lr` reads its current step size.
    """
    if name == "AdaLoss":
        return AdaLoss(params, lr=eta, b0=b0, alpha=alpha)
    if name == "AdaGrad-Norm":
        return AdaGradNorm(params, lr=eta, b0=b0)
    if name == "SGD-DecaySqrt":
        return SGDDecaySqrt(params, lr=eta, b0=b0)
    if name == "SGD-Constant":
        return torch.optim.SGD(params, lr=eta / b0)
    raise ValueError(f"Invalid algorithm: {name!r} (expected one of {ALGORITHMS})")


def effective_lr(opt: torch.optim.Optimizer) -> float:
    """The step size the optimizer's (single) param group used last: ``eta / b_t`` or ``lr`` for plain SGD."""
    if hasattr(opt, "effective_lrs"):
        return float(opt.effective_lrs()[0])
    return float(opt.param_groups[0]["lr"])


def window_means(values: np.ndarray, windows: Sequence[tuple[int, int]]) -> np.ndarray:
    """Average ``values`` (``num_runs`` x ``num_iterations``, iteration ``t`` in column ``t - 1``) over 1-based windows.

    Args:
        values: array of shape (``num_runs`` x ``num_iterations``).
        windows: inclusive ``(first, last)`` iteration pairs, 1-based as in the paper ("[101, 200]").

    Returns:
        Array of shape (``num_runs`` x ``len(windows)``). A window holding an ``inf`` (divergence) averages to ``inf``.

    Raises:
        ValueError: if a window is empty or beyond the recorded iterations.
    """
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    out = np.empty((values.shape[0], len(windows)))
    for j, (first, last) in enumerate(windows):
        if not 1 <= first <= last <= values.shape[1]:
            raise ValueError(f"Invalid window: [{first}, {last}] for {values.shape[1]} iterations")
        chunk = values[:, first - 1 : last]
        out[:, j] = chunk.mean(axis=1)  # inf (divergence) stays inf
    return out


def scaled_windows(iterations: int, paper: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The paper's windows when ``iterations >= 5000``; otherwise the same windows scaled to ``iterations``."""
    last = paper[-1][1]
    if iterations >= last:
        return list(paper)
    out = []
    for first, end in paper:
        hi = max(1, round(end * iterations / last))
        lo = max(1, min(hi, round(first * iterations / last)))
        out.append((lo, hi))
    return out


def save_config(cfg: Any, out_dir: Path, extra: dict[str, Any] | None = None) -> Path:
    """Write the frozen config (plus ``extra``, e.g. computed spectra) to ``out_dir/config.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items()}
    if extra:
        data.update(extra)
    path = out_dir / "config.json"
    path.write_text(json.dumps(data, indent=2, default=float) + "\n")
    return path


def plot_clipped(ax: Any, x: Sequence[float], y: Sequence[float], cap: float, **kwargs: Any) -> Any:
    """Plot ``y`` vs ``x`` on log axes; values above ``cap`` or non-finite (divergence) are drawn at ``cap`` as ``x``.

    Axes in, Axes out (rliable style).
    """
    y_arr = np.asarray(y, dtype=np.float64)
    bad = ~np.isfinite(y_arr) | (y_arr > cap)
    shown = np.where(bad, cap, y_arr)
    (line,) = ax.plot(x, shown, marker="o", **kwargs)
    if bad.any():
        ax.plot(np.asarray(x)[bad], shown[bad], linestyle="none", marker="X", markersize=10, color=line.get_color())
    ax.set_xscale("log")
    ax.set_yscale("log")
    return ax


def fmt(value: float) -> str:
    """Compact number for tables: ``inf`` for divergence, 3 significant digits otherwise."""
    return "inf" if not math.isfinite(value) else f"{value:.3g}"
