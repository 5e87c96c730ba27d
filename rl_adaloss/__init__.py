"""rl-adaloss: loss-driven step sizes (AdaLoss, AdamLoss) for PyTorch and Stable-Baselines3.

Importing the package (or ``rl_adaloss.optim``) needs torch alone. The swing-up environments register with Gymnasium
when ``rl_adaloss.envs`` is imported; ``import rl_adaloss`` does that too when Gymnasium is already imported (it then
costs nothing), and ``rl_adaloss.envs`` is always reachable as an attribute.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from typing import Any

from rl_adaloss.optim import AdaGradNorm, AdaLoss, AdamLoss, AdamSqrt, MissingLossError, SGDDecaySqrt

__version__ = "0.2.0"

__all__ = ["AdaGradNorm", "AdaLoss", "AdamLoss", "AdamSqrt", "MissingLossError", "SGDDecaySqrt", "__version__"]


class _CheckoutAgents(importlib.abc.MetaPathFinder):
    """Find ``rl_adaloss.agents`` in a source checkout, where it is the top-level ``agents/`` folder.

    An installed package (wheel or editable) maps ``agents/`` to ``rl_adaloss.agents`` itself (``package-dir`` in
    pyproject.toml); a plain checkout on ``sys.path`` (pytest's ``pythonpath = ["."]``, ``PYTHONPATH=.``) has no such
    mapping, and a symlink would break on checkouts without symlinks. This finder is put on ``sys.meta_path`` only
    when this ``rl_adaloss`` was imported from a checkout (beside its ``pyproject.toml`` and ``agents/``), and it
    answers for that one name only, with the ``agents/`` folder beside this very package (which an editable install
    of the checkout maps to as well, and another installed copy must not shadow).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        """Return the spec of ``agents/__init__.py`` for ``rl_adaloss.agents``, None for any other name."""
        if fullname != "rl_adaloss.agents":
            return None
        init = self.folder / "__init__.py"
        return importlib.util.spec_from_file_location(fullname, init, submodule_search_locations=[str(self.folder)])


_AGENTS = Path(__file__).resolve().parent.parent / "agents"
_IN_CHECKOUT = (_AGENTS.parent / "pyproject.toml").is_file() and (_AGENTS / "__init__.py").is_file()
if _IN_CHECKOUT and not (Path(__file__).parent / "agents").is_dir():
    if not any(isinstance(finder, _CheckoutAgents) for finder in sys.meta_path):
        sys.meta_path.insert(0, _CheckoutAgents(_AGENTS))

if "gymnasium" in sys.modules:  # registering is free now; users who import gymnasium first get the ids at once
    importlib.import_module("rl_adaloss.envs")


def __getattr__(name: str) -> Any:
    if name in ("envs", "sb3", "experiment", "agents"):
        return importlib.import_module(f"rl_adaloss.{name}")
    raise AttributeError(f"module 'rl_adaloss' has no attribute {name!r}")
