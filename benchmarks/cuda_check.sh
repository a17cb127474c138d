#!/usr/bin/env bash
# The CUDA checks of the speed issue, in one run on a machine with a GPU (PyTorch installed;
# the package is taken from src/, anything already on PYTHONPATH, e.g. the peers, is kept):
# the device test module, then the training-step benchmark on the GPU (snnqat variants, the
# GEMM floor, and the peers when installed). Writes its logs and a CSV to ${OUT:-.}.
set -o pipefail
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
out=${OUT:-.}
"$py" -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"
"$py" -m pytest -q -p no:cacheprovider tests/cuda 2>&1 | tee "$out/cuda_tests.log" | tail -15
"$py" benchmarks/train_step.py --device cuda --sizes S M L --peers --repeats "${REPEATS:-10}" \
    --csv "$out/cuda_bench.csv" 2>&1 | tee "$out/cuda_bench.log" | tail -40
