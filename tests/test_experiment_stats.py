"""Hand-computed checks of rl_adaloss.experiment.stats (rliable-style exact numbers)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rl_adaloss.experiment import stats

X = np.array([[1.0, 5.0], [2.0, 6.0], [3.0, 7.0]])  # (num_runs=3 x num_tasks=2)
Y = np.array([[0.0, 5.0], [2.0, 9.0]])  # (num_runs=2 x num_tasks=2)


def test_iqm_hand_computed():
    # 8 values 0..7: drop 2 lowest and 2 highest -> mean(2, 3, 4, 5) = 3.5
    assert stats.iqm(np.arange(8.0).reshape(4, 2)) == 3.5
    # 5 values: floor(5/4) = 1 dropped each side -> mean(2, 3, 10) = 5
    assert stats.iqm(np.array([[1.0], [2.0], [3.0], [10.0], [100.0]])) == 5.0


def test_iqm_matches_rliable():
    from rliable import metrics

    rng = np.random.default_rng(0)
    scores = rng.normal(size=(7, 3))
    assert stats.iqm(scores) == pytest.approx(metrics.aggregate_iqm(scores))


def test_probability_of_improvement_hand_computed():
    # task 0: x in {1,2,3} vs y in {0,2}: wins 1>0, 2>0, 3>0, 3>2 = 4, tie 2=2 = 0.5 -> 4.5/6
    # task 1: x in {5,6,7} vs y in {5,9}: wins 6>5, 7>5 = 2, tie 5=5 = 0.5 -> 2.5/6
    assert stats.probability_of_improvement(X, Y) == pytest.approx((4.5 / 6 + 2.5 / 6) / 2)
    assert stats.probability_of_improvement(Y, X) == pytest.approx(1 - (4.5 / 6 + 2.5 / 6) / 2)
    assert stats.probability_of_improvement(X, X) == 0.5


def test_probability_of_improvement_matches_rliable_and_validates():
    from rliable import metrics

    assert stats.probability_of_improvement(X, Y) == pytest.approx(metrics.probability_of_improvement(X, Y))
    with pytest.raises(ValueError, match="tasks"):
        stats.probability_of_improvement(X, Y[:, :1])


def test_mean_ci_student_t():
    mean, low, high = stats.mean_ci(np.array([1.0, 2.0, 3.0]))
    half = 4.302652729911275 / math.sqrt(3)  # t_{0.975, 2} * sd(=1) / sqrt(3)
    assert (mean, low, high) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    assert stats.mean_ci(np.array([4.0, np.nan])) == (4.0, 4.0, 4.0)
    assert all(math.isnan(v) for v in stats.mean_ci(np.array([np.nan])))


def test_min_max_normalize():
    out = stats.min_max_normalize(np.array([[0.0, 10.0], [5.0, 10.0]]), np.array([0.0, 10.0]), np.array([10.0, 10.0]))
    np.testing.assert_allclose(out, [[0.0, 0.0], [0.5, 0.0]])


def test_interval_estimates_seeded_and_centered_on_iqm():
    a = stats.interval_estimates({"x": X, "y": Y}, reps=300, seed=3)
    b = stats.interval_estimates({"x": X, "y": Y}, reps=300, seed=3)
    assert a == b
    assert a["x"][0] == pytest.approx(stats.iqm(X))
    assert a["x"][1] <= a["x"][0] <= a["x"][2]
    poi, low, high = stats.poi_estimate(X, Y, reps=300, seed=3)
    assert poi == pytest.approx(stats.probability_of_improvement(X, Y))
    assert 0.0 <= low <= poi <= high <= 1.0
    assert stats.poi_estimate(X, Y, reps=300, seed=3) == (poi, low, high)


def test_worst_case_relative_hand_computed():
    from rl_adaloss.experiment.stats import worst_case_relative

    iqms = {"adam@0.0001": 0.1, "adam@0.001": 0.8, "adam@0.01": 0.2, "adamloss@0.001": 0.9, "adamloss@0.1": 0.6,
            "adamloss@1e-05": 0.0, "prodigy": 0.95}  # fmt: skip
    whole = {r["optimizer"]: r for r in worst_case_relative(iqms)}  # default: the whole eta_0 grid
    assert whole["adam"]["worst_lr"] == 0.0001 and whole["adamloss"]["worst_lr"] == 1e-05
    assert whole["adamloss"]["relative"] == 0.0
    rows = {r["optimizer"]: r for r in worst_case_relative(iqms, min_lr=3e-4)}
    assert rows["adam"]["worst_lr"] == 0.01 and rows["adam"]["relative"] == pytest.approx(0.2 / 0.95)
    assert rows["adamloss"]["worst_lr"] == 0.1 and rows["adamloss"]["relative"] == pytest.approx(0.6 / 0.95)
    assert rows["adam"]["best_cell"] == "prodigy"
    assert worst_case_relative({}) == []
    assert worst_case_relative({"adam@0.001": 0.0})[0]["relative"] is None  # not nan: undefined, and said so


def test_worst_case_relative_ci_is_paired_on_seeds_and_rechooses_the_worst_cell():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.4, 1.0, size=(5, 1))  # so that 2 * base > base + 0.3: "best" stays the best
    # The best arm is exactly twice x@0.001 seed by seed: with the same resampled seeds for both arms, every replicate's
    # ratio is 0.5 (IQM is scale-equivariant); resampling the arms independently would spread it.
    scores = {"x@0.1": base + 0.3, "x@0.001": base, "best": 2 * base}
    low, high = stats.worst_case_relative_ci(scores, reps=500, seed=1)["x"]
    assert low == pytest.approx(0.5) and high == pytest.approx(0.5)
    # A window that leaves out x@0.001 makes x@0.1 the worst cell: its ratio varies over replicates.
    low, high = stats.worst_case_relative_ci(scores, min_lr=0.01, reps=500, seed=1)["x"]
    point = stats.iqm(base + 0.3) / stats.iqm(2 * base)
    assert low < point < high and low > 0.5
    # Noisy arms: the interval is seeded, contains the point estimate, and leans low against the best-cell maximum.
    noisy = {"a@0.001": rng.uniform(size=(6, 2)), "a@0.1": rng.uniform(size=(6, 2)), "b@0.001": rng.uniform(size=(6, 2))}
    ci = stats.worst_case_relative_ci(noisy, reps=400, seed=2)
    assert ci == stats.worst_case_relative_ci(noisy, reps=400, seed=2)
    for row in stats.worst_case_relative({k: stats.iqm(v) for k, v in noisy.items()}):
        lo, hi = ci[row["optimizer"]]
        assert lo <= row["relative"] <= hi, row
    assert stats.worst_case_relative_ci({}) == {}
    with pytest.raises(ValueError, match="'median'"):
        stats.worst_case_relative_ci(noisy, metric="median")
    with pytest.raises(ValueError, match="shape"):
        stats.worst_case_relative_ci({"a@1": X, "b@1": X[:2]})


def test_bootstrap_mean_ci_never_leaves_the_range_of_the_runs():
    values = np.array([-1500.0, -150.0])  # 2 seeds: the t-interval reaches far above the best possible return
    mean, low, high = stats.bootstrap_mean_ci(values, reps=500, seed=1)
    assert mean == -825.0 and -1500.0 <= low < mean < high <= -150.0
    assert stats.mean_ci(values)[2] > 0 > high
    assert stats.bootstrap_mean_ci(values, reps=500, seed=1) == (mean, low, high)
    assert stats.bootstrap_mean_ci(np.array([3.0, np.nan])) == (3.0, 3.0, 3.0)
    assert all(np.isnan(stats.bootstrap_mean_ci(np.array([]))))
