"""SGD-DecaySqrt, the paper's baseline: SGD with step ``lr / sqrt(b0^2 + t)``."""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torch.optim.optimizer import ParamsT

from rl_adaloss.optim._base import check_finite_nonneg, check_positive
from rl_adaloss.optim._families import SGDFamily
from rl_adaloss.optim._plain_step import PlainStepMixin

__all__ = ["SGDDecaySqrt"]


class SGDDecaySqrt(PlainStepMixin, SGDFamily):
    r"""SGD with a :math:`1/\sqrt{t}` decay, the SGD-DecaySqrt baseline of the AdaLoss paper (as in its code).

    .. math::
        w_{t} = w_{t-1} - \frac{\eta}{\sqrt{b_0^2 + t}} \left(g_t + \lambda w_{t-1}\right), \qquad t = 1, 2, \dots

    (SGD-Constant, the paper's other baseline, is plain ``torch.optim.SGD`` with ``lr = eta / b0``.)

    Args:
        params: iterable of parameters or dicts defining param groups.
        lr: :math:`\eta` (default: 1.0).
        b0: :math:`b_0 > 0` (default: 1.0).
        weight_decay: L2 penalty added to the gradient (default: 0.0).
        foreach: use the ``torch._foreach`` kernels (default: None, i.e. whenever the group is on one device).

    State:
        ``rl_adaloss_accumulator`` (per param group) holds :math:`b_0^2 + t`.

    Example:
        >>> import torch
        >>> from rl_adaloss import SGDDecaySqrt
        >>> w = torch.nn.Parameter(torch.tensor([1.0]))
        >>> opt = SGDDecaySqrt([w], lr=1.0, b0=1.0)
        >>> w.sum().backward()
        >>> _ = opt.step()                   # step 1 / sqrt(1 + 1)
        >>> round(w.item(), 6)
        0.292893
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1.0,
        *,
        b0: float = 1.0,
        weight_decay: float = 0.0,
        foreach: bool | None = None,
    ) -> None:
        check_positive("b0", b0)
        check_finite_nonneg("weight_decay", weight_decay)
        super().__init__(params, dict(lr=lr, b0=b0, weight_decay=weight_decay, foreach=foreach))

    def _increment(self, group: dict[str, Any], grads: list[Tensor], loss: Tensor | float | None) -> float | Tensor:
        return 1.0
