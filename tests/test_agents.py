"""Agent presets: agents/<algo>.yml, then RL Zoo's tuned presets (rl_zoo3), then SB3 defaults; real training runs."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

from rl_adaloss.agents import find_preset, make_agent, parse_python_kwargs, preset_summary, resolve_agent
from rl_adaloss.agents import presets as presets_module
from rl_adaloss.agents.factory import LinearSchedule

ROOT = Path(__file__).resolve().parents[1]
ZOO_DIR = presets_module.zoo_hyperparams_dir()
needs_zoo = pytest.mark.skipif(ZOO_DIR is None, reason="RL Zoo presets need the zoo extra (rl_zoo3)")


def zoo_yaml(algo: str, env_id: str) -> dict:
    assert ZOO_DIR is not None
    return yaml.safe_load((ZOO_DIR[0] / f"{algo}.yml").read_text())[env_id]


@needs_zoo
@pytest.mark.parametrize(
    ("algo", "optimizer", "overrides", "steps"),
    [
        ("ppo", "adamloss", {}, 512),  # 8 envs x 32 steps; lin_ lr and clip_range (0 at the end: 2 rollouts)
        ("a2c", "adam", {}, 200),
        ("dqn", "adamloss", {"learning_starts": 64, "train_freq": 64, "gradient_steps": 8}, 256),
        ("qrdqn", "adam", {"learning_starts": 64, "train_freq": 64, "gradient_steps": 8}, 256),
    ],
)
def test_rl_zoo_presets_train_on_cartpole(algo, optimizer, overrides, steps):
    model, config = make_agent(algo, "CartPole-v1", optimizer, seed=0, device="cpu", hyperparams=overrides)
    preset = zoo_yaml(algo, "CartPole-v1")
    assert config.preset_source == f"rl_zoo3 {ZOO_DIR[1]} hyperparams/{algo}.yml"
    assert config.n_timesteps == int(preset["n_timesteps"]) and config.policy == preset["policy"]
    for key, value in preset.items():  # every preset value reaches the algorithm unless overridden
        if key in ("n_timesteps", "policy", "n_envs", "policy_kwargs", *overrides):
            continue
        assert config.hyperparams[key] == value, key
    if "policy_kwargs" in preset:
        assert config.hyperparams["policy_kwargs"] == parse_python_kwargs(preset["policy_kwargs"])
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(steps)
    assert model.num_timesteps >= steps
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.parameters())), "no gradient step was taken"
    if algo == "ppo":  # RL Zoo's lin_0.001 / lin_0.2 became picklable linear schedules
        assert config.hyperparams["learning_rate"] == "lin_0.001" and config.hyperparams["clip_range"] == "lin_0.2"
        assert model.clip_range(0.5) == pytest.approx(0.1) and model.lr_schedule(0.5) == pytest.approx(5e-4)
        assert LinearSchedule(0.2)(0.25) == pytest.approx(0.05)
    if algo == "qrdqn":
        assert model.policy.n_quantiles == 10  # from the preset's "dict(net_arch=[256, 256], n_quantiles=10)"
    if optimizer == "adamloss":
        assert type(model.policy.optimizer).__name__ == "AdamLoss"


@needs_zoo
@pytest.mark.filterwarnings("ignore:.*Hopper-v4 is out of date")
@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_rl_zoo_presets_train_on_mujoco(algo):
    pytest.importorskip("mujoco")
    overrides = {"learning_starts": 200, "buffer_size": 10_000, "batch_size": 64}  # 100 gradient steps
    model, config = make_agent(algo, "Hopper-v4", "adamloss", seed=0, device="cpu", hyperparams=overrides)
    assert config.preset_source.startswith("rl_zoo3 ") and config.n_timesteps == 1_000_000
    if algo == "td3":  # noise and network from the preset
        assert config.noise == ("normal", 0.1) and config.hyperparams["policy_kwargs"] == {"net_arch": [400, 300]}
    critic = model.policy.critic.optimizer
    model.learn(300)
    assert model.num_timesteps == 300 and type(critic).__name__ == "AdamLoss"
    assert critic.accumulators()[0] > 1 / config.lr**2  # the critic's losses reached AdamLoss


def test_env_without_any_preset_falls_back_to_sb3_defaults(tmp_path):
    config = resolve_agent("ddpg", "rl_adaloss/PendulumSwingUp-v0", "adam")
    assert config.preset_source == "SB3 defaults" and config.n_timesteps is None
    assert config.hyperparams == {"learning_rate": 1e-3, "policy_kwargs": {}} and config.policy == "MlpPolicy"
    assert "no preset in agents/ddpg.yml or RL Zoo" in preset_summary(config)
    model, _ = make_agent("ddpg", "rl_adaloss/PendulumSwingUp-v0", "adamloss", seed=0, hyperparams={"learning_starts": 50})
    model.learn(100)
    assert model.num_timesteps == 100


def test_without_rl_zoo_the_sb3_defaults_are_used_and_said(monkeypatch):
    monkeypatch.setattr(presets_module, "zoo_hyperparams_dir", lambda: None)
    config = resolve_agent("ppo", "CartPole-v1")
    assert config.preset_source == "SB3 defaults" and config.lr == 3e-4
    assert "RL Zoo (not installed: pip install 'rl-adaloss[zoo]')" in preset_summary(config)
    assert find_preset("ppo", "Pendulum-v1").source == "agents/ppo.yml"  # ours first, zoo or not


@needs_zoo
def test_our_presets_come_first():
    assert find_preset("ppo", "Pendulum-v1").source == "agents/ppo.yml"
    assert find_preset("ppo", "CartPole-v1").source.startswith("rl_zoo3 ")


def test_policy_kwargs_parser_resolves_allowed_names_only():
    text = "dict(log_std_init=-2, ortho_init=False, activation_fn=nn.ReLU, net_arch=dict(pi=[256], vf=[256]), )"
    parsed = parse_python_kwargs(text)
    assert parsed == {"log_std_init": -2, "ortho_init": False, "activation_fn": torch.nn.ReLU,
                      "net_arch": {"pi": [256], "vf": [256]}}  # fmt: skip
    assert (
        parse_python_kwargs("dict(activation_fn=th.nn.Tanh, features_extractor_class=FlattenExtractor)")["activation_fn"]
        is torch.nn.Tanh
    )
    normalize = parse_python_kwargs("{'norm_obs': True, 'norm_reward': False}", "normalize")
    assert normalize == {"norm_obs": True, "norm_reward": False}
    rejected = {
        "dict(activation_fn=os.system)": "name 'os.system' is not allowed",
        "dict(a=__import__('os').system('true'))": "__import__",
        "dict(a=nn.ReLU.__class__)": "name 'nn.ReLU.__class__' is not allowed",
        "dict(optimizer_class=RMSpropTFLike)": "name 'RMSpropTFLike' is not allowed",
        "dict(a=(lambda: 1)())": "lambda",
        "dict(**base)": "'\\*\\*' unpacking",
        "dict(a=[1, 2": "not valid Python",
        "open('/etc/passwd')": "open",
    }
    for text, message in rejected.items():
        with pytest.raises(ValueError, match=message):
            parse_python_kwargs(text)


@needs_zoo
def test_keys_the_factory_cannot_honour_are_named():
    for key, value in (("frame_stack", 4), ("callback", "rl_zoo3.callbacks.ParallelTrainCallback"),
                       ("replay_buffer_class", "HerReplayBuffer")):  # fmt: skip
        with pytest.raises(ValueError, match=f"Invalid preset key '{key}' for dqn on CartPole-v1"):
            resolve_agent("dqn", "CartPole-v1", hyperparams={key: value})
    with pytest.raises(ValueError, match=r"Invalid preset key 'frame_stack' for ppo on CarRacing-v3 .from rl_"):
        resolve_agent("ppo", "CarRacing-v3")  # RL Zoo's own preset asks for frame stacking (and a wrapper, supported)
    with pytest.raises(ValueError, match="policy_kwargs key 'optimizer_class'"):
        resolve_agent("ppo", "CartPole-v1", hyperparams={"policy_kwargs": {"optimizer_class": "x"}})
    config = resolve_agent("ppo", "CarRacing-v3", hyperparams={"env_wrapper": None, "frame_stack": None})  # explicit drop
    assert "frame_stack" not in config.hyperparams and config.policy == "CnnPolicy"


def test_ent_coef_optimizer_key_gives_sacs_entropy_coefficient_the_runs_optimizer(tmp_path):
    # Issue 28: loss-driven arms drive the coefficient by default; the others keep SB3's Adam (and their old identity)
    for name in ("adam", "dog", "momo-adam", "adamsqrt"):
        default = resolve_agent("sac", "Pendulum-v1", name, 1.0)
        assert default.ent_coef_optimizer == "sb3" and "ent_coef_optimizer" not in default.to_dict(), name
    for name in ("adamloss", "adamloss-rel", "adamloss-fade"):
        assert resolve_agent("sac", "Pendulum-v1", name, 1.0).to_dict()["ent_coef_optimizer"] == "policy", name
    assert resolve_agent("ppo", "Pendulum-v1", "adamloss", 1.0).ent_coef_optimizer == "sb3"  # PPO learns no coefficient
    assert resolve_agent("sac", "Pendulum-v1", "adamloss", 1.0, hyperparams={"ent_coef": 0.1}).ent_coef_optimizer == "sb3"
    model, config = make_agent("sac", "Pendulum-v1", "adamloss-rel", 1.0)
    assert config.to_dict()["ent_coef_optimizer"] == "policy"
    assert type(model.ent_coef_optimizer).__name__ == "AdamLossRel" and model.ent_coef_optimizer.defaults["alpha"] == 1000
    plain, config = make_agent("sac", "Pendulum-v1", "adamloss-rel", 1.0, hyperparams={"ent_coef_optimizer": "sb3"})
    assert type(plain.ent_coef_optimizer) is torch.optim.Adam
    assert "ent_coef_optimizer" not in config.to_dict()  # the issue-13 grids pin sb3: their runs keep their hashes
    with pytest.raises(ValueError, match=r"Invalid ent_coef_optimizer: 'adam' \(valid: sb3, policy\)"):
        resolve_agent("sac", "Pendulum-v1", hyperparams={"ent_coef_optimizer": "adam"})
    with pytest.raises(ValueError, match=r"Invalid ent_coef_optimizer: 'policy' for ppo with ent_coef=0.0 \(only SAC"):
        resolve_agent("ppo", "Pendulum-v1", hyperparams={"ent_coef_optimizer": "policy"})
    with pytest.raises(ValueError, match=r"Invalid ent_coef_optimizer: 'policy' for sac with ent_coef=0.1"):
        resolve_agent("sac", "Pendulum-v1", hyperparams={"ent_coef_optimizer": "policy", "ent_coef": 0.1})
    tqc = resolve_agent("tqc", "Pendulum-v1", hyperparams={"ent_coef_optimizer": "policy", "ent_coef": "auto_0.5"})
    assert tqc.ent_coef_optimizer == "policy"


def test_hyperparameter_keys_and_types_are_checked():
    with pytest.raises(ValueError, match=r"Invalid hyperparams key 'n_stpes' for ppo .did you mean 'n_steps'"):
        resolve_agent("ppo", "Pendulum-v1", hyperparams={"n_stpes": 64})
    with pytest.raises(ValueError, match=r"batch_size='oops' for ppo: expected an integer .SB3's default: 64"):
        resolve_agent("ppo", "Pendulum-v1", hyperparams={"batch_size": "oops"})
    with pytest.raises(ValueError, match="Invalid hyperparams key 'seed' for ppo: it is set by the run"):
        resolve_agent("ppo", "Pendulum-v1", hyperparams={"seed": 3})
    with pytest.raises(ValueError, match=r"Invalid env: 'Pendulum-v9' .*did you mean 'Pendulum-v1'"):
        resolve_agent("ppo", "Pendulum-v9")
    with pytest.raises(ValueError, match=r"Invalid algo: 'pp0' .valid: a2c, crossq"):
        resolve_agent("pp0", "Pendulum-v1")
    with pytest.raises(ValueError, match="Invalid lr: inf"):
        resolve_agent("ppo", "Pendulum-v1", lr=float("inf"))
    config = resolve_agent("ppo", "Pendulum-v1", hyperparams={"learning_rate": "1e-3", "buffer_size": None})
    assert config.lr == 1e-3  # YAML reads 1e-3 (no dot) as a string; SB3's default is a float, so it is converted


def test_agents_is_installed_under_the_package_namespace(tmp_path):
    """Outside the repository only ``rl_adaloss.agents`` exists; no top-level ``agents`` module is installed."""
    code = "import importlib.util, rl_adaloss.agents as a; print(importlib.util.find_spec('agents') is None, a.ALGOS['ppo'])"
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != ROOT]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}  # the installed package, not this checkout
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    out = out.stdout
    assert out.split() == ["True", "stable_baselines3:PPO"]


def test_pyproject_lists_every_package():
    """pyproject's package list is explicit (agents/ is mapped): a package missing there is missing from every wheel."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "rl_adaloss").rglob("__init__.py")}
    assert found | {"rl_adaloss.agents"} <= listed


