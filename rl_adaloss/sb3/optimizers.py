"""Optimizers by name, and fresh, identical ``policy_kwargs`` for fair Stable-Baselines3 comparisons.

An optimizer is named by a key of :data:`OPTIMIZERS` or, for any other ``torch.optim.Optimizer``, by its import path
``package.module:Class`` (e.g. ``torch.optim:SGD``): the eta_0-robustness benchmark runs on any optimizer without
editing this package. A class whose ``step`` needs the loss (a ``loss`` parameter, or a ``closure`` without a default)
gets it from :func:`rl_adaloss.optim.foreign.loss_fed`, as SB3 calls ``step()`` bare.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import re
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "LR_FREE",
    "OPTIMIZERS",
    "OptimizerSpec",
    "is_class_path",
    "optimizer_class",
    "optimizer_package_version",
    "optimizer_policy_kwargs",
    "optimizer_spec",
]

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


_CLASS_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def is_class_path(name: str) -> bool:
    """Whether ``name`` names an optimizer by import path (``package.module:Class``) rather than by a registered key."""
    return ":" in name


def optimizer_spec(name: str) -> OptimizerSpec:
    """Return how to build optimizer ``name``: its registered spec, or a plain spec for a ``module:Class`` path.

    A class path gets no defaults of its own (not even the on-policy ``eps=1e-5`` of the registered Adam-like
    optimizers): it is built with ``lr`` and exactly the ``optimizer_kwargs`` given.

    Raises:
        ValueError: an unknown name, or a path that is not ``package.module:Class``.
    """
    if is_class_path(name):
        path, kl_adaptive = (name[: -len("+kl")], True) if name.endswith("+kl") else (name, False)
        if not _CLASS_PATH.fullmatch(path):
            raise ValueError(f"Invalid optimizer: {name!r} (expected a registered name or package.module:Class)")
        return OptimizerSpec(path, adam_like=False, kl_adaptive=kl_adaptive)
    try:
        return OPTIMIZERS[name]
    except KeyError:
        raise ValueError(
            f"Invalid optimizer: {name!r} (valid: {', '.join(sorted(OPTIMIZERS))}, or package.module:Class)"
        ) from None


def _import_class(name: str) -> type[torch.optim.Optimizer]:
    """The class ``name`` designates, as its package defines it (not yet fed the loss)."""
    spec = optimizer_spec(name)
    module_name, qualname = spec.target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        if not is_class_path(name):
            raise ImportError(f"Optimizer {name!r} needs {module_name!r}: pip install 'rl-adaloss[{spec.extra}]'") from err
        raise ValueError(
            f"Invalid optimizer: {name!r} (module {module_name!r} does not import: {err})".splitlines()[0]
        ) from None
    except Exception as err:  # a module that fails while importing: still the user's value that is bad
        why = f"{type(err).__name__}: {err}".splitlines()[0]
        raise ValueError(f"Invalid optimizer: {name!r} (importing {module_name!r} failed: {why})") from None
    obj: Any = module
    for part in qualname.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"Invalid optimizer: {name!r} (module {module_name!r} has no attribute {qualname!r})")
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer)):
        what = f"class {obj.__module__}.{obj.__qualname__}" if isinstance(obj, type) else f"a {type(obj).__name__}"
        raise ValueError(f"Invalid optimizer: {name!r} ({what}, not a torch.optim.Optimizer subclass)")
    return obj


def _needs_loss(cls: type[torch.optim.Optimizer]) -> bool:
    """Whether ``cls.step`` needs the loss: it has a ``loss`` parameter, or a ``closure`` parameter without default."""
    from rl_adaloss.optim.loss_feed import LossDrivenMixin

    if issubclass(cls, LossDrivenMixin):  # fed already (this package's optimizers, loss_fed classes)
        return False
    params = inspect.signature(cls.step).parameters
    closure = params.get("closure")
    return "loss" in params or (closure is not None and closure.default is inspect.Parameter.empty)


def optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    """Return the optimizer class registered under ``name`` (e.g. ``"adamloss"``) or at path ``"module:Class"``.

    A class path whose ``step`` needs the loss is returned fed (:func:`rl_adaloss.optim.foreign.loss_fed`).

    Raises:
        ValueError: unknown name; a path that does not import, or names no ``torch.optim.Optimizer`` subclass.
        ImportError: a registered optimizer's package is missing; the message names the extra to install.
    """
    cls = _import_class(name)
    if is_class_path(name) and _needs_loss(cls):
        from rl_adaloss.optim.foreign import loss_fed

        return loss_fed(cls)
    return cls


def optimizer_package_version(name: str) -> tuple[str, str] | None:
    """``(top-level package, version)`` of a ``module:Class`` optimizer (None for registered names).

    The version is the installed distribution's, else the module's ``__version__``, else ``"unversioned"``.
    """
    if not is_class_path(name):
        return None
    from importlib import metadata

    _import_class(name)
    package = name.split(":")[0].split(".")[0]
    for dist in metadata.packages_distributions().get(package, []):
        return package, metadata.version(dist)
    return package, str(getattr(importlib.import_module(package), "__version__", "unversioned"))


def _check_kwargs(name: str, kwargs: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the keyword if optimizer ``name`` cannot take ``kwargs`` (checked on its signature)."""
    try:
        inspect.signature(_import_class(name)).bind([], lr=1.0, **kwargs)
    except TypeError as err:
        raise ValueError(f"Invalid optimizer_kwargs for {name!r}: {kwargs} ({err})") from None


def optimizer_policy_kwargs(
    name: str,
    algo: str,
    *,
    b0: float | None = None,
    alpha: float | None = None,
    c: float | None = None,
    base: dict[str, Any] | None = None,
    optimizer_kwargs: dict[str, Any] | None = None,
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
        optimizer_kwargs: more keyword arguments of the optimizer (applied last, so they win over the defaults).

    Raises:
        ValueError: unknown optimizer (or a ``module:Class`` path that does not import or is no optimizer), keyword
            arguments its signature does not take, or ``b0``/``alpha``/``c`` given for an optimizer that does not
            take them.

    Example:
        >>> kw = optimizer_policy_kwargs("adamloss", "ppo", alpha=0.5, base=dict(net_arch=[64, 64]))
        >>> kw["optimizer_class"].__name__, kw["optimizer_kwargs"], kw["net_arch"]
        ('AdamLoss', {'eps': 1e-05, 'alpha': 0.5}, [64, 64])
    """
    spec = optimizer_spec(name)
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
    opt_kwargs.update(optimizer_kwargs or {})
    _check_kwargs(name, opt_kwargs)
    kwargs["optimizer_class"] = optimizer_class(name)
    kwargs["optimizer_kwargs"] = opt_kwargs
    return kwargs
