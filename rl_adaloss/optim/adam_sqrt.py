"""AdamSqrt, the paper's Adam baseline: Adam with step size ``1 / sqrt(b0 + t)``."""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torch.optim.optimizer import ParamsT

from rl_adaloss.optim._base import check_finite_nonneg, check_positive
from rl_adaloss.optim._families import AdamFamily
from rl_adaloss.optim._plain_step import PlainStepMixin
from rl_adaloss.optim.adamloss import check_betas

__all__ = ["AdamSqrt"]


class AdamSqrt(PlainStepMixin, AdamFamily):
    r"""Adam with the deterministic decay :math:`\eta_t = 1/\sqrt{b_0 + t}` (Section 5 of the AdaLoss paper).

    It is :class:`~rl_adaloss.AdamLoss` with every loss replaced by 1, so it isolates what the loss values add:

    .. math::
        b_t = b_{t-1} + 1, \qquad \eta_t = \frac{\eta^{\mathrm{lr}}_t / \eta^{\mathrm{lr}}_0}{\sqrt{b_t}}, \qquad
        x_{t+1} = x_t - \eta_t \, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}

    with :math:`b_0 =` ``b0`` if given, else :math:`1/\texttt{lr}^2`, and ``lr`` semantics as in ``AdamLoss``.

    Args:
        params: iterable of parameters or dicts defining param groups.
        lr: :math:`\eta_0` (default: 1e-3).
        b0: initial :math:`b_0 > 0` (default: None, meaning :math:`1/\texttt{lr}^2`).
        betas: Adam's :math:`(\beta_1, \beta_2)` (default: (0.9, 0.999)).
        eps: Adam's :math:`\epsilon` (default: 1e-8).
        weight_decay: L2 penalty added to the gradient (default: 0.0).
        foreach: use the ``torch._foreach`` kernels (default: None: see ``fused``; foreach whenever not fused and the
            group is on one device).
        fused: use torch's fused Adam kernel (default: None, i.e. on the CPU whenever ``foreach`` is None and the
            parameters are floating point on one device, where it is the fastest; ``foreach``/masked elsewhere).

    State:
        as ``AdamLoss``: ``rl_adaloss_accumulator`` (:math:`b_t`), ``rl_adaloss_lr0``, and Adam's per-parameter
        ``step``, ``exp_avg``, ``exp_avg_sq``.

    Example:
        >>> import torch
        >>> from rl_adaloss import AdamSqrt
        >>> w = torch.nn.Parameter(torch.tensor([1.0]))
        >>> opt = AdamSqrt([w], lr=0.5)      # b0 = 1 / 0.5^2 = 4
        >>> w.sum().backward()
        >>> _ = opt.step()                    # b = 5
        >>> opt.accumulators()
        [5.0]
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        *,
        b0: float | None = None,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        check_positive("b0", b0)
        check_betas(betas, eps)
        check_finite_nonneg("weight_decay", weight_decay)
        defaults = dict(lr=lr, b0=b0, betas=tuple(betas), eps=eps, weight_decay=weight_decay, foreach=foreach, fused=fused)
        super().__init__(params, defaults)

    def _increment(self, group: dict[str, Any], grads: list[Tensor], loss: Tensor | float | None) -> float | Tensor:
        return 1.0
