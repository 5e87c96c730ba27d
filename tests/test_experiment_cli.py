"""A run's identity, folder safety, up-front validation and what a person sees: real runs, real CLI processes."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from rl_adaloss.experiment import RunConfig, run_dir_name, run_one, spec_from_dict
from rl_adaloss.experiment.cli import main
from rl_adaloss.experiment.identity import source_digest
from rl_adaloss.experiment.run import RunExistsError, check_run_dir
from rl_adaloss.experiment.sweep import default_workers, run_sweep

ROOT = Path(__file__).resolve().parents[1]
TINY = yaml.safe_load((ROOT / "experiments" / "grids" / "tiny.yaml").read_text())
TINY_HP = ["n_envs=1", "n_steps=64", "batch_size=32", "n_epochs=1", "policy_kwargs={net_arch: [16]}"]
TRAIN = ["--algo", "ppo", "--env", "Pendulum-v1", "-n", "128", "--eval-freq", "64", "--eval-episodes", "1"]


def cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """Run the installed ``rl-adaloss`` console script (the module, if the script is not on this interpreter)."""
    script = Path(sys.executable).with_name("rl-adaloss")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "rl_adaloss.experiment.cli"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def in_process(capsys, *args: str) -> subprocess.CompletedProcess[str]:
    """The same command through ``main()`` in this process (cheaper than a process start; same code path)."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, out, err)


def grid(**changes) -> dict:
    raw = {**TINY, "optimizers": ["adam"], "seeds": [0], "n_timesteps": 128, "eval_freq": 64, "eval_episodes": 1}
    raw.update(changes)
    return raw


