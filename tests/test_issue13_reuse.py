"""experiments/issue13/reuse.py: older runs are reused only where exact reruns reproduce them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from experiments.issue13.reuse import reuse
from rl_adaloss.experiment.spec import load_spec
from rl_adaloss.experiment.sweep import pending_runs, run_sweep

pytestmark = pytest.mark.study  # the study's tests: outside the default tier (pytest -m study)

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "experiments" / "grids" / "tiny.yaml"


def _as_older_sweep(folder: Path) -> None:
    """Rewrite a sweep's config.json files in the layout of the older sweeps (no hash, no identity, string lr)."""
    for config_path in folder.glob("*/config.json"):
        data = json.loads(config_path.read_text())
        agent = data["identity"]["agent"]
        agent["hyperparams"]["learning_rate"] = str(agent["hyperparams"]["learning_rate"])
        agent["hyperparams"]["policy"] = agent.pop("policy")
        for key in ("optimizer_class", "optimizer_kwargs", "preset_source"):
            agent.pop(key)
        older = {k: v for k, v in data.items() if k not in ("identity", "config_hash")}
        config_path.write_text(json.dumps({**older, "agent": agent, "n_timesteps_resolved": data["n_timesteps"]}))
        result_path = config_path.with_name("result.json")
        result = json.loads(result_path.read_text())
        result.pop("config_hash")
        result_path.write_text(json.dumps(result))


@pytest.fixture(scope="module")
def older(tmp_path_factory):
    out = tmp_path_factory.mktemp("older") / "sweep"
    run_sweep(load_spec(TINY), out, workers=1, progress=False)
    _as_older_sweep(out)
    return out


@pytest.fixture(scope="module")
def reruns(tmp_path_factory):
    """Seed 0 of both arms, rerun by the current code (the verification pairs); tests work on copies."""
    tmp = tmp_path_factory.mktemp("reruns")
    out = tmp / "eval"
    run_sweep(load_spec(_subset_spec(tmp, seeds="[0]")), out, workers=1, progress=False)
    return out


def _eval_folder(reruns: Path, tmp_path: Path, drop: tuple[str, ...] = ()) -> Path:
    out = tmp_path / "eval"
    shutil.copytree(reruns, out)
    for name in drop:
        shutil.rmtree(out / name)
    return out


def _subset_spec(tmp_path: Path, **fields) -> Path:
    text = TINY.read_text()
    for key, value in fields.items():
        text = "\n".join(f"{key}: {value}" if line.startswith(f"{key}:") else line for line in text.splitlines())
    path = tmp_path / "subset.yaml"
    path.write_text(text + "\n")
    return path


def test_reused_only_after_exact_reruns_and_then_counted_as_done(older, reruns, tmp_path):
    out = _eval_folder(reruns, tmp_path)
    report = reuse(str(TINY), str(out), str(older), ["adam", "adamloss"], min_verified=1)
    assert report["verified"] == {"adam": ["Pendulum-v1__ppo__adam__lr0.001__s0"],
                                  "adamloss": ["Pendulum-v1__ppo__adamloss__lr0.001__s0"]}  # fmt: skip
    assert sorted(report["reused"]) == ["Pendulum-v1__ppo__adam__lr0.001__s1", "Pendulum-v1__ppo__adamloss__lr0.001__s1"]
    assert report["refused"] == {}
    reused = out / "Pendulum-v1__ppo__adam__lr0.001__s1"
    assert (reused / "eval.csv").read_text() == (older / reused.name / "eval.csv").read_text()
    result = json.loads((reused / "result.json").read_text())
    assert result["reused_from"].endswith(reused.name) and result["verified_by"] == report["verified"]["adam"]
    todo, skipped = pending_runs(load_spec(TINY).runs(out))
    assert todo == [] and skipped == 4  # the full sweep now counts every run as done


def test_too_few_verified_reruns_refuse_reuse(older, reruns, tmp_path):
    out = _eval_folder(reruns, tmp_path, drop=("Pendulum-v1__ppo__adamloss__lr0.001__s0",))
    report = reuse(str(TINY), str(out), str(older), ["adam", "adamloss"], min_verified=1)
    assert report["reused"] == ["Pendulum-v1__ppo__adam__lr0.001__s1"]
    assert set(report["refused"]) == {f"Pendulum-v1__ppo__adamloss__lr0.001__s{s}" for s in (0, 1)}
    assert "only 0 verified" in report["refused"]["Pendulum-v1__ppo__adamloss__lr0.001__s0"]


def test_a_rerun_that_does_not_reproduce_refuses_the_whole_arm(older, reruns, tmp_path):
    out = _eval_folder(reruns, tmp_path)
    source = tmp_path / "older"
    shutil.copytree(older, source)
    curve = source / "Pendulum-v1__ppo__adamloss__lr0.001__s0" / "eval.csv"
    curve.write_text(curve.read_text().replace(",", ",1", 1))  # the older run differs from its rerun
    report = reuse(str(TINY), str(out), str(source), ["adam", "adamloss"], min_verified=1)
    assert report["mismatched"]["adamloss"] == ["Pendulum-v1__ppo__adamloss__lr0.001__s0"]
    assert report["reused"] == ["Pendulum-v1__ppo__adam__lr0.001__s1"]
    assert "did not reproduce" in report["refused"]["Pendulum-v1__ppo__adamloss__lr0.001__s1"]
    assert not (out / "Pendulum-v1__ppo__adamloss__lr0.001__s1").exists()


def test_a_configuration_difference_refuses_the_run(older, reruns, tmp_path):
    out = _eval_folder(reruns, tmp_path)
    source = tmp_path / "older"
    shutil.copytree(older, source)
    config = source / "Pendulum-v1__ppo__adam__lr0.001__s1" / "config.json"
    data = json.loads(config.read_text())
    data["agent"]["hyperparams"]["n_epochs"] = 2
    config.write_text(json.dumps(data))
    report = reuse(str(TINY), str(out), str(source), ["adam", "adamloss"], min_verified=1)
    assert "agent.hyperparams.n_epochs: 2 -> 1" in report["refused"]["Pendulum-v1__ppo__adam__lr0.001__s1"]
    assert report["reused"] == ["Pendulum-v1__ppo__adamloss__lr0.001__s1"]
