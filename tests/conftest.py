"""Shared fixtures: seeds, a tiny quadratic problem, tiny SB3 settings; the ``sb3`` marker of the test tiers."""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
from pathlib import Path

import pytest
import torch

from rl_adaloss.experiment.numerics import pin_cpu_numerics

# Pin the CPU numerics before torch computes anything, as `rl-adaloss` does: then a run made in this process equals
# the same run made by a sweep's worker process (which pins them at its start).
pin_cpu_numerics()

# The fast tier (pytest -m "not sb3") is torch alone: optimizers and the loss feed. A test is marked sb3 when its
# module (at top level) or its own body imports any of these, or it takes the tiny SB3 settings; a doctest when it
# lies outside rl_adaloss/optim. Marked by what a test imports, so a new test lands in the right tier by itself.
_SB3_SIDE = (
    "stable_baselines3", "sb3_contrib", "gymnasium", "rl_adaloss.agents", "rl_adaloss.sb3", "rl_adaloss.envs",
    "rl_adaloss.experiment", "experiments", "ray",
)  # fmt: skip


def _imported(nodes: list[ast.AST]) -> set[str]:
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


@functools.cache
def _module_imports(path: Path) -> set[str]:
    return _imported(ast.parse(path.read_text()).body)


def _needs_sb3(item: pytest.Item) -> bool:
    if isinstance(item, pytest.DoctestItem):
        return "optim" not in item.path.parts
    names = set(_module_imports(item.path))  # a copy: the cached set must stay the module's
    function = getattr(item, "function", None)
    if function is not None:
        names |= _imported(list(ast.walk(ast.parse(textwrap.dedent(inspect.getsource(function))))))
    uses = any(name == side or name.startswith(side + ".") for name in names for side in _SB3_SIDE)
    return uses or "tiny_sb3_kwargs" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that needs SB3, Gymnasium or the experiment machinery ``sb3`` (see ``_SB3_SIDE``)."""
    for item in items:
        if _needs_sb3(item):
            item.add_marker(pytest.mark.sb3)


torch.set_num_threads(1)


@pytest.fixture
def seed() -> int:
    torch.manual_seed(0)
    return 0


@pytest.fixture
def quadratic():
    """A tiny least-squares problem: returns (params, loss_fn) with a fixed well-conditioned design."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g)
    w_true = torch.randn(4, 1, generator=g)
    y = x @ w_true

    def make():
        w = torch.nn.Parameter(torch.zeros(4, 1))
        b = torch.nn.Parameter(torch.zeros(1))

        def loss_fn():
            return 0.5 * ((x @ w + b - y) ** 2).mean()

        return [w, b], loss_fn

    return make


@pytest.fixture
def tiny_sb3_kwargs() -> dict:
    return dict(policy_kwargs=dict(net_arch=[16]), device="cpu", seed=0, verbose=0)
