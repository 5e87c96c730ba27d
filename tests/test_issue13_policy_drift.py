"""experiments/issue13/policy_drift.py: the first approx_kl and the last std per cell, from optim.csv files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.issue13.policy_drift import cell_lines, run_drift

pytestmark = pytest.mark.study  # the study's tests: outside the default tier (pytest -m study)

HEADER = "timesteps,optim/policy/effective_lr,train/approx_kl,train/std\n"


def _run(folder: Path, optimizer: str, lr: float, seed: int, final, optim_rows: str | None) -> Path:
    run_dir = folder / f"env__ppo__{optimizer}__lr{lr}__s{seed}"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"optimizer": optimizer, "lr": lr, "seed": seed}))
    status = "ok" if final is not None else "diverged"
    (run_dir / "result.json").write_text(json.dumps({"status": status, "final_return_mean": final}))
    if optim_rows is not None:
        (run_dir / "optim.csv").write_text(HEADER + optim_rows)
    return run_dir


def test_first_kl_and_last_std_per_cell(tmp_path):
    # the first row is logged before any update (no train/ values); the kl of the first train() is 40, then 2, 3
    a = _run(tmp_path, "adamloss-rel", 0.1, 0, 1020.4, "512,0.1,,\n1024,0.03,40,0.3\n1536,0.01,2,5.0\n2048,0.01,3,9.5\n")
    _run(tmp_path, "adamloss-rel", 0.1, 1, 230.0, "512,0.1,,\n1024,0.03,7,0.2\n1536,0.01,1,nan\n2048,0.01,1,0.5\n")
    _run(tmp_path, "adam", 1.0, 0, None, None)  # diverged before its first log
    _run(tmp_path, "adam", 1.0, 1, None, "512,1,,\n")
    (tmp_path / "in_flight").mkdir()  # no result.json: not counted
    assert run_drift(a) == (40.0, 9.5)
    lines = cell_lines(tmp_path)
    assert len(lines) == 2
    assert lines[0].startswith("         adam 1 ") and "no log in any run; returns none, none" in lines[0]
    rel = lines[1]
    assert "first approx_kl [7, 40]" in rel, rel
    assert "final std [0.5, 9.5]" in rel, rel
    assert "no log" not in rel and "non-finite" not in rel
    assert rel.endswith("returns (seeds 0, 1) 1020, 230")


def test_non_finite_and_missing_logs_are_counted(tmp_path):
    _run(tmp_path, "adam", 0.1, 0, 5.0, "512,0.1,,\n1024,0.1,inf,inf\n")
    _run(tmp_path, "adam", 0.1, 1, 34.0, "512,0.1,,\n1024,0.1,8e5,7e3\n")
    _run(tmp_path, "adam", 0.1, 2, None, None)
    (line,) = cell_lines(tmp_path)
    assert "first approx_kl [8e+05, 8e+05] (1 non-finite)" in line, line
    assert "final std [7e+03, 7e+03] (1 non-finite)" in line, line
    assert "; no log: 1;" in line and line.endswith("returns (seeds 0, 1, 2) 5, 34, none")
