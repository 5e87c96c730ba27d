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

State lives in the param group under keys of this package's own namespace (:data:`ACCUMULATOR`, :data:`LR0`,
:data:`NONFINITE_SKIPS`: ``rl_adaloss_*``), never under keys that torch's LR schedulers (``initial_lr``, ``max_lr``,
``min_lr``, ``base_lr``) or Stable-Baselines3 (``lr``) write. It survives ``state_dict()`` / ``load_state_dict()``.
The accumulator is a Python float when the parameters are on the CPU and a float64 0-d tensor on their device
otherwise, so a step never forces a host-device synchronisation; float64 matters: with ``lr=1e-4`` AdamLoss starts at
``b = 1e8``, where float32 would silently drop losses of size ``1e-3``.

A step whose increment is not finite (a NaN/inf loss, a non-finite gradient norm) is **skipped** as ``GradScaler``
skips one: accumulator, moments, step counts and parameters stay untouched and ``nonfinite_skips`` counts it. On an
accelerator that decision stays on the device (masked update), so it costs no sync.

A state dict written by another optimizer (``torch.optim.Adam`` into ``AdamLoss``, ``SGD`` into ``AdaLoss``) is
*adopted*: Adam's moments and step counts are kept, hyperparameters it does not carry keep their current values, and
the accumulator starts from the loaded ``lr`` as a fresh optimizer's would. One that cannot be adopted (AMSGrad's
``max_exp_avg_sq``, SGD momentum buffers, ``maximize=True``) raises ``ValueError`` saying why, before anything changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

__all__ = [
    "ACCUMULATOR",
    "LR0",
    "NONFINITE_SKIPS",
    "AccumulatorOptimizer",
    "check_finite",
    "check_finite_nonneg",
    "check_positive",
]

