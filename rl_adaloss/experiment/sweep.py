"""Run a sweep: skip finished runs, execute the rest on a local process pool or on Ray, rebuild ``results.csv``."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rl_adaloss.experiment.config import RunConfig, optimizer_label, run_dir_name
from rl_adaloss.experiment.identity import clear_run_files, config_hash, diff_fields, foreign_files, resolve_run
from rl_adaloss.experiment.numerics import pin_cpu_numerics
from rl_adaloss.experiment.run import record_failure, run_one
from rl_adaloss.experiment.run_folder import (
    RunBusyError,
    RunExistsError,
    hold_run_lock,
    read_config,
    read_result,
    run_is_busy,
)
from rl_adaloss.experiment.spec import SweepSpec

__all__ = [
    "RESULT_FIELDS",
    "WORKER_DIED",
    "assign_devices",
    "collect_results",
    "default_workers",
    "pending_runs",
    "run_sweep",
    "write_results_csv",
]

RESULT_FIELDS = (
    "status", "final_return_mean", "final_return_std", "auc", "wall_time_s", "num_timesteps", "error", "config_hash",
)  # fmt: skip


def assign_devices(configs: list[RunConfig], device: str, n_gpus: int | None = None) -> list[RunConfig]:
    """Spread runs over GPUs when ``device == "cuda"``: run ``i`` gets ``cuda:{i % n_gpus}``; else unchanged."""
    if device != "cuda":
        return [dataclasses.replace(c, device=device) for c in configs]
    if n_gpus is None:
        import torch

        n_gpus = torch.cuda.device_count()
    if n_gpus < 1:
        raise ValueError("Invalid device: 'cuda' requested but no GPU is visible")
    return [dataclasses.replace(c, device=f"cuda:{i % n_gpus}") for i, c in enumerate(configs)]


def pending_runs(configs: list[RunConfig], retry_failed: bool = False, overwrite: bool = False) -> tuple[list[RunConfig], int]:
    """Return the runs to do and the number skipped.

    A run is done when its folder holds a final ``result.json`` whose ``config_hash`` equals the hash of the run's
    resolved configuration now; a ``failed`` one (a crash, a dead worker) is done too unless ``retry_failed``.
    ``diverged`` is a result, never retried. A finished run whose configuration changed is never reused: without
    ``overwrite`` the sweep is refused with the fields that differ; with it, the run is redone.

    A run that another process is running now (its lock is held, see :func:`~rl_adaloss.experiment.run_folder.hold_run_lock`)
    stays in the list but its files are not touched; :func:`run_sweep` then reports it as ``busy``.

    Everything is checked before anything is deleted. Then, in the folders of the runs to do, a run's own files are
    deleted (never other files): a folder that held a run (its ``config.json``) keeps that file and files no run wrote
    (say, an analysis CSV beside a failed run), so that it stays an unfinished run of ours that :func:`run_one`
    restarts beside them.

    Raises:
        ValueError: finished runs of a different configuration and no ``overwrite``; or folders of runs to do that
            hold files no run wrote and no run of ours (:func:`run_one` would refuse them), named with their files.
    """
    todo: list[RunConfig] = []
    ours: list[bool] = []  # the folder holds a run's config.json: restarted beside whatever else is there
    changed, blocked = [], []
    for config in configs:
        run_dir = Path(config.log_folder) / run_dir_name(config)
        result = read_result(run_dir)
        if result is not None:
            identity = resolve_run(config)
            saved = read_config(run_dir) or {}
            if saved.get("config_hash") != config_hash(identity):
                changed.append((run_dir.name, diff_fields(saved.get("identity"), identity)))
                if not overwrite:
                    continue
            elif not (retry_failed and result["status"] == "failed"):
                continue
        ours.append(read_config(run_dir) is not None)
        foreign = [] if ours[-1] else foreign_files(run_dir)
        if foreign:
            blocked.append(f"{run_dir} ({', '.join(foreign[:5])})")
        todo.append(config)
    if changed and not overwrite:
        fields = sorted({f for _, diff in changed for f in diff})
        raise ValueError(
            f"Invalid sweep folder: {len(changed)} finished run(s) under {Path(configs[0].log_folder)} were made with a "
            f"different configuration (e.g. {changed[0][0]}); differing fields: {'; '.join(fields[:8])}"
            f"{'; ...' if len(fields) > 8 else ''}. Use a new --out folder, or rerun with --overwrite to redo them"
        )
    if blocked:
        raise ValueError(
            f"Invalid sweep folder: {len(blocked)} run folder(s) to write hold files no run wrote: {'; '.join(blocked[:3])}"
            f"{'; ...' if len(blocked) > 3 else ''}. Move those files, or use a new --out folder"
        )
    for config, is_ours in zip(todo, ours):
        run_dir = Path(config.log_folder) / run_dir_name(config)
        if run_is_busy(run_dir):  # another sweep is running it now: its files are left alone (run_one says "busy")
            continue
        if is_ours:  # unfinished now; run_one clears the rest of the run's files and keeps the others
            (run_dir / "result.json").unlink(missing_ok=True)
        else:
            clear_run_files(run_dir)
    return todo, len(configs) - len(todo)


def collect_results(out: str | Path) -> list[dict[str, Any]]:
    """One row per run folder under ``out`` with a final result: every config field plus the result fields."""
    rows = []
    for run_dir in sorted(p for p in Path(out).iterdir() if p.is_dir()):
        result = read_result(run_dir)
        if result is None:
            continue
        config = json.loads((run_dir / "config.json").read_text())
        row: dict[str, Any] = {f.name: config.get(f.name) for f in dataclasses.fields(RunConfig)}
        row["hyperparams"] = " ".join(row["hyperparams"] or ())
        row["optimizer"] = optimizer_label(row["optimizer"], row["optimizer_kwargs"])  # arms differ by their kwargs
        row["lr"] = (config.get("agent") or {}).get("lr", row["lr"])
        row.update({k: result.get(k) for k in RESULT_FIELDS}, run_dir=run_dir.name)
        rows.append(row)
    return rows


def write_results_csv(out: str | Path) -> Path:
    """Rebuild ``<out>/results.csv`` from the run folders (atomically), so no run is ever listed twice."""
    rows = collect_results(out)
    path = Path(out) / "results.csv"
    tmp = path.with_name(f".results.csv.tmp{os.getpid()}")
    # checkpoint_freq says how a run was protected, not what it computed: results.csv keeps its columns without it
    columns = [f.name for f in dataclasses.fields(RunConfig) if f.name != "checkpoint_freq"] + [*RESULT_FIELDS, "run_dir"]
    rows = [{k: v for k, v in row.items() if k != "checkpoint_freq"} for row in rows]
    if not any(row["optimizer_kwargs"] for row in rows):  # a sweep without such arms keeps its columns as before
        columns.remove("optimizer_kwargs")
        rows = [{k: v for k, v in row.items() if k != "optimizer_kwargs"} for row in rows]
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
    return path


def default_workers() -> int:
    """The number of CPU cores this process may run on (``os.sched_getaffinity``; ``os.cpu_count`` elsewhere)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _run_line(result: dict[str, Any], done: int, total: int) -> str:
    """One line per finished run: ``[3/16] <run folder>: ok, final return -154.2, auc -612.0 (45 s)``."""
    score = result.get("final_return_mean")
    parts = [str(result["status"])]
    if score is not None and math.isfinite(score):
        parts.append(f"final return {score:.1f}")
    if result.get("auc") is not None:
        parts.append(f"auc {result['auc']:.1f}")
    if result["status"] != "ok" and result.get("error"):
        parts.append(str(result["error"]).splitlines()[0][:200])
    wall = result.get("wall_time_s")
    return f"[{done}/{total}] {result['run_dir']}: {', '.join(parts)}" + (f" ({wall:.0f} s)" if wall else "")


