"""Functional form of the loss-driven Adam step, as ``torch.optim.adam.adam`` is of ``torch.optim.Adam``.

:func:`adamloss` runs one AdamLoss step on lists of tensors with an explicit loss and accumulator, through the same
kernels as :class:`~rl_adaloss.AdamLoss` (loop, ``foreach`` or ``fused``), and returns the new accumulator. It keeps no
state and reads no ``.grad``: for custom training loops, ``torch.func``-style code, or to see the whole step in one
place. ``tests/test_adamloss_reference.py`` checks it, and the optimizer's three implementations, against
:mod:`rl_adaloss.optim.adamloss_reference` (the paper's Algorithm 2 as written).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rl_adaloss.optim._kernels import adam_update, adam_update_fused

__all__ = ["adamloss"]


def adamloss(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    state_steps: list[Tensor],
    *,
    loss: float | Tensor,
    accumulator: float,
    lr: float,
    lr0: float,
    alpha: float = 1.0,
    c: float = 0.0,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    foreach: bool = False,
    fused: bool = False,
) -> float:
    r"""One AdamLoss step (Algorithm 2 of the AdaLoss paper), in place; return the new accumulator :math:`b_t`.

    .. math::
        b_t = b_{t-1} + \alpha |f_t - c|, \qquad x_{t+1} = x_t - \frac{\texttt{lr}/\texttt{lr0}}{\sqrt{b_t}}
        \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}

    Args:
        params: the parameters, updated in place.
        grads: their gradients (plus ``weight_decay * p`` is added here, as in ``torch.optim.Adam``).
        exp_avgs: Adam's first moments, updated in place.
        exp_avg_sqs: Adam's second moments, updated in place.
        state_steps: each parameter's step count before this step (0-d float32 tensors, as in torch's Adam), advanced.
        loss: :math:`f_t`, the loss whose gradients ``grads`` are (a float or a scalar tensor).
        accumulator: :math:`b_{t-1}` (``b0``, e.g. ``1/lr**2``, at the first step).
        lr: the current learning rate.
        lr0: the learning rate the accumulator was started from (``lr / lr0`` scales the step, as a schedule does).
        alpha: :math:`\alpha \ge 0` (default: 1.0).
        c: :math:`c`, a surrogate for the optimal loss value (default: 0.0).
        beta1: Adam's :math:`\beta_1` (default: 0.9).
        beta2: Adam's :math:`\beta_2` (default: 0.999).
        eps: Adam's :math:`\epsilon` (default: 1e-8).
        weight_decay: L2 penalty added to the gradient (default: 0.0).
        foreach: use the ``torch._foreach`` kernels (default: False).
        fused: use torch's fused Adam kernel (default: False; not with ``foreach``).

    Returns:
        :math:`b_t`. A non-finite loss skips the step: nothing changes and :math:`b_{t-1}` is returned.

    Raises:
        ValueError: ``foreach`` and ``fused`` both set, or lists of different lengths.

    Example:
        >>> import torch
        >>> w = torch.ones(1)
        >>> m, v, step = torch.zeros(1), torch.zeros(1), torch.zeros(())
        >>> adamloss([w], [torch.ones(1)], [m], [v], [step], loss=2.0, accumulator=96.0, lr=0.1, lr0=0.1)
        98.0
        >>> round(1 - w.item(), 5), step.item()   # Adam's first step moves w by 1/sqrt(98)
        (0.10102, 1.0)
    """
    if foreach and fused:
        raise ValueError("Invalid foreach=True with fused=True: choose one implementation")
    lengths = {len(params), len(grads), len(exp_avgs), len(exp_avg_sqs), len(state_steps)}
    if len(lengths) != 1:
        raise ValueError(f"Invalid lists: params, grads, exp_avgs, exp_avg_sqs and state_steps have lengths {lengths}")
    f = float(loss.item()) if isinstance(loss, Tensor) else float(loss)
    increment = alpha * abs(f - c)  # the paper's line 3: b_t = b_{t-1} + alpha |f_t - c|
    if not math.isfinite(increment):
        return accumulator
    accumulator = accumulator + increment
    eta = (lr / lr0 if lr0 > 0 else 0.0) / math.sqrt(accumulator)  # line 4: eta_t = 1 / sqrt(b_t), times lr / lr0
    kwargs = dict(beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay)
    with torch.no_grad():
        if fused:
            adam_update_fused(params, grads, exp_avgs, exp_avg_sqs, state_steps, eta=eta, **kwargs)  # type: ignore[arg-type]
            return accumulator
        steps = [int(s.item()) + 1 for s in state_steps]
        adam_update(params, grads, exp_avgs, exp_avg_sqs, steps, eta=eta, foreach=foreach, **kwargs)  # type: ignore[arg-type]
        for s in state_steps:
            s.add_(1)
    return accumulator
