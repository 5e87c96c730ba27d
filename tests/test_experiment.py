"""Integration tests of rl_adaloss.experiment on tiny budgets (a 2-seed x 2-cell grid of 256 steps)."""

from __future__ import annotations

import csv
import dataclasses
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
import torch
import yaml

from rl_adaloss.experiment import RunConfig, load_spec, parse_hyperparams, run_dir_name, run_one, spec_from_dict
from rl_adaloss.experiment.cli import main
from rl_adaloss.experiment.sweep import assign_devices, run_sweep

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "experiments" / "grids" / "tiny.yaml"
TINY_HP = ("n_envs=1", "n_steps=64", "batch_size=32", "n_epochs=1", "policy_kwargs={net_arch: [16]}")
NUMBERS = ("final_return_mean", "final_return_std", "auc", "num_timesteps", "status")


def tiny(tmp_path: Path, **kw) -> RunConfig:
    base = dict(n_timesteps=256, eval_freq=128, eval_episodes=2, log_folder=str(tmp_path), hyperparams=TINY_HP)
    return RunConfig(**{**base, **kw})


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "tiny"
    summary = run_sweep(load_spec(TINY), out, workers=2, progress=False)
    return out, summary


def test_parse_hyperparams_yaml_values():
    hp = parse_hyperparams(["batch_size=256", "policy_kwargs={net_arch: [32]}", "gamma=0.9", "lr=1e-3"])
    assert hp == {"batch_size": 256, "policy_kwargs": {"net_arch": [32]}, "gamma": 0.9, "lr": "1e-3"}
    with pytest.raises(ValueError, match="key=value"):
        parse_hyperparams(["batch_size"])


def test_run_dir_name_and_device_assignment(tmp_path):
    config = tiny(tmp_path, env="rl_adaloss/PendulumSwingUp-v0", optimizer="adamloss", lr=0.01, seed=3)
    assert run_dir_name(config) == "rl_adaloss-PendulumSwingUp-v0__ppo__adamloss__lr0.01__s3"
    assert run_dir_name(tiny(tmp_path, lr=None)) == "Pendulum-v1__ppo__adam__lr0.001__s0"  # preset's eta_0
    devices = [c.device for c in assign_devices([config] * 5, "cuda", n_gpus=2)]
    assert devices == ["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0"]
    assert [c.device for c in assign_devices([config] * 2, "cpu")] == ["cpu", "cpu"]
    with pytest.raises(ValueError, match="cuda"):
        assign_devices([config], "cuda", n_gpus=0)


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


def test_tensorboard_events(tiny_sweep):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tiny_sweep[0] / "Pendulum-v1__ppo__adamloss__lr0.001__s0"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "rollout/ep_rew_mean" in tags and "eval/mean_reward" in tags and "train/loss" in tags
    assert "optim/policy/effective_lr" in tags and "optim/policy/accumulator" in tags
    assert "_hparams_/experiment" in acc.PluginTagToContent("hparams")
    adam = EventAccumulator(str(tiny_sweep[0] / "Pendulum-v1__ppo__adam__lr0.001__s0"))
    adam.Reload()  # one tag for every optimizer's step size, so Adam and AdamLoss share a TensorBoard chart
    assert [e.value for e in adam.Scalars("optim/policy/effective_lr")] == pytest.approx([1e-3] * 4)
    assert "optim/policy/accumulator" not in adam.Tags()["scalars"]


def test_results_csv_one_row_per_run(tiny_sweep):
    out, _ = tiny_sweep
    rows = read_csv(out / "results.csv")
    assert len(rows) == 4 and len({r["run_dir"] for r in rows}) == 4
    assert {(r["optimizer"], r["seed"]) for r in rows} == {("adam", "0"), ("adam", "1"), ("adamloss", "0"), ("adamloss", "1")}
    assert {"algo", "env", "lr", "hyperparams", "status", "final_return_mean", "auc", "wall_time_s"} <= set(rows[0])
    summary = run_sweep(load_spec(TINY), out, workers=2, progress=False)  # nothing to do: all skipped, no new rows
    assert (summary["skipped"], summary["ok"]) == (4, 0)
    assert read_csv(out / "results.csv") == rows


