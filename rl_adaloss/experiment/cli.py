"""Command line: ``rl-adaloss train|sweep|report`` (also behind ``experiments/{train,sweep,report}.py``).

The three commands share one help style (argparse) and one error style: a bad value gives one line on stderr,
``rl-adaloss <command>: error: ...`` naming the value and the valid choices, and exit status 2, before anything is
written. ``train`` has one flag per :class:`~rl_adaloss.experiment.config.RunConfig` field, whose help is the field's
description, written once, in the field's ``help`` metadata.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shlex
import sys
from typing import Any, NoReturn

__all__ = ["main", "report_main", "sweep_main", "train_main"]

_PRESETS = (
    "Presets, in order: agents/<algo>.yml (ours), RL Zoo's tuned hyperparameters (the rl_zoo3 package: pip install "
    "'rl-adaloss[zoo]'), SB3's defaults; config.json records which one a run used."
)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``<prog>: error: <message> (see <prog> -h)`` and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r} (expected a finite number > 0)") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"invalid value {text!r} (expected a finite number > 0)")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"invalid value {text!r} (expected a finite number)")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid value {text!r} (expected an integer >= 1)")
    return value


def _optimizer_name(text: str) -> str:
    from rl_adaloss.sb3 import OPTIMIZERS, is_class_path, optimizer_spec

    if not is_class_path(text) and text not in OPTIMIZERS:  # worded as argparse's choices (see --algo)
        names = ", ".join(map(repr, OPTIMIZERS))
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {names}, or package.module:Class)")
    try:
        optimizer_spec(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("Invalid optimizer: ")) from None
    return text


def _kwargs_text(text: str) -> str | None:
    from rl_adaloss.experiment.config import canonical_kwargs

    try:
        return canonical_kwargs(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("Invalid optimizer_kwargs: ")) from None


def _train_flags() -> dict[str, dict[str, Any]]:
    """The argparse settings of each :class:`RunConfig` field, but for its help and default (the field's own)."""
    from rl_adaloss.agents import ALGOS

    return {
        "algo": dict(type=str, choices=list(ALGOS)),
        "env": dict(type=str),
        "optimizer": dict(type=_optimizer_name),
        "lr": dict(type=_positive_float),
        "b0": dict(type=_positive_float),
        "alpha": dict(type=_finite_float),
        "c": dict(type=_finite_float),
        "seed": dict(type=int),
        "n_timesteps": dict(type=_positive_int, aliases=["-n"]),
        "n_envs": dict(type=_positive_int),
        "device": dict(type=str),
        "eval_freq": dict(type=_positive_int),
        "eval_episodes": dict(type=_positive_int),
        "log_folder": dict(type=str),
        "hyperparams": dict(type=str, nargs="*", metavar="KEY=VALUE"),
        "torch_threads": dict(type=_positive_int),
        "optimizer_kwargs": dict(type=_kwargs_text, metavar="MAPPING"),
        "checkpoint_freq": dict(type=int),
    }


def _train_parser() -> _Parser:
    from rl_adaloss.agents import ALGOS
    from rl_adaloss.experiment.config import RunConfig
    from rl_adaloss.sb3 import OPTIMIZERS

    parser = _Parser(
        prog="rl-adaloss train",
        description="Train one seeded run of an SB3 algorithm on a Gymnasium env with one optimizer.",
        epilog=f"algorithms: {', '.join(ALGOS)}. optimizers: {', '.join(OPTIMIZERS)}, or any torch.optim.Optimizer as "
        f"package.module:Class (e.g. torch.optim:SGD). {_PRESETS}",
    )
    flags = _train_flags()
    for f in dataclasses.fields(RunConfig):  # the help is the field's own description (RunConfig's metadata)
        kwargs = dict(flags[f.name])
        names = ["--" + f.name.replace("_", "-"), *kwargs.pop("aliases", [])]
        default = "" if f.default is None else " (default: %(default)s)"
        parser.add_argument(*names, default=f.default, help=f.metadata["help"].replace("%", "%%") + default, **kwargs)
    parser.add_argument("--overwrite", action="store_true", help="replace a finished run in the run folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (none either when not on a terminal)")
    return parser


def train_main(argv: list[str] | None = None) -> int:
    """``rl-adaloss train --algo ppo --env Pendulum-v1 --optimizer adamloss --lr 1e-3 -n 20000 ...``."""
    from pathlib import Path

    args = _train_parser().parse_args(argv)

    from rl_adaloss.agents import preset_summary
    from rl_adaloss.experiment.config import RunConfig, resolve_agent_config, run_dir_name
    from rl_adaloss.experiment.identity import validate_run
    from rl_adaloss.experiment.run import run_one
    from rl_adaloss.experiment.run_folder import RunExistsError, check_run_dir, hold_run_lock

    fields = {f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig)}
    config = RunConfig(**{**fields, "hyperparams": tuple(fields["hyperparams"])})
    try:
        agent = resolve_agent_config(config)
        identity = validate_run(config, agent)
        run_dir = Path(config.log_folder) / run_dir_name(config)
        with hold_run_lock(run_dir):  # RunBusyError (a ValueError) if another process is running it now
            pass
        check_run_dir(run_dir, identity, args.overwrite)
    except (ValueError, ImportError) as err:
        print(f"rl-adaloss train: error: {err}", file=sys.stderr)
        return 2
    print(preset_summary(agent), file=sys.stderr)
    try:
        result = run_one(config, overwrite=args.overwrite, progress=not args.no_progress and sys.stderr.isatty())
    except RunExistsError as err:  # another process is running it now (or finished it since the check above)
        print(f"rl-adaloss train: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in result.items() if k != "traceback"}, indent=2))
    if result["status"] == "failed":
        print(result.get("traceback", ""), file=sys.stderr)
    return 1 if result["status"] == "failed" else 0


def sweep_main(argv: list[str] | None = None) -> int:
    """``rl-adaloss sweep grid.yaml --out runs/x [--backend ray [--address A]] [--workers N] [--retry-failed] ...``."""
    parser = _Parser(
        prog="rl-adaloss sweep",
        description="Run (or resume) a grid of seeded runs; the whole grid is validated before any run starts.",
        epilog=f"Exit status: 0 all runs ok or diverged, 1 some run failed (listed), 2 bad input. {_PRESETS}",
    )
    parser.add_argument("spec", help="YAML grid (see experiments/grids/quick.yaml and docs/experiments.md)")
    parser.add_argument("--out", required=True, help="sweep folder; rerunning the command resumes it")
    parser.add_argument("--backend", choices=("local", "ray"), default="local", help="(default: %(default)s)")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray instance)")
    parser.add_argument(
        "--workers", type=_positive_int, default=None, help="parallel runs (default: the CPU cores this process may use)"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda (round-robin over GPUs), cuda:N; default: the spec's")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--retry-failed", action="store_true", help="also rerun the runs recorded as failed (diverged runs are results)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="redo finished runs whose configuration changed (default: refuse)"
    )
    args = parser.parse_args(argv)

    from rl_adaloss.experiment.spec import load_spec
    from rl_adaloss.experiment.sweep import run_sweep

    try:
        spec = load_spec(args.spec)
        summary = run_sweep(spec, args.out, backend=args.backend, workers=args.workers, address=args.address,
                            device=args.device, progress=not args.no_progress, retry_failed=args.retry_failed,
                            overwrite=args.overwrite, print_runs=True)  # fmt: skip
    except (ValueError, ImportError, OSError) as err:  # OSError includes ConnectionError
        print(f"rl-adaloss sweep: error: {err}", file=sys.stderr)
        return 2
    print(f"sweep {args.out}: {summary['total']} runs ({summary['skipped']} already done): ok {summary['ok']}, "
          f"diverged {summary['diverged']}, failed {summary['failed']}; wall time {summary['wall_time_s']:.1f} s")  # fmt: skip
    if summary["busy"]:
        print(f"{summary['busy']} run(s) were being run by another process and were left to it; rerun this sweep "
              "once it is done to see the grid complete")  # fmt: skip
    if summary["failed_runs"]:
        print(f"{len(summary['failed_runs'])} failed run(s) (rerun with --retry-failed to try them again):", file=sys.stderr)
        for name, error in summary["failed_runs"]:
            print(f"  {name}: {error}", file=sys.stderr)
        return 1
    return 0


