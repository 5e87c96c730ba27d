"""Build a seeded Stable-Baselines3 agent from (algo, env id, optimizer, eta_0/b0/alpha/c, seed, device).

Hyperparameters come from :func:`rl_adaloss.agents.presets.find_preset`: ``agents/<algo>.yml``, else RL Zoo's tuned
preset (``rl_zoo3``), else SB3's defaults. The factory understands RL Zoo's special keys ``n_envs``, ``n_timesteps``,
``policy``, ``normalize``, ``noise_type`` / ``noise_std``, ``env_wrapper`` (SB3's ``wrapper_class``), its own
``ent_coef_optimizer`` (``sb3`` or ``policy``: see :class:`AgentConfig`; default ``policy`` for loss-driven
optimizers) and ``kl_adaptive_lr`` (the rule of a ``<optimizer>+kl`` arm), ``lin_<value>`` schedules (``learning_rate``,
``clip_range``, ``clip_range_vf``, ``delta_std``) and Python-source ``policy_kwargs`` (parsed, never evaluated). Keys
it cannot honour (``frame_stack``, ``callback``, ``replay_buffer_class``, ...) raise an error naming
the key, never a silent drop. Every other key must be a keyword argument of the algorithm (checked in
:mod:`rl_adaloss.agents.algos`, with the algorithms themselves). The optimizer comes from
:func:`rl_adaloss.sb3.optimizer_policy_kwargs`, so arms of a comparison differ only in the optimizer.

:func:`resolve_agent` does all of this without building anything (the run's identity is computed from it);
:func:`build_agent` builds the model; :func:`make_agent` does both.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import math
from dataclasses import dataclass, field
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm

from . import presets as _presets
from .algos import (
    ALGOS,
    FACTORY_KEYS,
    SCHEDULE_KEYS,
    algo_class,
    algo_defaults,
    check_keys,
    coerce_hyperparam,
    merge_preset,
    resolve_eta0,
)
from .envs import EnvWrappers, action_noise, make_vec_env_for, parse_env_wrapper
from .presets import SB3_DEFAULTS, parse_python_kwargs

__all__ = [
    "ALGOS",
    "AgentConfig",
    "LinearSchedule",
    "build_agent",
    "make_agent",
    "make_vec_env_for",
    "preset_summary",
    "resolve_agent",
    "to_jsonable",
]

# kl_adaptive_lr (this package's key): the rule's constants for a "<optimizer>+kl" arm (rl_adaloss.sb3.kl_adaptive),
# merged over KL_ARM_RULE; only those arms take it, so that one configuration has one name.
_KL_ALGOS = frozenset({"ppo", "ppo_mask", "ppo_lstm"})
# ent_coef_optimizer (this package's key): "sb3", SB3's own Adam for SAC/TQC/CrossQ's entropy coefficient, or
# "policy", the run's optimizer (rl_adaloss.sb3.set_ent_coef_optimizer). Only these algorithms learn ent_coef so.
# Default: "policy" for loss-driven optimizers (OptimizerSpec.loss_driven), "sb3" for the others.
_ENT_COEF_OPTIMIZERS = ("sb3", "policy")
_ENT_COEF_ALGOS = frozenset({"sac", "tqc", "crossq"})
KL_ARM_RULE: dict[str, Any] = dict(target_kl=0.02, kl_margin=2.0, factor=1.5, min_lr=1e-5, max_lr=1e-2, mode="epoch")
"""The KL-adaptive rule of the ``<optimizer>+kl`` grid arms: per epoch, d = 0.02 (chosen on issue 28's design task by
the rule written before the runs, then frozen: docs/issue28.md); rsl_rl's margin, factor and clamp."""


@dataclass(frozen=True)
class LinearSchedule:
    """RL Zoo's ``lin_<value>``: ``progress_remaining * initial_value`` (picklable, unlike a lambda)."""

    initial_value: float

    def __call__(self, progress_remaining: float) -> float:
        """Return the value at ``progress_remaining`` (1 at the start of training, 0 at the end)."""
        return progress_remaining * self.initial_value


