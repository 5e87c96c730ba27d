"""AdaGrad-Norm (Ward, Wu and Bottou, 2020; eq. (1)-(2) of the AdaLoss paper): one step size per param group."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from rl_adaloss.optim._base import check_finite_nonneg, check_positive
from rl_adaloss.optim._families import SGDFamily
from rl_adaloss.optim._plain_step import PlainStepMixin

__all__ = ["AdaGradNorm"]


class AdaGradNorm(PlainStepMixin, SGDFamily):
    r"""SGD with the AdaGrad-Norm step size `(Ward et al., 2020) <https://arxiv.org/abs/1806.01811>`_.

    .. math::
        b_{t}^2 = b_{t-1}^2 + \|g_t\|^2, \qquad w_{t+1} = w_t - \frac{\eta}{b_t} \left(g_t + \lambda w_t\right)

    where :math:`g_t` is the whole gradient of the param group (the norm is taken over all its parameters together),
    :math:`\eta` is ``lr`` and :math:`\lambda` is ``weight_decay`` (not part of the norm). A non-finite gradient norm
    skips the whole step (:math:`b` and parameters untouched) and is counted by ``nonfinite_skips()``.

    Args:
        params: iterable of parameters or dicts defining param groups.
        lr: :math:`\eta` (default: 1.0).
        b0: initial :math:`b_0 > 0` (default: 1.0).
        weight_decay: L2 penalty added to the gradient (default: 0.0).
        foreach: use the ``torch._foreach`` kernels (default: None, i.e. whenever the group is on one device).

    State:
        ``rl_adaloss_accumulator`` (per param group) holds :math:`b_t^2`
        (float64: a Python float on CPU, a 0-d tensor on the parameters' device otherwise).

    Example:
        >>> import torch
        >>> from rl_adaloss import AdaGradNorm
        >>> w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
        >>> opt = AdaGradNorm([w], lr=1.0, b0=1.0)
        >>> (0.5 * (w**2).sum()).backward()   # grad = (3, 4), ||grad||^2 = 25
        >>> _ = opt.step()                     # b^2 = 26
        >>> round(opt.effective_lrs()[0] ** -2, 6)
        26.0
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
        norms = torch._foreach_norm(grads) if len(grads) > 1 else [torch.linalg.vector_norm(grads[0])]
        total = torch.linalg.vector_norm(torch.stack(norms).to(torch.float64))
        return total.square()
