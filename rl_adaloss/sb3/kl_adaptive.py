"""KL-adaptive learning rate for Stable-Baselines3's PPO family, the rule robotics PPO code runs (rsl_rl, Brax, SBX).

After each minibatch (or each epoch), the mean KL(old || new) of the policy against the rollout's policy is compared
with a target ``d``: ``kl > kl_margin * d`` divides the lr by ``factor``, ``0 < kl < d / kl_margin`` multiplies it by
``factor``; the lr is clamped to ``[min_lr, max_lr]``. Defaults are rsl_rl's: ``d = 0.01``, ``kl_margin = 2``,
``factor = 1.5``, ``[1e-5, 1e-2]``.

SB3 has no such rule, and a callback that edits ``param_groups`` is undone: every ``train()`` starts with
``_update_learning_rate``, which writes ``lr_schedule(progress)`` into every group. So the adapted lr lives in the
schedule itself: :class:`KLAdaptiveLR` is the model's ``learning_rate`` (a picklable schedule whose value is the
current lr), and SB3's rewrite writes back exactly the lr the rule reached. It is saved with the model and continues
from its saved lr after ``PPO.load`` once :func:`use_kl_adaptive_lr` is applied again.

The KL is SB3's own ``approx_kl`` of that minibatch, ``mean(exp(r) - 1 - r)`` with ``r = log_prob - old_log_prob``
(Schulman's k3 estimator), computed from the log-probabilities PPO already evaluates (no extra forward pass): the
policy's ``evaluate_actions`` and the rollout buffer's ``get`` are wrapped on the model's instances, and an optimizer
step pre-hook applies the rule before the minibatch's step, as rsl_rl does. ``mode="epoch"`` applies it once per pass
over the buffer with the pass's mean KL (skrl, RL Games' per-epoch schedule). Works with any optimizer: for this
package's loss-driven Adams the group ``lr`` scales the step as ``lr_t / lr_0`` (:mod:`rl_adaloss.optim._base`), so
the rule and the loss-driven step compose.

Covers SB3's PPO and sb3-contrib's MaskablePPO and RecurrentPPO (its padded steps are masked out of the KL). A2C takes
one step per rollout on a policy that has not moved since the rollout, so its KL before the step is zero: there is no
KL for this rule there, and :func:`use_kl_adaptive_lr` says so.

Example:
    >>> from stable_baselines3 import PPO
    >>> model = PPO("MlpPolicy", "Pendulum-v1", n_steps=64, batch_size=32, n_epochs=2, policy_kwargs=dict(net_arch=[8]))
    >>> schedule = use_kl_adaptive_lr(model, target_kl=0.01)
    >>> _ = model.learn(128)
    >>> 1e-5 <= schedule.lr <= 1e-2 and model.policy.optimizer.param_groups[0]["lr"] == schedule.lr
    True
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import torch
from stable_baselines3.common.callbacks import BaseCallback

__all__ = ["KL_MODES", "KLAdaptiveCallback", "KLAdaptiveLR", "use_kl_adaptive_lr"]

KL_MODES = ("minibatch", "epoch")


def _check(name: str, value: float, *, above: float = 0.0) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= above:
        raise ValueError(f"Invalid {name} value: {value}" + (f" (expected > {above})" if above else " (expected > 0)"))


class KLAdaptiveLR:
    """The rule and its state: a learning-rate schedule whose value is the lr the rule has reached.

    Args:
        initial_lr: eta_0, the lr before the first update (clamped like every lr the rule applies).
        target_kl: the target ``d``.
        kl_margin: the band around ``d``: decrease above ``kl_margin * d``, increase below ``d / kl_margin``.
        factor: the lr is divided or multiplied by this.
        min_lr: lower clamp.
        max_lr: upper clamp.
        mode: ``"minibatch"`` (rsl_rl: before every optimizer step, that minibatch's KL) or ``"epoch"`` (after each
            pass over the rollout buffer, the pass's mean KL).

    Attributes:
        lr: the current lr, always in ``[min_lr, max_lr]``.
        n_updates / n_decreases / n_increases: how often the rule ran and moved the lr.
    """

    def __init__(
        self,
        initial_lr: float,
        target_kl: float = 0.01,
        *,
        kl_margin: float = 2.0,
        factor: float = 1.5,
        min_lr: float = 1e-5,
        max_lr: float = 1e-2,
        mode: str = "minibatch",
    ) -> None:
        _check("initial_lr", initial_lr)
        _check("target_kl", target_kl)
        _check("kl_margin", kl_margin, above=1.0)
        _check("factor", factor, above=1.0)
        _check("min_lr", min_lr)
        _check("max_lr", max_lr)
        if min_lr > max_lr:
            raise ValueError(f"Invalid min_lr value: {min_lr} (above max_lr={max_lr})")
        if mode not in KL_MODES:
            raise ValueError(f"Invalid mode value: {mode!r} (valid: {', '.join(KL_MODES)})")
        self.target_kl, self.kl_margin, self.factor = float(target_kl), float(kl_margin), float(factor)
        self.min_lr, self.max_lr, self.mode = float(min_lr), float(max_lr), mode
        self.lr = self._clamp(float(initial_lr))
        self.n_updates = self.n_decreases = self.n_increases = 0

    def _clamp(self, lr: float) -> float:
        return min(max(lr, self.min_lr), self.max_lr)

    def update(self, kl: float) -> float:
        """Apply the rule to one KL measurement and return the new lr (a non-finite KL changes nothing)."""
        kl = float(kl)
        self.n_updates += 1
        if not math.isfinite(kl):
            return self.lr
        if kl > self.kl_margin * self.target_kl:
            self.lr, self.n_decreases = self._clamp(self.lr / self.factor), self.n_decreases + 1
        elif 0.0 < kl < self.target_kl / self.kl_margin:
            self.lr, self.n_increases = self._clamp(self.lr * self.factor), self.n_increases + 1
        return self.lr

    def __call__(self, progress_remaining: float) -> float:
        """SB3's schedule interface: the current lr, whatever the progress (the rule, not the clock, sets it)."""
        return self.lr

    def rule_kwargs(self) -> dict[str, Any]:
        """The rule's constants (what :func:`use_kl_adaptive_lr` takes), for configs and identities."""
        return dict(target_kl=self.target_kl, kl_margin=self.kl_margin, factor=self.factor, min_lr=self.min_lr,
                    max_lr=self.max_lr, mode=self.mode)  # fmt: skip

    def __repr__(self) -> str:  # noqa: D105
        return f"KLAdaptiveLR(lr={self.lr:g}, {', '.join(f'{k}={v!r}' for k, v in self.rule_kwargs().items())})"


def _approx_kl(log_prob: torch.Tensor, old_log_prob: torch.Tensor, mask: torch.Tensor | None) -> float:
    """SB3's ``approx_kl``: ``mean(exp(r) - 1 - r)``, ``r = log_prob - old_log_prob`` (masked rows only)."""
    with torch.no_grad():
        log_ratio = log_prob.detach() - old_log_prob
        kl = (torch.exp(log_ratio) - 1) - log_ratio
        return float((kl[mask > 1e-8] if mask is not None else kl).mean())  # sb3-contrib's padding mask is 0/1 floats


class _Controller:
    """The hooks on one model: they measure each minibatch's KL and apply the schedule's rule to the optimizer."""

    def __init__(self, model: Any, schedule: KLAdaptiveLR) -> None:
        self.schedule = schedule
        self._model = weakref.ref(model)
        self._sample: Any = None
        self._kl: float | None = None  # the current minibatch's KL (None until evaluate_actions has run on it)
        self._pass_kls: list[float] = []
        policy, buffer = model.policy, model.rollout_buffer
        self._policy, self._buffer = weakref.ref(policy), weakref.ref(buffer)
        evaluate, get = policy.evaluate_actions, buffer.get
        self._originals = (evaluate, get)
        policy.evaluate_actions = self._wrap_evaluate(evaluate)
        buffer.get = self._wrap_get(get)
        self._hook = policy.optimizer.register_step_pre_hook(self._before_step)

    def _wrap_evaluate(self, evaluate: Callable[..., Any]) -> Callable[..., Any]:
        def evaluate_actions(*args: Any, **kwargs: Any) -> Any:
            out = evaluate(*args, **kwargs)
            sample = self._sample
            if sample is not None and getattr(sample, "old_log_prob", None) is not None:
                self._kl = _approx_kl(out[1], sample.old_log_prob, getattr(sample, "mask", None))
                self._pass_kls.append(self._kl)
            return out

        return evaluate_actions

    def _wrap_get(self, get: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
        def get_samples(*args: Any, **kwargs: Any) -> Iterator[Any]:
            self._pass_kls = []
            try:
                for sample in get(*args, **kwargs):
                    self._sample, self._kl = sample, None
                    yield sample
            finally:  # the pass ended (or PPO's target_kl stopped it early)
                self._sample = None
                if self.schedule.mode == "epoch" and self._pass_kls:
                    self._apply(sum(self._pass_kls) / len(self._pass_kls))
                self._pass_kls = []

        return get_samples

    def _apply(self, kl: float) -> None:
        lr = self.schedule.update(kl)
        model, policy = self._model(), self._policy()
        if policy is not None:
            for group in policy.optimizer.param_groups:
                group["lr"] = lr
        if model is not None and getattr(model, "_logger", None) is not None:
            model.logger.record("train/learning_rate", lr)  # the lr applied last (SB3 logs the start value)

    def _before_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self.schedule.mode == "minibatch" and self._kl is not None:
            self._apply(self._kl)
            self._kl = None

    def remove(self) -> None:
        """Undo the hooks (the model keeps the schedule, so its lr stays where the rule left it)."""
        self._hook.remove()
        policy, buffer = self._policy(), self._buffer()
        if policy is not None:
            policy.__dict__.pop("evaluate_actions", None)
        if buffer is not None:
            buffer.__dict__.pop("get", None)


_CONTROLLERS: weakref.WeakKeyDictionary[Any, _Controller] = weakref.WeakKeyDictionary()


def _float_schedule(schedule: KLAdaptiveLR) -> Callable[[float], float]:
    try:
        from stable_baselines3.common.utils import FloatSchedule
    except ImportError:  # SB3 < 2.6
        from stable_baselines3.common.utils import get_schedule_fn

        return get_schedule_fn(schedule)  # type: ignore[no-any-return]
    return FloatSchedule(schedule)


def use_kl_adaptive_lr(
    model: Any,
    target_kl: float = 0.01,
    *,
    kl_margin: float = 2.0,
    factor: float = 1.5,
    min_lr: float = 1e-5,
    max_lr: float = 1e-2,
    mode: str = "minibatch",
) -> KLAdaptiveLR:
    """Make a PPO-family model adapt its learning rate to the policy's KL (see the module docstring).

    The rule starts from the model's current lr (its eta_0 before training); a model whose ``learning_rate`` is
    already a :class:`KLAdaptiveLR` (one saved with it and loaded) continues from the lr it reached, with the rule's
    constants given here. Applying it twice to the same model changes only the constants. The hooks last as long as
    the model (a loaded model needs this call again; :class:`KLAdaptiveCallback` does it at every ``learn()``).

    Args:
        model: a PPO, MaskablePPO or RecurrentPPO model.
        target_kl: the target KL ``d`` (not SB3's ``target_kl``, which stops an update early; both can be used).
        kl_margin: see :class:`KLAdaptiveLR`.
        factor: see :class:`KLAdaptiveLR`.
        min_lr: see :class:`KLAdaptiveLR`.
        max_lr: see :class:`KLAdaptiveLR`.
        mode: ``"minibatch"`` or ``"epoch"``.

    Returns:
        The schedule (``.lr`` is the current lr; it is also ``model.learning_rate``).

    Raises:
        ValueError: a model without minibatch updates on a rollout buffer (A2C: the KL before its one step per
            rollout is zero, so the rule has nothing to measure; off-policy algorithms), or a bad constant.
    """
    name = type(model).__name__
    if not hasattr(model, "rollout_buffer") or not hasattr(model.policy, "evaluate_actions"):
        raise ValueError(f"Invalid model: {name} has no rollout buffer (the KL-adaptive lr is for the PPO family)")
    if not hasattr(model, "n_epochs"):
        raise ValueError(
            f"Invalid model: {name} takes one step per rollout on a policy that has not moved since it, so the KL before "
            "the step is zero and the KL-adaptive rule has nothing to measure (PPO, MaskablePPO and RecurrentPPO have it)"
        )
    old = model.learning_rate if isinstance(model.learning_rate, KLAdaptiveLR) else None
    start = old.lr if old is not None else float(model.lr_schedule(model._current_progress_remaining))
    schedule = KLAdaptiveLR(  # validates the constants
        start, target_kl, kl_margin=kl_margin, factor=factor, min_lr=min_lr, max_lr=max_lr, mode=mode
    )
    if old is not None:  # keep the object (and its counts) the saved model holds
        old.__dict__.update({k: v for k, v in schedule.__dict__.items() if not k.startswith("n_")})
        schedule = old
    model.learning_rate = schedule
    model.lr_schedule = _float_schedule(schedule)
    for group in model.policy.optimizer.param_groups:
        group["lr"] = schedule.lr
    controller = _CONTROLLERS.get(model)
    if controller is not None and controller._policy() is model.policy and controller._buffer() is model.rollout_buffer:
        controller.schedule = schedule
    else:
        if controller is not None:
            controller.remove()
        _CONTROLLERS[model] = _Controller(model, schedule)
    return schedule


class KLAdaptiveCallback(BaseCallback):
    """``model.learn(n, callback=KLAdaptiveCallback(target_kl=0.01))``: :func:`use_kl_adaptive_lr` at training start.

    Use it where the model is built by code you do not own (RL Zoo, a loaded model): at every ``learn()`` it (re)applies
    the rule, so a model loaded with ``PPO.load`` continues from its saved lr.

    Args:
        target_kl: see :func:`use_kl_adaptive_lr`.
        **rule: the other constants of :func:`use_kl_adaptive_lr`.
    """

    def __init__(self, target_kl: float = 0.01, **rule: Any) -> None:
        super().__init__()
        KLAdaptiveLR(1e-3, target_kl, **rule)  # fail at construction on a bad constant, not at learn()
        self.target_kl, self.rule = target_kl, rule

    def _init_callback(self) -> None:
        use_kl_adaptive_lr(self.model, self.target_kl, **self.rule)

    def _on_step(self) -> bool:
        return True
