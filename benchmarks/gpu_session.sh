#!/usr/bin/env bash
# One command for a short GPU window: set up without network, time the ways of training several
# runs at once (fused, graphs, streams, processes), then spend the rest of the window on the cifar
# sweep with the fastest, and pack everything into a few files.
#
#   benchmarks/gpu_session.sh --out DIR [--data DIR|FILE.tar.gz] [--wheels DIR] [--minutes M]
#       [--jobs-per-gpu K] [--fuse K|auto] [--fused-bench SECONDS|none] [--fresh-bench] [--tests EXPR|none]
#       [--speed MODES|none] [--methods all] [--seeds 0,1,2] [--results DIR] [--quick]
#       [-- extra `bench run` arguments]
#
#   --out        where the logs and the archive go (created)
#   --data       a dataset root (holding cifar-10-batches-py or cifar10-jpeg), or a .tar.gz of one
#                (default: $BENCH_DATA_DIR)
#   --wheels     a folder of wheels for packages missing here (torch-pruning, torchao, dahuffman),
#                installed with --no-index into a private folder, never into the system
#   --minutes    the whole session's wall-clock budget (default 9): the script ends within M + 2
#                minutes whatever happens; the sweep gets what the steps before it leave
#   --fused-bench  seconds for benchmarks/fused_gpu.py (default 120; "none" skips it): one
#                ResNet-20 epoch's rate at K = 1, 4, 8, 16, 32 runs fused (channels-last, NCHW,
#                CUDA graph), as K graphs on K streams, and as K processes; it picks --fuse. A bench
#                that ran whole is kept as <results>/cifar/fused-bench.json (archived, to commit):
#                a later window on the same GPU, torch and fused code takes its choice in seconds
#                and gives the bench's minutes to the sweep
#   --fresh-bench  run the fused bench even where a kept one holds for this GPU, torch and code
#   --fuse       runs per fused task in the sweep (default auto: the fused bench's choice, else none,
#                with the stacked layout it chose: bench run --fuse-layout)
#   --jobs-per-gpu  runs (or fused tasks) at once on each GPU (default 4, 2 when fusing)
#   --tests      which `pytest -m gpu` tests to run: a -k expression, "all", or "none" (default)
#   --speed      training-speed modes to time on one full epoch: eager, default, reduce-overhead
#                (comma list), or "none" (default)
#   --seeds      the sweep's seeds (default 0,1,2), breadth first: every setting at the first
#                seed before any second seed, so a window cut short still covers every row (fused,
#                a task takes a method's runs at the other seeds along)
#   --results    the results folder to continue (default: the repository's results/): records
#                this GPU kind made from a commit a checkout vouched for are kept (--refresh device),
#                others rerun (another GPU's, or those only $BENCH_GIT_COMMIT named); cached dense
#                models (committed in results/cifar/cache) reused on the same terms
#   --quick      a dry run for a machine without a GPU: tiny budgets on the CPU, and the cifar suite
#                measured as on a GPU, in the torch runtime alone at small batches (tested in CI);
#                it needs --results (a scratch folder): its records and bench are not the window's
#
# bench writes each record atomically, stops starting runs at its --max-minutes, and stops
# cleanly on SIGTERM, so a sweep cut short keeps every finished run; the next window continues it.
# benchmarks/gpu_carry.sh prepares the call on a machine with the repository: data, wheels, .git.
# Output under --out: session.log, env.txt, fused-bench.log and .json (the .json where the bench
# ran, not where a kept one was reused), sweep.log, results.tar.gz
# (the suite's records, leaderboards, run logs and dense models), and gpu-tests.log and
# train-speed.log when those steps ran.
set -uo pipefail

out="" data="${BENCH_DATA_DIR:-}" wheels="" minutes=9 suite=cifar seeds=0,1,2 methods=all extra=() quick=()
k="" tests=none speed=none results="" device=cuda fuse=auto fuse_layout=model bench_s=120 fresh=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    --wheels) wheels="$2"; shift 2 ;;
    --minutes) minutes="$2"; shift 2 ;;
    --jobs-per-gpu) k="$2"; shift 2 ;;
    --fuse) fuse="$2"; shift 2 ;;
    --fused-bench) bench_s="$2"; shift 2 ;;
    --fresh-bench) fresh=1; shift ;;
    --tests) tests="$2"; shift 2 ;;
    --speed) speed="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --methods) methods="$2"; shift 2 ;;
    --results) results="$2"; shift 2 ;;
    --quick) quick=(--epochs 1 --finetune-epochs 1 --limit-train 512 --limit-test 500 --precision fp32); device=cpu; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "gpu_session: unknown argument '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
