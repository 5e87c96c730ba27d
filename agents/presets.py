"""Where an agent's hyperparameters come from: our ``agents/<algo>.yml``, then RL Zoo's tuned presets, then SB3 defaults.

RL Zoo (the ``rl_zoo3`` package, ``pip install 'rl-adaloss[zoo]'``) ships its tuned hyperparameters as YAML files
(``rl_zoo3/hyperparams/<algo>.yml``); they are read in place, never copied, and never executed: RL Zoo writes
``policy_kwargs`` as Python source (``"dict(activation_fn=nn.ReLU, net_arch=[64])"``) and runs it through ``eval``;
:func:`parse_python_kwargs` reads the same text with :mod:`ast` and resolves names only through an allow-list
(``torch.nn`` activations and SB3 feature extractors). Anything else is rejected with an error that names it.
"""

from __future__ import annotations

import ast
import copy
import functools
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "PRESET_DIR",
    "Preset",
    "allowed_names",
    "find_preset",
    "parse_python_kwargs",
    "zoo_hyperparams_dir",
]

PRESET_DIR = Path(__file__).resolve().parent
SB3_DEFAULTS = "SB3 defaults"


@dataclass(frozen=True)
class Preset:
    """One (algo, env) preset and where it came from."""

    hyperparams: dict[str, Any]
    """RL Zoo-format keys as written in the file (``policy_kwargs`` may still be a ``"dict(...)"`` string)."""
    source: str
    """``agents/ppo.yml``, ``rl_zoo3 2.9.2 hyperparams/ppo.yml`` or ``SB3 defaults``."""


@functools.cache
def _read_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"Invalid preset file {path}: expected a mapping of env id -> hyperparameters")
    return data


def zoo_hyperparams_dir() -> tuple[Path, str] | None:
    """Return ``(folder of RL Zoo's YAML presets, rl_zoo3 version)``, or None if ``rl_zoo3`` is not installed.

    The package is located without importing it (importing ``rl_zoo3`` pulls in its training framework).
    """
    spec = importlib.util.find_spec("rl_zoo3")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "hyperparams"
    if not folder.is_dir():
        return None
    try:
        version = importlib.metadata.version("rl_zoo3")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return folder, version


def find_preset(algo: str, env_id: str) -> Preset:
    """Return the preset for ``(algo, env_id)``: ``agents/<algo>.yml``, else RL Zoo's, else SB3's defaults (empty).

    Args:
        algo: our algorithm key (``ppo``, ``dqn``, ``qrdqn``, ...; RL Zoo uses the same names).
        env_id: Gymnasium id.

    Returns:
        A deep copy of the hyperparameters and their source.
    """
    ours = PRESET_DIR / f"{algo}.yml"
    if ours.exists() and env_id in _read_yaml(ours):
        return Preset(copy.deepcopy(_read_yaml(ours)[env_id]), f"agents/{algo}.yml")
    zoo = zoo_hyperparams_dir()
    if zoo is not None:
        folder, version = zoo
        path = folder / f"{algo}.yml"
        if path.exists() and env_id in _read_yaml(path):
            return Preset(copy.deepcopy(_read_yaml(path)[env_id]), f"rl_zoo3 {version} hyperparams/{algo}.yml")
    return Preset({}, SB3_DEFAULTS)


@functools.cache
def allowed_names() -> dict[str, Any]:
    """Names a preset's Python-source kwargs may use: ``torch.nn`` activations and SB3 feature extractors.

    Each is reachable as ``Name``, ``nn.Name``, ``th.nn.Name`` and ``torch.nn.Name`` (activations) or ``Name`` and
    ``stable_baselines3.common.torch_layers.Name`` (feature extractors).
    """
    import torch
    import torch.nn.modules.activation as activation
    from stable_baselines3.common import torch_layers

    names: dict[str, Any] = {}
    for name in [*activation.__all__, "Identity"]:
        for prefix in ("", "nn.", "th.nn.", "torch.nn."):
            names[prefix + name] = getattr(torch.nn, name)
    for name in ("FlattenExtractor", "NatureCNN", "CombinedExtractor"):
        cls = getattr(torch_layers, name)
        names[name] = names[f"stable_baselines3.common.torch_layers.{name}"] = cls
    return names


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


def _value(node: ast.AST, what: str) -> Any:
    """Evaluate a literal, a ``dict(...)`` call or an allow-listed name; reject everything else naming it."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _value(node.operand, what)
        if isinstance(operand, (int, float)) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.List):
        return [_value(x, what) for x in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_value(x, what) for x in node.elts)
    if isinstance(node, ast.Dict) and all(k is not None for k in node.keys):
        return {_value(k, what): _value(v, what) for k, v in zip(node.keys, node.values) if k is not None}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        if any(kw.arg is None for kw in node.keywords):
            raise ValueError(f"Invalid {what}: '**' unpacking is not allowed in {ast.unparse(node)!r}")
        return {kw.arg: _value(kw.value, what) for kw in node.keywords if kw.arg is not None}
    name = _dotted(node)
    if name is not None:
        if name in allowed_names():
            return allowed_names()[name]
        raise ValueError(
            f"Invalid {what}: name {name!r} is not allowed (allowed: torch.nn activations such as nn.ReLU, nn.Tanh, "
            "nn.GELU, and SB3 feature extractors FlattenExtractor, NatureCNN, CombinedExtractor)"
        )
    raise ValueError(f"Invalid {what}: {ast.unparse(node)!r} is not a literal, a dict(...) call or an allowed name")


def parse_python_kwargs(value: Any, what: str = "policy_kwargs") -> Any:
    """Read RL Zoo's Python-source values safely: ``"dict(net_arch=[64], activation_fn=nn.ReLU)"`` -> a dict.

    Mappings and other non-strings are returned as deep copies (names inside them are not resolved: YAML cannot hold
    classes). Strings are parsed with :mod:`ast` (never ``eval``): literals, ``dict(key=...)`` calls and
    allow-listed names (:func:`allowed_names`).

    Args:
        value: the preset's value.
        what: the key, for error messages.

    Raises:
        ValueError: syntax error, or anything that is not a literal, ``dict(...)`` or an allowed name (the message
            names it).

    Example:
        >>> parse_python_kwargs("dict(log_std_init=-2, activation_fn=nn.ReLU, net_arch=dict(pi=[64], vf=[64]))")
        {'log_std_init': -2, 'activation_fn': <class 'torch.nn.modules.activation.ReLU'>, 'net_arch': {'pi': [64], 'vf': [64]}}
    """
    if not isinstance(value, str):
        return copy.deepcopy(value)
    try:
        tree = ast.parse(value.strip(), mode="eval")
    except SyntaxError as err:
        raise ValueError(f"Invalid {what}: {value!r} is not valid Python ({err.msg})") from None
    return _value(tree.body, what)
