#!/usr/bin/env bash
# tests/python/run_asan.sh BUILD_DIR [pytest options...]
#
# Runs the Python package suite (tests/python) against an extension built
# with AddressSanitizer + UndefinedBehaviorSanitizer:
#   1. setup.py build_ext with -fsanitize=address,undefined into
#      BUILD_DIR/python/lib/skinanalysis, next to a copy of the pure Python
#      package (python/skinanalysis), so the checkout and .venv stay as
#      they are;
#   2. pytest with that directory first on PYTHONPATH (subprocesses of the
#      tests, the CLI and the notebook kernel, inherit it) and the ASan and
#      UBSan runtimes preloaded into the interpreter, which is not
#      sanitized: leak detection off (CPython keeps memory until exit),
#      UBSan stops at the first error.
# Python is .venv/bin/python (SA_VENV for another environment).  Exits
# non-zero when the build or a test fails.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
rest="pytest options..."
. "$here/../build_dir_arg.sh"  # root, build; shifts BUILD_DIR off
venv=${SA_VENV:-$root/.venv}
case $venv in /*) ;; *) venv="$root/$venv" ;; esac
py="$venv/bin/python"
cc=${CC:-cc}
out="$build/python"
lib="$out/lib"

cd "$root"
rm -rf "$lib"
mkdir -p "$lib"
# the pure Python package (without an extension built in place), then the
# sanitized extension into it
cp -r python/skinanalysis "$lib/"
rm -f "$lib"/skinanalysis/_core*.so
log="$out/build.log"
san="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
if ! CC="$cc" CFLAGS="$san -g -O1" LDFLAGS="-fsanitize=address,undefined" \
     "$py" setup.py -q build_ext --build-lib "$lib" --build-temp "$out/tmp" >"$log" 2>&1; then
  echo "python ASan build FAILED (log: $log)"; tail -40 "$log"; exit 1
fi

preload="$("$cc" -print-file-name=libasan.so):$("$cc" -print-file-name=libubsan.so)"
echo "sanitized extension: $(ls "$lib"/skinanalysis/_core*.so); LD_PRELOAD=$preload"
if [ $# -eq 0 ]; then set -- tests/python; fi
LD_PRELOAD="$preload" PYTHONPATH="$lib${PYTHONPATH:+:$PYTHONPATH}" \
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  "$py" -m pytest -q -p no:cacheprovider "$@"