ACCUMULATOR = "rl_adaloss_accumulator"  # b_t (Adam-like) or b_t^2 (SGD-like)
LR0 = "rl_adaloss_lr0"  # Adam-like only: the lr the accumulator was started from (eta_0)
NONFINITE_SKIPS = "rl_adaloss_nonfinite_skips"  # steps skipped because the increment was not finite
_LEGACY_KEYS = {  # the keys of rl-adaloss 0.1.0 (``initial_lr`` is a key torch's schedulers own)
    "accumulator": ACCUMULATOR,
    "initial_lr": LR0,
    "nonfinite_skips": NONFINITE_SKIPS,
}

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
    """Base class: owns the per-group accumulator, skip counter and lr_0, and :meth:`effective_lrs`.

    Subclasses set ``_adam_like`` (step scale ``lr / lr_0`` and initial value ``b0`` or ``1/lr^2``) or not (scale
    ``lr``, initial value ``b0 ** 2``) and implement ``step``.
    """

    _adam_like = False
    _per_param_state_keys: frozenset[str] = frozenset()  # what a foreign state dict may carry per parameter

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        lr = defaults["lr"]
        if isinstance(lr, Tensor):
            raise ValueError(f"Invalid learning rate: {lr} (pass a float; tensor lr is not supported)")
        if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr < 0:
            raise ValueError(f"Invalid learning rate: {lr}")
        self._one_device: dict[int, torch.device] = {}  # group index -> the device all its parameters were on
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore (pickling, deepcopy, ``load_state_dict``); what was learnt about the old groups is forgotten."""
        super().__setstate__(state)
        self._one_device = {}

    # ------------------------------------------------------------------ groups and accumulators
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a param group; its accumulator starts from its own ``b0`` / ``lr``."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        check_finite_nonneg("learning rate", group["lr"])
        check_positive("b0", group.get("b0"))
        self._init_accumulator(group)

    def _init_accumulator(self, group: dict[str, Any]) -> None:
        group.setdefault(NONFINITE_SKIPS, 0)
        if group.get(ACCUMULATOR) is None:
            lr, b0 = group["lr"], group.get("b0")
            if self._adam_like:
                # lr_0: the lr at construction; when that is 0 (SB3's Policy.load builds optimizers with lr=0.0), the
                # first positive lr the group steps with (see _resolve_lazy_start).
                group[LR0] = lr
                group[ACCUMULATOR] = b0 if b0 is not None else (1.0 / lr**2 if lr > 0 else None)
            else:
                assert b0 is not None
                group[ACCUMULATOR] = b0**2
        self._place(group, _group_device(group))

    def _resolve_lazy_start(self, group: dict[str, Any]) -> bool:
        """Give an Adam-like group built with ``lr=0`` its ``lr_0`` and ``b_0``; return False if it cannot step yet."""
        if not self._adam_like or (group[LR0] > 0 and group[ACCUMULATOR] is not None):
            return True
        lr = group["lr"]
        if lr <= 0:
            return False
        group[LR0] = lr
        if group[ACCUMULATOR] is None:
            b0 = group.get("b0")
            group[ACCUMULATOR] = b0 if b0 is not None else 1.0 / lr**2
            self._place(group, _group_device(group))
        return True

    def _scale(self, group: dict[str, Any]) -> float:
        if self._adam_like:
            return group["lr"] / group[LR0] if group[LR0] > 0 else 0.0
        return float(group["lr"])

    def _device_mode(self, device: torch.device) -> bool:
        """Whether state lives on the device as tensors and skips are masked (no host sync) for ``device``.

        True on accelerators, and under torch.compile on the CPU too: no ``.item()``, and the step size is a tensor, so
        a new value never triggers a recompile. Every subclass asks this one method (tests override it to run the
        accelerator's arithmetic on the CPU).
        """
        return device.type != "cpu" or torch.compiler.is_compiling()

    def _on_group_placed(self, group: dict[str, Any]) -> None:
        """Called when ``group``'s state is (re)placed on its device: drop what was cached about the groups."""
        if "_one_device" in self.__dict__:
            self._one_device.clear()

    def _accumulate(
        self, group: dict[str, Any], increment: float | Tensor, device: torch.device, found_inf: Tensor | None = None
    ) -> tuple[Scalar, Any]:
        """Add a finite ``increment`` to the accumulator; return ``(scale/sqrt(A), keep)``.

        ``keep`` is ``True`` (take the step), ``False`` (skip it: the increment was not finite, known on the host) or a
        0-d bool tensor on the device (the masked kernels apply the step only where it is true; no host sync).
        ``found_inf`` (from ``GradScaler``, fused optimizers only) skips the step without counting it as non-finite.
        """
        if found_inf is not None and not self._device_mode(device):
            if float(found_inf) > 0:  # a CPU tensor here: no device sync
                return 0.0, False
            found_inf = None
        if isinstance(group[ACCUMULATOR], float) == self._device_mode(device) or (
            isinstance(group[ACCUMULATOR], Tensor) and group[ACCUMULATOR].device != device
        ):
            self._place(group, device)  # the model moved after the optimizer was built
        acc = group[ACCUMULATOR]
        scale = self._scale(group)
        if isinstance(acc, float):
            inc = increment.item() if isinstance(increment, Tensor) else float(increment)
            if not math.isfinite(inc):
                group[NONFINITE_SKIPS] += 1
                return 0.0, False
            acc = group[ACCUMULATOR] = acc + inc
            return scale / math.sqrt(acc), True
        if isinstance(increment, Tensor):
            inc_t = increment.to(device=acc.device, dtype=torch.float64)
            finite = torch.isfinite(inc_t)
        elif math.isfinite(increment):
            inc_t = torch.tensor(increment, dtype=torch.float64, device=acc.device)
            finite = torch.ones((), dtype=torch.bool, device=acc.device)
        else:
            group[NONFINITE_SKIPS] = group[NONFINITE_SKIPS] + 1
            return 0.0, False
        scaler_ok = None if found_inf is None else found_inf.to(acc.device) == 0
        keep = finite if scaler_ok is None else finite & scaler_ok
        # New tensors, not in-place updates: under torch.compile an in-place update of a param-group tensor is lost
        # (dynamo treats the group's values as constants); an assignment is replayed after the graph.
        acc = group[ACCUMULATOR] = acc + torch.where(keep, inc_t, torch.zeros_like(inc_t))
        skipped = ~finite if scaler_ok is None else ~finite & scaler_ok
        group[NONFINITE_SKIPS] = group[NONFINITE_SKIPS] + skipped.to(torch.int64)
        return acc.rsqrt() * scale, keep

    def effective_lrs(self) -> list[float]:
        """Return the current effective step size of every param group, as Python floats (syncs on CUDA)."""
        out = []
        for group in self.param_groups:
            acc = group[ACCUMULATOR]
            out.append(0.0 if acc is None else self._scale(group) / math.sqrt(float(acc)))
        return out

    def accumulators(self) -> list[float]:
        """Return every param group's accumulator (``b^2`` for SGD-like, ``b`` for Adam-like optimizers)."""
        return [float("nan") if g[ACCUMULATOR] is None else float(g[ACCUMULATOR]) for g in self.param_groups]

    def nonfinite_skips(self) -> list[int]:
        """Return, per param group, how many steps were skipped because their loss (increment) was not finite."""
        return [int(g[NONFINITE_SKIPS]) for g in self.param_groups]

    # ------------------------------------------------------------------ state_dict
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict: this optimizer's own, an older rl-adaloss one, or another optimizer's (adopted).

        Raises:
            ValueError: the state dict holds state this optimizer cannot continue from (nothing is changed then).
        """
        self._check_adoptable(state_dict)
        current = [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups]
        super().load_state_dict(state_dict)
        for group, before in zip(self.param_groups, current):
            if "accumulator" in group and ACCUMULATOR not in group:  # written by rl-adaloss 0.1.0
                for old, new in _LEGACY_KEYS.items():
                    if old in group:
                        group[new] = group.pop(old)
            for key, value in before.items():  # hyperparameters a foreign optimizer does not have keep their values
                if not key.startswith("rl_adaloss_"):
                    group.setdefault(key, value)
            if ACCUMULATOR not in group:  # adopted from another optimizer: start as a fresh one from the loaded lr
                group[ACCUMULATOR] = None
            self._init_accumulator(group)

    def _check_adoptable(self, state_dict: dict[str, Any]) -> None:
        name = type(self).__name__
        for i, group in enumerate(state_dict.get("param_groups", [])):
            for flag in ("amsgrad", "maximize", "nesterov"):
                if group.get(flag):
                    raise ValueError(f"Cannot load this state dict into {name}: param group {i} has {flag}=True")
            if group.get("decoupled_weight_decay") and group.get("weight_decay", 0):
                raise ValueError(
                    f"Cannot load this state dict into {name}: param group {i} uses AdamW's decoupled weight decay "
                    f"({group['weight_decay']}); {name} adds weight decay to the gradient"
                )
        for key, state in state_dict.get("state", {}).items():
            extra = {k for k, v in state.items() if v is not None} - self._per_param_state_keys
            if extra:
                raise ValueError(
                    f"Cannot load this state dict into {name}: parameter {key} has state {sorted(extra)} "
                    f"that {name} does not keep (it keeps {sorted(self._per_param_state_keys) or 'none'})"
                )

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

    def _use_foreach(self, foreach: bool | None, params: Sequence[Tensor], index: int) -> bool:
        """``foreach`` if set, else whether ``params`` (those of group ``index`` that have gradients) share a device."""
        if foreach is not None:
            return foreach
        # Unlike torch.optim (foreach on accelerators only) we default to foreach on CPU too: it is faster there for
        # the small MLPs of RL and on par for large ones (experiments/benchmarks/bench_optim.py).
        if not params:
            return False
        device = params[0].device
        if self._one_device.get(index) == device:  # the whole group is known to be there: no per-parameter check
            return True
        if all(p.device == device for p in self.param_groups[index]["params"]):
            self._one_device[index] = device
            return True
        return all(p.device == device for p in params)

    def _place(self, group: dict[str, Any], device: torch.device) -> None:
        """Store accumulator and skip count as Python numbers on CPU, as float64/int64 tensors on an accelerator."""
        self._on_group_placed(group)
        acc, skips = group.get(ACCUMULATOR), group.get(NONFINITE_SKIPS, 0)
        if not self._device_mode(device):
            group[ACCUMULATOR] = None if acc is None else float(acc)
            group[NONFINITE_SKIPS] = int(skips)
        else:
            if acc is not None:
                group[ACCUMULATOR] = torch.as_tensor(acc, dtype=torch.float64).to(device)
            group[NONFINITE_SKIPS] = torch.as_tensor(skips, dtype=torch.int64).to(device)


def _group_device(group: dict[str, Any]) -> torch.device:
    return group["params"][0].device if group["params"] else torch.device("cpu")
