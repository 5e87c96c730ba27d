"""Where losses enter loss-driven optimizers: the one module that connects ``backward()`` to ``step()``.

AdaLoss and AdamLoss need the value of the loss whose gradient they are about to apply. Stable-Baselines3 (and most
training loops) call ``loss.backward()`` and then ``optimizer.step()`` with no closure, so the optimizer has to learn
the loss on its own. This module does that, and nothing else in the package touches autograd.

**The rule.** The loss that feeds a step is *the sum of the scalar losses whose gradients are in* ``.grad`` *when*
``step()`` *runs*, mirroring the gradient exactly:

- each scalar ``backward()`` whose gradients reach at least one of the optimizer's parameters adds its loss to the
  optimizer's pending sum (times its ``gradient=`` factor, if one is given: ``loss.backward(g)`` accumulates the
  gradient of ``g * loss``); so gradient accumulation over micro-batches feeds the sum of the micro-batch losses;
- ``opt.zero_grad()`` (either ``set_to_none``) and ``opt.step()`` clear the sum;
- gradients discarded another way are detected when they are set to ``None`` (``model.zero_grad()``, torch's default
  ``set_to_none=True``, or ``p.grad = None``): the next backward finds a new gradient tensor in the first of the
  optimizer's parameters it reaches and restarts the sum from its own loss. Gradients zeroed *in place*
  (``model.zero_grad(set_to_none=False)``, ``p.grad.zero_()``) cannot be seen without reading them: the earlier
  losses then still count until ``opt.zero_grad()`` or ``opt.step()``. The sum is kept per optimizer, not per
  parameter, and the check looks at the first parameter a backward reaches (one check per backward, not one per
  parameter: clearing only some gradients, or none of those a backward reaches first, is not seen);
- a backward of a non-scalar tensor without a scalar loss (``out.backward(v)``) adds nothing;
- a backward started *inside* another backward (reentrant activation checkpointing,
  ``torch.utils.checkpoint(..., use_reentrant=True)``) belongs to the outer one: the outer scalar loss feeds the step,
  once. Non-reentrant checkpointing recomputes inside the outer backward and needs nothing special.

**Mechanism** (cheap, scoped, thread-safe):

1. ``torch.autograd.backward`` (which ``Tensor.backward`` calls) is wrapped once, the first time a loss-driven
   optimizer is built. While no loss-driven optimizer is alive the wrapper only forwards the call. Otherwise it
   registers a one-shot pre-hook on the root ``grad_fn``; that pre-hook runs inside the autograd graph task and files a
   record of the loss (its detached value and a serial number) under the task's id
   (``torch._C._current_graph_task_id()``, looked up when the first loss-driven optimizer is built).
2. Every loss-driven optimizer registers one post-accumulate-grad hook on each of its parameters. When a gradient
   lands in one of them, the hook looks up the record of the *current graph task* and adds it to the optimizer's
   pending losses (once per backward, keyed by its serial number). A backward that reaches only other parameters never
   touches this optimizer, and a backward in another thread belongs to another graph task.
3. ``step()`` takes, in this order: a closure's return value, an explicit ``loss=``, or the pending sum. With none it
   raises :class:`MissingLossError` before touching any parameter.

**Mixed precision.** With ``torch.amp.GradScaler`` the backward runs on the *scaled* loss. ``GradScaler.unscale_`` (which
``scaler.step`` calls unless the user already did, e.g. to clip gradients) is wrapped to remember, for loss-driven
optimizers only, the scale it divided the gradients by; ``step()`` divides the loss sum by the same scale. A step the
scaler skips (inf/NaN gradients) never reaches ``step()``: the accumulator, moments and parameters stay untouched, and
the scaler's own check is the only host sync, as for ``torch.optim.Adam``.

**DistributedDataParallel.** DDP applies the gradient of the mean loss over the ranks. When ``torch.distributed`` is
initialised and an optimizer's parameters belong to a ``DistributedDataParallel`` module (found once, at the first
step, by looking for live DDP modules), ``step()`` all-reduces the loss sum over DDP's process group and divides by its
size, so every replica adds the same value to its accumulator and replicas stay bit-identical.

The loss stays a (detached) tensor on its device: no ``.item()`` happens here, so CUDA training gets no host sync.
Measured alternative: routing every op through a ``TorchFunctionMode`` costs about +55% of PPO's ``train()`` time;
these hooks cost about 0%.

Limits: code that bound ``torch.autograd.backward`` to a name of its own before the first loss-driven optimizer was
built, and ``torch.autograd.grad`` (which accumulates nothing) bypass the automatic path; pass ``step(loss=...)``.
"""

