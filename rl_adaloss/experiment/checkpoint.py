"""Periodic, atomic checkpoints of a training run, and resuming a run from its last one (see docs/checkpoints.md).

A checkpoint holds everything that the rest of an SB3 run depends on: the torch state dicts SB3 itself saves (policy,
every optimizer with the loss-driven accumulators, SAC's entropy coefficient), the loss feed's pending loss sum, the
model's counters and last observations, the replay buffer (off-policy), every layer of the training and evaluation
``VecEnv`` (``VecNormalize`` statistics included), the state of each env (wrappers, ``np_random``, physics for MuJoCo
and Gymnasium's classic-control envs), the gSDE noise, the RNG states (Python, NumPy, torch) and the callbacks'
state (the evaluation curve so far). It is written at the start of a rollout, where SB3's ``learn()`` loop resumes.
"""

from __future__ import annotations

import os
import pickle
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_NAME",
    "Checkpointer",
    "checkpoint_state",
    "load_checkpoint",
    "restore_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_NAME = "checkpoint.pkl"
CHECKPOINT_FORMAT = 1
_MODEL_ATTRS = (
    "num_timesteps", "_n_updates", "_episode_num", "_last_obs", "_last_episode_starts", "_last_original_obs",
    "ep_info_buffer", "ep_success_buffer", "_current_progress_remaining", "_n_calls", "action_noise",
)  # fmt: skip
_EVAL_ATTRS = (
    "evaluations_results", "evaluations_timesteps", "evaluations_length", "evaluations_successes", "_is_success_buffer",
    "best_mean_reward", "last_mean_reward",
)  # fmt: skip
_VEC_SKIP = frozenset({"venv", "envs", "class_attributes", "observation_space", "action_space", "metadata", "render_mode"})
_SDE_ATTRS = ("weights_dist", "exploration_mat", "exploration_matrices")


def _is_mujoco(env: Any) -> bool:
    return hasattr(env, "data") and hasattr(env, "model") and hasattr(env, "set_state")


def _env_state(env: Any) -> dict[str, Any]:
    """One gymnasium env: each wrapper's attributes, and its base env's RNG and physics (if we know how to read them)."""
    wrappers = []
    while hasattr(env, "env"):
        wrappers.append({k: v for k, v in vars(env).items() if k != "env"})
        env = env.env
    base: dict[str, Any] = {"_np_random": env._np_random, "_np_random_seed": getattr(env, "_np_random_seed", None)}
    if _is_mujoco(env):
        import mujoco

        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        state = np.empty(mujoco.mj_stateSize(env.model, spec))
        mujoco.mj_getState(env.model, env.data, state, spec)
        return {"wrappers": wrappers, "base": base, "mujoco": state}
    if type(env).__module__.startswith("gymnasium.envs.classic_control."):
        base.update({k: v for k, v in vars(env).items() if k not in ("screen", "clock", "renderer")})
        return {"wrappers": wrappers, "base": base}
    return {"wrappers": wrappers, "base": None, "unsupported": type(env).__qualname__}


def _set_env_state(env: Any, saved: dict[str, Any]) -> None:
    for attrs in saved["wrappers"]:
        vars(env).update(attrs)
        env = env.env
    vars(env).update(saved["base"])
    if "mujoco" in saved:
        import mujoco

        mujoco.mj_setState(env.model, env.data, saved["mujoco"], mujoco.mjtState.mjSTATE_INTEGRATION)


def _vec_state(venv: Any) -> dict[str, Any]:
    """Every ``VecEnv`` layer's attributes (outermost first) and each env's state, or why the envs are not saved."""
    layers, envs = [], None
    while venv is not None:
        layers.append({k: v for k, v in vars(venv).items() if k not in _VEC_SKIP})
        if hasattr(venv, "envs"):
            envs = [_env_state(e) for e in venv.envs]
        venv = getattr(venv, "venv", None)
    unsupported = sorted({e["unsupported"] for e in envs or [] if "unsupported" in e})
    if envs is None or unsupported:
        return {"layers": layers[:-1], "envs": None, "why": f"env state of {', '.join(unsupported) or 'this VecEnv'}"}
    return {"layers": layers, "envs": envs, "why": None}


def _set_vec_state(venv: Any, saved: dict[str, Any]) -> None:
    for attrs in saved["layers"]:
        vars(venv).update(attrs)
        if saved["envs"] is not None and hasattr(venv, "envs"):
            for env, state in zip(venv.envs, saved["envs"], strict=True):
                _set_env_state(env, state)
        venv = getattr(venv, "venv", None)


