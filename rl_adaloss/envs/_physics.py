"""Read and write the joint state (``qpos``, ``qvel``) of the physics envs our wrappers support."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def _is_mujoco(env: gym.Env[Any, Any]) -> bool:
    # Duck-typed so that this module never imports mujoco (MujocoEnv has model/data/set_state).
    return hasattr(env, "data") and hasattr(env, "model") and hasattr(env, "set_state")


def _is_classic_pendulum(env: gym.Env[Any, Any]) -> bool:
    # gymnasium's PendulumEnv keeps state = [theta, theta_dot] (set by reset).
    from gymnasium.envs.classic_control.pendulum import PendulumEnv

    return isinstance(env, PendulumEnv)


def check_supported(env: gym.Env[Any, Any]) -> None:
    """Raise ``TypeError`` unless ``env.unwrapped`` is a MuJoCo env or Gymnasium's ``PendulumEnv``."""
    base = env.unwrapped
    if not (_is_mujoco(base) or _is_classic_pendulum(base)):
        raise TypeError(
            f"Unsupported environment {type(base).__name__}: expected a gymnasium MujocoEnv or the classic PendulumEnv"
        )


def num_joints(env: gym.Env[Any, Any]) -> int:
    """Number of position coordinates (``nq``) of ``env.unwrapped``."""
    base: Any = env.unwrapped
    return int(base.model.nq) if _is_mujoco(base) else 1


def qpos_view(env: gym.Env[Any, Any]) -> FloatArray:
    """Return ``qpos`` of ``env.unwrapped`` without copying (read it, do not write it); fast path for rewards."""
    base: Any = env.unwrapped
    return base.data.qpos if _is_mujoco(base) else base.state[:1]


def get_state(env: gym.Env[Any, Any]) -> tuple[FloatArray, FloatArray]:
    """Return copies of ``(qpos, qvel)`` of ``env.unwrapped``."""
    base: Any = env.unwrapped
    if _is_mujoco(base):
        return np.array(base.data.qpos, dtype=np.float64), np.array(base.data.qvel, dtype=np.float64)
    state = np.asarray(base.state, dtype=np.float64)
    return state[:1].copy(), state[1:2].copy()


def set_state(env: gym.Env[Any, Any], qpos: FloatArray, qvel: FloatArray) -> Any:
    """Set ``(qpos, qvel)`` of ``env.unwrapped`` and return the observation ``env`` would now emit.

    The base env's observation is passed up through every :class:`gymnasium.ObservationWrapper`
    between ``env.unwrapped`` and ``env`` (inclusive), so wrappers that transform observations in
    ``observation()`` stay consistent. Other wrappers in between must not change observations.
    """
    base: Any = env.unwrapped
    if _is_mujoco(base):
        base.set_state(qpos, qvel)
    else:
        base.state = np.array([qpos[0], qvel[0]], dtype=np.float64)
    observation = base._get_obs()
    chain: list[gym.Env[Any, Any]] = []
    current: gym.Env[Any, Any] = env
    while isinstance(current, gym.Wrapper):
        chain.append(current)
        current = current.env
    for wrapper in reversed(chain):
        if isinstance(wrapper, gym.ObservationWrapper):
            observation = wrapper.observation(observation)
    return observation
