"""An SB3 callback that logs every optimizer's step size (and loss-driven optimizers' accumulators) under ``optim/``."""

from __future__ import annotations

import torch
from stable_baselines3.common.callbacks import BaseCallback

__all__ = ["OptimizerLogger", "effective_lrs", "find_optimizers"]


def find_optimizers(model: object) -> dict[str, torch.optim.Optimizer]:
    """Return every optimizer of an SB3 model by role: ``policy``, ``actor``, ``critic``, ``ent_coef``.

    The names are the attribute paths SB3 uses: ``policy.optimizer`` is ``"policy"``, ``policy.actor.optimizer`` is
    ``"actor"``, ``policy.critic.optimizer`` is ``"critic"``, and SAC/TQC/CrossQ's ``ent_coef_optimizer`` (a plain
    ``torch.optim.Adam`` that SB3 builds itself, unless :func:`~rl_adaloss.sb3.set_ent_coef_optimizer` replaced it)
    is ``"ent_coef"``.
    """
    found: dict[str, torch.optim.Optimizer] = {}
    policy = getattr(model, "policy", None)
    if isinstance(policy, torch.nn.Module):
        for name, module in policy.named_modules():
            opt = getattr(module, "optimizer", None)
            if isinstance(opt, torch.optim.Optimizer) and not any(opt is o for o in found.values()):
                found[name.replace(".", "/") or "policy"] = opt
    ent = getattr(model, "ent_coef_optimizer", None)
    if isinstance(ent, torch.optim.Optimizer):
        found["ent_coef"] = ent
    return found


def effective_lrs(opt: torch.optim.Optimizer) -> list[float]:
    """The step size each param group takes now, comparable across optimizers.

    Loss-driven optimizers (anything with an ``effective_lrs()`` method, e.g. AdamLoss: ``(lr_t/lr_0)/sqrt(b_t)``)
    report their own; Prodigy and D-Adaptation multiply ``lr`` by their estimate ``d``; every other optimizer's step
    size is its ``lr`` (for Adam, the step before the per-coordinate normalisation, as for AdamLoss).
    """
    own = getattr(opt, "effective_lrs", None)
    if callable(own):
        return [float(v) for v in own()]
    return [float(g["lr"]) * float(g.get("d", 1.0)) for g in opt.param_groups]


def _public(opt: torch.optim.Optimizer, accessor: str) -> list[float] | None:
    """The optimizer's public per-group accessor (``accumulators()``, ``nonfinite_skips()``), None if it has none."""
    method = getattr(opt, accessor, None)
    return [float(v) for v in method()] if callable(method) else None


class OptimizerLogger(BaseCallback):
    """Log every optimizer's step size as ``optim/<name>/effective_lr`` (one tag, so Adam and AdamLoss share a chart).

    ``<name>`` is the optimizer's role (see :func:`find_optimizers`): ``optim/policy/effective_lr`` for PPO,
    ``optim/actor/...`` and ``optim/critic/...`` for SAC/TD3. With several param groups the tags get a ``_g<i>``
    suffix. Loss-driven optimizers also log ``optim/<name>/accumulator`` and ``optim/<name>/nonfinite_skips``
    (skipped non-finite losses); other optimizers also log their raw ``lr`` as ``optim/<name>/lr``. Values are
    recorded at the end of each rollout (reading them synchronises CUDA once per rollout, never per optimizer step)
    and written whenever SB3 dumps its logs, so TensorBoard shows them beside ``rollout/ep_rew_mean``.

    Example:
        >>> from stable_baselines3 import PPO
        >>> from rl_adaloss import AdamLoss
        >>> model = PPO("MlpPolicy", "Pendulum-v1", n_steps=64, batch_size=32, n_epochs=1, seed=0,
        ...             policy_kwargs=dict(optimizer_class=AdamLoss, net_arch=[8]))
        >>> model.learn(128, callback=OptimizerLogger())  # doctest: +ELLIPSIS
        <stable_baselines3.ppo.ppo.PPO object at ...>
    """

    def _on_rollout_end(self) -> None:
        for name, opt in find_optimizers(self.model).items():
            groups = opt.param_groups
            steps = effective_lrs(opt)
            accumulators = _public(opt, "accumulators")
            skips = _public(opt, "nonfinite_skips")
            for i, group in enumerate(groups):
                suffix = f"_g{i}" if len(groups) > 1 else ""
                self.logger.record(f"optim/{name}/effective_lr{suffix}", steps[i])
                if accumulators is not None:
                    self.logger.record(f"optim/{name}/accumulator{suffix}", accumulators[i])
                    if skips is not None:
                        self.logger.record(f"optim/{name}/nonfinite_skips{suffix}", int(skips[i]))
                else:
                    self.logger.record(f"optim/{name}/lr{suffix}", float(group["lr"]))

    def _on_step(self) -> bool:
        return True
