"""The entropy coefficient's optimizer of SAC, TQC and CrossQ, which ``policy_kwargs`` cannot reach.

SAC, TQC and CrossQ (with ``ent_coef="auto"``) learn ``log_ent_coef`` with an optimizer SB3 builds itself in
``_setup_model``: always ``torch.optim.Adam([log_ent_coef], lr=lr_schedule(1))``, whatever
``policy_kwargs["optimizer_class"]`` says, and SB3 rewrites its ``lr`` at every ``train()`` like the others'. So a
loss-driven optimizer passed as ``optimizer_class`` drives the actor and the critic, while the coefficient still
takes Adam's steps at the full ``lr``: at a large ``lr`` that alone can wreck the run (docs/results.md, SAC Pendulum
at eta_0 = 1: the coefficient falls below 1e-40 within 800 steps).

:func:`set_ent_coef_optimizer` replaces that Adam with any optimizer (by default the policy's own class and kwargs);
:class:`EntCoefOptimizer` does it from ``learn(callback=...)``, also after ``SAC.load``. The loss feed
(:mod:`rl_adaloss.optim.loss_feed`) hands the new optimizer SB3's ``ent_coef_loss``, as it hands the actor its loss.

Saving and loading: SB3 saves the new optimizer's state dict, and ``SAC.load`` loads it into the Adam it builds (torch
keeps the foreign keys). Applying :func:`set_ent_coef_optimizer` again after loading moves that state into the new
optimizer, so the coefficient's optimizer continues where it was saved.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from stable_baselines3.common.callbacks import BaseCallback

from rl_adaloss.optim._base import AccumulatorOptimizer

__all__ = ["EntCoefOptimizer", "set_ent_coef_optimizer"]


def _same_kwargs(opt: torch.optim.Optimizer, kwargs: dict[str, Any]) -> bool:
    return all(key in opt.defaults and opt.defaults[key] == value for key, value in kwargs.items())


def _carry_state(old: torch.optim.Optimizer, new: torch.optim.Optimizer) -> None:
    """Move ``old``'s state (moments, step counts, accumulators) into ``new`` where ``new`` can take it.

    The state dict of a freshly loaded model holds what the saved optimizer wrote: ``new``'s own keys when the model
    was saved with the same optimizer (restored as is), or Adam's (adopted by this package's optimizers; dropped,
    with a warning, by optimizers that cannot read Adam's state).
    """
    if not old.state:  # nothing learned yet (a model that has not trained, or not since it was loaded)
        return
    state = old.state_dict()
    saved_keys = set().union(*(group.keys() for group in state["param_groups"]))
    written_by_new = set(new.defaults) <= saved_keys
    if written_by_new or isinstance(new, AccumulatorOptimizer):
        new.load_state_dict(state)
        return
    warnings.warn(
        f"{type(new).__name__} cannot take the state of the entropy coefficient's {type(old).__name__} (its param "
        f"groups lack {sorted(set(new.defaults) - saved_keys)}); it starts from a fresh state",
        stacklevel=3,
    )


def set_ent_coef_optimizer(
    model: Any, optimizer_class: type[torch.optim.Optimizer] | None = None, **optimizer_kwargs: Any
) -> torch.optim.Optimizer | None:
    """Make SAC / TQC / CrossQ learn the entropy coefficient with ``optimizer_class`` instead of SB3's Adam.

    The new optimizer is built as SB3 builds the others, ``optimizer_class([log_ent_coef], lr=<the current lr>,
    **optimizer_kwargs)``, and replaces ``model.ent_coef_optimizer``; SB3 keeps rewriting its ``lr`` from the
    learning-rate schedule, saves it and logs it (``optim/ent_coef/...`` with :class:`OptimizerLogger`). The state
    of the optimizer it replaces (Adam's moments, or a state loaded from a saved model) is carried over where the new
    optimizer can read it. Calling it again with the same class and kwargs changes nothing.

    Args:
        model: a SAC, TQC or CrossQ model (or any model with ``ent_coef_optimizer`` and ``log_ent_coef``).
        optimizer_class: the optimizer to use (default: the policy's ``optimizer_class``).
        **optimizer_kwargs: its keyword arguments (default, when ``optimizer_class`` is not given either: the policy's
            ``optimizer_kwargs``).

    Returns:
        The optimizer now in ``model.ent_coef_optimizer``, or None when the model has a fixed ``ent_coef`` (nothing
        to optimise).

    Raises:
        ValueError: the model learns no entropy coefficient of this kind (PPO, TD3, ...), or ``lr`` is among the
            kwargs (SB3 sets it).

    Example:
        >>> from stable_baselines3 import SAC
        >>> from rl_adaloss import AdamLoss
        >>> model = SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(optimizer_class=AdamLoss, net_arch=[8]))
        >>> type(set_ent_coef_optimizer(model)).__name__
        'AdamLoss'
    """
    if not hasattr(model, "ent_coef_optimizer") or not hasattr(model, "log_ent_coef"):
        raise ValueError(
            f"Invalid model: {type(model).__name__} has no entropy-coefficient optimizer (SAC, TQC and CrossQ have one)"
        )
    old = model.ent_coef_optimizer
    if old is None:  # ent_coef is a fixed number
        return None
    if optimizer_class is None:
        optimizer_class = model.policy.optimizer_class
        if not optimizer_kwargs:
            optimizer_kwargs = dict(model.policy.optimizer_kwargs or {})
    if "lr" in optimizer_kwargs:
        raise ValueError(
            f"Invalid optimizer_kwargs: lr={optimizer_kwargs['lr']} (the lr is SB3's learning-rate schedule, which it "
            "writes into every optimizer at each train())"
        )
    if type(old) is optimizer_class and _same_kwargs(old, optimizer_kwargs):
        return old
    lr = old.param_groups[0]["lr"]
    new = optimizer_class([model.log_ent_coef], lr=lr, **optimizer_kwargs)  # type: ignore[call-arg]
    _carry_state(old, new)
    model.ent_coef_optimizer = new
    return new


class EntCoefOptimizer(BaseCallback):
    """Call :func:`set_ent_coef_optimizer` when training starts: ``model.learn(n, callback=EntCoefOptimizer())``.

    Use it where the model is built by code you do not own (RL Zoo, a loaded model): it applies at every ``learn()``,
    so a model loaded with ``SAC.load`` gets its saved entropy-coefficient optimizer back before its first update.
    A model with a fixed ``ent_coef`` is left as it is.

    Args:
        optimizer_class: the optimizer to use (default: the policy's ``optimizer_class``).
        **optimizer_kwargs: its keyword arguments (default: the policy's ``optimizer_kwargs``).
    """

    def __init__(self, optimizer_class: type[torch.optim.Optimizer] | None = None, **optimizer_kwargs: Any) -> None:
        super().__init__()
        self.optimizer_class = optimizer_class
        self.optimizer_kwargs = optimizer_kwargs

    def _init_callback(self) -> None:
        set_ent_coef_optimizer(self.model, self.optimizer_class, **self.optimizer_kwargs)

    def _on_step(self) -> bool:
        return True
