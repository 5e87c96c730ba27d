"""The autograd tap: tells loss-driven optimizers which scalar loss each ``backward()`` back-propagates.

This is the only module of the package that patches anything outside it. :func:`install` (called when the first
loss-driven optimizer is built) makes exactly these process-wide changes, and :func:`uninstall` undoes all of them:

1. ``torch.autograd.backward`` (which ``Tensor.backward`` calls) is replaced by :func:`_feeding_backward`. While no
   loss-driven optimizer is alive it only forwards the call. Otherwise, for a backward of a scalar loss, it registers
   a one-shot pre-hook on the root ``grad_fn``; that pre-hook runs inside the autograd graph task and files a
   :class:`Record` of the loss (its detached value times its ``gradient=`` factor, and a serial number) under the task's
   id (``torch._C._current_graph_task_id()``). A backward started inside another one (reentrant checkpointing) finds
   the outer record under its own task id and belongs to it.
2. ``torch.amp.GradScaler.unscale_`` is wrapped to hand the scale it divided the gradients by to an optimizer that has
   a ``_note_loss_scale(scale)`` method (the loss-driven ones), for ``step()`` to unscale the loss by it.
3. ``torch.nn.parallel.DistributedDataParallel.__init__`` is wrapped to remember every DDP module in a weak set
   (:func:`ddp_modules`), so that an optimizer can find the DDP module that owns its parameters without scanning the
   heap. This wrap is made when this module is imported (a DDP module built before that is not seen).

Optimizers themselves register one post-accumulate-grad hook per parameter (:func:`param_hook`); when a gradient lands,
the hook looks up the record of the *current graph task* and hands it to the optimizer (``_feed(record, param)``).
A backward that reaches only other parameters never touches that optimizer, and a backward in another thread belongs
to another graph task. The loss stays a detached tensor on its device: no ``.item()`` here, so CUDA gets no host sync.

Limits: code that bound ``torch.autograd.backward`` to a name of its own before :func:`install`, and
``torch.autograd.grad`` (which accumulates nothing), bypass the tap; pass ``step(loss=...)`` there.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

__all__ = ["Record", "ddp_modules", "install", "installed", "param_hook", "unavailable", "uninstall", "watch"]

_BY_TASK: dict[int, Record] = {}  # graph-task id -> the scalar loss that started (or owns) the task
_WATCHERS: weakref.WeakSet[Any] = weakref.WeakSet()  # live optimizers fed by the tap
_DDP: weakref.WeakSet[Any] = weakref.WeakSet()  # live DistributedDataParallel modules
_SERIAL = itertools.count(1)
_lock = threading.Lock()
_originals: dict[str, Any] = {}  # what install() replaced: "backward", "unscale_"
_current_task_id: Callable[[], int] | None = getattr(torch._C, "_current_graph_task_id", None)


class Record(NamedTuple):
    """One outermost scalar backward: its serial number, loss value (detached) and whether it builds a graph."""

    serial: int
    value: Tensor
    create_graph: bool


def unavailable() -> str | None:
    """Why the tap cannot work with this torch (``None`` when it can)."""
    if _current_task_id is None:
        return f"torch {torch.__version__} has no torch._C._current_graph_task_id, which the automatic loss feed needs"
    return None


def installed() -> bool:
    """Return whether ``torch.autograd.backward`` is currently this module's :func:`_feeding_backward`."""
    return "backward" in _originals and torch.autograd.backward is _feeding_backward


def watch(optimizer: Any) -> None:
    """Install the tap if needed and count ``optimizer`` as alive (weakly) until it is garbage collected."""
    install()
    _WATCHERS.add(optimizer)


def install() -> None:
    """Patch ``torch.autograd.backward`` and ``GradScaler.unscale_`` (idempotent, thread-safe; see the module doc)."""
    with _lock:
        if _originals or unavailable() is not None:
            return
        _originals["backward"] = torch.autograd.backward
        torch.autograd.backward = _feeding_backward
        scaler_cls = getattr(getattr(torch, "amp", None), "GradScaler", None)
        original = getattr(scaler_cls, "unscale_", None)
        if original is not None:
            _originals["unscale_"] = original
            scaler_cls.unscale_ = _unscale_wrapper(original)  # type: ignore[union-attr]


def uninstall() -> None:
    """Undo :func:`install` (the DDP registry stays: it changes no behaviour). Optimizers built later reinstall it."""
    with _lock:
        if "backward" in _originals and torch.autograd.backward is _feeding_backward:
            torch.autograd.backward = _originals["backward"]
        if "unscale_" in _originals:
            torch.amp.GradScaler.unscale_ = _originals["unscale_"]  # type: ignore[method-assign]
        _originals.clear()


def ddp_modules() -> list[Any]:
    """The live ``DistributedDataParallel`` modules built since this module was imported."""
    return list(_DDP)


def param_hook(owner: weakref.ref[Any]) -> Callable[[Tensor], None]:
    """A post-accumulate-grad hook that hands the current backward's record to ``owner()._feed(record, param)``."""

    # Not wrapped in torch.compiler.disable (a few microseconds per call): the hooks run inside _feeding_backward's
    # engine call, where dynamo is already disabled.
    def hook(param: Tensor) -> None:
        if not _BY_TASK:
            return
        record = _BY_TASK.get(_current_task_id())  # type: ignore[misc]
        if record is not None:
            opt = owner()
            if opt is not None:
                opt._feed(record, param)

    return hook


