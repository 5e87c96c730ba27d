"""Seeded vectorised envs for the factory (``VecNormalize`` when a preset asks for it) and action noise."""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

__all__ = ["action_noise", "make_vec_env_for"]


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
    from stable_baselines3.common.env_util import make_vec_env

    from rl_adaloss.envs import ensure_registered

    ensure_registered(env_id)
    venv: VecEnv = make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs)
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
