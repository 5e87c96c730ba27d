"""Seeded vectorised envs for the factory (env wrappers and ``VecNormalize`` when a preset asks) and action noise."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

__all__ = ["EnvWrappers", "action_noise", "make_vec_env_for", "parse_env_wrapper"]

EnvWrappers = tuple[tuple[str, dict[str, Any]], ...]
"""Env wrappers as ``(("module.Class", kwargs), ...)``, applied in order (the first one innermost)."""


def _wrapper_class(name: str) -> type[gym.Wrapper[Any, Any, Any, Any]]:
    module, _, cls = name.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), cls) if module else None
    except ImportError as err:
        raise ValueError(f"Invalid env_wrapper: {name!r} (cannot import {module!r}: {err})") from None
    except AttributeError:
        found = None
    if not (isinstance(found, type) and issubclass(found, gym.Wrapper)):
        raise ValueError(f"Invalid env_wrapper: {name!r} (expected the import path of a gymnasium.Wrapper, module.Class)")
    return found


def parse_env_wrapper(value: Any) -> EnvWrappers:
    """Read RL Zoo's ``env_wrapper`` (SB3's ``wrapper_class``): a name, ``{name: kwargs}``, or a list of those.

    Names are import paths (``rl_adaloss.envs.ScaleReward``); each must name a ``gymnasium.Wrapper`` (checked here,
    so that a bad name fails before anything is built).

    Raises:
        ValueError: the value has another shape, or a name is not an importable ``gymnasium.Wrapper``.

    Example:
        >>> parse_env_wrapper([{"rl_adaloss.envs.ScaleReward": {"scale": 0.01}}])
        (('rl_adaloss.envs.ScaleReward', {'scale': 0.01}),)
    """
    out = []
    for item in [] if value is None else value if isinstance(value, list) else [value]:
        if isinstance(item, str):
            item = {item: {}}
        if not (isinstance(item, dict) and len(item) == 1):
            raise ValueError(f"Invalid env_wrapper: {value!r} (expected module.Class, {{module.Class: kwargs}} or a list)")
        ((name, kwargs),) = item.items()
        if not isinstance(name, str) or not isinstance(kwargs or {}, dict):
            raise ValueError(f"Invalid env_wrapper: {value!r} (expected module.Class, {{module.Class: kwargs}} or a list)")
        _wrapper_class(name)
        out.append((name, dict(kwargs or {})))
    return tuple(out)


@dataclass(frozen=True)
class _Wrap:
    """SB3's ``wrapper_class``: apply the wrappers in order (above ``Monitor``, so it records the env's own rewards)."""

    wrappers: EnvWrappers

    def __call__(self, env: gym.Env[Any, Any]) -> gym.Env[Any, Any]:
        for name, kwargs in self.wrappers:
            env = _wrapper_class(name)(env, **kwargs)
        return env


def make_vec_env_for(
    env_id: str,
    n_envs: int,
    seed: int,
    *,
    normalize: bool | dict[str, Any] = False,
    gamma: float = 0.99,
    env_kwargs: dict[str, Any] | None = None,
    training: bool = True,
    env_wrapper: EnvWrappers = (),
) -> VecEnv:
    """Make a seeded ``DummyVecEnv`` (plus ``VecNormalize`` when the preset asks for it).

    ``env_wrapper`` wraps each env above its ``Monitor`` (as RL Zoo does, for training and evaluation envs alike), so
    episode returns (``rollout/ep_rew_mean``, evaluations) are the env's own, before any reward wrapper.
    """
    from stable_baselines3.common.env_util import make_vec_env

    from rl_adaloss.envs import ensure_registered

    ensure_registered(env_id)
    wrap = _Wrap(env_wrapper) if env_wrapper else None  # None: SB3's default, no wrapper
    venv: VecEnv = make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs, wrapper_class=wrap)
    if normalize:
        norm_kwargs = dict(normalize) if isinstance(normalize, dict) else {}
        norm_kwargs.setdefault("gamma", gamma)
        if not training:
            norm_kwargs.update(training=False, norm_reward=False)
        venv = VecNormalize(venv, **norm_kwargs)
    return venv


def action_noise(noise: tuple[str, float] | None, venv: VecEnv) -> Any:
    """RL Zoo's ``noise_type`` / ``noise_std`` as an SB3 action-noise object (None without noise)."""
    from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

    if noise is None:
        return None
    kind, std = noise
    n = int(np.prod(venv.action_space.shape or ()))
    if kind == "normal":
        return NormalActionNoise(np.zeros(n), std * np.ones(n))
    if kind == "ornstein-uhlenbeck":
        return OrnsteinUhlenbeckActionNoise(np.zeros(n), std * np.ones(n))
    raise ValueError(f"Invalid noise_type: {kind!r} (valid: normal, ornstein-uhlenbeck)")
