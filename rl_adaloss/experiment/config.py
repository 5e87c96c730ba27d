"""The run configuration (one frozen dataclass; ``rl-adaloss train`` builds its flags from it) and helpers around it."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from rl_adaloss.agents import AgentConfig

__all__ = [
    "RunConfig",
    "canonical_kwargs",
    "hyperparams_items",
    "load_yaml",
    "optimizer_label",
    "parse_hyperparams",
    "parse_optimizer_kwargs",
    "resolve_agent_config",
    "resolve_lr",
    "run_dir_name",
]


class _Yaml12Floats(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``1e-5`` as a float as YAML 1.2 and JSON do (YAML 1.1 reads it as a string)."""


_Yaml12Floats.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load``, except that ``1e-5`` is a float (our own ``json.dumps`` writes floats so)."""
    return yaml.load(text, Loader=_Yaml12Floats)  # a SafeLoader subclass: no arbitrary objects


def _field(default: Any, doc: str) -> Any:
    """A field and its one description (its ``help`` metadata; ``rl-adaloss train -h`` prints it for the flag)."""
    return field(default=default, metadata={"help": doc})


@dataclass(frozen=True)
class RunConfig:
    """One seeded training run: an agent preset, an optimizer at step size eta_0, a budget and an evaluation plan.

    Each field is described once, in its ``help`` metadata (``dataclasses.fields(RunConfig)``): ``rl-adaloss train``
    makes one flag of each field with that text as its help, and ``help(RunConfig)`` lists the fields with it.
    """

    algo: str = _field("ppo", "SB3 algorithm (a key of rl_adaloss.agents.ALGOS).")
    env: str = _field(
        "Pendulum-v1",
        "any registered Gymnasium id; preset from agents/<algo>.yml, else RL Zoo's (rl_zoo3), else SB3's defaults.",
    )
    optimizer: str = _field(
        "adam", "optimizer name (a key of rl_adaloss.sb3.OPTIMIZERS) or any optimizer's package.module:Class path."
    )
    lr: float | None = _field(
        None, "eta_0 (SB3's learning_rate); default: the preset's value, or 1.0 for learning-rate-free optimizers."
    )
    b0: float | None = _field(None, "AdamLoss/AdamSqrt initial accumulator (default: 1/lr^2).")
    alpha: float | None = _field(None, "AdamLoss alpha (default: the optimizer's).")
    c: float | None = _field(None, "AdamLoss c (default: the optimizer's).")
    seed: int = _field(0, "seed of Python, NumPy, torch, the training envs and the evaluation env (seed + 10_000).")
    n_timesteps: int | None = _field(
        None, "training budget in env steps (default: the preset's budget; required with SB3 defaults)."
    )
    n_envs: int | None = _field(None, "number of parallel training envs (default: the preset's).")
    device: str = _field("cpu", "torch device: auto, cpu, cuda or cuda:N.")
    eval_freq: int = _field(
        10_000,
        "evaluate every this many env steps (summed over the parallel envs); the end of training is always evaluated.",
    )
    eval_episodes: int = _field(5, "episodes per evaluation (deterministic policy).")
    log_folder: str = _field("runs/train", "parent folder; the run writes <log_folder>/<run_dir_name>.")
    hyperparams: tuple[str, ...] = _field(
        (), "preset overrides key=value, values parsed as YAML, e.g. batch_size=256 'policy_kwargs={net_arch: [32]}'."
    )
    torch_threads: int = _field(1, "torch intra-op threads (1 so that parallel runs do not oversubscribe the cores).")
    optimizer_kwargs: str | None = _field(
        None, "more keyword arguments of the optimizer, a YAML/JSON mapping such as '{momentum: 0.9}' (kept as JSON)."
    )
    checkpoint_freq: int = _field(
        50_000,
        "write a checkpoint every this many env steps (0: never); a rerun resumes an unfinished run from its last one "
        "(docs/checkpoints.md). Not part of the run's identity: it does not change the results.",
    )


# The fields' descriptions as the docstring's Attributes section (Google style), for help() and API docs.
RunConfig.__doc__ = f"{(RunConfig.__doc__ or '').rstrip()}\n\n    Attributes:\n" + "".join(
    f"        {f.name}: {f.metadata['help']}\n" for f in fields(RunConfig)
)


def canonical_kwargs(value: str | dict[str, Any] | None) -> str | None:
    """Return optimizer kwargs (YAML/JSON text or a mapping) as canonical JSON (sorted keys), or None when empty.

    Raises:
        ValueError: not valid YAML, not a mapping, or a key that is not a string.
    """
    if value is None:
        return None
    data = value
    if isinstance(value, str):
        try:
            data = load_yaml(value)
        except yaml.YAMLError as err:
            raise ValueError(f"Invalid optimizer_kwargs: {value!r} (not valid YAML: {err})".splitlines()[0]) from None
    if data is None:
        return None
    if not isinstance(data, dict) or not all(isinstance(key, str) for key in data):
        raise ValueError(f"Invalid optimizer_kwargs: {value!r} (expected a mapping such as '{{momentum: 0.9}}')")
    return json.dumps(data, sort_keys=True) if data else None


def parse_optimizer_kwargs(text: str | None) -> dict[str, Any]:
    """The optimizer kwargs of a :class:`RunConfig` as a dict (``{}`` when none; see :func:`canonical_kwargs`)."""
    canonical = canonical_kwargs(text)
    return {} if canonical is None else dict(json.loads(canonical))


def optimizer_label(optimizer: str, optimizer_kwargs: str | None) -> str:
    """The arm's name in tables: the optimizer, plus its kwargs if any (``torch.optim:SGD(momentum=0.9)``)."""
    kwargs = parse_optimizer_kwargs(optimizer_kwargs)
    if not kwargs:
        return optimizer
    return f"{optimizer}({', '.join(f'{k}={json.dumps(v)}' for k, v in kwargs.items())})"


