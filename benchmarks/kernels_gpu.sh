#!/usr/bin/env bash
# The kernels' GPU run, in one device call. First the checks of every kernel on both backends
# (bf16 included), one process per kernel (per dtype for Triton attention, the longest to
# compile), side by side with the Pallas matmul probe; then the Triton and Pallas benchmarks, each
# alone on the GPU so the timings are undisturbed; then the summary (figures, same-run ratios,
# the issue's targets). Results land in $OUT (at most 8 files come back from the device tool).
#   OUT=/tmp/k bash benchmarks/kernels_gpu.sh
set -u
OUT=${OUT:-/tmp/kernels_gpu}
WORK=$(mktemp -d)
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
LOG="$OUT/run.log"
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.limit --format=csv
  $PY -c "import torch, triton, jax; print('torch', torch.__version__, 'triton', triton.__version__, 'jax', jax.__version__, jax.devices())"
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

check() {  # backend kernel [dtype]
  local dir="$WORK/$1_$2_${3:-all}"
  mkdir -p "$dir"
  timeout ${CHECK_S:-200} $PY benchmarks/kernels.py --gpu --stage "check-$1" --kernels "$2" ${3:+--dtypes $3} \
    --out "$dir" >"$dir/log" 2>&1
}
for dtype in float32 float16 bfloat16; do check triton attention $dtype & done
for kernel in matmul layer_norm rms_norm softmax; do check triton $kernel & done
for kernel in attention matmul layer_norm rms_norm softmax; do check pallas $kernel & done
timeout 120 $PY benchmarks/pallas_matmul_probe.py >"$WORK/probe.log" 2>&1 &
wait
cat "$WORK"/*/log "$WORK/probe.log" >>"$LOG"
cat "$WORK/probe.log"
$PY - "$WORK" "$OUT" <<'PY'
import json, pathlib, sys
work, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for backend in ("triton", "pallas"):
    rows = []
    for path in sorted(work.glob(f"{backend}_*/check_{backend}.json")):
        rows += json.loads(path.read_text())
    (out / f"check_{backend}.json").write_text(json.dumps(rows, indent=1))
    print(backend, len(rows), "check results")
PY
timeout ${BENCH_TRITON_S:-90} $PY benchmarks/kernels.py --gpu --stage bench-triton --out "$OUT" 2>&1 | tee -a "$LOG"
timeout ${BENCH_PALLAS_S:-80} $PY benchmarks/kernels.py --gpu --stage bench-pallas --out "$OUT" 2>&1 | tee -a "$LOG"
$PY benchmarks/kernels.py --stage summary --out "$OUT" 2>&1 | tee "$OUT/summary.txt"
grep -h "FAILED\|Error\|error" "$WORK"/*/log | head -40
date -u
