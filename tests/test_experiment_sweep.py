"""rl_adaloss.experiment.sweep: grids of runs on local cores or Ray, resumed, with dying workers and failed runs."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from rl_adaloss.experiment import RunConfig, load_spec, run_dir_name, spec_from_dict
from rl_adaloss.experiment.cli import main
from rl_adaloss.experiment.sweep import assign_devices, run_sweep

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "experiments" / "grids" / "tiny.yaml"
NUMBERS = ("final_return_mean", "final_return_std", "auc", "num_timesteps", "status")


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def rows(out: Path) -> list[dict[str, str]]:
    with (out / "results.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_sweep_run_folders(tiny_sweep):
    out, summary = tiny_sweep
    assert (summary["total"], summary["ok"], summary["skipped"]) == (4, 4, 0)
    run_dir = out / "Pendulum-v1__ppo__adamloss__lr0.001__s1"
    for name in ("config.json", "result.json", "eval.csv", "evaluations.npz", "model.zip", "progress.csv"):
        assert (run_dir / name).is_file(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["optimizer"] == "adamloss" and config["seed"] == 1 and config["agent"]["hyperparams"]["batch_size"] == 32
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "ok" and result["error"] is None and result["num_timesteps"] == 256
    for key in ("final_return_mean", "final_return_std", "auc", "wall_time_s"):
        assert isinstance(result[key], float), key
    lines = (run_dir / "eval.csv").read_text().splitlines()
    assert lines[0] == "timesteps,mean,std" and [int(r.split(",")[0]) for r in lines[1:]] == [128, 256]
    assert result["final_return_mean"] == float(lines[-1].split(",")[1])


def test_results_csv_one_row_per_run(tiny_sweep):
    out, _ = tiny_sweep
    rows = read_csv(out / "results.csv")
    assert len(rows) == 4 and len({r["run_dir"] for r in rows}) == 4
    assert {(r["optimizer"], r["seed"]) for r in rows} == {("adam", "0"), ("adam", "1"), ("adamloss", "0"), ("adamloss", "1")}
    assert {"algo", "env", "lr", "hyperparams", "status", "final_return_mean", "auc", "wall_time_s"} <= set(rows[0])
    summary = run_sweep(load_spec(TINY), out, workers=2, progress=False)  # nothing to do: all skipped, no new rows
    assert (summary["skipped"], summary["ok"]) == (4, 0)
    assert read_csv(out / "results.csv") == rows


def test_device_assignment(tmp_path):
    config = RunConfig(env="rl_adaloss/PendulumSwingUp-v0", optimizer="adamloss", lr=0.01, seed=3, log_folder=str(tmp_path))
    devices = [c.device for c in assign_devices([config] * 5, "cuda", n_gpus=2)]
    assert devices == ["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0"]
    assert [c.device for c in assign_devices([config] * 2, "cpu")] == ["cpu", "cpu"]
    with pytest.raises(ValueError, match="cuda"):
        assign_devices([config], "cuda", n_gpus=0)


def test_alpha_and_c_are_sweep_axes(tmp_path, grid):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    spec = spec_from_dict(grid(optimizers=["adam", "adamloss"], alphas=[0.5, 2.0], cs=[0.0]))
    assert len(spec.runs(tmp_path)) == 3  # adam once (it takes no alpha), adamloss x 2 alphas x 1 c
    summary = run_sweep(spec, tmp_path, workers=2, progress=False)
    assert summary["ok"] == 3
    by_alpha = {}
    for row in rows(tmp_path):
        config = json.loads((tmp_path / row["run_dir"] / "config.json").read_text())
        if row["optimizer"] == "adamloss":
            assert row["run_dir"].endswith(f"__a{float(row['alpha']):g}__c0__s0")
            assert config["agent"]["optimizer_kwargs"] == {"eps": 1e-5, "alpha": float(row["alpha"]), "c": 0.0}
            acc = EventAccumulator(str(tmp_path / row["run_dir"]))
            acc.Reload()
            by_alpha[float(row["alpha"])] = acc.Scalars("optim/policy/accumulator")[-1].value
    assert by_alpha[2.0] - 1e6 == pytest.approx(4 * (by_alpha[0.5] - 1e6), rel=0.3)  # b0 = 1/lr^2 = 1e6, + alpha sum|f|


def test_sweep_records_diverged_and_goes_on(tmp_path):
    raw = yaml.safe_load(TINY.read_text())
    raw.update(optimizers=["adam"], lrs=[1e-3, 1e6], seeds=[0])
    summary = run_sweep(spec_from_dict(raw), tmp_path, workers=1, progress=False)
    assert (summary["ok"], summary["diverged"], summary["failed"]) == (1, 1, 0)
    statuses = sorted(r["status"] for r in read_csv(tmp_path / "results.csv"))
    assert statuses == ["diverged", "ok"]
    from rl_adaloss.experiment.report import make_report

    report = make_report(tmp_path, reps=100)  # the panel of eta_0 = 1e6 says that every run diverged
    assert report["all_diverged_panels"] == ["Pendulum-v1 ppo  eta_0=1e+06"]
    assert "Panels where every run diverged: Pendulum-v1 ppo  eta_0=1e+06" in (tmp_path / "report.md").read_text()


def test_retry_failed_keeps_files_beside_the_run_and_checks_every_folder_before_deleting(tmp_path, grid):
    """A failed run with an analysis file beside it is retried beside that file; a folder of someone else's files is
    refused before any run starts, and nothing is deleted."""
    from rl_adaloss.experiment.run import record_failure

    spec = spec_from_dict(grid(optimizers=["adam", "adamloss"]))
    failed_cfg, other_cfg = spec.runs(tmp_path)
    record_failure(failed_cfg, "AssertionError: boom")
    failed_dir, other_dir = (tmp_path / run_dir_name(c) for c in (failed_cfg, other_cfg))
    (failed_dir / "optim.csv").write_text("step,lr\n")
    other_dir.mkdir()
    (other_dir / "notes.txt").write_text("mine")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match=r"1 run folder.s. to write hold files no run wrote: .*adamloss.*notes\.txt"):
        run_sweep(spec, tmp_path, workers=1, progress=False, retry_failed=True)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    (other_dir / "notes.txt").unlink()
    other_dir.rmdir()
    summary = run_sweep(spec, tmp_path, workers=1, progress=False, retry_failed=True)
    assert (summary["skipped"], summary["ok"], summary["failed"]) == (0, 2, 0)
    assert (failed_dir / "optim.csv").read_text() == "step,lr\n"
    assert json.loads((failed_dir / "result.json").read_text())["status"] == "ok"


def _spawn_workers() -> list[int]:
    """PIDs of this process's live multiprocessing spawn workers (read from /proc; no psutil needed)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"spawn_main" in cmdline:
            pids.append(int(entry.name))
    return pids


