"""The SB3 algorithms a preset can name, and a preset's hyperparameters checked against the algorithm's signature.

:func:`merge_preset` applies a run's overrides to its preset; :func:`check_keys` and :func:`coerce_hyperparam` check
each key and value against the algorithm's keyword arguments and their defaults (SB3's), so that a typo or a wrong type
is an error naming the key, never a silent drop. Used by :mod:`rl_adaloss.agents.factory`.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm

from .presets import find_preset, parse_python_kwargs

__all__ = [
    "ALGOS",
    "FACTORY_KEYS",
    "SCHEDULE_KEYS",
    "SET_BY_FACTORY",
    "UNSUPPORTED",
    "algo_class",
    "algo_defaults",
    "check_keys",
    "coerce_hyperparam",
    "merge_preset",
    "resolve_eta0",
]

# The algorithms a preset (agents/<algo>.yml, RL Zoo) or a run can name: ``package:Class``.
ALGOS: dict[str, str] = {
    "ppo": "stable_baselines3:PPO",
    "a2c": "stable_baselines3:A2C",
    "sac": "stable_baselines3:SAC",
    "td3": "stable_baselines3:TD3",
    "ddpg": "stable_baselines3:DDPG",
    "dqn": "stable_baselines3:DQN",
    "tqc": "sb3_contrib:TQC",
    "crossq": "sb3_contrib:CrossQ",
    "qrdqn": "sb3_contrib:QRDQN",
    "trpo": "sb3_contrib:TRPO",
    "ppo_lstm": "sb3_contrib:RecurrentPPO",
    "ppo_mask": "sb3_contrib:MaskablePPO",
}
# Preset keys the factory applies itself (RL Zoo's and this package's), not keyword arguments of the algorithm.
FACTORY_KEYS = (
    "n_envs", "n_timesteps", "policy", "normalize", "noise_type", "noise_std", "env_kwargs", "ent_coef_optimizer",
    "kl_adaptive_lr", "env_wrapper",
)  # fmt: skip
# RL Zoo keys the factory cannot honour: an error naming the key, never a silent drop.
UNSUPPORTED = {
    "frame_stack": "frame stacking",
    "callback": "RL Zoo callbacks",
    "vec_env_wrapper": "VecEnv wrappers",
    "replay_buffer_class": "custom replay buffers (e.g. HER)",
    "rollout_buffer_class": "custom rollout buffers",
    "model_class": "HER",
    "n_sampled_goal": "HER",
    "goal_selection_strategy": "HER",
    "online_sampling": "HER",
    "max_episode_length": "HER",
}
# Keyword arguments the run sets (its own options), never a preset.
SET_BY_FACTORY = ("policy_kwargs.optimizer_class", "seed", "device", "tensorboard_log", "verbose", "env")
# Keys that take RL Zoo's ``lin_<value>`` schedules.
SCHEDULE_KEYS = ("learning_rate", "clip_range", "clip_range_vf", "delta_std")


def algo_class(algo: str) -> type[BaseAlgorithm]:
    """The algorithm's class (imported on first use), or a ValueError naming the valid algorithms."""
    try:
        module, name = ALGOS[algo].split(":")
    except KeyError:
        raise ValueError(f"Invalid algo: {algo!r} (valid: {', '.join(sorted(ALGOS))})") from None
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


@functools.cache
def algo_defaults(algo: str) -> dict[str, Any]:
    """The algorithm's keyword arguments and their defaults (``inspect.Parameter.empty`` when required)."""
    params = inspect.signature(algo_class(algo).__init__).parameters
    return {k: p.default for k, p in params.items() if k not in ("self", "policy", "env", "_init_setup_model")}


def merge_preset(algo: str, env_id: str, overrides: dict[str, Any] | None) -> tuple[dict[str, Any], str]:
    """The preset with ``overrides`` applied (``policy_kwargs`` merged; a ``None`` override drops the key)."""
    preset = find_preset(algo, env_id)
    merged = preset.hyperparams
    for key, value in (overrides or {}).items():
        if value is None:
            merged.pop(key, None)
        elif key == "policy_kwargs":
            old = parse_python_kwargs(merged.get("policy_kwargs")) or {}
            new = parse_python_kwargs(value)
            if not isinstance(new, dict):
                raise ValueError(f"Invalid hyperparams value policy_kwargs={value!r}: expected a mapping")
            merged["policy_kwargs"] = {**old, **new}
        else:
            merged[key] = value
    for key in merged:
        if key in UNSUPPORTED:
            raise ValueError(
                f"Invalid preset key {key!r} for {algo} on {env_id} (from {preset.source}): this factory does not apply "
                f"{UNSUPPORTED[key]}; choose another env or pass '{key}=null' in hyperparams to run without it"
            )
    return merged, preset.source


def check_keys(algo: str, hyperparams: dict[str, Any]) -> None:
    """Raise a ValueError naming the first key the algorithm does not take (with the closest valid key, if any)."""
    valid = [k for k in algo_defaults(algo) if k not in SET_BY_FACTORY and k not in UNSUPPORTED]
    for key in hyperparams:
        if key in SET_BY_FACTORY:
            raise ValueError(f"Invalid hyperparams key {key!r} for {algo}: it is set by the run (use its own option)")
        if key not in valid and key not in UNSUPPORTED:
            close = difflib.get_close_matches(key, list(valid) + list(FACTORY_KEYS), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(
                f"Invalid hyperparams key {key!r} for {algo} ({hint}valid: {', '.join(sorted([*valid, *FACTORY_KEYS]))})"
            )


def coerce_hyperparam(algo: str, key: str, value: Any) -> Any:
    """Check ``value`` against the type of SB3's default for ``key`` (numbers given as strings are converted)."""
    default = algo_defaults(algo)[key]
    if isinstance(value, list) and key == "train_freq":
        return tuple(value)
    if key in SCHEDULE_KEYS and isinstance(value, str) and value.startswith("lin_"):
        try:
            float(value[4:])
        except ValueError:
            raise ValueError(f"Invalid hyperparams value {key}={value!r} for {algo}: expected lin_<number>") from None
        return value
    if isinstance(default, bool) or not isinstance(default, (int, float)) or isinstance(value, bool):
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ValueError(f"Invalid hyperparams value {key}={value!r} for {algo}: expected true or false")
        return value
    number = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if not isinstance(number, (int, float)) or (isinstance(default, int) and not float(number).is_integer()):
        kind = "an integer" if isinstance(default, int) else "a number"
        sched = " or lin_<number>" if key in SCHEDULE_KEYS else ""
        raise ValueError(
            f"Invalid hyperparams value {key}={value!r} for {algo}: expected {kind}{sched} (SB3's default: {default})"
        )
    return int(number) if isinstance(default, int) else float(number)


def resolve_eta0(value: Any, lr: float | None) -> tuple[str | float, float]:
    """``(learning_rate as recorded, eta_0)``: an explicit ``lr`` replaces the start value, a ``lin_`` keeps its shape."""
    linear = isinstance(value, str) and value.startswith("lin_")
    eta0 = float(lr if lr is not None else (value[4:] if linear else value))
    return (f"lin_{eta0!r}" if linear else eta0), eta0
