"""The ``rl-adaloss`` command (rl_adaloss.experiment.cli): flags, help, what a person sees, exit statuses, bad input.

Real processes where the console script itself matters, ``main()`` in this process (the ``in_process`` fixture)
elsewhere.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from pathlib import Path

import pytest
import yaml

from rl_adaloss.experiment import RunConfig
from rl_adaloss.experiment.cli import main
from rl_adaloss.experiment.run import RunExistsError, check_run_dir

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "experiments" / "grids" / "tiny.yaml"
TINY_GRID = yaml.safe_load(TINY.read_text())
TINY_HP = ["n_envs=1", "n_steps=64", "batch_size=32", "n_epochs=1", "policy_kwargs={net_arch: [16]}"]
TRAIN = ["--algo", "ppo", "--env", "Pendulum-v1", "-n", "128", "--eval-freq", "64", "--eval-episodes", "1"]


def rows(out: Path) -> list[dict[str, str]]:
    with (out / "results.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_help_and_version(cli, in_process):
    top = in_process("--help")
    assert top.returncode == 0 and all(f"  {c} " in top.stdout for c in ("train", "sweep", "report"))
    version = in_process("--version")
    assert version.returncode == 0 and version.stdout.startswith("rl-adaloss ")
    train = cli("train", "-h")
    assert train.returncode == 0 and train.stdout.startswith("usage: rl-adaloss train")
    text = " ".join(train.stdout.split())
    assert "algorithms: ppo, a2c, sac" in text and "optimizers: adam, adamloss" in text and "RL Zoo" in text
    for command in ("sweep", "report"):
        proc = in_process(command, "-h")
        assert proc.returncode == 0 and proc.stdout.startswith(f"usage: rl-adaloss {command}")
    unknown = in_process("trian")
    assert unknown.returncode == 2 and "unknown command 'trian' (valid: train, sweep, report)" in unknown.stderr


def test_train_has_one_flag_per_run_config_field_with_the_fields_description(in_process):
    """The help of each train flag is written once, as the RunConfig field's ``help`` metadata; defaults are the field's."""
    from rl_adaloss.experiment.cli import _train_parser

    text = " ".join(in_process("train", "-h").stdout.split())
    for field in dataclasses.fields(RunConfig):
        flag = "--" + field.name.replace("_", "-")
        assert f"{flag} " in text and " ".join(field.metadata["help"].split()) in text, field.name
    defaults = vars(_train_parser().parse_args([]))
    assert {f.name: defaults[f.name] for f in dataclasses.fields(RunConfig)} == dataclasses.asdict(RunConfig())
    assert "Attributes:" in (RunConfig.__doc__ or "") and "checkpoint_freq: write a checkpoint" in RunConfig.__doc__


def test_train_bad_input_one_line_exit_2_no_folder(tmp_path, cli, in_process):
    cases = {
        ("--env", "Pendulum-v9"): "Invalid env: 'Pendulum-v9' is not a registered Gymnasium id (did you mean 'Pendulum-v1'",
        ("--algo", "ppx"): "argument --algo: invalid choice: 'ppx' (choose from 'ppo', 'a2c'",
        ("--optimizer", "sgd"): "argument --optimizer: invalid choice: 'sgd' (choose from 'adam', 'adamloss'",
        ("--lr", "0"): "argument --lr: invalid value '0' (expected a finite number > 0)",
        ("--hyperparams", "n_stpes=8"): "Invalid hyperparams key 'n_stpes' for ppo (did you mean 'n_steps'?",
        ("--hyperparams", "batch_size=big"): "Invalid hyperparams value batch_size='big' for ppo: expected an integer",
    }
    for i, (args, message) in enumerate(cases.items()):
        run = cli if i == 0 else in_process  # one real process, the rest in this one
        proc = run("train", "--log-folder", str(tmp_path / "runs"), *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and message in proc.stderr, proc.stderr
    assert not (tmp_path / "runs").exists()


def test_train_never_deletes_what_it_did_not_write(tmp_path, cli, in_process):
    args = [*TRAIN, "--log-folder", str(tmp_path), "--hyperparams", *TINY_HP]
    first = cli("train", *args)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert "preset: ppo on Pendulum-v1 from agents/ppo.yml" in first.stderr
    assert "step/s" not in first.stderr  # no progress bar when not on a terminal
    run_dir = tmp_path / result["run_dir"]
    (run_dir / "notes.txt").write_text("mine")
    saved = (run_dir / "result.json").read_text()

    again = cli("train", *args)
    assert again.returncode == 2 and "already holds a finished run of this configuration" in again.stderr
    assert "--overwrite" in again.stderr and (run_dir / "result.json").read_text() == saved

    other = in_process("train", *args, "n_epochs=2")  # same folder name, different configuration
    assert other.returncode == 2 and "agent.hyperparams.n_epochs: 1 -> 2" in other.stderr

    replaced = in_process("train", *args, "n_epochs=2", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert (run_dir / "notes.txt").read_text() == "mine"  # --overwrite deletes only the run's own files
    assert json.loads((run_dir / "config.json").read_text())["agent"]["hyperparams"]["n_epochs"] == 2

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.csv").write_text("1")
    with pytest.raises(RunExistsError, match=r"holds files no run wrote .data\.csv"):
        check_run_dir(foreign, None)


def test_cli_train(tmp_path, capsys):
    args = ["train", "--optimizer", "adamloss", "--lr", "0.003", "-n", "128", "--eval-freq", "64", "--eval-episodes", "1"]
    args += ["--log-folder", str(tmp_path), "--hyperparams", *TINY_HP]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "ok" and result["run_dir"] == "Pendulum-v1__ppo__adamloss__lr0.003__s0"
    config = json.loads((tmp_path / result["run_dir"] / "config.json").read_text())
    assert config["agent"]["hyperparams"]["policy_kwargs"] == {"net_arch": [16]} and config["n_timesteps"] == 128


def test_cli_sweep_rejects_bad_spec_before_running(tmp_path, capsys):
    raw = yaml.safe_load(TINY.read_text())
    raw["lrs"] = [1e-3, 0]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    assert main(["sweep", str(bad), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert "lrs=0.0 must be a finite number > 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_sweep_with_a_failed_run_finishes_the_rest_and_exits_1(tmp_path, grid, cli, in_process):
    """A run that fails while training (PPO compares target_kl only after its first epoch) is listed; exit 1."""
    spec = grid(algos=["ppo", "a2c"], hyperparams={},
                algo_hyperparams={"ppo": {**TINY_GRID["hyperparams"], "target_kl": "oops"},
                                  "a2c": {"n_envs": 1, "n_steps": 8, "policy_kwargs": {"net_arch": [16]}}})  # fmt: skip
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec))
    proc = cli("sweep", str(path), "--out", str(tmp_path / "out"), "--workers", "1", "--no-progress")
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    assert len(lines) == 2 and any("__a2c__" in line and ": ok, final return" in line for line in lines)
    assert "ok 1, diverged 0, failed 1" in proc.stdout
    assert "1 failed run(s)" in proc.stderr and "Pendulum-v1__ppo__adam__lr0.001__s0: TypeError" in proc.stderr
    assert sorted(r["status"] for r in rows(tmp_path / "out")) == ["failed", "ok"]

    only_failed = tmp_path / "only_failed"  # report: no run with a finite evaluation -> one line, exit 2
    only_failed.mkdir()
    failed_dir = tmp_path / "out" / "Pendulum-v1__ppo__adam__lr0.001__s0"
    os.symlink(failed_dir, only_failed / failed_dir.name)
    report = in_process("report", str(only_failed))
    assert report.returncode == 2 and len(report.stderr.strip().splitlines()) == 1
    assert "no run under" in report.stderr and "has a finite evaluation (1 runs: failed 1)" in report.stderr
