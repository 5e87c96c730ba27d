"""One seeded training run: build the agent, train with evaluation, save everything, never raise.

The run's folder (its lock, reading its files, refusing to replace a finished run) is
:mod:`rl_adaloss.experiment.run_folder`; its names are also importable from here.
"""

from __future__ import annotations

import math
import os
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rl_adaloss.experiment.config import RunConfig, resolve_agent_config, run_dir_name
from rl_adaloss.experiment.identity import EVAL_SEED_OFFSET, clear_run_files, config_hash, resolve_run, source_digest
from rl_adaloss.experiment.numerics import numerics_record, pin_cpu_numerics
from rl_adaloss.experiment.run_folder import (
    FINAL_STATUSES,
    RunBusyError,
    RunExistsError,
    check_run_dir,
    hold_run_lock,
    lock_path,
    read_config,
    read_result,
    run_is_busy,
    write_json_atomic,
)

if TYPE_CHECKING:
    from rl_adaloss.agents import AgentConfig

__all__ = [
    "EVAL_SEED_OFFSET",
    "FINAL_STATUSES",
    "RunBusyError",
    "RunExistsError",
    "check_run_dir",
    "hold_run_lock",
    "lock_path",
    "read_config",
    "read_result",
    "run_is_busy",
    "run_one",
    "write_json_atomic",
]


def _is_nan_error(err: BaseException) -> bool:
    text = str(err).lower()
    return isinstance(err, ValueError) and ("nan" in text or "inf" in text or "invalid values" in text)


def _params_finite(model: Any, *, grads: bool = False) -> bool:
    """Whether every parameter of the policy (and, with ``grads``, every gradient it holds) is finite."""
    import torch

    tensors = [t for p in model.policy.parameters() for t in ((p, p.grad) if grads else (p,)) if t is not None]
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def _diverged(err: BaseException, model: Any) -> bool:
    """Whether a training error means divergence rather than a bug.

    It does for SB3's NaN ``ValueError``, and for any error raised while the policy's parameters or gradients are
    non-finite (DoG, for one, asserts on a NaN gradient norm).
    """
    return _is_nan_error(err) or not _params_finite(model, grads=True)


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


