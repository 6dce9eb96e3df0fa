#!/bin/sh
# Build the libFuzzer targets in build-fuzz (clang) and run each one for a
# bounded time over its committed seed corpus.
#
#   tests/fuzz/run.sh [SECONDS]      (default 30 per target)
#
# SA_FUZZ_SEED (default 1) fixes libFuzzer's seed, so that a CI run explores
# the same inputs each time and fails only on a change; SA_FUZZ_SEED=0 takes
# a random seed (for longer exploratory runs).
#
# New interesting inputs go to a temporary directory (the committed corpus
# is only read); crash reproducers are written to build-fuzz/artifacts/.
# Exits non-zero when a target crashes, leaks or times out.
set -eu

secs=${1:-30}
seed=${SA_FUZZ_SEED:-1}
case $secs$seed in
  ''|*[!0-9]*) echo "usage: [SA_FUZZ_SEED=N] $0 [SECONDS]" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build-fuzz

cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DSA_FUZZ=ON \
  -DBUILD_TESTING=OFF -DSA_BUILD_LUA=OFF -DSA_SANITIZE=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target fuzz_parse fuzz_image fuzz_zip -j2

mkdir -p "$build/artifacts"
status=0
for target in fuzz_parse fuzz_image fuzz_zip; do
  work=$(mktemp -d)
  corpus=$root/tests/fuzz/corpus/$target
  # fuzz_zip starts from the result ZIPs of the C tests
  [ "$target" = fuzz_zip ] && corpus=$root/tests/fixtures/zips
  echo "== $target for ${secs}s, seed $seed"
  if ! "$build/tests/fuzz/$target" -max_total_time="$secs" -seed="$seed" -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$build/artifacts/$target-" \
      "$work" "$corpus"; then
    echo "== $target FAILED (reproducers in $build/artifacts)" >&2
    status=1
  fi
  rm -rf "$work"
done
exit $status
