"""Ids of the swing-up tasks, their Gymnasium registration, and ``make_env`` that also resolves Bullet ids."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import gymnasium as gym

PENDULUM_SWINGUP_ID = "rl_adaloss/PendulumSwingUp-v0"
CARTPOLE_SWINGUP_ID = "rl_adaloss/CartPoleSwingUp-v0"
DOUBLE_PENDULUM_SWINGUP_ID = "rl_adaloss/DoublePendulumSwingUp-v0"
BULLET_SWINGUP_ID = "InvertedPendulumSwingupBulletEnv-v0"
"""The paper's task, registered by ``pybullet_envs_gymnasium`` (the ``bullet`` extra)."""

SWINGUP_IDS: tuple[str, ...] = (PENDULUM_SWINGUP_ID, CARTPOLE_SWINGUP_ID, DOUBLE_PENDULUM_SWINGUP_ID)
"""The ids this package registers."""

_MUJOCO_IDS = frozenset({CARTPOLE_SWINGUP_ID, DOUBLE_PENDULUM_SWINGUP_ID})


def require_extra(module: str, extra: str) -> None:
    """Raise a clear ``ImportError`` if ``module`` cannot be imported, naming the extra that installs it.

    Args:
        module: Top-level module name, e.g. ``"mujoco"``.
        extra: The rl-adaloss extra that provides it, e.g. ``"mujoco"``.

    Raises:
        ImportError: If ``module`` is not installed.
    """
    if importlib.util.find_spec(module) is None:
        raise ImportError(f"{module} is not installed; install it with: pip install 'rl-adaloss[{extra}]'")


def register_envs() -> None:
    """Register the swing-up ids with Gymnasium (idempotent; string entry points keep MuJoCo unimported)."""
    specs = (
        (PENDULUM_SWINGUP_ID, "make_pendulum_swingup", 200),
        (CARTPOLE_SWINGUP_ID, "make_cartpole_swingup", 1000),
        (DOUBLE_PENDULUM_SWINGUP_ID, "make_double_pendulum_swingup", 1000),
    )
    for env_id, factory, steps in specs:
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=f"rl_adaloss.envs.tasks:{factory}", max_episode_steps=steps)


def ensure_registered(env_id: str) -> None:
    """Make ``env_id`` resolvable by ``gym.make``, importing the package that registers it.

    Bullet ids (``...BulletEnv-v0``, e.g. :data:`BULLET_SWINGUP_ID`) import ``pybullet_envs_gymnasium``;
    our MuJoCo ids and Gymnasium's MuJoCo ids check that ``mujoco`` is installed.

    Args:
        env_id: A Gymnasium id.

    Raises:
        ImportError: If the extra the id needs is missing; the message names ``pip install 'rl-adaloss[...]'``.
    """
    if "BulletEnv" in env_id and env_id not in gym.registry:
        require_extra("pybullet_envs_gymnasium", "bullet")
        importlib.import_module("pybullet_envs_gymnasium")
    elif env_id in _MUJOCO_IDS:
        require_extra("mujoco", "mujoco")
    elif env_id in gym.registry:
        entry_point = gym.registry[env_id].entry_point
        if isinstance(entry_point, str) and entry_point.startswith("gymnasium.envs.mujoco"):
            require_extra("mujoco", "mujoco")


def make_env(env_id: str, **kwargs: Any) -> gym.Env[Any, Any]:
    """``gym.make`` that first resolves ``env_id`` with :func:`ensure_registered`; use it in scripts and factories.

    Args:
        env_id: A Gymnasium id, e.g. ``"rl_adaloss/CartPoleSwingUp-v0"`` or ``"InvertedPendulumSwingupBulletEnv-v0"``.
        **kwargs: Passed to :func:`gymnasium.make` (``render_mode``, ``max_episode_steps``, env kwargs).

    Returns:
        The env made by ``gym.make``.

    Raises:
        ImportError: If the extra the id needs is missing.

    Example:
        >>> from rl_adaloss.envs import make_env
        >>> env = make_env("rl_adaloss/PendulumSwingUp-v0")
        >>> env.spec.max_episode_steps
        200
    """
    ensure_registered(env_id)
    return gym.make(env_id, **kwargs)
