#!/usr/bin/env bash
# One device call for every GPU check of this stop: the requires_gpu tests, the kernels' backward
# benchmarks (issue 22) and serving on a memory-capped fraction (issue 20). The workbench's own
# dependencies come as wheels in .whl (the device machine reaches no registry).
set -u
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl >/tmp/pip.log 2>&1 || { tail -5 /tmp/pip.log; }
export PYTHONPATH=/tmp/site:$PWD
R=/tmp/gpu_results; mkdir -p $R/kernels $R/serving
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv;
  python3 -c "import torch, triton, jax, onnxruntime as o; print('torch', torch.__version__, 'triton', triton.__version__, 'jax', jax.__version__, jax.devices(), 'ort', o.__version__, o.get_available_providers())"; } > $R/env.txt 2>&1
cat $R/env.txt
echo "== requires_gpu tests (slices, energy)"
timeout 90 python3 -m pytest -p no:cacheprovider -q -m requires_gpu tests/slices/test_slices_gpu.py tests/energy/test_energy_gpu.py -x -o addopts="-ra" > $R/tests_gpu.log 2>&1; echo "rc=$?"; tail -15 $R/tests_gpu.log
echo "== kernels backward (issue 22)"
timeout 280 python3 benchmarks/kernels_bwd_gpu.py --out $R/kernels > $R/kernels.log 2>&1; echo "rc=$?"; tail -60 $R/kernels.log
echo "== serving (issue 20)"
timeout 150 python3 benchmarks/serving_gpu.py --out $R/serving > $R/serving.log 2>&1; echo "rc=$?"; tail -30 $R/serving.log
tar czf $OUT/gpu_results.tgz -C /tmp gpu_results; cp $R/env.txt $OUT/; date -u
