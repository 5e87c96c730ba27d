"""Ray without shared storage: runs train in node-local scratch and their files reach the driver's --out."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from rl_adaloss.experiment import RunConfig, run_dir_name
from rl_adaloss.experiment.shipping import SCRATCH_ENV, receive_run, run_in_scratch, scratch_key

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "experiments" / "grids" / "tiny.yaml"
TINY_HP = ("n_envs=1", "n_steps=64", "batch_size=32", "n_epochs=1", "policy_kwargs={net_arch: [16]}")


def test_run_in_scratch_never_touches_the_drivers_folder(tmp_path, monkeypatch):
    """The task's side alone (no Ray): --out is a path that cannot exist on the worker (under a file), yet the run
    trains in scratch, ships every file but its checkpoint, leaves nothing in scratch, and the driver gets the files."""
    monkeypatch.setenv(SCRATCH_ENV, str(tmp_path / "scratch"))
    (tmp_path / "not-a-dir").write_text("a file: nothing can be created under it")
    out = tmp_path / "not-a-dir" / "runs"
    config = RunConfig(n_timesteps=256, eval_freq=128, eval_episodes=2, log_folder=str(out), hyperparams=TINY_HP,
                       checkpoint_freq=128)  # fmt: skip
    shipped = run_in_scratch(config, scratch_key(out))
    assert shipped["result"]["status"] == "ok" and shipped["result"]["checkpoints"]["written"] >= 1
    names = set(shipped["files"])
    assert {"config.json", "result.json", "eval.csv", "evaluations.npz", "model.zip", "progress.csv"} <= names
    assert any(n.startswith("events.out.tfevents.") for n in names) and "checkpoint.pkl" not in names
    assert not [p for p in (tmp_path / "scratch").rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    driver = tmp_path / "driver" / run_dir_name(config)
    result = receive_run(driver, shipped)
    assert result["status"] == "ok" and json.loads((driver / "result.json").read_text())["auc"] == result["auc"]
    assert sorted(p.name for p in driver.iterdir()) == sorted(names)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def head_elsewhere(tmp_path):
    """A real Ray head node (``ray start --head --block``) started in its own folder, with token authentication and
    scratch under ``tmp_path``; stopped by terminating the process this fixture started (no ``ray stop``)."""
    pytest.importorskip("ray")
    ray_cli = Path(sys.executable).with_name("ray")
    if not ray_cli.exists():
        pytest.skip("the ray CLI is not installed")
    head_dir, temp_dir = tmp_path / "head", Path(tempfile.mkdtemp(prefix="rr", dir="/tmp"))  # Ray's socket paths are short
    head_dir.mkdir()
    (head_dir / "runs").write_text("a file: the driver's relative --out runs/r cannot be made in the head's folder")
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           SCRATCH_ENV: str(tmp_path / "scratch")}  # fmt: skip
    cmd = [str(ray_cli), "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
           f"--temp-dir={temp_dir}", "--block"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=head_dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, "ray start exited"
                time.sleep(0.5)
        yield f"127.0.0.1:{port}", env, head_dir
    finally:
        proc.terminate()
        proc.wait(timeout=120)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.slow  # a real Ray cluster: about 90 s on 2 busy cores; CI runs it with -m slow
def test_sweep_on_a_cluster_whose_workers_cannot_write_out(head_elsewhere, tmp_path):
    """The issue's case: the head runs in another folder, the driver passes a relative --out that does not exist (and
    cannot be made) there. Every run's files land in the driver's --out; report reads them; a rerun skips them all;
    a client without the cluster's token gets one line, not a traceback."""
    address, env, head_dir = head_elsewhere
    driver = tmp_path / "driver"
    driver.mkdir()

    def sweep(client_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "rl_adaloss.experiment.cli", "sweep", str(TINY), "--out", "runs/r", "--backend", "ray",
               "--address", address, "--workers", "2", "--no-progress"]  # fmt: skip
        return subprocess.run(cmd, cwd=driver, env=client_env, capture_output=True, text=True, timeout=600)

    no_token = {k: v for k, v in env.items() if k != "RAY_AUTH_TOKEN"} | {"HOME": str(tmp_path)}
    proc = sweep(no_token)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("rl-adaloss sweep: error: Invalid address")
    assert "AuthenticationError" in proc.stderr

    proc = sweep(env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "4 runs (0 already done): ok 4, diverged 0, failed 0" in proc.stdout
    out = driver / "runs" / "r"
    run_dirs = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(run_dirs) == 4
    for run_dir in run_dirs:
        assert json.loads((run_dir / "result.json").read_text())["status"] == "ok"
        assert (run_dir / "eval.csv").read_text().startswith("timesteps,mean,std\n") and (run_dir / "model.zip").exists()
        assert list(run_dir.glob("events.out.tfevents.*"))
    assert (head_dir / "runs").is_file()  # nothing was written in the head's folder
    assert not [p for p in (tmp_path / "scratch").rglob("*") if p.is_file() and not p.name.endswith(".lock")]

    from rl_adaloss.experiment.cli import main

    assert main(["report", str(out), "--reps", "50"]) == 0
    assert (out / "report.md").exists()
    proc = sweep(env)
    assert proc.returncode == 0 and "4 runs (4 already done): ok 0" in proc.stdout, proc.stdout + proc.stderr