@pytest.mark.slow  # about 45 s of real processes being killed; CI runs it with -m slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_worker_death_reruns_suspects_alone_and_records_the_culprit(tmp_path):
    """SIGKILL the workers (as the OOM killer would): the sweep goes on, a bystander finishes, the culprit is failed."""
    import threading

    from rl_adaloss.experiment.sweep import WORKER_DIED

    raw = yaml.safe_load(TINY.read_text())
    raw.update(optimizers=["adam"], seeds=[0, 1, 2])
    spec = spec_from_dict(raw)
    culprit = tmp_path / run_dir_name(next(c for c in spec.runs(tmp_path) if c.seed == 0))
    rounds: list[tuple[int, int]] = []  # the culprit folder (inode, ctime) each round of killing saw

    def killer() -> None:  # kill the workers while seed 0 runs: first in the pool, then again when it reruns alone
        deadline = time.monotonic() + 120
        while len(rounds) < 2 and time.monotonic() < deadline:
            try:
                stat = culprit.stat()
                unfinished = not (culprit / "result.json").exists()
            except OSError:
                unfinished = False
            if unfinished and (stat.st_ino, stat.st_ctime_ns) not in rounds:  # a new attempt at seed 0 is running
                victims = _spawn_workers()
                for pid in victims:
                    os.kill(pid, signal.SIGKILL)
                if victims:
                    rounds.append((stat.st_ino, stat.st_ctime_ns))
            time.sleep(0.01)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    summary = run_sweep(spec, tmp_path, workers=2, progress=False)
    thread.join(timeout=5)
    statuses = {r["seed"]: (r["status"], r["error"]) for r in read_csv(tmp_path / "results.csv")}
    # The killer watches seed 0's folder, but under load its second round can land while a fellow suspect (seed 1)
    # reruns alone; the sweep then rightly blames that run. Either way exactly one run is the culprit, recorded as a
    # worker death, and every other run finishes.
    failed = [seed for seed, (status, _) in statuses.items() if status == "failed"]
    assert len(failed) == 1 and failed[0] in ("0", "1"), statuses
    assert statuses[failed[0]] == ("failed", WORKER_DIED)
    assert all(statuses[s] == ("ok", "") for s in statuses if s != failed[0]) and len(statuses) == 3
    assert (summary["ok"], summary["failed"]) == (2, 1) and len(rounds) == 2


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