def test_determinism_same_seed(tiny_sweep, tmp_path):
    """In-process rerun of a config equals the result the sweep's worker process produced."""
    out, _ = tiny_sweep
    spec_run = next(c for c in load_spec(TINY).runs(out) if c.optimizer == "adamloss" and c.seed == 1)
    again = run_one(dataclasses.replace(spec_run, log_folder=str(tmp_path)))
    before = json.loads((out / run_dir_name(spec_run) / "result.json").read_text())
    assert {k: again[k] for k in NUMBERS} == {k: before[k] for k in NUMBERS}


def test_other_seed_differs(tiny_sweep):
    rows = {(r["optimizer"], r["seed"]): r for r in read_csv(tiny_sweep[0] / "results.csv")}
    assert rows[("adam", "0")]["final_return_mean"] != rows[("adam", "1")]["final_return_mean"]


def test_report_files_and_reproducible_iqm(tiny_sweep):
    from rl_adaloss.experiment.report import _arm_key, make_report

    out, _ = tiny_sweep
    first = make_report(out, reps=200, seed=0, headline_min_lr=1e-3)
    text = (out / "report.md").read_text()
    for name in ("report.md", "curves.png", "sensitivity.png", "iqm.png", "table.csv"):
        assert (out / name).stat().st_size > 0, name
    assert set(first["iqm"]) == {"adam@0.001", "adamloss@0.001"}
    assert make_report(out, reps=200, seed=0)["iqm"] == first["iqm"]
    assert first["poi"][0]["comparison"] == "adamloss > adam" and 0 <= first["poi"][0]["poi"] <= 1
    table = first["table"]
    assert list(table["n_seeds"]) == [2, 2] and list(table["diverged"]) == [0, 0]
    scores = {opt: [float(r["final_return_mean"]) for r in read_csv(out / "results.csv") if r["optimizer"] == opt]
              for opt in ("adam", "adamloss")}  # fmt: skip
    for row in table.to_dict("records"):  # bootstrap intervals stay within the runs' returns
        assert min(scores[row["optimizer"]]) <= row["ci_low"] <= row["mean"] <= row["ci_high"] <= max(scores[row["optimizer"]])
    assert "Probability of improvement" in text and "adamloss@0.001" in text
    assert first["metric"] == "mean" and "## Aggregate mean" in text and "## Aggregate IQM" not in text  # 2 scores/arm
    assert "(over the whole eta_0 grid)" in text and "(over eta_0 >= 0.001)" in text
    assert first["headline_window"] is not None and len(first["headline"]) == 2
    for row in first["headline"]:  # the headline carries its bootstrap interval, around the point estimate
        assert row["relative"] is None or row["low"] <= row["relative"] <= row["high"], row
    assert "percentile-bootstrap interval of `relative`" in text
    assert sorted(["adam@0.1", "adam@1e-05", "adam@0.001"], key=_arm_key) == ["adam@1e-05", "adam@0.001", "adam@0.1"]


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


def test_report_include_merges_sweep_folders(tiny_sweep, tmp_path):
    """A variant grid reported next to the main grid equals the report of one folder holding both."""
    import shutil

    from rl_adaloss.experiment.report import make_report

    out, _ = tiny_sweep
    main, variant = tmp_path / "main", tmp_path / "variant"
    for run_dir in out.iterdir():
        if run_dir.is_dir():
            shutil.copytree(run_dir, (variant if "__adamloss__" in run_dir.name else main) / run_dir.name)
    whole = make_report(out, reps=200, seed=0)
    merged = make_report(main, reps=200, seed=0, include=[variant])
    assert merged["iqm"] == whole["iqm"] and merged["poi"] == whole["poi"]
    assert "Runs included from:" in (main / "report.md").read_text()
    assert not (variant / "report.md").exists()
    assert "finished runs left out" not in (main / "report.md").read_text()
    assert make_report(main, reps=200, seed=0, include=[main, variant])["iqm"] == whole["iqm"]  # no run twice
    n_main = sum(1 for d in main.iterdir() if (d / "result.json").exists())
    text = (main / "report.md").read_text()
    assert f"`{main}` ({n_main} of its finished runs left out: a run of the same name" in text, text[:600]
    assert f"`{variant}`\n" in text  # nothing of the variant's was left out
    with pytest.raises(ValueError, match=r"Invalid sweep folder: .*nowhere"):
        make_report(main, include=[tmp_path / "nowhere"])


