"""The two update families: SGD with step ``lr / sqrt(A)`` and Adam with step ``(lr / lr_0) / sqrt(A)``.

Concrete optimizers only say how their accumulator ``A`` grows (:meth:`_increment`); see ``_base`` for the table.
A step whose increment is not finite is skipped whole (``_base``); on an accelerator the masked kernels do that on
the device.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from rl_adaloss.optim._base import AccumulatorOptimizer
from rl_adaloss.optim._kernels import adam_update, adam_update_masked, sgd_update, sgd_update_masked

__all__ = ["AdamFamily", "SGDFamily"]


class SGDFamily(AccumulatorOptimizer):
    """``p <- p - lr / sqrt(A) * grad`` after ``A <- A + increment`` (AdaLoss, AdaGradNorm, SGDDecaySqrt)."""

    _per_param_state_keys = frozenset()

    def _increment(self, group: dict[str, Any], grads: list[Tensor], loss: Tensor | float | None) -> float | Tensor:
        raise NotImplementedError

    def _apply(self, loss: Tensor | float | None) -> None:
        for group in self.param_groups:
            params, grads = self._grads_of(group)
            if not params:
                continue
            eta, keep = self._accumulate(group, self._increment(group, grads, loss), params[0].device)
            if keep is False:
                continue
            if isinstance(keep, Tensor):
                sgd_update_masked(params, grads, eta, keep, group["weight_decay"])  # type: ignore[arg-type]
            else:
                sgd_update(params, grads, eta, group["weight_decay"], self._use_foreach(group["foreach"], params))


class AdamFamily(AccumulatorOptimizer):
    """Adam whose step size is ``(lr / lr_0) / sqrt(A)`` after ``A <- A + increment`` (AdamLoss, AdamSqrt)."""

    _adam_like = True
    _per_param_state_keys = frozenset({"step", "exp_avg", "exp_avg_sq"})

    def _increment(self, group: dict[str, Any], grads: list[Tensor], loss: Tensor | float | None) -> float | Tensor:
        raise NotImplementedError

    def _apply(self, loss: Tensor | float | None) -> None:
        for group in self.param_groups:
            params, grads = self._grads_of(group)
            if not params or not self._resolve_lazy_start(group):
                continue
            eta, keep = self._accumulate(group, self._increment(group, grads, loss), params[0].device)
            if keep is False:
                continue
            masked = isinstance(keep, Tensor)
            exp_avgs, exp_avg_sqs, steps = [], [], []
            for p in params:
                state = self._param_state(p, masked)
                if not masked:
                    state["step"] += 1
                exp_avgs.append(state["exp_avg"])
                exp_avg_sqs.append(state["exp_avg_sq"])
                steps.append(state["step"])
            beta1, beta2 = group["betas"]
            kwargs = dict(beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"])
            foreach = self._use_foreach(group["foreach"], params)
            if masked:
                adam_update_masked(params, grads, exp_avgs, exp_avg_sqs, steps, eta=eta, keep=keep, foreach=foreach, **kwargs)  # type: ignore[arg-type]
            else:
                adam_update(params, grads, exp_avgs, exp_avg_sqs, steps, eta=eta, foreach=foreach, **kwargs)

    def _param_state(self, p: Tensor, masked: bool) -> dict[str, Any]:
        """Adam's state of ``p``; ``step`` is an int on the host path, a float32 device tensor on the masked path.

        A ``step`` of the other kind (a ``torch.optim.Adam`` checkpoint holds tensors; the model moved) is converted.
        """
        state = self.state[p]
        if len(state) == 0:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        step = state["step"]
        if masked:
            if not isinstance(step, Tensor) or step.device != p.device or step.dtype != torch.float32:
                state["step"] = torch.as_tensor(float(step), dtype=torch.float32).to(p.device)
        elif isinstance(step, Tensor):
            state["step"] = int(step.item())
        return state
