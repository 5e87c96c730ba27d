"""Cross-grid summary (``rl-adaloss report --summary``) on small synthetic result folders with hand-computed numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pandas")
pytest.importorskip("rliable")

from rl_adaloss.experiment.cli import main
from rl_adaloss.experiment.report import load_sweep, make_report
from rl_adaloss.experiment.summary import GridInfo, load_grid_info, success_count, summarize_grid, tuned_cell

# Final returns per (optimizer, eta_0), seeds 0-3. Min -1000, max 0: normalised score = 1 + return / 1000.
_GRID = {
    ("adam", 1e-3): [-100.0, -100.0, -100.0, -100.0],  # 0.9 each: IQM 0.9
    ("adam", 1e-1): [-1000.0, -1000.0, -1000.0, -1000.0],  # 0: Adam's worst cell, headline 0 / 1 = 0
    ("adamloss", 1e-3): [0.0, 0.0, 0.0, 0.0],  # 1.0: the best cell
    ("adamloss", 1e-1): [-400.0, -500.0, -500.0, -600.0],  # 0.6, 0.5, 0.5, 0.4: IQM of the middle two = 0.5
    ("adam+kl", 1e-3): [-300.0, -100.0, -100.0, -100.0],  # an arm name the code has never seen
    ("adam+kl", 1e-1): [-300.0, -300.0, -300.0, -300.0],  # 0.7: headline 0.7
    ("dog", 1.0): [-200.0, -200.0, -200.0, -200.0],  # lr-free: 0.8 of the best cell
}


def _write_run(folder: Path, env: str, opt: str, lr: float, seed: int, final: float | None, status: str = "ok") -> None:
    run_dir = folder / f"{env}__ppo__{opt}__lr{lr:g}__s{seed}"
    run_dir.mkdir(parents=True)
    config = dict(env=env, algo="ppo", optimizer=opt, lr=lr, seed=seed, agent=dict(lr=lr))
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "result.json").write_text(json.dumps(dict(status=status, final_return_mean=final)))
    rows = ["timesteps,mean,std"] + ([f"1000,{final},0.0"] if final is not None else [])
    (run_dir / "eval.csv").write_text("\n".join(rows) + "\n")


def _write_grid(folder: Path, env: str = "Pendulum-v1", grid: dict | None = None) -> Path:
    for (opt, lr), finals in (grid or _GRID).items():
        for seed, final in enumerate(finals):
            _write_run(folder, env, opt, lr, seed, final)
    return folder


def _pick(row: dict, *keys: str) -> tuple:
    return tuple(row[k] for k in keys)


def _rows(folder: Path, info: GridInfo, reps: int = 100) -> dict[str, dict]:
    runs, _ = load_sweep(folder, info.include)
    return {row["arm"]: row for row in summarize_grid(runs, info, reps=reps, seed=0)}


def test_success_count_and_tuned_cell_hand_computed():
    assert success_count(np.array([-100.0, -150.0, -151.0, np.nan]), -150.0) == (2, 4)
    assert tuned_cell([1e-5, 9.80828e-05, 0.1], 9.80828e-5) == 9.80828e-05
    with pytest.raises(ValueError, match=r"Invalid tuned_lr value: 0.003 \(not an eta_0 of the grid: 0.001, 0.1\)"):
        tuned_cell([1e-3, 0.1, 1e-3], 3e-3)


def test_summarize_grid_hand_computed(tmp_path):
    folder = _write_grid(tmp_path / "grid")
    rows = _rows(folder, GridInfo(folder=folder, task="T", tuned_lr=1e-3, threshold=-150.0))
    assert set(rows) == {"adam", "adam+kl", "adamloss", "dog"}
    assert {r["best_cell"] for r in rows.values()} == {"adamloss@0.001"} and rows["adam"]["metric"] == "IQM"
    # Headline: worst cell / best cell (1.0); constant cells have degenerate bootstrap intervals.
    assert rows["adam"]["headline"] == pytest.approx(0.0) and rows["adam"]["worst_lr"] == 0.1
    assert (rows["adam"]["low"], rows["adam"]["high"]) == pytest.approx((0.0, 0.0))
    assert rows["adamloss"]["headline"] == pytest.approx(0.5) and rows["adamloss"]["worst_lr"] == 0.1
    assert rows["adamloss"]["low"] <= 0.5 <= rows["adamloss"]["high"] <= 0.6 + 1e-12
    assert rows["adam+kl"]["headline"] == pytest.approx(0.7) and rows["adam+kl"]["worst_lr"] == 0.1
    assert rows["dog"]["headline"] == pytest.approx(0.8) and rows["dog"]["low"] is None
    # PoI at the tuned eta_0 against Adam's tuned cell (-100 in every seed).
    assert rows["adamloss"]["poi_tuned"] == pytest.approx(1.0)  # 0 > -100 always
    assert rows["dog"]["poi_tuned"] == pytest.approx(0.0)  # -200 < -100 always
    assert rows["adam+kl"]["poi_tuned"] == pytest.approx(0.375)  # never better, ties 3 of 4: 0.5 * 0.75
    assert rows["adam"]["poi_tuned"] is None
    # Successes: final return >= -150, over all eta_0 and at the tuned eta_0.
    assert _pick(rows["adam"], "success", "runs", "success_tuned", "runs_tuned") == (4, 8, 4, 4)
    assert (rows["adam+kl"]["success"], rows["adam+kl"]["success_tuned"]) == (3, 3)
    assert (rows["adamloss"]["success"], rows["adamloss"]["success_tuned"]) == (4, 4)
    assert (rows["dog"]["success"], rows["dog"]["runs"], rows["dog"]["success_tuned"]) == (0, 4, None)


def test_summary_agrees_with_the_report(tmp_path):
    """The summary's headline and PoI are the report's own numbers (same statistic, reps and seed)."""
    grid = dict(_GRID)
    grid[("adamloss", 1e-1)] = [-450.0, -300.0, -800.0, -120.0]
    grid[("adam", 1e-1)] = [-900.0, -1000.0, -700.0, -980.0]
    folder = _write_grid(tmp_path / "grid", grid=grid)
    report = make_report(folder, reps=100, seed=0)
    rows = _rows(folder, GridInfo(folder=folder, task="T", tuned_lr=1e-3), reps=100)
    for head in report["headline"]:
        row = rows[head["optimizer"]]
        assert _pick(row, "headline", "low", "high", "worst_lr") == _pick(head, "relative", "low", "high", "worst_lr")
    poi = {(r["comparison"], r["lr"]): r for r in report["poi"]}["adamloss > adam", "0.001"]
    assert _pick(rows["adamloss"], "poi_tuned", "poi_low", "poi_high") == _pick(poi, "poi", "low", "high")


def test_diverged_without_evaluation_never_counts_and_include_reads_siblings(tmp_path):
    main_folder = tmp_path / "posthoc"
    _write_run(main_folder, "Pendulum-v1", "adamloss", 1e-3, 0, 0.0)
    _write_run(main_folder, "Pendulum-v1", "adamloss", 1e-3, 1, None, status="diverged")  # scored at the floor
    other = _write_grid(tmp_path / "registered")
    (tmp_path / "grids.yaml").write_text(
        "posthoc: {task: Post-hoc, tuned_lr: 1.0e-3, threshold: -1000, include: [registered]}\n"
    )
    (info,) = load_grid_info([main_folder], tmp_path / "grids.yaml")
    assert info.include == (other,) and info.task == "Post-hoc"
    rows = _rows(main_folder, info)
    # Seeds 0-1 from the post-hoc folder replace the registered ones; seed 1 diverged before any evaluation.
    assert (rows["adamloss"]["success"], rows["adamloss"]["runs"]) == (7, 8)
    assert (rows["adamloss"]["success_tuned"], rows["adamloss"]["runs_tuned"]) == (3, 4)


def test_load_grid_info_errors(tmp_path):
    folder = _write_grid(tmp_path / "g")
    (tmp_path / "bad.yaml").write_text("g: {task: T, tuned: 1.0e-3}\n")
    with pytest.raises(ValueError, match="Invalid key 'tuned' for grid g"):
        load_grid_info([folder], tmp_path / "bad.yaml")
    (tmp_path / "nan.yaml").write_text("g: {threshold: high}\n")
    with pytest.raises(ValueError, match="Invalid threshold value for grid g: 'high'"):
        load_grid_info([folder], tmp_path / "nan.yaml")
    with pytest.raises(ValueError, match=r"Invalid sweep folder: .*missing"):
        load_grid_info([tmp_path / "missing"])
    assert load_grid_info([folder])[0] == GridInfo(folder=folder, task="g")


def test_write_summary_files_and_cli(tmp_path, capsys):
    a = _write_grid(tmp_path / "a")
    b = _write_grid(tmp_path / "b", env="MountainCarContinuous-v0")
    (tmp_path / "grids.yaml").write_text("a: {task: Task A, tuned_lr: 1.0e-3, threshold: -150}\n")
    out = tmp_path / "docs" / "summary.md"
    argv = ["report", "--summary", str(out), "--grids", str(tmp_path / "grids.yaml"), "--reps", "100", str(a), str(b)]
    assert main(argv) == 0
    text = out.read_text()
    assert "rl-adaloss report --summary" in text and "![summary](summary.png)" in text
    assert out.with_suffix(".png").stat().st_size > 0
    frame = __import__("pandas").read_csv(out.with_suffix(".csv"))
    assert sorted(set(frame["grid"])) == ["a", "b"] and len(frame) == 8
    # Grid b has no mapping entry: no tuned eta_0, no threshold, so no PoI and no counts.
    row_b = frame[(frame["grid"] == "b") & (frame["arm"] == "adamloss")].iloc[0]
    assert math.isnan(row_b["poi_tuned"]) and math.isnan(row_b["success"]) and row_b["headline"] == pytest.approx(0.5)
    assert "| adamloss | 0.500 [" in text and "| adam+kl |" in text and "4/8 (tuned 4/4)" in text
    capsys.readouterr()
    assert main(["report", str(a), str(b)]) == 2
    assert "need --summary" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("a: {tuned_lr: 5.0e-3}\n")
    assert main(["report", "--summary", str(tmp_path / "x.md"), "--grids", str(tmp_path / "bad.yaml"), str(a)]) == 2
    assert "Invalid tuned_lr value: 0.005" in capsys.readouterr().err and not (tmp_path / "x.md").exists()
