"""Parameter-update kernels shared by the optimizers: an SGD step and an Adam step of a given size.

Each comes as a single-tensor loop (the reference) and a ``torch._foreach_*`` version (fewer kernel launches); the
tests check that they agree. The step size ``eta`` is a Python float on CPU and a 0-d tensor on accelerators, so
that no value has to be copied to the host.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["adam_update", "adam_update_fused", "adam_update_masked", "sgd_update", "sgd_update_masked"]


def sgd_update(params: list[Tensor], grads: list[Tensor], eta: float | Tensor, weight_decay: float, foreach: bool) -> None:
    """``p <- p - eta * (grad + weight_decay * p)`` for every parameter, in place."""
    if not params:
        return
    if weight_decay != 0:
        if foreach:
            grads = list(torch._foreach_add(grads, params, alpha=weight_decay))
        else:
            grads = [g.add(p, alpha=weight_decay) for p, g in zip(params, grads)]
    if isinstance(eta, Tensor):
        neg_eta = -eta.to(params[0].dtype)
        if foreach:
            torch._foreach_add_(params, torch._foreach_mul(grads, neg_eta))
        else:
            for p, g in zip(params, grads):
                p.add_(g * neg_eta)
        return
    if foreach:
        torch._foreach_add_(params, grads, alpha=-eta)
    else:
        for p, g in zip(params, grads):
            p.add_(g, alpha=-eta)


def adam_update(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[int],
    *,
    eta: float | Tensor,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    foreach: bool,
) -> None:
    """One bias-corrected Adam step of size ``eta`` (torch ``Adam`` with ``lr=eta``), in place.

    ``steps`` holds each parameter's step count *after* this step (1 at the first step).
    """
    if not params:
        return
    if foreach:
        _adam_foreach(params, grads, exp_avgs, exp_avg_sqs, steps, eta, beta1, beta2, eps, weight_decay)
    else:
        _adam_single(params, grads, exp_avgs, exp_avg_sqs, steps, eta, beta1, beta2, eps, weight_decay)


def _adam_single(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[int],
    eta: float | Tensor,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
) -> None:
    neg_eta = -eta.to(params[0].dtype) if isinstance(eta, Tensor) else None
    eta_f = 0.0 if isinstance(eta, Tensor) else eta
    for p, g, m, v, step in zip(params, grads, exp_avgs, exp_avg_sqs, steps):
        if weight_decay != 0:
            g = g.add(p, alpha=weight_decay)
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        bias_correction1 = 1 - beta1**step
        bias_correction2_sqrt = math.sqrt(1 - beta2**step)
        denom = (v.sqrt() / bias_correction2_sqrt).add_(eps)
        if neg_eta is None:
            p.addcdiv_(m, denom, value=-eta_f / bias_correction1)
        else:
            # p += (-eta / bc1) * m / denom, with -eta a device tensor: fold it into the denominator.
            p.addcdiv_(m, denom.mul_(bias_correction1).div_(neg_eta))


def _adam_foreach(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[int],
    eta: float | Tensor,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
) -> None:
    if weight_decay != 0:
        grads = list(torch._foreach_add(grads, params, alpha=weight_decay))
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
    bias_correction1 = [1 - beta1**s for s in steps]
    bias_correction2_sqrt = [math.sqrt(1 - beta2**s) for s in steps]
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denom, bias_correction2_sqrt)
    torch._foreach_add_(denom, eps)
    if isinstance(eta, Tensor):
        torch._foreach_mul_(denom, bias_correction1)
        torch._foreach_div_(denom, -eta.to(params[0].dtype))
        torch._foreach_addcdiv_(params, exp_avgs, denom)
    else:
        torch._foreach_addcdiv_(params, exp_avgs, denom, [-eta / bc for bc in bias_correction1])


# ---------------------------------------------------------------------- masked kernels (accelerator path, no sync)
# On an accelerator, whether a step is skipped (non-finite loss) is a 0-d bool tensor on the device: reading it would
# synchronise with the host, so these kernels apply the step as "times keep". A skipped step changes nothing:
# gradients are zeroed where they would poison the moments (NaN * 0 is NaN), step counts (device tensors, as in
# torch's capturable Adam) advance by ``keep``, and the step size is ``eta * keep``.


def _kept_grads(grads: list[Tensor], keep: Tensor) -> list[Tensor]:
    return [torch.where(keep, g, torch.zeros((), dtype=g.dtype, device=g.device)) for g in grads]


def sgd_update_masked(params: list[Tensor], grads: list[Tensor], eta: Tensor, keep: Tensor, weight_decay: float) -> None:
    """``p <- p - eta * keep * (grad + weight_decay * p)``, with ``keep`` a 0-d bool tensor; nothing moves if false."""
    if not params:
        return
    grads = _kept_grads(grads, keep)
    neg_eta = torch.where(keep, -eta, torch.zeros_like(eta)).to(params[0].dtype)
    if weight_decay != 0:
        grads = list(torch._foreach_add(grads, params, alpha=weight_decay))
    torch._foreach_add_(params, torch._foreach_mul(grads, [neg_eta] * len(grads)))  # a list: see _adam_masked


def adam_update_masked(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[Tensor],
    *,
    eta: Tensor,
    keep: Tensor,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    foreach: bool,
    grad_scale: Tensor | None = None,
) -> None:
    """One bias-corrected Adam step of size ``eta``, applied only if ``keep`` (0-d bool tensor); no host sync.

    ``steps`` are each parameter's step count *before* this step, as float32 tensors on the parameters' device; they
    are advanced by ``keep``. With ``foreach=False`` the same arithmetic runs one parameter at a time. ``grad_scale``
    (GradScaler's, for an optimizer that speaks its protocol) divides the gradients first.
    """
    if not params:
        return
    if grad_scale is not None:
        grads = list(torch._foreach_div(grads, [grad_scale.to(grads[0].dtype)] * len(grads)))
    chunks = [slice(None)] if foreach else [slice(i, i + 1) for i in range(len(params))]  # all at once, or one by one
    for part in chunks:
        lists = (params[part], grads[part], exp_avgs[part], exp_avg_sqs[part], steps[part])
        _adam_masked(*lists, eta, keep, beta1, beta2, eps, weight_decay)


def _adam_masked(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[Tensor],
    eta: Tensor,
    keep: Tensor,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
) -> None:
    # 0-d tensors enter the foreach ops as lists (one per parameter), not as a "scalar" argument: torch.compile would
    # turn a tensor scalar into an .item() (a graph break and a data-dependent guard).
    n, dtype = len(params), params[0].dtype
    k = keep.to(dtype)
    grads = _kept_grads(grads, keep)
    if weight_decay != 0:
        grads = list(torch._foreach_add(grads, params, alpha=weight_decay))
    torch._foreach_add_(steps, [keep.to(steps[0].dtype)] * n)
    diff = torch._foreach_sub(grads, exp_avgs)  # m <- m + (1 - beta1) * keep * (g - m)
    torch._foreach_mul_(diff, [k * (1 - beta1)] * n)
    torch._foreach_add_(exp_avgs, diff)
    torch._foreach_mul_(exp_avg_sqs, [1 - k * (1 - beta2)] * n)  # v <- v (1 - (1 - beta2) keep) + (1 - beta2) keep g^2
    sq = torch._foreach_mul(grads, grads)
    torch._foreach_mul_(sq, [k * (1 - beta2)] * n)
    torch._foreach_add_(exp_avg_sqs, sq)
    counts = torch._foreach_clamp_min(steps, 1.0)  # a skipped first step has count 0: keep the corrections finite
    bias_correction1 = torch._foreach_pow(beta1, counts)
    torch._foreach_neg_(bias_correction1)
    torch._foreach_add_(bias_correction1, 1.0)
    bias_correction2 = torch._foreach_pow(beta2, counts)
    torch._foreach_neg_(bias_correction2)
    torch._foreach_add_(bias_correction2, 1.0)
    torch._foreach_sqrt_(bias_correction2)
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denom, bias_correction2)
    torch._foreach_add_(denom, eps)
    update = torch._foreach_div(exp_avgs, denom)
    torch._foreach_div_(update, bias_correction1)
    torch._foreach_mul_(update, [(-eta * k).to(dtype)] * n)
    torch._foreach_add_(params, update)


# ---------------------------------------------------------------------- fused kernel (torch's fused Adam)
def adam_update_fused(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[Tensor],
    *,
    eta: float | Tensor,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    grad_scale: Tensor | None = None,
    found_inf: Tensor | None = None,
) -> None:
    """One Adam step of size ``eta`` with torch's fused kernel (``torch._fused_adam_``: one pass, CPU and CUDA).

    ``steps`` are float32 tensors on the parameters' device, advanced here (and taken back where ``found_inf`` is
    set, as ``torch.optim.Adam(fused=True)`` does). ``grad_scale`` unscales the gradients inside the kernel and a
    non-zero ``found_inf`` skips the whole update on the device: ``GradScaler``'s protocol, with no host sync.
    """
    if not params:
        return
    torch._foreach_add_(steps, 1)
    # A device step size goes in as float32, the dtype torch's own Adam uses for a tensor lr.
    lr = eta.to(device=params[0].device, dtype=torch.float32) if isinstance(eta, Tensor) else eta
    torch._fused_adam_(
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        [],
        steps,
        lr=lr,
        beta1=beta1,
        beta2=beta2,
        weight_decay=weight_decay,
        eps=eps,
        amsgrad=False,
        maximize=False,
        grad_scale=grad_scale,
        found_inf=found_inf,
    )
    if found_inf is not None:
        torch._foreach_sub_(steps, [found_inf] * len(steps))
