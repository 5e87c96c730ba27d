"""An SB3 callback that logs the step sizes and accumulators of loss-driven optimizers under ``optim/``."""

from __future__ import annotations

import torch
from stable_baselines3.common.callbacks import BaseCallback

from rl_adaloss.optim._base import AccumulatorOptimizer

__all__ = ["OptimizerLogger", "find_optimizers"]


def find_optimizers(model: object) -> dict[str, torch.optim.Optimizer]:
    """Return every optimizer of an SB3 model by role: ``policy``, ``actor``, ``critic``, ``ent_coef``.

    The names are the attribute paths SB3 uses: ``policy.optimizer`` is ``"policy"``, ``policy.actor.optimizer`` is
    ``"actor"``, ``policy.critic.optimizer`` is ``"critic"``, and SAC/TQC/CrossQ's ``ent_coef_optimizer`` (always a
    plain ``torch.optim.Adam`` that SB3 builds itself) is ``"ent_coef"``.
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


class OptimizerLogger(BaseCallback):
    """Log ``optim/<name>/effective_lr`` and ``optim/<name>/accumulator`` for every accumulator optimizer.

    ``<name>`` is the optimizer's role (see :func:`find_optimizers`): ``optim/policy/effective_lr`` for PPO,
    ``optim/actor/...`` and ``optim/critic/...`` for SAC/TD3. With several param groups the tags get a ``_g<i>``
    suffix. ``optim/<name>/nonfinite_skips`` counts skipped non-finite losses. Other optimizers log their
    ``lr`` as ``optim/<name>/lr``. Values are recorded at the end of each rollout (reading them synchronises CUDA
    once per rollout, never per optimizer step) and written whenever SB3 dumps its logs, so TensorBoard shows them
    beside ``rollout/ep_rew_mean``.

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
            for i, group in enumerate(groups):
                suffix = f"_g{i}" if len(groups) > 1 else ""
                if isinstance(opt, AccumulatorOptimizer):
                    self.logger.record(f"optim/{name}/effective_lr{suffix}", opt.effective_lrs()[i])
                    self.logger.record(f"optim/{name}/accumulator{suffix}", opt.accumulators()[i])
                    self.logger.record(f"optim/{name}/nonfinite_skips{suffix}", int(group["nonfinite_skips"]))
                else:
                    self.logger.record(f"optim/{name}/lr{suffix}", float(group["lr"]))

    def _on_step(self) -> bool:
        return True
