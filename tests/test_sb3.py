"""AdamLoss inside vanilla Stable-Baselines3 / sb3-contrib: every algorithm, the right loss, save/load, logging.

Also the variants' own SB3 behaviour: AdamLossFade (fading per optimizer step), AdamLossRel (its reference).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sb3_contrib import QRDQN, TQC, TRPO, CrossQ, MaskablePPO, RecurrentPPO
from sb3_contrib.common.envs import InvalidActionEnvDiscrete
from stable_baselines3 import A2C, DDPG, DQN, PPO, SAC, TD3

from rl_adaloss import AdamLoss
from rl_adaloss.optim import AdamLossRel
from rl_adaloss.optim._base import ACCUMULATOR, LR0, AccumulatorOptimizer
from rl_adaloss.optim.adamloss_fade import B0_REMAINING
from rl_adaloss.sb3 import (
    OPTIMIZERS,
    EntCoefOptimizer,
    OptimizerLogger,
    find_optimizers,
    optimizer_policy_kwargs,
    set_ent_coef_optimizer,
)

OFF_POLICY = dict(learning_starts=64, batch_size=32, train_freq=1, gradient_steps=1, buffer_size=1000)
ALGOS = {
    "ppo": (PPO, "Pendulum-v1", dict(n_steps=64, batch_size=32, n_epochs=2)),
    "a2c": (A2C, "Pendulum-v1", dict(n_steps=8)),
    "sac": (SAC, "Pendulum-v1", OFF_POLICY),
    "td3": (TD3, "Pendulum-v1", dict(OFF_POLICY, policy_delay=2)),
    "ddpg": (DDPG, "Pendulum-v1", OFF_POLICY),
    "dqn": (DQN, "CartPole-v1", dict(OFF_POLICY, target_update_interval=50)),
    "tqc": (TQC, "Pendulum-v1", dict(OFF_POLICY, top_quantiles_to_drop_per_net=1)),
    "crossq": (CrossQ, "Pendulum-v1", dict(OFF_POLICY, policy_delay=2)),
    "qrdqn": (QRDQN, "CartPole-v1", dict(OFF_POLICY, target_update_interval=50)),
    "ppo_lstm": (RecurrentPPO, "Pendulum-v1", dict(n_steps=64, batch_size=32, n_epochs=2)),
    "ppo_mask": (MaskablePPO, None, dict(n_steps=64, batch_size=32, n_epochs=2)),
    "trpo": (TRPO, "Pendulum-v1", dict(n_steps=64, batch_size=32, n_critic_updates=3)),
}
LR, ALPHA, C = 3e-3, 0.7, 0.1


def _env(name):
    return InvalidActionEnvDiscrete(dim=20, n_invalid_actions=10) if name is None else name


def _model(algo, optimizer="adamloss", lr=LR, **opt_kw):
    cls, env, kwargs = ALGOS[algo]
    policy_kwargs = optimizer_policy_kwargs(optimizer, algo, base=dict(net_arch=[16]), **opt_kw)
    policy = "MlpLstmPolicy" if algo == "ppo_lstm" else "MlpPolicy"
    return cls(policy, _env(env), learning_rate=lr, policy_kwargs=policy_kwargs, seed=0, device="cpu", **kwargs)


class LossSpy:
    """Independent bookkeeping of which losses each optimizer should have consumed.

    Wraps ``torch.autograd.backward`` (around the package's own wrapper) and records, for each scalar backward, its
    value and which optimizers' parameters it changed the gradient of (by comparing gradients before and after, not
    with hooks). Each optimizer's ``zero_grad`` is wrapped on the instance to forget the losses whose gradients it
    discards. A step pre-hook then adds ``alpha * |sum f - c|`` over the losses whose gradients are in ``.grad``.
    """

    def __init__(self, monkeypatch, optimizers):
        self.optimizers = optimizers
        self.expected = {name: 1.0 / LR**2 for name in optimizers}
        self.pending: dict[str, list[float]] = {name: [] for name in optimizers}
        self.steps = {name: 0 for name in optimizers}
        self.step_losses: dict[str, list[float]] = {name: [] for name in optimizers}  # the loss each step should get
        self.backwards = 0
        inner = torch.autograd.backward
        monkeypatch.setattr(torch.autograd, "backward", self._wrap(inner))
        for name, opt in optimizers.items():
            opt.register_step_pre_hook(self._pre_step(name))
            monkeypatch.setattr(opt, "zero_grad", self._zero_grad(name, opt.zero_grad))

    def _grads(self):
        return {
            name: [None if p.grad is None else p.grad.clone() for g in opt.param_groups for p in g["params"]]
            for name, opt in self.optimizers.items()
        }

    def _wrap(self, inner):
        def spy_backward(tensors, *args, **kwargs):
            before = self._grads()
            out = inner(tensors, *args, **kwargs)
            after = self._grads()
            t = tensors[0] if isinstance(tensors, (list, tuple)) else tensors
            if isinstance(t, torch.Tensor) and t.numel() == 1:
                self.backwards += 1
                for name in self.optimizers:
                    changed = any(
                        (b is None) != (a is None) or (a is not None and not torch.equal(a, b))
                        for b, a in zip(before[name], after[name])
                    )
                    if changed:
                        self.pending[name].append(float(t.detach()))
            return out

        return spy_backward

    def _zero_grad(self, name, original):
        def zero_grad(*args, **kwargs):
            self.pending[name].clear()
            return original(*args, **kwargs)

        return zero_grad

    def _pre_step(self, name):
        def hook(opt, args, kwargs):
            losses = self.pending[name]
            assert losses, f"{name} stepped with no preceding backward"
            self.expected[name] += ALPHA * abs(math.fsum(losses) - C)
            self.step_losses[name].append(math.fsum(losses))
            self.pending[name] = []
            self.steps[name] += 1

        return hook


@pytest.mark.parametrize("algo", list(ALGOS))
def test_every_algorithm_feeds_each_adamloss_its_own_losses(algo, monkeypatch):
    model = _model(algo, alpha=ALPHA, c=C)
    loss_driven = {n: o for n, o in find_optimizers(model).items() if isinstance(o, AdamLoss)}
    expected_roles = {"sac": {"actor", "critic"}, "td3": {"actor", "critic"}, "ddpg": {"actor", "critic"}}
    expected_roles.update(tqc={"actor", "critic"}, crossq={"actor", "critic"})
    assert set(loss_driven) == expected_roles.get(algo, {"policy"})
    spy = LossSpy(monkeypatch, loss_driven)
    model.learn(256)
    for name, opt in loss_driven.items():
        assert spy.steps[name] > 0, f"{algo}: {name} never stepped"
        assert opt.accumulators() == [pytest.approx(spy.expected[name], rel=1e-12)], name
        assert all(math.isfinite(p.detach().abs().sum().item()) for g in opt.param_groups for p in g["params"])
    if "ent_coef" in find_optimizers(model):  # SB3 builds the entropy-coefficient optimizer itself: plain Adam
        assert type(find_optimizers(model)["ent_coef"]) is torch.optim.Adam


MOMO_DEFAULT = ("ppo", "sac", "dqn", "trpo")  # the rest run with -m slow (CI runs them)


@pytest.mark.parametrize("algo", [a if a in MOMO_DEFAULT else pytest.param(a, marks=pytest.mark.slow) for a in ALGOS])
def test_every_algorithm_feeds_momo_adam_its_own_losses(algo, monkeypatch):
    """The feed works for a foreign loss-driven optimizer too: MomoAdam's own step() receives exactly the spy's losses."""
    momo = pytest.importorskip("momo")
    received: dict[int, list[float]] = {}
    original = momo.MomoAdam.step

    def recording_step(self, closure=None, loss=None):
        received.setdefault(id(self), []).append(float(loss))
        return original(self, closure, loss)

    monkeypatch.setattr(momo.MomoAdam, "step", recording_step)
    model = _model(algo, "momo-adam")
    fed = {n: o for n, o in find_optimizers(model).items() if isinstance(o, momo.MomoAdam)}
    assert set(fed) == ({"actor", "critic"} if algo in ("sac", "td3", "ddpg", "tqc", "crossq") else {"policy"})
    spy = LossSpy(monkeypatch, fed)
    model.learn(256)
    for name, opt in fed.items():
        assert spy.steps[name] > 0
        assert received[id(opt)] == pytest.approx(spy.step_losses[name], rel=1e-6), name


def test_actor_loss_does_not_leak_into_critic_accumulator(monkeypatch):
    """TD3's actor loss back-propagates through the critic; the critic must still only count critic losses."""
    model = _model("td3", alpha=ALPHA, c=C)
    critic = model.critic.optimizer
    critic_losses: list[float] = []
    original = torch.nn.functional.mse_loss

    def recording_mse(*args, **kwargs):
        out = original(*args, **kwargs)
        critic_losses.append(out)
        return out

    monkeypatch.setattr(torch.nn.functional, "mse_loss", recording_mse)
    model.learn(200)
    # TD3's critic loss is a sum of one mse_loss per critic head (2 heads): rebuild each step's loss from them
    per_step = [float(sum(critic_losses[i : i + 2]).detach()) for i in range(0, len(critic_losses), 2)]
    expected = 1 / LR**2 + sum(ALPHA * abs(f - C) for f in per_step)
    assert critic.accumulators() == [pytest.approx(expected, rel=1e-9)]


