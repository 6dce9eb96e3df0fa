# Sourced, with no arguments, by the test runners whose first argument is
# BUILD_DIR (tests/lua/run.sh, tests/python/run_asan.sh) after they set
# `rest` (what their other arguments are, for the usage line).  Sets root
# (the checkout) and build (BUILD_DIR made absolute) and shifts BUILD_DIR
# off the runner's arguments; without one: the usage line and exit 2.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ $# -lt 1 ]; then
  echo "usage: $0 BUILD_DIR [$rest]" >&2
  exit 2
fi
build=$1; shift
case $build in /*) ;; *) build="$root/$build" ;; esac
