"""Theory experiments (experiments/theory): Corollary 1 headline, Section 4 two-layer network, tiny script runs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from experiments.theory import linear_regression as lr
from experiments.theory import two_layer as tl
from experiments.theory.common import scaled_windows, window_means

B0S = (1e-2, 1e-1, 1.0, 10.0, 1e2)


@pytest.fixture(scope="module")
def regression() -> tuple[torch.Tensor, torch.Tensor]:
    x, y, _ = lr.make_problem(n=200, d=20, seed=0, row_norm=None)  # raw rows: eigenvalues of X^T X / n in ~[0.5, 1.7]
    return x, y


@pytest.mark.parametrize("b0", B0S)
def test_corollary1_full_batch_adaloss_reaches_1e8_for_every_b0(regression, b0: float) -> None:
    x, y = regression
    loss, step = lr.run_one(x, y, "AdaLoss", b0, iterations=2500, eta=1.0, alpha=2.0, batch_size=len(y))
    assert loss[-1] < 1e-8, f"b0={b0}: final loss {loss[-1]:.3g}"
    assert np.all(np.diff(step) <= 0)  # b only grows
    assert step[-1] <= 1.0 / b0


def test_corollary1_discriminates_sgd_constant_with_large_step_fails(regression) -> None:
    x, y = regression
    loss, _ = lr.run_one(x, y, "SGD-Constant", 1e-2, iterations=200, eta=1.0, batch_size=len(y))  # step eta/b0 = 100
    assert not loss[-1] < 1e-8
    assert math.isinf(loss[-1])  # diverged


def test_window_means_are_one_based_and_keep_divergence() -> None:
    values = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, np.inf, 3.0, 5.0]])
    out = window_means(values, [(1, 2), (3, 4)])
    np.testing.assert_allclose(out, [[1.5, 3.5], [np.inf, 4.0]])
    with pytest.raises(ValueError):
        window_means(values, [(0, 2)])
    assert scaled_windows(5000, lr.PAPER_WINDOWS) == list(lr.PAPER_WINDOWS)
    assert scaled_windows(500, lr.PAPER_WINDOWS) == [(10, 20), (99, 100), (490, 500)]


def test_linear_regression_script_tiny(tmp_path: Path) -> None:
    cfg = lr.Config(seeds=(0, 1), iterations=300, n=60, d=8, b0s=(0.1, 10.0), out_dir=tmp_path)
    df = lr.main(cfg)
    csv = pd.read_csv(tmp_path / "linear_regression.csv")
    assert list(csv.columns) == [
        "algorithm", "b0", "window", "window_start", "window_end", "loss_mean", "loss_std", "step_mean", "step_std",
        "final_loss_mean", "n_seeds", "n_diverged",
    ]  # fmt: skip
    assert len(csv) == len(df) == 4 * 2 * 3
    assert set(csv["n_seeds"]) == {2}
    assert (tmp_path / "linear_regression.png").stat().st_size > 10_000
    assert (tmp_path / "linear_regression_config.json").exists()
    # SGD-Constant with step 1 / 0.1 = 10 on rows of norm 3 diverges; AdaLoss with the same b0 does not
    last = csv[csv["window_end"] == 300].set_index(["algorithm", "b0"])
    assert math.isinf(last.loc[("SGD-Constant", 0.1), "loss_mean"])
    assert last.loc[("AdaLoss", 0.1), "loss_mean"] < 1e-3


def test_h_infinity_matches_definition_and_monte_carlo() -> None:
    x, _ = tl.make_data(n=5, d=3, seed=0)
    h = tl.h_infinity(x)
    np.testing.assert_allclose(np.diag(h), 0.5)
    g = torch.Generator().manual_seed(1)
    w = torch.randn(200_000, 3, generator=g, dtype=torch.float64)
    act = (x @ w.T > 0).to(torch.float64)  # E_w[x_i^T x_j 1{w^T x_i > 0, w^T x_j > 0}]
    mc = (x @ x.T) * (act @ act.T) / w.shape[0]
    np.testing.assert_allclose(h, mc.numpy(), atol=5e-3)
    lam_min, norm = tl.spectrum(h)
    assert 0 < lam_min < norm < 5


@pytest.fixture(scope="module")
def tiny_two_layer() -> tuple[torch.Tensor, torch.Tensor, float, float]:
    x, y = tl.make_data(n=8, d=6, seed=0)
    lam_min, norm = tl.spectrum(tl.h_infinity(x))
    return x, y, lam_min, norm


def test_two_layer_gd_at_one_over_h_norm_converges_linearly(tiny_two_layer) -> None:
    x, y, lam_min, norm = tiny_two_layer
    loss, _ = tl.train(x, y, "GD", m=1000, seed=0, iterations=400, eta=1.0 / norm)
    slope, r2 = tl.fit_log_rate(loss)
    assert loss[-1] < 1e-12
    assert slope < 0 and r2 > 0.95
    assert slope < 0.5 * 2 * math.log(1 - lam_min / norm)  # at least half the linearized rate


@pytest.mark.parametrize("b0", B0S)
def test_two_layer_adaloss_converges_for_every_b0(tiny_two_layer, b0: float) -> None:
    x, y, _, _ = tiny_two_layer
    loss, step = tl.train(x, y, "AdaLoss", m=500, seed=0, iterations=4000, eta=1.0, b0=b0, alpha=1.0)
    assert loss[-1] < 1e-3 * loss[0], f"b0={b0}: {loss[0]:.3g} -> {loss[-1]:.3g}"
    assert step[-1] <= 1.0 / b0


def test_two_layer_script_tiny(tmp_path: Path) -> None:
    cfg = tl.Config(n=6, d=4, m=300, iterations=150, gd_multiples=(1.0,), b0s=(0.1, 10.0), out_dir=tmp_path)
    curves, _summary, spec = tl.main(cfg)
    csv = pd.read_csv(tmp_path / "two_layer.csv")
    assert list(csv.columns) == ["run", "method", "b0", "eta", "iteration", "loss", "step"]
    assert csv["run"].nunique() == 1 + 2 * 2
    assert len(csv) == len(curves)
    summ = pd.read_csv(tmp_path / "two_layer_summary.csv")
    assert len(summ) == 5 and {"final_loss", "fitted_log_rate", "linearized_log_rate"} <= set(summ.columns)
    assert summ.loc[summ["method"] == "GD", "fitted_log_rate"].iloc[0] < 0
    assert 0 < spec["lambda_min"] < spec["h_norm"]
    assert (tmp_path / "two_layer.png").stat().st_size > 10_000
