"""AdamLoss as the paper writes it (Algorithm 2 of Wu, Ward et al., AAAI 2022): the reference the fast paths match.

A deliberately plain single-tensor implementation, line by line from the paper, as schedule_free ships
``adamw_schedulefree_reference.py``: no loss feed (``step(loss)`` takes the loss), no skipping, no device mode, no
state-dict adoption. :class:`~rl_adaloss.AdamLoss` (loop, ``foreach``, ``fused``) and
:func:`rl_adaloss.optim.functional.adamloss` are tested against it (``tests/test_adamloss_reference.py``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

__all__ = ["AdamLossReference"]


class AdamLossReference(torch.optim.Optimizer):
    """Algorithm 2 (AdamLoss), with ``b0 = 1/lr**2`` unless given, and torch Adam's L2 ``weight_decay``."""

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        b0: float | None = None,
        alpha: float = 1.0,
        c: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        b = b0 if b0 is not None else 1.0 / lr**2
        defaults = dict(lr=lr, b=b, alpha=alpha, c=c, betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, loss: float | Tensor) -> Any:  # type: ignore[override]
        """One iteration of Algorithm 2 with the loss ``f_t(x_t)`` of the gradients in ``.grad``."""
        f = float(loss)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            group["b"] = group["b"] + group["alpha"] * abs(f - group["c"])  # 3: b_t = b_{t-1} + alpha |f_t - c|
            eta = 1.0 / math.sqrt(group["b"])  # 4: eta_t = 1 / sqrt(b_t)
            for x in group["params"]:
                if x.grad is None:
                    continue
                g = x.grad + group["weight_decay"] * x  # 5: g_t = grad f_t(x_t) (+ L2 term, as torch Adam)
                state = self.state[x]
                if not state:
                    state["t"], state["m"], state["v"] = 0, torch.zeros_like(x), torch.zeros_like(x)
                state["t"] += 1
                t = state["t"]
                state["m"] = beta1 * state["m"] + (1 - beta1) * g  # 6: m_t
                state["v"] = beta2 * state["v"] + (1 - beta2) * g * g  # 7: v_t
                m_hat = state["m"] / (1 - beta1**t)  # 8
                v_hat = state["v"] / (1 - beta2**t)  # 9
                x.sub_(eta * m_hat / (v_hat.sqrt() + group["eps"]))  # 10: x_{t+1} = x_t - eta m_hat / (sqrt(v_hat) + eps)
        return loss
