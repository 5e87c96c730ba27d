"""Shared machinery of the accumulator optimizers: argument checks, the per-group accumulator, step-size kernels.

Every optimizer of this package keeps, per param group, a monotonically growing accumulator ``A`` and steps with an
effective step size ``scale / sqrt(A)``:

============== ===================================== ===================== ==================
optimizer      accumulator increment per step         initial value         scale
============== ===================================== ===================== ==================
AdaLoss        ``alpha * |f - c|``                    ``b0 ** 2``            ``lr``
AdaGradNorm    ``||grad||^2`` (whole group)           ``b0 ** 2``            ``lr``
SGDDecaySqrt   ``1``                                  ``b0 ** 2``            ``lr``
AdamLoss       ``alpha * |f - c|``                    ``b0`` or ``1/lr^2``   ``lr / lr_0``
AdamSqrt       ``1``                                  ``b0`` or ``1/lr^2``   ``lr / lr_0``
============== ===================================== ===================== ==================

The accumulator lives in the param group (``group["accumulator"]``: a Python float when the parameters are on the
CPU, a float64 0-d tensor on their device otherwise), so it survives ``state_dict()`` / ``load_state_dict()`` and is
never confused with ``group["lr"]``, which Stable-Baselines3 rewrites at every ``train()``. float64 matters: with
``lr=1e-4`` AdamLoss starts at ``b = 1e8``, where float32 would silently drop losses of size ``1e-3``.

On CPU the accumulator arithmetic runs on Python floats (cheapest there); on other devices it stays on the device,
so a step never forces a host-device synchronisation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

__all__ = ["AccumulatorOptimizer", "check_finite_nonneg", "check_positive"]

Scalar = float | Tensor  # a step size: a Python float on CPU, a 0-d tensor on accelerators


def check_finite_nonneg(name: str, value: float) -> None:
    """Raise ``ValueError`` naming ``value`` unless it is a finite number ``>= 0``."""
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"Invalid {name} value: {value}")


def check_positive(name: str, value: float | None) -> None:
    """Raise ``ValueError`` naming ``value`` unless it is ``None`` or a finite number ``> 0``."""
    if value is None:
        return
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"Invalid {name} value: {value}")


def check_finite(name: str, value: float) -> None:
    """Raise ``ValueError`` naming ``value`` unless it is a finite number."""
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"Invalid {name} value: {value}")


class AccumulatorOptimizer(Optimizer):
    """Base class: owns ``group["accumulator"]``, ``group["nonfinite_skips"]`` and :meth:`effective_lrs`.

    Subclasses set ``_adam_like`` (step scale ``lr / lr_0`` and initial value ``b0`` or ``1/lr^2``) or not (scale
    ``lr``, initial value ``b0 ** 2``) and implement ``step``.
    """

    _adam_like = False

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        lr = defaults["lr"]
        if isinstance(lr, Tensor):
            raise ValueError(f"Invalid learning rate: {lr} (pass a float; tensor lr is not supported)")
        if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr < 0:
            raise ValueError(f"Invalid learning rate: {lr}")
        super().__init__(params, defaults)

    # ------------------------------------------------------------------ groups and accumulators
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a param group; its accumulator starts from its own ``b0`` / ``lr``."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        check_finite_nonneg("learning rate", group["lr"])
        check_positive("b0", group.get("b0"))
        self._init_accumulator(group)

    def _init_accumulator(self, group: dict[str, Any]) -> None:
        device = _group_device(group)
        group.setdefault("nonfinite_skips", 0)
        if group.get("accumulator") is None:
            lr, b0 = group["lr"], group.get("b0")
            if self._adam_like:
                # lr_0: the lr at construction; when that is 0 (SB3's Policy.load builds optimizers with lr=0.0), the
                # first positive lr the group steps with (see _resolve_lazy_start).
                group["initial_lr"] = lr
                group["accumulator"] = b0 if b0 is not None else (1.0 / lr**2 if lr > 0 else None)
            else:
                assert b0 is not None
                group["accumulator"] = b0**2
        _place(group, device)

    def _resolve_lazy_start(self, group: dict[str, Any]) -> bool:
        """Give an Adam-like group built with ``lr=0`` its ``lr_0`` and ``b_0``; return False if it cannot step yet."""
        if group["initial_lr"] > 0 and group["accumulator"] is not None:
            return True
        lr = group["lr"]
        if lr <= 0:
            return False
        group["initial_lr"] = lr
        if group["accumulator"] is None:
            b0 = group.get("b0")
            group["accumulator"] = b0 if b0 is not None else 1.0 / lr**2
            _place(group, _group_device(group))
        return True

    def _scale(self, group: dict[str, Any]) -> float:
        if self._adam_like:
            return group["lr"] / group["initial_lr"] if group["initial_lr"] > 0 else 0.0
        return float(group["lr"])

    def _accumulate(self, group: dict[str, Any], increment: float | Tensor, device: torch.device) -> Scalar:
        """Add ``increment`` to the group's accumulator (skipping non-finite values) and return ``scale/sqrt(A)``.

        Returns a Python float on CPU and a 0-d float64 tensor on an accelerator (no host sync).
        """
        acc = group["accumulator"]
        if isinstance(acc, float) != (device.type == "cpu") or (isinstance(acc, Tensor) and acc.device != device):
            _place(group, device)  # the model moved after the optimizer was built
            acc = group["accumulator"]
        scale = self._scale(group)
        if isinstance(acc, float):
            inc = increment.item() if isinstance(increment, Tensor) else float(increment)
            if math.isfinite(inc):
                acc = group["accumulator"] = acc + inc
            else:
                group["nonfinite_skips"] += 1
            return scale / math.sqrt(acc)
        if isinstance(increment, Tensor):
            inc_t = increment.to(device=acc.device, dtype=torch.float64)
            finite = torch.isfinite(inc_t)
            acc.add_(torch.where(finite, inc_t, torch.zeros_like(inc_t)))
            group["nonfinite_skips"].add_((~finite).to(torch.int64))
        elif math.isfinite(increment):
            acc.add_(increment)
        else:
            group["nonfinite_skips"].add_(1)
        return acc.rsqrt() * scale

    def effective_lrs(self) -> list[float]:
        """Return the current effective step size of every param group, as Python floats (syncs on CUDA)."""
        out = []
        for group in self.param_groups:
            acc = group["accumulator"]
            out.append(0.0 if acc is None else self._scale(group) / math.sqrt(float(acc)))
        return out

    def accumulators(self) -> list[float]:
        """Return every param group's accumulator (``b^2`` for SGD-like, ``b`` for Adam-like optimizers)."""
        return [float("nan") if g["accumulator"] is None else float(g["accumulator"]) for g in self.param_groups]

    # ------------------------------------------------------------------ state_dict
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict and put every accumulator on its parameters' device (float64; a Python float on CPU)."""
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            group.setdefault("nonfinite_skips", 0)
            _place(group, _group_device(group))

    # ------------------------------------------------------------------ helpers for step()
    @staticmethod
    def _grads_of(group: dict[str, Any]) -> tuple[list[Tensor], list[Tensor]]:
        params, grads = [], []
        for p in group["params"]:
            if p.grad is not None:
                if p.grad.is_sparse:
                    raise RuntimeError("Sparse gradients are not supported")
                params.append(p)
                grads.append(p.grad)
        return params, grads

    @staticmethod
    def _use_foreach(foreach: bool | None, params: Sequence[Tensor]) -> bool:
        if foreach is not None:
            return foreach
        # Unlike torch.optim (foreach on accelerators only) we default to foreach on CPU too: it is faster there for
        # the small MLPs of RL and on par for large ones (experiments/benchmarks/bench_optim.py).
        return bool(params) and all(p.device == params[0].device for p in params)


def _group_device(group: dict[str, Any]) -> torch.device:
    return group["params"][0].device if group["params"] else torch.device("cpu")


def _place(group: dict[str, Any], device: torch.device) -> None:
    """Store the group's accumulator and skip count as Python numbers on CPU, as float64/int64 tensors elsewhere."""
    acc, skips = group.get("accumulator"), group.get("nonfinite_skips", 0)
    if device.type == "cpu":
        group["accumulator"] = None if acc is None else float(acc)
        group["nonfinite_skips"] = int(skips)
    else:
        if acc is not None:
            group["accumulator"] = torch.as_tensor(acc, dtype=torch.float64).to(device)
        group["nonfinite_skips"] = torch.as_tensor(skips, dtype=torch.int64).to(device)
