"""The two update families: SGD with step ``lr / sqrt(A)`` and Adam with step ``(lr / lr_0) / sqrt(A)``.

Concrete optimizers only say how their accumulator ``A`` grows (:meth:`_increment`); see ``_base`` for the table.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from rl_adaloss.optim._base import AccumulatorOptimizer
from rl_adaloss.optim._kernels import adam_update, sgd_update

__all__ = ["AdamFamily", "SGDFamily"]


class SGDFamily(AccumulatorOptimizer):
    """``p <- p - lr / sqrt(A) * grad`` after ``A <- A + increment`` (AdaLoss, AdaGradNorm, SGDDecaySqrt)."""

    def _increment(self, group: dict[str, Any], grads: list[Tensor], loss: Tensor | float | None) -> float | Tensor:
        raise NotImplementedError

    def _apply(self, loss: Tensor | float | None) -> None:
        for group in self.param_groups:
            params, grads = self._grads_of(group)
            if not params:
                continue
            eta = self._accumulate(group, self._increment(group, grads, loss), params[0].device)
            sgd_update(params, grads, eta, group["weight_decay"], self._use_foreach(group["foreach"], params))


class AdamFamily(AccumulatorOptimizer):
    """Adam whose step size is ``(lr / lr_0) / sqrt(A)`` after ``A <- A + increment`` (AdamLoss, AdamSqrt)."""

    _adam_like = True

    def _increment(self, group: dict[str, Any], grads: list[Tensor], loss: Tensor | float | None) -> float | Tensor:
        raise NotImplementedError

    def _apply(self, loss: Tensor | float | None) -> None:
        for group in self.param_groups:
            params, grads = self._grads_of(group)
            if not params or not self._resolve_lazy_start(group):
                continue
            exp_avgs, exp_avg_sqs, steps = [], [], []
            for p in params:
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] = int(state["step"]) + 1
                exp_avgs.append(state["exp_avg"])
                exp_avg_sqs.append(state["exp_avg_sq"])
                steps.append(state["step"])
            eta = self._accumulate(group, self._increment(group, grads, loss), params[0].device)
            beta1, beta2 = group["betas"]
            adam_update(
                params,
                grads,
                exp_avgs,
                exp_avg_sqs,
                steps,
                eta=eta,
                beta1=beta1,
                beta2=beta2,
                eps=group["eps"],
                weight_decay=group["weight_decay"],
                foreach=self._use_foreach(group["foreach"], params),
            )
