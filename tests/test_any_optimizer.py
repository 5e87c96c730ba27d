"""The eta_0-robustness benchmark for any optimizer: ``--optimizer package.module:Class`` in train and in grids."""

from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path

import pytest
import torch

from rl_adaloss.agents import make_agent
from rl_adaloss.experiment import spec_from_dict
from rl_adaloss.experiment.cli import main
from rl_adaloss.experiment.report import make_report
from rl_adaloss.experiment.sweep import run_sweep
from rl_adaloss.sb3 import optimizer_class

TINY_HP = ["n_envs=1", "n_steps=64", "batch_size=32", "n_epochs=1", "policy_kwargs={net_arch: [16]}"]
TRAIN = ["--algo", "ppo", "--env", "Pendulum-v1", "-n", "128", "--eval-freq", "64", "--eval-episodes", "1", "--no-progress"]

# A user's package: one optimizer whose step() takes loss=, one that needs a closure, and one that is no optimizer.
USER_MODULE = """
import torch


class NeedsLoss(torch.optim.SGD):
    def step(self, closure=None, *, loss=None):
        self.state.setdefault("losses", []).append(float(loss))
        return super().step()


class NeedsClosure(torch.optim.SGD):
    def step(self, closure):
        self.state.setdefault("losses", []).append(float(closure()))
        return super().step()


class NotAnOptimizer:
    pass
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """``user_opts`` on sys.path, as an optimizer author's package would be."""
    (tmp_path / "user_opts.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "user_opts"


def train(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["train", *TRAIN, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_train_with_a_class_path_records_its_identity(tmp_path, capsys):
    log = tmp_path / "runs"
    code, out, _ = train(capsys, "--optimizer", "torch.optim:SGD", "--lr", "1e-3", "--optimizer-kwargs", "{momentum: 0.9}",
                         "--log-folder", str(log), "--hyperparams", *TINY_HP)  # fmt: skip
    assert code == 0, out
    result = json.loads(out)
    assert result["status"] == "ok" and result["num_timesteps"] == 128
    (run_dir,) = [p for p in log.iterdir() if p.is_dir()]
    assert run_dir.name.startswith("Pendulum-v1__ppo__torch.optim.SGD-k") and run_dir.name.endswith("__lr0.001__s0")
    config = json.loads((run_dir / "config.json").read_text())
    agent = config["identity"]["agent"]
    assert agent["optimizer"] == agent["optimizer_class"] == "torch.optim:SGD"
    assert agent["optimizer_kwargs"] == {"momentum": 0.9}  # exactly the given kwargs (no registered eps default)
    assert config["optimizer_kwargs"] == '{"momentum": 0.9}'
    assert config["identity"]["versions"]["torch"] == torch.__version__


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--optimizer", "no_such_pkg.sub:Opt"], "'no_such_pkg.sub:Opt' (module 'no_such_pkg.sub' does not import"),
        (["--optimizer", "torch.optim:Nope"], "'torch.optim:Nope' (module 'torch.optim' has no attribute 'Nope')"),
        (["--optimizer", "torch.nn:Linear"], "'torch.nn:Linear' (class torch.nn.modules.linear.Linear, not a torch.optim"),
        (["--optimizer", "torch.optim:SGD", "--optimizer-kwargs", "{bogus: 1}"], "unexpected keyword argument 'bogus'"),
        (["--optimizer", "torch.optim:SGD", "--optimizer-kwargs", "{momentum: -1}"], "Invalid momentum value: -1"),
        (["--optimizer", "torch.optim:SGD", "--optimizer-kwargs", "[1, 2]"], "'[1, 2]' (expected a mapping"),
        (["--optimizer", "sgd"], "invalid choice: 'sgd' (choose from 'adam', 'adamloss',"),
        (["--optimizer", "torch optim:SGD"], "'torch optim:SGD' (expected a registered name or package.module:Class)"),
    ],
)
def test_bad_optimizer_one_line_exit_2_nothing_written(tmp_path, capsys, args, named):
    log = tmp_path / "runs"
    code, out, err = train(capsys, *args, "--lr", "1e-3", "--log-folder", str(log), "--hyperparams", *TINY_HP)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("rl-adaloss train: error: ") and named in err, err
    assert not log.exists()


def test_a_class_whose_step_needs_the_loss_is_fed(user_module):
    for name in ("NeedsLoss", "NeedsClosure"):
        model, agent = make_agent("ppo", "Pendulum-v1", f"{user_module}:{name}", 1e-3, seed=0, device="cpu",
                                  hyperparams={"n_envs": 1, "n_steps": 64, "batch_size": 32, "n_epochs": 1})  # fmt: skip
        model.learn(128)
        losses = model.policy.optimizer.state["losses"]
        assert len(losses) == 4 and all(abs(x) > 0 for x in losses)  # 2 rollouts x 2 minibatches, each step its loss
        assert agent.optimizer_class == f"{user_module}:{name}"
    assert optimizer_class("torch.optim:SGD") is torch.optim.SGD  # step(closure=None): used as is, not wrapped


def test_class_path_identity_has_its_package_version(user_module, tmp_path):
    from rl_adaloss.experiment import RunConfig
    from rl_adaloss.experiment.identity import resolve_run

    config = RunConfig(optimizer=f"{user_module}:NeedsLoss", lr=1e-3, n_timesteps=128, log_folder=str(tmp_path))
    assert resolve_run(config)["versions"][user_module] == "unversioned"
    assert "user_opts" not in resolve_run(RunConfig(n_timesteps=128))["versions"]
    with pytest.raises(ValueError, match=r"Invalid optimizer: 'user_opts:NotAnOptimizer' \(class user_opts.NotAnOpt"):
        resolve_run(RunConfig(optimizer=f"{user_module}:NotAnOptimizer", lr=1e-3, n_timesteps=128))


def test_grid_with_class_path_arms_runs_and_reports(tmp_path):
    raw = dict(envs=["Pendulum-v1"], algos=["ppo"], lrs=[1e-3], seeds=[0, 1], n_timesteps=128, eval_freq=64,
               eval_episodes=1, hyperparams=dict(n_envs=1, n_steps=64, batch_size=32, n_epochs=1,
                                                  policy_kwargs={"net_arch": [16]}),
               optimizers=["torch.optim:SGD", {"torch.optim:SGD": {"momentum": 0.9}}])  # fmt: skip
    out = tmp_path / "sweep"
    summary = run_sweep(spec_from_dict(raw), out, workers=1, progress=False)
    assert (summary["total"], summary["ok"]) == (4, 4)
    with (out / "results.csv").open() as fh:
        arms = sorted({row["optimizer"] for row in csv.DictReader(fh)})
    assert arms == ["torch.optim:SGD", "torch.optim:SGD(momentum=0.9)"]
    make_report(out, reps=50)
    report = (out / "report.md").read_text()
    assert "| torch.optim:SGD@0.001 |" in report and "| torch.optim:SGD(momentum=0.9)@0.001 |" in report
    assert run_sweep(spec_from_dict(raw), out, workers=1, progress=False)["skipped"] == 4  # resumed: nothing redone


@pytest.mark.parametrize(
    ("optimizers", "message"),
    [
        ([{"torch.optim:SGD": [1]}], "optimizers entry {'torch.optim:SGD': [1]}"),
        (["adam", "adam"], "has duplicates"),
        (["torch.optim:Nope"], "ppo torch.optim:Nope: Invalid optimizer: 'torch.optim:Nope'"),
    ],
)
def test_grid_with_bad_optimizer_arms_is_refused(optimizers, message):
    raw = dict(envs=["Pendulum-v1"], algos=["ppo"], lrs=[1e-3], seeds=[0], n_timesteps=128, optimizers=optimizers)
    with pytest.raises(ValueError, match="Invalid sweep spec") as err:
        spec_from_dict(raw)
    assert message in str(err.value)


def test_results_csv_of_a_grid_without_kwargs_keeps_its_columns(tmp_path):
    import shutil

    from rl_adaloss.experiment.sweep import RESULT_FIELDS, write_results_csv

    committed = Path(__file__).resolve().parents[1] / "experiments" / "results" / "pendulum_ppo"
    for run_dir in sorted(p for p in committed.iterdir() if p.is_dir())[:2]:
        shutil.copytree(run_dir, tmp_path / run_dir.name)
    header = write_results_csv(tmp_path).read_text().splitlines()[0]
    before = "algo,env,optimizer,lr,b0,alpha,c,seed,n_timesteps,n_envs,device,eval_freq,eval_episodes,log_folder,hyperparams"
    assert header == ",".join([before, "torch_threads", *RESULT_FIELDS, "run_dir"])  # no optimizer_kwargs column


def test_optimizer_kwargs_read_exponent_floats_as_floats(tmp_path):
    # PyYAML (YAML 1.1) reads 1e-5 as a string; json.dumps writes 1e-05, so a grid's kwargs went through the canonical
    # JSON and came back as the string '1e-05' (AdamLoss then refused eps='1e-05').
    from rl_adaloss.experiment.config import canonical_kwargs, load_yaml, parse_optimizer_kwargs
    from rl_adaloss.experiment.spec import load_spec

    assert load_yaml("{eps: 1e-5, b: 2.5E+3, c: 1, d: '1e-5', e: x1e3}") == {
        "eps": 1e-5,
        "b": 2500.0,
        "c": 1,
        "d": "1e-5",
        "e": "x1e3",
    }
    assert parse_optimizer_kwargs(canonical_kwargs({"eps": 1e-5})) == {"eps": 1e-5}
    assert parse_optimizer_kwargs("{eps: 1e-5}") == {"eps": 1e-5}
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        textwrap.dedent("""\
        envs: [Pendulum-v1]
        algos: [ppo]
        optimizers: [{adamloss: {eps: 1e-6}}]
        lrs: [1e-3]
        seeds: [0]
        n_timesteps: 64
        hyperparams: {n_steps: 64, batch_size: 32, n_epochs: 1}
    """)
    )
    (config,) = load_spec(grid).runs(str(tmp_path / "out"))
    assert parse_optimizer_kwargs(config.optimizer_kwargs) == {"eps": 1e-6} and config.lr == 1e-3