def _sde_owner(model: Any) -> Any:
    """The object SB3's ``collect_rollouts`` calls ``reset_noise`` on (on-policy: the policy; off-policy: the actor)."""
    return getattr(model, "actor", None) or model.policy


def _replay_state(buffer: Any) -> dict[str, Any] | None:
    """The replay buffer's attributes, arrays cut to the filled part (a 1M buffer 1% full is saved at 1% size)."""
    if buffer is None:
        return None
    size = buffer.buffer_size if buffer.full else buffer.pos
    out: dict[str, Any] = {}
    for key, value in vars(buffer).items():
        if key == "device":
            continue
        if isinstance(value, np.ndarray) and value.ndim and value.shape[0] == buffer.buffer_size:
            value = value[:size]
        elif isinstance(value, dict):  # DictReplayBuffer
            value = {k: v[:size] for k, v in value.items()}
        out[key] = value
    return out


def _set_replay_state(buffer: Any, saved: dict[str, Any]) -> None:
    for key, value in saved.items():
        old = getattr(buffer, key, None)
        if isinstance(old, np.ndarray) and old.ndim and old.shape[0] == buffer.buffer_size:
            old[: len(value)] = value
        elif isinstance(old, dict) and isinstance(value, dict) and all(isinstance(v, np.ndarray) for v in old.values()):
            for k, v in value.items():
                old[k][: len(v)] = v
        else:
            setattr(buffer, key, value)


def checkpoint_state(model: Any, eval_env: Any, callbacks: list[Any], meta: dict[str, Any]) -> dict[str, Any]:
    """Collect a run's whole training state (see the module docstring) into one picklable dict."""
    import torch
    from stable_baselines3.common.utils import get_device

    from rl_adaloss.optim.loss_feed import LossDrivenMixin

    names, variables = model._get_torch_save_params()
    modules = {name: _getattr(model, name) for name in names}
    dist = getattr(_sde_owner(model), "action_dist", None)
    rng: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if get_device(model.device).type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return {
        "format": CHECKPOINT_FORMAT,
        **meta,
        "num_timesteps": int(model.num_timesteps),
        "state_dicts": {name: m.state_dict() for name, m in modules.items()},
        "pending_losses": {name: m._pending_total for name, m in modules.items() if isinstance(m, LossDrivenMixin)},
        "variables": {name: _getattr(model, name).detach().clone() for name in variables},
        "model": {k: getattr(model, k) for k in _MODEL_ATTRS if hasattr(model, k)},
        "action_space_rng": model.action_space._np_random,
        "replay_buffer": _replay_state(getattr(model, "replay_buffer", None)),
        "train_env": _vec_state(model.get_env()),
        "eval_env": _vec_state(eval_env),
        "sde": {k: getattr(dist, k) for k in _SDE_ATTRS if hasattr(dist, k)} if model.use_sde else None,
        "callbacks": [
            {"n_calls": cb.n_calls, **{k: getattr(cb, k) for k in _EVAL_ATTRS if hasattr(cb, k)}} for cb in callbacks
        ],
        "rng": rng,
    }


