"""rl_adaloss.experiment.report: a sweep folder's figures and tables, merged folders, single train runs."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import pytest

from rl_adaloss.experiment import RunConfig, run_one

TINY_HP = ("n_envs=1", "n_steps=64", "batch_size=32", "n_epochs=1", "policy_kwargs={net_arch: [16]}")


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_report_files_and_reproducible_iqm(tiny_sweep):
    from rl_adaloss.experiment.report import _arm_key, make_report

    out, _ = tiny_sweep
    first = make_report(out, reps=200, seed=0, headline_min_lr=1e-3)
    text = (out / "report.md").read_text()
    for name in ("report.md", "curves.png", "sensitivity.png", "iqm.png", "table.csv"):
        assert (out / name).stat().st_size > 0, name
    assert set(first["iqm"]) == {"adam@0.001", "adamloss@0.001"}
    assert make_report(out, reps=200, seed=0)["iqm"] == first["iqm"]
    assert first["poi"][0]["comparison"] == "adamloss > adam" and 0 <= first["poi"][0]["poi"] <= 1
    table = first["table"]
    assert list(table["n_seeds"]) == [2, 2] and list(table["diverged"]) == [0, 0]
    scores = {opt: [float(r["final_return_mean"]) for r in read_csv(out / "results.csv") if r["optimizer"] == opt]
              for opt in ("adam", "adamloss")}  # fmt: skip
    for row in table.to_dict("records"):  # bootstrap intervals stay within the runs' returns
        assert min(scores[row["optimizer"]]) <= row["ci_low"] <= row["mean"] <= row["ci_high"] <= max(scores[row["optimizer"]])
    assert "Probability of improvement" in text and "adamloss@0.001" in text
    assert first["metric"] == "mean" and "## Aggregate mean" in text and "## Aggregate IQM" not in text  # 2 scores/arm
    assert "(over the whole eta_0 grid)" in text and "(over eta_0 >= 0.001)" in text
    assert first["headline_window"] is not None and len(first["headline"]) == 2
    for row in first["headline"]:  # the headline carries its bootstrap interval, around the point estimate
        assert row["relative"] is None or row["low"] <= row["relative"] <= row["high"], row
    assert "percentile-bootstrap interval of `relative`" in text
    assert sorted(["adam@0.1", "adam@1e-05", "adam@0.001"], key=_arm_key) == ["adam@1e-05", "adam@0.001", "adam@0.1"]


def test_report_include_merges_sweep_folders(tiny_sweep, tmp_path):
    """A variant grid reported next to the main grid equals the report of one folder holding both."""
    import shutil

    from rl_adaloss.experiment.report import make_report

    out, _ = tiny_sweep
    main, variant = tmp_path / "main", tmp_path / "variant"
    for run_dir in out.iterdir():
        if run_dir.is_dir():
            shutil.copytree(run_dir, (variant if "__adamloss__" in run_dir.name else main) / run_dir.name)
    whole = make_report(out, reps=200, seed=0)
    merged = make_report(main, reps=200, seed=0, include=[variant])
    assert merged["iqm"] == whole["iqm"] and merged["poi"] == whole["poi"]
    assert "Runs included from:" in (main / "report.md").read_text()
    assert not (variant / "report.md").exists()
    assert "finished runs left out" not in (main / "report.md").read_text()
    assert make_report(main, reps=200, seed=0, include=[main, variant])["iqm"] == whole["iqm"]  # no run twice
    n_main = sum(1 for d in main.iterdir() if (d / "result.json").exists())
    text = (main / "report.md").read_text()
    assert f"`{main}` ({n_main} of its finished runs left out: a run of the same name" in text, text[:600]
    assert f"`{variant}`\n" in text  # nothing of the variant's was left out
    with pytest.raises(ValueError, match=r"Invalid sweep folder: .*nowhere"):
        make_report(main, include=[tmp_path / "nowhere"])


def test_report_of_single_train_runs_has_no_warnings_and_no_nan(tmp_path, capsys):
    from rl_adaloss.experiment.report import make_report

    base = dict(n_timesteps=128, eval_freq=64, eval_episodes=1, log_folder=str(tmp_path), hyperparams=tuple(TINY_HP))
    result = run_one(RunConfig(**base, optimizer="adamloss"), progress=True)  # the bar goes to stderr
    err = capsys.readouterr().err
    assert "128/128" in err and "eval return" in err
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one = make_report(tmp_path, reps=100)
    text = (tmp_path / "report.md").read_text()
    assert result["status"] == "ok" and "nan" not in text.lower() and one["iqm"] == {}
    assert "Not defined: no env has two distinct scores" in text
    run_one(RunConfig(**base, optimizer="adam"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        two = make_report(tmp_path, reps=100)
    assert two["metric"] == "mean" and "nan" not in (tmp_path / "report.md").read_text().lower()
    assert {r["optimizer"] for r in two["headline"]} == {"adam", "adamloss"}
