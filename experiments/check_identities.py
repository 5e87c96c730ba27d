"""Check that every committed grid still recognises its finished runs (a code change must not change their identity).

For each grid spec under ``experiments/grids`` whose header names its folder (``--out experiments/results/...``), the
sweep's own resume decision (:func:`rl_adaloss.experiment.sweep.pending_runs`) is made against the committed runs:
a finished run counts as done only when the hash of the run the spec makes today equals the ``config_hash`` the run
recorded. Folders made before hashes were recorded (issue 1-era robustness grids) are reported as such.

    python experiments/check_identities.py            # rc 1 if a grid no longer recognises a finished run
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from rl_adaloss.experiment.spec import load_spec
from rl_adaloss.experiment.sweep import pending_runs


def main(argv: list[str]) -> int:
    grids = [Path(a) for a in argv] or sorted(Path("experiments/grids").glob("*.yaml"))
    changed = 0
    for grid in grids:
        match = re.search(r"--out (experiments/results/\S+)", grid.read_text())
        if match is None or not Path(match.group(1)).is_dir():
            continue
        out = match.group(1)
        configs = load_spec(grid).runs(out)
        try:
            pending, done = pending_runs(configs)
        except ValueError as err:
            legacy = "no configuration hash recorded" in str(err)
            changed += not legacy
            print(f"{'legacy ' if legacy else 'CHANGED'} {grid.name} -> {out}: {str(err)[:300]}")
            continue
        print(f"ok      {grid.name} -> {out}: {done} of {len(configs)} runs recognised as done, {len(pending)} pending")
    return 1 if changed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
