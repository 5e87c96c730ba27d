r"""The fading initial accumulator shared by AdamLossFade and AdamLossRel: one key, one validator, one skip rule.

Both optimizers start from :math:`b_0` and take :math:`b_0 (1 - 2^{-1/h})` of what is left of it out of the
accumulator at every step, so that after :math:`t` steps :math:`b_0 2^{-t/h}` remains (``math.inf``: no fade, which is
AdamLoss). State, per param group: the hyperparameter :data:`HALF_LIFE` (``b0_half_life``) and :data:`B0_REMAINING`
(the part of :math:`b_0` not faded yet; ``None`` before the first step, when :math:`b_0` may not be known: a group
built with ``lr=0`` learns it at its first step). :data:`B0_REMAINING` is kept as the accumulator is, by the base
class's device mode: a Python float on the host, a float64 0-d tensor on the device.

**A skipped step is as if it never happened:** when the step is skipped (a non-finite loss, or ``GradScaler``'s
``found_inf``), nothing fades: the accumulator and :data:`B0_REMAINING` keep their values (masked on the device,
no sync).

State dicts written before the two shared this module still load: Rel's ``rl_adaloss_b0_half_life`` and rl-adaloss
0.1.0's ``b0_remaining`` are renamed on load.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from rl_adaloss.optim._base import ACCUMULATOR, LR0, Scalar, check_positive

__all__ = ["B0_REMAINING", "HALF_LIFE", "FadingB0Mixin", "check_half_life"]

HALF_LIFE = "b0_half_life"  # h, in optimizer steps (math.inf: no fade)
B0_REMAINING = "rl_adaloss_b0_remaining"  # b0 * 2^(-t/h): the part of b0 not faded yet
_LEGACY_KEYS = {"rl_adaloss_b0_half_life": HALF_LIFE, "b0_remaining": B0_REMAINING}  # AdamLossRel's; rl-adaloss 0.1.0's


def check_half_life(value: Any) -> None:
    """Raise ``ValueError`` naming ``value`` unless it is a number ``> 0`` (``math.inf`` included: no fade)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == math.inf:
        return
    if value is None or isinstance(value, bool):
        raise ValueError(f"Invalid b0_half_life value: {value}")
    check_positive("b0_half_life", value)


def initial_b(group: dict[str, Any]) -> float:
    """b0 of the group: its ``b0`` if given, else ``1/lr_0^2`` (as AdamLoss; its current ``lr`` before a lazy start)."""
    b0 = group.get("b0")
    if b0 is not None:
        return float(b0)
    lr0 = group.get(LR0)
    lr0 = float(lr0) if lr0 is not None and lr0 > 0 else float(group["lr"])
    return 1.0 / lr0**2


class FadingB0Mixin:
    """Fades ``b0`` out of an Adam-like :class:`~rl_adaloss.optim._base.AccumulatorOptimizer`'s accumulator.

    Put it before the optimizer class in the bases and set ``self._default_half_life`` before ``super().__init__``.
    ``_fade_in_increment`` chooses where the faded amount is taken out, which only changes rounding: ``False``
    (AdamLossFade) subtracts it from the accumulator and then adds the increment, ``True`` (AdamLossRel) adds
    ``increment - faded``; each keeps the bits of that optimizer's committed runs.
    """

    param_groups: list[dict[str, Any]]
    _default_half_life: float
    _fade_in_increment = False

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a param group; its ``b0_half_life`` defaults to the constructor's (validated; ``math.inf`` is no fade)."""
        for old, new in _LEGACY_KEYS.items():
            if old in param_group:
                param_group[new] = param_group.pop(old)
        param_group.setdefault(HALF_LIFE, self._default_half_life)
        check_half_life(param_group[HALF_LIFE])
        super().add_param_group(param_group)  # type: ignore[misc]
        self.param_groups[-1].setdefault(B0_REMAINING, None)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict; one written with the older fade keys, or by a non-fading optimizer, loads too."""
        super().load_state_dict(state_dict)  # type: ignore[misc]
        for group in self.param_groups:
            for old, new in _LEGACY_KEYS.items():
                if old in group:
                    group[new] = group.pop(old)
            group.setdefault(HALF_LIFE, self._default_half_life)
            group.setdefault(B0_REMAINING, None)

    def _fade(self, group: dict[str, Any], device: torch.device | None) -> tuple[Scalar, Scalar, Scalar]:
        """``(remaining, faded, remaining after)`` for one step, on ``device`` (device mode) or as floats (``None``)."""
        remaining = group[B0_REMAINING]
        if remaining is None:  # first step (or first step after a lazy lr=0 start): b0 is known now
            remaining = initial_b(group)
        if device is None:
            remaining = float(remaining)
        elif not isinstance(remaining, Tensor) or remaining.device != device:
            remaining = torch.as_tensor(remaining, dtype=torch.float64).to(device)
        half_life = group[HALF_LIFE]
        if self._fade_in_increment:
            if math.isinf(half_life):
                return remaining, 0.0, remaining
            after = remaining * math.pow(2.0, -1.0 / half_life)
            return remaining, remaining - after, after
        faded = remaining * (1.0 - math.pow(2.0, -1.0 / half_life))
        return remaining, faded, remaining - faded

    def _accumulate(
        self, group: dict[str, Any], increment: float | Tensor, device: torch.device, found_inf: Tensor | None = None
    ) -> tuple[Scalar, Any]:
        """The base class's accumulate with this step's fade; a skipped step fades nothing (see the module doc)."""
        device_mode: bool = self._device_mode(device)  # type: ignore[attr-defined]
        if isinstance(group[ACCUMULATOR], Tensor) != device_mode or (device_mode and group[ACCUMULATOR].device != device):
            self._place(group, device)  # type: ignore[attr-defined]  # the model moved after the optimizer was built
        remaining, faded, after = self._fade(group, device if device_mode else None)
        before = group[ACCUMULATOR]
        if self._fade_in_increment:
            increment = increment - faded
        else:
            group[ACCUMULATOR] = before - faded  # an assignment, not in place: see _base._accumulate
        eta, keep = super()._accumulate(group, increment, device, found_inf)  # type: ignore[misc]
        if keep is False:
            group[ACCUMULATOR] = before
        elif keep is True:
            group[B0_REMAINING] = after
        else:  # a device bool: masked, no sync
            if not self._fade_in_increment:
                group[ACCUMULATOR] = torch.where(keep, group[ACCUMULATOR], before)
            group[B0_REMAINING] = torch.where(keep, after, remaining)
        return eta, keep
