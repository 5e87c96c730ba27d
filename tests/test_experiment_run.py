"""rl_adaloss.experiment.run: one seeded run, what it writes, how it ends (ok, diverged, failed), its lock."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from pathlib import Path

import pytest
import torch

from rl_adaloss.experiment import RunConfig, load_spec, run_dir_name, run_one
from rl_adaloss.experiment.cli import main
from rl_adaloss.experiment.sweep import run_sweep

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "experiments" / "grids" / "tiny.yaml"
TINY_HP = ("n_envs=1", "n_steps=64", "batch_size=32", "n_epochs=1", "policy_kwargs={net_arch: [16]}")
NUMBERS = ("final_return_mean", "final_return_std", "auc", "num_timesteps", "status")


def tiny(tmp_path: Path, **kw) -> RunConfig:
    base = dict(n_timesteps=256, eval_freq=128, eval_episodes=2, log_folder=str(tmp_path), hyperparams=TINY_HP)
    return RunConfig(**{**base, **kw})


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_tensorboard_events(tiny_sweep):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tiny_sweep[0] / "Pendulum-v1__ppo__adamloss__lr0.001__s0"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "rollout/ep_rew_mean" in tags and "eval/mean_reward" in tags and "train/loss" in tags
    assert "optim/policy/effective_lr" in tags and "optim/policy/accumulator" in tags
    assert "_hparams_/experiment" in acc.PluginTagToContent("hparams")
    adam = EventAccumulator(str(tiny_sweep[0] / "Pendulum-v1__ppo__adam__lr0.001__s0"))
    adam.Reload()  # one tag for every optimizer's step size, so Adam and AdamLoss share a TensorBoard chart
    assert [e.value for e in adam.Scalars("optim/policy/effective_lr")] == pytest.approx([1e-3] * 4)
    assert "optim/policy/accumulator" not in adam.Tags()["scalars"]


def test_determinism_same_seed(tiny_sweep, tmp_path):
    """In-process rerun of a config equals the result the sweep's worker process produced."""
    out, _ = tiny_sweep
    spec_run = next(c for c in load_spec(TINY).runs(out) if c.optimizer == "adamloss" and c.seed == 1)
    again = run_one(dataclasses.replace(spec_run, log_folder=str(tmp_path)))
    before = json.loads((out / run_dir_name(spec_run) / "result.json").read_text())
    assert {k: again[k] for k in NUMBERS} == {k: before[k] for k in NUMBERS}


def test_other_seed_differs(tiny_sweep):
    rows = {(r["optimizer"], r["seed"]): r for r in read_csv(tiny_sweep[0] / "results.csv")}
    assert rows[("adam", "0")]["final_return_mean"] != rows[("adam", "1")]["final_return_mean"]


def test_normalized_preset_saves_vecnormalize(tmp_path):
    config = tiny(tmp_path, env="rl_adaloss/CartPoleSwingUp-v0", eval_freq=10_000, eval_episodes=1)
    result = run_one(config)
    run_dir = tmp_path / result["run_dir"]
    assert result["status"] == "ok" and result["final_timestep"] == 256  # the end of training is always evaluated
    assert (run_dir / "vecnormalize.pkl").is_file() and (run_dir / "model.zip").is_file()
    assert json.loads((run_dir / "config.json").read_text())["agent"]["normalize"] is True


def test_diverged_and_failed_runs(tmp_path):
    diverged = run_one(tiny(tmp_path, lr=1e6))
    assert diverged["status"] == "diverged" and "invalid values" in diverged["error"]
    failed = run_one(tiny(tmp_path, hyperparams=(*TINY_HP, "target_kl=oops")))  # valid until PPO compares it
    assert failed["status"] == "failed" and "TypeError" in failed["error"]
    for result in (diverged, failed):
        saved = json.loads((tmp_path / result["run_dir"] / "result.json").read_text())
        assert saved["status"] == result["status"] and (tmp_path / result["run_dir"] / "config.json").is_file()


