r"""AdamLossFade: a documented *variant* of AdamLoss whose initial accumulator fades away (the small-eta_0 fix).

AdamLoss itself is unchanged (:class:`~rl_adaloss.AdamLoss` keeps the paper's semantics). This variant exists because
the robustness study (``docs/results.md``) shows AdamLoss's one clear weakness: with :math:`b_0 = 1/\eta_0^2` and
:math:`b` only growing, the step can never exceed :math:`\eta_0`, so a too-small :math:`\eta_0` stays too small.
"""

from __future__ import annotations

from torch.optim.optimizer import ParamsT

from rl_adaloss.optim.adamloss import AdamLoss
from rl_adaloss.optim.fade import B0_REMAINING, FadingB0Mixin, check_half_life

__all__ = ["B0_REMAINING", "AdamLossFade"]


class AdamLossFade(FadingB0Mixin, AdamLoss):
    r"""AdamLoss whose initial accumulator :math:`b_0` decays with a half-life of ``b0_half_life`` steps.

    .. math::
        S_t = S_{t-1} + \alpha \, |f_t(x_t) - c|, \qquad
        b_t = b_0 \, 2^{-t/h} + S_t, \qquad
        \eta_t = \frac{\eta_t^{\mathrm{lr}} / \eta_0^{\mathrm{lr}}}{\sqrt{b_t}}

    and otherwise exactly :class:`~rl_adaloss.AdamLoss` (same moments, ``lr`` semantics, loss feed and non-finite
    handling; :math:`h = \infty` is AdamLoss). Only the *initialisation* is forgotten, never the losses: after
    :math:`O(h \log b_0)` steps the step size is :math:`1/\sqrt{S_t}`, the AdaLoss step of a run started from a tiny
    :math:`b_0`, which the paper's analysis covers (for a small :math:`b_0` the loss drives :math:`b` up to the
    stable range by itself). Too large an :math:`\eta_0` is handled as by AdamLoss (:math:`S_t` dominates at once);
    too small an :math:`\eta_0` now costs a delay logarithmic in :math:`1/\eta_0` instead of the whole run.

    The price is one new hyperparameter, a time scale rather than a step size: the step may *grow* for about
    :math:`2 h \log_2(1/(\eta_0 \sqrt{S}))` steps, which an unstable task may not survive.

    Args:
        params: iterable of parameters or dicts defining param groups.
        lr: :math:`\eta_0` (default: 1e-3).
        b0: initial :math:`b_0 > 0` (default: None, meaning :math:`1/\texttt{lr}^2`).
        b0_half_life: :math:`h`, in optimizer steps, ``> 0`` or ``math.inf`` (no fade: AdamLoss) (default: 256.0).
        alpha, c, betas, eps, weight_decay, foreach, fused: as in :class:`~rl_adaloss.AdamLoss`.

    State:
        as ``AdamLoss`` (``accumulators()`` returns :math:`b_t`), plus ``group["b0_half_life"]`` and
        ``group["rl_adaloss_b0_remaining"]``, the current :math:`b_0 2^{-t/h}` (a Python float on the host path, a
        float64 0-d tensor on the device path); the fade is :mod:`rl_adaloss.optim.fade`, shared with AdamLossRel.
        The fade counts the steps taken: a step skipped for a non-finite loss fades nothing.

    Example:
        >>> import torch
        >>> from rl_adaloss.optim import AdamLossFade
        >>> w = torch.nn.Parameter(torch.tensor([1.0]))
        >>> opt = AdamLossFade([w], lr=0.01, b0_half_life=1.0)   # b0 = 1e4, halved at every step
        >>> for _ in range(3):
        ...     opt.zero_grad()
        ...     (0 * w + 100.0).sum().backward()                    # f = 100
        ...     _ = opt.step()
        >>> opt.accumulators()  # 1e4 / 8 + 3 * 100
        [1550.0]
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        *,
        b0: float | None = None,
        b0_half_life: float = 256.0,
        alpha: float = 1.0,
        c: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        check_half_life(b0_half_life)
        self._default_half_life = b0_half_life  # read by add_param_group, which super().__init__ calls
        super().__init__(
            params, lr, b0=b0, alpha=alpha, c=c, betas=betas, eps=eps, weight_decay=weight_decay, foreach=foreach, fused=fused
        )
