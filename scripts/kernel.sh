#!/usr/bin/env bash
# Build (or reuse) the Rust-enabled guest kernel.
# The build is cached under $RDAXFS_CACHE keyed by kernel source version,
# Kconfig fragment and rustc/bindgen versions; a cached build is not touched.
# Prints the kernel tree's path on the last line of stdout.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${RDAXFS_CACHE:-$HOME/.cache/rdaxfs}
tarball=/usr/src/linux-source-6.12.tar.xz
frag=$top/qemu/kconfig.fragment
jobs=${JOBS:-$(( $(nproc) + 1 ))}

[ -f "$tarball" ] || { echo "kernel: $tarball missing; run scripts/setup.sh" >&2; exit 1; }
srcver=$(dpkg-query -W -f='${Version}' linux-source-6.12)
key=$( { echo "$srcver"; cat "$frag"; rustc --version; bindgen --version; gcc --version | head -1; } | sha256sum | cut -c1-16)
tree=$cache/linux-$key
mkdir -p "$cache"
# One build at a time: a second caller waits and then finds the cache.
exec 9> "$cache/.lock"
if ! flock -n 9; then
  echo "kernel: another kernel build is running; waiting for it" >&2
  flock 9
fi
if [ -f "$tree/.rdaxfs-built" ]; then
  echo "kernel: cached build $tree (source $srcver)" >&2
  echo "$tree"; exit 0
fi
mkdir -p "$cache"
rm -rf "$tree.tmp"; mkdir -p "$tree.tmp"
echo "kernel: unpacking linux-source $srcver" >&2
tar -xf "$tarball" -C "$tree.tmp" --strip-components=1
cd "$tree.tmp"
echo "kernel: configuring (tinyconfig + qemu/kconfig.fragment)" >&2
make -s ARCH=x86_64 tinyconfig >/dev/null
scripts/kconfig/merge_config.sh -m .config "$frag" >/dev/null
make -s ARCH=x86_64 olddefconfig >/dev/null
# Every fragment line must have survived olddefconfig: a silently dropped
# option (for example RUST when rustc is unusable) is an error.
bad=0
while IFS= read -r line; do
  case "$line" in CONFIG_*=y) grep -qx "$line" .config || { echo "kernel: $line did not stick" >&2; bad=1; } ;; esac
done < "$frag"
if [ $bad -ne 0 ]; then make -s rustavailable >&2 || true; echo "kernel: config incomplete; see above" >&2; exit 1; fi
echo "kernel: building with -j$jobs (about 8-10 minutes from nothing; log: $tree.tmp/build.log)" >&2
start=$(date +%s)
if ! make ARCH=x86_64 -j"$jobs" > build.log 2>&1; then
  tail -40 build.log >&2; echo "kernel: build failed; full log $tree.tmp/build.log" >&2; exit 1
fi
echo "kernel: built in $(( $(date +%s) - start )) s" >&2
touch .rdaxfs-built
cd /; rm -rf "$tree"; mv "$tree.tmp" "$tree"
echo "$tree"
