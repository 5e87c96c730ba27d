"""Sweep specification: a YAML grid (envs x algos x optimizers x lrs x b0s x alphas x cs x seeds), validated up front."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rl_adaloss.experiment.config import RunConfig, canonical_kwargs, hyperparams_items, load_yaml

__all__ = ["SweepSpec", "load_spec", "optimizer_arm", "spec_from_dict", "validate_spec"]

_KEYS = {
    "envs", "algos", "optimizers", "lrs", "b0s", "alphas", "cs", "lr_free", "seeds", "n_timesteps", "n_envs", "eval_freq",
    "eval_episodes", "hyperparams", "algo_hyperparams", "device",
}  # fmt: skip


@dataclass(frozen=True)
class SweepSpec:
    """A validated grid; :meth:`runs` expands it into one :class:`RunConfig` per run, in a fixed order."""

    envs: tuple[str, ...]
    """Gymnasium env ids (each needs a preset for every algo)."""
    algos: tuple[str, ...]
    """SB3 algorithms (keys of ``agents.ALGOS``)."""
    optimizers: tuple[str | dict[str, Any], ...]
    """optimizers swept over ``lrs`` x ``b0s``: registered names or ``package.module:Class`` paths, each alone or as a
    one-key mapping to its keyword arguments (``{torch.optim:SGD: {momentum: 0.9}}``)."""
    lrs: tuple[float | None, ...]
    """eta_0 values (None: the preset's)."""
    seeds: tuple[int, ...]
    """explicit seeds."""
    b0s: tuple[float | None, ...] = (None,)
    """AdamLoss/AdamSqrt b0 values (None: 1/lr^2); only crossed with optimizers that take b0."""
    alphas: tuple[float | None, ...] = (None,)
    """AdamLoss alpha values (None: the optimizer's default); only crossed with loss-driven optimizers."""
    cs: tuple[float | None, ...] = (None,)
    """AdamLoss c values (None: the optimizer's default); only crossed with loss-driven optimizers."""
    lr_free: tuple[str, ...] = ()
    """learning-rate-free optimizers, run once per (env, algo, seed) at lr 1.0."""
    n_timesteps: int | None = None
    """budget per run (None: the preset's)."""
    n_envs: int | None = None
    """parallel envs per run (None: the preset's)."""
    eval_freq: int = 10_000
    """env steps between evaluations."""
    eval_episodes: int = 5
    """episodes per evaluation."""
    hyperparams: dict[str, Any] = field(default_factory=dict)
    """preset overrides for every algo."""
    algo_hyperparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    """preset overrides per algo (applied after ``hyperparams``)."""
    device: str = "cpu"
    """default device of the runs (the CLI's ``--device`` overrides it)."""

    def runs(self, log_folder: str | Path, device: str | None = None) -> list[RunConfig]:
        """Expand the grid into run configs under ``log_folder`` (order: env, algo, optimizer, lr, b0, alpha, c, seed)."""
        from rl_adaloss.sb3 import optimizer_spec

        out: list[RunConfig] = []
        common: dict[str, Any] = dict(n_timesteps=self.n_timesteps, n_envs=self.n_envs, eval_freq=self.eval_freq)
        common.update(eval_episodes=self.eval_episodes, log_folder=str(log_folder), device=device or self.device)
        for env, algo in itertools.product(self.envs, self.algos):
            hp = hyperparams_items({**self.hyperparams, **self.algo_hyperparams.get(algo, {})})
            for opt, kwargs in map(optimizer_arm, self.optimizers):
                spec = optimizer_spec(opt)
                b0s = self.b0s if spec.takes_b0 else (None,)
                alphas, cs = (self.alphas, self.cs) if spec.loss_driven else ((None,), (None,))
                for lr, b0, alpha, c, seed in itertools.product(self.lrs, b0s, alphas, cs, self.seeds):
                    out.append(RunConfig(algo, env, opt, lr, b0, alpha, c, seed=seed, hyperparams=hp,
                                         optimizer_kwargs=kwargs, **common))  # fmt: skip
            for opt, seed in itertools.product(self.lr_free, self.seeds):
                out.append(RunConfig(algo, env, opt, 1.0, seed=seed, hyperparams=hp, **common))
        return out


def optimizer_arm(item: str | dict[str, Any]) -> tuple[str, str | None]:
    """``(optimizer, kwargs as canonical JSON or None)`` of an ``optimizers`` entry: a name, or ``{name: kwargs}``.

    Raises:
        ValueError: an entry that is neither a string nor a one-key mapping of a string to a mapping.
    """
    if isinstance(item, str):
        return item, None
    if isinstance(item, dict) and len(item) == 1:
        ((name, kwargs),) = item.items()
        if isinstance(name, str) and isinstance(kwargs, (dict, type(None))):
            try:
                return name, canonical_kwargs(kwargs)
            except ValueError as err:
                raise ValueError(f"Invalid sweep spec: optimizers entry {item!r}: {err}") from None
    raise ValueError(
        f"Invalid sweep spec: optimizers entry {item!r} (expected a name, package.module:Class, or a one-key mapping "
        "of one to its keyword arguments, e.g. {torch.optim:SGD: {momentum: 0.9}})"
    )


def _optimizers(raw: dict[str, Any]) -> tuple[str | dict[str, Any], ...]:
    value = raw.get("optimizers")
    items = value if isinstance(value, list) else [] if value is None else [value]
    if not items:
        raise ValueError(f"Invalid sweep spec: 'optimizers' is {'missing' if value is None else 'empty'}")
    arms = [optimizer_arm(item) for item in items]
    if len(set(arms)) != len(arms):
        raise ValueError(f"Invalid sweep spec: optimizers={items!r} has duplicates")
    return tuple(items)


_POSITIVE = (lambda x: math.isfinite(x) and x > 0, "must be a finite number > 0")
_NON_NEGATIVE = (lambda x: math.isfinite(x) and x >= 0, "must be a finite number >= 0")
_FINITE = (math.isfinite, "must be a finite number")


def _list(
    raw: dict[str, Any],
    key: str,
    kind: type,
    *,
    required: bool = True,
    rule: tuple[Callable[[float], bool], str] = _POSITIVE,
) -> tuple[Any, ...]:
    value = raw.get(key)
    if value is None:
        if required:
            raise ValueError(f"Invalid sweep spec: {key!r} is missing")
        return ()
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if kind is float and item is not None:
            try:  # PyYAML reads 1e-4 (no dot) as a string
                item = float(item)
            except (TypeError, ValueError):
                raise ValueError(f"Invalid sweep spec: {key}={item!r} is not a number") from None
            if not rule[0](item):
                raise ValueError(f"Invalid sweep spec: {key}={item!r} {rule[1]}")
        elif kind is int and (not isinstance(item, int) or isinstance(item, bool)):
            raise ValueError(f"Invalid sweep spec: {key}={item!r} is not an integer")
        elif kind is str and not isinstance(item, str):
            raise ValueError(f"Invalid sweep spec: {key}={item!r} is not a string")
        out.append(item)
    if required and not out:
        raise ValueError(f"Invalid sweep spec: {key!r} is empty")
    return tuple(out)


def _positive_int(raw: dict[str, Any], key: str, default: int | None) -> int | None:
    value = raw.get(key, default)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"Invalid sweep spec: {key}={value!r} must be a positive integer")
    return value