def report_main(argv: list[str] | None = None) -> int:
    """``rl-adaloss report runs/x [--include runs/y] [--headline-min-lr 3e-4]``, or ``--summary out.md DIR [DIR ...]``."""
    parser = _Parser(prog="rl-adaloss report", description="Figures and tables of a sweep folder (or of train runs).")
    parser.add_argument(
        "out", nargs="+", help="sweep folder, or a --log-folder of single train runs (with --summary: several)"
    )
    parser.add_argument("--reps", type=_positive_int, default=2000, help="bootstrap replications (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: %(default)s)")
    parser.add_argument(
        "--include", action="append", default=[], metavar="DIR", help="also report the runs of this sweep folder"
    )
    parser.add_argument(
        "--headline-min-lr", type=_positive_float, default=None, metavar="ETA0",
        help="also give the robustness headline over eta_0 >= ETA0 (the whole eta_0 grid is always given)",
    )  # fmt: skip
    parser.add_argument(
        "--summary", default=None, metavar="FILE.md",
        help="write one cross-grid summary of the folders: FILE.md, FILE.png (figure), FILE.csv (rows)",
    )  # fmt: skip
    parser.add_argument(
        "--grids", default=None, metavar="YAML",
        help="with --summary: folder name -> task, tuned_lr, threshold, threshold_source, include (docs/summary_grids.yaml)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.summary is None and (len(args.out) > 1 or args.grids is not None):
        parser.error(f"invalid folders {' '.join(args.out)}: several folders or --grids need --summary FILE.md")
    if args.summary is not None and (args.include or args.headline_min_lr is not None):
        parser.error("invalid --include/--headline-min-lr with --summary (name included folders in the --grids file)")

    from rl_adaloss.experiment.report import make_report
    from rl_adaloss.experiment.summary import write_summary

    try:
        if args.summary is not None:
            command = shlex.join(["rl-adaloss", "report", *(argv if argv is not None else sys.argv[1:])])
            write_summary(args.out, args.summary, mapping=args.grids, reps=args.reps, seed=args.seed, command=command)
            print(f"wrote {args.summary}")
            return 0
        make_report(args.out[0], reps=args.reps, seed=args.seed, include=args.include, headline_min_lr=args.headline_min_lr)
    except (ValueError, ImportError, OSError) as err:
        print(f"rl-adaloss report: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out[0]}/report.md")
    return 0


_COMMANDS = {
    "train": (train_main, "train one seeded run (any SB3 algorithm, any Gymnasium env, one optimizer)"),
    "sweep": (sweep_main, "run or resume a YAML grid of runs on local cores or Ray"),
    "report": (report_main, "figures and tables (learning curves, eta_0 sensitivity, IQM, PoI) of a sweep folder"),
}


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``rl-adaloss <train|sweep|report> ...``; returns the exit status.

    The CPU numerics (``rl_adaloss.experiment.numerics``) are pinned first, before torch computes anything.
    """
    from rl_adaloss.experiment.numerics import pin_cpu_numerics

    try:
        pin_cpu_numerics()
    except ValueError as err:
        print(f"rl-adaloss: error: {err}", file=sys.stderr)
        return 2
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--version"]:
        from rl_adaloss import __version__

        print(f"rl-adaloss {__version__}")
        return 0
    if not argv or argv[0] not in _COMMANDS:
        usage = "usage: rl-adaloss {train,sweep,report} ... | --version\n\ncommands:\n"
        usage += "".join(f"  {name:<8}{text}\n" for name, (_, text) in _COMMANDS.items())
        usage += "\nrl-adaloss <command> -h lists the command's options."
        if argv[:1] in (["-h"], ["--help"]):
            print(usage)
            return 0
        what = f"unknown command {argv[0]!r}" if argv else "no command"
        print(f"rl-adaloss: error: {what} (valid: {', '.join(_COMMANDS)})\n\n{usage}", file=sys.stderr)
        return 2
    try:
        return _COMMANDS[argv[0]][0](argv[1:])
    except SystemExit as stop:  # argparse's -h and errors
        return stop.code if isinstance(stop.code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
