"""RL Zoo with AdamLossRel: ``python -m rl_zoo3.train --algo ppo --env Pendulum-v1 --conf-file rl_adaloss.zoo.adamloss_rel``.

``hyperparams`` holds RL Zoo's own presets for the ``--algo`` of the command line, every env, with
``optimizer_class=AdamLossRel`` (see :mod:`rl_adaloss.zoo` and docs/rl_zoo.md).
"""

from rl_adaloss.zoo import conf_module

__getattr__, __all__ = conf_module("adamloss-rel")