def _die_with_parent() -> None:
    """Pool initializer: ask Linux to SIGKILL this worker when the sweep process dies (so kill -9 leaves no orphans)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _run_or_busy(config: RunConfig) -> dict[str, Any]:
    """:func:`run_one`, except that a run another process is running now gives a ``busy`` result (nothing written).

    So does a run that another sweep on the same folder finished after this sweep listed it (``run_one`` refuses to
    overwrite it; every other reason to refuse was checked for the whole grid before any run started).
    """
    try:
        return run_one(config)
    except RunExistsError as err:  # RunBusyError included
        return {"status": "busy", "run_dir": run_dir_name(config), "error": str(err), "final_return_mean": None}


_RETRY_HINT = "rerun the sweep with --retry-failed to try again"
WORKER_DIED = (
    "the worker process died while running this run (killed by a signal, e.g. out of memory), also when rerun alone; "
    + _RETRY_HINT
)
RAY_MAX_RETRIES = 1
"""Ray reruns a run whose worker process died this many times (Ray's default is 3) before it is recorded as failed."""


def _run_local(configs: list[RunConfig], workers: int) -> Iterator[dict[str, Any]]:
    """Run ``configs`` on a spawn process pool, at most ``workers`` at a time, yielding each result as it finishes.

    If a worker process dies (the OOM killer, a segfault), the pool breaks and every run in flight is lost; those runs
    are rerun one at a time in a fresh process, so that the culprit is known: a run whose process dies again gets a
    ``failed`` result (:data:`WORKER_DIED`), an innocent bystander finishes normally. Then the sweep goes on.
    """
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    # spawn: workers are children of this process (PDEATHSIG works) and share no forked torch state. One intra-op
    # thread per worker from the start (before torch is imported there), so that W workers use W cores, not W x cores.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    ctx = multiprocessing.get_context("spawn")

    def pool(n: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_die_with_parent)

    queue = list(configs)
    while queue:
        suspects: list[RunConfig] = []
        with pool(workers) as executor:
            running: dict[Any, RunConfig] = {}
            while (queue or running) and not suspects:
                while queue and len(running) < workers:  # never more in flight than workers: a crash loses little
                    config = queue.pop(0)
                    running[executor.submit(_run_or_busy, config)] = config
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                if any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                    wait(running)  # a broken pool fails every future at once
                    done = set(running)
                for future in done:
                    config = running.pop(future)
                    if isinstance(future.exception(), BrokenProcessPool):
                        suspects.append(config)
                    else:
                        yield future.result()
        for config in suspects:  # alone, in a fresh process each
            with pool(1) as alone:
                try:
                    yield alone.submit(_run_or_busy, config).result()
                except BrokenProcessPool:
                    yield record_failure(config, WORKER_DIED)


def _run_ray(configs: list[RunConfig], workers: int, address: str | None, out: Path) -> Iterator[dict[str, Any]]:
    """Run ``configs`` as Ray tasks that train in node-local scratch and ship their files back (:mod:`.shipping`).

    The driver holds each run's lock (beside its folder under ``out``) while the run is in flight, so a second sweep on
    the same folder leaves it alone (``busy``), and writes the files a task returns into ``out``: nothing is written
    on a worker under ``out``, which need not exist there.
    """
    import ray

    from rl_adaloss.experiment.shipping import ray_init, receive_run, run_in_scratch, scratch_key

    if not ray.is_initialized():
        ray_init(workers, address)
    remote = ray.remote(num_cpus=1, max_retries=RAY_MAX_RETRIES)(run_in_scratch)
    # Ray workers are not this process's children: they get the CPU numerics from the task's runtime_env, at start.
    runtime_env = {"env_vars": pin_cpu_numerics()}
    key = scratch_key(out)
    by_ref: dict[Any, tuple[RunConfig, contextlib.ExitStack]] = {}
    try:
        for config in configs:
            run_dir = Path(config.log_folder) / run_dir_name(config)
            lock = contextlib.ExitStack()
            try:
                lock.enter_context(hold_run_lock(run_dir))
            except RunBusyError as err:
                yield {"status": "busy", "run_dir": run_dir.name, "error": str(err), "final_return_mean": None}
                continue
            on_gpu = config.device.startswith("cuda")
            # Ray sets CUDA_VISIBLE_DEVICES per task, so a GPU task sees its GPU as "cuda".
            options: dict[str, Any] = {"runtime_env": runtime_env, **({"num_gpus": 1} if on_gpu else {})}
            # The task's name (its run folder) is what the Ray dashboard and the worker's process title show.
            on_ray = dataclasses.replace(config, device="cuda") if on_gpu else config
            by_ref[remote.options(name=run_dir.name, **options).remote(on_ray, key)] = (config, lock)
        refs = list(by_ref)
        while refs:
            done, refs = ray.wait(refs, num_returns=1)
            config, lock = by_ref.pop(done[0])
            with lock:  # released once the run's files are in place
                try:
                    shipped = ray.get(done[0])
                except ray.exceptions.RayError as err:  # the worker died even after Ray's retries (e.g. out of memory)
                    message = f"{type(err).__name__}: {err}".splitlines()[0]
                    yield record_failure(config, f"Ray could not run this run: {message.rstrip('.')}; {_RETRY_HINT}")
                    continue
                yield receive_run(Path(config.log_folder) / run_dir_name(config), shipped)
    finally:
        for _, lock in by_ref.values():
            lock.close()


def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    *,
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    device: str | None = None,
    progress: bool = True,
    retry_failed: bool = False,
    overwrite: bool = False,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    print_runs: bool = False,
) -> dict[str, Any]:
    """Run every run of ``spec`` not yet finished under ``out``; return a summary (counts, failed runs, wall time).

    Args:
        spec: the validated grid.
        out: sweep folder (one subfolder per run, plus ``results.csv`` and ``spec.json``).
        backend: ``local`` (process pool) or ``ray``.
        workers: parallel runs (default: the CPU cores this process may use, ``os.sched_getaffinity``).
        address: Ray cluster address (default: start a local Ray instance with ``workers`` CPUs).
        device: overrides the spec's device; ``cuda`` spreads runs round-robin over the visible GPUs.
        progress: show a tqdm bar.
        retry_failed: also rerun the runs recorded as ``failed`` (e.g. after a worker was killed for lack of memory).
        overwrite: redo finished runs whose configuration changed (without it the sweep refuses to start).
        on_result: called in this process with each finished run's result.
        print_runs: print one line per finished run with its status and score.

    Returns:
        ``total``, ``skipped``, ``ok``, ``diverged``, ``failed``, ``busy`` (this invocation; ``busy``: runs another
        process was running, or finished meanwhile, left to it), ``failed_runs`` (every run of the
        grid whose result is ``failed``, also from earlier invocations: ``[(run folder, error)]``), ``wall_time_s``.

    Raises:
        ValueError: unknown backend, non-positive workers, cuda without a GPU, or finished runs of a changed
            configuration without ``overwrite``.
        ConnectionError: no Ray cluster answers at ``address``.
    """
    if backend not in ("local", "ray"):
        raise ValueError(f"Invalid backend: {backend!r} (valid: local, ray)")
    workers = default_workers() if workers is None else workers
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"Invalid workers: {workers!r} (expected an integer >= 1)")
    start = time.perf_counter()
    configs = assign_devices(spec.runs(out), device or spec.device)
    todo, skipped = pending_runs(configs, retry_failed, overwrite) if Path(out).is_dir() else (configs, 0)
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "spec.json").write_text(json.dumps(dataclasses.asdict(spec), indent=2, default=str))
    # Seed by seed (every cell's seed 0 first): an interrupted sweep leaves balanced cells, not finished rows.
    todo.sort(key=lambda c: c.seed)
    counts: Counter[str] = Counter()
    from tqdm.auto import tqdm

    with tqdm(total=len(configs), initial=skipped, desc="runs", disable=not progress, unit="run") as bar:
        results = _run_ray(todo, workers, address, Path(out)) if backend == "ray" else _run_local(todo, workers)
        for result in results if todo else ():
            counts[result["status"]] += 1
            write_results_csv(out)
            if on_result is not None:
                on_result(result)
            bar.update(1)
            if print_runs:
                bar.write(_run_line(result, skipped + sum(counts.values()), len(configs)))
    write_results_csv(out)
    failed_runs = []
    for config in configs:
        final = read_result(Path(out) / run_dir_name(config))
        if final is not None and final["status"] == "failed":
            failed_runs.append((run_dir_name(config), (str(final.get("error") or "").splitlines() or [""])[0]))
    return {"total": len(configs), "skipped": skipped, **{k: counts[k] for k in ("ok", "diverged", "failed", "busy")},
            "failed_runs": failed_runs, "wall_time_s": time.perf_counter() - start}  # fmt: skip