from __future__ import annotations

import gc
import itertools
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import torch
from torch import Tensor

__all__ = ["LossDrivenMixin", "LossFedMixin", "MissingLossError", "loss_fed", "loss_feed_installed"]

_BY_TASK: dict[int, _Record] = {}  # graph-task id -> the scalar loss that started (or owns) the task
_LIVE: weakref.WeakSet[LossDrivenMixin] = weakref.WeakSet()
_SERIAL = itertools.count(1)
_install_lock = threading.Lock()
_original_backward: Callable[..., None] | None = None
_current_task_id: Callable[[], int] | None = None
_unavailable: str | None = None  # why the automatic feed could not be installed, if it could not


class MissingLossError(RuntimeError):
    """Raised by ``step()`` of a loss-driven optimizer when no loss value is available."""


class _Record(NamedTuple):
    """One outermost scalar backward: its serial number, loss value (detached) and whether it builds a graph."""

    serial: int
    value: Tensor
    create_graph: bool


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
    """Drop-in for ``torch.autograd.backward`` that files the loss record of its graph task (see module doc)."""
    assert _original_backward is not None and _current_task_id is not None
    if not _LIVE:
        return _original_backward(tensors, *args, **kwargs)
    parent = _BY_TASK.get(_current_task_id())  # a backward started inside another one (reentrant checkpoint)
    record: _Record | None = parent
    if record is None:
        loss = _scalar_loss(tensors)
        if loss is None:
            return _original_backward(tensors, *args, **kwargs)
        if loss.grad_fn is None:  # a leaf used as its own loss: give it a node to hook
            loss = loss.view_as(loss)
            tensors = loss
        grad_tensors, create_graph = _backward_args(args, kwargs)
        record = _Record(next(_SERIAL), _loss_value(loss, grad_tensors), create_graph)
    filed: list[int] = []

    def file_record(*_: Any) -> None:
        task = _current_task_id()  # type: ignore[misc]
        if task not in _BY_TASK:
            _BY_TASK[task] = record  # type: ignore[assignment]
            filed.append(task)

    handles = [node.register_prehook(file_record) for node in _roots(tensors)]
    try:
        return _original_backward(tensors, *args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
        for task in filed:
            _BY_TASK.pop(task, None)


# The feed runs eagerly, always: under torch.compile a backward is a graph break, and tracing the wrapper or the hooks
# would run them at trace time rather than at every backward.
_feeding_backward = torch.compiler.disable(_feeding_backward)
_feeding_backward._rl_adaloss_feed = True  # type: ignore[attr-defined]


def _install() -> None:
    """Wrap ``torch.autograd.backward`` and ``GradScaler.unscale_`` once (idempotent, thread-safe)."""
    global _original_backward, _current_task_id, _unavailable
    with _install_lock:
        if _original_backward is not None or _unavailable is not None:
            return
        task_id = getattr(torch._C, "_current_graph_task_id", None)
        if task_id is None:
            _unavailable = (
                f"torch {torch.__version__} has no torch._C._current_graph_task_id, which the automatic loss feed needs"
            )
            return
        _current_task_id = task_id
        _original_backward = torch.autograd.backward
        torch.autograd.backward = _feeding_backward
        _wrap_grad_scaler()


def _wrap_grad_scaler() -> None:
    """Make ``GradScaler.unscale_`` tell loss-driven optimizers the scale their gradients were divided by."""
    scaler_cls = getattr(getattr(torch, "amp", None), "GradScaler", None)
    original = getattr(scaler_cls, "unscale_", None)
    if original is None or getattr(original, "_rl_adaloss_feed", False):
        return

    def unscale_(self: Any, optimizer: torch.optim.Optimizer) -> None:
        original(self, optimizer)
        scale = getattr(self, "_scale", None)
        if isinstance(optimizer, LossDrivenMixin) and getattr(self, "_enabled", False) and isinstance(scale, Tensor):
            optimizer._loss_scale = scale.detach().clone()  # read at step(); update() may change _scale in place

    unscale_._rl_adaloss_feed = True  # type: ignore[attr-defined]
    unscale_.__doc__ = original.__doc__
    scaler_cls.unscale_ = unscale_  # type: ignore[union-attr]


def _make_param_hook(owner: weakref.ref[LossDrivenMixin]) -> Callable[[Tensor], None]:
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


def _ddp_process_group(params: list[Tensor]) -> Any:
    """The process group of a live ``DistributedDataParallel`` module that owns any of ``params``, else ``None``."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return None
    from torch.nn.parallel import DistributedDataParallel

    ids = {id(p) for p in params}
    for obj in gc.get_objects():
        if isinstance(obj, DistributedDataParallel) and any(id(p) in ids for p in obj.module.parameters()):
            return obj.process_group
    return None


class LossDrivenMixin:
    """Gives a ``torch.optim.Optimizer`` subclass the loss of the backwards whose gradients ``step()`` applies.

    Subclasses call :meth:`_init_loss_feed` at the end of ``__init__``; ``step()`` resolves the loss (see the module
    docstring for the rule) and calls ``self._apply(loss)``. Parameters added later with ``add_param_group`` and copies
    made by ``copy.deepcopy`` or pickling are hooked too, each parameter exactly once per optimizer.
    """

    param_groups: list[dict[str, Any]]
    _apply: Callable[[Tensor | float | None], None]  # provided by the update family (rl_adaloss.optim._families)
    _device_mode: Callable[[torch.device], bool]  # provided by AccumulatorOptimizer

    def _init_loss_feed(self) -> None:
        _install()
        self._pending_serials: set[int] = set()  # the backwards whose losses are in the pending sum
        self._pending_total: Tensor | None = None  # their sum (float64 when several; on the device of the first)
        self._last_grad: dict[int, weakref.ref[Tensor]] = {}  # id(param) -> the .grad tensor seen last
        self._fed_serial = 0  # the backward that fed this optimizer last
        self._loss_scale: Tensor | None = None  # set by GradScaler.unscale_
        self._ddp_group: Any = None
        self._ddp_checked = False
        self._hook_handles: list[Any] = []
        self._hooked: set[int] = set()
        self._self_ref = weakref.ref(self)
        _LIVE.add(self)
        weakref.finalize(self, _remove_handles, self._hook_handles)
        for group in self.param_groups:
            self._hook_params(group["params"])

    def _hook_params(self, params: Iterable[Tensor]) -> None:
        if _unavailable is not None:
            return
        hook = _make_param_hook(self._self_ref)
        for p in params:
            if p.requires_grad and id(p) not in self._hooked:
                self._hook_handles.append(p.register_post_accumulate_grad_hook(hook))
                self._hooked.add(id(p))
        self._ddp_checked = False

    def _feed(self, record: _Record, param: Tensor) -> None:
        """A gradient of ``record``'s backward landed in ``param``: add its loss once (see the module's rule).

        Only the first parameter a backward reaches does any work (the hook runs once per parameter): it adds the loss
        and checks whether that parameter's ``.grad`` is a new tensor, i.e. was set to ``None`` since this optimizer
        last saw it, in which case the losses pending before are gone with the old gradients.
        """
        if record.serial == self._fed_serial:
            return
        self._fed_serial = record.serial
        grad = param.grad
        seen = self._last_grad.get(id(param))
        if grad is not None and (seen is None or seen() is not grad):
            if seen is not None and not record.create_graph:
                self._clear_pending()
            self._last_grad[id(param)] = weakref.ref(grad)
        if record.serial not in self._pending_serials:
            self._pending_serials.add(record.serial)
            total = self._pending_total  # one loss is kept as it is; several are summed in float64
            self._pending_total = (
                record.value if total is None else total.to(torch.float64) + record.value.to(total.device, torch.float64)
            )

    def _clear_pending(self) -> None:
        # New objects rather than .clear(): under torch.compile, reading the set would guard on its contents
        self._pending_serials = set()
        self._pending_total = None

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a param group (see ``torch.optim.Optimizer.add_param_group``) and feed it losses too."""
        super().add_param_group(param_group)  # type: ignore[misc]
        if hasattr(self, "_hooked"):
            self._hook_params(self.param_groups[-1]["params"])

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore after pickling, deepcopy or ``load_state_dict``; hook parameters not hooked yet (never twice)."""
        super().__setstate__(state)  # type: ignore[misc]
        if "_hooked" in self.__dict__:  # load_state_dict on a live optimizer: same parameters, already hooked
            for group in self.param_groups:
                self._hook_params(group["params"])
        else:
            self._init_loss_feed()

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients (see ``torch.optim.Optimizer.zero_grad``) and the pending loss sum with them."""
        super().zero_grad(set_to_none)  # type: ignore[misc]
        self._clear_pending()
        self._last_grad.clear()  # new gradients from here on
        self._loss_scale = None

    def _increment(self, group: dict[str, Any], grads: list[Tensor], loss: Tensor | float | None) -> float | Tensor:
        """``alpha * |f - c|``: a Python float for host values, a device tensor for accelerator losses (no sync)."""
        assert loss is not None
        alpha, c = group["alpha"], group["c"]
        if isinstance(loss, Tensor):
            if self._device_mode(loss.device):  # the accumulator lives on the device (or under torch.compile): no .item()
                return (loss.to(torch.float64) - c).abs().mul(alpha)
            loss = loss.item()
        return alpha * abs(float(loss) - c)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None, *, loss: Tensor | float | None = None) -> Any:
        """Perform one optimization step with the loss of this step (see :mod:`rl_adaloss.optim.loss_feed`).

        Args:
            closure: re-evaluates the model and returns the loss (run with gradients enabled).
            loss: the loss value to use (tensor or float), if there is no closure.

        Returns:
            The closure's return value, or ``loss``, or None.

        Raises:
            MissingLossError: no closure, no ``loss`` and no scalar ``backward()`` reached the parameters since the
                last step or ``zero_grad()``. No parameter is changed.
        """
        result, value = self._take_loss(closure, loss)
        self._apply(value)
        return result

    def _take_loss(self, closure: Callable[[], Any] | None, loss: Tensor | float | None) -> tuple[Any, Tensor | float]:
        """Resolve the loss for this step and clear the pending sum.

        Returns:
            ``(closure_result, loss_value)``: what ``step()`` should return, and the loss to accumulate.

        Raises:
            MissingLossError: if there is no closure, no ``loss=`` and no pending backward.
        """
        result: Any = None
        value: Tensor | float | None
        if closure is not None:
            with torch.enable_grad():
                result = closure()
            if result is None:
                raise MissingLossError(f"{type(self).__name__}.step(closure): the closure returned None, not the loss.")
            value = result
        elif loss is not None:
            value = result = loss
        else:
            value = self._pending_sum()
        if value is None:
            how = (
                f"{_unavailable}; pass step(closure) or step(loss=...)"
                if _unavailable is not None
                else "call loss.backward() on a scalar loss that reaches this optimizer's parameters before step(), "
                "or pass step(closure) or step(loss=...)"
            )
            raise MissingLossError(f"{type(self).__name__}.step() has no loss: {how}. No parameter was changed.")
        self._clear_pending()
        self._loss_scale = None
        if isinstance(value, Tensor):
            if value.numel() != 1:
                raise ValueError(f"Invalid loss: expected a scalar, got a tensor of shape {tuple(value.shape)}")
            value = value.detach()
            if value.dim() != 0:
                value = value.reshape(())
        elif not isinstance(value, (int, float)):
            raise ValueError(f"Invalid loss: {value!r} (expected a float or a scalar tensor)")
        return result, self._reduce_over_ranks(value)

    def _pending_sum(self) -> Tensor | None:
        """The sum of the pending losses (in backward order), divided by the GradScaler scale if there is one."""
        total = self._pending_total  # summed in float64, in backward order
        if total is None:
            return None
        # The backwards ran on the GradScaler-scaled loss: unscale by the scale recorded by unscale_, or by the
        # grad_scale the scaler hands a fused optimizer (its _step_supports_amp_scaling protocol).
        scale = self._loss_scale if self._loss_scale is not None else getattr(self, "grad_scale", None)
        if isinstance(scale, Tensor):
            total = total.to(torch.float64) / scale.to(device=total.device, dtype=torch.float64)
        return total

    def _reduce_over_ranks(self, value: Tensor | float) -> Tensor | float:
        """Under DistributedDataParallel, the mean of ``value`` over DDP's ranks (what its gradient is of)."""
        if not self._ddp_checked:
            self._ddp_group = _ddp_process_group([p for g in self.param_groups for p in g["params"]])
            self._ddp_checked = True
        if self._ddp_group is None:
            return value
        import torch.distributed as dist

        device = self.param_groups[0]["params"][0].device
        t = torch.as_tensor(value, dtype=torch.float64).to(device).reshape(1)
        dist.all_reduce(t, group=self._ddp_group)
        return t.reshape(()) / dist.get_world_size(self._ddp_group)


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


def _remove_handles(handles: list[Any]) -> None:
    for handle in handles:
        handle.remove()
    handles.clear()
