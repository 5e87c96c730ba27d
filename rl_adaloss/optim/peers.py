"""Loss-driven optimizers from other packages, fed by :mod:`rl_adaloss.optim.foreign` so vanilla SB3 can call them.

``MomoAdam`` (Schaipp et al., *MoMo: Momentum Models for Adaptive Learning Rates*, ICML 2024; package ``momo-opt``,
extra ``baselines``) needs the loss at every step; here it gets it the way AdamLoss does, so
``policy_kwargs=dict(optimizer_class=MomoAdam)`` works in every SB3 algorithm. Imported lazily: ``momo`` is optional.
"""

from __future__ import annotations

from typing import Any

from rl_adaloss.optim.foreign import loss_fed

__all__ = ["MomoAdam"]  # noqa: F822 (built lazily by __getattr__)


def __getattr__(name: str) -> Any:
    if name == "MomoAdam":
        try:
            import momo
        except ImportError as err:
            raise ImportError("MomoAdam needs the 'momo-opt' package: pip install 'rl-adaloss[baselines]'") from err
        cls = loss_fed(momo.MomoAdam)
        cls.__module__, cls.__qualname__, cls.__name__ = __name__, "MomoAdam", "MomoAdam"  # pickles by reference
        globals()["MomoAdam"] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
