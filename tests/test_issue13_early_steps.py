"""experiments/issue13/early_steps.py: its rebuilt run takes exactly the steps the committed run logged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from experiments.issue13.early_steps import _logged_step, probe
from experiments.issue13.optim_csv import main as write_optim_csv
from rl_adaloss.experiment.spec import load_spec
from rl_adaloss.experiment.sweep import run_sweep

pytestmark = pytest.mark.study  # the study's tests: outside the default tier (pytest -m study)

SPEC = """
envs: [Pendulum-v1]
algos: [ppo]
optimizers: [adamloss-rel]
lrs: [0.5]
seeds: [3]
n_timesteps: 192
eval_freq: 1000
eval_episodes: 1
hyperparams:
  n_envs: 1
  n_steps: 64
  batch_size: 16
  n_epochs: 2
  policy_kwargs: {net_arch: [16]}
"""


def test_probe_reproduces_the_logged_steps(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "sweep"
    run_sweep(load_spec(spec), out, workers=1, progress=False)
    write_optim_csv([str(out)])
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    steps, done = probe(run_dir, 64)
    assert done == 64 and len(steps) == 8  # one rollout of 64 steps: 2 epochs x 4 minibatches
    assert steps[0] <= 1000**-0.5 + 1e-9  # the brake: at most 1/sqrt(alpha) from the first update on
    logged = _logged_step(run_dir, done)
    assert logged is not None and logged == float(np.float32(steps[-1]))
    later, _ = probe(run_dir, 128)  # a different point of the same run is logged too, and differs
    assert _logged_step(run_dir, 128) == float(np.float32(later[-1])) != logged
