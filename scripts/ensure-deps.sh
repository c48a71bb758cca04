#!/usr/bin/env bash
# Installs what deltafs needs on a Debian/Ubuntu machine, saying what it does:
# fuse (fusermount), libfuse2 and a C toolchain from Debian, then the npm dependencies and
# the build. Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

say () { printf '[deltafs setup] %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
command -v fusermount >/dev/null 2>&1 || missing+=(fuse)
ldconfig -p 2>/dev/null | grep -q 'libfuse\.so\.2' || missing+=(libfuse2)
# npm ci builds the patched fuse-native and native/ns-time with node-gyp
# (scripts/fix-fuse-native.mjs, scripts/build-ns-time.mjs), and zstd-napi
# (C++) where no prebuilt binary can be fetched.
{ command -v make >/dev/null 2>&1 && command -v cc >/dev/null 2>&1 && command -v c++ >/dev/null 2>&1; } || missing+=(build-essential)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
for extra in ${DELTAFS_EXTRA_PACKAGES:-}; do
  dpkg -s "$extra" >/dev/null 2>&1 || missing+=("$extra")
done
if [ "${#missing[@]}" -gt 0 ] || [ "${DELTAFS_APT_UPDATE:-}" = 1 ]; then
  say "installing Debian packages: ${missing[*]:-(none missing, refreshing lists)}"
  $SUDO apt-get update -qq
  if [ "${#missing[@]}" -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi
if [ ! -e /dev/fuse ]; then
  say "/dev/fuse is missing: load the fuse kernel module (modprobe fuse) or run where FUSE is available"
  exit 1
fi
if ! command -v node >/dev/null 2>&1; then
  say "Node.js 20 or newer is needed (for example from the nodejs package or nodesource)"
  exit 1
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ] || [ "${CI:-}" = true ]; then
  say "installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi
say "building (tsc)"
npm run --silent build