@dataclass(frozen=True)
class AgentConfig:
    """Everything that determines an agent (enough to rebuild it with :func:`build_agent`)."""

    algo: str
    env_id: str
    optimizer: str
    lr: float
    """eta_0: SB3's ``learning_rate`` (for learning-rate-free optimizers, their multiplier, 1.0 by default)."""
    b0: float | None
    alpha: float | None
    c: float | None
    seed: int
    device: str
    n_envs: int
    n_timesteps: int | None
    """the preset's budget (None for SB3 defaults, which have none)."""
    normalize: bool | dict[str, Any]
    policy: str
    preset_source: str
    """``agents/<algo>.yml``, ``rl_zoo3 <version> hyperparams/<algo>.yml`` or ``SB3 defaults``."""
    optimizer_class: str
    """the optimizer's public import path, ``module:Class`` (e.g. ``torch.optim:Adam``)."""
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)
    """the keyword arguments the optimizer is built with (besides ``lr``), e.g. ``{"eps": 1e-5, "alpha": 0.5}``."""
    hyperparams: dict[str, Any] = field(default_factory=dict)
    """the algorithm's keyword arguments after overrides (schedules as ``lin_<x>`` strings, parsed policy_kwargs)."""
    env_kwargs: dict[str, Any] | None = None
    noise: tuple[str, float] | None = None
    ent_coef_optimizer: str = "sb3"
    """SAC/TQC/CrossQ's entropy coefficient: ``sb3`` (SB3's own Adam) or ``policy`` (the run's optimizer too; the
    default for loss-driven optimizers since issue 28)."""
    kl_adaptive_lr: dict[str, Any] | None = None
    """``<optimizer>+kl`` arms: the KL-adaptive rule's constants (:func:`rl_adaloss.sb3.use_kl_adaptive_lr`)."""
    env_wrapper: EnvWrappers = ()
    """env wrappers (RL Zoo's ``env_wrapper``) as ``(("module.Class", kwargs), ...)``, innermost first."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict (classes as ``module.QualName`` strings, tuples as lists).

        ``ent_coef_optimizer``, ``kl_adaptive_lr`` and ``env_wrapper`` appear only when they are not their defaults
        (``sb3``, None, none), so configurations written before they existed keep their identity (and their hash).
        """
        out = dataclasses.asdict(self)
        if out["ent_coef_optimizer"] == "sb3":
            del out["ent_coef_optimizer"]
        if out["kl_adaptive_lr"] is None:
            del out["kl_adaptive_lr"]
        if not out["env_wrapper"]:
            del out["env_wrapper"]
        return to_jsonable(out)  # type: ignore[no-any-return]


