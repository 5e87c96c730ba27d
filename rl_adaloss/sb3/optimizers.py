"""Optimizers by name, and fresh, identical ``policy_kwargs`` for fair Stable-Baselines3 comparisons."""

from __future__ import annotations

import copy
import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["LR_FREE", "OPTIMIZERS", "OptimizerSpec", "optimizer_class", "optimizer_policy_kwargs"]

ON_POLICY_ALGOS = frozenset({"ppo", "a2c", "trpo", "recurrentppo", "ppo_lstm", "maskableppo", "ppo_mask"})


@dataclass(frozen=True)
class OptimizerSpec:
    """How to build one named optimizer.

    Attributes:
        target: ``"module:Class"`` import path (imported lazily: the baselines are optional extras).
        loss_driven: it takes ``b0``, ``alpha`` and ``c`` (AdaLoss family).
        adam_like: it accepts ``eps`` (so the on-policy ``eps=1e-5`` default of SB3's Adam applies to it too).
        lr_free: a learning-rate-free method; its ``lr`` is a multiplier whose recommended value is 1.0.
        extra: package extra that provides it, for the error message.
        kl_adaptive: a grid arm ``<name>+kl``: the optimizer with the KL-adaptive learning rate of
            :mod:`rl_adaloss.sb3.kl_adaptive` (PPO family only; eta_0 is its starting lr).
    """

    target: str
    loss_driven: bool = False
    adam_like: bool = True
    lr_free: bool = False
    takes_b0: bool = False
    extra: str | None = None
    kl_adaptive: bool = False


OPTIMIZERS: dict[str, OptimizerSpec] = {
    "adam": OptimizerSpec("torch.optim:Adam"),
    "adamloss": OptimizerSpec("rl_adaloss.optim:AdamLoss", loss_driven=True, takes_b0=True),
    # A documented variant, not the paper's method: AdamLoss whose b0 fades (the small-eta_0 fix; docs/results.md).
    "adamloss-fade": OptimizerSpec("rl_adaloss.optim:AdamLossFade", loss_driven=True, takes_b0=True),
    # Issue 13: loss-scale-free, two-sided (losses relative to the first ones, fading b0); a variant, not the paper's.
    "adamloss-rel": OptimizerSpec("rl_adaloss.optim:AdamLossRel", loss_driven=True, takes_b0=True),
    "adamsqrt": OptimizerSpec("rl_adaloss.optim:AdamSqrt", takes_b0=True),
    "prodigy": OptimizerSpec("prodigyopt:Prodigy", lr_free=True, extra="baselines"),
    "dadapt-adam": OptimizerSpec("dadaptation:DAdaptAdam", lr_free=True, extra="baselines"),
    "dog": OptimizerSpec("dog:DoG", adam_like=False, lr_free=True, extra="baselines"),
    # A loss-driven peer (Polyak family) that needs the loss at every step: fed like AdamLoss (rl_adaloss.optim.peers).
    "momo-adam": OptimizerSpec("rl_adaloss.optim.peers:MomoAdam", extra="baselines"),
}
# Issue 28: every optimizer that takes an lr, driven by the KL-adaptive rule (the anchor robotics PPO users run).
OPTIMIZERS.update(
    {f"{name}+kl": dataclasses.replace(spec, kl_adaptive=True) for name, spec in list(OPTIMIZERS.items()) if not spec.lr_free}
)
LR_FREE = frozenset(name for name, spec in OPTIMIZERS.items() if spec.lr_free)


def _spec(name: str) -> OptimizerSpec:
    try:
        return OPTIMIZERS[name]
    except KeyError:
        raise ValueError(f"Invalid optimizer: {name!r} (known: {', '.join(sorted(OPTIMIZERS))})") from None


def optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    """Return the optimizer class registered under ``name`` (e.g. ``"adamloss"``).

    Raises:
        ValueError: unknown name.
        ImportError: the optimizer's package is missing; the message names the extra to install.
    """
    spec = _spec(name)
    module_name, cls_name = spec.target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ImportError(f"Optimizer {name!r} needs {module_name!r}: pip install 'rl-adaloss[{spec.extra}]'") from err
    return getattr(module, cls_name)  # type: ignore[no-any-return]


def optimizer_policy_kwargs(
    name: str,
    algo: str,
    *,
    b0: float | None = None,
    alpha: float | None = None,
    c: float | None = None,
    base: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return a fresh ``policy_kwargs`` dict that makes an SB3 algorithm use optimizer ``name``.

    Every call returns new objects (SB3 mutates the dict it is given), and arms of a comparison differ only in the
    optimizer: for on-policy algorithms SB3 gives Adam ``eps=1e-5`` only when ``optimizer_kwargs`` is None, so this
    sets ``eps=1e-5`` explicitly for every Adam-like optimizer there.

    Args:
        name: a key of :data:`OPTIMIZERS` (``adam``, ``adamloss``, ``adamsqrt``, ``prodigy``, ``dadapt-adam``, ``dog``).
        algo: the SB3 algorithm's name (``"ppo"``, ``"sac"``, ...), case-insensitive.
        b0: initial accumulator for AdamLoss / AdamSqrt (default: ``1/lr^2``).
        alpha: AdamLoss's alpha (default: the optimizer's default, 1.0).
        c: AdamLoss's c (default: 0.0).
        base: other ``policy_kwargs`` to start from (deep-copied; its ``optimizer_kwargs`` are kept and extended).

    Raises:
        ValueError: unknown optimizer, or ``b0``/``alpha``/``c`` given for an optimizer that does not take them.

    Example:
        >>> kw = optimizer_policy_kwargs("adamloss", "ppo", alpha=0.5, base=dict(net_arch=[64, 64]))
        >>> kw["optimizer_class"].__name__, kw["optimizer_kwargs"], kw["net_arch"]
        ('AdamLoss', {'eps': 1e-05, 'alpha': 0.5}, [64, 64])
    """
    spec = _spec(name)
    kwargs = copy.deepcopy(base) if base else {}
    opt_kwargs: dict[str, Any] = dict(kwargs.pop("optimizer_kwargs", None) or {})
    if spec.adam_like and algo.lower() in ON_POLICY_ALGOS:
        opt_kwargs.setdefault("eps", 1e-5)
    for key, value in (("b0", b0), ("alpha", alpha), ("c", c)):
        if value is None:
            continue
        allowed = spec.loss_driven or (key == "b0" and spec.takes_b0)
        if not allowed:
            raise ValueError(f"Invalid {key}={value} for optimizer {name!r}: it does not use {key}")
        opt_kwargs[key] = value
    kwargs["optimizer_class"] = optimizer_class(name)
    kwargs["optimizer_kwargs"] = opt_kwargs
    return kwargs
