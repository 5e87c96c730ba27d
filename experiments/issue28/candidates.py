r"""Design prototypes for issue 28's new loss-driven optimizer (CPU, loop path only: measured, not shipped).

Each candidate is :class:`~rl_adaloss.optim.AdamLossRel` with one or two of its measured failure modes addressed, so
that a design run isolates what each change does. They run as grid arms by import path
(``experiments.issue28.candidates:AdamLossSurprise`` with kwargs, ``PYTHONPATH=.``; docs/any_optimizer.md).

:class:`AdamLossSurprise` (parameters ``ref_time`` and ``lr_max``):

.. math::
    r_t = \frac{|f_t - c|}{\bar f_{t-1}}, \qquad
    \bar f_t = \bar f_{t-1} + \frac{|f_t - c| - \bar f_{t-1}}{\tau} \ (t > K;\ \text{the mean of the first } K
    \text{ losses before}), \qquad
    b_t = b_0 2^{-t/h} + \frac{1}{\eta_{\max}^2} + \alpha \sum_{s \le t} r_s

* ``ref_time`` :math:`\tau`: the reference keeps learning after its first ``ref_steps`` losses (an exponential mean
  with time constant :math:`\tau` optimizer steps), so the increment measures a loss against the recent losses
  (surprise) rather than against the first ones (growth). Failure mode 1 of issue 13 (MountainCar's critic losses
  grow 28-718x their first 32, so AdamLossRel's step ends near 5e-6). ``None``: frozen, as AdamLossRel.
* ``lr_max`` :math:`\eta_{\max}`: a non-fading floor :math:`1/\eta_{\max}^2` in the accumulator, so no step ever
  exceeds :math:`\eta_{\max}` (relative to the schedule's ``lr/lr_0``). Failure mode 2 (Hopper: the loss does not
  see the policy being replaced; approx_kl 4e4 in the first ``train()`` while the loss rose from 0.38 to 0.54, so no
  loss-driven brake can react in time and only a bound on the first steps does). ``None``: no floor.
* ``warmup`` :math:`T` (steps, or ``"auto"``: :math:`2/(1-\beta_2)`, the untuned warmup of Ma & Yarats, 2021, "On
  the adequacy of untuned warmup for adaptive optimization"): with it, ``lr_max`` is not a floor in the accumulator
  but a bound on the step that ramps up linearly, :math:`\eta_t \le \eta_{\max} \min(1, t/T)`, so the first
  updates of a run, where Hopper's policy was replaced, are small whatever :math:`\eta_0` is.

The relative increment is computed with the reference *before* this loss updates it (while the first ``K`` losses
are averaged, with the mean including it, as AdamLossRel does).
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

from rl_adaloss.optim import AdamLossRel

__all__ = ["AdamLossSurprise"]

_REF = "proto_ref"  # the reference loss
_SEEN = "proto_seen"  # finite losses seen
_TAKEN = "proto_taken"  # steps taken (for the warmup)


class AdamLossSurprise(AdamLossRel):
    """AdamLossRel with a reference that keeps learning (``ref_time``) and a step bound (``lr_max``). A prototype."""

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        *,
        ref_time: float | None = 1000.0,
        lr_max: float | None = None,
        warmup: float | str | None = None,
        **kwargs: Any,
    ) -> None:
        if ref_time is not None and not (isinstance(ref_time, (int, float)) and ref_time >= 1):
            raise ValueError(f"Invalid ref_time value: {ref_time}")
        if lr_max is not None and not (isinstance(lr_max, (int, float)) and 0 < lr_max < math.inf):
            raise ValueError(f"Invalid lr_max value: {lr_max}")
        if warmup is not None and (
            lr_max is None or not (warmup == "auto" or (isinstance(warmup, (int, float)) and warmup >= 1))
        ):
            raise ValueError(f"Invalid warmup value: {warmup} (a number of steps >= 1 or 'auto', with lr_max)")
        self._ref_time, self._lr_max, self._warmup = ref_time, lr_max, warmup
        super().__init__(params, lr, **kwargs)

    def _increment(self, group: dict[str, Any], grads: list[Tensor], loss: Tensor | float | None) -> float:
        device = group["params"][0].device
        if self._device_mode(device):
            raise NotImplementedError("AdamLossSurprise is a CPU design prototype")
        value = abs(float(self._loss_operand(loss)) - group["c"])
        if not math.isfinite(value):
            return math.nan
        ref, seen = group.get(_REF, 0.0), group.get(_SEEN, 0)
        floor = 0.0
        if seen == 0 and self._lr_max is not None and self._warmup is None:
            floor = 1.0 / self._lr_max**2  # added once, at the first step: it never fades
        k = group["rl_adaloss_ref_steps"]
        if seen < k or ref == 0.0:
            ref = (ref * seen + value) / (seen + 1)
            relative = value / ref if ref > 0.0 else 0.0
        else:
            relative = value / ref
            if self._ref_time is not None:
                ref += (value - ref) / self._ref_time
        group[_REF], group[_SEEN] = ref, seen + 1
        return group["alpha"] * relative + floor

    def _accumulate(self, group: dict[str, Any], increment: Any, device: Any, found_inf: Any = None) -> tuple[Any, Any]:
        eta, keep = super()._accumulate(group, increment, device, found_inf)
        if self._warmup is None or keep is not True:
            return eta, keep
        group[_TAKEN] = group.get(_TAKEN, 0) + 1
        return min(eta, self._warmup_bound(group)), keep

    def _warmup_bound(self, group: dict[str, Any]) -> float:
        """``lr/lr_0 * lr_max * min(1, t/T)`` after ``t`` steps taken."""
        length = 2.0 / (1.0 - group["betas"][1]) if self._warmup == "auto" else float(self._warmup)
        return self._scale(group) * self._lr_max * min(1.0, group.get(_TAKEN, 0) / length)

    def effective_lrs(self) -> list[float]:
        """The step of the last update (the warmup's bound included), as logged by the SB3 callback."""
        out = super().effective_lrs()
        if self._warmup is None:
            return out
        return [min(lr, self._warmup_bound(group)) for lr, group in zip(out, self.param_groups, strict=True)]