@pytest.mark.slow  # about 45 s: a real sweep killed with SIGKILL, then resumed; CI runs it with -m slow
def test_resume_after_kill_9(tmp_path):
    raw = yaml.safe_load(TINY.read_text())
    raw.update(optimizers=["adam"], lrs=[1e-3, 3e-3, 1e-2], seeds=[0, 1])  # 6 runs
    spec_path = tmp_path / "grid.yaml"
    spec_path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "rl_adaloss.experiment.cli", "sweep", str(spec_path), "--out", str(out), "--workers", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([*cmd, "--no-progress"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 90
    while time.time() < deadline and len(list(out.glob("*/result.json"))) < 2:
        time.sleep(0.2)
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)  # kill -9 of the sweep process only: its workers must die with it
    proc.wait()
    time.sleep(1.0)
    assert not [w for w in workers if Path(f"/proc/{w}").exists() and "Z" not in Path(f"/proc/{w}/stat").read_text()]
    done_before = {p.parent.name for p in out.glob("*/result.json")}
    assert 2 <= len(done_before) < 6, "kill must land mid-sweep"
    summary = run_sweep(load_spec(spec_path), out, workers=2, progress=False)
    assert summary["skipped"] == len(done_before) and summary["ok"] == 6 - len(done_before)
    rows = read_csv(out / "results.csv")
    assert sorted(r["run_dir"] for r in rows) == sorted({r["run_dir"] for r in rows}) and len(rows) == 6
    assert all(r["status"] == "ok" for r in rows)
    assert not list(out.glob("*/.*.tmp*"))


def _free_port() -> int:
    """A local TCP port nothing listens on (bound and released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _processes_titled(prefix: str) -> list[int]:
    """PIDs whose command line (a Ray worker sets it to ``ray::<task name>``) starts with ``prefix``."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(prefix.encode()):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.fixture
def ray_cluster():
    """A real Ray cluster started with ``ray start --head`` (token authentication on, as Ray >= 2.59 does).

    Yields its address and the environment a client needs (the token; ``PYTHONPATH`` for ``agents``). Ray reads its
    authentication settings once per process, so clients of this cluster run as subprocesses, as users run them.
    """
    pytest.importorskip("ray")
    import secrets

    ray_cli = Path(sys.executable).with_name("ray")
    if not ray_cli.exists():
        pytest.skip("the ray CLI is not installed")
    port = _free_port()
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "PYTHONPATH": pythonpath,
           "RAY_USAGE_STATS_ENABLED": "0"}  # fmt: skip
    # --block and a temp dir of its own: stopping this head (SIGTERM to the process started here) stops only its own
    # processes, never another Ray cluster on the machine as `ray stop` would.
    temp_dir = tempfile.mkdtemp(prefix="rr", dir="/tmp")  # Ray's socket paths must stay short
    start = [str(ray_cli), "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
             f"--temp-dir={temp_dir}", "--block"]  # fmt: skip
    proc = subprocess.Popen(start, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "ray start did not come up"
                time.sleep(0.5)
        yield f"127.0.0.1:{port}", env
    finally:
        proc.terminate()
        proc.wait(timeout=120)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.slow  # the optional Ray backend: about 2 min; CI runs it with -m slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_ray_cluster_address_worker_death_and_retry_failed(tiny_sweep, ray_cluster, tmp_path):
    """On an existing cluster (``--address``) a run whose worker keeps dying is failed, the rest of the sweep finishes
    with the local backend's numbers, and ``--retry-failed`` later completes the failed run."""
    import threading

    from rl_adaloss.experiment.sweep import RAY_MAX_RETRIES

    out_local, _ = tiny_sweep
    address, env = ray_cluster
    culprit = run_dir_name(load_spec(TINY).runs(tmp_path)[0])
    killed: list[int] = []

    def killer() -> None:  # kill the culprit's worker on each of its 1 + RAY_MAX_RETRIES attempts
        deadline = time.monotonic() + 300
        while len(killed) < 1 + RAY_MAX_RETRIES and time.monotonic() < deadline:
            for pid in _processes_titled(f"ray::{culprit}"):
                if pid not in killed:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.01)

    def sweep(*extra: str, code: int = 0) -> str:
        cmd = [sys.executable, "-m", "rl_adaloss.experiment.cli", "sweep", str(TINY), "--out", str(tmp_path),
               "--backend", "ray", "--address", address, "--workers", "2", "--no-progress", *extra]  # fmt: skip
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == code, proc.stdout[-3000:] + proc.stderr[-3000:]
        if code == 1:  # a failed run: listed on stderr, and the sweep exits 1 after finishing the others
            assert "1 failed run(s)" in proc.stderr and culprit in proc.stderr
        return proc.stdout  # the summary line, and Ray's own messages about dead workers in any order

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    assert "4 runs (0 already done): ok 3, diverged 0, failed 1;" in sweep(code=1)
    thread.join(timeout=5)
    assert len(killed) == 1 + RAY_MAX_RETRIES
    rows = {r["run_dir"]: r for r in read_csv(tmp_path / "results.csv")}
    assert [name for name, row in rows.items() if row["status"] != "ok"] == [culprit]
    assert rows[culprit]["status"] == "failed"
    assert rows[culprit]["error"].startswith("Ray could not run this run: WorkerCrashedError")
    assert rows[culprit]["error"].endswith("rerun the sweep with --retry-failed to try again")

    assert "(4 already done): ok 0, diverged 0, failed 0" in sweep(code=1)  # the kept failed run still counts
    assert "(3 already done): ok 1, diverged 0, failed 0" in sweep("--retry-failed")
    local = {r["run_dir"]: r for r in read_csv(out_local / "results.csv")}
    remote = {r["run_dir"]: r for r in read_csv(tmp_path / "results.csv")}
    assert local.keys() == remote.keys()
    for name, row in remote.items():
        assert {k: row[k] for k in NUMBERS} == {k: local[name][k] for k in NUMBERS}, name


