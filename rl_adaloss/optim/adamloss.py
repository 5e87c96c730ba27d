"""AdamLoss (Algorithm 2 of Wu, Ward et al., AAAI 2022): Adam whose step size is driven by the loss values seen."""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torch.optim.optimizer import ParamsT

from rl_adaloss.optim._base import check_finite, check_finite_nonneg, check_positive
from rl_adaloss.optim._families import AdamFamily
from rl_adaloss.optim.loss_feed import LossDrivenMixin

__all__ = ["AdamLoss", "check_betas"]


def check_betas(betas: tuple[float, float], eps: float) -> None:
    """Raise ``ValueError`` naming the bad value unless ``0 <= beta < 1`` for both betas and ``eps >= 0``."""
    if len(betas) != 2:
        raise ValueError(f"Invalid betas: {betas} (expected two values)")
    for i, beta in enumerate(betas):
        if not isinstance(beta, (int, float)) or not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
    check_finite_nonneg("epsilon", eps)


class AdamLoss(LossDrivenMixin, AdamFamily):
    r"""Adam with the AdaLoss step size `(paper) <https://arxiv.org/abs/1908.10525>`_ (the paper's AdamLoss).

    .. math::
        b_t = b_{t-1} + \alpha \, |f_t(x_t) - c|, \qquad
        \eta_t = \frac{\eta_t^{\mathrm{lr}} / \eta_0^{\mathrm{lr}}}{\sqrt{b_t}}, \qquad
        x_{t+1} = x_t - \eta_t \, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}

    with the usual bias-corrected moments :math:`\hat m_t, \hat v_t` of ``torch.optim.Adam`` (gradient plus the L2
    term ``weight_decay * x``, as in ``Adam``, not AdamW). The starting value is :math:`b_0 =` ``b0`` if given, else
    :math:`1/\texttt{lr}^2`. As in Algorithm 2 the loss is added *before* the step, so even the first step is
    :math:`\eta_1 = \texttt{lr}/\sqrt{1 + \alpha |f_1 - c| \, \texttt{lr}^2}`: Adam's first step with the same ``lr``
    only while :math:`\alpha |f_1 - c| \, \texttt{lr}^2 \ll 1` (a loss of 100 at ``lr = 1`` gives a tenth of it).
    :math:`\eta^{\mathrm{lr}}_t` is the group's current ``lr`` and :math:`\eta^{\mathrm{lr}}_0` the ``lr`` the
    accumulator was started from, so a schedule that rewrites ``group["lr"]`` (SB3 at every ``train()``, or any
    ``torch.optim.lr_scheduler``) multiplies the step rather than resetting :math:`b`. When a group is built with
    ``lr=0`` (SB3's ``Policy.load`` does that), :math:`\eta^{\mathrm{lr}}_0` and :math:`b_0` are taken from the
    first positive ``lr`` it steps with.

    The loss of a step is the sum of the scalar losses whose gradients are in ``.grad`` (gradient accumulation feeds
    their sum), taken from a closure, from ``step(loss=...)``, or automatically (:mod:`rl_adaloss.optim.loss_feed`).
    A non-finite loss skips the whole step, as ``GradScaler`` does: :math:`b`, moments and parameters stay untouched
    and ``nonfinite_skips()`` counts it.

    Args:
        params: iterable of parameters or dicts defining param groups.
        lr: :math:`\eta_0` (default: 1e-3).
        b0: initial :math:`b_0 > 0` (default: None, meaning :math:`1/\texttt{lr}^2`).
        alpha: :math:`\alpha \ge 0` (default: 1.0).
        c: :math:`c`, a surrogate for the optimal loss value (default: 0.0).
        betas: Adam's :math:`(\beta_1, \beta_2)` (default: (0.9, 0.999)).
        eps: Adam's :math:`\epsilon` (default: 1e-8).
        weight_decay: L2 penalty added to the gradient (default: 0.0).
        foreach: use the ``torch._foreach`` kernels (default: None: see ``fused``; foreach whenever not fused and the
            group is on one device).
        fused: use torch's fused Adam kernel (default: None, i.e. on the CPU whenever ``foreach`` is None and the
            parameters are floating point on one device, where it is the fastest; ``foreach``/masked elsewhere).

    State:
        per param group, ``rl_adaloss_accumulator`` holds :math:`b_t` (float64: a Python float on CPU, a 0-d tensor
        on the parameters' device otherwise; ``accumulators()``), ``rl_adaloss_lr0`` :math:`\eta^{\mathrm{lr}}_0`,
        ``rl_adaloss_nonfinite_skips`` the skipped steps (``nonfinite_skips()``); per parameter, ``state[p]`` holds
        ``step``, ``exp_avg`` and ``exp_avg_sq`` as in ``Adam``, so a state dict moves between ``Adam`` and
        ``AdamLoss`` in both directions.

    Example:
        >>> import torch
        >>> from rl_adaloss import AdamLoss
        >>> w = torch.nn.Parameter(torch.tensor([1.0]))
        >>> opt = AdamLoss([w], lr=0.1, b0=96.0)
        >>> loss = (2 * w).sum()        # f = 2
        >>> loss.backward()
        >>> _ = opt.step()              # b = 96 + 2 = 98; Adam's first step moves w by eta = 1/sqrt(98)
        >>> opt.accumulators(), round(1 - w.item(), 5), round(98**-0.5, 5)
        ([98.0], 0.10102, 0.10102)
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        *,
        b0: float | None = None,
        alpha: float = 1.0,
        c: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        check_positive("b0", b0)
        check_finite_nonneg("alpha", alpha)
        check_finite("c", c)
        check_betas(betas, eps)
        check_finite_nonneg("weight_decay", weight_decay)
        defaults = dict(
            lr=lr,
            b0=b0,
            alpha=alpha,
            c=c,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            foreach=foreach,
            fused=fused,
        )
        super().__init__(params, defaults)
        self._init_loss_feed()

    def _increment(self, group: dict[str, Any], grads: list[Tensor], loss: Tensor | float | None) -> float | Tensor:
        # The paper's line 3 of Algorithm 2: b_t = b_{t-1} + alpha * |f_t - c| (a host float or a device tensor).
        f = self._loss_operand(loss)
        return group["alpha"] * abs(f - group["c"])
