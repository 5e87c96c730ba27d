"""experiments/issue13/rel_losses.py: AdamLossRel's relative losses recovered from a run's logged accumulator."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
import torch

from experiments.issue13.rel_losses import main, run_rel, updates_at
from rl_adaloss.optim import AdamLossRel

pytestmark = pytest.mark.study  # the study's tests: outside the default tier (pytest -m study)


def _config(lr: float, hyper: dict) -> dict:
    return {"optimizer": "adamloss-rel", "lr": lr, "seed": 0, "algo": "sac",
            "agent": {"hyperparams": hyper, "optimizer_kwargs": {}}}  # fmt: skip


def _fake_run(folder: Path, with_model: bool) -> Path:
    """A run whose critic saw 32 losses of 2.0 (the reference), then 1968 of 20.0: relative losses 1, then 10."""
    hyper = {"train_freq": 4, "gradient_steps": 4, "learning_starts": 0}
    w = torch.nn.Parameter(torch.zeros(1))
    opt = AdamLossRel([w], lr=1e-4)  # b0 = 1e8: still 2% of the accumulator at the end, so its remainder matters
    rows = []
    for t in range(1, 2001):
        loss = 2.0 if t <= 32 else 20.0
        opt.zero_grad()
        (w.sum() * 0 + loss).backward()
        opt.step()
        if t % 500 == 0:
            rows.append(f"{t},{opt.accumulators()[0]!r},{loss}")
    run_dir = folder / "env__sac__adamloss-rel__lr0.0001__s0"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(_config(1e-4, hyper)))
    (run_dir / "result.json").write_text(json.dumps({"status": "ok", "final_return_mean": 1.0}))
    (run_dir / "optim.csv").write_text("timesteps,optim/critic/accumulator,train/critic_loss\n" + "\n".join(rows) + "\n")
    if with_model:
        buf = io.BytesIO()
        torch.save(opt.state_dict(), buf)
        with zipfile.ZipFile(run_dir / "model.zip", "w") as archive:
            archive.writestr("critic.optimizer.pth", buf.getvalue())
    return run_dir


@pytest.mark.parametrize("with_model", [True, False])
def test_relative_losses_from_the_accumulator(tmp_path, with_model):
    run_dir = _fake_run(tmp_path, with_model)
    mean_rel, late_rel, late_loss, f_ref = run_rel(run_dir, json.loads((run_dir / "config.json").read_text()))["critic"]
    assert mean_rel == pytest.approx((32 * 1 + 1968 * 10) / 2000, rel=1e-4)
    assert late_rel == pytest.approx(10.0, rel=1e-4)  # updates 1000-2000 all have relative loss 10
    assert late_loss == pytest.approx(20.0)
    assert f_ref == pytest.approx(2.0) if with_model else f_ref != f_ref  # nan without a model


def test_cli_prints_one_line_per_group_and_rejects_on_policy(tmp_path, capsys):
    _fake_run(tmp_path, with_model=True)
    (tmp_path / "in_flight").mkdir()  # no config: skipped
    main([str(tmp_path)])
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[1].strip().startswith("critic eta_0=0.0001") and "f_ref 2 [2, 2]" in out[1], out
    bad = tmp_path / "env__ppo__adamloss-rel__lr1__s0"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({**_config(1.0, {}), "algo": "ppo"}))
    (bad / "result.json").write_text(json.dumps({"status": "ok", "final_return_mean": 1.0}))
    with pytest.raises(SystemExit, match="algo='ppo' is not off-policy"):
        main([str(tmp_path)])


def test_updates_follow_sb3_off_policy_schedule():
    assert updates_at(1000, {"train_freq": 32, "gradient_steps": 32, "learning_starts": 0}) == 992
    assert updates_at(50, {"learning_starts": 100}) == 0
    with pytest.raises(SystemExit, match=r"train_freq=\[1, 'episode'\]"):
        updates_at(10, {"train_freq": [1, "episode"]})