def test_huge_b0_trains_like_adam():
    """With b0 = 1/lr^2 far above the sum of the losses, AdamLoss and Adam (same lr, same eps) stay together."""
    lr = 1e-5  # b0 = 1e10; PPO's losses sum to ~1e3 here, so b moves by 1e-7 relative
    initial = {k: v.clone() for k, v in _model("ppo", "adam", lr=lr).policy.state_dict().items()}
    models = []
    for name in ("adam", "adamloss"):  # build and train one at a time: SB3 seeds the global RNG when building
        models.append(_model("ppo", name, lr=lr).learn(256))
    adam, adamloss = (dict(m.policy.named_parameters()) for m in models)
    assert type(models[1].policy.optimizer) is AdamLoss and type(models[0].policy.optimizer) is torch.optim.Adam
    for name, p in adam.items():
        assert not torch.equal(p, initial[name]), f"{name} did not train"
        torch.testing.assert_close(adamloss[name], p, rtol=1e-4, atol=1e-7)


def test_policy_kwargs_are_fresh_and_fair():
    a = optimizer_policy_kwargs("adam", "ppo")
    b = optimizer_policy_kwargs("adamloss", "ppo")
    assert a["optimizer_kwargs"] == b["optimizer_kwargs"] == {"eps": 1e-5}  # SB3's on-policy Adam default
    assert optimizer_policy_kwargs("adam", "sac")["optimizer_kwargs"] == {}  # off-policy: SB3 uses Adam's default
    base = {"net_arch": [8], "optimizer_kwargs": {"weight_decay": 0.1}}
    kw = optimizer_policy_kwargs("adamloss", "a2c", alpha=0.5, base=base)
    kw["net_arch"].append(99)
    assert base == {"net_arch": [8], "optimizer_kwargs": {"weight_decay": 0.1}}
    assert kw["optimizer_kwargs"] == {"weight_decay": 0.1, "eps": 1e-5, "alpha": 0.5}
    assert optimizer_policy_kwargs("adam", "ppo") is not optimizer_policy_kwargs("adam", "ppo")
    with pytest.raises(ValueError, match="Invalid optimizer: 'adamw'"):
        optimizer_policy_kwargs("adamw", "ppo")
    with pytest.raises(ValueError, match=r"Invalid alpha=0\.5 for optimizer 'adam'"):
        optimizer_policy_kwargs("adam", "ppo", alpha=0.5)