class _AssertingSGD(torch.optim.SGD):
    """SGD that, at its third step, raises an ``AssertionError`` as DoG does on a NaN gradient norm ("got: nan");
    with ``poison`` it first makes a gradient NaN (a diverged run), without it every tensor stays finite (a bug)."""

    def __init__(self, params, lr, poison=True):
        super().__init__(params, lr=lr)
        self.poison, self.n_steps = poison, 0

    def step(self, closure=None):
        self.n_steps += 1
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        if self.n_steps == 3:
            if self.poison:
                grads[0].fill_(float("nan"))
            norm = sum(float(g.norm()) for g in grads)
            raise AssertionError(f"cannot work when G is not strictly positive. got: {norm}")
        return super().step(closure)


@pytest.mark.parametrize("poison, status", [(True, "diverged"), (False, "failed")])
def test_non_finite_gradients_classify_any_error_as_diverged(tmp_path, monkeypatch, poison, status):
    from rl_adaloss.sb3 import OPTIMIZERS, OptimizerSpec

    monkeypatch.setitem(OPTIMIZERS, "asserting-sgd", OptimizerSpec(f"{__name__}:_AssertingSGD", adam_like=False))
    hp = (*TINY_HP, f"policy_kwargs={{net_arch: [16], optimizer_kwargs: {{poison: {str(poison).lower()}}}}}")
    result = run_one(tiny(tmp_path, optimizer="asserting-sgd", lr=1e-3, hyperparams=hp))
    assert result["status"] == status and result["error"].startswith("AssertionError: cannot work")
    if poison:  # what was reached before the divergence is kept
        assert (tmp_path / result["run_dir"] / "eval.csv").is_file() and result["num_timesteps"] > 0


def test_a_run_another_process_is_running_is_left_to_it(tmp_path, capsys):
    """Two sweeps on one folder: a run whose lock is held is neither cleared nor rerun, and is reported as busy."""
    from rl_adaloss.experiment.run import RunBusyError, hold_run_lock, run_is_busy
    from rl_adaloss.experiment.sweep import _run_or_busy

    out = tmp_path / "out"
    spec = load_spec(TINY)
    busy = spec.runs(out)[0]
    run_dir = out / run_dir_name(busy)
    run_dir.mkdir(parents=True)
    (run_dir / "progress.csv").write_text("in flight\n")  # a run just started (no config.json yet): a sweep would
    # clear its files and restart it, were it not locked
    with hold_run_lock(run_dir):
        assert run_is_busy(run_dir)
        with pytest.raises(RunBusyError, match=rf"{run_dir.name} is being run now by another process \(pid {os.getpid()}"):
            run_one(busy)
        summary = run_sweep(spec, out, workers=2, progress=False)
        assert (summary["busy"], summary["ok"], summary["skipped"]) == (1, 3, 0)
        assert (run_dir / "progress.csv").read_text() == "in flight\n" and not (run_dir / "result.json").exists()
        assert len(read_csv(out / "results.csv")) == 3
        assert main(["sweep", str(TINY), "--out", str(out), "--workers", "1", "--no-progress"]) == 0  # not a failure
        printed = capsys.readouterr().out
        assert f"{run_dir.name}: busy" in printed and "1 run(s) were being run by another process" in printed
        train = ["train", "--optimizer", busy.optimizer, "--lr", str(busy.lr), "--seed", str(busy.seed), "-n", "256"]
        train += ["--eval-freq", "128", "--eval-episodes", "2", "--log-folder", str(out), "--no-progress"]
        assert main([*train, "--hyperparams", *busy.hyperparams]) == 2
        assert f"is being run now by another process (pid {os.getpid()}" in capsys.readouterr().err
    assert not run_is_busy(run_dir)  # released with the block (and by the kernel when a holder dies)
    summary = run_sweep(spec, out, workers=1, progress=False)
    assert (summary["busy"], summary["ok"], summary["skipped"]) == (0, 1, 3)
    assert json.loads((run_dir / "result.json").read_text())["status"] == "ok"
    late = _run_or_busy(busy)  # a sweep that listed the run before another sweep finished it: left alone too
    assert late["status"] == "busy" and "already holds a finished run of this configuration" in late["error"]
    assert sorted(p.name for p in out.glob(".*.lock")) == sorted(f".{run_dir_name(c)}.lock" for c in spec.runs(out))