def test_sweep_cli_rejects_a_dead_ray_address_fast(tmp_path, capsys):
    """A typo in --address must not hang in ray.init's reconnect loop: a clear error names the address."""
    pytest.importorskip("ray")
    for address, expected in ((f"127.0.0.1:{_free_port()}", "no Ray cluster answers"), ("head-node", "expected host:port")):
        start = time.monotonic()
        code = main(["sweep", str(TINY), "--out", str(tmp_path / "out"), "--backend", "ray", "--address", address])
        assert code == 2 and time.monotonic() - start < 60
        err = capsys.readouterr().err
        assert f"Invalid address: {address!r}" in err or f"at {address!r}" in err
        assert expected in err


@pytest.mark.slow  # the optional Ray backend; CI runs it with -m slow
def test_ray_backend_equals_local(tiny_sweep, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    out_local, _ = tiny_sweep
    # Ray's workers inherit the driver's environment (a runtime_env would cost minutes of setup here).
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        summary = run_sweep(load_spec(TINY), tmp_path, backend="ray", workers=2, progress=False)
    finally:
        ray.shutdown()
    assert summary["ok"] == 4
    local = {r["run_dir"]: r for r in read_csv(out_local / "results.csv")}
    remote = {r["run_dir"]: r for r in read_csv(tmp_path / "results.csv")}
    assert local.keys() == remote.keys()
    for name, row in remote.items():
        assert {k: row[k] for k in NUMBERS} == {k: local[name][k] for k in NUMBERS}, name
