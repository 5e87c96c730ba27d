"""rl-adaloss: loss-driven step sizes (AdaLoss, AdamLoss) for PyTorch and Stable-Baselines3.

Importing the package (or ``rl_adaloss.optim``) needs torch alone. The swing-up environments register with Gymnasium
when ``rl_adaloss.envs`` is imported; ``import rl_adaloss`` does that too when Gymnasium is already imported (it then
costs nothing), and ``rl_adaloss.envs`` is always reachable as an attribute.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from rl_adaloss.optim import AdaGradNorm, AdaLoss, AdamLoss, AdamSqrt, MissingLossError, SGDDecaySqrt

__version__ = "0.2.0"

__all__ = ["AdaGradNorm", "AdaLoss", "AdamLoss", "AdamSqrt", "MissingLossError", "SGDDecaySqrt", "__version__"]

if "gymnasium" in sys.modules:  # registering is free now; users who import gymnasium first get the ids at once
    importlib.import_module("rl_adaloss.envs")


def __getattr__(name: str) -> Any:
    if name in ("envs", "sb3", "experiment"):
        return importlib.import_module(f"rl_adaloss.{name}")
    raise AttributeError(f"module 'rl_adaloss' has no attribute {name!r}")
