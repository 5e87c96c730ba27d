"""The adapter for other packages' optimizers that need the loss: :func:`loss_fed` (e.g. MoMo, Polyak-type methods).

The loss reaches the wrapped optimizer by the rule of :mod:`rl_adaloss.optim.loss_feed` (the sum of the scalar losses
whose gradients are in ``.grad``, unscaled under a GradScaler, averaged over DDP ranks), so vanilla SB3, which calls a
bare ``optimizer.step()``, can drive it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from rl_adaloss.optim.loss_feed import LossDrivenMixin

__all__ = ["LossFedMixin", "loss_fed"]


class LossFedMixin(LossDrivenMixin):
    """Feeds a *foreign* optimizer whose ``step()`` needs the loss (``step(closure)`` or ``step(loss=...)``).

    Built by :func:`loss_fed`; ``step()`` resolves the loss by the module's rule and hands it to the wrapped class's
    ``step``: as ``loss=`` if that signature has a ``loss`` parameter, else as a closure returning the (detached) loss.
    A closure given by the caller goes through unchanged.
    """

    _step_takes_loss = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_loss_feed()

    def step(self, closure: Callable[[], Any] | None = None, *, loss: Tensor | float | None = None) -> Any:  # type: ignore[override]
        """Perform one step of the wrapped optimizer, with the loss this step applies the gradient of.

        Raises:
            MissingLossError: no closure, no ``loss`` and no scalar ``backward()`` reached the parameters since the
                last step or ``zero_grad()``. No parameter is changed.
        """
        base_step = super(LossDrivenMixin, self).step  # type: ignore[misc]  # the wrapped optimizer's own step
        if closure is not None:
            self._clear_pending()
            self._loss_scale = None
            return base_step(closure)
        _, value = self._take_loss(None, loss)
        if not isinstance(value, Tensor):
            value = torch.tensor(float(value))
        if self._step_takes_loss:
            return base_step(loss=value)
        return base_step(lambda: value)


_FED: dict[type, type] = {}


def loss_fed(cls: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """Return a subclass of ``cls`` whose bare ``step()`` gets the loss from the automatic feed (cached per class).

    For optimizers that need the loss at every step (MomoAdam, Polyak-type methods) but are called as SB3 calls them,
    ``loss.backward(); optimizer.step()``. The loss is the module's rule: the sum of the scalar losses whose gradients
    are in ``.grad``, unscaled under a GradScaler and averaged over DDP ranks.

    Example:
        >>> import torch
        >>> class NeedsLoss(torch.optim.SGD):
        ...     def step(self, closure=None, loss=None):
        ...         self.seen = float(loss)
        ...         return super().step()
        >>> Fed = loss_fed(NeedsLoss)
        >>> w = torch.nn.Parameter(torch.ones(1))
        >>> opt = Fed([w], lr=0.1)
        >>> (3 * w).sum().backward()
        >>> _ = opt.step()
        >>> opt.seen, Fed.__name__
        (3.0, 'LossFedNeedsLoss')
    """
    if cls in _FED:
        return _FED[cls]
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise ValueError(f"Invalid optimizer class: {cls!r} (expected a torch.optim.Optimizer subclass)")
    import inspect

    takes_loss = "loss" in inspect.signature(cls.step).parameters
    fed = type(f"LossFed{cls.__name__}", (LossFedMixin, cls), {"_step_takes_loss": takes_loss, "__doc__": cls.__doc__})
    _FED[cls] = fed
    return fed
