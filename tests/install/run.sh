#!/usr/bin/env bash
# tests/install/run.sh - the installation test: install skinanalysis the way
# its users do, on pristine Debian 12 roots, from a clone of this checkout's
# HEAD (commit first: uncommitted changes are not in the clone).
#
#   base   debootstrap --variant=minbase bookworm, then git and
#          ca-certificates: a new user's machine.  Copies of it are:
#   full   the README's two commands: scripts/demo, then a quick
#          scripts/test; the C example built with CMake against the shared
#          and the static library and with pkg-config, each run against the
#          emulator; lua5.4 and pkg-config from /; scripts/setup again as a
#          user without root (must work, and name the step that needs root);
#          scripts/dist (sdist, abi3 manylinux wheel, binary rock).
#   wheel  debootstrap's root plus only python3 and python3-venv (no git, no
#          compiler, no -dev package, no libcurl): a venv, pip install of the wheel, the emulator the wheel
#          ships, an analysis through the C core; the wheel's size and the
#          import time are printed.
#   lua    only lua5.4, liblua5.4-dev, luarocks and the C libraries' -dev
#          packages: luarocks make, then an analysis from Lua.
#
# The apt sources and settings, CA certificates, resolver and pip settings are
# copied from this host (nothing here names a mirror); /proc, /sys and /dev
# are mounted in each root.  The roots are always unmounted and removed, on
# failure and on Ctrl-C too.  Needs root and debootstrap (installed with
# apt-get when missing).  Environment: SA_INSTALL_WORK (parent folder of the
# roots, default /var/tmp), SA_INSTALL_KEEP=1 keeps the roots for a look
# (still unmounted), SA_INSTALL_SUITE (default bookworm), SA_INSTALL_PARTS
# (default "full wheel lua": a subset to run), SA_INSTALL_WHEEL (a wheel for
# the wheel part when the full part does not run).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
suite=${SA_INSTALL_SUITE:-bookworm}
parts=" ${SA_INSTALL_PARTS:-full wheel lua} "
part() { [[ $parts == *" $1 "* ]]; }
t0=$(date +%s)
log() { printf '[install %4ds] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }
fail() { printf '[install] FAILED: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "needs root (debootstrap, chroot, mount)"
if ! command -v debootstrap >/dev/null; then
  log "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; } \
    || fail "debootstrap cannot be installed"
fi

work=$(mktemp -d "${SA_INSTALL_WORK:-/var/tmp}/sa-install.XXXXXX")
emu_pid=

unmount_all() {  # every mount point under $work, deepest first
  local m
  for _ in 1 2 3; do
    mapfile -t mounts < <(awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r)
    [ ${#mounts[@]} -eq 0 ] && return 0
    for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  done
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "$emu_pid" ] && kill "$emu_pid" 2>/dev/null && wait "$emu_pid" 2>/dev/null
  unmount_all
  if awk -v w="$work/" 'index($2, w) == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
    echo "[install] WARNING: mounts left under $work; not removing it" >&2
  elif [ "${SA_INSTALL_KEEP:-0}" = 1 ]; then
    echo "[install] roots kept in $work"
  else
    rm -rf --one-file-system "$work"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'echo "[install] interrupted" >&2; exit 130' INT TERM

# -- the host's configuration ------------------------------------------------
# The first suite's URI in the host's apt sources (deb822 or one-line style).
mirror=$(
  { for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      awk -v s="$suite" '
        /^[[:space:]]*$/ { if (uri != "" && ok) { print uri; exit } uri = ""; ok = 0; next }
        /^URIs:/ { uri = $2 }
        /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) ok = 1 }
        END { if (uri != "" && ok) print uri }' "$f"
    done
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | awk -v s="$suite" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i == s) { u = $(i-1); print u; exit } }'
  } | grep -v '^\[' | head -1 || true)
[ -n "$mirror" ] || fail "no apt source for $suite on this host"

# Variables the package tools read (pip's, proxies); paths that the root
# lacks are dropped at use.
pass_env=()
while IFS='=' read -r name value; do
  case $name in
    PIP_*|http_proxy|https_proxy|no_proxy|HTTP_PROXY|HTTPS_PROXY|NO_PROXY) pass_env+=("$name=$value") ;;
  esac
done < <(env)

