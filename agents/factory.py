"""Build a seeded Stable-Baselines3 agent from (algo, env id, optimizer, eta_0/b0, seed, device, TensorBoard folder).

Presets live beside this file, one RL Zoo-style YAML per algorithm (``ppo.yml``: env id -> hyperparameters). The
factory understands RL Zoo's special keys: ``n_envs``, ``n_timesteps``, ``policy``, ``normalize``, ``noise_type`` /
``noise_std``, ``lin_<value>`` learning-rate schedules, and ``policy_kwargs`` as a mapping or a ``"dict(...)"``
string. The optimizer comes from :func:`rl_adaloss.sb3.optimizer_policy_kwargs`, so arms of a comparison differ only
in the optimizer.
"""

from __future__ import annotations

import ast
import copy
import importlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from rl_adaloss.envs import ensure_registered
from rl_adaloss.sb3 import LR_FREE, OPTIMIZERS, optimizer_policy_kwargs

__all__ = ["ALGOS", "AgentConfig", "available_presets", "load_preset", "make_agent", "make_vec_env_for"]

PRESET_DIR = Path(__file__).resolve().parent

ALGOS: dict[str, str] = {
    "ppo": "stable_baselines3:PPO",
    "a2c": "stable_baselines3:A2C",
    "sac": "stable_baselines3:SAC",
    "td3": "stable_baselines3:TD3",
    "ddpg": "stable_baselines3:DDPG",
    "dqn": "stable_baselines3:DQN",
    "tqc": "sb3_contrib:TQC",
    "crossq": "sb3_contrib:CrossQ",
    "qrdqn": "sb3_contrib:QRDQN",
    "trpo": "sb3_contrib:TRPO",
    "ppo_lstm": "sb3_contrib:RecurrentPPO",
    "ppo_mask": "sb3_contrib:MaskablePPO",
}
_FACTORY_KEYS = ("n_envs", "n_timesteps", "policy", "normalize", "noise_type", "noise_std", "env_wrapper", "env_kwargs")


@dataclass
class AgentConfig:
    """Everything that determines an agent (enough to rebuild it)."""

    algo: str
    env_id: str
    optimizer: str
    lr: float
    """eta_0: SB3's ``learning_rate`` (for learning-rate-free optimizers, their multiplier, 1.0 by default)."""
    b0: float | None
    alpha: float | None
    c: float | None
    seed: int
    device: str
    n_envs: int
    n_timesteps: int
    """the preset's default budget (the train script may override it)."""
    normalize: bool | dict[str, Any]
    hyperparams: dict[str, Any] = field(default_factory=dict)
    """the algorithm's keyword arguments, as resolved from preset and overrides (schedules as strings)."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return asdict(self)


def _algo_class(algo: str) -> type[BaseAlgorithm]:
    try:
        module, name = ALGOS[algo].split(":")
    except KeyError:
        raise ValueError(f"Invalid algo: {algo!r} (known: {', '.join(sorted(ALGOS))})") from None
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def available_presets(algo: str) -> list[str]:
    """Return the env ids that have a preset for ``algo``."""
    path = PRESET_DIR / f"{algo}.yml"
    return sorted(yaml.safe_load(path.read_text())) if path.exists() else []


def load_preset(algo: str, env_id: str) -> dict[str, Any]:
    """Return a fresh copy of the preset for ``(algo, env_id)``.

    Raises:
        ValueError: unknown algo, or no preset for this env (the message lists the ones that exist).
    """
    _algo_class(algo)
    path = PRESET_DIR / f"{algo}.yml"
    presets = yaml.safe_load(path.read_text()) if path.exists() else {}
    if env_id not in presets:
        raise ValueError(f"Invalid env for algo {algo!r}: {env_id!r} has no preset (have: {', '.join(sorted(presets))})")
    return copy.deepcopy(presets[env_id])


def _parse_policy_kwargs(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return copy.deepcopy(value)
    if isinstance(value, str):  # RL Zoo writes "dict(a=1, b=[2, 3])": accept keyword literals only
        tree = ast.parse(value.strip(), mode="eval").body
        if isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == "dict" and not tree.args:
            return {kw.arg: ast.literal_eval(kw.value) for kw in tree.keywords if kw.arg}
    raise ValueError(f"Invalid policy_kwargs: {value!r} (expected a mapping or a 'dict(key=literal, ...)' string)")


def _schedule(value: Any, lr: float | None) -> tuple[Any, float, str]:
    """Return ``(sb3_learning_rate, eta_0, description)`` from a preset value and an optional eta_0 override."""
    kind, start = "constant", value
    if isinstance(value, str):
        if not value.startswith("lin_"):
            raise ValueError(f"Invalid learning_rate: {value!r} (expected a number or 'lin_<number>')")
        kind, start = "lin", float(value[4:])
    eta0 = float(lr if lr is not None else start)
    if kind == "lin":
        return (lambda progress_remaining: progress_remaining * eta0), eta0, f"lin_{eta0}"
    return eta0, eta0, str(eta0)


def make_vec_env_for(
    env_id: str,
    n_envs: int,
    seed: int,
    *,
    normalize: bool | dict[str, Any] = False,
    gamma: float = 0.99,
    env_kwargs: dict[str, Any] | None = None,
    training: bool = True,
) -> VecEnv:
    """Make a seeded ``DummyVecEnv`` (plus ``VecNormalize`` when the preset asks for it)."""
    ensure_registered(env_id)
    venv: VecEnv = make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs)
    if normalize:
        norm_kwargs = dict(normalize) if isinstance(normalize, dict) else {}
        norm_kwargs.setdefault("gamma", gamma)
        if not training:
            norm_kwargs.update(training=False, norm_reward=False)
        venv = VecNormalize(venv, **norm_kwargs)
    return venv


def _action_noise(kind: str | None, std: float, venv: VecEnv) -> Any:
    if kind is None:
        return None
    n = int(np.prod(venv.action_space.shape or ()))
    if kind == "normal":
        return NormalActionNoise(np.zeros(n), std * np.ones(n))
    if kind == "ornstein-uhlenbeck":
        return OrnsteinUhlenbeckActionNoise(np.zeros(n), std * np.ones(n))
    raise ValueError(f"Invalid noise_type: {kind!r} (expected 'normal' or 'ornstein-uhlenbeck')")


def _merged_preset(algo: str, env_id: str, overrides: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``(algorithm kwargs, factory keys)``: the preset with ``overrides`` applied (``policy_kwargs`` merged)."""
    preset = load_preset(algo, env_id)
    for key, value in (overrides or {}).items():
        if key == "policy_kwargs":
            preset["policy_kwargs"] = {**_parse_policy_kwargs(preset.get("policy_kwargs")), **_parse_policy_kwargs(value)}
        else:
            preset[key] = value
    return preset, {k: preset.pop(k) for k in _FACTORY_KEYS if k in preset}


