"""Checkpoints: a run killed with SIGKILL resumes bit-identically; a kill during a write never leaves a bad checkpoint."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from rl_adaloss.experiment import RunConfig, run_dir_name, run_one
from rl_adaloss.experiment.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
NET = "policy_kwargs={net_arch: [16]}"
CASES = {
    # PPO with gSDE (the Pendulum preset) and AdamLoss: policy, loss-driven accumulators, noise matrices, RNGs.
    "ppo": dict(algo="ppo", env="Pendulum-v1", optimizer="adamloss", lr=1e-3, n_timesteps=1536, eval_freq=256,
                checkpoint_freq=384, eval_episodes=2,
                hyperparams=("n_envs=2", "n_steps=64", "batch_size=32", "n_epochs=2", NET)),
    # SAC: replay buffer, three optimizers (entropy coefficient), action-space sampling before learning_starts.
    "sac": dict(algo="sac", env="Pendulum-v1", optimizer="adamloss", lr=1e-3, n_timesteps=600, eval_freq=100,
                checkpoint_freq=200, eval_episodes=2, hyperparams=("learning_starts=100", "batch_size=32", NET)),
    # MuJoCo physics state and VecNormalize statistics (the preset normalises).
    "ppo-mujoco": dict(algo="ppo", env="rl_adaloss/CartPoleSwingUp-v0", optimizer="adam", lr=3e-4, n_timesteps=3072,
                       eval_freq=1024, checkpoint_freq=1024, eval_episodes=1,
                       hyperparams=("n_envs=2", "n_steps=256", "batch_size=64", "n_epochs=1", NET)),
    # Bullet: its physics state cannot be saved; the resumed run restarts its episodes (documented, not identical).
    "ppo-bullet": dict(algo="ppo", env="InvertedPendulumSwingupBulletEnv-v0", optimizer="adam", lr=3e-4,
                       n_timesteps=1024, eval_freq=512, checkpoint_freq=256, eval_episodes=1,
                       hyperparams=("n_envs=2", "n_steps=64", "batch_size=64", "n_epochs=1", NET)),
}  # fmt: skip


def _params(run_dir: Path) -> dict[str, torch.Tensor]:
    with zipfile.ZipFile(run_dir / "model.zip") as zf:
        with zf.open("policy.pth") as fh:
            return torch.load(fh, map_location="cpu", weights_only=True)


def _run_in_subprocess(config: RunConfig) -> subprocess.Popen[bytes]:
    code = (
        "import json, sys; from rl_adaloss.experiment import RunConfig, run_one; "
        "run_one(RunConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(sys.argv[1]).items()}))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    args = json.dumps({k: getattr(config, k) for k in config.__dataclass_fields__})
    return subprocess.Popen([sys.executable, "-c", code, args], env=env, stderr=subprocess.PIPE)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param("ppo"),
        pytest.param("sac"),
        pytest.param("ppo-mujoco", marks=pytest.mark.slow),
        pytest.param("ppo-bullet", marks=pytest.mark.slow),
    ],
)
def test_sigkill_then_rerun_resumes_bit_identically(case, tmp_path):
    """Kill a run with SIGKILL once it has a checkpoint, rerun it: eval curve and final parameters equal a run never
    interrupted (and a run without checkpoints: writing them changes nothing)."""
    pytest.importorskip({"ppo-mujoco": "mujoco", "ppo-bullet": "pybullet"}.get(case, "torch"))
    config = RunConfig(**CASES[case], log_folder=str(tmp_path / "killed"))
    reference = run_one(RunConfig(**{**CASES[case], "checkpoint_freq": 0}, log_folder=str(tmp_path / "whole")))
    assert reference["status"] == "ok" and reference["resumed_from"] == []
    run_dir = Path(config.log_folder) / run_dir_name(config)
    proc = _run_in_subprocess(config)
    deadline = time.monotonic() + 300
    while not (run_dir / CHECKPOINT_NAME).exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    assert not (run_dir / "result.json").exists() and (run_dir / CHECKPOINT_NAME).exists()
    saved_at = pickle.loads((run_dir / CHECKPOINT_NAME).read_bytes())["num_timesteps"]
    assert 0 < saved_at < config.n_timesteps

    result = run_one(config)
    assert result["status"] == "ok" and result["resumed_from"] == [saved_at], result
    if case == "ppo-bullet":  # resumed, to the end, but from a seeded reset of the envs: said in resume_note
        assert "training envs: env state of" in result["resume_note"] and result["num_timesteps"] == reference["num_timesteps"]
        return
    assert result["resume_note"] is None
    assert not (run_dir / CHECKPOINT_NAME).exists()  # removed once the run finished
    whole = tmp_path / "whole" / run_dir_name(config)
    assert (run_dir / "eval.csv").read_text() == (whole / "eval.csv").read_text()
    for key in ("final_return_mean", "auc", "num_timesteps"):
        assert result[key] == reference[key]
    a, b = _params(run_dir), _params(whole)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert list(run_dir.glob("progress.before-resume-*.csv"))  # the killed part's log is kept beside the new one


_WRITER = """
import sys, numpy as np
from pathlib import Path
from rl_adaloss.experiment.checkpoint import save_checkpoint
for i in range(10**6):
    save_checkpoint(Path(sys.argv[1]), {"format": 1, "config_hash": "h", "i": i, "data": np.full(2_000_000, i, float)})
