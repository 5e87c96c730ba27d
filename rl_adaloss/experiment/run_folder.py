"""A run's folder: who runs it now (its lock), what it holds (config.json, result.json), whether it may be written.

A finished run, or files no run wrote, are never replaced unless asked (:func:`check_run_dir`); which files are the
run's own is :func:`rl_adaloss.experiment.identity.run_files`.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rl_adaloss.experiment.identity import config_hash, diff_fields

__all__ = [
    "FINAL_STATUSES",
    "RunBusyError",
    "RunExistsError",
    "check_run_dir",
    "hold_run_lock",
    "lock_path",
    "read_config",
    "read_result",
    "run_is_busy",
    "write_json_atomic",
]

FINAL_STATUSES = frozenset({"ok", "diverged", "failed"})


class RunExistsError(ValueError):
    """The run folder holds a finished run (or files no run wrote) and replacing it was not asked for."""


class RunBusyError(RunExistsError):
    """Another process holds the run's lock: it is running this run now."""


def lock_path(run_dir: Path) -> Path:
    """``<log_folder>/.<run folder>.lock``: a hidden file beside the run folders (so folder listings never see it)."""
    return run_dir.parent / f".{run_dir.name}.lock"


@contextmanager
def hold_run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run's lock for the duration of the block, or raise :class:`RunBusyError` at once if it is held.

    The lock is an exclusive ``flock`` on :func:`lock_path`, a file beside the run folders (never inside one, so it
    is not a run file and deleting a run's files cannot break it); the file stays, the lock does not. The kernel
    releases it when the holder exits, also after ``kill -9``, so a dead run never stays locked. It guards one
    machine's processes (and a shared filesystem whose ``flock`` works across hosts, such as NFSv4).

    Raises:
        RunBusyError: naming the run folder and the holder (pid and host) written in the lock file.
    """
    import fcntl

    lock = lock_path(run_dir)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise RunBusyError(
                f"{run_dir} is being run now by another process ({holder}); it was left to that process"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def run_is_busy(run_dir: Path) -> bool:
    """Whether another process holds the run's lock now (a snapshot: it may start or stop right after)."""
    try:
        with hold_run_lock(run_dir):
            return False
    except RunBusyError:
        return True


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


def read_config(run_dir: Path) -> dict[str, Any] | None:
    """Return the run's ``config.json`` (None if missing or unreadable)."""
    try:
        data = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def check_run_dir(run_dir: Path, identity: dict[str, Any] | None, overwrite: bool = False) -> None:
    """Refuse to touch a run folder that holds a finished run, or files no run wrote, unless ``overwrite``.

    An unfinished run (``config.json`` without a final ``result.json``: a crash, a killed process) is ours and may be
    restarted. With ``overwrite`` only the run's own files are ever deleted (see :func:`clear_run_files`).

    Raises:
        RunExistsError: naming the folder, what it holds (for a different configuration, the fields that differ)
            and what to do.
    """
    if overwrite or not run_dir.is_dir() or not any(run_dir.iterdir()):
        return
    result, saved = read_result(run_dir), read_config(run_dir)
    if result is not None:
        old = (saved or {}).get("identity")
        if identity is not None and saved is not None and saved.get("config_hash") == config_hash(identity):
            raise RunExistsError(
                f"{run_dir} already holds a finished run of this configuration (status {result['status']}); "
                "pass --overwrite to replace it"
            )
        fields = diff_fields(old, identity) if identity is not None else ["(this configuration does not resolve)"]
        raise RunExistsError(
            f"{run_dir} holds a finished run of a different configuration ({'; '.join(fields[:6])}"
            f"{'; ...' if len(fields) > 6 else ''}); pass --overwrite to replace it, or choose another --log-folder"
        )
    if saved is None:
        names = ", ".join(sorted(p.name for p in run_dir.iterdir())[:5])
        raise RunExistsError(
            f"{run_dir} exists and holds files no run wrote ({names}); choose another --log-folder, or pass --overwrite "
            "to write the run beside them (they are kept)"
        )
