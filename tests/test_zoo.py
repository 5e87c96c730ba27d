"""rl_adaloss.zoo: RL Zoo's own presets with this package's optimizers, through RL Zoo's real ``train`` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

pytest.importorskip("rl_zoo3")

from rl_adaloss.agents.presets import zoo_hyperparams_dir
from rl_adaloss.optim import AdamLossRel
from rl_adaloss.zoo import ZOO_ALGOS, algo_from_argv, zoo_hyperparams

ROOT = Path(__file__).resolve().parents[1]


def test_every_env_of_every_algo_gets_the_optimizer_and_keeps_rl_zoos_other_settings():
    folder, _ = zoo_hyperparams_dir()  # type: ignore[misc]
    for algo in ZOO_ALGOS:
        yaml_presets = yaml.safe_load((folder / f"{algo}.yml").read_text())
        built = zoo_hyperparams("adamloss-rel", algo)
        assert sorted(built) == sorted(yaml_presets), algo
        for env_id, preset in built.items():
            assert preset["policy_kwargs"]["optimizer_class"] is AdamLossRel
            assert {k: v for k, v in preset.items() if k not in ("policy_kwargs", "callback")} == {
                k: v for k, v in yaml_presets[env_id].items() if k not in ("policy_kwargs", "callback")
            }
            learned = algo in ("sac", "tqc", "crossq") and str(preset.get("ent_coef", "auto")).startswith("auto")
            assert ("rl_adaloss.sb3.EntCoefOptimizer" in preset.get("callback", [])) == learned, (algo, env_id)
    ppo = zoo_hyperparams("adamloss-rel", "ppo")
    # RL Zoo's Python-source policy_kwargs, evaluated as RL Zoo does, kept beside the optimizer
    source = yaml.safe_load((folder / "ppo.yml").read_text())["HalfCheetahBulletEnv-v0"]["policy_kwargs"]
    assert isinstance(source, str) and "activation_fn=nn.ReLU" in source
    kwargs = ppo["HalfCheetahBulletEnv-v0"]["policy_kwargs"]
    assert kwargs["activation_fn"] is torch.nn.ReLU and kwargs["optimizer_kwargs"] == {"eps": 1e-5}
    a2c_atari = zoo_hyperparams("adamloss-rel", "a2c")["atari"]["policy_kwargs"]  # RL Zoo's RMSpropTFLike, replaced
    assert a2c_atari["optimizer_class"] is AdamLossRel and a2c_atari["optimizer_kwargs"] == {"eps": 1e-5}
    assert "eps" not in zoo_hyperparams("adamloss-rel", "sac")["Pendulum-v1"]["policy_kwargs"]["optimizer_kwargs"]


def test_algo_is_read_as_rl_zoo_reads_it_and_bad_values_are_named():
    assert algo_from_argv(["--env", "Pendulum-v1"]) == "ppo"
    assert algo_from_argv(["--algo", "sac", "--env", "Pendulum-v1"]) == "sac"
    assert algo_from_argv(["--algo=tqc"]) == "tqc"
    with pytest.raises(ValueError, match="Invalid algo: 'ars'"):
        zoo_hyperparams("adamloss-rel", "ars")
    with pytest.raises(ValueError, match="Invalid optimizer: 'nope'"):
        zoo_hyperparams("nope", "ppo")


def test_rl_zoo_train_command_trains_with_the_loss_fed_optimizer(tmp_path):
    from stable_baselines3 import PPO

    cmd = [sys.executable, "-m", "rl_zoo3.train", "--algo", "ppo", "--env", "Pendulum-v1", "--conf-file",
           "rl_adaloss.zoo.adamloss_rel", "-n", "512", "-f", str(tmp_path), "--seed", "0", "--hyperparams", "n_envs:1",
           "n_steps:128", "batch_size:64", "n_epochs:1"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    (saved,) = tmp_path.glob("ppo/Pendulum-v1_*/Pendulum-v1.zip")
    optimizer = PPO.load(saved, device="cpu").policy.optimizer
    assert type(optimizer) is AdamLossRel
    group = optimizer.param_groups[0]
    # 512 steps = 4 rollouts of 128, 2 minibatches each: 8 steps, each adding its loss (relative to the first ones)
    assert group["rl_adaloss_ref_count"] == 8 and group["rl_adaloss_ref_sum"] > 0
    assert group["rl_adaloss_accumulator"] - group["rl_adaloss_b0_remaining"] > 0  # the loss part of b grew