def test_sb3_mutating_policy_kwargs_does_not_leak_between_arms():
    kwargs = optimizer_policy_kwargs("adam", "ppo", base=dict(net_arch=[8]))
    PPO("MlpPolicy", "Pendulum-v1", n_steps=32, batch_size=32, policy_kwargs=kwargs, device="cpu")
    again = optimizer_policy_kwargs("adam", "ppo", base=dict(net_arch=[8]))
    assert again["optimizer_kwargs"] == {"eps": 1e-5}


@pytest.mark.parametrize("algo,optimizer", [("ppo", "adamloss"), ("sac", "adamloss"), ("sac", "adamloss-fade")])
def test_save_load_restores_accumulators_and_continues(algo, optimizer, tmp_path):
    model = _model(algo, optimizer)
    model.learn(256)
    before = {n: o.accumulators() for n, o in find_optimizers(model).items() if isinstance(o, AccumulatorOptimizer)}
    lrs = {n: o.effective_lrs() for n, o in find_optimizers(model).items() if isinstance(o, AccumulatorOptimizer)}
    path = tmp_path / "model.zip"
    model.save(path)
    loaded = type(model).load(path, env=model.get_env(), device="cpu")  # SB3 loads with weights_only=True
    opts = {n: o for n, o in find_optimizers(loaded).items() if isinstance(o, AccumulatorOptimizer)}
    assert {n: o.accumulators() for n, o in opts.items()} == before
    assert {n: o.effective_lrs() for n, o in opts.items()} == lrs
    for opt in opts.values():
        assert isinstance(opt.param_groups[0][ACCUMULATOR], float)  # float64 on the host
    remaining = {n: o.param_groups[0].get(B0_REMAINING) for n, o in opts.items()}
    loaded.learn(128, reset_num_timesteps=False)
    after = {n: o.accumulators() for n, o in opts.items()}
    if optimizer == "adamloss":
        assert all(after[n][0] > before[n][0] for n in opts)
    else:  # the variant also fades b0 from where it was saved
        assert all(0 < o.param_groups[0][B0_REMAINING] < remaining[n] for n, o in opts.items())
        assert all(after[n][0] != before[n][0] for n in opts)


