r"""AdamLossRel: a loss-driven Adam that is loss-scale free and two-sided (issue 13); a documented variant.

:class:`~rl_adaloss.AdamLoss` keeps the paper's Algorithm 2; this module adds a separate optimizer.

AdamLoss grows its accumulator by :math:`\alpha |f_t - c|`, so :math:`\alpha` has the units of
1/(loss x step^2) and the brake is set by the loss scale, which in RL is set by the reward scaling (a factor 100 in
the rewards changes PPO's loss by up to 10^4). AdamLossRel measures every loss in units of a reference
:math:`\bar f` that it learns itself from its first ``ref_steps`` losses, so :math:`\alpha` becomes a pure
1/step^2: "a loss as large as the first ones adds :math:`\alpha` to :math:`b`". It also lets its initial accumulator
fade, by the same mechanism as :class:`~rl_adaloss.optim.AdamLossFade` (:mod:`rl_adaloss.optim.fade`), so a
too-small :math:`\eta_0` costs a delay, not the run.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from rl_adaloss.optim._base import check_finite_nonneg
from rl_adaloss.optim.adamloss import AdamLoss
from rl_adaloss.optim.fade import FadingB0Mixin, check_half_life

__all__ = ["AdamLossRel"]

# Group keys this optimizer owns (namespaced so that they never collide with the base classes' keys); the fade's keys
# (b0_half_life, rl_adaloss_b0_remaining) are rl_adaloss.optim.fade's.
_REF_SUM = "rl_adaloss_ref_sum"  # sum of the first |f - c| (float on the host, float64 0-d tensor in device mode)
_REF_COUNT = "rl_adaloss_ref_count"  # how many of them (int on the host, int64 0-d tensor in device mode)
_REF_STEPS = "rl_adaloss_ref_steps"  # K: how many losses define the reference


class AdamLossRel(FadingB0Mixin, AdamLoss):
    r"""AdamLoss with losses measured relative to its own first losses, and a fading initial accumulator.

    .. math::
        \bar f = \frac{1}{K}\sum_{s=1}^{K} |f_s - c| \ \text{(the running mean while } t < K\text{)}, \qquad
        b_t = b_0 \, 2^{-t/h} + \alpha \sum_{s \le t} \frac{|f_s - c|}{\bar f}, \qquad
        \eta_t = \frac{\eta_t^{\mathrm{lr}} / \eta_0^{\mathrm{lr}}}{\sqrt{b_t}}

    and otherwise exactly :class:`~rl_adaloss.AdamLoss` (bias-corrected Adam moments, ``lr`` semantics, loss feed,
    non-finite losses skipped). :math:`b_0 = 1/\eta_0^2` by default, so the first step is Adam's at
    :math:`\eta_0`, slowed only by the first loss term :math:`\alpha` (:math:`|f_1|/\bar f = 1`).

    * **Loss-scale free.** Multiplying every loss by :math:`k > 0` multiplies :math:`\bar f` by :math:`k` and leaves
      every :math:`b_t`, hence every step size, unchanged; Adam's direction :math:`\hat m/(\sqrt{\hat v}+\epsilon)` is
      unchanged up to :math:`\epsilon` (exactly with ``eps=0``). :math:`\alpha` is in units of 1/step^2: after
      :math:`n` losses as large as the first ones the step is at most :math:`1/\sqrt{\alpha n}`.
    * **The brake.** Large early losses relative to later ones shrink the step, as in the paper: the increment is
      :math:`\alpha` per reference-sized loss and falls as the losses fall. A too-large :math:`\eta_0` is cut to
      :math:`\le 1/\sqrt{\alpha}` at the first step and keeps falling while the losses stay near their start.
    * **Two-sided.** The initial accumulator fades with a half-life of :math:`h` steps (AdamLossFade's idea), so after
      :math:`O(h \log_2(b_0 / (\alpha S)))` steps the step is :math:`1/\sqrt{\alpha S_t}`, :math:`S_t` the sum of
      relative losses, whatever :math:`\eta_0` was: a too-small :math:`\eta_0` costs a delay, never the run. The
      step can therefore *grow*, which AdamLoss's never does. ``b0_half_life=math.inf`` turns the fade off.

    Args:
        params: iterable of parameters or dicts defining param groups.
        lr: :math:`\eta_0` (default: 1e-3).
        b0: initial :math:`b_0 > 0` (default: None, meaning :math:`1/\texttt{lr}^2`).
        alpha: :math:`\alpha \ge 0`, the accumulator increment per reference-sized loss, in 1/step^2.
        ref_steps: :math:`K \ge 1`, the number of first (finite) losses that define :math:`\bar f`. If they are all
            zero, the reference keeps learning until one is not (the increment is 0 meanwhile).
        b0_half_life: :math:`h > 0`, in optimizer steps, or ``math.inf`` (no fade).
        c, betas, eps, weight_decay, foreach, fused: as in :class:`~rl_adaloss.AdamLoss` (``fused=None`` chooses as
            AdamLoss does).

    State (per param group, saved by ``state_dict()``): as AdamLoss (``group["rl_adaloss_accumulator"]`` holds
    :math:`b_t`), plus ``rl_adaloss_ref_sum`` / ``rl_adaloss_ref_count`` (the reference's sum and count: Python numbers
    on the host, 0-d tensors in the base class's device mode, so a CUDA step never syncs), ``rl_adaloss_ref_steps``,
    and the fade's ``b0_half_life`` and ``rl_adaloss_b0_remaining`` (:mod:`rl_adaloss.optim.fade`, shared with
    AdamLossFade: a step skipped for a non-finite loss fades nothing and learns nothing). Cost per step: a few scalar
    operations on top of AdamLoss; no extra pass over the parameters or gradients.

    Example:
        >>> import torch
        >>> from rl_adaloss.optim import AdamLossRel
        >>> w = torch.nn.Parameter(torch.tensor([1.0]))
        >>> opt = AdamLossRel([w], lr=0.1, alpha=100.0, ref_steps=2, b0_half_life=math.inf)
        >>> for f in (50.0, 150.0, 25.0):      # reference: 50, then (50 + 150) / 2 = 100, then frozen at 100
        ...     opt.zero_grad()
        ...     (0 * w + f).sum().backward()
        ...     _ = opt.step()
        >>> opt.accumulators()                 # 1/0.1^2 + 100 * (50/50 + 150/100 + 25/100)
        [375.0]
    """

    _fade_in_increment = True  # b += alpha * relative - faded (the rounding of AdamLossRel's committed runs)

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        *,
        b0: float | None = None,
        alpha: float = 1000.0,
        ref_steps: int = 32,
        b0_half_life: float = 256.0,
        c: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        _check_ref_steps(ref_steps)
        check_half_life(b0_half_life)
        # read by add_param_group, which super().__init__ calls
        self._ref_steps_default = int(ref_steps)
        self._default_half_life = float(b0_half_life)
        super().__init__(
            params, lr, b0=b0, alpha=alpha, c=c, betas=betas, eps=eps, weight_decay=weight_decay, foreach=foreach, fused=fused
        )

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a param group; ``ref_steps`` / ``b0_half_life`` in it override the constructor's."""
        if "ref_steps" in param_group:
            param_group[_REF_STEPS] = param_group.pop("ref_steps")
        param_group.setdefault(_REF_STEPS, self._ref_steps_default)
        _check_ref_steps(param_group[_REF_STEPS])
        check_finite_nonneg("alpha", param_group.get("alpha", self.defaults.get("alpha", 0.0)))
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        group.setdefault(_REF_SUM, 0.0)
        group.setdefault(_REF_COUNT, 0)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict; the reference is placed as the accumulator is (host numbers or device tensors)."""
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            group.setdefault(_REF_STEPS, self._ref_steps_default)  # a state dict of another optimizer does not carry it
            device = group["params"][0].device if group["params"] else torch.device("cpu")
            _place_ref(group, device, as_tensors=self._device_mode(device))

    def reference_losses(self) -> list[float]:
        r"""Return every group's current reference loss :math:`\\bar f` (nan before the first loss; syncs on CUDA)."""
        out = []
        for group in self.param_groups:
            count = int(group[_REF_COUNT])
            out.append(float(group[_REF_SUM]) / count if count > 0 else float("nan"))
        return out

    def _increment(self, group: dict[str, Any], grads: list[Tensor], loss: Tensor | float | None) -> float | Tensor:
        # alpha * |f - c| / f_bar, with f_bar learnt from the first K losses; the fade is taken out by FadingB0Mixin.
        alpha, c, k = group["alpha"], group["c"], group[_REF_STEPS]
        device = group["params"][0].device
        f = self._loss_operand(loss)
        if self._device_mode(device):
            f_t = f if isinstance(f, Tensor) else torch.tensor(f, dtype=torch.float64)
            return self._increment_device(group, f_t, alpha, c, k)
        if isinstance(group[_REF_SUM], Tensor):  # the model moved back to the CPU
            _place_ref(group, torch.device("cpu"))
        value = abs(float(f) - c)
        if not math.isfinite(value):
            return math.nan  # skipped by the base class: b, the reference and the fade keep their values
        ref_sum, count = group[_REF_SUM], group[_REF_COUNT]
        if count < k or ref_sum == 0.0:
            ref_sum, count = ref_sum + value, count + 1
            group[_REF_SUM], group[_REF_COUNT] = ref_sum, count
        relative = value * count / ref_sum if ref_sum > 0.0 else 0.0
        return alpha * relative

    def _increment_device(self, group: dict[str, Any], loss: Tensor, alpha: float, c: float, k: int) -> Tensor:
        # Everything stays on the device: no .item(), no Python branch on data.
        _place_ref(group, loss.device, as_tensors=True)
        ref_sum, count = group[_REF_SUM], group[_REF_COUNT]
        value = (loss.detach().to(torch.float64) - c).abs()
        finite = torch.isfinite(value)
        learn = finite & ((count < k) | (ref_sum == 0))
        ref_sum.add_(torch.where(learn, value, torch.zeros_like(value)))
        count.add_(learn.to(torch.int64))
        relative = torch.where(ref_sum > 0, value * count / ref_sum, torch.zeros_like(value))
        inc = alpha * relative
        return torch.where(finite, inc, torch.full_like(inc, math.nan))  # non-finite: the whole step is skipped


def _check_ref_steps(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Invalid ref_steps value: {value} (expected an int >= 1)")


def _place_ref(group: dict[str, Any], device: torch.device, as_tensors: bool = False) -> None:
    """Keep the reference as Python numbers on the host, as float64/int64 0-d tensors on ``device`` in device mode."""
    ref_sum, count = group.get(_REF_SUM, 0.0), group.get(_REF_COUNT, 0)
    if not as_tensors:
        group[_REF_SUM], group[_REF_COUNT] = float(ref_sum), int(count)
    else:
        group[_REF_SUM] = torch.as_tensor(ref_sum, dtype=torch.float64).to(device)
        group[_REF_COUNT] = torch.as_tensor(count, dtype=torch.int64).to(device)
