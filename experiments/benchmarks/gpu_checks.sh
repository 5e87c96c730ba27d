#!/usr/bin/env bash
# GPU checks, run as one short script on a CUDA machine: the no-host-sync tests (optimizers, fused and foreach, GradScaler,
# NaN skips, SB3 training)
# and the optimizer / SB3 benchmarks on CUDA. Usage: bash experiments/benchmarks/gpu_checks.sh [OUT_DIR]
set -uo pipefail
out=${1:-gpu_out}
mkdir -p "$out"
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1 MPLBACKEND=Agg
rc=0
nvidia-smi -L 2>&1 | tee "$out/nvidia-smi.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$out/nvidia-smi.txt"
python3 -m pytest -o addopts="" -m gpu -q -p no:cacheprovider tests/test_optim.py tests/test_sb3.py tests/test_torch_conventions.py tests/test_fused.py 2>&1 | tee "$out/pytest_gpu.txt"
rc=$(( rc | ${PIPESTATUS[0]} ))
timeout 240 python3 experiments/benchmarks/bench_optim.py --device cuda --rounds 9 2>&1 | tee "$out/bench_optim_cuda.txt"
timeout 240 python3 experiments/benchmarks/bench_sb3.py --device cuda --chunks 3 2>&1 | grep -v argv | tee "$out/bench_sb3_cuda.txt"
exit $rc