def to_jsonable(obj: Any) -> Any:
    """Turn classes into ``"module.QualName"`` and tuples into lists, recursively (for JSON and hashing)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, type):
        return f"{obj.__module__}.{obj.__qualname__}"
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj


def _check_env(env_id: str) -> None:
    import gymnasium as gym

    from rl_adaloss.envs import ensure_registered

    ensure_registered(env_id)
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
        raise ValueError(
            f"Invalid env: {env_id!r} is not a registered Gymnasium id ({hint}list them with "
            "`python -c 'import gymnasium; gymnasium.pprint_registry()'`)"
        )


@functools.cache
def _default_policy(env_id: str) -> str:
    """SB3's policy for the env's observation space: MultiInputPolicy (Dict), CnnPolicy (images), else MlpPolicy."""
    import gymnasium as gym
    from stable_baselines3.common.preprocessing import is_image_space

    env = gym.make(env_id)
    try:
        space = env.observation_space
    finally:
        env.close()
    if isinstance(space, gym.spaces.Dict):
        return "MultiInputPolicy"
    return "CnnPolicy" if is_image_space(space) else "MlpPolicy"


def resolve_agent(
    algo: str,
    env_id: str,
    optimizer: str = "adam",
    lr: float | None = None,
    *,
    b0: float | None = None,
    alpha: float | None = None,
    c: float | None = None,
    seed: int = 0,
    device: str = "auto",
    n_envs: int | None = None,
    hyperparams: dict[str, Any] | None = None,
    optimizer_kwargs: dict[str, Any] | None = None,
) -> AgentConfig:
    """Resolve everything :func:`make_agent` would build, without building it (arguments as in :func:`make_agent`).

    Raises:
        ValueError: unknown algo, env or optimizer; bad ``lr``; a preset key the factory cannot honour; a
            hyperparameter the algorithm does not take or of the wrong type; a disallowed name in ``policy_kwargs``.
            The message names the value and the valid choices.
        ImportError: the env or optimizer needs an extra that is not installed (the message names it).
    """
    from rl_adaloss.sb3 import LR_FREE, optimizer_policy_kwargs, optimizer_spec

    algo_class(algo)
    optimizer_spec(optimizer)  # ValueError naming the valid names
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"Invalid lr: {lr} (expected a finite number > 0)")
    _check_env(env_id)
    merged, source = merge_preset(algo, env_id, hyperparams)
    factory = {k: merged.pop(k) for k in FACTORY_KEYS if k in merged}
    check_keys(algo, merged)
    merged = {k: coerce_hyperparam(algo, k, v) for k, v in merged.items()}
    if optimizer in LR_FREE:
        merged["learning_rate"], lr = (1.0 if lr is None else lr), None
    merged["learning_rate"], eta0 = resolve_eta0(merged.get("learning_rate", algo_defaults(algo)["learning_rate"]), lr)
    policy_kwargs = parse_python_kwargs(merged.pop("policy_kwargs", None)) or {}
    if not isinstance(policy_kwargs, dict):
        raise ValueError(f"Invalid policy_kwargs: {policy_kwargs!r} (expected a mapping)")
    if "optimizer_class" in policy_kwargs:
        raise ValueError(
            f"Invalid policy_kwargs key 'optimizer_class' for {algo} on {env_id} (from {source}): the optimizer is "
            "chosen by the optimizer argument"
        )
    if "replay_buffer_kwargs" in merged:
        merged["replay_buffer_kwargs"] = parse_python_kwargs(merged["replay_buffer_kwargs"], "replay_buffer_kwargs")
    built = optimizer_policy_kwargs(optimizer, algo, b0=b0, alpha=alpha, c=c, base=policy_kwargs,
                                    optimizer_kwargs=optimizer_kwargs)  # fmt: skip
    normalize = parse_python_kwargs(factory.get("normalize", False), "normalize")
    if not isinstance(normalize, (bool, dict)):
        raise ValueError(f"Invalid normalize: {normalize!r} (expected true/false or a mapping of VecNormalize kwargs)")
    noise = factory.get("noise_type")
    n_steps_total = factory.get("n_timesteps")
    ent_coef = merged.get("ent_coef", "auto")
    learns_ent_coef = algo in _ENT_COEF_ALGOS and str(ent_coef).startswith("auto")
    # Issue 28: a loss-driven arm drives the entropy coefficient too unless the preset says otherwise (SB3's Adam at
    # eta_0 on the coefficient alone can wreck a run: docs/results.md, the post-hoc SAC entropy-coefficient grid).
    default = "policy" if learns_ent_coef and optimizer_spec(optimizer).loss_driven else "sb3"
    ent_coef_optimizer = factory.get("ent_coef_optimizer", default)
    if ent_coef_optimizer not in _ENT_COEF_OPTIMIZERS:
        raise ValueError(f"Invalid ent_coef_optimizer: {ent_coef_optimizer!r} (valid: {', '.join(_ENT_COEF_OPTIMIZERS)})")
    if ent_coef_optimizer != "sb3" and not learns_ent_coef:
        raise ValueError(
            f"Invalid ent_coef_optimizer: {ent_coef_optimizer!r} for {algo} with ent_coef={ent_coef!r} (only SAC, TQC "
            "and CrossQ with a learned ent_coef, 'auto' or 'auto_<init>', have that optimizer)"
        )
    kl_rule = _kl_rule(algo, optimizer, factory.get("kl_adaptive_lr"))
    return AgentConfig(
        algo=algo, env_id=env_id, optimizer=optimizer, lr=eta0, b0=b0, alpha=alpha, c=c, seed=seed, device=device,
        n_envs=int(n_envs or factory.get("n_envs", 1)), n_timesteps=None if n_steps_total is None else int(n_steps_total),
        normalize=normalize, policy=str(factory.get("policy") or _default_policy(env_id)), preset_source=source,
        optimizer_class=optimizer_spec(optimizer).target, optimizer_kwargs=built["optimizer_kwargs"],
        hyperparams={**merged, "policy_kwargs": policy_kwargs}, env_kwargs=factory.get("env_kwargs"),
        noise=None if noise is None else (str(noise), float(factory.get("noise_std", 0.1))),
        ent_coef_optimizer=ent_coef_optimizer, kl_adaptive_lr=kl_rule,
        env_wrapper=parse_env_wrapper(factory.get("env_wrapper", [])),
    )  # fmt: skip


def _kl_rule(algo: str, optimizer: str, override: Any) -> dict[str, Any] | None:
    """The KL-adaptive rule of a ``+kl`` arm: :data:`KL_ARM_RULE` with the preset's ``kl_adaptive_lr`` over it."""
    from rl_adaloss.sb3 import KLAdaptiveLR, optimizer_spec

    if not optimizer_spec(optimizer).kl_adaptive:
        if override is not None:
            raise ValueError(
                f"Invalid hyperparams key 'kl_adaptive_lr' for optimizer {optimizer!r}: only '<optimizer>+kl' arms adapt "
                f"the lr to the KL (use {optimizer + '+kl'!r})"
            )
        return None
    if algo not in _KL_ALGOS:
        raise ValueError(
            f"Invalid optimizer {optimizer!r} for {algo}: the KL-adaptive lr needs PPO's minibatch updates "
            f"(algos: {', '.join(sorted(_KL_ALGOS))})"
        )
    if override is not None and not isinstance(override, dict):
        raise ValueError(f"Invalid kl_adaptive_lr: {override!r} (expected a mapping of the rule's constants)")
    rule = {**KL_ARM_RULE, **(override or {})}
    unknown = sorted(set(rule) - set(KL_ARM_RULE))
    if unknown:
        raise ValueError(f"Invalid kl_adaptive_lr key {unknown[0]!r} (valid: {', '.join(KL_ARM_RULE)})")
    return KLAdaptiveLR(1.0, **rule).rule_kwargs()  # validated and normalised (floats)


