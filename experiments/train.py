"""Thin script: same as ``rl-adaloss train ...`` (see docs/experiments.md)."""

import sys

from rl_adaloss.experiment.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