def test_normalized_preset_saves_vecnormalize(tmp_path):
    config = tiny(tmp_path, env="rl_adaloss/CartPoleSwingUp-v0", eval_freq=10_000, eval_episodes=1)
    result = run_one(config)
    run_dir = tmp_path / result["run_dir"]
    assert result["status"] == "ok" and result["final_timestep"] == 256  # the end of training is always evaluated
    assert (run_dir / "vecnormalize.pkl").is_file() and (run_dir / "model.zip").is_file()
    assert json.loads((run_dir / "config.json").read_text())["agent"]["normalize"] is True


def test_diverged_and_failed_runs(tmp_path):
    diverged = run_one(tiny(tmp_path, lr=1e6))
    assert diverged["status"] == "diverged" and "invalid values" in diverged["error"]
    failed = run_one(tiny(tmp_path, hyperparams=(*TINY_HP, "target_kl=oops")))  # valid until PPO compares it
    assert failed["status"] == "failed" and "TypeError" in failed["error"]
    for result in (diverged, failed):
        saved = json.loads((tmp_path / result["run_dir"] / "result.json").read_text())
        assert saved["status"] == result["status"] and (tmp_path / result["run_dir"] / "config.json").is_file()


class _AssertingSGD(torch.optim.SGD):
    """SGD that, at its third step, raises an ``AssertionError`` as DoG does on a NaN gradient norm ("got: nan");
    with ``poison`` it first makes a gradient NaN (a diverged run), without it every tensor stays finite (a bug)."""

    def __init__(self, params, lr, poison=True):
        super().__init__(params, lr=lr)
        self.poison, self.n_steps = poison, 0

    def step(self, closure=None):
        self.n_steps += 1
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        if self.n_steps == 3:
            if self.poison:
                grads[0].fill_(float("nan"))
            norm = sum(float(g.norm()) for g in grads)
            raise AssertionError(f"cannot work when G is not strictly positive. got: {norm}")
        return super().step(closure)


@pytest.mark.parametrize("poison, status", [(True, "diverged"), (False, "failed")])
def test_non_finite_gradients_classify_any_error_as_diverged(tmp_path, monkeypatch, poison, status):
    from rl_adaloss.sb3 import OPTIMIZERS, OptimizerSpec

    monkeypatch.setitem(OPTIMIZERS, "asserting-sgd", OptimizerSpec(f"{__name__}:_AssertingSGD", adam_like=False))
    hp = (*TINY_HP, f"policy_kwargs={{net_arch: [16], optimizer_kwargs: {{poison: {str(poison).lower()}}}}}")
    result = run_one(tiny(tmp_path, optimizer="asserting-sgd", lr=1e-3, hyperparams=hp))
    assert result["status"] == status and result["error"].startswith("AssertionError: cannot work")
    if poison:  # what was reached before the divergence is kept
        assert (tmp_path / result["run_dir"] / "eval.csv").is_file() and result["num_timesteps"] > 0


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


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"envs": ["NoSuchEnv-v9"]}, "Invalid env: 'NoSuchEnv-v9' is not a registered Gymnasium id"),
        ({"algos": ["nope"]}, "algos='nope' is not valid .valid: a2c, crossq"),
        ({"optimizers": ["sgdx"]}, "optimizers='sgdx'"),
        ({"lrs": [0.001, -1]}, "lrs=-1.0 must be a finite number > 0"),
        ({"lrs": [0.001, float("inf")]}, "lrs=inf must be a finite number > 0"),
        ({"b0s": [float("inf")]}, "b0s=inf must be a finite number > 0"),
        ({"alphas": [-1]}, "alphas=-1.0 must be a finite number >= 0"),
        ({"cs": [float("nan")]}, "cs=nan must be a finite number"),
        ({"hyperparams": {"n_stpes": 64}}, "Invalid hyperparams key 'n_stpes' for ppo .did you mean 'n_steps'"),
        ({"hyperparams": {"batch_size": "oops"}}, "batch_size='oops' for ppo: expected an integer"),
        ({"lrs": ["fast"]}, "lrs='fast' is not a number"),
        ({"seeds": [0, 1.5]}, "seeds=1.5"),
        ({"n_timesteps": 0}, "n_timesteps=0"),
        ({"eval_freq": "often"}, "eval_freq='often'"),
        ({"hyperparams": [1, 2]}, "hyperparams=.*not a mapping"),
        ({"lr_free": ["adam"]}, "lr_free='adam' is not learning-rate-free"),
        ({"colour": "red"}, "unknown key.*colour"),
        ({"seeds": None}, "'seeds' is missing"),
    ],
)
def test_spec_validation(change, message):
    raw = yaml.safe_load(TINY.read_text())
    raw.update(change)
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(ValueError, match=message):
        spec_from_dict(raw)


