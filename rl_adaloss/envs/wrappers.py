"""Composable swing-up wrappers: hanging start, upright reward, no upright termination, angle to (cos, sin).

``HangingStart`` and ``UprightReward`` act on the physics state, so they need ``env.unwrapped`` to be a
Gymnasium MuJoCo env (``MujocoEnv``) or Gymnasium's classic ``PendulumEnv``; ``NoUprightTermination``
and ``AngleToCosSin`` work on any env.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.core import ActType, ObsType
from gymnasium.spaces import Box
from numpy.typing import NDArray

from rl_adaloss.envs import _physics

__all__ = ["AngleToCosSin", "HangingStart", "NoUprightTermination", "ScaleReward", "UprightReward"]


def _check_index(name: str, index: int, size: int) -> None:
    if not isinstance(index, (int, np.integer)) or not -size <= index < size:
        raise ValueError(f"Invalid {name} value: {index} (expected an int in [{-size}, {size}))")


class HangingStart(gym.Wrapper[ObsType, ActType, ObsType, ActType], gym.utils.RecordConstructorArgs):
    """Start every episode with one hinge hanging down: ``angle = hanging_angle + U(-noise, noise)``.

    After the wrapped env's own reset, the joint ``qpos[angle_index]`` is set to ``hanging_angle``
    (``pi``: straight down when 0 is upright) plus uniform noise; with ``velocity_noise`` set, its
    velocity ``qvel[angle_index]`` is redrawn from ``U(-velocity_noise, velocity_noise)``, otherwise it
    keeps the wrapped env's initial velocity. The other joints keep the wrapped env's reset state. All
    noise comes from ``self.np_random`` (the wrapped env's generator), so ``reset(seed=...)`` is reproducible.

    Observation wrappers already applied below this one are re-applied to the new state's observation;
    other wrappers below it must not change observations.

    Example:
        >>> import numpy as np
        >>> from gymnasium.envs.classic_control.pendulum import PendulumEnv
        >>> from rl_adaloss.envs import HangingStart
        >>> env = HangingStart(PendulumEnv(), angle_index=0, noise=0.1, velocity_noise=0.1)
        >>> obs, _ = env.reset(seed=42)
        >>> obs.round(4)  # [cos(theta), sin(theta), theta_dot] with theta near pi
        array([-0.9974, -0.0717,  0.0395], dtype=float32)
        >>> bool(abs(env.unwrapped.state[0] - np.pi) <= 0.1)
        True

    Change logs:
        * v0.1.0 - Initially added.
    """

    def __init__(
        self,
        env: gym.Env[ObsType, ActType],
        angle_index: int,
        noise: float = 0.1,
        velocity_noise: float | None = None,
        hanging_angle: float = math.pi,
    ) -> None:
        """Wrap ``env`` so that its episodes start hanging.

        Args:
            env: The env to wrap; ``env.unwrapped`` must be a ``MujocoEnv`` or the classic ``PendulumEnv``.
            angle_index: Index of the hinge in ``qpos`` (and ``qvel``); Pendulum has the single index 0.
            noise: Half-width (rad) of the uniform noise on the hanging angle; must be >= 0.
            velocity_noise: Half-width (rad/s) of the uniform initial angular velocity, or ``None`` to keep
                the wrapped env's; must be >= 0.
            hanging_angle: The hanging angle (rad); ``pi`` for models where 0 is upright.

        Raises:
            ValueError: If ``angle_index`` is out of range or a noise is negative or not finite.
            TypeError: If ``env.unwrapped`` is neither a MuJoCo env nor the classic Pendulum.
        """
        _physics.check_supported(env)
        _check_index("angle_index", angle_index, _physics.num_joints(env))
        if not (math.isfinite(noise) and noise >= 0):
            raise ValueError(f"Invalid noise value: {noise}")
        if velocity_noise is not None and not (math.isfinite(velocity_noise) and velocity_noise >= 0):
            raise ValueError(f"Invalid velocity_noise value: {velocity_noise}")
        gym.utils.RecordConstructorArgs.__init__(
            self, angle_index=angle_index, noise=noise, velocity_noise=velocity_noise, hanging_angle=hanging_angle
        )
        gym.Wrapper.__init__(self, env)
        self.angle_index = int(angle_index)
        self.noise = float(noise)
        self.velocity_noise = velocity_noise
        self.hanging_angle = float(hanging_angle)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[ObsType, dict[str, Any]]:
        """Reset the wrapped env, then turn the hinge ``angle_index`` to hang."""
        _, info = self.env.reset(seed=seed, options=options)
        qpos, qvel = _physics.get_state(self.env)
        qpos[self.angle_index] = self.hanging_angle + self.np_random.uniform(-self.noise, self.noise)
        if self.velocity_noise is not None:
            qvel[self.angle_index] = self.np_random.uniform(-self.velocity_noise, self.velocity_noise)
        return _physics.set_state(self.env, qpos, qvel), info


class UprightReward(gym.Wrapper[ObsType, ActType, ObsType, ActType], gym.utils.RecordConstructorArgs):
    """Replace the reward by the normalised height of a pendulum's tip, ``cos(theta)`` for one link.

    For hinges ``qpos[angle_indices]`` forming a serial chain of equal-length links (each angle relative
    to the previous link, as MuJoCo reports it, 0 = upright), the reward is the tip height divided by the
    chain length: ``mean_k cos(theta_1 + ... + theta_k)``, in ``[-1, 1]``; ``1`` means fully upright,
    ``-1`` hanging straight down. For one link this is the ``cos(theta)`` reward of
    ``InvertedPendulumSwingupBulletEnv-v0``. The wrapped env's reward is kept in ``info["original_reward"]``.

    Example:
        >>> import numpy as np
        >>> from gymnasium.envs.classic_control.pendulum import PendulumEnv
        >>> from rl_adaloss.envs import UprightReward
        >>> env = UprightReward(PendulumEnv(), angle_indices=(0,))
        >>> _ = env.reset(seed=42)
        >>> _, reward, _, _, info = env.step(np.zeros(1, dtype=np.float32))
        >>> bool(np.isclose(reward, np.cos(env.unwrapped.state[0])))
        True
        >>> round(reward, 4), round(info["original_reward"], 4)
        (-0.1805, -2.9644)

    Change logs:
        * v0.1.0 - Initially added.
    """

    def __init__(self, env: gym.Env[ObsType, ActType], angle_indices: Sequence[int]) -> None:
        """Wrap ``env`` so that it rewards the tip's normalised height.

        Args:
            env: The env to wrap; ``env.unwrapped`` must be a ``MujocoEnv`` or the classic ``PendulumEnv``.
            angle_indices: Indices in ``qpos`` of the chain's hinges, from the base link to the tip link.

        Raises:
            ValueError: If ``angle_indices`` is empty or holds an index out of range.
            TypeError: If ``env.unwrapped`` is neither a MuJoCo env nor the classic Pendulum.
        """
        _physics.check_supported(env)
        if len(angle_indices) == 0:
            raise ValueError(f"Invalid angle_indices value: {angle_indices} (expected at least one index)")
        for index in angle_indices:
            _check_index("angle_indices", index, _physics.num_joints(env))
        gym.utils.RecordConstructorArgs.__init__(self, angle_indices=tuple(angle_indices))
        gym.Wrapper.__init__(self, env)
        self.angle_indices = tuple(int(i) for i in angle_indices)

    def upright(self) -> float:
        """Return the current normalised tip height in ``[-1, 1]`` (the reward of the last step)."""
        qpos = _physics.qpos_view(self.env)
        # Plain floats: this runs every step and numpy's per-call overhead dominates for 1-2 links.
        angle, height = 0.0, 0.0
        for index in self.angle_indices:
            angle += float(qpos[index])
            height += math.cos(angle)
        return height / len(self.angle_indices)

    def step(self, action: ActType) -> tuple[ObsType, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the wrapped env and return the upright reward instead of its reward."""
        observation, reward, terminated, truncated, info = self.env.step(action)
        info = {**info, "original_reward": float(reward)}
        return observation, self.upright(), terminated, truncated, info


class NoUprightTermination(gym.Wrapper[ObsType, ActType, ObsType, ActType], gym.utils.RecordConstructorArgs):
    """Drop the wrapped env's termination (the "pole fell" condition); only non-finite observations terminate.

    Balancing tasks (``InvertedPendulum``, ``InvertedDoublePendulum``, our ``CartPoleEnv``) terminate as
    soon as the pole leaves the upright region, which ends a swing-up episode at its first step. This
    wrapper turns ``terminated`` into ``False`` unless the observation holds NaN or inf, and records the
    dropped signal in ``info["upright_terminated"]``; episodes then end only by truncation (``TimeLimit``).
    Use it only on envs whose sole termination is the upright condition.

    Example:
        >>> import numpy as np
        >>> from rl_adaloss.envs import NoUprightTermination
        >>> from rl_adaloss.envs.cartpole import CartPoleEnv
        >>> env = NoUprightTermination(CartPoleEnv())
        >>> _ = env.reset(seed=42)
        >>> for _ in range(100):
        ...     _, _, terminated, _, info = env.step(np.ones(1, dtype=np.float32))
        >>> terminated, info["upright_terminated"]
        (False, True)

    Change logs:
        * v0.1.0 - Initially added.
    """

    def __init__(self, env: gym.Env[ObsType, ActType]) -> None:
        """Wrap ``env`` so that only truncation or a non-finite state ends episodes.

        Args:
            env: The env to wrap.
        """
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)

    def step(self, action: ActType) -> tuple[ObsType, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the wrapped env, keeping termination only for non-finite observations."""
        observation, reward, terminated, truncated, info = self.env.step(action)
        info = {**info, "upright_terminated": bool(terminated)}
        if terminated:  # keep the termination only for a diverged (non-finite) state
            terminated = not bool(np.all(np.isfinite(np.asarray(observation, dtype=np.float64))))
        return observation, reward, bool(terminated), truncated, info


class AngleToCosSin(
    gym.ObservationWrapper[NDArray[np.floating], ActType, NDArray[np.floating]], gym.utils.RecordConstructorArgs
):
    """Replace the angle ``obs[angle_index]`` of a flat ``Box`` observation by ``cos(angle), sin(angle)``.

    An unwrapped hinge angle grows without bound as the pole turns over; ``(cos, sin)`` is continuous
    and bounded. The pair takes the angle's place, so the observation grows by one entry; its bounds
    are ``[-1, 1]`` and the dtype is kept.

    Example:
        >>> import gymnasium as gym
        >>> from rl_adaloss.envs import AngleToCosSin
        >>> env = AngleToCosSin(gym.make("CartPole-v1"), angle_index=2)  # [x, x_dot, theta, theta_dot]
        >>> env.observation_space
        Box([-4.8 -inf -1.  -1.  -inf], [4.8 inf 1.  1.  inf], (5,), float32)
        >>> obs, _ = env.reset(seed=42)
        >>> obs.round(4)  # [x, x_dot, cos(theta), sin(theta), theta_dot]
        array([ 0.0274, -0.0061,  0.9994,  0.0359,  0.0197], dtype=float32)

    Change logs:
        * v0.1.0 - Initially added.
    """

    def __init__(self, env: gym.Env[NDArray[np.floating], ActType], angle_index: int) -> None:
        """Wrap ``env`` so that its angle observation becomes ``(cos, sin)``.

        Args:
            env: The env to wrap; its observation space must be a 1-D ``Box``.
            angle_index: Index of the angle in the observation.

        Raises:
            ValueError: If the observation space is not a 1-D ``Box`` or ``angle_index`` is out of range.
        """
        space = env.observation_space
        if not isinstance(space, Box) or len(space.shape) != 1:
            raise ValueError(f"Invalid observation space: {space} (expected a 1-D Box)")
        _check_index("angle_index", angle_index, space.shape[0])
        gym.utils.RecordConstructorArgs.__init__(self, angle_index=angle_index)
        gym.ObservationWrapper.__init__(self, env)
        self.angle_index = int(angle_index) % space.shape[0]
        i = self.angle_index
        unit = np.ones(2, dtype=space.dtype)
        low = np.concatenate([space.low[:i], -unit, space.low[i + 1 :]])
        high = np.concatenate([space.high[:i], unit, space.high[i + 1 :]])
        self.observation_space = Box(low=low, high=high, dtype=space.dtype)  # type: ignore[arg-type]

    def observation(self, observation: NDArray[np.floating]) -> NDArray[np.floating]:
        """Return ``observation`` with its angle replaced by ``(cos, sin)``."""
        i = self.angle_index
        angle = float(observation[i])
        out = np.empty(observation.shape[0] + 1, dtype=self.observation_space.dtype)
        out[:i] = observation[:i]
        out[i] = math.cos(angle)
        out[i + 1] = math.sin(angle)
        out[i + 2 :] = observation[i + 1 :]
        return out


class ScaleReward(gym.RewardWrapper[ObsType, ActType], gym.utils.RecordConstructorArgs):
    """Multiply every reward by a constant ``scale > 0`` (a change of the reward's units, nothing else).

    Used to check how an optimizer depends on the scale of the loss (issue 13): PPO's value loss scales with the
    square of the reward scale, SAC's critic loss too. Wrap the *training* env only and evaluate on the unscaled env,
    so that returns stay comparable. A ``Monitor`` below this wrapper records the unscaled episode returns.

    Example:
        >>> import numpy as np
        >>> from gymnasium.envs.classic_control.pendulum import PendulumEnv
        >>> from rl_adaloss.envs import ScaleReward
        >>> env = ScaleReward(PendulumEnv(), scale=0.01)
        >>> _ = env.reset(seed=42)
        >>> _, reward, _, _, _ = env.step(np.zeros(1, dtype=np.float32))
        >>> round(reward, 6)
        -0.029644

    Change logs:
        * v0.2.0 - Initially added.
    """

    def __init__(self, env: gym.Env[ObsType, ActType], scale: float) -> None:
        """Wrap ``env`` so that its rewards are multiplied by ``scale``.

        Args:
            env: The env to wrap.
            scale: The factor, a finite number ``> 0``.

        Raises:
            ValueError: If ``scale`` is not a finite number ``> 0``.
        """
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"Invalid scale value: {scale} (expected a finite number > 0)")
        gym.utils.RecordConstructorArgs.__init__(self, scale=scale)
        gym.RewardWrapper.__init__(self, env)
        self.scale = float(scale)

    def reward(self, reward: SupportsFloat) -> float:
        """Return ``scale * reward``."""
        return self.scale * float(reward)
