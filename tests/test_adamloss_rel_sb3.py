"""AdamLossRel inside Stable-Baselines3: registry, PPO/SAC smoke runs, save/load keeps the reference (needs SB3)."""

from __future__ import annotations

import math

import pytest

from rl_adaloss.optim import AdamLossRel

# ---------------------------------------------------------------------------------------------------- SB3


def test_registered_for_sb3_helpers() -> None:
    from rl_adaloss.sb3 import OPTIMIZERS, optimizer_policy_kwargs

    assert "adamloss-rel" in OPTIMIZERS
    kw = optimizer_policy_kwargs("adamloss-rel", "ppo", alpha=10.0)
    assert kw["optimizer_class"] is AdamLossRel
    assert kw["optimizer_kwargs"] == {"eps": 1e-5, "alpha": 10.0}


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_sb3_learn_smoke(algo: str) -> None:
    from stable_baselines3 import PPO, SAC

    from rl_adaloss.sb3 import optimizer_policy_kwargs

    kwargs = optimizer_policy_kwargs("adamloss-rel", algo, base=dict(net_arch=[16]))
    kwargs["optimizer_kwargs"].update(ref_steps=4, b0_half_life=8.0)
    if algo == "ppo":
        model = PPO("MlpPolicy", "Pendulum-v1", n_steps=64, batch_size=32, n_epochs=2, seed=0, policy_kwargs=kwargs)
        opts = [model.policy.optimizer]
    else:
        model = SAC("MlpPolicy", "Pendulum-v1", learning_starts=64, batch_size=32, seed=0, policy_kwargs=kwargs)
        opts = [model.actor.optimizer, model.critic.optimizer]
    model.learn(256)
    for opt in opts:
        assert isinstance(opt, AdamLossRel)
        assert all(math.isfinite(r) and r > 0 for r in opt.reference_losses())
        assert opt.param_groups[0]["rl_adaloss_ref_count"] == 4  # frozen after ref_steps losses
        assert all(math.isfinite(lr) and lr > 0 for lr in opt.effective_lrs())


def test_sb3_save_load_keeps_the_reference(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from stable_baselines3 import PPO

    from rl_adaloss.sb3 import optimizer_policy_kwargs

    kwargs = optimizer_policy_kwargs("adamloss-rel", "ppo", base=dict(net_arch=[16]))
    kwargs["optimizer_kwargs"].update(ref_steps=4, b0_half_life=8.0)
    model = PPO("MlpPolicy", "Pendulum-v1", n_steps=64, batch_size=32, n_epochs=2, seed=0, policy_kwargs=kwargs)
    model.learn(128)
    model.save(tmp_path / "m.zip")
    loaded = PPO.load(tmp_path / "m.zip", env=model.get_env())
    a, b = model.policy.optimizer, loaded.policy.optimizer
    assert isinstance(b, AdamLossRel)
    for key in ("rl_adaloss_ref_sum", "rl_adaloss_ref_count", "rl_adaloss_ref_steps", "b0_half_life"):
        assert b.param_groups[0][key] == a.param_groups[0][key]
    assert b.param_groups[0]["rl_adaloss_b0_remaining"] == pytest.approx(a.param_groups[0]["rl_adaloss_b0_remaining"])
    assert b.effective_lrs() == pytest.approx(a.effective_lrs())
    loaded.learn(64)  # and training continues
    assert all(math.isfinite(v) for v in b.effective_lrs())