def parse_hyperparams(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings (values as YAML) into a dict.

    Raises:
        ValueError: an item without ``=`` or with a value that is not valid YAML.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"Invalid hyperparams item: {item!r} (expected key=value)")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ValueError(f"Invalid hyperparams value for {key!r}: {value!r} ({err})") from None
    return out


def hyperparams_items(hyperparams: dict[str, Any]) -> tuple[str, ...]:
    """Inverse of :func:`parse_hyperparams`: ``{"a": [1]}`` -> ``("a=[1]",)`` (JSON is valid YAML), sorted by key."""
    return tuple(f"{key}={json.dumps(hyperparams[key])}" for key in sorted(hyperparams))


def resolve_agent_config(config: RunConfig) -> AgentConfig:
    """Resolve the run's agent (:func:`rl_adaloss.agents.resolve_agent` on the run's fields): the one way from a run.

    Raises:
        ValueError: the config does not resolve (unknown algo, env, optimizer, bad hyperparameters).
        ImportError: an extra the env or optimizer needs is missing.
    """
    from rl_adaloss.agents import resolve_agent

    return resolve_agent(
        config.algo, config.env, config.optimizer, config.lr, b0=config.b0, alpha=config.alpha, c=config.c,
        seed=config.seed, device=config.device, n_envs=config.n_envs, hyperparams=parse_hyperparams(config.hyperparams),
        optimizer_kwargs=parse_optimizer_kwargs(config.optimizer_kwargs),
    )  # fmt: skip


def resolve_lr(config: RunConfig) -> float:
    """Return eta_0 as the run will use it: the explicit ``lr``, 1.0 for lr-free optimizers, else the preset's.

    Raises:
        ValueError: the config does not resolve (unknown algo, env, optimizer, bad hyperparameters).
    """
    if config.lr is not None:
        return float(config.lr)
    from rl_adaloss.sb3 import LR_FREE

    if config.optimizer in LR_FREE:
        return 1.0
    # Only what the preset's eta_0 depends on (a bad b0 or optimizer kwargs must not change the run's folder name).
    lr_only = replace(config, b0=None, alpha=None, c=None, seed=0, device="auto", n_envs=None, optimizer_kwargs=None)
    return resolve_agent_config(lr_only).lr


def run_dir_name(config: RunConfig) -> str:
    """Return ``{env}__{algo}__{optimizer}__lr{lr}__s{seed}`` ("/" in env ids becomes "-").

    ``__b0{b0}``, ``__a{alpha}`` and ``__c{c}`` are added before the seed when set. A ``module:Class`` optimizer is
    written ``module.Class``; optimizer kwargs add ``-k`` and 8 hex digits of their hash to the optimizer
    (``torch.optim.SGD-k1a2b3c4d``). The name is for people (tables join on it); the run's identity is its whole
    resolved configuration, hashed in ``config.json``.
    """
    optimizer = config.optimizer.replace(":", ".")
    kwargs = canonical_kwargs(config.optimizer_kwargs)
    if kwargs is not None:
        optimizer += f"-k{hashlib.sha256(kwargs.encode()).hexdigest()[:8]}"
    name = f"{config.env.replace('/', '-')}__{config.algo}__{optimizer}__lr{resolve_lr(config):g}"
    for tag, value in (("b0", config.b0), ("a", config.alpha), ("c", config.c)):
        if value is not None:
            name += f"__{tag}{value:g}"
    return f"{name}__s{config.seed}"
