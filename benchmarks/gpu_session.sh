#!/usr/bin/env bash
# One command for a short GPU window: set up without network, prove the CUDA path, time it, then
# spend the rest of the window on the cifar sweep, and pack everything into a few files.
#
#   benchmarks/gpu_session.sh --out DIR [--data DIR|FILE.tar.gz] [--wheels DIR] [--minutes M]
#                             [--seeds 0] [--methods all] [-- extra `bench run` arguments]
#
#   --out      where the logs and the archive go (created)
#   --data     a dataset root (holding cifar-10-batches-py or cifar10-jpeg), or a .tar.gz of one
#              (default: $BENCH_DATA_DIR)
#   --wheels   a folder of wheels for packages missing here (torch-pruning, torchao, dahuffman),
#              installed with --no-index into a private folder, never into the system
#   --minutes  the whole session's wall-clock budget (default 8); each step gets a share, the
#              sweep gets what is left, and the archive is written before the budget ends
#   --quick    a dry run for a machine without a GPU: tiny budgets on the CPU (tested in CI)
#
# Steps: environment report, `pytest -m gpu`, the training-speed benchmark (eager and compiled),
# the dense model, then `bench run --suite cifar --methods all` until the budget runs out. bench
# writes each record atomically and stops cleanly on SIGTERM, so a killed sweep keeps every
# finished run. Output: env.txt, gpu-tests.log, train-speed.log, sweep.log, results.tar.gz
# (records, leaderboards, dense checkpoints), under --out.
set -uo pipefail

out="" data="${BENCH_DATA_DIR:-}" wheels="" minutes=8 seeds=0 methods=all extra=() quick=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    --wheels) wheels="$2"; shift 2 ;;
    --minutes) minutes="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --methods) methods="$2"; shift 2 ;;
    --quick) quick=(--device cpu --epochs 1 --finetune-epochs 1 --limit-train 512 --limit-test 500); shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "gpu_session: unknown argument '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
done
[[ -n "$out" ]] || { echo "gpu_session: --out DIR is required" >&2; exit 2; }
[[ -n "$data" ]] || { echo "gpu_session: --data (or BENCH_DATA_DIR) is required" >&2; exit 2; }

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d)"
deadline=$(( $(date +%s) + minutes * 60 - 30 ))  # 30 s kept for the archive
python="${PYTHON:-python3}"
say() { echo "[gpu_session $(date +%H:%M:%S)] $*" | tee -a "$out/session.log"; }
left() { echo $(( deadline - $(date +%s) )); }

# -- set-up: wheels and data, no network ----------------------------------------------------------
if [[ -n "$wheels" ]]; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$work/site" \
    "$wheels"/*.whl || { say "installing the wheels from $wheels failed"; exit 3; }
  export PYTHONPATH="$work/site"
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
if [[ -f "$data" ]]; then
  mkdir -p "$work/data" && tar -xzf "$data" -C "$work/data" || { say "cannot unpack $data"; exit 3; }
  data="$work/data"
fi
export BENCH_DATA_DIR="$data" XDG_CACHE_HOME="$work/cache" PYTHONUNBUFFERED=1
"$python" -c "import bench.registry as r; r.discover(); assert not r.BROKEN, r.BROKEN" \
  || { say "the plugins do not import here (missing wheels?)"; exit 3; }

{
  date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nproc
  "$python" -c "import sys, torch; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'NO CUDA')"
  "$python" -m pip list 2>/dev/null | grep -Ei '^(torch|torchvision|torchao|torch-pruning|timm|numpy|pandas|dahuffman|scikit-learn) '
} > "$out/env.txt" 2>&1
say "$(tail -n +3 "$out/env.txt" | head -3 | tr '\n' ' ')"

# -- 1. the gpu tests -----------------------------------------------------------------------------
limit=$(( $(left) * 2 / 5 ))
say "gpu tests (at most $limit s)"
timeout --signal=TERM "$limit" "$python" -m pytest -m gpu -q --durations=0 -p no:cacheprovider \
  tests/test_gpu.py > "$out/gpu-tests.log" 2>&1
say "gpu tests: exit $? ($(tail -n 1 "$out/gpu-tests.log"))"

# -- 2. one ResNet-20 epoch on the whole training set (eager), the dense models, the compiled epoch,
#       then every method until the budget ends -------------------------------------------------
speed() {  # $1: time limit (s), then extra train_speed arguments
  timeout --signal=TERM "$1" "$python" benchmarks/train_speed.py --suites cifar --loops harness,minimal \
    "${@:2}" ${quick:+--device cpu --limit-train 512} >> "$out/train-speed.log" 2>&1
  say "train_speed ${*:2}: exit $?"
}
sweep() {  # $1: methods
  local budget; budget=$(left)
  (( budget > 20 )) || { say "no time left for '$1'"; return; }
  say "bench run --methods $1 (at most $budget s)"
  timeout --signal=TERM --kill-after=20 "$budget" "$python" -m bench run --suite cifar --methods "$1" \
    --seeds "$seeds" --device cuda --results-dir "$results" "${quick[@]}" "${extra[@]}" >> "$out/sweep.log" 2>&1
  say "bench run --methods $1: exit $?"
}
results="$out/results"
speed $(( $(left) / 5 ))
sweep dense
speed $(( $(left) / 3 )) --compile
sweep "$methods"

# -- archive: records, leaderboards and dense checkpoints in one file -----------------------------
tar -czf "$out/results.tar.gz" -C "$out" results 2>/dev/null && rm -rf "$results"
say "done: $(ls "$out" | tr '\n' ' ')"
