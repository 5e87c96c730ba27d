"""``step(closure=None)`` for the optimizers that need no loss value (AdaGradNorm, AdamSqrt, SGDDecaySqrt)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["PlainStepMixin"]


class PlainStepMixin:
    """The standard ``torch.optim`` step: optional closure, return its value."""

    _apply: Callable[[Tensor | float | None], None]

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step.

        Args:
            closure: re-evaluates the model and returns the loss (run with gradients enabled).

        Returns:
            The closure's return value, or None.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._apply(None)
        return loss