def test_adamloss_fade_variant_in_sac_fades_b0_per_optimizer_step():
    """The documented variant: each of SAC's actor/critic optimizers fades its own b0 by its own step count."""
    model = _model("sac", "adamloss-fade")
    opts = {n: o for n, o in find_optimizers(model).items() if isinstance(o, AccumulatorOptimizer)}
    assert set(opts) == {"actor", "critic"} and all(type(o).__name__ == "AdamLossFade" for o in opts.values())
    steps = {n: 0 for n in opts}
    for name, opt in opts.items():
        opt.register_step_post_hook(lambda *_, name=name: steps.__setitem__(name, steps[name] + 1))
    model.learn(256)
    for name, opt in opts.items():
        group = opt.param_groups[0]
        assert steps[name] > 0
        assert group[B0_REMAINING] == pytest.approx(LR**-2 * 2.0 ** (-steps[name] / group["b0_half_life"]))
        assert opt.accumulators()[0] > group[B0_REMAINING]  # plus the losses


def test_policy_save_and_load(tmp_path):
    model = _model("ppo")
    model.learn(128)
    model.policy.save(tmp_path / "policy.pth")
    policy = type(model.policy).load(tmp_path / "policy.pth", device="cpu")  # rebuilds the optimizer with lr=0.0
    assert isinstance(policy.optimizer, AdamLoss)
    obs = np.zeros((1, 3), dtype=np.float32)
    torch.testing.assert_close(
        torch.as_tensor(policy.predict(obs, deterministic=True)[0]),
        torch.as_tensor(model.policy.predict(obs, deterministic=True)[0]),
    )
    model.policy = policy  # and it can still be trained: lr_0 and b0 come from the first positive lr
    model.learn(128)
    assert policy.optimizer.accumulators()[0] > 1 / LR**2


def test_optimizer_logger_writes_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = SAC(
        "MlpPolicy",
        "Pendulum-v1",
        policy_kwargs=optimizer_policy_kwargs("adamloss", "sac", base=dict(net_arch=[16])),
        tensorboard_log=str(tmp_path),
        seed=0,
        device="cpu",
        **OFF_POLICY,
    )
    model.learn(600, callback=OptimizerLogger(), log_interval=1)
    run_dirs = list(tmp_path.iterdir())
    acc = EventAccumulator(str(run_dirs[0]))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for role in ("actor", "critic"):
        assert {f"optim/{role}/effective_lr", f"optim/{role}/accumulator"} <= tags
    assert "optim/ent_coef/lr" in tags and "rollout/ep_rew_mean" in tags
    lrs = [e.value for e in acc.Scalars("optim/critic/effective_lr")]
    assert lrs == sorted(lrs, reverse=True) and lrs[0] < LR_DEFAULT


LR_DEFAULT = 3e-4


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_cuda_training_has_no_host_sync_in_optimizer_step(algo):
    cls, env, kwargs = ALGOS[algo]
    model = cls(
        "MlpPolicy",
        env,
        policy_kwargs=optimizer_policy_kwargs("adamloss", algo, base=dict(net_arch=[16])),
        device="cuda",
        seed=0,
        **kwargs,
    )
    model.learn(256)  # warm up: lazy optimizer state
    opts = [o for o in find_optimizers(model).values() if isinstance(o, AdamLoss)]

    def guard(opt, args, kwargs):
        torch.cuda.set_sync_debug_mode("warn")  # every host sync inside step() now warns

    def unguard(opt, args, kwargs):
        torch.cuda.set_sync_debug_mode("default")

    for opt in opts:
        opt.register_step_pre_hook(guard)
        opt.register_step_post_hook(unguard)
    import warnings

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.learn(256, reset_num_timesteps=False)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [str(w.message) for w in caught if "synchroniz" in str(w.message).lower()]
    assert not syncs, syncs[:3]
    assert all(o.param_groups[0][ACCUMULATOR].device.type == "cuda" for o in opts)


