#!/usr/bin/env bash
# The CUDA checks of the speed issue, in one run on a machine with a GPU (PyTorch installed;
# the package is taken from src/, anything already on PYTHONPATH, e.g. the peers, is kept):
# the device test module, the training-step benchmark on the GPU (snnqat variants, the GEMM
# floor, and the peers when installed), then the snnqat variants again with the CUDA graphs of
# the quantizers switched off, and with those of the LIF loops off as well (the baselines, in
# the same process environment and machine). Writes its logs and CSVs to ${OUT:-.}.
set -o pipefail
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
out=${OUT:-.}
sizes=${SIZES:-S M L}
"$py" -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"
"$py" -m pytest -q -p no:cacheprovider tests/cuda 2>&1 | tee "$out/cuda_tests.log" | tail -15
# shellcheck disable=SC2086
"$py" benchmarks/train_step.py --device cuda --sizes $sizes --peers --repeats "${REPEATS:-10}" \
    --csv "$out/cuda_bench.csv" 2>&1 | tee "$out/cuda_bench.log" | grep -v Warning | tail -30
# shellcheck disable=SC2086
"$py" benchmarks/train_step.py --device cuda --sizes $sizes --repeats "${REPEATS:-10}" \
    --no-quantizer-graphs --csv "$out/cuda_bench_noqgraphs.csv" 2>&1 \
    | tee "$out/cuda_bench_noqgraphs.log" | tail -16
# shellcheck disable=SC2086
"$py" benchmarks/train_step.py --device cuda --sizes $sizes --repeats "${REPEATS:-10}" \
    --no-cuda-graphs --no-quantizer-graphs --csv "$out/cuda_bench_nographs.csv" 2>&1 \
    | tee "$out/cuda_bench_nographs.log" | tail -16
