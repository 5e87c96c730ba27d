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

**Mechanism.** :mod:`rl_adaloss.optim.autograd_tap` files, for every scalar backward, a record of its loss under the
autograd graph task, and each loss-driven optimizer hooks its parameters so that the first gradient a backward lands in
one of them hands that record to the optimizer (:meth:`LossDrivenMixin._feed`, which applies the rule above).
``step()`` takes, in this order: a closure's return value, an explicit ``loss=``, or the pending sum. With none it
raises :class:`MissingLossError` before touching any parameter. Adapting an optimizer of another package that needs
the loss: :func:`rl_adaloss.optim.foreign.loss_fed`.

**Mixed precision.** With ``torch.amp.GradScaler`` the backward runs on the *scaled* loss. ``GradScaler.unscale_`` (which
``scaler.step`` calls unless the user already did, e.g. to clip gradients) is wrapped to remember, for loss-driven
optimizers only, the scale it divided the gradients by; ``step()`` divides the loss sum by the same scale. A step the
scaler skips (inf/NaN gradients) never reaches ``step()``: the accumulator, moments and parameters stay untouched, and
the scaler's own check is the only host sync, as for ``torch.optim.Adam``.

**DistributedDataParallel.** DDP applies the gradient of the mean loss over the ranks. When ``torch.distributed`` is
initialised and an optimizer's parameters belong to a ``DistributedDataParallel`` module (found once, at the first
step, among the DDP modules the tap saw being built: :func:`~rl_adaloss.optim.autograd_tap.ddp_modules`), ``step()``
all-reduces the loss sum over DDP's process group and divides by its size, so every replica adds the same value to its
accumulator and replicas stay bit-identical.

The loss stays a (detached) tensor on its device: no ``.item()`` happens here, so CUDA training gets no host sync.
Measured alternative: routing every op through a ``TorchFunctionMode`` costs about +55% of PPO's ``train()`` time;
these hooks cost about 0%.

Limits: code that bound ``torch.autograd.backward`` to a name of its own before the first loss-driven optimizer was
built, ``torch.autograd.grad`` (which accumulates nothing) and a DDP module built before ``rl_adaloss`` was imported
bypass the automatic path; pass ``step(loss=...)`` (averaged over the ranks yourself, for the last).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from rl_adaloss.optim import autograd_tap
from rl_adaloss.optim.autograd_tap import Record

__all__ = ["LossDrivenMixin", "LossFedMixin", "MissingLossError", "loss_fed", "loss_feed_installed"]  # noqa: F822 (lazy)


class MissingLossError(RuntimeError):
    """Raised by ``step()`` of a loss-driven optimizer when no loss value is available."""


def loss_feed_installed() -> bool:
    """Return whether ``torch.autograd.backward`` is currently wrapped by the tap (:mod:`.autograd_tap`)."""
    return autograd_tap.installed()


def __getattr__(name: str) -> Any:
    # The adapter for other packages' optimizers moved to rl_adaloss.optim.foreign (it builds on this module).
    if name in ("loss_fed", "LossFedMixin"):
        from rl_adaloss.optim import foreign

        return getattr(foreign, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _ddp_process_group(params: list[Tensor]) -> Any:
    """The process group of a live ``DistributedDataParallel`` module that owns any of ``params``, else ``None``."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return None
    ids = {id(p) for p in params}
    for module in autograd_tap.ddp_modules():
        if any(id(p) in ids for p in module.module.parameters()):
            return module.process_group
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
        autograd_tap.watch(self)
        weakref.finalize(self, _remove_handles, self._hook_handles)
        for group in self.param_groups:
            self._hook_params(group["params"])

    def _hook_params(self, params: Iterable[Tensor]) -> None:
        if autograd_tap.unavailable() is not None:
            return
        hook = autograd_tap.param_hook(self._self_ref)
        for p in params:
            if p.requires_grad and id(p) not in self._hooked:
                self._hook_handles.append(p.register_post_accumulate_grad_hook(hook))
                self._hooked.add(id(p))
        self._ddp_checked = False

    def _feed(self, record: Record, param: Tensor) -> None:
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

    def _note_loss_scale(self, scale: Tensor) -> None:
        """``GradScaler.unscale_`` divided this optimizer's gradients by ``scale`` (called by the tap)."""
        self._loss_scale = scale

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

    def _loss_operand(self, loss: Tensor | float | None) -> float | Tensor:
        """The step's loss as the increment's operand: a Python float on the host, float64 on the device (no sync).

        Device mode (:meth:`_device_mode`: the accumulator lives on an accelerator, or under torch.compile) keeps a
        tensor loss on its device; otherwise it is read to the host once, here.
        """
        assert loss is not None
        if isinstance(loss, Tensor):
            if self._device_mode(loss.device):
                return loss.to(torch.float64)
            return float(loss.item())
        return float(loss)

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
            why = autograd_tap.unavailable()
            how = (
                f"{why}; pass step(closure) or step(loss=...)"
                if why is not None
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


def _remove_handles(handles: list[Any]) -> None:
    for handle in handles:
        handle.remove()
    handles.clear()
