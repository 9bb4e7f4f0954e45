#!/usr/bin/env bash
# The full study end to end on one GPU machine, in one call, each step timed:
#
#   bash benchmarks/gpu_full_study.sh [--out DIR] [--cores N] [--gpu-slots S] [--no-gpu]
#                                     [--skip-tiny] [--full-minutes M]
#
#   1. check     the packages import (installing the project without network when they do not),
#                and which GPU there is
#   2. dry-run   plan the full study (snakemake -n, scale=full): a bad config stops here
#   3. tiny      the full scale's plan at a tiny size on the CPU (scale=full_tiny): every rule the
#                full study takes, in minutes
#   4. benchmark python -m benchmarks.gpu: images/s per run and per device, against the bf16 peak
#   5. full      the whole scale=full study: --cores N --resources gpu=S (S runs share the GPU)
#   6. collect   results/full's tables, figures, logs and report (no model files) into DIR
#
# --no-gpu runs steps 1-3 and 6 only (the CPU path, tested by tests/test_full_tiny.py);
# --skip-tiny leaves out step 3 (it has run in CI); --full-minutes M stops step 5 after M minutes
# (a lent machine's time is counted): Snakemake keeps every run that finished, so a later call
# resumes the study, and step 6 still brings back what there is.
# DIR (default gpu_full_study/) then holds timings.tsv (step, seconds, exit status), each step's
# log, full/ (results/full without model.pt and checkpoints) and paper-full/ (the report, to be
# committed as paper/full/ with the GPU named in its header). Projected time of each step:
# docs/performance.md ("The full study on one H200").
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=gpu_full_study
CORES=$(nproc)
SLOTS=16
GPU=1
TINY=1
FULL_MINUTES=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --cores) CORES=$2; shift 2 ;;
    --gpu-slots) SLOTS=$2; shift 2 ;;
    --no-gpu) GPU=0; shift ;;
    --skip-tiny) TINY=0; shift ;;
    --full-minutes) FULL_MINUTES=$2; shift 2 ;;
    *) echo "error: unknown option $1; use --out DIR, --cores N, --gpu-slots S, --no-gpu," \
         "--skip-tiny or --full-minutes M" >&2
       exit 2 ;;
  esac
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
printf 'step\tseconds\tstatus\n' > "$OUT/timings.tsv"

# step NAME COMMAND...: runs it with its output in $OUT/NAME.log, records its seconds and status.
step() {
  local name=$1 start end status ms
  shift
  echo "== $name: $*"
  start=$(date +%s%N)
  "$@" > "$OUT/$name.log" 2>&1
  status=$?
  end=$(date +%s%N)
  ms=$(((end - start) / 1000000))
  printf '%s\t%d.%03d\t%d\n' "$name" $((ms / 1000)) $((ms % 1000)) "$status" >> "$OUT/timings.tsv"
  tail -n 3 "$OUT/$name.log"
  if [ "$status" -ne 0 ]; then
    echo "error: step $name failed (exit $status); its log is $OUT/$name.log" >&2
    collect
    exit "$status"
  fi
}

check() {
  python -c "import torch, snakemake, hydra, study" 2>/dev/null \
    || pip install --no-deps --no-build-isolation -e . || return 1
  python -c "import torch, snakemake, hydra, study; print('torch', torch.__version__)" || return 1
  if [ "$GPU" = 1 ]; then
    python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; \
print('device', torch.cuda.get_device_name(0))" || return 1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  fi
}

collect() {
  for scale in full full_tiny; do
    [ -d "results/$scale" ] || continue
    mkdir -p "$OUT/$scale"
    # every result but the saved models (the report and tables do not need them to be read)
    (cd "results/$scale" && find . -type f ! -name '*.pt' -print0 \
      | tar --null -cf - -T - ) | (cd "$OUT/$scale" && tar -xf -)
  done
  [ -d results/full/paper ] && cp -r results/full/paper "$OUT/paper-full"
  cat "$OUT/timings.tsv"
}

GPU_RESOURCES=()
[ "$GPU" = 1 ] && GPU_RESOURCES=(--resources "gpu=$SLOTS")
step check check
step dry-run snakemake -n --cores "$CORES" "${GPU_RESOURCES[@]}" --config scale=full slots="$SLOTS"
[ "$TINY" = 1 ] && step tiny snakemake --cores "$CORES" --config scale=full_tiny
LIMIT=()
[ "$FULL_MINUTES" != 0 ] && LIMIT=(timeout --signal=TERM --kill-after=30 "${FULL_MINUTES}m")
if [ "$GPU" = 1 ]; then
  step benchmark python -m benchmarks.gpu --seconds 10 --slots "1,$SLOTS" --cpu-seconds 5
  step full "${LIMIT[@]}" snakemake --cores "$CORES" "${GPU_RESOURCES[@]}" --config scale=full slots="$SLOTS"
fi
collect
