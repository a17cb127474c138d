#!/usr/bin/env bash
# The CUDA checks of the speed issue, in one run on a machine with a GPU (PyTorch installed,
# the package on PYTHONPATH): the device test module, then the training-step benchmark on the
# GPU (snnqat variants and the GEMM floor; the peers when installed). Writes to ${OUT:-.}.
set -o pipefail
export PYTHONPATH=src PYTHONUNBUFFERED=1
out=${OUT:-.}
python -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"
python -m pytest -q -p no:cacheprovider tests/cuda 2>&1 | tee "$out/cuda_tests.log" | tail -15
python benchmarks/train_step.py --device cuda --sizes S M L --peers --repeats 10 \
    --csv "$out/cuda_bench.csv" 2>&1 | tee "$out/cuda_bench.log" | tail -40