def test_sb3_schedule_multiplies_the_step():
    """SB3 rewrites group['lr'] every train(): AdamLoss's step is (lr_t / lr_0) / sqrt(b), b is never reset."""
    cls, env, kwargs = ALGOS["a2c"]
    model = cls(
        "MlpPolicy",
        env,
        learning_rate=lambda progress_remaining: LR * (0.5 + 0.5 * progress_remaining),
        policy_kwargs=optimizer_policy_kwargs("adamloss", "a2c", base=dict(net_arch=[16])),
        seed=0,
        device="cpu",
        **kwargs,
    )
    model.learn(400)
    opt = model.policy.optimizer
    group = opt.param_groups[0]
    assert group[LR0] == LR and 0 < group["lr"] < LR
    assert opt.effective_lrs()[0] == pytest.approx((group["lr"] / LR) / math.sqrt(opt.accumulators()[0]))
    assert opt.accumulators()[0] > 1 / LR**2  # accumulated across train() calls, never reset


def test_momo_adam_model_saves_and_loads(tmp_path):
    """The loss-fed MomoAdam class pickles by reference (SB3 stores policy_kwargs with the class) and trains on."""
    pytest.importorskip("momo")
    model = _model("ppo", "momo-adam")
    model.learn(128)
    model.save(tmp_path / "momo.zip")
    loaded = PPO.load(tmp_path / "momo.zip", env=model.get_env(), device="cpu")
    assert type(loaded.policy.optimizer) is type(model.policy.optimizer)
    assert type(loaded.policy.optimizer).__module__ == "rl_adaloss.optim.peers"
    loaded.learn(128, reset_num_timesteps=False)


# ---------------------------------------------------------------- the entropy coefficient's optimizer (SAC/TQC/CrossQ)
@pytest.mark.parametrize("algo", ["sac", "tqc", "crossq"])
def test_ent_coef_optimizer_gets_the_policys_class_and_its_own_losses(algo, monkeypatch):
    model = _model(algo, alpha=ALPHA, c=C)
    assert type(model.ent_coef_optimizer) is torch.optim.Adam  # what SB3 builds
    opt = set_ent_coef_optimizer(model)
    assert type(opt) is AdamLoss and model.ent_coef_optimizer is opt
    assert opt.param_groups[0]["params"] == [model.log_ent_coef]
    assert (opt.defaults["alpha"], opt.defaults["c"], opt.param_groups[0]["lr"]) == (ALPHA, C, LR)
    assert set_ent_coef_optimizer(model) is opt  # same class and kwargs: nothing changes
    roles = {n: o for n, o in find_optimizers(model).items() if isinstance(o, AdamLoss)}
    assert set(roles) == {"actor", "critic", "ent_coef"}
    spy = LossSpy(monkeypatch, roles)
    start = model.log_ent_coef.detach().clone()
    model.learn(256)
    for name, o in roles.items():  # each consumed exactly its own losses, the coefficient's too
        assert spy.steps[name] > 0
        assert o.accumulators() == [pytest.approx(spy.expected[name], rel=1e-12)], name
    assert not torch.equal(model.log_ent_coef.detach(), start)


def test_ent_coef_optimizer_follows_sb3s_lr_schedule():
    cls, env, kwargs = ALGOS["sac"]
    model = cls("MlpPolicy", env, learning_rate=lambda progress: LR * progress, seed=0, device="cpu", **kwargs)
    opt = set_ent_coef_optimizer(model, AdamLoss, alpha=0.5)
    assert (type(opt), opt.defaults["alpha"]) == (AdamLoss, 0.5)
    model.learn(256)
    assert opt.param_groups[0]["lr"] == pytest.approx(model.lr_schedule(model._current_progress_remaining))
    assert opt.param_groups[0]["lr"] < LR  # SB3 rewrote it


def test_ent_coef_optimizer_adopts_adams_state_and_rebuilds_on_new_kwargs():
    model = _model("sac", "adam")
    model.learn(256)
    adam = model.ent_coef_optimizer
    moments = {k: v.clone() for k, v in adam.state[model.log_ent_coef].items() if torch.is_tensor(v)}
    opt = set_ent_coef_optimizer(model, AdamLoss, alpha=0.5)
    for key, value in moments.items():  # Adam's moments and step count carry over
        torch.testing.assert_close(opt.state[model.log_ent_coef][key], value)
    model.learn(64, reset_num_timesteps=False)
    acc = opt.accumulators()[0]
    assert acc > 1 / LR**2
    again = set_ent_coef_optimizer(model, AdamLoss, alpha=0.7)
    assert again is not opt and again.accumulators() == [acc]  # a new optimizer keeps the state, takes the new kwargs
    assert again.param_groups[0]["alpha"] == 0.5  # ... except the hyperparameters the state carries (torch's rule)