def make_agent(
    algo: str,
    env_id: str,
    optimizer: str = "adam",
    lr: float | None = None,
    *,
    b0: float | None = None,
    alpha: float | None = None,
    c: float | None = None,
    seed: int = 0,
    device: str = "auto",
    tensorboard_log: str | None = None,
    n_envs: int | None = None,
    hyperparams: dict[str, Any] | None = None,
    verbose: int = 0,
) -> tuple[BaseAlgorithm, AgentConfig]:
    """Build a seeded SB3 agent from its preset, with ``optimizer`` at step size ``lr`` (eta_0).

    Args:
        algo: key of :data:`ALGOS` (``ppo``, ``sac``, ...).
        env_id: a Gymnasium id that has a preset for ``algo``.
        optimizer: key of :data:`rl_adaloss.sb3.OPTIMIZERS`.
        lr: eta_0; replaces the preset's value (a ``lin_`` schedule keeps its shape). Default: the preset's value,
            or 1.0 for learning-rate-free optimizers.
        b0: AdamLoss/AdamSqrt initial accumulator (default 1/lr^2).
        alpha: AdamLoss alpha.
        c: AdamLoss c.
        seed: seeds Python, NumPy, torch, the envs and the algorithm.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        tensorboard_log: folder for SB3's TensorBoard output (None: no TensorBoard).
        n_envs: number of parallel envs (default: the preset's, else 1).
        hyperparams: overrides of the preset (``policy_kwargs`` are merged).
        verbose: SB3 verbosity.

    Returns:
        ``(model, config)``.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"Invalid optimizer: {optimizer!r} (known: {', '.join(sorted(OPTIMIZERS))})")
    preset, factory = _merged_preset(algo, env_id, hyperparams)
    n_envs = int(n_envs or factory.get("n_envs", 1))
    if optimizer in LR_FREE:
        preset["learning_rate"] = 1.0 if lr is None else lr
        lr = None
    learning_rate, eta0, lr_desc = _schedule(preset.pop("learning_rate", 3e-4), lr)
    base = _parse_policy_kwargs(preset.pop("policy_kwargs", None))
    policy_kwargs = optimizer_policy_kwargs(optimizer, algo, b0=b0, alpha=alpha, c=c, base=base)

    set_random_seed(seed)
    venv = make_vec_env_for(
        env_id,
        n_envs,
        seed,
        normalize=factory.get("normalize", False),
        gamma=float(preset.get("gamma", 0.99)),
        env_kwargs=factory.get("env_kwargs"),
    )
    noise = _action_noise(factory.get("noise_type"), float(factory.get("noise_std", 0.1)), venv)
    if noise is not None:
        preset["action_noise"] = noise
    cls = _algo_class(algo)
    model = cls(
        factory.get("policy", "MlpPolicy"),
        venv,
        learning_rate=learning_rate,
        policy_kwargs=policy_kwargs,
        seed=seed,
        device=device,
        tensorboard_log=tensorboard_log,
        verbose=verbose,
        **preset,
    )
    resolved = {k: v for k, v in preset.items() if k != "action_noise"}
    resolved.update(learning_rate=lr_desc, policy_kwargs=dict(base))
    resolved.update({k: v for k, v in factory.items() if k not in ("n_envs", "n_timesteps", "normalize")})
    config = AgentConfig(
        algo=algo,
        env_id=env_id,
        optimizer=optimizer,
        lr=eta0,
        b0=b0,
        alpha=alpha,
        c=c,
        seed=seed,
        device=str(model.device),
        n_envs=n_envs,
        n_timesteps=int(factory.get("n_timesteps", 0)),
        normalize=factory.get("normalize", False),
        hyperparams=resolved,
    )
    return model, config
