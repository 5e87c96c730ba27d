"""Sum the run wall times of issue 13's runs (design, evaluation and post-hoc folders).

PYTHONPATH=. python experiments/issue13/compute.py
"""

from __future__ import annotations

import json
from pathlib import Path

runs = [
    p
    for pattern in (
        "design_adamloss_rel/*/*/result.json",
        "eval13_*/*/*/result.json",
        "eval13_*/*/result.json",
        "posthoc_*/*/result.json",
    )
    for p in Path("experiments/results").glob(pattern)
]
total = sum(json.loads(p.read_text()).get("wall_time_s") or 0.0 for p in runs)
print(f"{len(runs)} finished runs, {total / 60:.0f} CPU-minutes of run wall time")
