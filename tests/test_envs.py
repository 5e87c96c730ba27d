"""Tests for the registered swing-up tasks: env checkers, seeding, hanging start, and a swing-up controller."""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest

from rl_adaloss import envs
from rl_adaloss.envs import (
    BULLET_SWINGUP_ID,
    CARTPOLE_SWINGUP_ID,
    DOUBLE_PENDULUM_SWINGUP_ID,
    PENDULUM_SWINGUP_ID,
    SWINGUP_IDS,
    ensure_registered,
    make_env,
)

Policy = Callable[[np.ndarray], np.ndarray]


def _require(env_id: str) -> None:
    """Skip when the extra an id needs is not installed."""
    if env_id in (CARTPOLE_SWINGUP_ID, DOUBLE_PENDULUM_SWINGUP_ID):
        pytest.importorskip("mujoco", reason="needs the mujoco extra: pip install 'rl-adaloss[mujoco]'")
    if env_id == BULLET_SWINGUP_ID:
        pytest.importorskip("pybullet_envs_gymnasium", reason="needs the bullet extra: pip install 'rl-adaloss[bullet]'")


ALL_IDS = [*SWINGUP_IDS, BULLET_SWINGUP_ID]


def _rollout(env: gym.Env, policy: Policy, seed: int, steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Run one episode (or ``steps`` steps); return the stacked observations (incl. the first) and rewards."""
    obs, _ = env.reset(seed=seed)
    observations, rewards = [obs], []
    for _ in range(steps or env.spec.max_episode_steps):
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        observations.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            break
    return np.array(observations), np.array(rewards)


def _zero(env: gym.Env) -> Policy:
    return lambda obs: np.zeros(env.action_space.shape, dtype=np.float32)


def test_import_is_light() -> None:
    code = "import sys, rl_adaloss; print(any(m.split('.')[0] in ('mujoco', 'pybullet') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=".")
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("env_id", "steps"), [(PENDULUM_SWINGUP_ID, 200), (CARTPOLE_SWINGUP_ID, 1000), (DOUBLE_PENDULUM_SWINGUP_ID, 1000)]
)
def test_registered(env_id: str, steps: int) -> None:
    spec = gym.spec(env_id)
    assert spec.namespace == "rl_adaloss" and spec.version == 0
    assert spec.max_episode_steps == steps
    assert isinstance(spec.entry_point, str)  # string entry points keep mujoco unimported
    envs.register_envs()  # idempotent
    assert gym.spec(env_id) is spec


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_gymnasium_and_sb3_check_env(env_id: str) -> None:
    _require(env_id)
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings():
        # check_env warns that the made env is wrapped: our tasks are wrapper stacks, so that is intended.
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version.*")
        warnings.filterwarnings("ignore", message=".*observation space (minimum|maximum) value is.*infinity.*")
        warnings.filterwarnings("ignore", message=".*symmetric and normalized.*")
        check_env(make_env(env_id), skip_render_check=True)
        sb3_check_env(make_env(env_id), warn=True)


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_same_seed_same_trajectory(env_id: str) -> None:
    _require(env_id)
    env = make_env(env_id)
    env.action_space.seed(7)
    actions = [env.action_space.sample() for _ in range(60)]

    def replay(seed: int) -> tuple[np.ndarray, np.ndarray]:
        it = iter(actions)
        return _rollout(env, lambda obs: next(it), seed=seed, steps=len(actions))

    obs_a, rew_a = replay(3)
    obs_b, rew_b = replay(3)
    obs_c, _ = replay(4)
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(rew_a, rew_b)
    assert not np.allclose(obs_a[0], obs_c[0])


def _hanging_cos(env_id: str, obs: np.ndarray) -> float:
    """cos of the (first) pole angle, 1 upright and -1 hanging, from each task's observation."""
    if env_id == PENDULUM_SWINGUP_ID:
        return float(obs[0])
    if env_id == DOUBLE_PENDULUM_SWINGUP_ID:
        return float(obs[3])
    return float(obs[2])


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_episodes_start_hanging_and_zero_action_stays_down(env_id: str) -> None:
    _require(env_id)
    env = make_env(env_id)
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        assert _hanging_cos(env_id, obs) < np.cos(np.pi - 0.1) + 1e-6
    observations, rewards = _rollout(env, _zero(env), seed=0)
    assert len(rewards) == env.spec.max_episode_steps  # no early termination
    assert max(_hanging_cos(env_id, o) for o in observations) < -0.9
    if env_id != PENDULUM_SWINGUP_ID:
        assert rewards.max() < -0.9  # cos-type reward stays near -1 while hanging


@pytest.mark.parametrize("env_id", [CARTPOLE_SWINGUP_ID, DOUBLE_PENDULUM_SWINGUP_ID, BULLET_SWINGUP_ID])
def test_reward_bounds(env_id: str) -> None:
    _require(env_id)
    env = make_env(env_id)
    env.action_space.seed(0)
    _, rewards = _rollout(env, lambda obs: env.action_space.sample(), seed=0, steps=300)
    assert np.all(rewards >= -1.0) and np.all(rewards <= 1.0)


def test_double_pendulum_reward_is_tip_height() -> None:
    _require(DOUBLE_PENDULUM_SWINGUP_ID)
    env = make_env(DOUBLE_PENDULUM_SWINGUP_ID)
    env.reset(seed=0)
    env.action_space.seed(0)
    import mujoco

    model, data = env.unwrapped.model, env.unwrapped.data
    for _ in range(200):
        _, reward, terminated, _, info = env.step(env.action_space.sample())
        mujoco.mj_kinematics(model, data)  # site positions after mj_step lag by one MuJoCo step
        tip = data.site("tip")
        assert reward == pytest.approx(tip.xpos[2] / 1.2, abs=1e-9)  # two 0.6 m links
        assert not terminated
    assert "upright_terminated" in info


# --- swing-up controllers: energy pumping far from upright, linear feedback near it -----------------


def _pendulum_policy(obs: np.ndarray) -> np.ndarray:
    cos, sin, theta_dot = obs
    theta = np.arctan2(sin, cos)
    if cos > 0.85:  # PD around upright: theta_ddot = 15 sin(theta) + 3 u
        u = -(10.0 * theta + 2.0 * theta_dot)
    else:  # pump energy E = theta_dot^2 / 2 + 15 (cos - 1) towards 0 (upright at rest): dE/dt = 3 u theta_dot
        energy = 0.5 * theta_dot**2 + 15.0 * (cos - 1.0)
        u = -2.0 * energy * theta_dot
    return np.clip(np.array([u], dtype=np.float32), -2.0, 2.0)


def _cartpole_lqr_gain() -> np.ndarray:
    """Discrete LQR gain for [x, theta, x_dot, theta_dot] from a finite-difference linearisation at upright."""
    from rl_adaloss.envs.cartpole import CartPoleEnv

    base = CartPoleEnv()

    def f(state: np.ndarray, u: float) -> np.ndarray:
        base.set_state(state[:2].copy(), state[2:].copy())
        base.do_simulation(np.array([u]), base.frame_skip)
        return np.concatenate([base.data.qpos, base.data.qvel])

    eps, zero = 1e-5, np.zeros(4)
    a = np.stack([(f(zero + eps * e, 0.0) - f(zero - eps * e, 0.0)) / (2 * eps) for e in np.eye(4)], axis=1)
    b = ((f(zero, eps) - f(zero, -eps)) / (2 * eps))[:, None]
    q, r, p = np.diag([1.0, 20.0, 0.1, 0.1]), np.eye(1), np.diag([1.0, 20.0, 0.1, 0.1])
    for _ in range(2000):  # Riccati iteration
        k = np.linalg.solve(r + b.T @ p @ b, b.T @ p @ a)
        p = q + a.T @ p @ (a - b @ k)
    return k


def _cartpole_policy(gain: np.ndarray) -> Policy:
    def policy(obs: np.ndarray) -> np.ndarray:
        x, x_dot, cos, sin, theta_dot = (float(v) for v in obs)
        if cos > 0.85:
            u = -float((gain @ np.array([x, np.arctan2(sin, cos), x_dot, theta_dot]))[0])
        else:  # pole energy (J = 0.6, m g l_c = 5 * 9.81 * 0.3); dE/dt = -m l_c a theta_dot cos: push with E theta_dot cos
            energy = 0.5 * 0.6 * theta_dot**2 + 14.7 * (cos - 1.0)
            u = 0.15 * energy * theta_dot * cos - 0.5 * x - 0.2 * x_dot
        return np.clip(np.array([u], dtype=np.float32), -1.0, 1.0)

    return policy


def test_pendulum_controller_swings_up_and_balances() -> None:
    env = make_env(PENDULUM_SWINGUP_ID)
    for seed in range(3):
        observations, rewards = _rollout(env, _pendulum_policy, seed=seed)
        assert observations[0][0] < -0.99  # started hanging
        assert rewards[-100:].max() < 1e-9 and rewards[-100:].min() > -1e-3  # upright (reward 0) for 100 steps
        assert np.all(observations[-100:, 0] > 0.999)


@pytest.mark.parametrize("env_id", [CARTPOLE_SWINGUP_ID, BULLET_SWINGUP_ID])
def test_cartpole_controller_swings_up_and_balances(env_id: str) -> None:
    """The same controller (gain from our MuJoCo model) solves the MuJoCo port and the Bullet task."""
    _require(CARTPOLE_SWINGUP_ID)
    _require(env_id)
    env = make_env(env_id)
    policy = _cartpole_policy(_cartpole_lqr_gain())
    for seed in range(2):
        observations, rewards = _rollout(env, policy, seed=seed)
        assert len(rewards) == 1000
        assert rewards[0] < -0.99  # hanging at first
        assert rewards[-500:].min() > 0.99  # upright for the last 500 steps (10 s)
        assert rewards.sum() > 800  # Bullet task's reward_threshold
        assert np.abs(observations[:, 0]).max() < 1.1  # the cart stays on its +-1 m rail


def test_make_env_names_missing_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    missing = {"mujoco", "pybullet_envs_gymnasium"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in missing else real_find_spec(name, *a))
    with pytest.raises(ImportError, match=r"pip install 'rl-adaloss\[mujoco\]'"):
        make_env(CARTPOLE_SWINGUP_ID)
    with pytest.raises(ImportError, match=r"pip install 'rl-adaloss\[mujoco\]'"):
        gym.make(DOUBLE_PENDULUM_SWINGUP_ID)  # the entry point checks too
    with pytest.raises(ImportError, match=r"pip install 'rl-adaloss\[mujoco\]'"):
        ensure_registered("InvertedPendulum-v5")
    with pytest.raises(ImportError, match=r"pip install 'rl-adaloss\[bullet\]'"):
        ensure_registered("NotYetRegisteredBulletEnv-v0")
    make_env(PENDULUM_SWINGUP_ID)  # needs no extra


def test_make_env_registers_bullet_id() -> None:
    _require(BULLET_SWINGUP_ID)
    env = make_env(BULLET_SWINGUP_ID)
    assert env.spec.id == BULLET_SWINGUP_ID and env.spec.max_episode_steps == 1000
