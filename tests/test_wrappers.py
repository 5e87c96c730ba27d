"""Tests for the swing-up wrappers: effects, composition, seeding and argument validation."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.classic_control.pendulum import PendulumEnv

from rl_adaloss.envs import AngleToCosSin, HangingStart, NoUprightTermination, UprightReward


def _cartpole(**kwargs: Any) -> gym.Env:
    pytest.importorskip("mujoco", reason="needs the mujoco extra: pip install 'rl-adaloss[mujoco]'")
    from rl_adaloss.envs.cartpole import CartPoleEnv

    return CartPoleEnv(**kwargs)


class _NaNEnv(gym.Env[np.ndarray, np.ndarray]):
    """Terminates every step; the observation is NaN after the second step."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        return np.full(2, np.nan if self.t >= 2 else 0.0), 0.0, True, False, {}


def test_hanging_start_pendulum_seeded() -> None:
    env = HangingStart(PendulumEnv(), angle_index=0, noise=0.05, velocity_noise=0.2)
    states = []
    for seed in (1, 1, 2):
        obs, _ = env.reset(seed=seed)
        theta, theta_dot = env.unwrapped.state
        assert abs(theta - np.pi) <= 0.05 and abs(theta_dot) <= 0.2
        np.testing.assert_allclose(obs, [np.cos(theta), np.sin(theta), theta_dot], rtol=1e-6)
        states.append(env.unwrapped.state.copy())
    np.testing.assert_array_equal(states[0], states[1])
    assert not np.array_equal(states[0], states[2])
    env.reset()  # unseeded resets continue the same generator
    assert not np.array_equal(env.unwrapped.state, states[2])


def test_hanging_start_keeps_velocity_without_velocity_noise() -> None:
    plain, hanging = PendulumEnv(), HangingStart(PendulumEnv(), angle_index=0, noise=0.0)
    plain.reset(seed=5)
    hanging.reset(seed=5)
    assert hanging.unwrapped.state[0] == pytest.approx(np.pi)
    assert hanging.unwrapped.state[1] == plain.state[1]


def test_hanging_start_reapplies_observation_wrappers_below() -> None:
    env = HangingStart(AngleToCosSin(_cartpole(), angle_index=2), angle_index=1, noise=0.1)
    obs, _ = env.reset(seed=0)
    theta = env.unwrapped.data.qpos[1]
    assert abs(theta - np.pi) <= 0.1
    np.testing.assert_allclose(obs[2:4], [np.cos(theta), np.sin(theta)])
    assert obs in env.observation_space


def test_upright_reward_chain_is_mean_cos_of_cumulative_angles() -> None:
    pytest.importorskip("mujoco")
    from gymnasium.envs.mujoco.inverted_double_pendulum_v5 import InvertedDoublePendulumEnv

    env = UprightReward(InvertedDoublePendulumEnv(), angle_indices=(1, 2))
    env.reset(seed=0)
    env.unwrapped.set_state(np.array([0.0, np.pi / 2, -np.pi / 2]), np.zeros(3))
    assert env.upright() == pytest.approx(0.5)  # first link horizontal, second upright: tip at half height
    _, reward, _, _, info = env.step(np.zeros(1, dtype=np.float32))
    qpos = env.unwrapped.data.qpos
    assert reward == pytest.approx((np.cos(qpos[1]) + np.cos(qpos[1] + qpos[2])) / 2)
    assert "original_reward" in info


def test_no_upright_termination_drops_only_the_pole_fell_signal() -> None:
    base_env = _cartpole()
    base_env.reset(seed=0)
    terminated = [base_env.step(np.ones(1, dtype=np.float32))[2] for _ in range(100)]
    assert any(terminated)  # the base task terminates when the pole leaves +-0.2 rad
    env = NoUprightTermination(_cartpole())
    env.reset(seed=0)
    results = [env.step(np.ones(1, dtype=np.float32)) for _ in range(100)]
    assert not any(r[2] for r in results)
    assert any(r[4]["upright_terminated"] for r in results)

    nan_env = NoUprightTermination(_NaNEnv())
    nan_env.reset(seed=0)
    assert nan_env.step(np.zeros(1, dtype=np.float32))[2] is False
    assert nan_env.step(np.zeros(1, dtype=np.float32))[2] is True  # non-finite state still terminates


def test_angle_to_cos_sin_space_and_values() -> None:
    env = AngleToCosSin(PendulumEnv(), angle_index=-1)  # treat theta_dot as an angle: checks placement
    assert env.observation_space.shape == (4,)
    np.testing.assert_array_equal(env.observation_space.low, [-1, -1, -1, -1])
    np.testing.assert_array_equal(env.observation_space.high, [1, 1, 1, 1])
    assert env.observation_space.dtype == np.float32
    obs, _ = env.reset(seed=0)
    theta_dot = env.unwrapped.state[1]
    np.testing.assert_allclose(obs[2:], [np.cos(theta_dot), np.sin(theta_dot)], rtol=1e-6)
    assert obs in env.observation_space and obs.dtype == np.float32


def test_registered_cartpole_is_the_wrapper_stack() -> None:
    _cartpole()
    env = gym.make("rl_adaloss/CartPoleSwingUp-v0")
    names = []
    current: gym.Env = env
    while isinstance(current, gym.Wrapper):
        names.append(type(current).__name__)
        current = current.env
    assert names[-4:] == ["AngleToCosSin", "UprightReward", "NoUprightTermination", "HangingStart"]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: HangingStart(PendulumEnv(), angle_index=0, noise=-0.5), "noise value: -0.5"),
        (lambda: HangingStart(PendulumEnv(), angle_index=0, noise=float("nan")), "noise value: nan"),
        (lambda: HangingStart(PendulumEnv(), angle_index=0, velocity_noise=-1.0), "velocity_noise value: -1.0"),
        (lambda: HangingStart(PendulumEnv(), angle_index=3), "angle_index value: 3"),
        (lambda: UprightReward(PendulumEnv(), angle_indices=()), r"angle_indices value: \(\)"),
        (lambda: UprightReward(PendulumEnv(), angle_indices=(0, 7)), "angle_indices value: 7"),
        (lambda: AngleToCosSin(PendulumEnv(), angle_index=3), "angle_index value: 3"),
        (lambda: AngleToCosSin(gym.make("FrozenLake-v1"), angle_index=0), "observation space: Discrete"),
    ],
)
def test_invalid_arguments_raise_value_error(make: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_unsupported_physics_raises_type_error() -> None:
    with pytest.raises(TypeError, match="CartPoleEnv"):
        HangingStart(gym.make("CartPole-v1"), angle_index=0)


def test_scale_reward_wrapper() -> None:
    from rl_adaloss.envs import ScaleReward

    env, scaled = PendulumEnv(), ScaleReward(PendulumEnv(), scale=100.0)
    env.reset(seed=3)
    scaled.reset(seed=3)
    for _ in range(5):
        action = np.array([0.5], dtype=np.float32)
        obs, reward, *_ = env.step(action)
        obs2, reward2, *_ = scaled.step(action)
        np.testing.assert_array_equal(obs, obs2)
        assert reward2 == pytest.approx(100.0 * reward, rel=1e-12)
    for bad in (0.0, -1.0, math.inf, math.nan, True):
        with pytest.raises(ValueError, match="scale"):
            ScaleReward(PendulumEnv(), scale=bad)  # type: ignore[arg-type]