def test_ent_coef_optimizer_survives_save_and_load_with_the_callback(tmp_path):
    model = _model("sac", "adamloss-rel")
    model.learn(256, callback=EntCoefOptimizer())
    saved = model.ent_coef_optimizer
    assert type(saved).__name__ == "AdamLossRel"
    model.save(tmp_path / "model.zip")
    loaded = SAC.load(tmp_path / "model.zip", env=model.get_env(), device="cpu")
    assert type(loaded.ent_coef_optimizer) is torch.optim.Adam  # SB3 rebuilt Adam and loaded the saved state into it
    set_ent_coef_optimizer(loaded)
    restored = loaded.ent_coef_optimizer
    assert type(restored).__name__ == "AdamLossRel" and restored.accumulators() == saved.accumulators()
    saved_group, restored_group = saved.state_dict()["param_groups"][0], restored.state_dict()["param_groups"][0]
    assert {k: restored_group[k] for k in saved_group} == saved_group  # (Adam adds its own flags beside them)
    before = restored.accumulators()[0]
    loaded.learn(128, callback=EntCoefOptimizer(), reset_num_timesteps=False)  # idempotent at every learn()
    assert loaded.ent_coef_optimizer is restored and restored.accumulators()[0] != before


def test_ent_coef_optimizer_errors_and_fixed_coefficient():
    with pytest.raises(ValueError, match="Invalid model: PPO has no entropy-coefficient optimizer"):
        set_ent_coef_optimizer(_model("ppo"))
    cls, env, kwargs = ALGOS["sac"]
    fixed = cls("MlpPolicy", env, ent_coef=0.1, seed=0, device="cpu", **kwargs)
    assert set_ent_coef_optimizer(fixed, AdamLoss) is None and fixed.ent_coef_optimizer is None
    fixed.learn(64, callback=EntCoefOptimizer(AdamLoss))  # the callback leaves it alone too
    with pytest.raises(ValueError, match=r"Invalid optimizer_kwargs: lr=0\.1 \(the lr is SB3's"):
        set_ent_coef_optimizer(_model("sac"), AdamLoss, lr=0.1)


def test_ent_coef_optimizer_that_cannot_read_adams_state_starts_fresh_with_a_warning():
    dog = pytest.importorskip("dog")
    model = _model("sac", "adam")
    model.learn(128)
    with pytest.warns(UserWarning, match="DoG cannot take the state of the entropy coefficient's Adam"):
        opt = set_ent_coef_optimizer(model, dog.DoG)
    assert "G" not in opt.param_groups[0]  # DoG keeps its state in the param group
    model.learn(64, reset_num_timesteps=False)
    assert opt.param_groups[0]["G"] > 0 and torch.isfinite(model.log_ent_coef).all()


def test_ent_coef_optimizer_from_another_family_survives_save_and_load(tmp_path):
    pytest.importorskip("dog")
    model = _model("sac", "dog", lr=1.0)
    model.learn(128, callback=EntCoefOptimizer())
    saved = model.ent_coef_optimizer.param_groups[0]
    assert type(model.ent_coef_optimizer).__name__ == "DoG" and saved["G"] > 0
    model.save(tmp_path / "model.zip")
    loaded = SAC.load(tmp_path / "model.zip", env=model.get_env(), device="cpu")
    restored = set_ent_coef_optimizer(loaded).param_groups[0]
    assert restored["G"] == saved["G"] and restored["rbar"] == saved["rbar"]


# AdamLossRel: its reference losses in SB3 (its torch-only tests are in tests/test_adamloss_rel.py)
def test_adamloss_rel_registered_for_sb3_helpers() -> None:
    assert "adamloss-rel" in OPTIMIZERS
    kw = optimizer_policy_kwargs("adamloss-rel", "ppo", alpha=10.0)
    assert kw["optimizer_class"] is AdamLossRel
    assert kw["optimizer_kwargs"] == {"eps": 1e-5, "alpha": 10.0}


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_adamloss_rel_learn_smoke(algo: str) -> None:
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


def test_adamloss_rel_save_load_keeps_the_reference(tmp_path) -> None:  # type: ignore[no-untyped-def]
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
