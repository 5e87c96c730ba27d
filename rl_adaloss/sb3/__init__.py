"""What SB3 users need beside the optimizers: named optimizers, fair policy_kwargs, a logger, ent_coef's optimizer, KL lr."""

from rl_adaloss.sb3.callback import OptimizerLogger, find_optimizers
from rl_adaloss.sb3.ent_coef import EntCoefOptimizer, set_ent_coef_optimizer
from rl_adaloss.sb3.kl_adaptive import KLAdaptiveCallback, KLAdaptiveLR, use_kl_adaptive_lr
from rl_adaloss.sb3.optimizers import (
    LR_FREE,
    OPTIMIZERS,
    OptimizerSpec,
    is_class_path,
    optimizer_class,
    optimizer_policy_kwargs,
    optimizer_spec,
)

__all__ = [
    "LR_FREE",
    "OPTIMIZERS",
    "EntCoefOptimizer",
    "KLAdaptiveCallback",
    "KLAdaptiveLR",
    "OptimizerLogger",
    "OptimizerSpec",
    "find_optimizers",
    "is_class_path",
    "optimizer_class",
    "optimizer_policy_kwargs",
    "optimizer_spec",
    "set_ent_coef_optimizer",
    "use_kl_adaptive_lr",
]
