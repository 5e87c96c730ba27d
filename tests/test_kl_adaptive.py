"""The KL-adaptive learning rate (rl_adaloss.sb3.kl_adaptive): the rule, SB3's schedule rewrite, logging, save/load."""

from __future__ import annotations

import math

import numpy as np
import pytest
from stable_baselines3 import A2C, PPO, SAC

from rl_adaloss.optim._base import ACCUMULATOR, LR0
from rl_adaloss.sb3 import KLAdaptiveCallback, KLAdaptiveLR, use_kl_adaptive_lr

PPO_KW = dict(n_steps=128, batch_size=32, n_epochs=3, policy_kwargs=dict(net_arch=[16]), device="cpu", seed=0)


# ---------------------------------------------------------------------------------------------------------- the rule
def test_rule_with_known_kls():
    s = KLAdaptiveLR(1e-3, target_kl=0.01)
    expected = 1e-3
    for kl, factor in [(0.05, 1 / 1.5), (0.021, 1 / 1.5), (0.02, 1), (0.01, 1), (0.005, 1), (0.0049, 1.5), (1e-9, 1.5),
                       (0.0, 1), (-1e-9, 1), (math.nan, 1), (math.inf, 1)]:  # fmt: skip
        expected *= factor
        assert s.update(kl) == pytest.approx(expected, rel=1e-12), kl
        assert s(0.3) == s.lr  # the schedule's value is the rule's lr, whatever the progress
    assert (s.n_updates, s.n_decreases, s.n_increases) == (11, 2, 2)


