"""What Stable-Baselines3 users need beside the optimizers: named optimizers, fair policy_kwargs, a logger."""

from rl_adaloss.sb3.callback import OptimizerLogger, find_optimizers
from rl_adaloss.sb3.optimizers import LR_FREE, OPTIMIZERS, OptimizerSpec, optimizer_class, optimizer_policy_kwargs

__all__ = [
    "LR_FREE",
    "OPTIMIZERS",
    "OptimizerLogger",
    "OptimizerSpec",
    "find_optimizers",
    "optimizer_class",
    "optimizer_policy_kwargs",
]
