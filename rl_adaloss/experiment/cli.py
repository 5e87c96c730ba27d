"""Command line: ``rl-adaloss train|sweep|report`` (also behind ``experiments/{train,sweep,report}.py``)."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["main", "report_main", "sweep_main", "train_main"]


def train_main(argv: list[str] | None = None) -> int:
    """``rl-adaloss train --algo ppo --env Pendulum-v1 --optimizer adamloss --lr 1e-3 -n 20000 ...`` (flags: tyro)."""
    import tyro

    from rl_adaloss.experiment.config import RunConfig
    from rl_adaloss.experiment.run import run_one

    config = tyro.cli(RunConfig, args=argv, prog="rl-adaloss train", description="Train one seeded run.")
    result = run_one(config)
    print(json.dumps({k: v for k, v in result.items() if k != "traceback"}, indent=2))
    if result["status"] == "failed":
        print(result.get("traceback", ""), file=sys.stderr)
    return 1 if result["status"] == "failed" else 0


def sweep_main(argv: list[str] | None = None) -> int:
    """``rl-adaloss sweep grid.yaml --out runs/x [--backend ray [--address A]] [--workers N] [--retry-failed] ...``."""
    parser = argparse.ArgumentParser(prog="rl-adaloss sweep", description="Run (or resume) a grid of seeded runs.")
    parser.add_argument("spec", help="YAML grid (see experiments/grids/quick.yaml)")
    parser.add_argument("--out", required=True, help="sweep folder; rerunning the command resumes it")
    parser.add_argument("--backend", choices=("local", "ray"), default="local")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray instance)")
    parser.add_argument("--workers", type=int, default=None, help="parallel runs (default: number of CPU cores)")
    parser.add_argument("--device", default=None, help="cpu, cuda (round-robin over GPUs), cuda:N; default: the spec's")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--retry-failed", action="store_true", help="also rerun the runs recorded as failed (diverged runs are results)"
    )
    args = parser.parse_args(argv)

    from rl_adaloss.experiment.spec import load_spec
    from rl_adaloss.experiment.sweep import run_sweep

    try:
        spec = load_spec(args.spec)
        summary = run_sweep(spec, args.out, backend=args.backend, workers=args.workers, address=args.address,
                            device=args.device, progress=not args.no_progress, retry_failed=args.retry_failed)  # fmt: skip
    except (ValueError, OSError) as err:  # OSError includes ConnectionError
        print(f"rl-adaloss sweep: error: {err}", file=sys.stderr)
        return 2
    print(f"sweep {args.out}: {summary['total']} runs ({summary['skipped']} already done): ok {summary['ok']}, "
          f"diverged {summary['diverged']}, failed {summary['failed']}; wall time {summary['wall_time_s']:.1f} s")  # fmt: skip
    return 0


def report_main(argv: list[str] | None = None) -> int:
    """``rl-adaloss report runs/x [--reps 2000] [--seed 0] [--include runs/y]``: report.md and PNGs in the sweep folder."""
    parser = argparse.ArgumentParser(prog="rl-adaloss report", description="Figures and tables of a sweep folder.")
    parser.add_argument("out", help="sweep folder")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap replications")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument(
        "--include", action="append", default=[], metavar="DIR", help="also report the runs of this sweep folder"
    )
    args = parser.parse_args(argv)

    from rl_adaloss.experiment.report import make_report

    try:
        make_report(args.out, reps=args.reps, seed=args.seed, include=args.include)
    except (ValueError, OSError) as err:
        print(f"rl-adaloss report: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}/report.md")
    return 0


_COMMANDS = {"train": train_main, "sweep": sweep_main, "report": report_main}


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``rl-adaloss <train|sweep|report> ...``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in _COMMANDS:
        print(f"usage: rl-adaloss {{{','.join(_COMMANDS)}}} ... (-h for help)", file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    return _COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