def _getattr(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def save_checkpoint(path: Path, state: dict[str, Any]) -> int:
    """Write ``state`` to ``path`` atomically (temporary file, ``fsync``, ``os.replace``); return its size in bytes.

    A process killed during the write leaves the previous checkpoint (or none) plus a hidden ``.<name>.tmp<pid>``
    file that nothing reads (and that the run's next write or :func:`~rl_adaloss.experiment.identity.clear_run_files`
    removes).
    """
    import cloudpickle

    data = cloudpickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash of the machine
    finally:
        os.close(dir_fd)
    return len(data)


def load_checkpoint(path: Path, config_hash: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """Read a checkpoint: ``(state, None)``, or ``(None, why not)`` when it is missing, unreadable or another run's.

    Only checkpoints of the same configuration (``config_hash``) and format are used; anything else is ignored, so a
    checkpoint never loads into the wrong run.
    """
    if not path.exists():
        return None, None
    try:
        state = pickle.loads(path.read_bytes())
    except Exception as err:  # a checkpoint that does not load is ignored: the run starts from step 0
        return None, f"unreadable checkpoint ignored ({type(err).__name__}: {err})"
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        return None, "checkpoint of another format ignored"
    if config_hash is None or state.get("config_hash") != config_hash:
        return None, f"checkpoint of another configuration ignored ({state.get('config_hash')} != {config_hash})"
    return state, None


def restore_checkpoint(state: dict[str, Any], model: Any, eval_env: Any, callbacks: list[Any]) -> str | None:
    """Load ``state`` into a freshly built ``model`` (same configuration), its eval env and callbacks, in place.

    Returns:
        None when the resumed run continues exactly as the checkpointed one would have; otherwise why not (the
        training envs' state could not be saved, so they start new episodes from a seeded reset).
    """
    import torch

    from rl_adaloss.optim.loss_feed import LossDrivenMixin

    for name, sd in state["state_dicts"].items():
        module = _getattr(model, name)
        module.load_state_dict(sd)
        if isinstance(module, LossDrivenMixin):
            module._pending_total = state["pending_losses"].get(name)
    with torch.no_grad():
        for name, value in state["variables"].items():
            _getattr(model, name).copy_(value)
    for key, value in state["model"].items():
        setattr(model, key, value)
    model.action_space._np_random = state["action_space_rng"]
    if state["replay_buffer"] is not None:
        _set_replay_state(model.replay_buffer, state["replay_buffer"])
    _set_vec_state(model.get_env(), state["train_env"])
    _set_vec_state(eval_env, state["eval_env"])
    inexact = [f"{what}: {state[key]['why']} not saved" for key, what in (("train_env", "training envs"),
               ("eval_env", "evaluation env")) if state[key]["why"]]  # fmt: skip
    if state["train_env"]["envs"] is None:
        model._last_obs = None  # learn() resets the fresh envs
    for cb, saved in zip(callbacks, state["callbacks"], strict=True):
        vars(cb).update(saved)
    if state["sde"] is not None:
        _skip_next_noise_draw(_sde_owner(model), state["sde"])
    random.setstate(state["rng"]["python"])
    np.random.set_state(state["rng"]["numpy"])
    torch.set_rng_state(state["rng"]["torch"])
    if "cuda" in state["rng"]:
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return "; ".join(inexact) or None


def _skip_next_noise_draw(owner: Any, sde: dict[str, Any]) -> None:
    """Make the next ``reset_noise`` restore the gSDE noise saved in the checkpoint instead of drawing new noise.

    That call is the one ``collect_rollouts`` makes just before the callback that wrote the checkpoint: its draw is
    already in the saved noise and the saved RNG state, so drawing again would shift every later random number.
    """

    def once(n_envs: int = 1) -> None:
        del owner.reset_noise  # back to the class's method
        vars(owner.action_dist).update(sde)

    owner.reset_noise = once


class Checkpointer(BaseCallback):
    """An SB3 callback that writes a checkpoint at the first rollout start at or after every ``every`` env steps.

    Args:
        path: the checkpoint file (replaced atomically each time).
        every: env steps between checkpoints (summed over the parallel envs); 0 never writes one.
        eval_env: the evaluation env (its RNG and episode state are saved too).
        callbacks: the run's other callbacks, in the order :func:`restore_checkpoint` gets them.
        meta: saved as is, except ``wall_time_s``, a function returning the run's training time so far.
    """

    def __init__(self, path: Path, every: int, eval_env: Any, callbacks: list[Any], meta: dict[str, Any]) -> None:
        super().__init__()
        self.path, self.every, self.eval_env, self.callbacks, self.meta = path, every, eval_env, callbacks, meta
        self.next_at = every
        self.saves: list[tuple[int, int, float]] = []  # (timestep, bytes, seconds) of each checkpoint written

    def _on_training_start(self) -> None:
        self.next_at = (self.model.num_timesteps // self.every + 1) * self.every if self.every else 0

    def _on_rollout_start(self) -> None:
        if not self.every or self.model.num_timesteps < self.next_at:
            return
        start = time.perf_counter()
        meta = {**self.meta, "wall_time_s": self.meta["wall_time_s"]()}
        size = save_checkpoint(self.path, checkpoint_state(self.model, self.eval_env, self.callbacks, meta))
        self.saves.append((int(self.model.num_timesteps), size, time.perf_counter() - start))
        self.next_at = (self.model.num_timesteps // self.every + 1) * self.every

    def _on_step(self) -> bool:
        return True

    def summary(self) -> dict[str, Any]:
        """``every``, ``written`` (by this process), ``max_bytes`` and ``seconds`` (spent writing), for ``result.json``."""
        return {"every": self.every, "written": len(self.saves), "max_bytes": max((b for _, b, _ in self.saves), default=0),
                "seconds": sum(t for _, _, t in self.saves)}  # fmt: skip