def rows(out: Path) -> list[dict[str, str]]:
    with (out / "results.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_sweep_never_reuses_runs_whose_configuration_changed(tmp_path):
    out = tmp_path / "sweep"
    assert run_sweep(spec_from_dict(grid()), out, workers=1, progress=False)["ok"] == 1
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    first = json.loads((run_dir / "result.json").read_text())
    saved = json.loads((run_dir / "config.json").read_text())
    assert first["config_hash"] == saved["config_hash"]
    assert saved["source"] == source_digest() and "source" not in saved["identity"]  # which code; not in the hash

    with pytest.raises(ValueError, match=r"1 finished run\(s\) .* n_timesteps: 128 -> 64.*--overwrite"):
        run_sweep(spec_from_dict(grid(n_timesteps=64)), out, workers=1, progress=False)
    assert json.loads((out / "spec.json").read_text())["n_timesteps"] == 128  # nothing rewritten

    changed = tmp_path / "changed.yaml"  # a preset override changes the run too; the CLI refuses with exit 2
    changed.write_text(yaml.safe_dump(grid(hyperparams={**TINY["hyperparams"], "n_steps": 32})))
    proc = cli("sweep", str(changed), "--out", str(out), "--no-progress")
    assert proc.returncode == 2 and "agent.hyperparams.n_steps: 64 -> 32" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1

    summary = run_sweep(spec_from_dict(grid(n_timesteps=64)), out, workers=1, progress=False, overwrite=True)
    assert (summary["ok"], summary["skipped"]) == (1, 0)
    (row,) = rows(out)
    assert row["num_timesteps"] == "64" and row["config_hash"] != first["config_hash"]
    assert run_sweep(spec_from_dict(grid(n_timesteps=64)), out, workers=1, progress=False)["skipped"] == 1


def test_train_never_deletes_what_it_did_not_write(tmp_path, capsys):
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

    other = in_process(capsys, "train", *args, "n_epochs=2")  # same folder name, different configuration
    assert other.returncode == 2 and "agent.hyperparams.n_epochs: 1 -> 2" in other.stderr

    replaced = in_process(capsys, "train", *args, "n_epochs=2", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert (run_dir / "notes.txt").read_text() == "mine"  # --overwrite deletes only the run's own files
    assert json.loads((run_dir / "config.json").read_text())["agent"]["hyperparams"]["n_epochs"] == 2

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.csv").write_text("1")
    with pytest.raises(RunExistsError, match=r"holds files no run wrote .data\.csv"):
        check_run_dir(foreign, None)


def test_train_bad_input_one_line_exit_2_no_folder(tmp_path, capsys):
    cases = {
        ("--env", "Pendulum-v9"): "Invalid env: 'Pendulum-v9' is not a registered Gymnasium id (did you mean 'Pendulum-v1'",
        ("--algo", "ppx"): "argument --algo: invalid choice: 'ppx' (choose from 'ppo', 'a2c'",
        ("--optimizer", "sgd"): "argument --optimizer: invalid choice: 'sgd' (choose from 'adam', 'adamloss'",
        ("--lr", "0"): "argument --lr: invalid value '0' (expected a finite number > 0)",
        ("--hyperparams", "n_stpes=8"): "Invalid hyperparams key 'n_stpes' for ppo (did you mean 'n_steps'?",
        ("--hyperparams", "batch_size=big"): "Invalid hyperparams value batch_size='big' for ppo: expected an integer",
    }
    for i, (args, message) in enumerate(cases.items()):
        run = cli if i == 0 else lambda *a: in_process(capsys, *a)  # one real process, the rest in this one
        proc = run("train", "--log-folder", str(tmp_path / "runs"), *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and message in proc.stderr, proc.stderr
    assert not (tmp_path / "runs").exists()


def test_alpha_and_c_are_sweep_axes(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    spec = spec_from_dict(grid(optimizers=["adam", "adamloss"], alphas=[0.5, 2.0], cs=[0.0]))
    assert len(spec.runs(tmp_path)) == 3  # adam once (it takes no alpha), adamloss x 2 alphas x 1 c
    summary = run_sweep(spec, tmp_path, workers=2, progress=False)
    assert summary["ok"] == 3
    by_alpha = {}
    for row in rows(tmp_path):
        config = json.loads((tmp_path / row["run_dir"] / "config.json").read_text())
        if row["optimizer"] == "adamloss":
            assert row["run_dir"].endswith(f"__a{float(row['alpha']):g}__c0__s0")
            assert config["agent"]["optimizer_kwargs"] == {"eps": 1e-5, "alpha": float(row["alpha"]), "c": 0.0}
            acc = EventAccumulator(str(tmp_path / row["run_dir"]))
            acc.Reload()
            by_alpha[float(row["alpha"])] = acc.Scalars("optim/policy/accumulator")[-1].value
    assert by_alpha[2.0] - 1e6 == pytest.approx(4 * (by_alpha[0.5] - 1e6), rel=0.3)  # b0 = 1/lr^2 = 1e6, + alpha sum|f|


def test_sweep_validates_every_combination_by_building_it(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"CartPole-v1 sac adam: building sac on CartPole-v1 failed .AssertionError"):
        spec_from_dict(grid(envs=["Pendulum-v1", "CartPole-v1"], algos=["sac"], hyperparams={}))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(grid(hyperparams={"n_stpes": 64})))
    proc = cli("sweep", str(bad), "--out", str(tmp_path / "out"), "--no-progress")
    assert proc.returncode == 2 and "Invalid hyperparams key 'n_stpes' for ppo" in proc.stderr
    assert not (tmp_path / "out").exists()
    zero = in_process(capsys, "sweep", str(bad), "--out", str(tmp_path / "out"), "--workers", "0")
    assert zero.returncode == 2 and "argument --workers: invalid value '0' (expected an integer >= 1)" in zero.stderr
    with pytest.raises(ValueError, match="Invalid workers: 0"):
        run_sweep(spec_from_dict(grid()), tmp_path / "out", workers=0)
    assert default_workers() == len(os.sched_getaffinity(0))


def test_sweep_with_a_failed_run_finishes_the_rest_and_exits_1(tmp_path, capsys):
    """A run that fails while training (PPO compares target_kl only after its first epoch) is listed; exit 1."""
    spec = grid(algos=["ppo", "a2c"], hyperparams={},
                algo_hyperparams={"ppo": {**TINY["hyperparams"], "target_kl": "oops"},
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
    report = in_process(capsys, "report", str(only_failed))
    assert report.returncode == 2 and len(report.stderr.strip().splitlines()) == 1
    assert "no run under" in report.stderr and "has a finite evaluation (1 runs: failed 1)" in report.stderr


def test_retry_failed_keeps_files_beside_the_run_and_checks_every_folder_before_deleting(tmp_path):
    """A failed run with an analysis file beside it is retried beside that file; a folder of someone else's files is
    refused before any run starts, and nothing is deleted."""
    from rl_adaloss.experiment.run import record_failure

    spec = spec_from_dict(grid(optimizers=["adam", "adamloss"]))
    failed_cfg, other_cfg = spec.runs(tmp_path)
    record_failure(failed_cfg, "AssertionError: boom")
    failed_dir, other_dir = (tmp_path / run_dir_name(c) for c in (failed_cfg, other_cfg))
    (failed_dir / "optim.csv").write_text("step,lr\n")
    other_dir.mkdir()
    (other_dir / "notes.txt").write_text("mine")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match=r"1 run folder.s. to write hold files no run wrote: .*adamloss.*notes\.txt"):
        run_sweep(spec, tmp_path, workers=1, progress=False, retry_failed=True)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    (other_dir / "notes.txt").unlink()
    other_dir.rmdir()
    summary = run_sweep(spec, tmp_path, workers=1, progress=False, retry_failed=True)
    assert (summary["skipped"], summary["ok"], summary["failed"]) == (0, 2, 0)
    assert (failed_dir / "optim.csv").read_text() == "step,lr\n"
    assert json.loads((failed_dir / "result.json").read_text())["status"] == "ok"


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


def test_help_and_version(capsys):
    top = in_process(capsys, "--help")
    assert top.returncode == 0 and all(f"  {c} " in top.stdout for c in ("train", "sweep", "report"))
    version = in_process(capsys, "--version")
    assert version.returncode == 0 and version.stdout.startswith("rl-adaloss ")
    train = cli("train", "-h")
    assert train.returncode == 0 and train.stdout.startswith("usage: rl-adaloss train")
    text = " ".join(train.stdout.split())
    assert "algorithms: ppo, a2c, sac" in text and "optimizers: adam, adamloss" in text and "RL Zoo" in text
    for command in ("sweep", "report"):
        proc = in_process(capsys, command, "-h")
        assert proc.returncode == 0 and proc.stdout.startswith(f"usage: rl-adaloss {command}")
    unknown = in_process(capsys, "trian")
    assert unknown.returncode == 2 and "unknown command 'trian' (valid: train, sweep, report)" in unknown.stderr


def test_source_digest_changes_with_any_package_file_and_ignores_bytecode(tmp_path, monkeypatch):
    import shutil

    import rl_adaloss
    import rl_adaloss.agents

    def copy_tree(src: Path, dst: Path) -> Path:
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        return dst

    package, agents = Path(rl_adaloss.__file__).parent, Path(rl_adaloss.agents.__file__).parent
    checkout = copy_tree(package, tmp_path / "checkout" / "rl_adaloss")  # agents/ beside the package
    checkout_agents = copy_tree(agents, tmp_path / "checkout" / "agents")
    copy = copy_tree(package, tmp_path / "installed" / "rl_adaloss")  # agents/ inside it, as a wheel installs it
    copy_tree(agents, copy / "agents")

    def digest(pkg: Path, agents_dir: Path) -> str:
        monkeypatch.setattr(rl_adaloss, "__file__", str(pkg / "__init__.py"))
        monkeypatch.setattr(rl_adaloss.agents, "__file__", str(agents_dir / "__init__.py"))
        source_digest.cache_clear()
        return source_digest()

    try:
        base = digest(copy, copy / "agents")
        assert len(base) == 16 and int(base, 16) >= 0
        assert digest(checkout, checkout_agents) == base  # the same files, wherever agents/ lies
        (copy / "optim" / "__pycache__").mkdir()
        (copy / "optim" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"bytecode")
        assert digest(copy, copy / "agents") == base
        preset = copy / "agents" / "ppo.yml"  # presets count too (rl_adaloss.agents is agents/)
        preset.write_text(preset.read_text() + "\n# changed\n")
        assert digest(copy, copy / "agents") != base
    finally:
        source_digest.cache_clear()
