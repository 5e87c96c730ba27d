"""Swing-up environments and wrappers; importing this module registers the ids with Gymnasium.

Registered ids: ``rl_adaloss/PendulumSwingUp-v0``, ``rl_adaloss/CartPoleSwingUp-v0`` and
``rl_adaloss/DoublePendulumSwingUp-v0``. Use :func:`make_env` to also reach the paper's
``InvertedPendulumSwingupBulletEnv-v0`` (``bullet`` extra). MuJoCo and pybullet are imported
only when an env that needs them is made.
"""

from rl_adaloss.envs.registration import (
    BULLET_SWINGUP_ID,
    CARTPOLE_SWINGUP_ID,
    DOUBLE_PENDULUM_SWINGUP_ID,
    PENDULUM_SWINGUP_ID,
    SWINGUP_IDS,
    ensure_registered,
    make_env,
    register_envs,
)
from rl_adaloss.envs.wrappers import AngleToCosSin, HangingStart, NoUprightTermination, ScaleReward, UprightReward

register_envs()

__all__ = [
    "BULLET_SWINGUP_ID",
    "CARTPOLE_SWINGUP_ID",
    "DOUBLE_PENDULUM_SWINGUP_ID",
    "PENDULUM_SWINGUP_ID",
    "SWINGUP_IDS",
    "AngleToCosSin",
    "HangingStart",
    "NoUprightTermination",
    "ScaleReward",
    "UprightReward",
    "ensure_registered",
    "make_env",
    "register_envs",
]
