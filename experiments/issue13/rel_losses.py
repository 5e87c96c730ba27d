"""How large AdamLossRel's losses were relative to its reference, per cell of an off-policy sweep folder (issue 13's
mechanism check for SAC: why the step ends where it does).

    PYTHONPATH=. python experiments/issue13/rel_losses.py experiments/results/eval13_mountaincar_sac

AdamLossRel's accumulator is ``b_t = b0 * 2**(-t/h) + alpha * S_t``, ``S_t`` the sum of the relative losses
``|f_s - c| / f_ref`` (``f_ref`` the mean of the first ``ref_steps`` losses). Its step is ``1/sqrt(b_t)``, so a
relative loss of ``r`` on average over ``n`` updates ends the step near ``1/sqrt(alpha * r * n)``: ``r = 1`` (a loss
that does not fall) is the pre-registered 1.4e-4 for SAC MountainCar. From each run's committed ``optim.csv``
(``optim/<group>/accumulator`` and ``train/<group>_loss``) and its ``config.json``, per optimizer group:

- ``mean rel``: ``S_n / n`` at the last log, the relative loss averaged over the whole run (``b0``'s remainder, exact
  from the config, is subtracted; ``n`` is the number of updates, counted from the timesteps as SB3's off-policy
  algorithms make them: ``gradient_steps`` every ``train_freq`` steps after ``learning_starts``, so within one
  ``train()`` call of the true count).
- ``late rel``: the same over the run's second half, ``(b_end - b_mid) / (alpha * (n_end - n_mid))``.
- ``late |loss|``: the mean of the logged ``|train/<group>_loss|`` over the second half (SB3 logs the mean of the
  ``train()`` call before each log: a sample of the half, not its exact mean). ``late |loss| / late rel`` is then
  about the reference ``f_ref``.
- ``f_ref``: the exact reference, read from the optimizer state in the run's ``model.zip`` where it exists (models are
  not committed, so a fresh clone prints ``-``).

Cells are ``median [min, max]`` over the finished seeds whose logs have an accumulator.
"""

from __future__ import annotations

import argparse
import inspect
import io
import math
import zipfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from experiments.issue13.loader import optim_rows
from rl_adaloss.experiment.run import read_config, read_result
from rl_adaloss.optim import AdamLossRel

OFF_POLICY = {"sac", "td3", "ddpg", "tqc"}
_DEFAULTS = {k: p.default for k, p in inspect.signature(AdamLossRel.__init__).parameters.items()}


def updates_at(timesteps: float, hyperparams: dict) -> float:
    """Number of gradient updates an SB3 off-policy algorithm has made after ``timesteps`` environment steps."""
    train_freq = hyperparams.get("train_freq", 1)
    if not isinstance(train_freq, int):
        raise SystemExit(f"train_freq={train_freq!r}: only a train_freq in steps (an int) is supported")
    gradient_steps = int(hyperparams.get("gradient_steps", 1))
    if gradient_steps < 1:
        raise SystemExit(f"gradient_steps={gradient_steps!r}: only a fixed, positive number is supported")
    learning_starts = int(hyperparams.get("learning_starts", 100))
    return max(0.0, (timesteps - learning_starts) // train_freq * gradient_steps)


def exact_refs(run_dir: Path) -> dict[str, float]:
    """``{group: f_ref}`` from the optimizer states in ``model.zip`` (empty when there is no model)."""
    path = run_dir / "model.zip"
    if not path.exists():
        return {}
    import torch

    out = {}
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.endswith(".optimizer.pth"):
                state = torch.load(io.BytesIO(archive.read(name)), map_location="cpu", weights_only=False)
                group = state["param_groups"][0]
                if group.get("rl_adaloss_ref_count"):
                    out[name.split(".")[0]] = float(group["rl_adaloss_ref_sum"]) / float(group["rl_adaloss_ref_count"])
    return out


def run_rel(run_dir: Path, config: dict) -> dict[str, tuple[float, float, float, float]]:
    """``{group: (mean rel, late rel, late |loss|, f_ref or nan)}`` of one run."""
    agent = config["agent"]
    hyper = agent["hyperparams"]
    kwargs = agent.get("optimizer_kwargs") or {}
    alpha = float(kwargs.get("alpha", _DEFAULTS["alpha"]))
    half_life = float(kwargs.get("b0_half_life", _DEFAULTS["b0_half_life"]))
    b0 = kwargs.get("b0") or 1.0 / float(config["lr"]) ** 2
    rows = optim_rows(run_dir)
    if not rows:
        return {}
    refs = exact_refs(run_dir)
    out = {}
    for key in rows[0] if rows else ():
        if not (key.startswith("optim/") and key.endswith("/accumulator")):
            continue
        group = key.split("/")[1]
        points = [
            (float(r["timesteps"]), float(r[key]), r.get(f"train/{group}_loss", ""))
            for r in rows
            if r[key] not in ("", None) and math.isfinite(float(r[key]))
        ]
        if len(points) < 2:
            continue

        def rel_sum(point: tuple[float, float, str]) -> tuple[float, float]:
            n = updates_at(point[0], hyper)
            return n, (point[1] - b0 * 2.0 ** (-n / half_life)) / alpha

        n_end, s_end = rel_sum(points[-1])
        mid = min(points, key=lambda p: abs(p[0] - points[-1][0] / 2))
        n_mid, s_mid = rel_sum(mid)
        if n_end <= n_mid:  # too few updates, or logs too sparse, for a second half
            continue
        late_losses = [abs(float(loss)) for t, _, loss in points if t >= mid[0] and loss not in ("", None)]
        out[group] = (
            s_end / n_end,
            (s_end - s_mid) / (n_end - n_mid),
            float(np.mean(late_losses)) if late_losses else math.nan,
            refs.get(group, math.nan),
        )
    return out


def _fmt(values: Sequence[float]) -> str:
    arr = np.array(values)
    if np.isnan(arr).all():
        return "-"
    arr = arr[~np.isnan(arr)]
    return f"{np.median(arr):.3g} [{arr.min():.3g}, {arr.max():.3g}]"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--optimizer", default="adamloss-rel")
    args = parser.parse_args(argv)
    cells: dict[tuple[str, float], list[tuple[float, float, float, float]]] = defaultdict(list)
    for run_dir in sorted(Path(args.folder).iterdir()):
        config = read_config(run_dir) if run_dir.is_dir() else None
        if config is None or read_result(run_dir) is None or config["optimizer"] != args.optimizer:
            continue
        if config["algo"] not in OFF_POLICY:
            raise SystemExit(f"{run_dir.name}: algo={config['algo']!r} is not off-policy ({sorted(OFF_POLICY)})")
        for group, values in run_rel(run_dir, config).items():
            cells[(group, float(config["lr"]))].append(values)
    print(f"{args.optimizer} in {args.folder}: median [min, max] over seeds")
    for (group, lr), runs in sorted(cells.items()):
        cols = list(zip(*runs))
        print(f"  {group:>8} eta_0={lr:<7g} n={len(runs)}: mean rel {_fmt(cols[0])}; late rel {_fmt(cols[1])}; "
              f"late |loss| {_fmt(cols[2])}; f_ref {_fmt(cols[3])}")  # fmt: skip


if __name__ == "__main__":
    main()
