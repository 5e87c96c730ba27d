"""Loss-driven and baseline optimizers (``torch.optim`` style); losses reach them through :mod:`.loss_feed`."""

from rl_adaloss.optim.adagrad_norm import AdaGradNorm
from rl_adaloss.optim.adaloss import AdaLoss
from rl_adaloss.optim.adam_sqrt import AdamSqrt
from rl_adaloss.optim.adamloss import AdamLoss
from rl_adaloss.optim.adamloss_fade import AdamLossFade
from rl_adaloss.optim.adamloss_rel import AdamLossRel
from rl_adaloss.optim.foreign import loss_fed
from rl_adaloss.optim.loss_feed import LossDrivenMixin, MissingLossError
from rl_adaloss.optim.sgd_decay_sqrt import SGDDecaySqrt

LOSS_DRIVEN = (AdaLoss, AdamLoss)

__all__ = [
    "LOSS_DRIVEN",
    "AdaGradNorm",
    "AdaLoss",
    "AdamLoss",
    "AdamLossFade",
    "AdamLossRel",
    "AdamSqrt",
    "LossDrivenMixin",
    "MissingLossError",
    "SGDDecaySqrt",
    "loss_fed",
]