def _scalar_loss(tensors: Any) -> Tensor | None:
    """Return the tensor being back-propagated if it is a single scalar, else ``None``."""
    if isinstance(tensors, (list, tuple)):
        if len(tensors) != 1:
            return None
        tensors = tensors[0]
    if isinstance(tensors, Tensor) and tensors.numel() == 1 and tensors.requires_grad:
        return tensors
    return None


def _backward_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, bool]:
    """``(grad_tensors, create_graph)`` of a ``torch.autograd.backward(tensors, grad_tensors, retain, create, ...)`` call."""
    grad_tensors = args[0] if args else kwargs.get("grad_tensors", kwargs.get("grad_variables"))
    create_graph = bool(args[2]) if len(args) > 2 else bool(kwargs.get("create_graph", False))
    return grad_tensors, create_graph


def _loss_value(loss: Tensor, grad_tensors: Any) -> Tensor:
    """The detached loss times its ``gradient=`` factor (what the accumulated gradient is the gradient of)."""
    value = loss.detach()
    if value.dim() != 0:
        value = value.reshape(())
    factor = grad_tensors[0] if isinstance(grad_tensors, (list, tuple)) and len(grad_tensors) == 1 else grad_tensors
    if isinstance(factor, Tensor):
        value = value * factor.detach().reshape(())
    elif isinstance(factor, (int, float)):
        value = value * factor
    return value


def _roots(tensors: Any) -> list[Any]:
    """The distinct ``grad_fn`` nodes of the tensors a backward starts from."""
    items = tensors if isinstance(tensors, (list, tuple)) else [tensors]
    nodes: list[Any] = []
    for t in items:
        node = getattr(t, "grad_fn", None)
        if node is not None and not any(node is n for n in nodes):
            nodes.append(node)
    return nodes


def _feeding_backward(tensors: Any, *args: Any, **kwargs: Any) -> None:
    """Drop-in for ``torch.autograd.backward`` that files the loss record of its graph task (see the module doc)."""
    original = _originals.get("backward") or _BACKWARD
    if not _WATCHERS:
        return original(tensors, *args, **kwargs)  # type: ignore[no-any-return,return-value]
    assert _current_task_id is not None
    parent = _BY_TASK.get(_current_task_id())  # a backward started inside another one (reentrant checkpoint)
    record: Record | None = parent
    if record is None:
        loss = _scalar_loss(tensors)
        if loss is None:
            return original(tensors, *args, **kwargs)  # type: ignore[no-any-return,return-value]
        if loss.grad_fn is None:  # a leaf used as its own loss: give it a node to hook
            loss = loss.view_as(loss)
            tensors = loss
        grad_tensors, create_graph = _backward_args(args, kwargs)
        record = Record(next(_SERIAL), _loss_value(loss, grad_tensors), create_graph)
    filed: list[int] = []

    def file_record(*_: Any) -> None:
        task = _current_task_id()  # type: ignore[misc]
        if task not in _BY_TASK:
            _BY_TASK[task] = record  # type: ignore[assignment]
            filed.append(task)

    handles = [node.register_prehook(file_record) for node in _roots(tensors)]
    try:
        return original(tensors, *args, **kwargs)  # type: ignore[no-any-return,return-value]
    finally:
        for handle in handles:
            handle.remove()
        for task in filed:
            _BY_TASK.pop(task, None)


_BACKWARD = torch.autograd.backward  # torch's own, for a _feeding_backward still bound somewhere after uninstall()
# The tap runs eagerly, always: under torch.compile a backward is a graph break, and tracing the wrapper or the hooks
# would run them at trace time rather than at every backward.
_feeding_backward = torch.compiler.disable(_feeding_backward)
_feeding_backward._rl_adaloss_feed = True  # type: ignore[attr-defined]


def _unscale_wrapper(original: Callable[..., None]) -> Callable[..., None]:
    def unscale_(self: Any, optimizer: torch.optim.Optimizer) -> None:
        original(self, optimizer)
        scale = getattr(self, "_scale", None)
        note = getattr(optimizer, "_note_loss_scale", None)
        if note is not None and getattr(self, "_enabled", False) and isinstance(scale, Tensor):
            note(scale.detach().clone())  # read at step(); update() may change _scale in place

    unscale_._rl_adaloss_feed = True  # type: ignore[attr-defined]
    unscale_.__doc__ = original.__doc__
    return unscale_


def _register_ddp() -> None:
    """Wrap ``DistributedDataParallel.__init__`` to remember every DDP module (see the module doc, item 3)."""
    try:
        from torch.nn.parallel import DistributedDataParallel
    except ImportError:  # pragma: no cover - torch built without distributed support
        return
    original = DistributedDataParallel.__init__
    if getattr(original, "_rl_adaloss_feed", False):
        return

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        _DDP.add(self)

    __init__._rl_adaloss_feed = True  # type: ignore[attr-defined]
    __init__.__doc__ = original.__doc__
    DistributedDataParallel.__init__ = __init__  # type: ignore[method-assign]


_register_ddp()
