"""Thin script: same as ``rl-adaloss report ...`` (see docs/experiments.md)."""

import sys

from rl_adaloss.experiment.cli import report_main

if __name__ == "__main__":
    sys.exit(report_main())
