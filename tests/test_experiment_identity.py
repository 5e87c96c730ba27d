"""rl_adaloss.experiment.identity: a run's identity (its resolved configuration, hashed) and the code that made it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from rl_adaloss.experiment import spec_from_dict
from rl_adaloss.experiment.identity import source_digest
from rl_adaloss.experiment.sweep import run_sweep

ROOT = Path(__file__).resolve().parents[1]
TINY_GRID = yaml.safe_load((ROOT / "experiments" / "grids" / "tiny.yaml").read_text())


def rows(out: Path) -> list[dict[str, str]]:
    with (out / "results.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_sweep_never_reuses_runs_whose_configuration_changed(tmp_path, grid, cli):
    out = tmp_path / "sweep"
    assert run_sweep(spec_from_dict(grid()), out, workers=1, progress=False)["ok"] == 1
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    first = json.loads((run_dir / "result.json").read_text())
    saved = json.loads((run_dir / "config.json").read_text())
    assert first["config_hash"] == saved["config_hash"]
    assert saved["source"] == source_digest() and "source" not in saved["identity"]  # which code; not in the hash

    with pytest.raises(ValueError, match=r"1 finished run\(s\) .* n_timesteps: 128 -> 64.*--overwrite"):
        run_sweep(spec_from_dict(grid(n_timesteps=64)), out, workers=1, progress=False)
    assert json.loads((out / "spec.json").read_text())["n_timesteps"] == 128  # nothing rewritten

    changed = tmp_path / "changed.yaml"  # a preset override changes the run too; the CLI refuses with exit 2
    changed.write_text(yaml.safe_dump(grid(hyperparams={**TINY_GRID["hyperparams"], "n_steps": 32})))
    proc = cli("sweep", str(changed), "--out", str(out), "--no-progress")
    assert proc.returncode == 2 and "agent.hyperparams.n_steps: 64 -> 32" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1

    summary = run_sweep(spec_from_dict(grid(n_timesteps=64)), out, workers=1, progress=False, overwrite=True)
    assert (summary["ok"], summary["skipped"]) == (1, 0)
    (row,) = rows(out)
    assert row["num_timesteps"] == "64" and row["config_hash"] != first["config_hash"]
    assert run_sweep(spec_from_dict(grid(n_timesteps=64)), out, workers=1, progress=False)["skipped"] == 1


def test_source_digest_changes_with_any_package_file_and_ignores_bytecode(tmp_path, monkeypatch):
    import shutil

    import rl_adaloss
    import rl_adaloss.agents

    def copy_tree(src: Path, dst: Path) -> Path:
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        return dst

    package, agents = Path(rl_adaloss.__file__).parent, Path(rl_adaloss.agents.__file__).parent
    checkout = copy_tree(package, tmp_path / "checkout" / "rl_adaloss")  # agents/ beside the package
    checkout_agents = copy_tree(agents, tmp_path / "checkout" / "agents")
    copy = copy_tree(package, tmp_path / "installed" / "rl_adaloss")  # agents/ inside it, as a wheel installs it
    copy_tree(agents, copy / "agents")

    def digest(pkg: Path, agents_dir: Path) -> str:
        monkeypatch.setattr(rl_adaloss, "__file__", str(pkg / "__init__.py"))
        monkeypatch.setattr(rl_adaloss.agents, "__file__", str(agents_dir / "__init__.py"))
        source_digest.cache_clear()
        return source_digest()

    try:
        base = digest(copy, copy / "agents")
        assert len(base) == 16 and int(base, 16) >= 0
        assert digest(checkout, checkout_agents) == base  # the same files, wherever agents/ lies
        (copy / "optim" / "__pycache__").mkdir()
        (copy / "optim" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"bytecode")
        assert digest(copy, copy / "agents") == base
        preset = copy / "agents" / "ppo.yml"  # presets count too (rl_adaloss.agents is agents/)
        preset.write_text(preset.read_text() + "\n# changed\n")
        assert digest(copy, copy / "agents") != base
    finally:
        source_digest.cache_clear()