@pytest.mark.parametrize("module", ["envs", "factory", "presets"])
def test_doctests_of_rl_adaloss_agents(module):
    """agents/'s doctests, run on rl_adaloss.agents (pytest's --doctest-modules would import agents/ as ``agents``)."""
    import doctest
    import importlib

    failed, attempted = doctest.testmod(importlib.import_module(f"rl_adaloss.agents.{module}"), optionflags=doctest.ELLIPSIS)
    assert failed == 0 and attempted > 0


def test_a_checkout_maps_rl_adaloss_agents_to_the_agents_folder_without_a_symlink():
    """In a plain checkout (``PYTHONPATH=.``) ``rl_adaloss.agents`` is ``agents/`` itself, once, and no ``agents``."""
    assert not (ROOT / "rl_adaloss" / "agents").exists()  # no symlink: checkouts without symlinks work too
    code = (
        "import sys, rl_adaloss.agents.factory as f, rl_adaloss.agents as a; "
        "print(a.__file__, f.__file__, 'agents' in sys.modules, 'agents.factory' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(ROOT / "agents" / "__init__.py"), str(ROOT / "agents" / "factory.py"), "False", "False"]


def test_env_wrapper_is_a_preset_key_applied_above_monitor_in_training_and_evaluation_envs():
    from stable_baselines3.common.monitor import Monitor

    from rl_adaloss.agents import make_vec_env_for
    from rl_adaloss.envs import ScaleReward

    wrapper = {"env_wrapper": [{"rl_adaloss.envs.ScaleReward": {"scale": 0.01}}], "n_envs": 1}
    config = resolve_agent("ppo", "Pendulum-v1", "adam", 1e-3, hyperparams=wrapper)
    assert config.env_wrapper == (("rl_adaloss.envs.ScaleReward", {"scale": 0.01}),)
    assert config.to_dict()["env_wrapper"] == [["rl_adaloss.envs.ScaleReward", {"scale": 0.01}]]
    assert "env_wrapper" not in resolve_agent("ppo", "Pendulum-v1", "adam", 1e-3).to_dict()  # old identities unchanged
    assert resolve_agent("ppo", "Pendulum-v1", hyperparams={"env_wrapper": "rl_adaloss.envs.ScaleReward"}).env_wrapper == (
        ("rl_adaloss.envs.ScaleReward", {}),
    )
    model, _ = make_agent("ppo", "Pendulum-v1", "adam", 1e-3, hyperparams={**wrapper, "n_steps": 64})
    for venv in (model.get_env(), make_vec_env_for("Pendulum-v1", 1, 0, training=False, env_wrapper=config.env_wrapper)):
        env = venv.envs[0]
        assert isinstance(env, ScaleReward) and isinstance(env.env, Monitor)  # Monitor records the unscaled returns
    for bad in ("rl_adaloss.envs.NoSuchWrapper", "no_such_module.Wrapper", "rl_adaloss.envs.ensure_registered", 3):
        with pytest.raises(ValueError, match="Invalid env_wrapper"):
            resolve_agent("ppo", "Pendulum-v1", hyperparams={"env_wrapper": bad})


@pytest.mark.slow
def test_wheel_holds_rl_adaloss_agents_and_no_top_level_agents(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "-w", str(tmp_path), "--no-deps", "-q"], check=True)
    (wheel,) = tmp_path.glob("rl_adaloss-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"rl_adaloss/agents/__init__.py", "rl_adaloss/agents/factory.py", "rl_adaloss/agents/ppo.yml"} <= set(names)
    assert not [n for n in names if n.startswith("agents/")]
    top_level = next(n for n in names if n.endswith("top_level.txt"))
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["rl_adaloss"]
