#!/usr/bin/env bash
# Prepare, on the development machine, what a lent GPU machine lacks for benchmarks/gpu_session.sh,
# and print the one call that runs it. The device tool sends the working tree without its .git,
# plus at most 8 ignored paths, 64 MiB in all, to a machine without network. This makes three:
#
#   .gpudata/cifar10-jpeg.tar.gz   the offline CIFAR-10 JPEG copy, gzipped: its 60,000 files share
#                                  one JPEG header, so 57 MB of JPEG packs to about 20 MB
#   .gpudeps/*.whl                 the packages the device image lacks (KINDS.md's list), at the
#                                  versions of constraints-torch211.txt, the image's stack
#   .gpugit/                       a shallow clone's .git of this commit: there, gpu_session.sh makes
#                                  it the copy's .git, so bench checks the code against the commit
#                                  as in any checkout, and the records name a verified commit
#
#   benchmarks/gpu_carry.sh [--data DIR|none] [--wheels none] [--minutes M]
#
#   --data     the folder holding cifar10-jpeg/ (default: $BENCH_DATA_DIR, else ../shared/data);
#              none: leave .gpudata as it is
#   --wheels   none: leave .gpudeps as it is (pip download needs the package registry)
#   --minutes  the session's budget in the printed call (default 7: it ends within M + 2 minutes,
#              inside one call's 10, and leaves a 15-minute lease time to start and to rerun)
#
# OpenVINO (a 59 MB wheel) does not fit beside the data: on the GPU machine, the int8 models that
# are timed on its CPU get empty OpenVINO cells, whose reason names the missing module.
set -euo pipefail

data="${BENCH_DATA_DIR:-}" wheels=yes minutes=7
while [[ $# -gt 0 ]]; do
  case "$1" in
    --data) data="$2"; shift 2 ;;
    --wheels) wheels="$2"; shift 2 ;;
    --minutes) minutes="$2"; shift 2 ;;
    *) echo "gpu_carry: unknown argument '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
done
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
data="${data:-$repo/../shared/data}"
missing=(torch-pruning torchao dahuffman)  # the project's dependencies that the device image lacks

# Records must come from a commit: what travels is the tracked files as they are here, and any
# untracked file that git does not ignore, so both must match the commit.
if [[ -n "$(git status --porcelain --untracked-files=all)" ]]; then
  echo "gpu_carry: the checkout differs from its commit; commit first:" >&2
  git status --short --untracked-files=all | head >&2
  exit 2
fi

if [[ "$data" != none ]]; then
  [[ -d "$data/cifar10-jpeg" ]] || { echo "gpu_carry: no cifar10-jpeg/ under $data" >&2; exit 2; }
  mkdir -p .gpudata
  tar -C "$data" --sort=name -czf .gpudata/cifar10-jpeg.tar.gz cifar10-jpeg
fi

if [[ "$wheels" != none ]]; then
  rm -rf .gpudeps && mkdir .gpudeps
  pins=()
  for name in "${missing[@]}"; do
    pin=$(grep -i "^$name==" constraints-torch211.txt) || { echo "gpu_carry: $name is not pinned in constraints-torch211.txt" >&2; exit 2; }
    pins+=("$pin")
  done
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .gpudeps "${pins[@]}"
fi

rm -rf .gpugit "$repo/.gpugit.tmp"
git clone -q --depth 1 --no-local "file://$repo" "$repo/.gpugit.tmp"
git -C .gpugit.tmp checkout -q --detach  # HEAD holds the commit itself, for a machine without git
git -C .gpugit.tmp config core.fileMode false  # a copy that loses the executable bits is not a change
touch .gpugit.tmp/.git/bench-carried  # gpu_session.sh replaces a .git only if it holds this: a carried one
mv .gpugit.tmp/.git .gpugit && rm -rf .gpugit.tmp

# The device tool's limit: tracked files, plus untracked ones git does not ignore (none, as checked
# above), plus the carried paths.
tree=$(git ls-files -z | xargs -0 stat -c %s | awk '{ s += $1 } END { print s }')
carried=$(find .gpudata .gpudeps .gpugit -type f -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { print s + 0 }' || true)
total=$(( tree + carried ))
limit=$(( 64 * 1024 * 1024 ))
printf 'gpu_carry: tree %.1f MiB + carried %.1f MiB = %.1f MiB of %d MiB (commit %s)\n' \
  "$(awk "BEGIN { print $tree / 1048576 }")" "$(awk "BEGIN { print $carried / 1048576 }")" \
  "$(awk "BEGIN { print $total / 1048576 }")" 64 "$(git rev-parse --short=12 HEAD)"
(( total <= limit )) || { echo "gpu_carry: over the device tool's 64 MiB" >&2; exit 1; }
cat <<EOF
The device call (the tool's run; its \$OUT comes back):
  command:   benchmarks/gpu_session.sh --out "\$OUT" --data .gpudata/cifar10-jpeg.tar.gz --wheels .gpudeps --minutes $minutes
  carry:     [".gpudata", ".gpudeps", ".gpugit"]
  timeout_s: 600
Then, here: tar -xzf <files_at>/results.tar.gz -C results && git add results/cifar && git commit
EOF