done
[[ -n "$out" ]] || { echo "gpu_session: --out DIR is required" >&2; exit 2; }
[[ -n "$data" ]] || { echo "gpu_session: --data (or BENCH_DATA_DIR) is required" >&2; exit 2; }
# Whole numbers: bash's arithmetic stops the script at the first use of any other (7.5 minutes at
# once; 90.5 seconds of fused bench only after the set-up, with no sweep and no archive).
[[ "$minutes" =~ ^[0-9]+$ ]] || { echo "gpu_session: --minutes takes whole minutes, not '$minutes'" >&2; exit 2; }
[[ "$bench_s" =~ ^([0-9]+|none)$ ]] || { echo "gpu_session: --fused-bench takes whole seconds or none, not '$bench_s'" >&2; exit 2; }
# a quick dry run's tiny-budget records, leaderboards and CPU bench do not belong in the repository's
# results, which a window continues and which are committed
[[ ${#quick[@]} -eq 0 || -n "$results" ]] || { echo "gpu_session: --quick needs --results DIR (a scratch folder)" >&2; exit 2; }

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
results="${results:-$repo/results}"
mkdir -p "$out" "$results"
out="$(cd "$out" && pwd)" results="$(cd "$results" && pwd)"
work="$(mktemp -d)"
start=$(date +%s)
end=$(( start + minutes * 60 ))  # the sweep starts no run after this; the archive follows
python="${PYTHON:-python3}"
say() { echo "[gpu_session $(date +%H:%M:%S)] $*" | tee -a "$out/session.log"; }
left() { echo $(( end - $(date +%s) )); }
# A step's time limit before the sweep: what it asks for, but no more than what is left of the
# budget, so that it cannot take the minutes that the sweep's wind-down and the archive keep after
# the budget's end; and at least 1 s (`timeout 0` sets no limit at all).
upto() { local s=$1 l; l=$(left); (( l < s )) && s=$l; (( s < 1 )) && s=1; echo "$s"; }

# -- set-up: wheels and data, no network ----------------------------------------------------------
if [[ -n "$wheels" ]]; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$work/site" \
    "$wheels"/*.whl || { say "installing the wheels from $wheels failed"; exit 3; }
  export PYTHONPATH="$work/site"
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
# The code's commit, which every record names. The device tool copies the tree without its .git;
# benchmarks/gpu_carry.sh carries a shallow clone's as .gpugit, which becomes the copy's .git, so
# that bench checks the copy against the commit as in any checkout. Without git on the machine,
# the commit is only named ($BENCH_GIT_COMMIT, marked unverified in the leaderboard). Code that no
# commit names, or that differs from its commit, stops here within seconds: its records could not
# say which code made them, and bench refuses standard-budget runs of changed code.
# A machine kept warm between calls still holds the last call's carried .git (marked by gpu_carry.sh):
# the new one replaces it. A checkout's own .git is never touched.
if [[ -d "$repo/.gpugit" && ( ! -e "$repo/.git" || -f "$repo/.git/bench-carried" ) ]]; then
  rm -rf "$repo/.git" && mv "$repo/.gpugit" "$repo/.git"
fi
unset BENCH_GIT_COMMIT  # a caller's would name the code without the check below
commit=$("$python" -c "from bench.provenance import git_commit; print(git_commit() or '')")
refresh=(--refresh device)  # keep this GPU kind's rows of verified commits, rerun the others
if [[ -z "$commit" && -f "$repo/.git/HEAD" ]]; then
  export BENCH_GIT_COMMIT="$(cat "$repo/.git/HEAD")"
  commit="$BENCH_GIT_COMMIT, named by \$BENCH_GIT_COMMIT (git does not run here)"
  refresh=()  # its rows would all be unverified: --refresh device would rerun them every window
fi
say "code: ${commit:-no commit}"
if [[ -z "$commit" && ${#quick[@]} -eq 0 ]]; then
  say "no commit names this code (no .git, no .gpugit): carry .gpugit, made by benchmarks/gpu_carry.sh"
  exit 3
fi
if [[ "$commit" == *-dirty && ${#quick[@]} -eq 0 ]]; then
  say "the code here differs from its commit, so bench would refuse the sweep:"
  git -C "$repo" status --short --untracked-files=all -- . ':(exclude)results' | head | tee -a "$out/session.log"
  exit 3
fi
if [[ -f "$data" ]]; then
  mkdir -p "$work/data" && tar -xzf "$data" -C "$work/data" || { say "cannot unpack $data"; exit 3; }
  data="$work/data"
fi
export BENCH_DATA_DIR="$data" XDG_CACHE_HOME="$work/cache" PYTHONUNBUFFERED=1
if [[ ${#quick[@]} -gt 0 ]]; then  # deploying ResNet-20 to every CPU runtime takes minutes a run
  suite="$work/cifar.yaml"
  "$python" -c "import sys, yaml; s = yaml.safe_load(open('suites/cifar.yaml'))
s.update(runtimes=['torch'], latency_batches=[1, 16]); yaml.safe_dump(s, open(sys.argv[1], 'w'))" "$suite"
fi
"$python" -c "import bench.registry as r; r.discover(); assert not r.BROKEN, r.BROKEN" \
  || { say "the plugins do not import here (missing wheels?)"; exit 3; }
# Decode the images once into the tensor cache, before the steps that start several processes at
# a time: otherwise each worker of the sweep decodes 60,000 JPEGs at once (seen on an H100).
"$python" -c "from bench.data import default_tensor_cache as c, load_dataset as l; from bench.suite import load_suite as s
import os; print(l(s('cifar').data, os.environ['BENCH_DATA_DIR'], c()).source)" > /dev/null \
  || { say "cannot read the dataset under $data"; exit 3; }
{
  date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nproc
  "$python" -c "import sys, torch; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'NO CUDA')"
  "$python" -m pip list 2>/dev/null | grep -Ei '^(torch|torchvision|torchao|torch-pruning|timm|numpy|pandas|dahuffman|scikit-learn) '
} > "$out/env.txt" 2>&1
say "$(tail -n +3 "$out/env.txt" | head -3 | tr '\n' ' ')"

# -- 1. the ways of training K runs at once, and the choice for the sweep --------------------------
kept="$results/cifar/fused-bench.json"  # a whole bench's result, for later windows on the same terms
rm -f "$out/fused-bench.json" "$out/fused-bench.log"  # an earlier session's, in a reused --out: not this one's
quickly=$([[ ${#quick[@]} -gt 0 ]] && echo "--quick")
if [[ "$bench_s" != none && "$fuse" == auto && "$fresh" == 0 && -f "$kept" ]]; then
  # (fused_gpu.py checks the kept choice; still, words that are no K and layout never reach [[ -gt ]] below,
  # which would run a `$(...)` in them)
  if reused=$(timeout "$(upto 120)" "$python" benchmarks/fused_gpu.py --reuse "$kept" --unfused-jobs "${k:-4}" $quickly 2>>"$out/fused-bench.log") \
      && [[ "$reused" =~ ^[0-9]+\ (model|nchw)$ ]]; then
    read -r fuse fuse_layout <<< "$reused"
    bench_s=none
    say "fused bench not run: the one kept in $kept holds for this GPU, torch and code: --fuse $fuse --fuse-layout $fuse_layout (--fresh-bench runs it)"
  else
    say "fused bench: the kept one does not hold here ($(tail -n 1 "$out/fused-bench.log")): timed again"
  fi
fi
if [[ "$bench_s" != none ]]; then
  say "fused bench (at most $bench_s s of cells)"
  timeout --signal=TERM --kill-after=10 "$(upto $(( bench_s + 120 )))" "$python" benchmarks/fused_gpu.py --data-dir "$BENCH_DATA_DIR" \
    --budget "$bench_s" --unfused-jobs "${k:-4}" --out "$out/fused-bench.json" $quickly \
    >> "$out/fused-bench.log" 2>&1
  say "fused bench: exit $? ($(grep '^choice' "$out/fused-bench.log"))"
  if "$python" -c "import json, sys; sys.exit(json.load(open(sys.argv[1])).get('complete') is not True)" \
      "$out/fused-bench.json" 2>/dev/null; then
    # <results>/cifar is committed and carried, so it may hold links: `cp` to a link planted at the
    # temporary name wrote the bench over the file it named. bench.files writes a file of its own and
    # renames it into place; a cifar folder that is a link is refused, as bench run refuses it.
    if why=$("$python" -c "import sys; from pathlib import Path; from bench import files, layout
kept = Path(sys.argv[2])
try:
    layout.refuse_links([kept.parent])
    files.write_text_atomic(kept, Path(sys.argv[1]).read_text())
except (OSError, RuntimeError) as e:  # bench.errors.ResultsFolderError is a RuntimeError
    sys.exit(str(e))" \
        "$out/fused-bench.json" "$kept" 2>&1); then
      say "the fused bench ran whole: kept in $kept, for later windows on this GPU, torch and code"
    else
      say "the fused bench ran whole, but is not kept: $why"
    fi
  fi
fi
if [[ "$fuse" == auto ]]; then
  # a bench cut short wrote what it measured (complete: false): its choice stands, and the log says so
  read -r fuse fuse_layout complete < <("$python" benchmarks/fused_gpu.py --choice-of "$out/fused-bench.json" \
    2>>"$out/fused-bench.log" || echo "1 model True")
  [[ "$complete" == False ]] && say "the fused bench was cut short: --fuse $fuse --fuse-layout $fuse_layout, chosen from the cells it timed"
fi
k="${k:-$([[ "$fuse" -gt 1 ]] && echo 2 || echo 4)}"

# -- 2. the gpu tests -----------------------------------------------------------------------------
if [[ "$tests" != none ]]; then
  limit=$(upto $(( $(left) / 3 )))
  say "gpu tests ${tests} (at most $limit s)"
  select=()  # one argument: an expression such as "not compile" is not split into words
  # -n 0: one test at a time on the one GPU (pyproject's -n auto ran them side by side, and one
  # test's training would time into another's latency check)
  [[ "$tests" != all ]] && select=(-k "$tests")
  timeout --signal=TERM --kill-after=10 "$limit" "$python" -m pytest -m gpu -n 0 -q --durations=0 -p no:cacheprovider \
    "${select[@]}" tests/test_gpu.py tests/test_gpu_deploy.py > "$out/gpu-tests.log" 2>&1
  say "gpu tests: exit $? ($(tail -n 1 "$out/gpu-tests.log"))"
fi

# -- 3. one ResNet-20 epoch on the whole training set, per training mode --------------------------
if [[ "$speed" != none ]]; then
  for mode in ${speed//,/ }; do
    timeout --signal=TERM --kill-after=10 "$(upto 90)" "$python" benchmarks/train_speed.py --suites cifar --loops harness,minimal \
      $([[ "$mode" != eager ]] && echo "--compile $mode") \
      $([[ ${#quick[@]} -gt 0 ]] && echo "--device cpu --limit-train 512") >> "$out/train-speed.log" 2>&1
    say "train_speed $mode: exit $?"
  done
fi

# -- 4. the sweep: every method and seed, breadth first, fused as chosen, until the budget ends ----
sweep_minutes=$(awk "BEGIN { printf \"%.2f\", ($(left) - 30) / 60 }")
if awk "BEGIN { exit !($sweep_minutes >= 0.25) }"; then
  jobs=(--jobs-per-gpu "$k")
  [[ "$device" == cpu ]] && jobs=(--jobs 2)
  say "bench run --methods $methods --seeds $seeds --order breadth ${refresh[*]} --max-minutes $sweep_minutes ${jobs[*]} --fuse $fuse --fuse-layout $fuse_layout"
  timeout --signal=TERM --kill-after=20 $(( $(left) + 90 )) "$python" -m bench run --suite "$suite" \
    --methods "$methods" --seeds "$seeds" --device "$device" --order breadth "${refresh[@]}" --max-minutes "$sweep_minutes" \
    "${jobs[@]}" --fuse "$fuse" --fuse-layout "$fuse_layout" --results-dir "$results" "${quick[@]}" "${extra[@]}" > "$out/sweep.log" 2>&1
  say "bench run: exit $? ($(grep -c ' -> ' "$out/sweep.log") runs finished)"
else
  say "no time left for the sweep"
fi

# -- archive: the suite's records, leaderboards, logs and dense models in one file ---------------
tar -czf "$out/results.tar.gz" -C "$results" cifar 2>/dev/null
say "done in $(( $(date +%s) - start )) s: $(ls "$out" | tr '\n' ' ')"
