"""CPU numerics: the settings that make a seeded run independent of the x86 processor it runs on.

torch picks its own CPU kernels by the processor's instruction set (``ATEN_CPU_CAPABILITY``: default, avx2, avx512)
and MKL, which computes torch's float32 matrix products, picks its own code path too (``MKL_CBWR``). Both change the
last bits of a result, and a seeded RL run amplifies them into a different run (docs/reproducibility.md has the
measurements: one seeded PPO run gave four different final returns under four of these settings on one machine).

Runs are ``portable`` by default: ``ATEN_CPU_CAPABILITY=avx2`` (torch's AVX2 kernels, which every x86-64 processor
with AVX2 runs identically; on this machine they also gave the same run as its native AVX-512 ones) and
``MKL_CBWR=COMPATIBLE`` (MKL's SSE2 path without approximate instructions, the one branch MKL documents as
reproducible on Intel and non-Intel processors alike; its AVX2 branch is Intel-only). Threads are fixed by the run's
``torch_threads`` (1), as MKL's reproducibility requires. ``RL_ADALOSS_CPU_NUMERICS=native`` leaves the environment
as it is (each machine's fastest kernels).

Both variables are read once, at torch's and MKL's first computation, so they must be set before it:
``rl-adaloss`` sets them first thing (its sweep workers, spawned processes and Ray tasks, inherit them), and a run
records what was in effect (``config.json``'s ``numerics``), read back from torch.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["MODES", "MODE_VARIABLE", "PORTABLE_ENV", "cpu_numerics_mode", "numerics_record", "pin_cpu_numerics"]

MODE_VARIABLE = "RL_ADALOSS_CPU_NUMERICS"
MODES = ("portable", "native")
PORTABLE_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE"}
_RECORDED = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_NUM_THREADS", "OMP_NUM_THREADS")


def cpu_numerics_mode() -> str:
    """The mode asked for by ``RL_ADALOSS_CPU_NUMERICS`` (``portable`` when unset).

    Raises:
        ValueError: any other value, named.
    """
    mode = os.environ.get(MODE_VARIABLE, "portable").strip().lower() or "portable"
    if mode not in MODES:
        raise ValueError(f"Invalid {MODE_VARIABLE} value: {os.environ[MODE_VARIABLE]!r} (valid: {', '.join(MODES)})")
    return mode


def pin_cpu_numerics() -> dict[str, str]:
    """Set this process's environment for the mode (and so its children's); call it before torch computes anything.

    Returns:
        The variables to give processes started another way (Ray tasks): the mode and, when portable,
        :data:`PORTABLE_ENV`.

    Raises:
        ValueError: ``RL_ADALOSS_CPU_NUMERICS`` holds an unknown mode.
    """
    mode = cpu_numerics_mode()
    pinned = {MODE_VARIABLE: mode, **(PORTABLE_ENV if mode == "portable" else {})}
    os.environ.update(pinned)
    return pinned


def numerics_record() -> dict[str, Any]:
    """What this process computes with: the mode, the variables, torch's kernels in effect, whether it is pinned.

    ``pinned`` is True when the mode is portable and torch runs the AVX2 kernels it asks for (False when torch had
    computed before the variables were set, or on a processor without AVX2). MKL's branch cannot be read back; its
    variable is recorded.
    """
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    mode = cpu_numerics_mode()
    env = {key: os.environ.get(key) for key in _RECORDED}
    pinned = mode == "portable" and capability == "AVX2" and all(os.environ.get(k) == v for k, v in PORTABLE_ENV.items())
    return {"mode": mode, "env": env, "torch_cpu_capability": capability, "pinned": pinned}