def build_agent(config: AgentConfig, *, tensorboard_log: str | None = None, verbose: int = 0) -> BaseAlgorithm:
    """Build the seeded model described by ``config`` (from :func:`resolve_agent`)."""
    from stable_baselines3.common.utils import set_random_seed

    from rl_adaloss.sb3 import optimizer_policy_kwargs, set_ent_coef_optimizer, use_kl_adaptive_lr

    kwargs = copy.deepcopy(config.hyperparams)
    base = kwargs.pop("policy_kwargs")
    if config.optimizer_kwargs:
        base = {**base, "optimizer_kwargs": {**base.get("optimizer_kwargs", {}), **config.optimizer_kwargs}}
    policy_kwargs = optimizer_policy_kwargs(config.optimizer, config.algo, base=base)
    for key in SCHEDULE_KEYS:
        if isinstance(kwargs.get(key), str) and kwargs[key].startswith("lin_"):
            kwargs[key] = LinearSchedule(float(kwargs[key][4:]))
    set_random_seed(config.seed)
    venv = make_vec_env_for(
        config.env_id, config.n_envs, config.seed, normalize=config.normalize, gamma=float(kwargs.get("gamma", 0.99)),
        env_kwargs=config.env_kwargs, env_wrapper=config.env_wrapper,
    )  # fmt: skip
    noise = action_noise(config.noise, venv)
    if noise is not None:
        kwargs["action_noise"] = noise
    cls = algo_class(config.algo)
    model = cls(
        config.policy, venv, policy_kwargs=policy_kwargs, seed=config.seed, device=config.device,
        tensorboard_log=tensorboard_log, verbose=verbose, **kwargs,
    )  # fmt: skip
    if config.ent_coef_optimizer == "policy":
        set_ent_coef_optimizer(model)
    if config.kl_adaptive_lr is not None:
        use_kl_adaptive_lr(model, **config.kl_adaptive_lr)
    return model


