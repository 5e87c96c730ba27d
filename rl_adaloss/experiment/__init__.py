"""Run, sweep, results and report machinery for seeded SB3 experiments (heavy deps are imported lazily)."""

from rl_adaloss.experiment.config import RunConfig, parse_hyperparams, run_dir_name
from rl_adaloss.experiment.run import FINAL_STATUSES, run_one
from rl_adaloss.experiment.spec import SweepSpec, load_spec, spec_from_dict

__all__ = [
    "FINAL_STATUSES",
    "RunConfig",
    "SweepSpec",
    "load_spec",
    "parse_hyperparams",
    "run_dir_name",
    "run_one",
    "spec_from_dict",
]
