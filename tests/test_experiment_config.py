"""rl_adaloss.experiment.config: a run's configuration, its hyperparams, eta_0 and its folder's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from rl_adaloss.experiment import RunConfig, parse_hyperparams, run_dir_name
from rl_adaloss.experiment.config import resolve_agent_config, resolve_lr

TINY_HP = ("n_envs=1", "n_steps=64", "batch_size=32", "n_epochs=1", "policy_kwargs={net_arch: [16]}")


def tiny(tmp_path: Path, **kw) -> RunConfig:
    base = dict(n_timesteps=256, eval_freq=128, eval_episodes=2, log_folder=str(tmp_path), hyperparams=TINY_HP)
    return RunConfig(**{**base, **kw})


def test_parse_hyperparams_yaml_values():
    hp = parse_hyperparams(["batch_size=256", "policy_kwargs={net_arch: [32]}", "gamma=0.9", "lr=1e-3"])
    assert hp == {"batch_size": 256, "policy_kwargs": {"net_arch": [32]}, "gamma": 0.9, "lr": "1e-3"}
    with pytest.raises(ValueError, match="key=value"):
        parse_hyperparams(["batch_size"])


def test_run_dir_name(tmp_path):
    config = tiny(tmp_path, env="rl_adaloss/PendulumSwingUp-v0", optimizer="adamloss", lr=0.01, seed=3)
    assert run_dir_name(config) == "rl_adaloss-PendulumSwingUp-v0__ppo__adamloss__lr0.01__s3"
    assert run_dir_name(tiny(tmp_path, lr=None)) == "Pendulum-v1__ppo__adam__lr0.001__s0"  # preset's eta_0


def test_eta0_depends_on_the_preset_only_not_on_b0_alpha_c_or_optimizer_kwargs(tmp_path):
    """The folder's eta_0 comes from the same resolution as the run's agent, with what it does not depend on left out."""
    config = tiny(tmp_path, optimizer="adamloss", lr=None, b0=4.0, alpha=0.5, c=1.0, optimizer_kwargs='{"eps": 1e-6}')
    assert resolve_lr(config) == resolve_agent_config(config).lr == 1e-3
    bad = tiny(tmp_path, optimizer="adam", lr=None, optimizer_kwargs="{no_such_kwarg: 1}")
    with pytest.raises(ValueError, match="no_such_kwarg"):
        resolve_agent_config(bad)
    assert run_dir_name(bad).startswith("Pendulum-v1__ppo__adam-k") and resolve_lr(bad) == 1e-3
