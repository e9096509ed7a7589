#!/usr/bin/env bash
# Makes this checkout ready to run: system packages, npm packages, the native addon and
# the TypeScript build. Idempotent, and quick when everything is already there. Called
# by `npm test` and `npm run demo`, so a fresh clone on a fresh machine needs nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'bootstrap: %s\n' "$*" >&2; }

# --- system packages (Debian) ---
pkgs=()
[ -e /usr/include/fuse3/fuse_lowlevel.h ] || pkgs+=(libfuse3-dev)
command -v fusermount3 >/dev/null 2>&1 || pkgs+=(fuse3)
command -v pkg-config >/dev/null 2>&1 || pkgs+=(pkg-config)
command -v make >/dev/null 2>&1 || pkgs+=(make)
command -v g++ >/dev/null 2>&1 || pkgs+=(g++)
command -v cc >/dev/null 2>&1 || pkgs+=(gcc)  # test/mount/dirlist.c
command -v python3 >/dev/null 2>&1 || pkgs+=(python3)
# Used by the tests: real programs on the mount, ext4 images to compare errnos with.
command -v git >/dev/null 2>&1 || pkgs+=(git)
command -v mkfs.ext4 >/dev/null 2>&1 || pkgs+=(e2fsprogs)
command -v setfattr >/dev/null 2>&1 || pkgs+=(attr)
command -v setfacl >/dev/null 2>&1 || pkgs+=(acl)
command -v fio >/dev/null 2>&1 || pkgs+=(fio)
if [ "${#pkgs[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    say "missing packages: ${pkgs[*]}; run as root or install them with: apt-get install ${pkgs[*]}"
    exit 1
  fi
  say "installing ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
if [ ! -e /dev/fuse ]; then
  modprobe fuse 2>/dev/null || true
  [ -e /dev/fuse ] || { say "/dev/fuse is missing: this kernel or container cannot mount FUSE filesystems"; exit 1; }
fi

# Test teardown aborts stuck connections through fusectl; some machines do not mount it.
if [ "$(id -u)" -eq 0 ] && ! grep -q ' /sys/fs/fuse/connections ' /proc/mounts; then
  mount -t fusectl fusectl /sys/fs/fuse/connections 2>/dev/null || say "could not mount fusectl (stuck test mounts then need umount -l)"
fi

# --- npm packages ---
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm ci"
  npm ci --no-audit --no-fund >&2
fi

# --- native addon ---
addon=native-shim/build/Release/pagefs_native.node
if [ ! -e "$addon" ] || [ -n "$(find native-shim/src native-shim/binding.gyp -newer "$addon" 2>/dev/null | head -1)" ]; then
  say "building native-shim"
  npx --no-install node-gyp rebuild -C native-shim >&2
fi

# --- TypeScript ---
if [ ! -e dist/cli/main.js ] || [ -n "$(find src tsconfig.json -newer dist/cli/main.js 2>/dev/null | head -1)" ]; then
  say "compiling TypeScript"
  npx --no-install tsc -p tsconfig.json
  touch dist/cli/main.js
fi
