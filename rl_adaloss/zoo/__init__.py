"""RL Zoo conf files: ``python -m rl_zoo3.train --algo ppo --env Pendulum-v1 --conf-file rl_adaloss.zoo.<name>``.

RL Zoo's ``--conf-file`` takes a Python module with a ``hyperparams`` dict (env id -> hyperparameters). Each module
``rl_adaloss.zoo.<name>`` builds that dict from RL Zoo's own YAML presets (``rl_zoo3/hyperparams/<algo>.yml`` of the
installed ``rl_zoo3``, read when ``hyperparams`` is first looked up, never copied), for every env the YAML covers,
with ``policy_kwargs["optimizer_class"]`` set to the optimizer (and its kwargs as this package's runs use them:
:func:`rl_adaloss.sb3.optimizer_policy_kwargs`, e.g. ``eps=1e-5`` for on-policy algorithms). RL Zoo's other
``policy_kwargs`` are kept; where its YAML holds them as Python source (``"dict(net_arch=[64], activation_fn=nn.ReLU)"``)
they are evaluated as RL Zoo evaluates them (in ``rl_zoo3.exp_manager``'s namespace), so that the optimizer can be
added. For SAC, TQC and CrossQ with a learned entropy coefficient, a loss-driven optimizer drives the coefficient too,
as in this package's runs (issue 28): the module adds RL Zoo's ``callback`` :data:`ENT_COEF_CALLBACK` (SB3 itself
always builds Adam for it). Every other key is left to RL Zoo.

RL Zoo looks the conf file up by env id only, and its presets are per algorithm (one YAML per algo), so the module
reads the algorithm from RL Zoo's own ``--algo`` argument (``sys.argv``, default ``ppo`` as in ``rl_zoo3.train``).
From Python, :func:`zoo_hyperparams` takes the algorithm explicitly.

A new module is three lines (see ``adamloss_rel.py``)::

    from rl_adaloss.zoo import conf_module

    __getattr__, __all__ = conf_module("adamloss")
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["ENT_COEF_CALLBACK", "ZOO_ALGOS", "algo_from_argv", "conf_module", "zoo_hyperparams"]

ZOO_ALGOS = ("a2c", "crossq", "ddpg", "dqn", "ppo", "ppo_lstm", "qrdqn", "sac", "td3", "tqc", "trpo")
"""RL Zoo's algorithms whose policies take an ``optimizer_class`` (not ARS, which has no optimizer, nor HER)."""
ENT_COEF_CALLBACK = "rl_adaloss.sb3.EntCoefOptimizer"
"""RL Zoo ``callback`` that gives SAC/TQC/CrossQ's learned entropy coefficient the policy's optimizer."""


def _policy_kwargs(value: Any) -> dict[str, Any]:
    """RL Zoo's ``policy_kwargs`` as a dict: Python source evaluated as ``rl_zoo3.exp_manager`` does it."""
    if value is None:
        return {}
    if isinstance(value, str):
        from rl_zoo3 import exp_manager

        value = eval(value, dict(vars(exp_manager)))  # RL Zoo's own trusted YAML, in RL Zoo's own namespace
    if not isinstance(value, dict):
        raise ValueError(f"Invalid policy_kwargs: {value!r} (expected a mapping)")
    return dict(value)


def zoo_hyperparams(optimizer: str, algo: str) -> dict[str, dict[str, Any]]:
    """RL Zoo's presets for ``algo`` (every env of its YAML) with ``optimizer`` in ``policy_kwargs``.

    Args:
        optimizer: a key of :data:`rl_adaloss.sb3.OPTIMIZERS` or a ``package.module:Class`` path.
        algo: one of :data:`ZOO_ALGOS`.

    Returns:
        env id -> hyperparameters, ready for RL Zoo's ``--conf-file``.

    Raises:
        ValueError: an algorithm not in :data:`ZOO_ALGOS`, or an unknown optimizer.
        ImportError: ``rl_zoo3`` is not installed (``pip install 'rl-adaloss[zoo]'``).
    """
    from rl_adaloss.agents.presets import _read_yaml, zoo_hyperparams_dir
    from rl_adaloss.sb3 import optimizer_policy_kwargs

    if algo not in ZOO_ALGOS:
        raise ValueError(f"Invalid algo: {algo!r} (valid: {', '.join(ZOO_ALGOS)})")
    found = zoo_hyperparams_dir()
    if found is None:
        raise ImportError("rl_adaloss.zoo needs RL Zoo: pip install 'rl-adaloss[zoo]'")
    out: dict[str, dict[str, Any]] = {}
    for env_id, preset in _read_yaml(found[0] / f"{algo}.yml").items():
        base = _policy_kwargs(preset.get("policy_kwargs"))
        base.pop("optimizer_class", None)  # RL Zoo's own choice (RMSpropTFLike for A2C on Atari) is the one replaced
        out[env_id] = {**preset, "policy_kwargs": optimizer_policy_kwargs(optimizer, algo, base=base)}
        if _drives_ent_coef(optimizer, algo, preset):
            callbacks = preset.get("callback") or []
            out[env_id]["callback"] = [*(callbacks if isinstance(callbacks, list) else [callbacks]), ENT_COEF_CALLBACK]
    return out


def _drives_ent_coef(optimizer: str, algo: str, preset: dict[str, Any]) -> bool:
    """Whether the optimizer also drives the entropy coefficient (a loss-driven one, where SAC/TQC/CrossQ learn it)."""
    from rl_adaloss.sb3 import optimizer_spec

    learned = algo in ("sac", "tqc", "crossq") and str(preset.get("ent_coef", "auto")).startswith("auto")
    return learned and optimizer_spec(optimizer).loss_driven


def algo_from_argv(argv: list[str] | None = None) -> str:
    """The algorithm of an ``rl_zoo3.train`` command line (its ``--algo``, default ``ppo``)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--algo", default="ppo")
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return str(args.algo)


def conf_module(optimizer: str) -> tuple[Callable[[str], Any], list[str]]:
    """``(__getattr__, __all__)`` of a conf module whose ``hyperparams`` are RL Zoo's with ``optimizer``.

    ``hyperparams`` is built at its first look-up for the algorithm on the command line, and again whenever that
    algorithm changes.
    """
    cache: dict[str, dict[str, dict[str, Any]]] = {}

    def __getattr__(name: str) -> Any:
        if name != "hyperparams":
            raise AttributeError(f"module has no attribute {name!r}")
        algo = algo_from_argv()
        if algo not in cache:
            cache[algo] = zoo_hyperparams(optimizer, algo)
        return cache[algo]

    return __getattr__, ["hyperparams"]
