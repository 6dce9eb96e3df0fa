#!/usr/bin/env bash
# tests/lua/run.sh BUILD_DIR [busted options...]
#
# Runs the Lua suites against the module built in BUILD_DIR
# (BUILD_DIR/lua/skinanalysis/core.so) and lua/skinanalysis.lua of this
# checkout:
#   1. busted on tests/lua/*_spec.lua (one emulator per spec file; the
#      frame-loop host spec runs when BUILD_DIR/examples/lua-host/lua_host
#      exists);
#   2. unless SA_TEST_QUICK=1: the out-of-memory pass (tests/lua/failalloc.c
#      over tests/lua/failalloc.lua) and tests/lua/valgrind_smoke.lua, both
#      under valgrind (errors and definite/indirect leaks fail the run).
# A BUILD_DIR configured with -DSA_SANITIZE=ON runs the specs with the
# ASan/UBSan runtimes preloaded (and no valgrind).
# Exits non-zero when anything fails.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
rest="busted options..."
. "$here/../build_dir_arg.sh"  # root, build; shifts BUILD_DIR off
if [ ! -f "$build/lua/skinanalysis/core.so" ]; then
  echo "tests/lua/run.sh: $build/lua/skinanalysis/core.so not found: build first" >&2
  exit 1
fi

export SA_REPO="$root" SA_BUILD_DIR="$build"
export LUA_CPATH_5_4="$build/lua/?.so;;"
export LUA_PATH_5_4="$root/lua/?.lua;$here/?.lua;;"
unset YOUCAM_API_KEY SKINANALYSIS_BASE_URL SKINANALYSIS_RATE_LIMIT_SCOPE

# A build with -DSA_SANITIZE=ON: the interpreter is not sanitized, so preload
# the runtimes (the emulator helper drops LD_PRELOAD for python); valgrind
# cannot run on top of ASan, so it is skipped.
sanitized=0
if grep -q '^SA_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
  sanitized=1
  cc=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
  cc=${cc:-cc}
  export LD_PRELOAD="$("$cc" -print-file-name=libasan.so):$("$cc" -print-file-name=libubsan.so)"
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  echo "sanitized build: LD_PRELOAD=$LD_PRELOAD"
fi

cd "$root"
rc=0
# With no arguments after BUILD_DIR, run every spec; otherwise pass them to
# busted as they are (e.g. tests/lua/client_spec.lua or --filter=...).
if [ $# -eq 0 ]; then set -- "$here"; fi
lua5.4 "$(command -v busted)" --config-file="$here/.busted" "$@" || rc=1

# Out-of-memory pass: tests/lua/failalloc.c fails every Lua allocation of
# tests/lua/failalloc.lua in turn (under valgrind, or ASan for a sanitized
# build); every run must end with an error or normally, with nothing leaked.
if [ "${SA_TEST_QUICK:-0}" != 1 ]; then
  fa="$build/lua-failalloc"
  cc=${cc:-cc}
  fa_flags=()
  [ $sanitized = 1 ] && fa_flags=(-fsanitize=address,undefined -fno-omit-frame-pointer)
  fa_log="$build/lua-failalloc.log"
  if ! env -u LD_PRELOAD "$cc" -std=c11 -Wall -Wextra -O1 -g "${fa_flags[@]}" $(pkg-config --cflags lua5.4) \
       "$here/failalloc.c" -o "$fa" $(pkg-config --libs lua5.4) >"$fa_log" 2>&1; then
    echo "failalloc: build FAILED"; cat "$fa_log"; rc=1
  else
    runner=()
    if [ $sanitized = 0 ] && command -v valgrind >/dev/null; then
      runner=(valgrind -q --error-exitcode=99 --leak-check=full
              --errors-for-leak-kinds=definite,indirect
              --show-leak-kinds=definite,indirect --suppressions="$here/valgrind.supp")
    fi
    if "${runner[@]}" "$fa" "$build/lua/?.so" "$here/failalloc.lua" 1 >"$fa_log" 2>&1; then
      echo "$(tail -1 "$fa_log")${runner:+ (valgrind: clean)}"
    else
      echo "failalloc: FAILED (log: $fa_log)"; tail -60 "$fa_log"; rc=1
    fi
  fi
fi

if [ "${SA_TEST_QUICK:-0}" != 1 ] && [ $sanitized = 0 ] && command -v valgrind >/dev/null; then
  echo "valgrind: tests/lua/valgrind_smoke.lua"
  log="$build/lua-valgrind.log"
  if valgrind -q --error-exitcode=99 --leak-check=full \
       --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
       --suppressions="$here/valgrind.supp" \
       lua5.4 "$here/valgrind_smoke.lua" >"$log" 2>&1; then
    echo "valgrind: clean ($(tail -1 "$log"))"
  else
    echo "valgrind: FAILED (log: $log)"; tail -60 "$log"; rc=1
  fi
fi
exit $rc
