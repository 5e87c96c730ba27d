"""A run's identity: its fully resolved configuration, a hash of it, and which files of a run folder are the run's.

The identity holds everything that determines a run's numbers: the resolved agent (preset after overrides, where the
preset came from, optimizer and its kwargs, eta_0, b0, alpha, c, seed, n_envs, normalisation, policy), the budget,
the evaluation plan, the device type, torch threads, and the versions of the packages that compute it (for a
``module:Class`` optimizer, also its package's version), and ``cpu_numerics`` when it is not the default
``portable`` (see :mod:`rl_adaloss.experiment.numerics`; runs made before it existed keep their hash). A sweep
compares the hash stored in each finished run with the hash of the run it would make, and never reuses a run whose
configuration changed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rl_adaloss.experiment.config import RunConfig, resolve_agent_config
from rl_adaloss.experiment.numerics import cpu_numerics_mode

if TYPE_CHECKING:
    from rl_adaloss.agents import AgentConfig

__all__ = [
    "EVAL_SEED_OFFSET",
    "RUN_FILES",
    "clear_run_files",
    "config_hash",
    "diff_fields",
    "foreign_files",
    "resolve_run",
    "run_files",
    "source_digest",
    "validate_run",
]

EVAL_SEED_OFFSET = 10_000
RUN_FILES = (
    "config.json", "result.json", "eval.csv", "evaluations.npz", "model.zip", "vecnormalize.pkl", "progress.csv",
    "checkpoint.pkl",
)  # fmt: skip
_RUN_GLOBS = ("events.out.tfevents.*", ".*.tmp*", "progress.before-resume-*.csv")


def _versions(optimizer: str) -> dict[str, str]:
    """Versions of the packages that compute a run, and of a ``module:Class`` optimizer's package if it is another."""
    import gymnasium
    import numpy
    import sb3_contrib
    import stable_baselines3
    import torch

    import rl_adaloss
    from rl_adaloss.sb3.optimizers import optimizer_package_version

    modules = (rl_adaloss, torch, stable_baselines3, sb3_contrib, gymnasium, numpy)
    versions = {m.__name__: str(m.__version__) for m in modules}
    package = optimizer_package_version(optimizer)
    if package is not None and package[0] not in versions:  # registered optimizers' runs keep their identity
        versions[package[0]] = package[1]
    return versions


