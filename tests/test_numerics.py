"""CPU numerics: a seeded run does not depend on the processor's instruction set when the runner pins it."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from rl_adaloss.experiment import RunConfig
from rl_adaloss.experiment.identity import resolve_run
from rl_adaloss.experiment.numerics import MODE_VARIABLE, PORTABLE_ENV, cpu_numerics_mode

ROOT = Path(__file__).resolve().parents[1]
RUN = ["train", "--algo", "ppo", "--env", "Pendulum-v1", "--optimizer", "adam", "--lr", "1e-2", "-n", "256", "--eval-freq",
       "256", "--eval-episodes", "1", "--no-progress", "--hyperparams", "n_envs=1", "n_steps=128", "batch_size=64",
       "n_epochs=2"]  # fmt: skip
# Two machines as the processor's dispatch sees them: torch without vector kernels and MKL on its AVX2 path (an
# AVX2-only Intel machine's MKL), versus this machine's own choice for both.
MACHINES = ({"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "AVX2"}, {})


def _train(log: Path, parent_env: dict[str, str], mode: str) -> tuple[str, dict]:
    """Run ``rl-adaloss train`` in a fresh process; return (hash of the trained policy's parameters, its numerics)."""
    env = {k: v for k, v in os.environ.items() if k not in (*PORTABLE_ENV, MODE_VARIABLE)}
    env.update(parent_env, PYTHONPATH=str(ROOT), **{MODE_VARIABLE: mode})
    done = subprocess.run([sys.executable, "-m", "rl_adaloss.experiment.cli", *RUN, "--log-folder", str(log)],
                          capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = [p for p in log.iterdir() if p.is_dir()]
    with zipfile.ZipFile(run_dir / "model.zip") as archive:
        state = torch.load(io.BytesIO(archive.read("policy.pth")), map_location="cpu")
    digest = hashlib.sha256(b"".join(k.encode() + v.numpy().tobytes() for k, v in sorted(state.items())))
    return digest.hexdigest(), json.loads((run_dir / "config.json").read_text())["numerics"]


@pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() == "DEFAULT", reason="needs an x86 processor with AVX2")
def test_a_pinned_run_is_unchanged_by_the_machines_capability_and_a_native_one_is_not(tmp_path):
    portable = [_train(tmp_path / f"portable{i}", machine, "portable") for i, machine in enumerate(MACHINES)]
    assert portable[0][0] == portable[1][0]  # bit-identical parameters
    for _, numerics in portable:
        assert numerics["pinned"] and numerics["torch_cpu_capability"] == "AVX2"
        assert numerics["env"]["MKL_CBWR"] == "COMPATIBLE" and numerics["mode"] == "portable"
    native = [_train(tmp_path / f"native{i}", machine, "native") for i, machine in enumerate(MACHINES)]
    assert native[0][0] != native[1][0]  # the same seeded run, changed by the dispatch alone (so the check can fail)
    assert native[0][1]["torch_cpu_capability"] == "DEFAULT" and not native[0][1]["pinned"]


def test_the_mode_is_in_the_identity_only_when_not_the_default(monkeypatch):
    config = RunConfig(n_timesteps=128)
    monkeypatch.delenv(MODE_VARIABLE, raising=False)
    assert cpu_numerics_mode() == "portable" and "cpu_numerics" not in resolve_run(config)
    monkeypatch.setenv(MODE_VARIABLE, "native")
    assert resolve_run(config)["cpu_numerics"] == "native"
    monkeypatch.setenv(MODE_VARIABLE, "fast")
    with pytest.raises(ValueError, match="Invalid RL_ADALOSS_CPU_NUMERICS value: 'fast' \\(valid: portable, native\\)"):
        cpu_numerics_mode()