def make_agent(
    algo: str,
    env_id: str,
    optimizer: str = "adam",
    lr: float | None = None,
    *,
    b0: float | None = None,
    alpha: float | None = None,
    c: float | None = None,
    seed: int = 0,
    device: str = "auto",
    tensorboard_log: str | None = None,
    n_envs: int | None = None,
    hyperparams: dict[str, Any] | None = None,
    verbose: int = 0,
    optimizer_kwargs: dict[str, Any] | None = None,
) -> tuple[BaseAlgorithm, AgentConfig]:
    """Build a seeded SB3 agent from its preset, with ``optimizer`` at step size ``lr`` (eta_0).

    Args:
        algo: key of :data:`ALGOS` (``ppo``, ``dqn``, ``sac``, ...).
        env_id: any registered Gymnasium id (preset: ``agents/<algo>.yml``, else RL Zoo's, else SB3's defaults).
        optimizer: key of :data:`rl_adaloss.sb3.OPTIMIZERS`, or any optimizer's ``package.module:Class`` path.
        lr: eta_0; replaces the preset's value (a ``lin_`` schedule keeps its shape). Default: the preset's value
            (SB3's default without a preset), or 1.0 for learning-rate-free optimizers.
        b0: AdamLoss/AdamSqrt initial accumulator (default 1/lr^2).
        alpha: AdamLoss alpha.
        c: AdamLoss c.
        seed: seeds Python, NumPy, torch, the envs and the algorithm.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        tensorboard_log: folder for SB3's TensorBoard output (None: no TensorBoard).
        n_envs: number of parallel envs (default: the preset's, else 1).
        hyperparams: overrides of the preset (``policy_kwargs`` are merged; a ``None`` value drops the key).
        verbose: SB3 verbosity.
        optimizer_kwargs: more keyword arguments of the optimizer (they win over the registered defaults).

    Returns:
        ``(model, config)``; ``config.device`` is the device the model was put on.

    Example:
        >>> model, config = make_agent("ppo", "Pendulum-v1", "adamloss", 1e-3, hyperparams={"n_envs": 1})
        >>> config.preset_source, config.n_envs, type(model.policy.optimizer).__name__
        ('agents/ppo.yml', 1, 'AdamLoss')
    """
    config = resolve_agent(
        algo, env_id, optimizer, lr, b0=b0, alpha=alpha, c=c, seed=seed, device=device, n_envs=n_envs,
        hyperparams=hyperparams, optimizer_kwargs=optimizer_kwargs,
    )  # fmt: skip
    model = build_agent(config, tensorboard_log=tensorboard_log, verbose=verbose)
    return model, dataclasses.replace(config, device=str(model.device))


def preset_summary(config: AgentConfig) -> str:
    """One line saying where the agent's hyperparameters came from (``train`` prints it)."""
    extra = ""
    if config.preset_source == SB3_DEFAULTS:
        zoo = "RL Zoo" if _presets.zoo_hyperparams_dir() else "RL Zoo (not installed: pip install 'rl-adaloss[zoo]')"
        extra = f" (no preset in agents/{config.algo}.yml or {zoo})"
    return f"preset: {config.algo} on {config.env_id} from {config.preset_source}{extra}"