@functools.cache
def source_digest() -> str:
    """SHA-256 (16 hex digits) of every file of the installed ``rl_adaloss`` package (code, presets, env assets).

    Recorded in each run's ``config.json`` beside the identity, not in it: the identity (and the hash a sweep
    compares) covers configuration and package versions, while this says which code made the run, so a reader can
    tell runs made before and after a change of the code (which a sweep does not refuse).
    """
    import rl_adaloss
    import rl_adaloss.agents

    root = Path(rl_adaloss.__file__).parent
    # rl_adaloss.agents is the top-level agents/ folder in a checkout and rl_adaloss/agents/ when installed: hash it as
    # rl_adaloss/agents/ in both cases (as the walk did when the folder was a symlink), so the digest is the same.
    trees = {root: root, root / "agents": Path(rl_adaloss.agents.__file__).parent}
    folders: list[tuple[str, Path, list[str]]] = []
    for name_root, real_root in trees.items():
        for walked, dirs, files in os.walk(real_root):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__" and Path(walked, d) != trees[root / "agents"])
            as_named = name_root / Path(walked).relative_to(real_root)
            folders.append((str(as_named), Path(walked), files))
    digest = hashlib.sha256()
    for named, real, files in sorted(folders):
        for name in sorted(f for f in files if not f.endswith((".pyc", ".pyo"))):
            digest.update(str(Path(named, name).relative_to(root)).encode() + b"\0" + (real / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def resolve_run(config: RunConfig, agent: AgentConfig | None = None) -> dict[str, Any]:
    """Return the run's identity: a JSON-friendly dict of everything that determines its results.

    Args:
        config: the run.
        agent: the run's agent if the caller has resolved it already (:func:`resolve_agent_config`), else None.

    Raises:
        ValueError: the config does not resolve (unknown algo/env/optimizer, bad hyperparameters, no budget).
        ImportError: an extra the env or optimizer needs is missing.
    """
    return _identity(config, resolve_agent_config(config) if agent is None else agent)


def _identity(config: RunConfig, agent: AgentConfig) -> dict[str, Any]:
    n_timesteps = config.n_timesteps or agent.n_timesteps
    if not n_timesteps:
        raise ValueError(
            f"Invalid n_timesteps: {config.algo} on {config.env} uses {agent.preset_source}, which have no budget; "
            "pass -n/--n-timesteps (sweep: n_timesteps)"
        )
    if n_timesteps < 1:
        raise ValueError(f"Invalid n_timesteps: {n_timesteps} (expected a positive integer)")
    agent_dict = agent.to_dict()
    agent_dict["device"] = "cuda" if config.device.startswith("cuda") else config.device  # cuda:N is a placement only
    identity = {
        "agent": agent_dict,
        "n_timesteps": int(n_timesteps),
        "eval_freq": config.eval_freq,
        "eval_episodes": config.eval_episodes,
        "eval_seed": config.seed + EVAL_SEED_OFFSET,
        "torch_threads": config.torch_threads,
        "versions": _versions(config.optimizer),
    }
    if cpu_numerics_mode() != "portable":  # only then: the default adds nothing, so committed runs keep their hash
        identity["cpu_numerics"] = cpu_numerics_mode()
    return identity


def validate_run(config: RunConfig, agent: AgentConfig | None = None) -> dict[str, Any]:
    """Resolve the run and build its agent (no training), so that every error shows before a folder is made.

    Args:
        config: the run.
        agent: the run's agent if the caller has resolved it already (:func:`resolve_agent_config`), else None.

    Returns:
        The identity (:func:`resolve_run`).

    Raises:
        ValueError: the message names the bad value (and the valid choices where there is a list).
    """
    from rl_adaloss.agents import build_agent

    for key, value in (("eval_freq", config.eval_freq), ("eval_episodes", config.eval_episodes),
                       ("torch_threads", config.torch_threads)):  # fmt: skip
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"Invalid {key}: {value!r} (expected a positive integer)")
    if not isinstance(config.checkpoint_freq, int) or config.checkpoint_freq < 0:
        raise ValueError(f"Invalid checkpoint_freq: {config.checkpoint_freq!r} (expected an integer >= 0; 0: no checkpoints)")
    if config.n_envs is not None and config.n_envs < 1:
        raise ValueError(f"Invalid n_envs: {config.n_envs} (expected a positive integer)")
    agent = resolve_agent_config(config) if agent is None else agent
    identity = resolve_run(config, agent)
    try:
        model = build_agent(agent)
    except (TypeError, ValueError, AssertionError, KeyError) as err:
        message = f"{type(err).__name__}: {err}".splitlines()[0]
        raise ValueError(f"Invalid configuration: building {config.algo} on {config.env} failed ({message})") from None
    model.get_env().close()  # type: ignore[union-attr]
    return identity


def config_hash(identity: dict[str, Any]) -> str:
    """SHA-256 (first 16 hex digits) of the identity's canonical JSON."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out or {prefix.rstrip("."): {}}
    return {prefix.rstrip("."): data}


def diff_fields(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """The fields that differ between two identities, as ``"agent.hyperparams.n_steps: 64 -> 32"`` (sorted)."""
    if old is None:
        return ["(no configuration hash recorded: the run was made by an older version)"]
    a, b = _flatten(old), _flatten(new)
    return [f"{k}: {json.dumps(a.get(k, '(absent)'))} -> {json.dumps(b.get(k, '(absent)'))}"
            for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]  # fmt: skip


def run_files(run_dir: Path) -> list[Path]:
    """The files in ``run_dir`` that a run writes (anything else there belongs to someone else)."""
    if not run_dir.is_dir():
        return []
    found = [run_dir / name for name in RUN_FILES if (run_dir / name).exists()]
    for pattern in _RUN_GLOBS:
        found += sorted(run_dir.glob(pattern))
    return found


def foreign_files(run_dir: Path) -> list[str]:
    """The names of the entries in ``run_dir`` that no run wrote (sorted; empty if there is no folder)."""
    if not run_dir.is_dir():
        return []
    ours = {p.name for p in run_files(run_dir)}
    return sorted(p.name for p in run_dir.iterdir() if p.name not in ours)


def clear_run_files(run_dir: Path) -> list[str]:
    """Delete the run's own files from ``run_dir`` (never anything else) and the folder if it is then empty.

    Returns:
        The names of the files that are left (not written by a run), so a caller can say so.
    """
    for path in run_files(run_dir):
        path.unlink()
    left = foreign_files(run_dir)
    if run_dir.is_dir() and not left:
        run_dir.rmdir()
    return left
