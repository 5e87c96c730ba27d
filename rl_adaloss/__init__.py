"""rl-adaloss: loss-driven step sizes (AdaLoss, AdamLoss) for PyTorch and Stable-Baselines3."""

from rl_adaloss import envs  # noqa: F401  (registers the swing-up environments with Gymnasium)
from rl_adaloss.optim import AdaGradNorm, AdaLoss, AdamLoss, AdamSqrt, MissingLossError, SGDDecaySqrt

__version__ = "0.1.0"

__all__ = ["AdaGradNorm", "AdaLoss", "AdamLoss", "AdamSqrt", "MissingLossError", "SGDDecaySqrt", "__version__"]