copy_host_config() {  # ROOT
  local r=$1 f
  cp -a /etc/apt/sources.list "$r/etc/apt/" 2>/dev/null || : > "$r/etc/apt/sources.list"
  mkdir -p "$r/etc/apt/sources.list.d" "$r/etc/apt/apt.conf.d"
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && cp "$f" "$r/etc/apt/sources.list.d/"
  done
  for f in /etc/apt/apt.conf.d/*; do   # the acquisition settings only (proxies, date checks)
    [ -f "$f" ] && grep -q '^[[:space:]]*Acquire' "$f" && cp "$f" "$r/etc/apt/apt.conf.d/"
  done
  for f in /etc/apt/trusted.gpg.d/* /usr/share/keyrings/*; do
    [ -f "$f" ] && [ ! -e "$r$f" ] && mkdir -p "$r$(dirname "$f")" && cp "$f" "$r$f"
  done
  cp -L /etc/resolv.conf "$r/etc/resolv.conf"
  cp /etc/hosts "$r/etc/hosts"
  # The host's CA bundle, also as a local CA so that installing
  # ca-certificates in the root keeps every certificate the host trusts.
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    mkdir -p "$r/etc/ssl/certs" "$r/usr/local/share/ca-certificates"
    cp /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/"
    cp /etc/ssl/certs/ca-certificates.crt "$r/usr/local/share/ca-certificates/host-bundle.crt"
  fi
  for f in /etc/pip.conf /etc/xdg/pip/pip.conf "$HOME/.config/pip/pip.conf" "$HOME/.pip/pip.conf"; do
    [ -f "$f" ] || continue
    mkdir -p "$r$(dirname "${f/#$HOME//root}")"
    cp "$f" "$r${f/#$HOME//root}"
  done
}

mount_root() {  # ROOT
  local r=$1
  mount -t proc proc "$r/proc"
  mount -t sysfs sysfs "$r/sys"
  mount --bind /dev "$r/dev"
  mount --bind /dev/pts "$r/dev/pts"
  mkdir -p "$r/dev/shm" && mount -t tmpfs -o mode=1777 shm "$r/dev/shm"
}

# in_root ROOT [--user U] SCRIPT: run a bash script in the root, as root (or
# as U), in a clean environment plus the package tools' variables.
in_root() {
  local r=$1; shift
  local user=root
  if [ "$1" = --user ]; then user=$2; shift 2; fi
  local envs=() kv
  for kv in "${pass_env[@]}"; do
    case ${kv#*=} in /*) [ -e "$r${kv#*=}" ] || continue ;; esac
    envs+=("$kv")
  done
  local home=/root
  [ "$user" = root ] || home=/home/$user
  chroot --userspec="$user:$user" "$r" /usr/bin/env -i HOME="$home" USER="$user" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    TERM=dumb DEBIAN_FRONTEND=noninteractive "${envs[@]}" /bin/bash -euo pipefail -c "$1"
}

new_root() {  # NAME [FROM]: a copy of the base (or FROM) root, mounted
  local r="$work/$1"
  cp -a "$work/${2:-base}" "$r"
  mount_root "$r"
  echo "$r"
}

# -- base: a new user's Debian 12 ----------------------------------------------
log "debootstrap --variant=minbase $suite (mirror from the host's apt sources)"
debootstrap --variant=minbase "$suite" "$work/base" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log"; fail "debootstrap"; }
copy_host_config "$work/base"
mount_root "$work/base"
in_root "$work/base" 'apt-get update -qq'
unmount_all
# bare: debootstrap's root alone (git would bring libcurl), for the wheel.
cp -a "$work/base" "$work/bare"
mount_root "$work/base"
in_root "$work/base" 'apt-get install -y -qq git ca-certificates >/dev/null'
unmount_all
log "base root ready ($(du -sh "$work/base" | cut -f1))"

mkdir -p "$work/artifacts"
[ -z "${SA_INSTALL_WHEEL:-}" ] || cp "$SA_INSTALL_WHEEL" "$work/artifacts/"

# -- full: the README's commands -------------------------------------------------
if part full; then
full=$(new_root full)
git clone -q "$repo" "$full/root/skinanalysis"
log "full: scripts/demo"
in_root "$full" 'cd /root/skinanalysis && scripts/demo' >"$work/demo.log" 2>&1 \
  || { tail -60 "$work/demo.log"; fail "scripts/demo"; }
grep -q 'skin_type' "$work/demo.log" || { tail -30 "$work/demo.log"; fail "scripts/demo printed no scores"; }
tail -4 "$work/demo.log" | sed 's/^/    /'

log "full: SA_TEST_QUICK=1 scripts/test"
in_root "$full" 'cd /root/skinanalysis && SA_TEST_QUICK=1 SA_INSTALL_TEST=0 CI= scripts/test' \
  >"$work/test.log" 2>&1 || { tail -80 "$work/test.log"; fail "scripts/test"; }
sed -n '/===== summary =====/,$p' "$work/test.log" | sed 's/^/    /'

log "full: from any directory: python in .venv, lua5.4, pkg-config; the C example three ways"
in_root "$full" '
  cd /
  /root/skinanalysis/.venv/bin/python -c "import skinanalysis, sys; print(\"    python\", sys.version.split()[0], skinanalysis.__version__)"
  lua5.4 -e "local sa = require \"skinanalysis\"; print(\"    lua\", sa.version or sa._VERSION or \"ok\")"
  echo "    pkg-config: $(pkg-config --libs skinanalysis)"
  ex=/root/skinanalysis/examples/c
  cmake -S $ex -B /tmp/ex-shared -DSA_EXAMPLE_STATIC=OFF >/dev/null && cmake --build /tmp/ex-shared >/dev/null
  cmake -S $ex -B /tmp/ex-static -DSA_EXAMPLE_STATIC=ON >/dev/null && cmake --build /tmp/ex-static >/dev/null
  cc -o /tmp/ex-pkgconfig $ex/analyze.c $(pkg-config --cflags --libs skinanalysis) -lm
  ldd /tmp/ex-shared/sa_analyze | grep -q libskinanalysis.so || { echo "shared example not linked to libskinanalysis.so"; exit 1; }
  if ldd /tmp/ex-static/sa_analyze | grep -q libskinanalysis.so; then echo "static example linked to the .so"; exit 1; fi
  cd /root/skinanalysis
  scripts/emulator --port 0 --task-seconds 0 >/tmp/emu.out 2>&1 & emu=$!
  for _ in $(seq 100); do grep -q "listening on" /tmp/emu.out && break; sleep 0.1; done
  url=$(sed -n "s/^listening on //p" /tmp/emu.out | head -1)
  for b in /tmp/ex-shared/sa_analyze /tmp/ex-static/sa_analyze /tmp/ex-pkgconfig; do
    YOUCAM_API_KEY=emulator-key $b --base-url "$url" examples/portrait.jpg wrinkle pore > /tmp/ex.out
    grep -q wrinkle /tmp/ex.out || { cat /tmp/ex.out; kill $emu; exit 1; }
    echo "    $b: $(grep -c . /tmp/ex.out) lines, wrinkle and pore scored"
  done
  kill $emu
' || fail "the installed library from / (python, lua, pkg-config, CMake shared/static)"

log "full: scripts/setup as a user without root (system packages present)"
in_root "$full" 'useradd -m sauser && git clone -q /root/skinanalysis /home/sauser/skinanalysis && chown -R sauser:sauser /home/sauser'
in_root "$full" --user sauser 'cd ~/skinanalysis && scripts/setup' >"$work/setup-user.log" 2>&1 \
  || { tail -30 "$work/setup-user.log"; fail "scripts/setup without root"; }
grep -q 'needs root: install the C library' "$work/setup-user.log" \
  || { cat "$work/setup-user.log"; fail "setup without root did not name the step that needs root"; }
grep -q 'python import (in .*): ok' "$work/setup-user.log" \
  || { cat "$work/setup-user.log"; fail "setup without root: no Python package"; }
grep 'needs root' "$work/setup-user.log" | head -1 | sed 's/^/    /'

log "full: scripts/dist"
in_root "$full" 'cd /root/skinanalysis && scripts/dist' >"$work/dist.log" 2>&1 \
  || { tail -40 "$work/dist.log"; fail "scripts/dist"; }
grep 'dist/' "$work/dist.log" | sed 's/^/    /'
wheel=$(ls "$full"/root/skinanalysis/dist/skinanalysis-*manylinux*.whl | head -1)
[ -f "$wheel" ] || fail "scripts/dist made no manylinux wheel"
cp "$wheel" "$work/artifacts/"
unmount_all
fi

# -- wheel: python3 and python3-venv only ------------------------------------------
if part wheel; then
log "wheel: a root with only python3 and python3-venv"
wr=$(new_root wheel bare)
cp "$work/artifacts/"*.whl "$wr/root/"
cp "$repo/examples/portrait.jpg" "$wr/root/"
in_root "$wr" 'apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null'
in_root "$wr" '
  for tool in cc gcc pkg-config curl-config; do
    if command -v $tool >/dev/null; then echo "unexpected: $tool in the wheel root"; exit 1; fi
  done
  if ls /usr/lib/x86_64-linux-gnu/libcurl* >/dev/null 2>&1; then echo "unexpected: libcurl in the wheel root"; exit 1; fi
  cd /root
  python3 -m venv v
  v/bin/pip install -q --disable-pip-version-check ./skinanalysis-*.whl
  cd /tmp
  echo "    wheel: $(ls /root/*.whl | xargs -n1 basename), $(( $(stat -c %s /root/*.whl) / 1024 )) KiB"
  /root/v/bin/python -c "
import statistics, subprocess, sys, time
def run(code):
    t = time.perf_counter(); subprocess.run([sys.executable, \"-c\", code], check=True)
    return time.perf_counter() - t
base = statistics.median(run(\"pass\") for _ in range(7))
imp = statistics.median(run(\"import skinanalysis\") for _ in range(7))
print(\"    import skinanalysis: %.1f ms over a bare interpreter start (%.1f ms; median of 7 processes each)\"
      % ((imp - base) * 1000, base * 1000))"
  /root/v/bin/python -m skinanalysis emulator --port 0 --task-seconds 0 >/tmp/emu.out 2>&1 & emu=$!
  for _ in $(seq 100); do grep -q "listening on" /tmp/emu.out && break; sleep 0.1; done
  url=$(sed -n "s/^listening on //p" /tmp/emu.out | head -1)
  [ -n "$url" ] || { cat /tmp/emu.out; exit 1; }
  SKINANALYSIS_BASE_URL=$url YOUCAM_API_KEY=emulator-key /root/v/bin/python -c "
import skinanalysis as sa
with sa.Client() as c:
    r = c.analyze(\"/root/portrait.jpg\", actions=[\"wrinkle\", \"pore\", \"acne\"])
    print(\"    analysis through the wheel: overall\", r.overall, \"wrinkle\", r.get(\"wrinkle\").ui_score)
    assert r.get(\"wrinkle\") is not None
"
  kill $emu
' || fail "the wheel in a root with only python3 and python3-venv"
unmount_all
fi

# -- lua: luarocks make ---------------------------------------------------------------
if part lua; then
log "lua: a root with lua5.4, liblua5.4-dev, luarocks and the -dev packages"
lr=$(new_root lua)
git clone -q "$repo" "$lr/root/skinanalysis"
in_root "$lr" 'apt-get install -y -qq lua5.4 liblua5.4-dev luarocks libcurl4-openssl-dev libcjson-dev \
                 libssl-dev libzip-dev libpng-dev libjpeg-dev >/dev/null'
in_root "$lr" 'cd /root/skinanalysis && luarocks --lua-version 5.4 make skinanalysis-*.rockspec' \
  >"$work/luarocks.log" 2>&1 || { tail -30 "$work/luarocks.log"; fail "luarocks make"; }
# The emulator runs from the host's checkout (the roots share the loopback).
"$repo/scripts/emulator" --port 0 --task-seconds 0 >"$work/emu.out" 2>&1 &
emu_pid=$!
for _ in $(seq 100); do grep -q 'listening on' "$work/emu.out" && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$work/emu.out" | head -1)
[ -n "$url" ] || { cat "$work/emu.out"; fail "emulator"; }
in_root "$lr" "cd / && SKINANALYSIS_BASE_URL=$url lua5.4 -e '
  local sa = require \"skinanalysis\"
  local client <close> = sa.client{ api_key = \"emulator-key\", base_url = os.getenv(\"SKINANALYSIS_BASE_URL\") }
  local r, err, code = client:analyze(\"/root/skinanalysis/examples/portrait.jpg\", { actions = { \"wrinkle\", \"pore\" } })
  if not r then error(tostring(code) .. \": \" .. tostring(err)) end
  print(\"    analysis through the rock: wrinkle\", r:get(\"wrinkle\").ui_score)'" \
  || fail "the Lua module installed by luarocks"
kill "$emu_pid" 2>/dev/null; wait "$emu_pid" 2>/dev/null || true; emu_pid=
unmount_all
fi

log "PASSED"
