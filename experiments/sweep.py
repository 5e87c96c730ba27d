"""Thin script: same as ``rl-adaloss sweep ...`` (see docs/experiments.md)."""

import sys

from rl_adaloss.experiment.cli import sweep_main

if __name__ == "__main__":
    sys.exit(sweep_main())
