"""Where losses enter loss-driven optimizers: the one module that connects ``backward()`` to ``step()``.

AdaLoss and AdamLoss need the value of the loss whose gradient they are about to apply. Stable-Baselines3 (and most
training loops) call ``loss.backward()`` and then ``optimizer.step()`` with no closure, so the optimizer has to learn
the loss on its own. This module does that, and nothing else in the package touches autograd.

Mechanism (cheap, scoped, thread-safe):

1. ``torch.autograd.backward`` (which ``Tensor.backward`` calls) is wrapped once, the first time a loss-driven
   optimizer is built. While no loss-driven optimizer is alive the wrapper only forwards the call. Otherwise, for a
   backward of a single scalar tensor, it registers a one-shot pre-hook on the loss's ``grad_fn``. That pre-hook runs
   inside the autograd graph task (on whatever thread autograd uses, CPU or CUDA) and files the detached loss under
   the task's id (``torch._C._current_graph_task_id()``).
2. Every loss-driven optimizer registers a post-accumulate-grad hook on each of its parameters. When a gradient
   lands in one of them, the hook looks up the loss filed for the *current graph task* and makes it the optimizer's
   pending loss. A backward that reaches only other parameters never touches this optimizer, and a backward running
   in another thread belongs to another graph task, so it cannot feed it either.
3. ``step()`` takes, in this order: a closure's return value, an explicit ``loss=``, or the pending loss (the most
   recent scalar backward that reached the optimizer's parameters since its last step). With none of them it raises
   :class:`MissingLossError` before touching any parameter.

Limits: code that bound ``torch.autograd.backward`` to a name of its own before the first loss-driven optimizer was
built, and backwards run without autograd's ``backward`` (``torch.autograd.grad``, which accumulates nothing),
bypass the automatic path; pass ``step(loss=...)`` there. With several scalar backwards before one step (gradient
accumulation), the most recent one is taken.

The loss stays a (detached) tensor on its device: no ``.item()`` happens here, so CUDA training gets no host sync.
Measured alternatives: routing every op through a ``TorchFunctionMode`` costs about +55% of PPO's ``train()`` time;
these hooks cost about 0%.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

__all__ = ["LossDrivenMixin", "MissingLossError", "loss_feed_installed"]

_current_task_id: Callable[[], int] = torch._C._current_graph_task_id
_LOSS_BY_TASK: dict[int, Tensor] = {}  # graph-task id -> detached loss of the scalar backward running it
_LIVE: weakref.WeakSet[LossDrivenMixin] = weakref.WeakSet()
_install_lock = threading.Lock()
_original_backward: Callable[..., None] | None = None


class MissingLossError(RuntimeError):
    """Raised by ``step()`` of a loss-driven optimizer when no loss value is available."""


def loss_feed_installed() -> bool:
    """Return whether ``torch.autograd.backward`` is currently wrapped by this module."""
    return _original_backward is not None and getattr(torch.autograd.backward, "_rl_adaloss_feed", False)


def _scalar_loss(tensors: Any) -> Tensor | None:
    """Return the tensor being back-propagated if it is a single scalar, else ``None``."""
    if isinstance(tensors, (list, tuple)):
        if len(tensors) != 1:
            return None
        tensors = tensors[0]
    if isinstance(tensors, Tensor) and tensors.numel() == 1 and tensors.requires_grad:
        return tensors
    return None


def _feeding_backward(tensors: Any, *args: Any, **kwargs: Any) -> None:
    """Drop-in for ``torch.autograd.backward`` that files a scalar loss under its graph task (see module doc)."""
    assert _original_backward is not None
    loss = _scalar_loss(tensors)
    if loss is None or not _LIVE:
        return _original_backward(tensors, *args, **kwargs)
    if loss.grad_fn is None:  # a leaf used as its own loss: give it a node to hook
        loss = loss.view_as(loss)
        tensors = loss
    value = loss.detach()
    filed: list[int] = []

    def file_loss(grad_outputs: Any) -> None:
        task = _current_task_id()
        _LOSS_BY_TASK[task] = value
        filed.append(task)

    handle = loss.grad_fn.register_prehook(file_loss)  # type: ignore[union-attr]
    try:
        return _original_backward(tensors, *args, **kwargs)
    finally:
        handle.remove()
        for task in filed:
            _LOSS_BY_TASK.pop(task, None)


_feeding_backward._rl_adaloss_feed = True  # type: ignore[attr-defined]


def _install() -> None:
    global _original_backward
    with _install_lock:
        if getattr(torch.autograd.backward, "_rl_adaloss_feed", False):
            return
        _original_backward = torch.autograd.backward
        torch.autograd.backward = _feeding_backward


def _make_param_hook(owner: weakref.ref[LossDrivenMixin]) -> Callable[[Tensor], None]:
    def hook(param: Tensor) -> None:
        if not _LOSS_BY_TASK:
            return
        loss = _LOSS_BY_TASK.get(_current_task_id())
        if loss is not None:
            opt = owner()
            if opt is not None:
                opt._pending_loss = loss

    return hook


class LossDrivenMixin:
    """Gives a ``torch.optim.Optimizer`` subclass access to the loss of the backward that preceded ``step()``.

    Subclasses call :meth:`_init_loss_feed` at the end of ``__init__`` and :meth:`_take_loss` at the start of
    ``step()``. Parameters added later with ``add_param_group`` and copies made by ``copy.deepcopy`` or pickling are
    hooked too.
    """

    param_groups: list[dict[str, Any]]
    _pending_loss: Tensor | float | None
    _apply: Callable[[Tensor | float | None], None]  # provided by the update family (rl_adaloss.optim._families)

    def _init_loss_feed(self) -> None:
        _install()
        self._pending_loss = None
        self._hook_handles: list[Any] = []
        self._hooked: set[int] = set()
        self._self_ref = weakref.ref(self)
        _LIVE.add(self)
        weakref.finalize(self, _remove_handles, self._hook_handles)
        for group in self.param_groups:
            self._hook_params(group["params"])

    def _hook_params(self, params: Iterable[Tensor]) -> None:
        hook = _make_param_hook(self._self_ref)
        for p in params:
            if p.requires_grad and id(p) not in self._hooked:
                self._hook_handles.append(p.register_post_accumulate_grad_hook(hook))
                self._hooked.add(id(p))

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a param group (see ``torch.optim.Optimizer.add_param_group``) and feed it losses too."""
        super().add_param_group(param_group)  # type: ignore[misc]
        if hasattr(self, "_hooked"):
            self._hook_params(self.param_groups[-1]["params"])

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore after pickling or deepcopy and hook the (possibly new) parameters."""
        super().__setstate__(state)  # type: ignore[misc]
        self._init_loss_feed()

    def _increment(self, group: dict[str, Any], grads: list[Tensor], loss: Tensor | float | None) -> float | Tensor:
        """``alpha * |f - c|``: a Python float for host values, a device tensor for accelerator losses (no sync)."""
        assert loss is not None
        alpha, c = group["alpha"], group["c"]
        if isinstance(loss, Tensor):
            if loss.device.type != "cpu":
                return (loss.to(torch.float64) - c).abs_().mul_(alpha)
            loss = loss.item()
        return alpha * abs(float(loss) - c)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None, *, loss: Tensor | float | None = None) -> Any:
        """Perform one optimization step with the loss of this step (see :class:`LossDrivenMixin`).

        Args:
            closure: re-evaluates the model and returns the loss (run with gradients enabled).
            loss: the loss value to use (tensor or float), if there is no closure.

        Returns:
            The closure's return value, or ``loss``, or None.

        Raises:
            MissingLossError: no closure, no ``loss`` and no scalar ``backward()`` reached the parameters since the
                last step. No parameter is changed.
        """
        result, value = self._take_loss(closure, loss)
        self._apply(value)
        return result

    def _take_loss(self, closure: Callable[[], Any] | None, loss: Tensor | float | None) -> tuple[Any, Tensor | float]:
        """Resolve the loss for this step.

        Returns:
            ``(closure_result, loss_value)``: what ``step()`` should return, and the loss to accumulate.

        Raises:
            MissingLossError: if there is no closure, no ``loss=`` and no pending backward.
        """
        result: Any = None
        if closure is not None:
            with torch.enable_grad():
                result = closure()
            if result is None:
                raise MissingLossError(f"{type(self).__name__}.step(closure): the closure returned None, not the loss.")
            value: Tensor | float | None = result
        elif loss is not None:
            value = loss
            result = loss
        else:
            value = self._pending_loss
        if value is None:
            raise MissingLossError(
                f"{type(self).__name__}.step() has no loss: call loss.backward() on a scalar loss that reaches this "
                "optimizer's parameters before step(), or pass step(closure) or step(loss=...). No parameter was changed."
            )
        self._pending_loss = None
        if isinstance(value, Tensor):
            if value.numel() != 1:
                raise ValueError(f"Invalid loss: expected a scalar, got a tensor of shape {tuple(value.shape)}")
            if value.dim() != 0:  # step() runs under no_grad: no detach needed
                value = value.reshape(())
        elif not isinstance(value, (int, float)):
            raise ValueError(f"Invalid loss: {value!r} (expected a float or a scalar tensor)")
        return result, value


def _remove_handles(handles: list[Any]) -> None:
    for handle in handles:
        handle.remove()
    handles.clear()
