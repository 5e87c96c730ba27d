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
from rl_adaloss.optim._kernels import adam_update, adam_update_fused, adam_update_masked, sgd_update, sgd_update_masked

__all__ = ["AdamFamily", "SGDFamily"]


class SGDFamily(AccumulatorOptimizer):
    """``p <- p - lr / sqrt(A) * grad`` after ``A <- A + increment`` (AdaLoss, AdaGradNorm, SGDDecaySqrt)."""

    _per_param_state_keys = frozenset()

    def _increment(self, group: dict[str, Any], grads: list[Tensor], loss: Tensor | float | None) -> float | Tensor:
        raise NotImplementedError

    def _apply(self, loss: Tensor | float | None) -> None:
        for index, group in enumerate(self.param_groups):
            params, grads = self._grads_of(group)
            if not params:
                continue
            eta, keep = self._accumulate(group, self._increment(group, grads, loss), params[0].device)
            if keep is False:
                continue
            if isinstance(keep, Tensor):
                sgd_update_masked(params, grads, eta, keep, group["weight_decay"])  # type: ignore[arg-type]
            else:
                sgd_update(params, grads, eta, group["weight_decay"], self._use_foreach(group["foreach"], params, index))


class AdamFamily(AccumulatorOptimizer):
    """Adam whose step size is ``(lr / lr_0) / sqrt(A)`` after ``A <- A + increment`` (AdamLoss, AdamSqrt).

    Three implementations, one dispatch (``group["foreach"]``, ``group["fused"]``): the single-tensor loop (the
    reference), ``torch._foreach_*`` kernels, and torch's fused Adam kernel (``fused=True``; the default on the CPU,
    where it is the fastest: ``experiments/benchmarks/bench_optim.py``). On an accelerator the non-fused kernels run
    masked (no sync). With ``fused`` the optimizer speaks ``GradScaler``'s ``_step_supports_amp_scaling`` protocol:
    the scaler hands ``grad_scale`` and ``found_inf`` to ``step()`` and the kernel unscales and skips on the device.
    """

    _adam_like = True
    _per_param_state_keys = frozenset({"step", "exp_avg", "exp_avg_sq"})

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        self._reset_caches()  # before super().__init__, whose add_param_group places the groups
        super().__init__(params, defaults)

    def _reset_caches(self) -> None:
        # What _apply learnt about each group, by its index in param_groups (the groups are appended, or all replaced
        # by load_state_dict / unpickling, which call __setstate__): the automatic fused choice with its device, and
        # the kind (int or tensor) every step count is known to have.
        self._fused_auto: dict[int, tuple[torch.device, bool]] = {}
        self._step_kinds: dict[int, bool] = {}

    def _on_group_placed(self, group: dict[str, Any]) -> None:
        """The group's state moved (or was loaded): its step counts are re-checked at the next step."""
        super()._on_group_placed(group)
        if "_step_kinds" in self.__dict__:
            self._step_kinds.clear()

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a param group; ``fused=True`` is checked against its parameters (floating point, one supported device)."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        group.setdefault("fused", None)
        if group["fused"] and group.get("foreach"):
            raise ValueError("Invalid fused=True with foreach=True: choose one implementation")
        if group["fused"] and not _fused_supported(group["params"]):
            raise ValueError(
                "Invalid fused=True: the fused kernel needs floating-point parameters on one device of type "
                f"{', '.join(_FUSED_DEVICES)}; got {sorted({(str(p.device), str(p.dtype)) for p in group['params']})}"
            )

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore (pickling, deepcopy, ``load_state_dict``); groups of older state dicts get ``fused=None``."""
        super().__setstate__(state)
        self._reset_caches()
        for group in self.param_groups:
            group.setdefault("fused", None)

    @property
    def _step_supports_amp_scaling(self) -> bool:
        """True when every group steps fused: ``GradScaler`` then passes ``grad_scale``/``found_inf`` to ``step()``."""
        return any(g["params"] for g in self.param_groups) and all(
            self._use_fused(g, i) for i, g in enumerate(self.param_groups) if g["params"]
        )

    def _use_fused(self, group: dict[str, Any], index: int) -> bool:
        fused = group.get("fused")
        if fused is not None:
            return bool(fused)
        params = group["params"]
        if group.get("foreach") is not None or not params:
            return False
        # Default: fused on the CPU (measured fastest there); elsewhere foreach/masked until the GPU check measures it.
        # Cached per group and device: checking every parameter at every step costs more than the small kernels.
        device = params[0].device
        if torch.compiler.is_compiling():
            return device.type == "cpu" and _fused_supported(params)
        hit = self._fused_auto.get(index)
        if hit is None or hit[0] != device:
            hit = self._fused_auto[index] = (device, device.type == "cpu" and _fused_supported(params))
        return hit[1]

    def _increment(self, group: dict[str, Any], grads: list[Tensor], loss: Tensor | float | None) -> float | Tensor:
        raise NotImplementedError

    def _apply(self, loss: Tensor | float | None) -> None:
        grad_scale: Tensor | None = getattr(self, "grad_scale", None)  # set by GradScaler (fused groups only)
        found_inf: Tensor | None = getattr(self, "found_inf", None)
        for index, group in enumerate(self.param_groups):
            params, grads = self._grads_of(group)
            if not params or not self._resolve_lazy_start(group):
                continue
            fused = self._use_fused(group, index)  # also: GradScaler hands this group grad_scale/found_inf
            # torch.compile cannot trace the fused kernel with a tensor step size (no fake kernel): it gets the masked
            # foreach arithmetic, which inductor fuses by itself.
            fused_kernel = fused and not torch.compiler.is_compiling()
            eta, keep = self._accumulate(
                group, self._increment(group, grads, loss), params[0].device, found_inf=found_inf if fused else None
            )
            if keep is False:
                continue
            masked = isinstance(keep, Tensor)
            tensor_step = masked or fused_kernel
            # Every step's kind (int or tensor) is checked once, then only new states are (see _steps_checked).
            checked = self._steps_checked(index, tensor_step)
            exp_avgs, exp_avg_sqs, steps = [], [], []
            for p in params:
                state = self.state[p]
                if not checked or len(state) == 0:
                    state = self._param_state(p, tensor_step)
                if not tensor_step:
                    state["step"] += 1
                exp_avgs.append(state["exp_avg"])
                exp_avg_sqs.append(state["exp_avg_sq"])
                steps.append(state["step"])
            beta1, beta2 = group["betas"]
            kwargs = dict(beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"])
            if fused_kernel:
                skip = (~keep).to(torch.float32) if masked else None  # type: ignore[operator]
                adam_update_fused(
                    params, grads, exp_avgs, exp_avg_sqs, steps, eta=eta, grad_scale=grad_scale, found_inf=skip, **kwargs
                )
                continue
            foreach = self._use_foreach(group["foreach"], params, index)
            if masked:
                scale = grad_scale if fused else None
                adam_update_masked(
                    params,
                    grads,
                    exp_avgs,
                    exp_avg_sqs,
                    steps,
                    eta=eta,  # type: ignore[arg-type]  # a device tensor on the masked path
                    keep=keep,
                    foreach=foreach,
                    grad_scale=scale,
                    **kwargs,
                )
            else:
                adam_update(params, grads, exp_avgs, exp_avg_sqs, steps, eta=eta, foreach=foreach, **kwargs)

    def _steps_checked(self, index: int, tensor_step: bool) -> bool:
        """Whether the group's step counts are known to be of the kind ``tensor_step`` asks for; mark them so.

        Reset by ``load_state_dict`` (``__setstate__``) and when a group is placed again (``_on_group_placed``). Under
        torch.compile every step is checked (traced once, free at run time).
        """
        if torch.compiler.is_compiling():
            return False
        ok = self._step_kinds.get(index) == tensor_step
        self._step_kinds[index] = tensor_step
        return ok

    def _param_state(self, p: Tensor, tensor_step: bool) -> dict[str, Any]:
        """Adam's state of ``p``, with ``step`` of the kind the path needs.

        ``step`` is an int on the host loop/foreach path and a float32 tensor on ``p``'s device on the fused and
        masked paths (as in ``torch.optim.Adam``).

        A ``step`` of the other kind (a state dict from another implementation or from ``torch.optim.Adam``; the model
        moved) is converted, so state dicts move freely between the implementations.
        """
        state = self.state[p]
        if len(state) == 0:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        step = state["step"]
        if tensor_step:
            if not isinstance(step, Tensor) or step.device != p.device or step.dtype != torch.float32:
                state["step"] = torch.as_tensor(float(step), dtype=torch.float32).to(p.device)
        elif isinstance(step, Tensor):
            state["step"] = int(step.item())
        return state


_FUSED_DEVICES = ("cpu", "cuda", "mps", "xpu")


def _fused_supported(params: list[Tensor]) -> bool:
    return (
        bool(params)
        and all(p.device == params[0].device and torch.is_floating_point(p) for p in params)
        and params[0].device.type in _FUSED_DEVICES
    )