def test_cli_sweep_rejects_bad_spec_before_running(tmp_path, capsys):
    raw = yaml.safe_load(TINY.read_text())
    raw["lrs"] = [1e-3, 0]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    assert main(["sweep", str(bad), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert "lrs=0.0 must be a finite number > 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_train(tmp_path, capsys):
    args = ["train", "--optimizer", "adamloss", "--lr", "0.003", "-n", "128", "--eval-freq", "64", "--eval-episodes", "1"]
    args += ["--log-folder", str(tmp_path), "--hyperparams", *TINY_HP]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "ok" and result["run_dir"] == "Pendulum-v1__ppo__adamloss__lr0.003__s0"
    config = json.loads((tmp_path / result["run_dir"] / "config.json").read_text())
    assert config["agent"]["hyperparams"]["policy_kwargs"] == {"net_arch": [16]} and config["n_timesteps"] == 128


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


def test_a_run_another_process_is_running_is_left_to_it(tmp_path, capsys):
    """Two sweeps on one folder: a run whose lock is held is neither cleared nor rerun, and is reported as busy."""
    from rl_adaloss.experiment.run import RunBusyError, hold_run_lock, run_is_busy
    from rl_adaloss.experiment.sweep import _run_or_busy

    out = tmp_path / "out"
    spec = load_spec(TINY)
    busy = spec.runs(out)[0]
    run_dir = out / run_dir_name(busy)
    run_dir.mkdir(parents=True)
    (run_dir / "progress.csv").write_text("in flight\n")  # a run just started (no config.json yet): a sweep would
    # clear its files and restart it, were it not locked
    with hold_run_lock(run_dir):
        assert run_is_busy(run_dir)
        with pytest.raises(RunBusyError, match=rf"{run_dir.name} is being run now by another process \(pid {os.getpid()}"):
            run_one(busy)
        summary = run_sweep(spec, out, workers=2, progress=False)
        assert (summary["busy"], summary["ok"], summary["skipped"]) == (1, 3, 0)
        assert (run_dir / "progress.csv").read_text() == "in flight\n" and not (run_dir / "result.json").exists()
        assert len(read_csv(out / "results.csv")) == 3
        assert main(["sweep", str(TINY), "--out", str(out), "--workers", "1", "--no-progress"]) == 0  # not a failure
        printed = capsys.readouterr().out
        assert f"{run_dir.name}: busy" in printed and "1 run(s) were being run by another process" in printed
        train = ["train", "--optimizer", busy.optimizer, "--lr", str(busy.lr), "--seed", str(busy.seed), "-n", "256"]
        train += ["--eval-freq", "128", "--eval-episodes", "2", "--log-folder", str(out), "--no-progress"]
        assert main([*train, "--hyperparams", *busy.hyperparams]) == 2
        assert f"is being run now by another process (pid {os.getpid()}" in capsys.readouterr().err
    assert not run_is_busy(run_dir)  # released with the block (and by the kernel when a holder dies)
    summary = run_sweep(spec, out, workers=1, progress=False)
    assert (summary["busy"], summary["ok"], summary["skipped"]) == (0, 1, 3)
    assert json.loads((run_dir / "result.json").read_text())["status"] == "ok"
    late = _run_or_busy(busy)  # a sweep that listed the run before another sweep finished it: left alone too
    assert late["status"] == "busy" and "already holds a finished run of this configuration" in late["error"]
    assert sorted(p.name for p in out.glob(".*.lock")) == sorted(f".{run_dir_name(c)}.lock" for c in spec.runs(out))
