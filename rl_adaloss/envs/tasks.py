"""Factories behind the registered swing-up ids; each builds a base env and composes the wrappers.

They are Gymnasium entry points (``"rl_adaloss.envs.tasks:make_cartpole_swingup"``), so MuJoCo is only
imported when such an env is made; ``gym.make`` adds the ``TimeLimit`` and the env checker on top.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from rl_adaloss.envs.registration import require_extra
from rl_adaloss.envs.wrappers import AngleToCosSin, HangingStart, NoUprightTermination, UprightReward


def make_pendulum_swingup(noise: float = 0.1, velocity_noise: float = 0.1, **kwargs: Any) -> gym.Env[np.ndarray, np.ndarray]:
    """Build ``rl_adaloss/PendulumSwingUp-v0``: Gymnasium's Pendulum, always starting hanging down.

    ## Action Space
    ``Box(-2, 2, (1,), float32)``: torque (N m), as in ``Pendulum-v1``.

    ## Observation Space
    ``Box([-1, -1, -8], [1, 1, 8], (3,), float32)``: ``[cos(theta), sin(theta), theta_dot]``.

    ## Rewards
    ``Pendulum-v1``'s ``-(theta^2 + 0.1 theta_dot^2 + 0.001 u^2)`` with theta normalised to ``[-pi, pi)``;
    0 is the best, about -16.3 the worst per step.

    ## Starting State
    ``theta = pi + U(-noise, noise)`` (hanging down), ``theta_dot = U(-velocity_noise, velocity_noise)``,
    where ``Pendulum-v1`` draws ``theta ~ U(-pi, pi)`` and ``theta_dot ~ U(-1, 1)``.

    ## Episode End
    Truncated after 200 steps; never terminated.

    Args:
        noise: Half-width (rad) of the uniform noise on the hanging angle.
        velocity_noise: Half-width (rad/s) of the uniform initial angular velocity.
        **kwargs: Passed to :class:`gymnasium.envs.classic_control.pendulum.PendulumEnv` (``render_mode``, ``g``).

    Returns:
        The wrapped env (without ``TimeLimit``; ``gym.make`` adds it).
    """
    from gymnasium.envs.classic_control.pendulum import PendulumEnv

    return HangingStart(PendulumEnv(**kwargs), angle_index=0, noise=noise, velocity_noise=velocity_noise)


def make_cartpole_swingup(noise: float = 0.1, **kwargs: Any) -> gym.Env[np.ndarray, np.ndarray]:
    """Build ``rl_adaloss/CartPoleSwingUp-v0``: a MuJoCo port of ``InvertedPendulumSwingupBulletEnv-v0``.

    The base is :class:`rl_adaloss.envs.cartpole.CartPoleEnv` (free hinge, cart on a hard-limited
    +-1 m rail, so the cart cannot leave the rail and no rail termination exists), composed as
    ``AngleToCosSin(UprightReward(NoUprightTermination(HangingStart(CartPoleEnv()))))``.

    ## Action Space
    ``Box(-1, 1, (1,), float32)``: force on the cart, times 100 N.

    ## Observation Space
    ``Box(-inf, inf, (5,), float64)``: ``[x, x_dot, cos(theta), sin(theta), theta_dot]``, the Bullet task's order.

    ## Rewards
    ``cos(theta)`` per step (1 upright, -1 hanging), as in the Bullet task.

    ## Starting State
    ``theta = pi + U(-noise, noise)`` (hanging), cart and velocities ``U(-0.01, 0.01)``.

    ## Episode End
    Truncated after 1000 steps (20 s at ``dt = 0.02``); terminated only on a non-finite state.

    Args:
        noise: Half-width (rad) of the uniform noise on the hanging angle.
        **kwargs: Passed to :class:`~rl_adaloss.envs.cartpole.CartPoleEnv`.

    Returns:
        The wrapped env (without ``TimeLimit``; ``gym.make`` adds it).

    Raises:
        ImportError: If MuJoCo is not installed (``pip install 'rl-adaloss[mujoco]'``).
    """
    require_extra("mujoco", "mujoco")
    from rl_adaloss.envs.cartpole import CartPoleEnv

    env: gym.Env[np.ndarray, np.ndarray] = HangingStart(CartPoleEnv(**kwargs), angle_index=1, noise=noise)
    env = UprightReward(NoUprightTermination(env), angle_indices=(1,))
    return AngleToCosSin(env, angle_index=2)


def make_double_pendulum_swingup(noise: float = 0.1, **kwargs: Any) -> gym.Env[np.ndarray, np.ndarray]:
    """Build ``rl_adaloss/DoublePendulumSwingUp-v0``: Gymnasium's InvertedDoublePendulum, started hanging.

    The base is :class:`gymnasium.envs.mujoco.inverted_double_pendulum_v5.InvertedDoublePendulumEnv`
    (both hinges turn freely; the slider is a hard-limited +-1 m rail, so the cart cannot leave it),
    composed as ``UprightReward(NoUprightTermination(HangingStart(env)))``.

    ## Action Space
    ``Box(-1, 1, (1,), float32)``: force on the cart, times 500 N.

    ## Observation Space
    ``Box(-inf, inf, (9,), float64)``: InvertedDoublePendulum-v5's ``[x, sin(theta1), sin(theta2),
    cos(theta1), cos(theta2), x_dot, theta1_dot, theta2_dot, constraint force]`` (``theta2`` relative to link 1).

    ## Rewards
    The tip's height over the chain length, ``(cos(theta1) + cos(theta1 + theta2)) / 2``, in ``[-1, 1]``.

    ## Starting State
    Both links hanging: ``theta1 = pi + U(-noise, noise)``, ``theta2 = U(-0.1, 0.1)``; the rest as in v5.

    ## Episode End
    Truncated after 1000 steps (50 s at ``dt = 0.05``); no tip-height termination, only a non-finite state.

    Args:
        noise: Half-width (rad) of the uniform noise on the first link's hanging angle.
        **kwargs: Passed to ``InvertedDoublePendulumEnv`` (``render_mode``, ``reset_noise_scale``, ...).

    Returns:
        The wrapped env (without ``TimeLimit``; ``gym.make`` adds it).

    Raises:
        ImportError: If MuJoCo is not installed (``pip install 'rl-adaloss[mujoco]'``).
    """
    require_extra("mujoco", "mujoco")
    from gymnasium.envs.mujoco.inverted_double_pendulum_v5 import InvertedDoublePendulumEnv

    env: gym.Env[np.ndarray, np.ndarray] = HangingStart(InvertedDoublePendulumEnv(**kwargs), angle_index=1, noise=noise)
    return UprightReward(NoUprightTermination(env), angle_indices=(1, 2))


__all__ = ["make_cartpole_swingup", "make_double_pendulum_swingup", "make_pendulum_swingup"]