def _train(
    config: RunConfig,
    agent: AgentConfig,
    run_dir: Path,
    record: dict[str, Any],
    progress: bool = False,
    resume: dict[str, Any] | None = None,
) -> None:
    """Build ``agent`` (the run's, resolved), train it (from the checkpoint ``resume`` if given), evaluate and save.

    Fills ``record`` as it goes.
    """
    from stable_baselines3.common.callbacks import CallbackList, EvalCallback
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.vec_env import sync_envs_normalization

    from rl_adaloss.agents import build_agent, make_vec_env_for
    from rl_adaloss.experiment.checkpoint import CHECKPOINT_NAME, Checkpointer, restore_checkpoint
    from rl_adaloss.experiment.progress import TrainingProgress
    from rl_adaloss.sb3 import OptimizerLogger

    model = build_agent(agent)
    agent = replace(agent, device=str(model.device))  # as make_agent: the device the model is on
    agent_dict = agent.to_dict()
    n_timesteps = int(record["config"]["identity"]["n_timesteps"])
    record["config"].update(agent=agent_dict, n_timesteps_resolved=n_timesteps)
    write_json_atomic(run_dir / "config.json", record["config"])
    if resume is not None and (run_dir / "progress.csv").exists():  # SB3's CSV logger would truncate it
        os.replace(run_dir / "progress.csv", run_dir / f"progress.before-resume-{resume['num_timesteps']}.csv")
    model.set_logger(configure(str(run_dir), ["tensorboard", "csv"]))
    if resume is None:
        _log_hparams(model, config, agent_dict)

    eval_env = make_vec_env_for(
        config.env, 1, config.seed + EVAL_SEED_OFFSET, normalize=agent.normalize,
        gamma=float(agent.hyperparams.get("gamma", 0.99)), env_kwargs=agent.env_kwargs, training=False,
        env_wrapper=agent.env_wrapper,
    )  # fmt: skip
    eval_cb = EvalCallback(
        eval_env, n_eval_episodes=config.eval_episodes, eval_freq=max(config.eval_freq // agent.n_envs, 1),
        log_path=str(run_dir), deterministic=True, verbose=0,
    )  # fmt: skip
    callbacks = [OptimizerLogger(), eval_cb]
    if resume is not None:
        record["resume_note"] = restore_checkpoint(resume, model, eval_env, callbacks)
        record["resumed_from"] = [*resume.get("resumed_from", []), int(model.num_timesteps)]
    meta = {"config_hash": record["config_hash"], "resumed_from": record["resumed_from"], "wall_time_s": record["clock"]}
    checkpointer = Checkpointer(run_dir / CHECKPOINT_NAME, config.checkpoint_freq, eval_env, list(callbacks), meta)
    callbacks.append(checkpointer)
    if progress:
        callbacks.append(TrainingProgress(n_timesteps, eval_cb, desc=run_dir.name))
    try:
        if model.num_timesteps < n_timesteps:
            model.learn(
                n_timesteps - model.num_timesteps, callback=CallbackList(callbacks), reset_num_timesteps=resume is None
            )
    except Exception as err:
        if not _diverged(err, model):
            raise
        record["status"], record["error"] = "diverged", f"{type(err).__name__}: {err}".splitlines()[0]
    finally:
        steps, means, stds = _curve(eval_cb)
        record["checkpoints"] = checkpointer.summary()
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
        name = f"{config.env.replace('/', '-')}__{config.algo}__{config.optimizer.replace(':', '.')}__s{config.seed}"
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
    try:
        identity: dict[str, Any] | None = resolve_run(config)
    except Exception:  # recorded without a hash: a resumed sweep then treats it as a changed run
        identity = None
    digest = None if identity is None else config_hash(identity)
    if not (run_dir / "config.json").exists():
        write_json_atomic(run_dir / "config.json", {**asdict(config), "run_dir": run_dir.name, "config_hash": digest,
                                                   "identity": identity})  # fmt: skip
    result = {**_blank_result(run_dir), "status": "failed", "error": error, "wall_time_s": None, "config_hash": digest}
    write_json_atomic(run_dir / "result.json", result)
    return result


def run_one(config: RunConfig, *, overwrite: bool = False, progress: bool = False) -> dict[str, Any]:
    """Train one seeded run into ``<log_folder>/<run_dir_name(config)>`` and return its result.

    The folder gets ``config.json`` (every ``RunConfig`` field, the resolved agent, the CPU numerics in effect
    (:func:`~rl_adaloss.experiment.numerics.numerics_record`), the run's ``identity`` and its ``config_hash``),
    TensorBoard events (rollout/, train/, eval/, optim/, hparams), ``progress.csv``,
    ``evaluations.npz`` and ``eval.csv`` (timesteps, mean, std), ``model.zip`` (+ ``vecnormalize.pkl``) and, last and
    atomically, ``result.json`` with ``status`` in ``ok`` / ``diverged`` (NaN/inf in training) / ``failed`` (any
    other exception, its message in ``error``) and the ``config_hash``. Training errors never raise.

    While training, ``checkpoint.pkl`` is written every ``config.checkpoint_freq`` env steps; it is deleted once an
    ``ok`` or ``diverged`` ``result.json`` is written (a ``failed`` run keeps it). An unfinished run (no final
    ``result.json``) whose folder holds a checkpoint of the same configuration continues from it; ``result.json``
    then lists the steps it resumed from in ``resumed_from`` and says in ``resume_note`` why, if at all, the
    continuation is not exactly the uninterrupted run's (docs/checkpoints.md).

    Args:
        config: the run.
        overwrite: replace a finished run in the folder (only the run's own files are deleted, never others).
        progress: show a progress bar (env steps, fps, latest evaluation return).

    Returns:
        The result dict (also written to ``result.json``).

    Raises:
        RunExistsError: before anything is written, when the folder holds a finished run (or files no run wrote)
            and ``overwrite`` is False.
        RunBusyError: before anything is written, when another process is running this run now
            (:func:`hold_run_lock`).
    """
    pin_cpu_numerics()  # effective if torch has not computed yet in this process (numerics_record says)
    with hold_run_lock(_run_dir(config)[0]):
        return _run_one_locked(config, overwrite, progress)


def _run_one_locked(config: RunConfig, overwrite: bool, progress: bool) -> dict[str, Any]:
    import torch

    torch.set_num_threads(config.torch_threads)
    start = time.perf_counter()
    run_dir, run_dir_err = _run_dir(config)
    agent: AgentConfig | None = None
    identity: dict[str, Any] | None = None
    try:
        agent = resolve_agent_config(config)
        identity = resolve_run(config, agent)
    except Exception as err:  # a config that does not resolve becomes a 'failed' result below
        run_dir_err = run_dir_err or err
    check_run_dir(run_dir, identity, overwrite)
    digest = None if identity is None else config_hash(identity)
    resume, note = None, None
    if not overwrite and run_dir_err is None and read_result(run_dir) is None:  # an unfinished run: resumable?
        from rl_adaloss.experiment.checkpoint import CHECKPOINT_NAME, load_checkpoint

        resume, note = load_checkpoint(run_dir / CHECKPOINT_NAME, digest)
    if resume is None:
        clear_run_files(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = _blank_result(run_dir)
    prior = float(resume["wall_time_s"]) if resume is not None else 0.0
    record.update(resumed_from=[], resume_note=note, clock=lambda: prior + time.perf_counter() - start)
    record["config"] = {**asdict(config), "run_dir": run_dir.name, "torch": torch.__version__, "source": source_digest(),
                        "numerics": numerics_record(), "config_hash": digest,
                        "identity": identity}  # fmt: skip
    record["config_hash"] = digest
    try:
        if run_dir_err is not None:
            raise run_dir_err
        assert agent is not None  # resolved, or run_dir_err says why not
        _train(config, agent, run_dir, record, progress, resume)
    except Exception as err:  # one run's crash is recorded, the sweep goes on
        record["status"] = "failed"
        record["error"] = f"{type(err).__name__}: {err}"
        record["traceback"] = traceback.format_exc()
        if not (run_dir / "config.json").exists():
            write_json_atomic(run_dir / "config.json", record["config"])
    record["wall_time_s"] = record.pop("clock")()
    result = {k: v for k, v in record.items() if k != "config"}
    write_json_atomic(run_dir / "result.json", result)
    if result["status"] != "failed":  # finished: never needed again (a failed run keeps it for --retry-failed)
        (run_dir / "checkpoint.pkl").unlink(missing_ok=True)
    return result
