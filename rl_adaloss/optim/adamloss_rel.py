r"""AdamLossRel: a loss-driven Adam that is loss-scale free and two-sided (issue 13); a documented variant.

:class:`~rl_adaloss.AdamLoss` keeps the paper's Algorithm 2; this module adds a separate optimizer.

AdamLoss grows its accumulator by :math:`\alpha |f_t - c|`, so :math:`\alpha` has the units of
1/(loss x step^2) and the brake is set by the loss scale, which in RL is set by the reward scaling (a factor 100 in
the rewards changes PPO's loss by up to 10^4). AdamLossRel measures every loss in units of a reference
:math:`\bar f` that it learns itself from its first ``ref_steps`` losses, so :math:`\alpha` becomes a pure
1/step^2: "a loss as large as the first ones adds :math:`\alpha` to :math:`b`". It also lets its initial accumulator
fade, as :class:`~rl_adaloss.optim.AdamLossFade` does, so a too-small :math:`\eta_0` costs a delay, not the run.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT

from rl_adaloss.optim._base import LR0, check_finite_nonneg, check_positive
from rl_adaloss.optim.adamloss import AdamLoss

__all__ = ["AdamLossRel"]

# Group keys this optimizer owns (namespaced so that they never collide with the base classes' keys).
_REF_SUM = "rl_adaloss_ref_sum"  # sum of the first |f - c| (float on CPU, float64 0-d tensor on an accelerator)
_REF_COUNT = "rl_adaloss_ref_count"  # how many of them (int on CPU, int64 0-d tensor on an accelerator)
_REF_STEPS = "rl_adaloss_ref_steps"  # K: how many losses define the reference
_HALF_LIFE = "rl_adaloss_b0_half_life"  # h, optimizer steps (math.inf: no fade)
_B0_LEFT = "rl_adaloss_b0_remaining"  # b0 * 2^(-t/h): the part of b0 not yet faded (a Python float, no data)


def _initial_lr(group: dict[str, Any]) -> float:
    """lr_0 of the group (``rl_adaloss_lr0``, kept by the base class); its current ``lr`` before the lazy start."""
    value = group.get(LR0)
    return float(value) if value is not None and value > 0 else float(group["lr"])


def _initial_b(group: dict[str, Any]) -> float:
    """b0 of the group: its ``b0`` if given, else ``1/lr_0^2`` (as AdamLoss)."""
    b0 = group.get("b0")
    return float(b0) if b0 is not None else 1.0 / _initial_lr(group) ** 2


class AdamLossRel(AdamLoss):
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
        c, betas, eps, weight_decay, foreach: as in :class:`~rl_adaloss.AdamLoss`.

    State (per param group, saved by ``state_dict()``): as AdamLoss (``group["accumulator"]`` holds :math:`b_t`), plus
    ``rl_adaloss_ref_sum`` / ``rl_adaloss_ref_count`` (the reference's sum and count: Python numbers on CPU, 0-d
    tensors on an accelerator, so a CUDA step never syncs), ``rl_adaloss_ref_steps``, ``rl_adaloss_b0_half_life`` and
    ``rl_adaloss_b0_remaining`` (a Python float: the fade does not depend on the data). Cost per step: a few scalar
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
    ) -> None:
        _check_ref_steps(ref_steps)
        _check_half_life(b0_half_life)
        # read by add_param_group, which super().__init__ calls
        self._rel_defaults = {_REF_STEPS: int(ref_steps), _HALF_LIFE: float(b0_half_life)}
        super().__init__(params, lr, b0=b0, alpha=alpha, c=c, betas=betas, eps=eps, weight_decay=weight_decay, foreach=foreach)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a param group; ``ref_steps`` / ``b0_half_life`` in it override the constructor's."""
        for short, key in (("ref_steps", _REF_STEPS), ("b0_half_life", _HALF_LIFE)):
            if short in param_group:
                param_group[key] = param_group.pop(short)
            param_group.setdefault(key, self._rel_defaults[key])
        _check_ref_steps(param_group[_REF_STEPS])
        _check_half_life(param_group[_HALF_LIFE])
        check_finite_nonneg("alpha", param_group.get("alpha", self.defaults.get("alpha", 0.0)))
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        group.setdefault(_REF_SUM, 0.0)
        group.setdefault(_REF_COUNT, 0)
        group.setdefault(_B0_LEFT, None)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict; the reference comes back as Python numbers on CPU (tensors on an accelerator)."""
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            for key, value in self._rel_defaults.items():  # a state dict of another optimizer does not carry them
                group.setdefault(key, value)
            group.setdefault(_B0_LEFT, None)
            device = group["params"][0].device if group["params"] else torch.device("cpu")
            _place_ref(group, device)

    def reference_losses(self) -> list[float]:
        r"""Return every group's current reference loss :math:`\\bar f` (nan before the first loss; syncs on CUDA)."""
        out = []
        for group in self.param_groups:
            count = int(group[_REF_COUNT])
            out.append(float(group[_REF_SUM]) / count if count > 0 else float("nan"))
        return out

    def _fade(self, group: dict[str, Any]) -> float:
        """Advance the fade by one step and return the amount of b0 to take out of the accumulator."""
        remaining = group[_B0_LEFT]
        if remaining is None:  # first step (or first step after a lazy lr=0 start): b0 is known now
            remaining = _initial_b(group)
        half_life = group[_HALF_LIFE]
        if math.isinf(half_life):
            group[_B0_LEFT] = remaining
            return 0.0
        new = remaining * math.pow(2.0, -1.0 / half_life)
        group[_B0_LEFT] = new
        return remaining - new

    def _increment(self, group: dict[str, Any], grads: list[Tensor], loss: Tensor | float | None) -> float | Tensor:
        assert loss is not None
        alpha, c, k = group["alpha"], group["c"], group[_REF_STEPS]
        on_device = isinstance(loss, Tensor) and loss.device.type != "cpu"
        if on_device or getattr(self, "_device_accumulator_on_cpu", False):  # the flag: tests of the device path
            loss_t = loss if isinstance(loss, Tensor) else torch.tensor(float(loss), dtype=torch.float64)
            return self._increment_device(group, loss_t, alpha, c, k)
        if isinstance(group[_REF_SUM], Tensor):  # the model moved back to the CPU
            _place_ref(group, torch.device("cpu"))
        value = abs(float(loss.item() if isinstance(loss, Tensor) else loss) - c)
        if not math.isfinite(value):
            return math.nan  # skipped by the base class: b, the reference and the fade keep their values
        ref_sum, count = group[_REF_SUM], group[_REF_COUNT]
        if count < k or ref_sum == 0.0:
            ref_sum, count = ref_sum + value, count + 1
            group[_REF_SUM], group[_REF_COUNT] = ref_sum, count
        relative = value * count / ref_sum if ref_sum > 0.0 else 0.0
        return alpha * relative - self._fade(group)

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
        # A non-finite loss returns nan (the base class skips it); the fade of that step is then lost, which leaves b
        # slightly larger (the safe side). Non-finite losses will skip the whole step once the base classes do so.
        inc = alpha * relative - self._fade(group)
        return torch.where(finite, inc, torch.full_like(inc, math.nan))


def _check_ref_steps(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Invalid ref_steps value: {value} (expected an int >= 1)")


def _check_half_life(value: Any) -> None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == math.inf:
        return
    if value is None:
        raise ValueError(f"Invalid b0_half_life value: {value}")
    check_positive("b0_half_life", value)


def _place_ref(group: dict[str, Any], device: torch.device, as_tensors: bool = False) -> None:
    """Keep the reference as Python numbers on CPU, as float64/int64 0-d tensors on ``device`` otherwise."""
    ref_sum, count = group.get(_REF_SUM, 0.0), group.get(_REF_COUNT, 0)
    if device.type == "cpu" and not as_tensors:
        group[_REF_SUM], group[_REF_COUNT] = float(ref_sum), int(count)
    else:
        group[_REF_SUM] = torch.as_tensor(ref_sum, dtype=torch.float64).to(device)
        group[_REF_COUNT] = torch.as_tensor(count, dtype=torch.int64).to(device)
