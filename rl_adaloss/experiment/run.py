"""One seeded training run: build the agent, train with evaluation, save everything, never raise."""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from rl_adaloss.experiment.config import RunConfig, parse_hyperparams, resolve_lr, run_dir_name

__all__ = ["EVAL_SEED_OFFSET", "FINAL_STATUSES", "read_result", "run_one", "write_json_atomic"]

FINAL_STATUSES = frozenset({"ok", "diverged", "failed"})
EVAL_SEED_OFFSET = 10_000


class Diverged(RuntimeError):
    """Training produced NaN/inf (loss, distribution parameters or network weights)."""


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and ``os.replace`` (readers never see half)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """Return the run's ``result.json`` if it exists with a final status, else None."""
    try:
        result = json.loads((run_dir / "result.json").read_text())
    except (OSError, ValueError):
        return None
    return result if result.get("status") in FINAL_STATUSES else None


def _is_nan_error(err: BaseException) -> bool:
    text = str(err).lower()
    return isinstance(err, ValueError) and ("nan" in text or "inf" in text or "invalid values" in text)


def _params_finite(model: Any) -> bool:
    import torch

    return all(bool(torch.isfinite(p).all()) for p in model.policy.parameters())


def _curve(eval_cb: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    steps = np.asarray(eval_cb.evaluations_timesteps, dtype=np.int64)
    if len(steps) == 0:
        return steps, np.zeros(0), np.zeros(0)
    results = np.asarray(eval_cb.evaluations_results, dtype=np.float64).reshape(len(steps), -1)
    return steps, results.mean(axis=1), results.std(axis=1)


def summarize_curve(steps: np.ndarray, means: np.ndarray, stds: np.ndarray) -> dict[str, float | None]:
    """Final return (last finite evaluation) and AUC (mean of the finite evaluation means over the curve).

    The AUC is the plain mean of the evaluation returns: evaluations are equally spaced every ``eval_freq`` steps
    plus one at the end of training, so this is the area under the step curve divided by the budget, up to the last
    interval. NaN evaluations (a diverged policy) are ignored; with none finite every value is None.
    """
    finite = np.isfinite(means)
    if not finite.any():
        return {"final_return_mean": None, "final_return_std": None, "auc": None, "final_timestep": None}
    last = int(np.flatnonzero(finite)[-1])
    return {
        "final_return_mean": float(means[last]),
        "final_return_std": float(stds[last]),
        "auc": float(means[finite].mean()),
        "final_timestep": int(steps[last]),
    }


def _write_curve(run_dir: Path, steps: np.ndarray, means: np.ndarray, stds: np.ndarray) -> None:
    lines = ["timesteps,mean,std"] + [f"{t},{m!r},{s!r}" for t, m, s in zip(steps, means.tolist(), stds.tolist())]
    (run_dir / "eval.csv").write_text("\n".join(lines) + "\n")


def _log_hparams(model: Any, config: RunConfig, agent_dict: dict[str, Any]) -> None:
    from stable_baselines3.common.logger import HParam

    hparams: dict[str, Any] = {k: v for k, v in asdict(config).items() if isinstance(v, (int, float, str, bool))}
    hparams.update(lr=agent_dict["lr"], n_envs=agent_dict["n_envs"], hyperparams=" ".join(config.hyperparams))
    hparams = {k: ("None" if v is None else v) for k, v in hparams.items()}
    metrics = {"eval/mean_reward": 0.0, "rollout/ep_rew_mean": 0.0}
    model.logger.record("hparams", HParam(hparams, metrics), exclude=("stdout", "log", "json", "csv"))
    model.logger.dump(0)


def _train(config: RunConfig, run_dir: Path, record: dict[str, Any]) -> None:
    """Build, train, evaluate and save; fills ``record`` (so a failure keeps what was reached)."""
    from stable_baselines3.common.callbacks import CallbackList, EvalCallback
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.vec_env import sync_envs_normalization

    from agents import make_agent, make_vec_env_for
    from rl_adaloss.sb3 import OptimizerLogger

    model, agent = make_agent(
        config.algo, config.env, config.optimizer, resolve_lr(config), b0=config.b0, alpha=config.alpha, c=config.c,
        seed=config.seed, device=config.device, n_envs=config.n_envs, hyperparams=parse_hyperparams(config.hyperparams),
    )  # fmt: skip
    agent_dict = agent.to_dict()
    n_timesteps = int(config.n_timesteps or agent.n_timesteps)
    record["config"].update(agent=agent_dict, n_timesteps_resolved=n_timesteps)
    write_json_atomic(run_dir / "config.json", record["config"])
    model.set_logger(configure(str(run_dir), ["tensorboard", "csv"]))
    _log_hparams(model, config, agent_dict)

    eval_env = make_vec_env_for(
        config.env, 1, config.seed + EVAL_SEED_OFFSET, normalize=agent.normalize,
        gamma=float(agent.hyperparams.get("gamma", 0.99)), env_kwargs=agent.hyperparams.get("env_kwargs"), training=False,
    )  # fmt: skip
    eval_cb = EvalCallback(
        eval_env, n_eval_episodes=config.eval_episodes, eval_freq=max(config.eval_freq // agent.n_envs, 1),
        log_path=str(run_dir), deterministic=True, verbose=0,
    )  # fmt: skip
    try:
        model.learn(n_timesteps, callback=CallbackList([OptimizerLogger(), eval_cb]))
    except ValueError as err:
        if not _is_nan_error(err):
            raise
        record["status"], record["error"] = "diverged", f"{type(err).__name__}: {err}".splitlines()[0]
    finally:
        steps, means, stds = _curve(eval_cb)
    if record["status"] != "diverged" and not _params_finite(model):
        record["status"], record["error"] = "diverged", "non-finite parameters after training"
    if record["status"] != "diverged" and (len(steps) == 0 or steps[-1] != model.num_timesteps):
        train_env = model.get_env()
        assert train_env is not None
        sync_envs_normalization(train_env, eval_env)  # as EvalCallback does before each evaluation
        rewards, _ = evaluate_policy(model, eval_env, config.eval_episodes, deterministic=True, return_episode_rewards=True)
        r = np.asarray(rewards, dtype=np.float64)
        steps, means, stds = np.append(steps, model.num_timesteps), np.append(means, r.mean()), np.append(stds, r.std())
    _write_curve(run_dir, steps, means, stds)
    record.update(summarize_curve(steps, means, stds), num_timesteps=int(model.num_timesteps))
    if record["final_return_mean"] is not None and not math.isfinite(record["final_return_mean"]):
        record["status"] = "diverged"
    model.save(run_dir / "model.zip")
    if model.get_vec_normalize_env() is not None:
        model.get_vec_normalize_env().save(str(run_dir / "vecnormalize.pkl"))  # type: ignore[union-attr]
    model.logger.close()


def _run_dir(config: RunConfig) -> tuple[Path, Exception | None]:
    try:
        return Path(config.log_folder) / run_dir_name(config), None
    except Exception as err:  # an unknown algo/env must become a 'failed' result, not a crash
        name = f"{config.env.replace('/', '-')}__{config.algo}__{config.optimizer}__s{config.seed}"
        return Path(config.log_folder) / name, err


def _blank_result(run_dir: Path) -> dict[str, Any]:
    """A result with no numbers yet: ``status`` ok, every score None (filled in by training, or left as is)."""
    return {"status": "ok", "error": None, "run_dir": run_dir.name, "final_return_mean": None,
            "final_return_std": None, "auc": None, "final_timestep": None, "num_timesteps": 0}  # fmt: skip


def record_failure(config: RunConfig, error: str) -> dict[str, Any]:
    """Write a ``failed`` ``result.json`` (and ``config.json`` if missing) for a run that could not report itself.

    Used by the sweep when the process running ``config`` died (killed by a signal, e.g. out of memory).
    """
    run_dir, _ = _run_dir(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / "config.json").exists():
        write_json_atomic(run_dir / "config.json", {**asdict(config), "run_dir": run_dir.name})
    result = {**_blank_result(run_dir), "status": "failed", "error": error, "wall_time_s": None}
    write_json_atomic(run_dir / "result.json", result)
    return result


def run_one(config: RunConfig) -> dict[str, Any]:
    """Train one seeded run into ``<log_folder>/<run_dir_name(config)>`` and return its result (never raises).

    The folder gets ``config.json``, TensorBoard events (rollout/, train/, eval/, optim/, hparams), ``progress.csv``,
    ``evaluations.npz`` and ``eval.csv`` (timesteps, mean, std), ``model.zip`` (+ ``vecnormalize.pkl``) and, last and
    atomically, ``result.json`` with ``status`` in ``ok`` / ``diverged`` (NaN/inf in training) / ``failed`` (any
    other exception, its message in ``error``). A pre-existing folder is replaced.

    Returns:
        The result dict (also written to ``result.json``).
    """
    import torch

    torch.set_num_threads(config.torch_threads)
    start = time.perf_counter()
    run_dir, run_dir_err = _run_dir(config)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    record: dict[str, Any] = _blank_result(run_dir)
    record["config"] = {**asdict(config), "run_dir": run_dir.name, "torch": torch.__version__}
    try:
        if run_dir_err is not None:
            raise run_dir_err
        _train(config, run_dir, record)
    except Exception as err:  # one run's crash is recorded, the sweep goes on
        record["status"] = "failed"
        record["error"] = f"{type(err).__name__}: {err}"
        record["traceback"] = traceback.format_exc()
        if not (run_dir / "config.json").exists():
            write_json_atomic(run_dir / "config.json", record["config"])
    record["wall_time_s"] = time.perf_counter() - start
    result = {k: v for k, v in record.items() if k != "config"}
    write_json_atomic(run_dir / "result.json", result)
    return result
