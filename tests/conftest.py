"""Shared fixtures: seeds, a tiny quadratic problem, tiny SB3 settings, the experiment tests' tiny grid and command;
the ``sb3`` marker of the test tiers."""

from __future__ import annotations

import ast
import functools
import inspect
import os
import subprocess
import sys
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


# The experiment machinery's tests (tests/test_experiment_*.py): the tiny grid, swept once, and the rl-adaloss command.
ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "experiments" / "grids" / "tiny.yaml"


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory):
    """The tiny grid (adam and adamloss x 2 seeds, 256 steps) swept once per session by 2 workers: ``(folder, summary)``.

    Shared by the run, sweep and report tests; they read it, and the report tests add their report files to it.
    """
    from rl_adaloss.experiment import load_spec
    from rl_adaloss.experiment.sweep import run_sweep

    out = tmp_path_factory.mktemp("sweep") / "tiny"
    summary = run_sweep(load_spec(TINY), out, workers=2, progress=False)
    return out, summary


@pytest.fixture
def grid():
    """``grid(**changes)``: the tiny grid as a dict, cut to one adam run of 128 steps, with ``changes`` applied."""
    import yaml

    tiny = yaml.safe_load(TINY.read_text())

    def make(**changes) -> dict:
        raw = {**tiny, "optimizers": ["adam"], "seeds": [0], "n_timesteps": 128, "eval_freq": 64, "eval_episodes": 1}
        raw.update(changes)
        return raw

    return make


@pytest.fixture
def cli():
    """``cli(*args)``: run the installed ``rl-adaloss`` console script (the module, if the script is not on this
    interpreter) in the repository, and return the completed process."""

    def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
        script = Path(sys.executable).with_name("rl-adaloss")
        cmd = [str(script)] if script.exists() else [sys.executable, "-m", "rl_adaloss.experiment.cli"]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)

    return run


@pytest.fixture
def in_process(capsys):
    """``in_process(*args)``: the same command through ``main()`` in this process (cheaper than a process start; same
    code path), returned as a completed process."""
    from rl_adaloss.experiment.cli import main

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out, err)

    return run
