"""Run a sweep: skip finished runs, execute the rest on a local process pool or on Ray, rebuild ``results.csv``."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rl_adaloss.experiment.config import RunConfig, run_dir_name
from rl_adaloss.experiment.run import read_result, record_failure, run_one
from rl_adaloss.experiment.spec import SweepSpec

__all__ = [
    "RESULT_FIELDS",
    "WORKER_DIED",
    "assign_devices",
    "collect_results",
    "pending_runs",
    "run_sweep",
    "write_results_csv",
]

RESULT_FIELDS = ("status", "final_return_mean", "final_return_std", "auc", "wall_time_s", "num_timesteps", "error")


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


def pending_runs(configs: list[RunConfig], retry_failed: bool = False) -> tuple[list[RunConfig], int]:
    """Return the runs to do and the number skipped.

    A run is done when its folder holds a final ``result.json``; a ``failed`` one (the run could not be carried out:
    a crash, a dead worker) is done too unless ``retry_failed``. ``diverged`` is a result, never retried. The folders
    of the runs to do are deleted (partial files of an interrupted run, or the failed attempt).
    """
    todo = []
    for config in configs:
        run_dir = Path(config.log_folder) / run_dir_name(config)
        result = read_result(run_dir)
        if result is not None and not (retry_failed and result["status"] == "failed"):
            continue
        if run_dir.exists():
            shutil.rmtree(run_dir)
        todo.append(config)
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
        row["lr"] = (config.get("agent") or {}).get("lr", row["lr"])
        row.update({k: result.get(k) for k in RESULT_FIELDS}, run_dir=run_dir.name)
        rows.append(row)
    return rows


def write_results_csv(out: str | Path) -> Path:
    """Rebuild ``<out>/results.csv`` from the run folders (atomically), so no run is ever listed twice."""
    rows = collect_results(out)
    path = Path(out) / "results.csv"
    tmp = path.with_name(f".results.csv.tmp{os.getpid()}")
    columns = [f.name for f in dataclasses.fields(RunConfig)] + list(RESULT_FIELDS) + ["run_dir"]
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
    return path


def _die_with_parent() -> None:
    """Pool initializer: ask Linux to SIGKILL this worker when the sweep process dies (so kill -9 leaves no orphans)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


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
                    running[executor.submit(run_one, config)] = config
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
                    yield alone.submit(run_one, config).result()
                except BrokenProcessPool:
                    yield record_failure(config, WORKER_DIED)


def _check_ray_address(address: str, timeout: float = 5.0) -> None:
    """Fail fast on a ``host:port`` where nothing listens (``ray.init`` would retry for many minutes)."""
    if address in ("auto", "local") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"Invalid address: {address!r} (expected host:port of the Ray head node, auto, or ray://host:port)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise ConnectionError(
            f"Invalid address: no Ray cluster answers at {address!r} ({err}); start one with `ray start --head` and pass "
            "the address it prints"
        ) from None


def _run_ray(configs: list[RunConfig], workers: int, address: str | None) -> Iterator[dict[str, Any]]:
    import ray

    if not ray.is_initialized():
        if address:
            _check_ray_address(address)
            try:
                ray.init(address=address, log_to_driver=False)
            except ConnectionError as err:
                raise ConnectionError(
                    f"Invalid address: could not connect to a Ray cluster at {address!r} ({err}). A cluster started "
                    "with `ray start` (Ray >= 2.59) requires token authentication: set RAY_AUTH_MODE=token where the "
                    "sweep runs (the token is read from RAY_AUTH_TOKEN or ~/.ray/auth_token), or on the head node pass "
                    "--address auto"
                ) from None
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=1, max_retries=RAY_MAX_RETRIES)(run_one)
    by_ref = {}
    for config in configs:
        on_gpu = config.device.startswith("cuda")
        # Ray sets CUDA_VISIBLE_DEVICES per task, so a GPU task sees its GPU as "cuda".
        options = {"num_gpus": 1} if on_gpu else {}
        # The task's name (its run folder) is what the Ray dashboard and the worker's process title show.
        on_ray = dataclasses.replace(config, device="cuda") if on_gpu else config
        ref = remote.options(name=run_dir_name(config), **options).remote(on_ray)
        by_ref[ref] = config
    refs = list(by_ref)
    while refs:
        done, refs = ray.wait(refs, num_returns=1)
        try:
            yield ray.get(done[0])
        except ray.exceptions.RayError as err:  # the worker died even after Ray's own retries (e.g. out of memory)
            message = f"{type(err).__name__}: {err}".splitlines()[0]
            yield record_failure(by_ref[done[0]], f"Ray could not run this run: {message.rstrip('.')}; {_RETRY_HINT}")


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
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run every run of ``spec`` not yet finished under ``out``; return a summary (counts, wall time).

    Args:
        spec: the validated grid.
        out: sweep folder (one subfolder per run, plus ``results.csv`` and ``spec.json``).
        backend: ``local`` (process pool) or ``ray``.
        workers: parallel runs (default: number of CPU cores).
        address: Ray cluster address (default: start a local Ray instance with ``workers`` CPUs).
        device: overrides the spec's device; ``cuda`` spreads runs round-robin over the visible GPUs.
        progress: show a tqdm bar.
        retry_failed: also rerun the runs recorded as ``failed`` (e.g. after a worker was killed for lack of memory).
        on_result: called in this process with each finished run's result.

    Raises:
        ValueError: unknown backend, non-positive workers, or cuda without a GPU.
        ConnectionError: no Ray cluster answers at ``address``.
    """
    if backend not in ("local", "ray"):
        raise ValueError(f"Invalid backend: {backend!r} (expected 'local' or 'ray')")
    workers = int(workers or os.cpu_count() or 1)
    if workers < 1:
        raise ValueError(f"Invalid workers: {workers}")
    start = time.perf_counter()
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "spec.json").write_text(json.dumps(dataclasses.asdict(spec), indent=2, default=str))
    configs = assign_devices(spec.runs(out), device or spec.device)
    todo, skipped = pending_runs(configs, retry_failed)
    # Seed by seed (every cell's seed 0 first): an interrupted sweep leaves balanced cells, not finished rows.
    todo.sort(key=lambda c: c.seed)
    counts: Counter[str] = Counter()
    from tqdm.auto import tqdm

    with tqdm(total=len(configs), initial=skipped, desc="runs", disable=not progress, unit="run") as bar:
        results = _run_ray(todo, workers, address) if backend == "ray" else _run_local(todo, workers)
        for result in results if todo else ():
            counts[result["status"]] += 1
            write_results_csv(out)
            if on_result is not None:
                on_result(result)
            bar.update(1)
    write_results_csv(out)
    return {"total": len(configs), "skipped": skipped, **{k: counts[k] for k in ("ok", "diverged", "failed")},
            "wall_time_s": time.perf_counter() - start}  # fmt: skip
