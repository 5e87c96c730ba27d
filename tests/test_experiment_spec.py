"""rl_adaloss.experiment.spec: a YAML grid is validated, every run resolved and built, before any run starts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from rl_adaloss.experiment import spec_from_dict
from rl_adaloss.experiment.sweep import default_workers, run_sweep

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "experiments" / "grids" / "tiny.yaml"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"envs": ["NoSuchEnv-v9"]}, "Invalid env: 'NoSuchEnv-v9' is not a registered Gymnasium id"),
        ({"algos": ["nope"]}, "algos='nope' is not valid .valid: a2c, crossq"),
        ({"optimizers": ["sgdx"]}, "optimizers='sgdx'"),
        ({"lrs": [0.001, -1]}, "lrs=-1.0 must be a finite number > 0"),
        ({"lrs": [0.001, float("inf")]}, "lrs=inf must be a finite number > 0"),
        ({"b0s": [float("inf")]}, "b0s=inf must be a finite number > 0"),
        ({"alphas": [-1]}, "alphas=-1.0 must be a finite number >= 0"),
        ({"cs": [float("nan")]}, "cs=nan must be a finite number"),
        ({"hyperparams": {"n_stpes": 64}}, "Invalid hyperparams key 'n_stpes' for ppo .did you mean 'n_steps'"),
        ({"hyperparams": {"batch_size": "oops"}}, "batch_size='oops' for ppo: expected an integer"),
        ({"lrs": ["fast"]}, "lrs='fast' is not a number"),
        ({"seeds": [0, 1.5]}, "seeds=1.5"),
        ({"n_timesteps": 0}, "n_timesteps=0"),
        ({"eval_freq": "often"}, "eval_freq='often'"),
        ({"hyperparams": [1, 2]}, "hyperparams=.*not a mapping"),
        ({"lr_free": ["adam"]}, "lr_free='adam' is not learning-rate-free"),
        ({"colour": "red"}, "unknown key.*colour"),
        ({"seeds": None}, "'seeds' is missing"),
    ],
)
def test_spec_validation(change, message):
    raw = yaml.safe_load(TINY.read_text())
    raw.update(change)
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(ValueError, match=message):
        spec_from_dict(raw)


def test_sweep_validates_every_combination_by_building_it(tmp_path, grid, cli, in_process):
    with pytest.raises(ValueError, match=r"CartPole-v1 sac adam: building sac on CartPole-v1 failed .AssertionError"):
        spec_from_dict(grid(envs=["Pendulum-v1", "CartPole-v1"], algos=["sac"], hyperparams={}))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(grid(hyperparams={"n_stpes": 64})))
    proc = cli("sweep", str(bad), "--out", str(tmp_path / "out"), "--no-progress")
    assert proc.returncode == 2 and "Invalid hyperparams key 'n_stpes' for ppo" in proc.stderr
    assert not (tmp_path / "out").exists()
    zero = in_process("sweep", str(bad), "--out", str(tmp_path / "out"), "--workers", "0")
    assert zero.returncode == 2 and "argument --workers: invalid value '0' (expected an integer >= 1)" in zero.stderr
    with pytest.raises(ValueError, match="Invalid workers: 0"):
        run_sweep(spec_from_dict(grid()), tmp_path / "out", workers=0)
    assert default_workers() == len(os.sched_getaffinity(0))
