"""MuJoCo cart-pole with a freely turning hinge, the base of ``rl_adaloss/CartPoleSwingUp-v0``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco import MujocoEnv
from gymnasium.spaces import Box
from numpy.typing import NDArray

ASSET_PATH = Path(__file__).resolve().parent / "assets" / "cartpole_swingup.xml"

DEFAULT_CAMERA_CONFIG: dict[str, Any] = {"trackbodyid": -1, "distance": 4.0, "lookat": np.array([0.0, 0.0, 0.0])}


class CartPoleEnv(MujocoEnv, utils.EzPickle):
    """Cart-pole on a 2 m rail whose pole turns freely (MuJoCo), balanced from upright.

    This is Gymnasium's ``InvertedPendulum-v5`` task on our own model (``assets/cartpole_swingup.xml``):
    the same geometry and masses, but the hinge has no +-90 degree range and only light damping, so
    the pole can hang and swing. On its own it is a balancing task; ``rl_adaloss/CartPoleSwingUp-v0``
    turns it into a swing-up task with :class:`~rl_adaloss.envs.HangingStart`,
    :class:`~rl_adaloss.envs.NoUprightTermination`, :class:`~rl_adaloss.envs.UprightReward` and
    :class:`~rl_adaloss.envs.AngleToCosSin`.

    ## Action Space
    ``Box(-1, 1, (1,), float32)``: force on the cart, times 100 N (as in ``InvertedPendulumSwingupBulletEnv-v0``).

    ## Observation Space
    ``Box(-inf, inf, (4,), float64)``: ``[x, x_dot, theta, theta_dot]``: cart position (m) and velocity,
    hinge angle (rad, 0 upright, unwrapped: it grows past +-pi as the pole turns over) and angular velocity.
    The order matches the Bullet task's ``[x, x_dot, cos, sin, theta_dot]`` once the angle is expanded.

    ## Rewards
    ``1`` per step while the pole is within ``upright_threshold`` of upright (InvertedPendulum's reward).

    ## Starting State
    All joints at 0 (upright, centred) plus ``U(-reset_noise_scale, reset_noise_scale)`` noise.

    ## Episode End
    Terminated when ``|theta| > upright_threshold`` or the state is not finite. The slider is a hard
    joint limit at +-1 m, so the cart cannot leave the rail and there is no rail termination.
    ``gym.make`` adds no time limit for this class (it is not registered); the swing-up task has 1000 steps.

    Change logs:
        * v0.1.0 - Initially added.
    """

    metadata = {"render_modes": ["human", "rgb_array", "depth_array", "rgbd_tuple"]}

    def __init__(
        self,
        frame_skip: int = 2,
        reset_noise_scale: float = 0.01,
        upright_threshold: float = 0.2,
        **kwargs: Any,
    ) -> None:
        """Build the model from ``assets/cartpole_swingup.xml``.

        Args:
            frame_skip: MuJoCo steps (of 0.01 s) per env step; the default gives ``dt = 0.02`` s.
            reset_noise_scale: Half-width of the uniform noise on the initial ``qpos`` and ``qvel``.
            upright_threshold: Angle (rad) beyond which the pole counts as fallen.
            **kwargs: Passed to :class:`gymnasium.envs.mujoco.MujocoEnv` (``render_mode``, ``width``, ...).

        Raises:
            ValueError: If ``frame_skip < 1``, ``reset_noise_scale < 0`` or ``upright_threshold <= 0``.
        """
        if frame_skip < 1:
            raise ValueError(f"Invalid frame_skip value: {frame_skip}")
        if not reset_noise_scale >= 0:
            raise ValueError(f"Invalid reset_noise_scale value: {reset_noise_scale}")
        if not upright_threshold > 0:
            raise ValueError(f"Invalid upright_threshold value: {upright_threshold}")
        utils.EzPickle.__init__(self, frame_skip, reset_noise_scale, upright_threshold, **kwargs)
        self._reset_noise_scale = reset_noise_scale
        self._upright_threshold = upright_threshold
        kwargs.setdefault("default_camera_config", DEFAULT_CAMERA_CONFIG)
        MujocoEnv.__init__(
            self,
            str(ASSET_PATH),
            frame_skip,
            observation_space=Box(low=-np.inf, high=np.inf, shape=(4,), dtype=np.float64),
            **kwargs,
        )
        self.metadata = {**self.metadata, "render_fps": int(np.round(1.0 / self.dt))}

    def step(self, action: NDArray[np.floating]) -> tuple[NDArray[np.float64], np.float64, bool, bool, dict[str, np.float64]]:
        """Apply ``action`` for ``frame_skip`` MuJoCo steps; see the class docstring for reward and termination."""
        self.do_simulation(action, self.frame_skip)
        observation = self._get_obs()
        terminated = bool(not np.isfinite(observation).all() or abs(observation[2]) > self._upright_threshold)
        reward = np.float64(not terminated)
        if self.render_mode == "human":
            self.render()
        return observation, reward, terminated, False, {"reward_survive": reward}

    def reset_model(self) -> NDArray[np.float64]:
        """Reset to upright with uniform noise drawn from ``self.np_random``."""
        scale = self._reset_noise_scale
        qpos = self.init_qpos + self.np_random.uniform(low=-scale, high=scale, size=self.model.nq)
        qvel = self.init_qvel + self.np_random.uniform(low=-scale, high=scale, size=self.model.nv)
        self.set_state(qpos, qvel)
        return self._get_obs()

    def _get_obs(self) -> NDArray[np.float64]:
        qpos, qvel = self.data.qpos, self.data.qvel
        return np.array([qpos[0], qvel[0], qpos[1], qvel[1]], dtype=np.float64)