def test_rule_clamps_and_constants():
    assert KLAdaptiveLR(1.0).lr == 1e-2  # eta_0 outside the clamp starts clamped
    assert KLAdaptiveLR(1e-7).lr == 1e-5
    s = KLAdaptiveLR(1.2e-5, target_kl=0.02, kl_margin=4.0, factor=2.0, min_lr=1e-5, max_lr=3e-5)
    assert s.update(0.09) == 1e-5  # > 4 * 0.02: halved, clamped
    assert s.update(0.079) == 1e-5  # inside the band [0.005, 0.08]: unchanged
    assert s.update(0.004) == 2e-5 and s.update(0.004) == 3e-5 and s.update(0.004) == 3e-5
    assert s.rule_kwargs() == dict(target_kl=0.02, kl_margin=4.0, factor=2.0, min_lr=1e-5, max_lr=3e-5, mode="minibatch")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(target_kl=0.0), "target_kl value: 0.0"),
        (dict(target_kl=math.nan), "target_kl value: nan"),
        (dict(factor=1.0), "factor value: 1.0"),
        (dict(kl_margin=0.5), "kl_margin value: 0.5"),
        (dict(min_lr=1e-2, max_lr=1e-3), "min_lr value: 0.01"),
        (dict(mode="step"), "mode value: 'step'"),
    ],
)
def test_rule_rejects_bad_constants(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KLAdaptiveLR(1e-3, **kwargs)
    with pytest.raises(ValueError, match=match):
        KLAdaptiveCallback(**kwargs)


def test_only_the_ppo_family():
    with pytest.raises(ValueError, match="A2C takes one step per rollout"):
        use_kl_adaptive_lr(A2C("MlpPolicy", "Pendulum-v1", device="cpu"))
    with pytest.raises(ValueError, match="SAC has no rollout buffer"):
        use_kl_adaptive_lr(SAC("MlpPolicy", "Pendulum-v1", device="cpu", buffer_size=100))


# ---------------------------------------------------------------------------------------------------- inside PPO
class _Spy:
    """Records every rule update (kl, lr before, lr after) and the lr of every optimizer step."""

    def __init__(self, model: PPO, schedule: KLAdaptiveLR) -> None:
        self.updates: list[tuple[float, float, float]] = []
        self.steps: list[float] = []
        self.train_starts: list[tuple[float, float]] = []  # (group lr right after SB3's rewrite, schedule lr)
        update, rewrite = schedule.update, model._update_learning_rate

        def spy_update(kl: float) -> float:
            before = schedule.lr
            after = update(kl)
            self.updates.append((kl, before, after))
            return after

        def spy_rewrite(optimizers):
            rewrite(optimizers)
            self.train_starts.append((model.policy.optimizer.param_groups[0]["lr"], schedule.lr))

        schedule.update = spy_update  # type: ignore[method-assign]
        model._update_learning_rate = spy_rewrite  # type: ignore[method-assign]
        model.policy.optimizer.register_step_post_hook(lambda opt, a, k: self.steps.append(opt.param_groups[0]["lr"]))


def test_minibatch_rule_survives_sb3s_rewrite_and_is_logged():
    model = PPO("MlpPolicy", "Pendulum-v1", learning_rate=1e-3, **PPO_KW)
    schedule = use_kl_adaptive_lr(model)
    spy = _Spy(model, schedule)
    model.learn(128 * 4)
    per_train = 3 * 128 // 32
    assert len(spy.steps) == len(spy.updates) == 4 * per_train  # one update before every step
    assert spy.steps == [after for _, _, after in spy.updates]  # each step used the lr the rule gave it
    for k in range(1, 4):  # across train() calls the rule continues from where it was, SB3's rewrite included
        assert spy.updates[k * per_train][1] == spy.updates[k * per_train - 1][2]
    assert len(spy.train_starts) == 4
    assert all(group == sched for group, sched in spy.train_starts)
    assert any(group != 1e-3 for group, _ in spy.train_starts[1:])  # the rule moved the lr: the rewrite kept it
    assert model.logger.name_to_value["train/learning_rate"] == schedule.lr == spy.steps[-1]


def test_epoch_mode_uses_the_pass_mean_kl_sb3_logs():
    model = PPO("MlpPolicy", "Pendulum-v1", learning_rate=1e-3, **PPO_KW)
    schedule = use_kl_adaptive_lr(model, mode="epoch")
    spy = _Spy(model, schedule)
    model.learn(128 * 2)
    assert len(spy.updates) == 2 * 3  # one per epoch
    # SB3's train/approx_kl is the mean of the last epoch's minibatch KLs: the rule saw exactly that
    assert spy.updates[-1][0] == pytest.approx(float(model.logger.name_to_value["train/approx_kl"]), rel=1e-6)
    n = 128 // 32
    assert spy.steps[:n] == [1e-3] * n  # the first epoch runs at eta_0
    assert spy.steps[n : 2 * n] == [spy.updates[0][2]] * n


def test_target_kl_early_stop_still_updates_in_epoch_mode():
    model = PPO("MlpPolicy", "Pendulum-v1", learning_rate=1e-2, target_kl=1e-6, **PPO_KW)
    schedule = use_kl_adaptive_lr(model, mode="epoch")
    spy = _Spy(model, schedule)
    model.learn(128 * 2)
    assert len(spy.updates) == 2  # each train() stops in its first epoch; the partial pass is still measured
    assert all(after == before / 1.5 for kl, before, after in spy.updates if kl > 0.02)


def test_save_load_continues_from_the_saved_lr(tmp_path):
    model = PPO("MlpPolicy", "Pendulum-v1", learning_rate=1e-3, **PPO_KW)
    schedule = use_kl_adaptive_lr(model, target_kl=0.02)
    model.learn(256)
    assert schedule.n_updates > 0 and schedule.lr != 1e-3
    model.save(tmp_path / "m.zip")
    loaded = PPO.load(tmp_path / "m.zip", env=model.get_env(), device="cpu")
    assert isinstance(loaded.learning_rate, KLAdaptiveLR)
    assert loaded.learning_rate.lr == schedule.lr and loaded.learning_rate.target_kl == 0.02
    restored = use_kl_adaptive_lr(loaded, target_kl=0.02)
    assert restored is loaded.learning_rate and loaded.policy.optimizer.param_groups[0]["lr"] == schedule.lr
    spy = _Spy(loaded, restored)
    loaded.learn(128, reset_num_timesteps=False)
    assert spy.updates[0][1] == schedule.lr  # continues, not from eta_0


def test_callback_reapplies_after_load_and_hooks_are_not_doubled(tmp_path):
    model = PPO("MlpPolicy", "Pendulum-v1", learning_rate=1e-3, **PPO_KW)
    model.learn(128, callback=KLAdaptiveCallback(target_kl=0.01))
    model.learn(128, callback=KLAdaptiveCallback(target_kl=0.01), reset_num_timesteps=False)
    schedule = model.learning_rate
    assert isinstance(schedule, KLAdaptiveLR)
    assert schedule.n_updates == 2 * 3 * 128 // 32  # applied twice, hooked once
    model.save(tmp_path / "m.zip")
    loaded = PPO.load(tmp_path / "m.zip", device="cpu", env=model.get_env())
    loaded.learn(128, callback=KLAdaptiveCallback(target_kl=0.01), reset_num_timesteps=False)
    assert loaded.learning_rate.n_updates == schedule.n_updates + 12


def test_composes_with_a_loss_driven_adam():
    from rl_adaloss import AdamLoss

    kw = {**PPO_KW, "policy_kwargs": dict(net_arch=[16], optimizer_class=AdamLoss)}
    model = PPO("MlpPolicy", "Pendulum-v1", learning_rate=1e-3, **kw)
    schedule = use_kl_adaptive_lr(model)
    model.learn(256)
    opt = model.policy.optimizer
    group = opt.param_groups[0]
    assert group["lr"] == schedule.lr and group[LR0] == 1e-3
    assert opt.effective_lrs()[0] == pytest.approx(schedule.lr / 1e-3 / math.sqrt(group[ACCUMULATOR]))


def test_sb3_contrib_ppos():
    from sb3_contrib import MaskablePPO, RecurrentPPO
    from sb3_contrib.common.envs import InvalidActionEnvDiscrete

    masked_env = InvalidActionEnvDiscrete(dim=20, n_invalid_actions=10)
    for cls, env in ((RecurrentPPO, "Pendulum-v1"), (MaskablePPO, masked_env)):
        kw = {**PPO_KW, "policy_kwargs": dict(net_arch=[16], **({"lstm_hidden_size": 8} if cls is RecurrentPPO else {}))}
        model = cls("MlpLstmPolicy" if cls is RecurrentPPO else "MlpPolicy", env, learning_rate=1e-3, **kw)
        schedule = use_kl_adaptive_lr(model)
        model.learn(256)
        assert schedule.n_updates == 2 * 3 * 128 // 32, cls.__name__
        assert np.isfinite(schedule.lr)


# ------------------------------------------------------------------------------------------------- the grid arm
def test_factory_arm():
    from rl_adaloss.agents import make_agent, resolve_agent

    assert resolve_agent("ppo", "Pendulum-v1", "adam+kl").kl_adaptive_lr == dict(
        target_kl=0.02, kl_margin=2.0, factor=1.5, min_lr=1e-5, max_lr=1e-2, mode="epoch"
    )  # the frozen arm rule (docs/issue28.md)
    agent = resolve_agent("ppo", "Pendulum-v1", "adam+kl", 1e-2, hyperparams={"kl_adaptive_lr": {"mode": "minibatch"}})
    assert agent.kl_adaptive_lr == dict(target_kl=0.02, kl_margin=2.0, factor=1.5, min_lr=1e-5, max_lr=1e-2, mode="minibatch")
    assert agent.optimizer_class == "torch.optim:Adam" and agent.optimizer_kwargs == {"eps": 1e-5}
    assert "kl_adaptive_lr" not in resolve_agent("ppo", "Pendulum-v1", "adam", 1e-2).to_dict()  # old identities kept
    model, _ = make_agent("ppo", "Pendulum-v1", "adamloss+kl", 0.1, device="cpu", hyperparams={"n_envs": 1})
    assert isinstance(model.learning_rate, KLAdaptiveLR) and model.learning_rate.lr == 1e-2
    with pytest.raises(ValueError, match="only '<optimizer>\\+kl' arms"):
        resolve_agent("ppo", "Pendulum-v1", "adam", hyperparams={"kl_adaptive_lr": {"target_kl": 0.02}})
    with pytest.raises(ValueError, match="'adam\\+kl' for sac"):
        resolve_agent("sac", "Pendulum-v1", "adam+kl")
    with pytest.raises(ValueError, match="kl_adaptive_lr key 'd'"):
        resolve_agent("ppo", "Pendulum-v1", "adam+kl", hyperparams={"kl_adaptive_lr": {"d": 0.02}})


def test_any_optimizer_path_takes_the_kl_rule(tmp_path):
    # issue 28: the KL-adaptive lr is usable with any optimizer, so an import-path arm has its "+kl" arm too
    from rl_adaloss.agents import make_agent, resolve_agent
    from rl_adaloss.sb3 import optimizer_spec

    spec = optimizer_spec("torch.optim:SGD+kl")
    assert spec.target == "torch.optim:SGD" and spec.kl_adaptive and not optimizer_spec("torch.optim:SGD").kl_adaptive
    agent = resolve_agent("ppo", "Pendulum-v1", "torch.optim:SGD+kl", 0.5)
    assert agent.optimizer_class == "torch.optim:SGD" and agent.kl_adaptive_lr["mode"] == "epoch"
    model, _ = make_agent("ppo", "Pendulum-v1", "torch.optim:SGD+kl", 0.5, device="cpu", hyperparams={"n_envs": 1})
    assert isinstance(model.learning_rate, KLAdaptiveLR) and model.learning_rate.lr == 1e-2  # clamped start
    assert type(model.policy.optimizer).__name__ == "SGD"
    with pytest.raises(ValueError, match=r"'torch\.optim:SGD\+kl' for sac"):
        resolve_agent("sac", "Pendulum-v1", "torch.optim:SGD+kl")
    with pytest.raises(ValueError, match="Invalid optimizer"):
        optimizer_spec("torch.optim:SGD+kl+kl")
