"""Ray: connecting to a cluster, and runs without shared storage (train in node-local scratch, ship the files back).

On a Ray cluster whose nodes share no disk (or merely run in other folders), the sweep's ``--out`` is a path of the
driver's machine. A task therefore never writes there: :func:`run_in_scratch` runs the run under
``<scratch root>/<key>/`` on the node that got it, reads back every file of the finished run (``config.json``,
``result.json``, ``eval.csv``, ``evaluations.npz``, ``progress.csv``, TensorBoard events, ``model.zip``,
``vecnormalize.pkl``) and returns them with its result; the driver writes them under ``--out``
(:func:`receive_run`, ``result.json`` last) and the scratch copy is deleted. Checkpoints stay in the node's scratch
while the run is unfinished, so a run restarted on the same node (Ray's retry after its worker died, or a rerun of
the sweep) resumes there; on another node it starts from step 0.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from rl_adaloss.experiment.config import RunConfig, run_dir_name
from rl_adaloss.experiment.identity import clear_run_files, config_hash, resolve_run, run_files

__all__ = ["SCRATCH_ENV", "ray_init", "receive_run", "run_in_scratch", "scratch_key", "scratch_root"]

SCRATCH_ENV = "RL_ADALOSS_SCRATCH"
"""Environment variable (read on each worker node) naming the scratch root; default ``<tmp>/rl-adaloss-scratch``."""
_NOT_SHIPPED = ("checkpoint.pkl",)


def scratch_key(out: str | Path) -> str:
    """The scratch folder name of a sweep: a hash of the driver's host name and the absolute ``--out`` path."""
    text = f"{socket.gethostname()}\0{Path(out).resolve()}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def scratch_root() -> Path:
    """This node's scratch root: ``$RL_ADALOSS_SCRATCH``, else ``<tempfile.gettempdir()>/rl-adaloss-scratch``."""
    return Path(os.environ.get(SCRATCH_ENV) or Path(tempfile.gettempdir()) / "rl-adaloss-scratch")


def _finished_here(run_dir: Path, config: RunConfig) -> bool:
    """Whether ``run_dir`` holds a finished run of ``config`` (its task died after finishing, before shipping it)."""
    from rl_adaloss.experiment.run_folder import read_config, read_result

    if read_result(run_dir) is None:
        return False
    try:
        same = (read_config(run_dir) or {}).get("config_hash") == config_hash(resolve_run(config))
    except Exception:  # a config that no longer resolves: run it again (run_one records why it fails)
        same = False
    if not same:
        clear_run_files(run_dir)
    return same


def run_in_scratch(config: RunConfig, key: str) -> dict[str, Any]:
    """Run ``config`` in this node's scratch (the Ray task); return ``{"result", "files", "node"}`` and delete the copy.

    ``files`` maps each file name of the finished run folder to its bytes (checkpoints excepted). A run that another
    process on this node runs now gives a ``busy`` result and no files.
    """
    from rl_adaloss.experiment.run import run_one
    from rl_adaloss.experiment.run_folder import RunExistsError, read_result

    local = dataclasses.replace(config, log_folder=str(scratch_root() / key))
    run_dir = Path(local.log_folder) / run_dir_name(local)
    try:
        result = read_result(run_dir) if _finished_here(run_dir, local) else run_one(local)
    except RunExistsError as err:  # RunBusyError included
        busy = {"status": "busy", "run_dir": run_dir.name, "error": str(err), "final_return_mean": None}
        return {"result": busy, "files": {}, "node": socket.gethostname()}
    assert result is not None
    files = {p.name: p.read_bytes() for p in run_files(run_dir) if p.name not in _NOT_SHIPPED and not p.name.startswith(".")}
    clear_run_files(run_dir)
    return {"result": result, "files": files, "node": socket.gethostname()}


def receive_run(run_dir: Path, shipped: dict[str, Any]) -> dict[str, Any]:
    """Write a shipped run's files into ``run_dir`` on the driver (each atomically, ``result.json`` last); return its result.

    The run's own files already there (an earlier attempt's) are replaced; other files are left alone.
    """
    files: dict[str, bytes] = shipped["files"]
    if files:
        clear_run_files(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        for name in sorted(files, key=lambda n: n == "result.json"):
            tmp = run_dir / f".{name}.tmp{os.getpid()}"
            tmp.write_bytes(files[name])
            os.replace(tmp, run_dir / name)
    return {**shipped["result"], "node": shipped["node"]}


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


_TOKEN_HINT = (
    "A cluster started with `ray start` (Ray >= 2.59) requires token authentication: set RAY_AUTH_MODE=token where the "
    "sweep runs (the token is read from RAY_AUTH_TOKEN or ~/.ray/auth_token), or on the head node pass --address auto"
)


def ray_init(workers: int, address: str | None) -> None:
    """Connect to the cluster at ``address`` (or start a local Ray instance); every failure is one ``ConnectionError``."""
    import ray

    if not address:
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        return
    _check_ray_address(address)
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except ConnectionError as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConnectionError(
            f"Invalid address: could not connect to a Ray cluster at {address!r} ({message}). {_TOKEN_HINT}"
        ) from None
    except Exception as err:  # e.g. RAY_AUTH_MODE=token and no token anywhere: Ray raises its own error types
        message = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ConnectionError(
            f"Invalid address: could not connect to the Ray cluster at {address!r} ({type(err).__name__}: {message})"
        ) from None