"""


def test_kill_during_a_checkpoint_write_leaves_the_last_complete_one(tmp_path):
    """SIGKILL a process that writes 16 MB checkpoints in a loop, the moment its temporary file appears (so during a
    write): the checkpoint left always loads whole (every value equal to its own counter), the half-written temporary
    file is never read; and once more at a random moment."""
    path = tmp_path / CHECKPOINT_NAME
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    mid_write = 0
    for trial in range(3):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], env=env)
        tmp = tmp_path / f".{CHECKPOINT_NAME}.tmp{proc.pid}"
        deadline = time.monotonic() + 120
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.001)
        while trial < 2 and not tmp.exists() and time.monotonic() < deadline:
            time.sleep(0.0005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        mid_write += tmp.exists()
        state, why = load_checkpoint(path, "h")
        assert why is None and state is not None
        assert state["data"].shape == (2_000_000,) and bool((state["data"] == state["i"]).all())
        tmp.unlink(missing_ok=True)
    assert mid_write >= 1  # the kill did land during a write


def test_a_damaged_or_foreign_checkpoint_is_ignored(tmp_path):
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, {"format": 1, "config_hash": "h", "x": np.arange(3)})
    assert load_checkpoint(path, "other")[0] is None and "another configuration" in str(load_checkpoint(path, "other")[1])
    path.write_bytes(path.read_bytes()[:-10])
    state, why = load_checkpoint(path, "h")
    assert state is None and why is not None and why.startswith("unreadable checkpoint ignored")
    assert load_checkpoint(tmp_path / "none.pkl", "h") == (None, None)


def test_a_run_with_an_unreadable_checkpoint_starts_over_and_says_so(tmp_path):
    config = RunConfig(**{**CASES["ppo"], "n_timesteps": 256, "checkpoint_freq": 128}, log_folder=str(tmp_path))
    run_dir = tmp_path / run_dir_name(config)
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{}")  # an unfinished run of ours
    (run_dir / CHECKPOINT_NAME).write_bytes(b"not a pickle")
    result = run_one(config)
    assert result["status"] == "ok" and result["resumed_from"] == [] and result["num_timesteps"] == 256
    assert result["resume_note"].startswith("unreadable checkpoint ignored")
    assert result["checkpoints"]["written"] >= 1 and not (run_dir / CHECKPOINT_NAME).exists()


def test_invalid_checkpoint_freq_is_refused():
    from rl_adaloss.experiment.identity import validate_run

    with pytest.raises(ValueError, match="Invalid checkpoint_freq: -1"):
        validate_run(RunConfig(checkpoint_freq=-1, n_timesteps=64))


@pytest.mark.slow  # about 45 s on 2 busy cores (a killed run, then two sweeps); CI runs it with -m slow
def test_a_rerun_sweep_resumes_its_killed_run_from_the_checkpoint(tmp_path):
    """The sweep's path: a run killed mid-way (its folder has config.json and a checkpoint, no result) is continued by
    the next sweep from the checkpoint, not redone from step 0; a second rerun skips it."""
    import dataclasses

    from rl_adaloss.experiment import spec_from_dict
    from rl_adaloss.experiment.sweep import run_sweep

    hyperparams = {"n_envs": 2, "n_steps": 64, "batch_size": 32, "n_epochs": 2, "policy_kwargs": {"net_arch": [16]}}
    spec = spec_from_dict(dict(envs=["Pendulum-v1"], algos=["ppo"], optimizers=["adamloss"], lrs=[1e-3], seeds=[0],
                               n_timesteps=1536, eval_freq=256, eval_episodes=5, hyperparams=hyperparams))  # fmt: skip
    (config,) = spec.runs(tmp_path)
    run_dir = tmp_path / run_dir_name(config)
    proc = _run_in_subprocess(dataclasses.replace(config, checkpoint_freq=384))
    deadline = time.monotonic() + 300
    while not (run_dir / CHECKPOINT_NAME).exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved_at = pickle.loads((run_dir / CHECKPOINT_NAME).read_bytes())["num_timesteps"]
    summary = run_sweep(spec, tmp_path, workers=1, progress=False)
    assert (summary["ok"], summary["skipped"]) == (1, 0)
    result = json.loads((run_dir / "result.json").read_text())
    assert result["resumed_from"] == [saved_at] and result["num_timesteps"] == 1536
    assert not (run_dir / CHECKPOINT_NAME).exists()
    assert run_sweep(spec, tmp_path, workers=1, progress=False)["skipped"] == 1
