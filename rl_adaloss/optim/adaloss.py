"""AdaLoss (Algorithm 1 of Wu, Ward et al., AAAI 2022): SGD whose step size shrinks with the loss values seen."""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torch.optim.optimizer import ParamsT

from rl_adaloss.optim._base import check_finite, check_finite_nonneg, check_positive
from rl_adaloss.optim._families import SGDFamily
from rl_adaloss.optim.loss_feed import LossDrivenMixin

__all__ = ["AdaLoss"]


class AdaLoss(LossDrivenMixin, SGDFamily):
    r"""SGD with the AdaLoss step size `(paper) <https://arxiv.org/abs/1908.10525>`_.

    .. math::
        b_{t}^2 = b_{t-1}^2 + \alpha \, |f_t(w_t) - c|, \qquad
        w_{t+1} = w_t - \frac{\eta}{b_t} \left(\nabla f_t(w_t) + \lambda w_t\right), \qquad b_0 = \texttt{b0}

    where :math:`f_t` is the loss whose gradient is being applied, :math:`\eta` is ``lr`` (its current value, so a
    schedule multiplies the step) and :math:`\lambda` is ``weight_decay`` (an L2 term added to the gradient, as in
    ``torch.optim.SGD``). :math:`b` only grows, so the step can only shrink.

    The loss of a step is the sum of the scalar losses whose gradients are in ``.grad``, taken from a closure, from
    ``step(loss=...)``, or automatically (:mod:`rl_adaloss.optim.loss_feed`). A non-finite loss skips the whole step:
    :math:`b` and the parameters stay untouched and ``nonfinite_skips()`` counts it.

    Args:
        params: iterable of parameters or dicts defining param groups.
        lr: :math:`\eta` (default: 1.0).
        b0: initial :math:`b_0 > 0` (default: 1.0).
        alpha: :math:`\alpha \ge 0`, how fast :math:`b^2` grows with the loss (default: 1.0).
        c: :math:`c`, a surrogate for the optimal loss value (default: 0.0).
        weight_decay: L2 penalty added to the gradient (default: 0.0).
        foreach: use the ``torch._foreach`` kernels (default: None, i.e. whenever the group is on one device).

    State:
        per param group, ``rl_adaloss_accumulator`` holds :math:`b_t^2` (float64: a Python float on CPU, a 0-d
        tensor on the parameters' device otherwise) and ``rl_adaloss_nonfinite_skips`` the skipped steps;
        ``effective_lrs()`` returns :math:`\eta / b_t` per group. There is no per-parameter state.

    Example:
        >>> import torch
        >>> from rl_adaloss import AdaLoss
        >>> w = torch.nn.Parameter(torch.tensor([1.0]))
        >>> opt = AdaLoss([w], lr=1.0, b0=1.0)
        >>> loss = (3 * w).sum()        # f = 3, grad = 3
        >>> loss.backward()
        >>> _ = opt.step()              # b^2 = 1 + 3 = 4, w = 1 - 3 / 2
        >>> w.item(), opt.effective_lrs()
        (-0.5, [0.5])
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1.0,
        *,
        b0: float = 1.0,
        alpha: float = 1.0,
        c: float = 0.0,
        weight_decay: float = 0.0,
        foreach: bool | None = None,
    ) -> None:
        check_positive("b0", b0)
        check_finite_nonneg("alpha", alpha)
        check_finite("c", c)
        check_finite_nonneg("weight_decay", weight_decay)
        defaults = dict(lr=lr, b0=b0, alpha=alpha, c=c, weight_decay=weight_decay, foreach=foreach)
        super().__init__(params, defaults)
        self._init_loss_feed()

    def _increment(self, group: dict[str, Any], grads: list[Tensor], loss: Tensor | float | None) -> float | Tensor:
        # The paper's line 3 of Algorithm 1: b_t^2 = b_{t-1}^2 + alpha * |f_t - c| (a host float or a device tensor).
        f = self._loss_operand(loss)
        return group["alpha"] * abs(f - group["c"])