def _mapping(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise ValueError(f"Invalid sweep spec: {key}={value!r} is not a mapping")
    return dict(value)


def _check_names(spec: SweepSpec) -> None:
    from rl_adaloss.agents import ALGOS
    from rl_adaloss.sb3 import LR_FREE, OPTIMIZERS, is_class_path

    optimizers = [name for name, _ in map(optimizer_arm, spec.optimizers)]
    for key, names, valid in (("optimizers", optimizers, OPTIMIZERS), ("lr_free", spec.lr_free, OPTIMIZERS),
                              ("algos", spec.algos, ALGOS)):  # fmt: skip
        for name in names:
            if name not in valid and not (key == "optimizers" and is_class_path(name)):
                raise ValueError(f"Invalid sweep spec: {key}={name!r} is not valid (valid: {', '.join(sorted(valid))})")
    for name in spec.lr_free:
        if name not in LR_FREE:
            raise ValueError(f"Invalid sweep spec: lr_free={name!r} is not learning-rate-free (those are {sorted(LR_FREE)})")
    for algo in spec.algo_hyperparams:
        if algo not in spec.algos:
            raise ValueError(f"Invalid sweep spec: algo_hyperparams={algo!r} is not in algos {list(spec.algos)}")


def validate_spec(spec: SweepSpec) -> None:
    """Resolve every run of the grid and build one agent per (env, algo) (no training), before any run starts.

    Raises:
        ValueError: ``Invalid sweep spec: <env> <algo> <optimizer>: <what is wrong>``, naming the value and the valid
            choices.
    """
    from rl_adaloss.experiment.identity import resolve_run, validate_run

    _check_names(spec)
    built: set[tuple[str, str]] = set()
    for config in spec.runs("."):
        try:
            if (config.env, config.algo) in built:
                resolve_run(config)
            else:
                validate_run(config)
                built.add((config.env, config.algo))
        except (ValueError, ImportError) as err:
            message = str(err).removeprefix("Invalid configuration: ")
            raise ValueError(f"Invalid sweep spec: {config.env} {config.algo} {config.optimizer}: {message}") from None


def spec_from_dict(raw: Any) -> SweepSpec:
    """Validate a parsed YAML grid and return it as a :class:`SweepSpec`.

    Raises:
        ValueError: unknown key, env, algo or optimizer; non-positive lr/b0/budget; malformed value. The message
            names the offending field and value.
    """
    if not isinstance(raw, dict):
        raise ValueError(f"Invalid sweep spec: expected a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ValueError(f"Invalid sweep spec: unknown key(s) {unknown} (known: {sorted(_KEYS)})")
    algo_hp = _mapping(raw, "algo_hyperparams")
    for algo, hp in algo_hp.items():
        if not isinstance(hp, dict):
            raise ValueError(f"Invalid sweep spec: algo_hyperparams.{algo}={hp!r} is not a mapping")
    device = raw.get("device", "cpu")
    if not isinstance(device, str) or not (device in ("auto", "cpu", "cuda") or device.startswith("cuda:")):
        raise ValueError(f"Invalid sweep spec: device={device!r} (expected auto, cpu, cuda or cuda:N)")
    spec = SweepSpec(
        envs=_list(raw, "envs", str), algos=_list(raw, "algos", str), optimizers=_optimizers(raw),
        lrs=_list(raw, "lrs", float), seeds=_list(raw, "seeds", int), b0s=_list(raw, "b0s", float, required=False) or (None,),
        alphas=_list(raw, "alphas", float, required=False, rule=_NON_NEGATIVE) or (None,),
        cs=_list(raw, "cs", float, required=False, rule=_FINITE) or (None,),
        lr_free=_list(raw, "lr_free", str, required=False), n_timesteps=_positive_int(raw, "n_timesteps", None),
        n_envs=_positive_int(raw, "n_envs", None), eval_freq=_positive_int(raw, "eval_freq", 10_000) or 10_000,
        eval_episodes=_positive_int(raw, "eval_episodes", 5) or 5, hyperparams=_mapping(raw, "hyperparams"),
        algo_hyperparams=algo_hp, device=device,
    )  # fmt: skip
    if len(set(spec.seeds)) != len(spec.seeds):
        raise ValueError(f"Invalid sweep spec: seeds={list(spec.seeds)} has duplicates")
    for key in ("lrs", "b0s", "alphas", "cs"):
        values = getattr(spec, key)
        if len(set(values)) != len(values):
            raise ValueError(f"Invalid sweep spec: {key}={list(values)} has duplicates")
    validate_spec(spec)
    return spec


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a YAML grid file (see :func:`spec_from_dict`)."""
    try:
        raw = load_yaml(Path(path).read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"Invalid sweep spec {path}: not valid YAML ({err})") from None
    return spec_from_dict(raw)
